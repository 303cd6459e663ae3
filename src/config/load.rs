//! Loading the settings: the layers defaults < TOML file < environment < flags (each with its
//! URI expanded into the keys it sets), then every key typed and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keys::{COMMAND_LIST_KEYS, KEYS, key};
use super::settings::{CheckSettings, LogFormat, MinFree, NotifySettings, Settings, WebhookFormat};
use super::source::{ConfigError, Inputs, Raw, Source};
use super::uri::parse_uri;
use super::values::{parse_bytes, parse_commands, parse_duration};
use crate::model::{Compression, Format, Secret, SslMode};

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
