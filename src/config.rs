//! One `Settings` value built from layered sources: defaults < TOML file < environment < flags.
//!
//! Every key is declared once in [`KEYS`] with the environment variables that may set it, in
//! priority order (`PGKEEP_*` first, then the old backup pod's variables, then libpq's `PG*`).
//! The loader never reads the process environment itself: callers pass a snapshot of it, so tests
//! and the daemon control exactly what is seen.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where an effective value came from; shown by `pgkeep config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    /// A component of a connection URI, which itself came from the inner source.
    Uri(Box<Source>),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Uri(inner) => write!(f, "uri ({inner})"),
            Source::Flag(n) => write!(f, "flag --{n}"),
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: unknown key `{key}` (known keys: {known})")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("invalid value for {key} (from {from}): {message}")]
    Invalid {
        key: &'static str,
        from: Source,
        message: String,
    },
}

/// A key the configuration understands.
pub struct Key {
    pub name: &'static str,
    /// Environment variables that set it, highest priority first.
    pub env: &'static [&'static str],
    pub secret: bool,
    pub help: &'static str,
}

/// Every configuration key. The TOML file uses these names; `PGKEEP_<NAME>` sets them from the
/// environment; flags with the same meaning are passed by the CLI layer under the same name.
pub const KEYS: &[Key] = &[
    Key {
        name: "uri",
        env: &["PGKEEP_URI", "DATABASE_URL"],
        secret: true,
        help: "connection URI postgresql://user:pass@host:port/db?sslmode=..; its parts sit below the separate keys of the same layer",
    },
    Key {
        name: "host",
        env: &["PGKEEP_HOST", "DATABASE_SERVICE_NAME", "PGHOST"],
        secret: false,
        help: "server host name, or a Unix socket directory (starts with /)",
    },
    Key {
        name: "port",
        env: &["PGKEEP_PORT", "PGPORT"],
        secret: false,
        help: "server port",
    },
    Key {
        name: "user",
        env: &["PGKEEP_USER", "POSTGRESQL_USER", "PGUSER"],
        secret: false,
        help: "role that makes backups",
    },
    Key {
        name: "password",
        env: &["PGKEEP_PASSWORD", "POSTGRESQL_PASSWORD", "PGPASSWORD"],
        secret: true,
        help: "password of that role (prefer a passfile or the environment)",
    },
    Key {
        name: "passfile",
        env: &["PGKEEP_PASSFILE", "PGPASSFILE"],
        secret: false,
        help: "libpq password file",
    },
    Key {
        name: "database",
        env: &["PGKEEP_DATABASE", "POSTGRESQL_DATABASE", "PGDATABASE"],
        secret: false,
        help: "database to back up",
    },
    Key {
        name: "sslmode",
        env: &["PGKEEP_SSLMODE", "PGSSLMODE"],
        secret: false,
        help: "disable, allow, prefer, require, verify-ca or verify-full",
    },
    Key {
        name: "sslrootcert",
        env: &["PGKEEP_SSLROOTCERT", "PGSSLROOTCERT"],
        secret: false,
        help: "CA certificates (PEM) for verify-ca / verify-full",
    },
    Key {
        name: "connect_timeout",
        env: &["PGKEEP_CONNECT_TIMEOUT", "PGCONNECT_TIMEOUT"],
        secret: false,
        help: "seconds to wait for a connection",
    },
    Key {
        name: "backup_dir",
        env: &["PGKEEP_BACKUP_DIR", "BACKUP_DIR"],
        secret: false,
        help: "directory that holds the backups (must exist)",
    },
    Key {
        name: "format",
        env: &["PGKEEP_FORMAT"],
        secret: false,
        help: "plain (a .sql file, restorable with psql) or custom (pg_dump -Fc)",
    },
    Key {
        name: "compression",
        env: &["PGKEEP_COMPRESSION"],
        secret: false,
        help: "gzip (default, compatible with gunzip), zstd or none; plain format only",
    },
    Key {
        name: "level",
        env: &["PGKEEP_LEVEL"],
        secret: false,
        help: "compression level (gzip 1-12, zstd 1-19; default 6 for gzip, 1 for zstd)",
    },
    Key {
        name: "threads",
        env: &["PGKEEP_THREADS"],
        secret: false,
        help: "compression threads (default: all cores)",
    },
    Key {
        name: "pg_bindir",
        env: &["PGKEEP_PG_BINDIR"],
        secret: false,
        help: "directory of the PostgreSQL client tools; default: search /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and PATH",
    },
    Key {
        name: "pg_dump",
        env: &["PGKEEP_PG_DUMP"],
        secret: false,
        help: "exact pg_dump program to run (overrides discovery)",
    },
    Key {
        name: "min_dump_bytes",
        env: &["PGKEEP_MIN_DUMP_BYTES"],
        secret: false,
        help: "smallest plausible raw dump size in bytes",
    },
    Key {
        name: "log_format",
        env: &["PGKEEP_LOG_FORMAT"],
        secret: false,
        help: "text or json",
    },
];

fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// A secret string: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Plain,
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// gzip 6 is gzip's own default (libdeflate's 6 compresses a little better, at well under
    /// half the CPU). zstd is the fast choice: on a plain dump its level 1 comes within about 1%
    /// of level 3's size (and below `gzip -6`'s) at half the CPU, which keeps a backup close to
    /// what pg_dump alone takes (see bench/backup.sh and docs/README-bench.md).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Gzip => 6,
            Compression::Zstd => 1,
            Compression::None => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A raw layer value before typing.
#[derive(Clone)]
struct Raw {
    value: String,
    source: Source,
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Raw values may be passwords or URIs with passwords: never shown.
        write!(f, "Raw(<{} bytes> from {})", self.value.len(), self.source)
    }
}

/// The inputs of configuration loading; everything outside the process is passed in.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// Config file named by `--config` (or `PGKEEP_CONFIG` in `env`).
    pub config_file: Option<PathBuf>,
    /// A snapshot of the environment.
    pub env: BTreeMap<String, String>,
    /// Values given as flags, by key name.
    pub flags: BTreeMap<&'static str, String>,
}

/// The effective settings. Each field carries where it came from.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, Raw>,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub passfile: Option<PathBuf>,
    pub database: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: u64,
    pub backup_dir: PathBuf,
    pub format: Format,
    pub compression: Compression,
    pub level: i32,
    pub threads: usize,
    pub pg_bindir: Option<PathBuf>,
    pub pg_dump: Option<PathBuf>,
    pub min_dump_bytes: u64,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl Settings {
    /// Load the settings from the given inputs.
    pub fn load(inputs: &Inputs) -> Result<Settings, ConfigError> {
        let mut values: BTreeMap<&'static str, Raw> = BTreeMap::new();

        // Layer 1: the TOML file.
        let file = inputs
            .config_file
            .clone()
            .or_else(|| inputs.env.get("PGKEEP_CONFIG").map(PathBuf::from));
        if let Some(path) = &file {
            let mut layer = read_file(path)?;
            expand_uri(&mut layer)?;
            values.extend(layer);
        }

        // Layer 2: the environment; within it, each key's variables in priority order.
        let mut layer = BTreeMap::new();
        for k in KEYS {
            if let Some((var, v)) = k.env.iter().find_map(|var| {
                inputs
                    .env
                    .get(*var)
                    .filter(|v| !v.is_empty())
                    .map(|v| (*var, v))
            }) {
                layer.insert(
                    k.name,
                    Raw {
                        value: v.clone(),
                        source: Source::Env(var.to_string()),
                    },
                );
            }
        }
        expand_uri(&mut layer)?;
        values.extend(layer);

        // Layer 3: flags.
        let mut layer = BTreeMap::new();
        for (name, v) in &inputs.flags {
            let k = key(name).expect("flags use declared keys");
            layer.insert(
                k.name,
                Raw {
                    value: v.clone(),
                    source: Source::Flag(name.replace('_', "-")),
                },
            );
        }
        expand_uri(&mut layer)?;
        values.extend(layer);
        values.remove("uri");

        Self::from_values(values)
    }

    fn from_values(values: BTreeMap<&'static str, Raw>) -> Result<Settings, ConfigError> {
        let get = |k: &'static str| values.get(k);
        let invalid = |k: &'static str, message: String| ConfigError::Invalid {
            key: k,
            from: values
                .get(k)
                .map(|r| r.source.clone())
                .unwrap_or(Source::Default),
            message,
        };
        let string = |k: &'static str, default: &str| {
            get(k)
                .map(|r| r.value.clone())
                .unwrap_or_else(|| default.to_string())
        };
        fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
            v.trim()
                .parse::<T>()
                .map_err(|_| format!("`{v}` is not a valid number"))
        }

        let host = string("host", "/var/run/postgresql");
        let port = match get("port") {
            Some(r) => parse_num::<u16>(&r.value).map_err(|m| invalid("port", m))?,
            None => 5432,
        };
        if port == 0 {
            return Err(invalid("port", "port 0 is not valid".into()));
        }
        let user = string("user", "postgres");
        let database = match get("database") {
            Some(r) => r.value.clone(),
            None => user.clone(),
        };
        let sslmode = match string("sslmode", "prefer").as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(invalid(
                    "sslmode",
                    format!(
                        "`{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ),
                ));
            }
        };
        let format = match string("format", "plain").as_str() {
            "plain" | "p" => Format::Plain,
            "custom" | "c" => Format::Custom,
            other => {
                return Err(invalid(
                    "format",
                    format!("`{other}` is not one of plain, custom"),
                ));
            }
        };
        let compression = match string("compression", "gzip").as_str() {
            "gzip" | "gz" => Compression::Gzip,
            "zstd" | "zst" => Compression::Zstd,
            "none" => Compression::None,
            other => {
                return Err(invalid(
                    "compression",
                    format!("`{other}` is not one of gzip, zstd, none"),
                ));
            }
        };
        let level = match get("level") {
            Some(r) => parse_num::<i32>(&r.value).map_err(|m| invalid("level", m))?,
            None => match format {
                Format::Plain => compression.default_level(),
                Format::Custom => 6,
            },
        };
        let level_range = match (format, compression) {
            (Format::Custom, _) => 0..=9,
            (_, Compression::Gzip) => 1..=12,
            (_, Compression::Zstd) => 1..=19,
            (_, Compression::None) => 0..=0,
        };
        if get("level").is_some() && !level_range.contains(&level) {
            return Err(invalid(
                "level",
                format!(
                    "{level} is out of range {}..={} for this format and compression",
                    level_range.start(),
                    level_range.end()
                ),
            ));
        }
        let threads = match get("threads") {
            Some(r) => parse_num::<usize>(&r.value).map_err(|m| invalid("threads", m))?,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        if threads == 0 || threads > 256 {
            return Err(invalid("threads", format!("{threads} is not in 1..=256")));
        }
        let connect_timeout = match get("connect_timeout") {
            Some(r) => parse_num::<u64>(&r.value).map_err(|m| invalid("connect_timeout", m))?,
            None => 10,
        };
        let min_dump_bytes = match get("min_dump_bytes") {
            Some(r) => parse_num::<u64>(&r.value).map_err(|m| invalid("min_dump_bytes", m))?,
            None => 64,
        };
        let log_format = match string("log_format", "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}` is not one of text, json"),
                ));
            }
        };
        let path = |k: &'static str| get(k).map(|r| PathBuf::from(&r.value));

        Ok(Settings {
            host,
            port,
            user,
            password: get("password").map(|r| Secret::new(r.value.clone())),
            passfile: path("passfile"),
            database,
            sslmode,
            sslrootcert: path("sslrootcert"),
            connect_timeout,
            backup_dir: path("backup_dir").unwrap_or_else(|| PathBuf::from("/backups")),
            format,
            compression,
            level,
            threads,
            pg_bindir: path("pg_bindir"),
            pg_dump: path("pg_dump"),
            min_dump_bytes,
            log_format,
            values,
        })
    }

    /// Where the value of `key` came from.
    pub fn source(&self, key: &str) -> Source {
        self.values
            .get(key)
            .map(|r| r.source.clone())
            .unwrap_or(Source::Default)
    }

    /// The effective settings as (key, shown value, source) rows, secrets redacted.
    pub fn show(&self) -> Vec<(&'static str, String, Source)> {
        let mut rows = Vec::new();
        let mut push = |k: &'static str, v: String| rows.push((k, v, self.source(k)));
        push("host", self.host.clone());
        push("port", self.port.to_string());
        push("user", self.user.clone());
        push(
            "password",
            match &self.password {
                Some(_) => "<redacted>".into(),
                None => "(not set)".into(),
            },
        );
        push(
            "passfile",
            self.passfile
                .as_ref()
                .map_or("(not set)".into(), |p| p.display().to_string()),
        );
        push("database", self.database.clone());
        push("sslmode", self.sslmode.as_str().into());
        push(
            "sslrootcert",
            self.sslrootcert
                .as_ref()
                .map_or("(not set)".into(), |p| p.display().to_string()),
        );
        push("connect_timeout", self.connect_timeout.to_string());
        push("backup_dir", self.backup_dir.display().to_string());
        push(
            "format",
            match self.format {
                Format::Plain => "plain".into(),
                Format::Custom => "custom".into(),
            },
        );
        push(
            "compression",
            match (self.format, self.compression) {
                (Format::Custom, _) => "pg_dump built-in (custom format)".into(),
                (_, Compression::Gzip) => "gzip".into(),
                (_, Compression::Zstd) => "zstd".into(),
                (_, Compression::None) => "none".into(),
            },
        );
        push("level", self.level.to_string());
        push("threads", self.threads.to_string());
        push(
            "pg_bindir",
            self.pg_bindir
                .as_ref()
                .map_or("(search)".into(), |p| p.display().to_string()),
        );
        push(
            "pg_dump",
            self.pg_dump
                .as_ref()
                .map_or("(discover)".into(), |p| p.display().to_string()),
        );
        push("min_dump_bytes", self.min_dump_bytes.to_string());
        push(
            "log_format",
            match self.log_format {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            },
        );
        rows
    }

    /// True when the host names a Unix socket directory.
    pub fn host_is_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<&'static str, Raw>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (name, value) in table {
        let Some(k) = key(&name) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: name,
                known: KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
            });
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "key `{name}` must be a string or number, not {}",
                        other.type_str()
                    ),
                });
            }
        };
        out.insert(
            k.name,
            Raw {
                value,
                source: Source::File(path.to_path_buf()),
            },
        );
    }
    Ok(out)
}

/// Replace a `uri` entry of a layer by its parts; separate keys of the same layer win.
fn expand_uri(layer: &mut BTreeMap<&'static str, Raw>) -> Result<(), ConfigError> {
    let Some(raw) = layer.get("uri").cloned() else {
        return Ok(());
    };
    let parts = parse_uri(&raw.value).map_err(|message| ConfigError::Invalid {
        key: "uri",
        from: raw.source.clone(),
        message,
    })?;
    for (name, value) in parts {
        let k = key(name).expect("uri parts are declared keys");
        layer.entry(k.name).or_insert(Raw {
            value,
            source: Source::Uri(Box::new(raw.source.clone())),
        });
    }
    Ok(())
}

/// Parse `postgres[ql]://[user[:password]@][host][:port][/dbname][?param=value&...]`.
/// Errors never include the URI itself, which may hold a password.
pub fn parse_uri(uri: &str) -> Result<Vec<(&'static str, String)>, String> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .ok_or("the URI must start with postgresql:// or postgres://")?;
    let decode = |s: &str| -> Result<String, String> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "the URI holds percent-encoded bytes that are not UTF-8".to_string())
    };
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let mut out = Vec::new();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !u.is_empty() {
                out.push(("user", decode(u)?));
            }
            if let Some(p) = p {
                out.push(("password", decode(p)?));
            }
            hp
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let (h, p) = if let Some(stripped) = hostport.strip_prefix('[') {
            let (h, after) = stripped
                .split_once(']')
                .ok_or("the URI has an unclosed [ in its host")?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !h.is_empty() {
            out.push(("host", decode(h)?));
        }
        if let Some(p) = p.filter(|p| !p.is_empty()) {
            p.parse::<u16>()
                .map_err(|_| "the URI's port is not a number".to_string())?;
            out.push(("port", p.to_string()));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("database", decode(db)?));
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or("a URI parameter has no `=`")?;
            let v = decode(v)?;
            let name = match k {
                "host" => "host",
                "port" => "port",
                "user" => "user",
                "password" => "password",
                "dbname" => "database",
                "sslmode" => "sslmode",
                "sslrootcert" => "sslrootcert",
                "connect_timeout" => "connect_timeout",
                "passfile" => "passfile",
                "application_name" => continue,
                other => return Err(format!("unsupported URI parameter `{other}`")),
            };
            out.retain(|(n, _)| *n != name);
            out.push((name, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(env: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Inputs {
        Inputs {
            config_file: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: flags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    #[test]
    fn old_pod_variables_are_understood() {
        let s = Settings::load(&inputs(
            &[
                ("DATABASE_SERVICE_NAME", "postgresql"),
                ("POSTGRESQL_USER", "sbi"),
                ("POSTGRESQL_PASSWORD", "s3cr:et@"),
                ("POSTGRESQL_DATABASE", "sbidb"),
                ("BACKUP_DIR", "/backups/"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(s.host, "postgresql");
        assert_eq!(s.user, "sbi");
        assert_eq!(s.password.as_ref().unwrap().expose(), "s3cr:et@");
        assert_eq!(s.database, "sbidb");
        assert_eq!(s.backup_dir, PathBuf::from("/backups/"));
        assert_eq!(s.source("user"), Source::Env("POSTGRESQL_USER".into()));
    }

    #[test]
    fn precedence_pgkeep_then_seed_then_libpq_then_flags_win() {
        let s = Settings::load(&inputs(
            &[
                ("PGUSER", "libpq"),
                ("POSTGRESQL_USER", "seed"),
                ("PGHOST", "libpqhost"),
                ("PGKEEP_DATABASE", "mine"),
                ("POSTGRESQL_DATABASE", "seeddb"),
                ("PGPORT", "6543"),
            ],
            &[("host", "flaghost")],
        ))
        .unwrap();
        assert_eq!(s.user, "seed");
        assert_eq!(s.database, "mine");
        assert_eq!(s.host, "flaghost");
        assert_eq!(s.source("host"), Source::Flag("host".into()));
        assert_eq!(s.port, 6543);
    }

    #[test]
    fn uri_parts_fill_keys_below_separate_keys() {
        let s = Settings::load(&inputs(
            &[
                (
                    "PGKEEP_URI",
                    "postgresql://u%40x:p%3Aw%40d@db.example:5433/app%20db?sslmode=require",
                ),
                ("PGKEEP_PORT", "7000"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(s.user, "u@x");
        assert_eq!(s.password.unwrap().expose(), "p:w@d");
        assert_eq!(s.host, "db.example");
        assert_eq!(s.port, 7000);
        assert_eq!(s.database, "app db");
        assert_eq!(s.sslmode, SslMode::Require);
    }

    #[test]
    fn bad_values_name_the_key_and_source() {
        let e = Settings::load(&inputs(&[("PGPORT", "abc")], &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for port (from env PGPORT): `abc` is not a valid number"
        );
        let e = Settings::load(&inputs(&[], &[("compression", "lz5")])).unwrap_err();
        assert!(e.to_string().contains("--compression"), "{e}");
    }

    #[test]
    fn uri_errors_do_not_leak_the_uri() {
        let e =
            Settings::load(&inputs(&[("PGKEEP_URI", "mysql://u:hunter2@h/db")], &[])).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn file_layer_and_unknown_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgkeep.toml");
        std::fs::write(&f, "host = \"filehost\"\nport = 5999\nlevel = 9\n").unwrap();
        let mut i = inputs(&[("PGHOST", "envhost")], &[]);
        i.config_file = Some(f.clone());
        let s = Settings::load(&i).unwrap();
        assert_eq!(s.host, "envhost");
        assert_eq!(s.port, 5999);
        assert_eq!(s.level, 9);
        assert_eq!(s.source("port"), Source::File(f.clone()));

        std::fs::write(&f, "hots = \"x\"\n").unwrap();
        let e = Settings::load(&i).unwrap_err();
        assert!(e.to_string().contains("unknown key `hots`"), "{e}");
    }

    #[test]
    fn show_redacts_password() {
        let s = Settings::load(&inputs(&[("PGPASSWORD", "hunter2")], &[])).unwrap();
        let shown = format!("{:?}", s.show());
        assert!(!shown.contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
