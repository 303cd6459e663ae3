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

pub use crate::model::format::{Compression, Format};
pub use crate::model::secret::{Secret, redact_url};
pub use crate::model::tls::SslMode;

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

impl crate::exit::ExitCode for ConfigError {
    fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Read { .. }
            | ConfigError::Parse { .. }
            | ConfigError::UnknownKey { .. }
            | ConfigError::Invalid { .. } => crate::exit::USAGE,
        }
    }
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
        name: "admin_user",
        env: &["PGKEEP_ADMIN_USER"],
        secret: false,
        help: "role for restore (creates, renames, drops databases: needs CREATEDB or superuser); default: user",
    },
    Key {
        name: "admin_password",
        env: &["PGKEEP_ADMIN_PASSWORD"],
        secret: true,
        help: "password of admin_user (prefer admin_passfile)",
    },
    Key {
        name: "admin_passfile",
        env: &["PGKEEP_ADMIN_PASSFILE"],
        secret: false,
        help: "libpq password file for admin_user (default: passfile)",
    },
    Key {
        name: "pre_restore",
        env: &["PGKEEP_PRE_RESTORE"],
        secret: false,
        help: "commands run before a restore changes anything: TOML array of argument arrays (env: JSON), e.g. [[\"oc\",\"scale\",\"deployment/server\",\"--replicas=0\"]]",
    },
    Key {
        name: "post_restore",
        env: &["PGKEEP_POST_RESTORE"],
        secret: false,
        help: "commands run after a restore, even a failed one when pre_restore ran (same form as pre_restore)",
    },
    Key {
        name: "hook_timeout",
        env: &["PGKEEP_HOOK_TIMEOUT"],
        secret: false,
        help: "seconds each restore hook may run before it is stopped (default 300)",
    },
    Key {
        name: "log_format",
        env: &["PGKEEP_LOG_FORMAT"],
        secret: false,
        help: "text or json",
    },
    Key {
        name: "notify_webhook_url",
        env: &["PGKEEP_NOTIFY_WEBHOOK_URL"],
        secret: true,
        help: "webhook(s) that get a generic JSON event (space-separated list); URLs are treated as secrets",
    },
    Key {
        name: "notify_slack_url",
        env: &["PGKEEP_NOTIFY_SLACK_URL"],
        secret: true,
        help: "Slack incoming webhook(s) (space-separated list)",
    },
    Key {
        name: "notify_teams_url",
        env: &["PGKEEP_NOTIFY_TEAMS_URL"],
        secret: true,
        help: "Microsoft Teams workflow webhook(s), sent an Adaptive Card (space-separated list)",
    },
    Key {
        name: "notify_rocketchat_url",
        env: &["PGKEEP_NOTIFY_ROCKETCHAT_URL"],
        secret: true,
        help: "Rocket.Chat incoming webhook(s) (space-separated list)",
    },
    Key {
        name: "notify_deadman_url",
        env: &["PGKEEP_NOTIFY_DEADMAN_URL"],
        secret: true,
        help: "dead-man switch (healthchecks.io style) pinged after every successful backup",
    },
    Key {
        name: "notify_on",
        env: &["PGKEEP_NOTIFY_ON"],
        secret: false,
        help: "failure (default: only failures are posted) or always (successes too)",
    },
    Key {
        name: "notify_timeout",
        env: &["PGKEEP_NOTIFY_TIMEOUT"],
        secret: false,
        help: "seconds one notification request may take (default 10)",
    },
    Key {
        name: "notify_retries",
        env: &["PGKEEP_NOTIFY_RETRIES"],
        secret: false,
        help: "retries of a failed notification (default 2)",
    },
    Key {
        name: "notify_proxy",
        env: &["PGKEEP_NOTIFY_PROXY"],
        secret: true,
        help: "HTTP(S) proxy for notifications, e.g. http://proxy:3128",
    },
    Key {
        name: "check_max_age",
        env: &["PGKEEP_CHECK_MAX_AGE"],
        secret: false,
        help: "`pgkeep check`: the newest good backup must be younger than this (default 26h; units s m h d w)",
    },
    Key {
        name: "check_min_size_ratio",
        env: &["PGKEEP_CHECK_MIN_SIZE_RATIO"],
        secret: false,
        help: "`pgkeep check`: the newest backup must be at least this fraction of the one before (default 0.5; 0 disables)",
    },
    Key {
        name: "check_verify_max_age",
        env: &["PGKEEP_CHECK_VERIFY_MAX_AGE"],
        secret: false,
        help: "`pgkeep check`: a verification must have succeeded within this time (default 8d; 0 disables)",
    },
    Key {
        name: "check_min_free",
        env: &["PGKEEP_CHECK_MIN_FREE"],
        secret: false,
        help: "`pgkeep check`: least free space in the backup directory, bytes with K/M/G/T suffix (default auto: twice the newest backup; 0 disables)",
    },
    Key {
        name: "schedule",
        env: &["PGKEEP_SCHEDULE"],
        secret: false,
        help: "cron expression for `pgkeep run` (5 fields, or 6 with seconds; @daily..); default `0 1 * * *`",
    },
    Key {
        name: "verify_schedule",
        env: &["PGKEEP_VERIFY_SCHEDULE"],
        secret: false,
        help: "cron expression (in `timezone`) at which `pgkeep run` verifies the newest backup; unset: off",
    },
    Key {
        name: "backup_period",
        env: &["PGKEEP_BACKUP_PERIOD", "BACKUP_PERIOD"],
        secret: false,
        help: "run every interval instead of a cron schedule (1d, 12h, 90m, seconds)",
    },
    Key {
        name: "timezone",
        env: &["PGKEEP_TIMEZONE", "TZ"],
        secret: false,
        help: "time zone of the schedule and of retention days (IANA name); default: the system zone",
    },
    Key {
        name: "keep_days",
        env: &["PGKEEP_KEEP_DAYS"],
        secret: false,
        help: "keep backups up to N days older than the newest good backup (default 10; 0 off)",
    },
    Key {
        name: "keep_last",
        env: &["PGKEEP_KEEP_LAST"],
        secret: false,
        help: "never cull the newest N good backups (default 3)",
    },
    Key {
        name: "keep_daily",
        env: &["PGKEEP_KEEP_DAILY"],
        secret: false,
        help: "keep the newest backup of each of the last N days (default 0, off)",
    },
    Key {
        name: "keep_weekly",
        env: &["PGKEEP_KEEP_WEEKLY"],
        secret: false,
        help: "keep the newest backup of each of the last N ISO weeks (default 0, off)",
    },
    Key {
        name: "keep_monthly",
        env: &["PGKEEP_KEEP_MONTHLY"],
        secret: false,
        help: "keep the newest backup of each of the last N months (default 0, off)",
    },
    Key {
        name: "partial_max_age",
        env: &["PGKEEP_PARTIAL_MAX_AGE"],
        secret: false,
        help: "age after which leftover *.partial files are removed by culling (default 24h)",
    },
    Key {
        name: "listen",
        env: &["PGKEEP_LISTEN"],
        secret: false,
        help: "address of the HTTP API of `pgkeep run` (default 0.0.0.0:8080)",
    },
    Key {
        name: "api_token",
        env: &["PGKEEP_API_TOKEN"],
        secret: true,
        help: "bearer token of the HTTP API; without it the mutating endpoints are off",
    },
    Key {
        name: "shutdown_grace",
        env: &["PGKEEP_SHUTDOWN_GRACE"],
        secret: false,
        help: "on SIGTERM, how long a running backup may take to finish before it is aborted (default 25s)",
    },
];

/// Keys whose value is a list of commands (TOML arrays of string arrays); kept as JSON text in
/// the raw layer so every layer (file, env, flags) carries them the same way.
const COMMAND_LIST_KEYS: &[&str] = &["pre_restore", "post_restore"];

fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
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
    /// When `pgkeep run` backs up.
    pub schedule: crate::model::schedule::Schedule,
    /// When `pgkeep run` verifies the newest backup (`None`: never).
    pub verify_schedule: Option<crate::model::schedule::Schedule>,
    pub timezone: jiff::tz::TimeZone,
    /// The time zone as configured (or `system (<name>)`).
    pub timezone_name: String,
    pub policy: crate::model::Policy,
    pub partial_max_age: std::time::Duration,
    pub listen: std::net::SocketAddr,
    pub api_token: Option<Secret>,
    pub shutdown_grace: std::time::Duration,
    /// Role for restores (`None`: the backup user).
    pub admin_user: Option<String>,
    pub admin_password: Option<Secret>,
    pub admin_passfile: Option<PathBuf>,
    /// Restore hooks: argument lists, run without a shell.
    pub pre_restore: Vec<Vec<String>>,
    pub post_restore: Vec<Vec<String>>,
    pub hook_timeout: u64,
    pub notify: NotifySettings,
    pub check: CheckSettings,
}

/// The payload format a webhook expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Generic,
    Slack,
    Teams,
    RocketChat,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Generic => "generic",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Teams => "teams",
            WebhookFormat::RocketChat => "rocketchat",
        }
    }
}

/// Where and when to send notifications. URLs may hold tokens: they are secrets.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    pub webhooks: Vec<(WebhookFormat, Secret)>,
    pub deadman_url: Option<Secret>,
    /// Post successes too, not only failures.
    pub on_success: bool,
    pub timeout: std::time::Duration,
    pub retries: u32,
    pub proxy: Option<Secret>,
}

/// Thresholds of `pgkeep check`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSettings {
    pub max_age: std::time::Duration,
    /// 0 disables the shrink check.
    pub min_size_ratio: f64,
    /// `None` disables the verification age check.
    pub verify_max_age: Option<std::time::Duration>,
    pub min_free: MinFree,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinFree {
    Off,
    /// Twice the newest backup's size.
    Auto,
    Bytes(u64),
}

/// Parse `90`, `90s`, `15m`, `26h`, `8d`, `2w`, or a sum like `1d12h`.
pub fn parse_duration(v: &str) -> Result<std::time::Duration, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a duration (e.g. 90s, 15m, 26h, 8d, 1d12h)");
    if t.is_empty() {
        return Err(bad());
    }
    let mut secs: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        secs = n
            .checked_mul(unit)
            .and_then(|x| secs.checked_add(x))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        secs = secs
            .checked_add(num.parse::<u64>().map_err(|_| bad())?)
            .ok_or_else(bad)?;
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Parse `1073741824`, `500M`, `10G`, `1.5GiB` (powers of 1024).
pub fn parse_bytes(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a size (e.g. 500M, 10G)");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    Ok((n * mult as f64) as u64)
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
        let commands = |k: &'static str| -> Result<Vec<Vec<String>>, ConfigError> {
            match get(k) {
                None => Ok(Vec::new()),
                Some(r) => parse_commands(&r.value).map_err(|m| invalid(k, m)),
            }
        };
        let pre_restore = commands("pre_restore")?;
        let post_restore = commands("post_restore")?;
        let hook_timeout = match get("hook_timeout") {
            Some(r) => parse_num::<u64>(&r.value).map_err(|m| invalid("hook_timeout", m))?,
            None => 300,
        };
        if hook_timeout == 0 {
            return Err(invalid("hook_timeout", "0 is not a valid timeout".into()));
        }

        let mut webhooks = Vec::new();
        for (k, format) in [
            ("notify_webhook_url", WebhookFormat::Generic),
            ("notify_slack_url", WebhookFormat::Slack),
            ("notify_teams_url", WebhookFormat::Teams),
            ("notify_rocketchat_url", WebhookFormat::RocketChat),
        ] {
            if let Some(r) = get(k) {
                for url in r.value.split_whitespace() {
                    check_url(url).map_err(|m| invalid(k, m))?;
                    webhooks.push((format, Secret::new(url)));
                }
            }
        }
        let deadman_url = match get("notify_deadman_url") {
            Some(r) if !r.value.trim().is_empty() => {
                check_url(r.value.trim()).map_err(|m| invalid("notify_deadman_url", m))?;
                Some(Secret::new(r.value.trim()))
            }
            _ => None,
        };
        let on_success = match string("notify_on", "failure").as_str() {
            "failure" | "failures" => false,
            "always" | "all" => true,
            other => {
                return Err(invalid(
                    "notify_on",
                    format!("`{other}` is not one of failure, always"),
                ));
            }
        };
        let notify_timeout = match get("notify_timeout") {
            Some(r) => parse_num::<u64>(&r.value).map_err(|m| invalid("notify_timeout", m))?,
            None => 10,
        };
        if notify_timeout == 0 {
            return Err(invalid("notify_timeout", "0 is not a timeout".into()));
        }
        let notify_retries = match get("notify_retries") {
            Some(r) => parse_num::<u32>(&r.value).map_err(|m| invalid("notify_retries", m))?,
            None => 2,
        };
        if notify_retries > 10 {
            return Err(invalid("notify_retries", "at most 10 retries".into()));
        }
        let proxy = match get("notify_proxy") {
            Some(r) if !r.value.trim().is_empty() => {
                check_url(r.value.trim()).map_err(|m| invalid("notify_proxy", m))?;
                Some(Secret::new(r.value.trim()))
            }
            _ => None,
        };
        let notify = NotifySettings {
            webhooks,
            deadman_url,
            on_success,
            timeout: std::time::Duration::from_secs(notify_timeout),
            retries: notify_retries,
            proxy,
        };

        let duration = |k: &'static str, default: &str| {
            parse_duration(&string(k, default)).map_err(|m| invalid(k, m))
        };
        let max_age = duration("check_max_age", "26h")?;
        if max_age.is_zero() {
            return Err(invalid("check_max_age", "0 is not an age".into()));
        }
        let verify_max_age = duration("check_verify_max_age", "8d")?;
        let min_size_ratio = match get("check_min_size_ratio") {
            Some(r) => {
                parse_num::<f64>(&r.value).map_err(|m| invalid("check_min_size_ratio", m))?
            }
            None => 0.5,
        };
        if !(0.0..=1.0).contains(&min_size_ratio) {
            return Err(invalid(
                "check_min_size_ratio",
                format!("{min_size_ratio} is not between 0 and 1"),
            ));
        }
        let min_free = match string("check_min_free", "auto").trim() {
            "auto" => MinFree::Auto,
            "0" | "off" => MinFree::Off,
            other => MinFree::Bytes(parse_bytes(other).map_err(|m| invalid("check_min_free", m))?),
        };
        let check = CheckSettings {
            max_age,
            min_size_ratio,
            verify_max_age: (!verify_max_age.is_zero()).then_some(verify_max_age),
            min_free,
        };

        use crate::model::schedule::{self, Schedule};
        let (timezone, timezone_name) = match get("timezone") {
            Some(r) => (
                schedule::parse_tz(&r.value).map_err(|m| invalid("timezone", m))?,
                r.value.trim().trim_start_matches(':').to_string(),
            ),
            None => match jiff::tz::TimeZone::try_system() {
                Ok(tz) => {
                    let name = tz.iana_name().unwrap_or("local").to_string();
                    (tz, format!("system ({name})"))
                }
                Err(_) => (jiff::tz::TimeZone::UTC, "UTC".to_string()),
            },
        };
        let rank = |src: &Source| match src {
            Source::Flag(_) => 3,
            Source::Env(_) => 2,
            Source::Uri(_) | Source::File(_) => 1,
            Source::Default => 0,
        };
        let schedule = match (get("schedule"), get("backup_period")) {
            (Some(c), Some(p)) if rank(&c.source) == rank(&p.source) => {
                return Err(invalid(
                    "schedule",
                    format!(
                        "both a cron schedule and backup_period (from {}) are set; set only one",
                        p.source
                    ),
                ));
            }
            (Some(c), Some(p)) if rank(&p.source) > rank(&c.source) => {
                Schedule::every(&p.value).map_err(|m| invalid("backup_period", m))?
            }
            (None, Some(p)) => {
                Schedule::every(&p.value).map_err(|m| invalid("backup_period", m))?
            }
            (c, _) => {
                let expr = c.map_or(schedule::DEFAULT_CRON, |r| r.value.as_str());
                Schedule::cron(expr, timezone.clone(), &timezone_name)
                    .map_err(|m| invalid("schedule", m))?
            }
        };
        let verify_schedule = match get("verify_schedule") {
            Some(r) if !r.value.trim().is_empty() => Some(
                Schedule::cron(&r.value, timezone.clone(), &timezone_name)
                    .map_err(|m| invalid("verify_schedule", m))?,
            ),
            _ => None,
        };
        let count = |k: &'static str, default: u32| -> Result<u32, ConfigError> {
            match get(k) {
                Some(r) => parse_num::<u32>(&r.value).map_err(|m| invalid(k, m)),
                None => Ok(default),
            }
        };
        let defaults = crate::model::Policy::default();
        let policy = crate::model::Policy {
            keep_days: count("keep_days", defaults.keep_days)?,
            keep_last: count("keep_last", defaults.keep_last)?,
            keep_daily: count("keep_daily", defaults.keep_daily)?,
            keep_weekly: count("keep_weekly", defaults.keep_weekly)?,
            keep_monthly: count("keep_monthly", defaults.keep_monthly)?,
        };
        let duration =
            |k: &'static str, default: &str| -> Result<std::time::Duration, ConfigError> {
                let text = get(k).map_or(default, |r| r.value.as_str());
                if text.trim() == "0" {
                    return Ok(std::time::Duration::ZERO);
                }
                let d = schedule::parse_period(text).map_err(|m| invalid(k, m))?;
                Ok(d.unsigned_abs())
            };
        let partial_max_age = duration("partial_max_age", "24h")?;
        if partial_max_age < std::time::Duration::from_secs(60) {
            return Err(invalid(
                "partial_max_age",
                "must be at least 1 minute, so that a backup in progress is never removed".into(),
            ));
        }
        let shutdown_grace = duration("shutdown_grace", "25s")?;
        let listen_text = string("listen", "0.0.0.0:8080");
        let listen = listen_text
            .trim()
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                invalid(
                    "listen",
                    format!("`{listen_text}` is not an address:port such as 0.0.0.0:8080"),
                )
            })?;
        let api_token = match get("api_token") {
            Some(r) if r.value.trim().is_empty() => None,
            Some(r) => Some(Secret::new(r.value.trim().to_string())),
            None => None,
        };

        Ok(Settings {
            schedule,
            verify_schedule,
            timezone,
            timezone_name,
            policy,
            partial_max_age,
            listen,
            api_token,
            shutdown_grace,
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
            notify,
            check,
            admin_user: get("admin_user").map(|r| r.value.clone()),
            admin_password: get("admin_password").map(|r| Secret::new(r.value.clone())),
            admin_passfile: path("admin_passfile"),
            pre_restore,
            post_restore,
            hook_timeout,
            values,
        })
    }

    /// The database a command works on: the one named by its flag, else the configured one.
    pub fn database_or(&self, flag: &Option<String>) -> String {
        flag.clone().unwrap_or_else(|| self.database.clone())
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
        for (k, format) in [
            ("notify_webhook_url", WebhookFormat::Generic),
            ("notify_slack_url", WebhookFormat::Slack),
            ("notify_teams_url", WebhookFormat::Teams),
            ("notify_rocketchat_url", WebhookFormat::RocketChat),
        ] {
            let urls: Vec<String> = self
                .notify
                .webhooks
                .iter()
                .filter(|(f, _)| *f == format)
                .map(|(_, u)| redact_url(u.expose()))
                .collect();
            push(
                k,
                if urls.is_empty() {
                    "(not set)".into()
                } else {
                    urls.join(" ")
                },
            );
        }
        let opt_url = |u: &Option<Secret>| {
            u.as_ref()
                .map_or("(not set)".into(), |u| redact_url(u.expose()))
        };
        push("notify_deadman_url", opt_url(&self.notify.deadman_url));
        push(
            "notify_on",
            if self.notify.on_success {
                "always".into()
            } else {
                "failure".into()
            },
        );
        push(
            "notify_timeout",
            format!("{}s", self.notify.timeout.as_secs()),
        );
        push("notify_retries", self.notify.retries.to_string());
        push("notify_proxy", opt_url(&self.notify.proxy));
        push(
            "check_max_age",
            format!("{}s", self.check.max_age.as_secs()),
        );
        push(
            "check_min_size_ratio",
            self.check.min_size_ratio.to_string(),
        );
        push(
            "check_verify_max_age",
            self.check
                .verify_max_age
                .map_or("off".into(), |d| format!("{}s", d.as_secs())),
        );
        push(
            "check_min_free",
            match self.check.min_free {
                MinFree::Off => "off".into(),
                MinFree::Auto => "auto (twice the newest backup)".into(),
                MinFree::Bytes(n) => n.to_string(),
            },
        );
        let sched = self.schedule.describe();
        match &self.schedule {
            crate::model::schedule::Schedule::Cron { .. } => {
                push("schedule", sched);
                push("backup_period", "(not set)".into());
            }
            crate::model::schedule::Schedule::Every { .. } => {
                push("schedule", "(interval)".into());
                push("backup_period", sched);
            }
        }
        push(
            "verify_schedule",
            self.verify_schedule
                .as_ref()
                .map_or("(off)".into(), |s| s.describe()),
        );
        push("timezone", self.timezone_name.clone());
        push("keep_days", self.policy.keep_days.to_string());
        push("keep_last", self.policy.keep_last.to_string());
        push("keep_daily", self.policy.keep_daily.to_string());
        push("keep_weekly", self.policy.keep_weekly.to_string());
        push("keep_monthly", self.policy.keep_monthly.to_string());
        push(
            "partial_max_age",
            format!("{}s", self.partial_max_age.as_secs()),
        );
        push("listen", self.listen.to_string());
        push(
            "api_token",
            match &self.api_token {
                Some(_) => "<redacted>".into(),
                None => "(not set: mutating API endpoints off)".into(),
            },
        );
        push(
            "shutdown_grace",
            format!("{}s", self.shutdown_grace.as_secs()),
        );
        push(
            "admin_user",
            self.admin_user
                .clone()
                .unwrap_or_else(|| format!("(user: {})", self.user)),
        );
        push(
            "admin_password",
            match &self.admin_password {
                Some(_) => "<redacted>".into(),
                None => "(not set)".into(),
            },
        );
        push(
            "admin_passfile",
            self.admin_passfile
                .as_ref()
                .map_or("(not set)".into(), |p| p.display().to_string()),
        );
        let show_cmds = |c: &Vec<Vec<String>>| {
            if c.is_empty() {
                "(none)".to_string()
            } else {
                serde_json::to_string(c).unwrap_or_default()
            }
        };
        push("pre_restore", show_cmds(&self.pre_restore));
        push("post_restore", show_cmds(&self.post_restore));
        push("hook_timeout", self.hook_timeout.to_string());
        rows
    }

    /// True when the host names a Unix socket directory.
    pub fn host_is_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

/// A URL pgkeep may post to; the message never repeats the URL (it may hold a token).
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the URL must start with https:// or http://")?;
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(())
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
            toml::Value::Array(a) if COMMAND_LIST_KEYS.contains(&k.name) => {
                serde_json::to_string(&toml::Value::Array(a)).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!("key `{name}`: {e}"),
                })?
            }
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

/// Parse a list of commands from JSON: `[["oc", "scale", "deployment/x", "--replicas=0"], ...]`.
pub fn parse_commands(text: &str) -> Result<Vec<Vec<String>>, String> {
    const SHAPE: &str = "expected a list of commands, each a list of strings, e.g. [[\"oc\", \"scale\", \"deployment/server\", \"--replicas=0\"]]";
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e}); {SHAPE}"))?;
    let outer = v.as_array().ok_or_else(|| SHAPE.to_string())?;
    let mut out = Vec::new();
    for (i, cmd) in outer.iter().enumerate() {
        let argv = cmd
            .as_array()
            .ok_or_else(|| format!("command {} is not a list; {SHAPE}", i + 1))?;
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("command {} holds a non-string argument; {SHAPE}", i + 1))?;
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(format!("command {} has no program; {SHAPE}", i + 1));
        }
        out.push(argv);
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
    fn notify_and_check_keys() {
        let s = Settings::load(&inputs(
            &[
                (
                    "PGKEEP_NOTIFY_SLACK_URL",
                    "https://hooks.slack.com/services/T0/B0/tok3n https://second.example/x",
                ),
                (
                    "PGKEEP_NOTIFY_TEAMS_URL",
                    "https://teams.example/wf?sig=sekr1t",
                ),
                (
                    "PGKEEP_NOTIFY_DEADMAN_URL",
                    "https://hc-ping.com/uuid-s3cret",
                ),
                ("PGKEEP_NOTIFY_ON", "always"),
                ("PGKEEP_CHECK_MAX_AGE", "1d12h"),
                ("PGKEEP_CHECK_VERIFY_MAX_AGE", "0"),
                ("PGKEEP_CHECK_MIN_FREE", "1.5G"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(s.notify.webhooks.len(), 3);
        assert!(s.notify.on_success);
        assert_eq!(s.check.max_age.as_secs(), 36 * 3600);
        assert_eq!(s.check.verify_max_age, None);
        assert_eq!(s.check.min_free, MinFree::Bytes(1610612736));
        let shown = format!("{:?} {s:?}", s.show());
        for secret in ["tok3n", "sekr1t", "s3cret"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(
            shown.contains("https://hooks.slack.com/<redacted>"),
            "{shown}"
        );
        let e = Settings::load(&inputs(
            &[("PGKEEP_NOTIFY_WEBHOOK_URL", "ftp://h/t0ken")],
            &[],
        ))
        .unwrap_err();
        assert!(!e.to_string().contains("t0ken"), "{e}");
        assert!(Settings::load(&inputs(&[("PGKEEP_CHECK_MAX_AGE", "soon")], &[])).is_err());
        assert!(Settings::load(&inputs(&[("PGKEEP_CHECK_MIN_SIZE_RATIO", "2")], &[])).is_err());
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86400);
        assert_eq!(parse_bytes("10MiB").unwrap(), 10 << 20);
    }

    #[test]
    fn hooks_from_toml_arrays_and_json_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgkeep.toml");
        std::fs::write(
            &f,
            "pre_restore = [[\"oc\", \"scale\", \"deployment/server\", \"--replicas=0\"], [\"sleep\", \"1\"]]\nhook_timeout = 30\n",
        )
        .unwrap();
        let mut i = inputs(
            &[(
                "PGKEEP_POST_RESTORE",
                r#"[["oc","scale","deployment/server","--replicas=1"]]"#,
            )],
            &[],
        );
        i.config_file = Some(f.clone());
        let s = Settings::load(&i).unwrap();
        assert_eq!(
            s.pre_restore,
            vec![
                vec!["oc", "scale", "deployment/server", "--replicas=0"],
                vec!["sleep", "1"]
            ]
        );
        assert_eq!(s.post_restore[0][3], "--replicas=1");
        assert_eq!(s.hook_timeout, 30);

        // A flat list is a mistake (one command split into several?): refused with the shape.
        std::fs::write(&f, "pre_restore = [\"oc\", \"scale\"]\n").unwrap();
        let e = Settings::load(&i).unwrap_err().to_string();
        assert!(
            e.contains("pre_restore") && e.contains("each a list of strings"),
            "{e}"
        );
        // Arrays stay refused for scalar keys.
        std::fs::write(&f, "host = [\"a\"]\n").unwrap();
        assert!(Settings::load(&i).is_err());
        let e = Settings::load(&inputs(&[("PGKEEP_PRE_RESTORE", "[[]]")], &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no program"), "{e}");
    }

    #[test]
    fn admin_password_is_secret() {
        let s = Settings::load(&inputs(
            &[
                ("PGKEEP_ADMIN_USER", "boss"),
                ("PGKEEP_ADMIN_PASSWORD", "hunter3"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(s.admin_user.as_deref(), Some("boss"));
        assert!(!format!("{:?}", s.show()).contains("hunter3"));
        assert!(!format!("{s:?}").contains("hunter3"));
    }

    #[test]
    fn show_redacts_password() {
        let s = Settings::load(&inputs(&[("PGPASSWORD", "hunter2")], &[])).unwrap();
        let shown = format!("{:?}", s.show());
        assert!(!shown.contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn verify_schedule_is_a_cron_in_the_zone_or_off() {
        let s = Settings::load(&inputs(&[("TZ", "Europe/Berlin")], &[])).unwrap();
        assert!(s.verify_schedule.is_none());
        let s = Settings::load(&inputs(
            &[
                ("TZ", "Europe/Berlin"),
                ("PGKEEP_VERIFY_SCHEDULE", "30 4 * * *"),
            ],
            &[],
        ))
        .unwrap();
        let v = s.verify_schedule.as_ref().expect("a verify schedule");
        // 04:30 in Berlin (winter) is 03:30 UTC.
        assert_eq!(
            v.next_after("2026-11-25T00:00:00Z".parse().unwrap()),
            Some("2026-11-25T03:30:00Z".parse().unwrap())
        );
        let shown = format!("{:?}", s.show());
        assert!(shown.contains("30 4 * * *"), "{shown}");
        let e = Settings::load(&inputs(&[("PGKEEP_VERIFY_SCHEDULE", "61 4 * * *")], &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("verify_schedule"), "{e}");
    }

    #[test]
    fn daemon_keys() {
        use crate::model::schedule::Schedule;
        let s = Settings::load(&inputs(
            &[
                ("BACKUP_PERIOD", "12h"),
                ("PGKEEP_API_TOKEN", "tok-hunter2"),
                ("PGKEEP_KEEP_DAYS", "7"),
                ("TZ", "Europe/Berlin"),
            ],
            &[],
        ))
        .unwrap();
        assert!(matches!(s.schedule, Schedule::Every { .. }));
        assert_eq!(s.policy.keep_days, 7);
        assert_eq!(s.policy.keep_last, 3);
        assert_eq!(s.timezone_name, "Europe/Berlin");
        assert_eq!(s.listen.to_string(), "0.0.0.0:8080");
        let shown = format!("{:?} {s:?}", s.show());
        assert!(!shown.contains("tok-hunter2"), "{shown}");

        // A flag schedule beats the old pod's BACKUP_PERIOD; the same layer twice is refused.
        let s = Settings::load(&inputs(
            &[("BACKUP_PERIOD", "1d")],
            &[("schedule", "0 3 * * *")],
        ))
        .unwrap();
        assert!(matches!(s.schedule, Schedule::Cron { .. }));
        let e = Settings::load(&inputs(
            &[("BACKUP_PERIOD", "1d"), ("PGKEEP_SCHEDULE", "0 3 * * *")],
            &[],
        ))
        .unwrap_err();
        assert!(e.to_string().contains("set only one"), "{e}");
        let e = Settings::load(&inputs(&[("PGKEEP_SCHEDULE", "every day")], &[])).unwrap_err();
        assert!(e.to_string().contains("PGKEEP_SCHEDULE"), "{e}");
        let e = Settings::load(&inputs(&[("PGKEEP_LISTEN", "8080")], &[])).unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let e = Settings::load(&inputs(&[("PGKEEP_PARTIAL_MAX_AGE", "5s")], &[])).unwrap_err();
        assert!(e.to_string().contains("partial_max_age"), "{e}");
    }
}
