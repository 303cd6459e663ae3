//! Every key parsed by its kind (raw value, else its default), and the typed setting groups built
//! from them with the rules that tie keys together: the level's range by format and compression,
//! a cron schedule against `backup_period`, the API token's alphabet. Values worked out from other
//! keys are recorded so that `config show` displays what is in effect.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::keys::{Default, KEYS};
use super::kind::Value;
use super::settings::{CheckSettings, LogFormat, MinFree, NotifySettings, WebhookFormat};
use super::source::{ConfigError, Raw, Source};
use super::values::show_duration;
use crate::model::age::{AgeIdentities, AgeRecipients};
use crate::model::schedule::{self, Schedule};
use crate::model::{Compression, Format, Policy, S3Options, Secret};

/// The parsed value of every key, beside the raw layers they came from.
pub(super) struct Typed<'a> {
    raw: &'a BTreeMap<&'static str, Raw>,
    values: BTreeMap<&'static str, Value>,
}

/// Format, compression, level and threads, checked together.
pub(super) struct Dump {
    pub format: Format,
    pub compression: Compression,
    pub level: i32,
    pub threads: usize,
}

type Schedules = (Schedule, Option<Schedule>, jiff::tz::TimeZone, String);

impl<'a> Typed<'a> {
    /// Parse every key: its raw value when a layer set it, else its default.
    pub fn parse(raw: &'a BTreeMap<&'static str, Raw>) -> Result<Typed<'a>, ConfigError> {
        let mut t = Typed {
            raw,
            values: BTreeMap::new(),
        };
        for k in KEYS {
            let value = match (raw.get(k.name), k.default) {
                (Some(r), Default::Unset(_)) if r.value.trim().is_empty() => Value::Unset,
                (Some(r), _) => k.kind.parse(&r.value).map_err(|m| t.invalid(k.name, m))?,
                (None, Default::Value(text)) => {
                    k.kind.parse(text).map_err(|m| t.invalid(k.name, m))?
                }
                (None, _) => Value::Unset,
            };
            t.values.insert(k.name, value);
        }
        Ok(t)
    }

    /// The error for a bad value of `k`, naming where it came from.
    pub fn invalid(&self, k: &'static str, message: String) -> ConfigError {
        ConfigError::Invalid {
            key: k,
            from: self.source(k),
            message,
        }
    }

    fn source(&self, k: &str) -> Source {
        self.raw
            .get(k)
            .map_or(Source::Default, |r| r.source.clone())
    }

    fn get(&self, k: &'static str) -> &Value {
        self.values.get(k).expect("every key is parsed")
    }

    /// Record the value in effect for a key whose value was worked out.
    pub fn resolve(&mut self, k: &'static str, v: Value) {
        self.values.insert(k, v);
    }

    pub fn resolve_text(&mut self, k: &'static str, shown: &str) {
        self.resolve(k, Value::Shown(shown.to_string()));
    }

    pub fn opt_text(&self, k: &'static str) -> Option<String> {
        self.get(k).text().map(str::to_string)
    }

    pub fn text(&self, k: &'static str) -> String {
        self.opt_text(k).unwrap_or_default()
    }

    pub fn path(&self, k: &'static str) -> Option<PathBuf> {
        self.get(k).path()
    }

    pub fn int(&self, k: &'static str) -> i64 {
        self.get(k).int().unwrap_or_default()
    }

    pub fn duration(&self, k: &'static str) -> Duration {
        self.get(k).duration().unwrap_or_default()
    }

    pub fn addr(&self, k: &'static str) -> std::net::SocketAddr {
        match self.get(k) {
            Value::Addr(a) => *a,
            _ => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    pub fn commands(&self, k: &'static str) -> Vec<Vec<String>> {
        match self.get(k) {
            Value::Commands(c) => c.clone(),
            _ => Vec::new(),
        }
    }

    /// The `databases` set (`None`: one database, `database`) and the exclusions.
    pub fn database_set(
        &self,
    ) -> Result<(Option<crate::model::DatabaseSet>, Vec<String>), ConfigError> {
        let set = match self.get("databases") {
            Value::List(l) => Some(
                crate::model::DatabaseSet::parse(l).map_err(|m| self.invalid("databases", m))?,
            ),
            _ => None,
        };
        Ok((set, self.list("exclude_databases")))
    }

    /// `database_schedules`: each `NAME=CRON` entry parsed in `timezone`; only with a
    /// `databases` set, each database once.
    pub fn database_schedules(
        &mut self,
        timezone: &jiff::tz::TimeZone,
        timezone_name: &str,
        set: &Option<crate::model::DatabaseSet>,
    ) -> Result<Vec<(String, Schedule)>, ConfigError> {
        let k = "database_schedules";
        let entries = self.list(k);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if set.is_none() {
            return Err(self.invalid(
                k,
                "per-database schedules need a `databases` set (the one database runs on `schedule`)".into(),
            ));
        }
        let mut out: Vec<(String, Schedule)> = Vec::new();
        for e in &entries {
            // Cron expressions hold no `=`: the last one ends the name.
            let Some((name, cron)) = e.rsplit_once('=').filter(|(n, _)| !n.trim().is_empty())
            else {
                return Err(self.invalid(k, format!("`{e}` is not NAME=CRON")));
            };
            let name = name.trim().to_string();
            if out.iter().any(|(n, _)| *n == name) {
                return Err(self.invalid(k, format!("database \"{name}\" has two schedules")));
            }
            let s = Schedule::cron(cron.trim(), timezone.clone(), timezone_name)
                .map_err(|m| self.invalid(k, format!("database \"{name}\": {m}")))?;
            out.push((name, s));
        }
        let shown: Vec<String> = out
            .iter()
            .map(|(n, s)| format!("{n}={}", s.describe()))
            .collect();
        self.resolve_text(k, &shown.join(", "));
        Ok(out)
    }

    fn list(&self, k: &'static str) -> Vec<String> {
        match self.get(k) {
            Value::List(l) => l.clone(),
            _ => Vec::new(),
        }
    }

    /// Every key in table order with the value in effect as `config show` displays it.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        KEYS.iter()
            .map(|k| {
                let v = self.get(k.name);
                let shown = match (v, k.default) {
                    (Value::Unset, Default::Unset(d) | Default::Derived(d)) => format!("({d})"),
                    _ => k.kind.display(v, k.secret),
                };
                (k.name, shown)
            })
            .collect()
    }

    /// Format, compression, level and threads; the level is checked against the range of the
    /// format and compression it goes with.
    pub fn dump(&mut self) -> Result<Dump, ConfigError> {
        let format = match self.text("format").as_str() {
            "custom" => Format::Custom,
            _ => Format::Plain,
        };
        let compression = match self.text("compression").as_str() {
            "zstd" => Compression::Zstd,
            "none" => Compression::None,
            _ => Compression::Gzip,
        };
        let range = match (format, compression) {
            (Format::Custom, Compression::Gzip) => 0..=9,
            (Format::Custom, Compression::Zstd) => 1..=22,
            (_, Compression::Gzip) => 1..=12,
            (_, Compression::Zstd) => 1..=19,
            (_, Compression::None) => 0..=0,
        };
        let level = match self.get("level").int() {
            Some(l) if !range.contains(&l) => {
                return Err(self.invalid(
                    "level",
                    format!(
                        "{l} is out of range {}-{} for this format and compression",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            Some(l) => l as i32,
            None => compression.default_level(),
        };
        self.resolve("level", Value::Int(level.into()));
        let threads = match self.get("threads").int() {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        self.resolve("threads", Value::Int(threads as i64));
        Ok(Dump {
            format,
            compression,
            level,
            threads,
        })
    }

    /// `restore_jobs`: as configured, else the local cores capped at 4 (no SQL tells the
    /// server's cores).
    pub fn restore_jobs(&mut self) -> usize {
        let jobs = match self.get("restore_jobs").int() {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        };
        self.resolve("restore_jobs", Value::Int(jobs as i64));
        jobs
    }

    pub fn log_format(&self) -> LogFormat {
        match self.text("log_format").as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }

    pub fn notify(&self) -> NotifySettings {
        let mut webhooks = Vec::new();
        for (k, format) in [
            ("notify_webhook_url", WebhookFormat::Generic),
            ("notify_slack_url", WebhookFormat::Slack),
            ("notify_teams_url", WebhookFormat::Teams),
            ("notify_rocketchat_url", WebhookFormat::RocketChat),
        ] {
            for url in self.list(k) {
                webhooks.push((format, Secret::new(url)));
            }
        }
        NotifySettings {
            webhooks,
            deadman_url: self.opt_text("notify_deadman_url").map(Secret::new),
            on_success: self.text("notify_on") == "always",
            timeout: self.duration("notify_timeout"),
            retries: self.int("notify_retries") as u32,
            proxy: self.opt_text("notify_proxy").map(Secret::new),
        }
    }

    pub fn check(&self) -> CheckSettings {
        let verify_max_age = self.duration("check_verify_max_age");
        CheckSettings {
            max_age: self.duration("check_max_age"),
            min_size_ratio: match self.get("check_min_size_ratio") {
                Value::Float(r) => *r,
                _ => 0.5,
            },
            verify_max_age: (!verify_max_age.is_zero()).then_some(verify_max_age),
            min_free: match self.get("check_min_free") {
                Value::Int(n) => MinFree::Bytes(*n as u64),
                Value::Text(t) if t == "off" => MinFree::Off,
                _ => MinFree::Auto,
            },
        }
    }

    fn boolean(&self, k: &'static str) -> Option<bool> {
        self.opt_text(k).map(|v| v == "true")
    }

    /// How an `s3://` backup_dir is reached; unused for a local one.
    pub fn s3(&mut self) -> S3Options {
        let o = S3Options {
            endpoint: self.opt_text("s3_endpoint"),
            region: self.text("s3_region"),
            access_key_id: self.opt_text("s3_access_key_id"),
            secret_access_key: self.opt_text("s3_secret_access_key").map(Secret::new),
            session_token: self.opt_text("s3_session_token").map(Secret::new),
            path_style: self.boolean("s3_path_style"),
            allow_http: self.boolean("s3_allow_http").unwrap_or(false),
            ca_file: self.path("s3_ca_file"),
            web_identity_token_file: self.path("s3_web_identity_token_file"),
            role_arn: self.opt_text("s3_role_arn"),
            role_session_name: self.opt_text("s3_role_session_name"),
            sts_endpoint: self.opt_text("s3_sts_endpoint"),
            max_retries: self.int("s3_max_retries") as u32,
            retry_timeout: self.duration("s3_retry_timeout"),
            request_timeout: self.duration("s3_request_timeout"),
            connect_timeout: self.duration("s3_connect_timeout"),
        };
        if o.path_style.is_none() {
            let on = o.endpoint.is_some();
            self.resolve_text(
                "s3_path_style",
                &format!("{on} (s3_endpoint {})", if on { "set" } else { "unset" }),
            );
        }
        o
    }

    /// The lock directory: as set, else the backup directory, else (for an `s3://` one)
    /// `/tmp/pgkeep-locks`.
    pub fn lock_dir(&mut self, backup_dir: &std::path::Path) -> PathBuf {
        if let Some(p) = self.path("lock_dir") {
            return p;
        }
        let p = if backup_dir.to_str().is_some_and(|d| d.starts_with("s3://")) {
            PathBuf::from("/tmp/pgkeep-locks")
        } else {
            backup_dir.to_path_buf()
        };
        self.resolve_text("lock_dir", &p.display().to_string());
        p
    }

    /// The retention of the `copy_to` location: its own age window and floor, no tiers.
    pub fn copy_policy(&self) -> Policy {
        let count = |k| self.int(k) as u32;
        Policy {
            keep_days: count("copy_keep_days"),
            keep_last: count("copy_keep_last"),
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
        }
    }

    pub fn policy(&self) -> Policy {
        let count = |k| self.int(k) as u32;
        Policy {
            keep_days: count("keep_days"),
            keep_last: count("keep_last"),
            keep_daily: count("keep_daily"),
            keep_weekly: count("keep_weekly"),
            keep_monthly: count("keep_monthly"),
        }
    }

    /// The API token; it must be printable ASCII, the only text an HTTP client can send in a
    /// header, or no request could ever authenticate.
    /// The manifest keys (`None` without any), each at least [`ManifestKeys`]' minimum.
    pub fn manifest_keys(&self) -> Result<Option<crate::model::ManifestKeys>, ConfigError> {
        let text = self.opt_text("manifest_keys").unwrap_or_default();
        let keys: Vec<&str> = text.split_whitespace().collect();
        if let Some(i) = keys
            .iter()
            .position(|k| k.len() < crate::model::seal::MIN_KEY_BYTES)
        {
            return Err(self.invalid(
                "manifest_keys",
                format!(
                    "key {} of {} has fewer than {} bytes; use random keys (e.g. `openssl rand -hex 32`)",
                    i + 1,
                    keys.len(),
                    crate::model::seal::MIN_KEY_BYTES
                ),
            ));
        }
        Ok(crate::model::ManifestKeys::new(
            keys.into_iter().map(Secret::new).collect(),
            self.text("manifest_keys_required") == "true",
        ))
    }

    /// The age recipients: the keys themselves, or (a value that does not start with `age1`)
    /// the path of a file of them.
    pub fn age_recipients(&self) -> Result<Option<AgeRecipients>, ConfigError> {
        let Some(text) = self.opt_text("age_recipients") else {
            return Ok(None);
        };
        let trimmed = text.trim();
        let keys = if trimmed.is_empty()
            || trimmed.starts_with("age1")
            || crate::model::age::is_identity(trimmed)
        {
            trimmed.to_string()
        } else {
            std::fs::read_to_string(trimmed).map_err(|e| {
                self.invalid(
                    "age_recipients",
                    format!("cannot read the file {trimmed}: {e}"),
                )
            })?
        };
        let parsed = AgeRecipients::parse(&keys).map_err(|m| self.invalid("age_recipients", m))?;
        match parsed {
            Some(r) => Ok(Some(r)),
            None => Err(self.invalid("age_recipients", "no age public key in it".into())),
        }
    }

    /// The age identities, from `age_identity_file` and `age_identity` (never quoted in an
    /// error).
    pub fn age_identities(&self) -> Result<Option<AgeIdentities>, ConfigError> {
        let mut text = String::new();
        if let Some(path) = self.path("age_identity_file") {
            let file = std::fs::read_to_string(&path).map_err(|e| {
                self.invalid(
                    "age_identity_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            AgeIdentities::parse(&file).map_err(|m| {
                self.invalid("age_identity_file", format!("{}: {m}", path.display()))
            })?;
            text.push_str(&file);
            text.push('\n');
        }
        if let Some(secret) = self.opt_text("age_identity") {
            AgeIdentities::parse(&secret).map_err(|m| self.invalid("age_identity", m))?;
            text.push_str(&secret);
        }
        if text.is_empty() {
            return Ok(None);
        }
        AgeIdentities::parse(&text)
            .map(Some)
            .map_err(|m| self.invalid("age_identity", m))
    }

    pub fn api_token(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(token) = self.opt_text("api_token") else {
            return Ok(None);
        };
        let token = token.trim();
        if let Some(c) = token.chars().find(|c| !matches!(c, ' '..='~')) {
            let what = if c.is_ascii() {
                "a control character"
            } else {
                "a character that is not ASCII"
            };
            return Err(self.invalid(
                "api_token",
                format!(
                    "the token holds {what}; HTTP clients can only send printable ASCII, so no \
                     request could ever authenticate"
                ),
            ));
        }
        Ok(Some(Secret::new(token.to_string())))
    }

    /// The time zone, the backup schedule (cron or interval: set in the same layer both are
    /// refused, else the higher layer wins) and the verify schedule.
    pub fn schedules(&mut self) -> Result<Schedules, ConfigError> {
        let (timezone, timezone_name) = match self.opt_text("timezone") {
            Some(name) => (
                schedule::parse_tz(&name).map_err(|m| self.invalid("timezone", m))?,
                name,
            ),
            None => match jiff::tz::TimeZone::try_system() {
                Ok(tz) => {
                    let name = tz.iana_name().unwrap_or("local").to_string();
                    (tz, format!("system ({name})"))
                }
                Err(_) => (jiff::tz::TimeZone::UTC, "UTC".to_string()),
            },
        };
        self.resolve_text("timezone", &timezone_name);
        let rank = |src: Option<&Raw>| match src.map(|r| &r.source) {
            Some(Source::Flag(_)) => 3,
            Some(Source::Env(_)) => 2,
            Some(Source::Uri(_) | Source::File(_)) => 1,
            Some(Source::Default) | None => 0,
        };
        let (cron, period) = (self.raw.get("schedule"), self.raw.get("backup_period"));
        let interval = match self.get("backup_period") {
            Value::Duration(d) => Some(*d),
            _ => None,
        };
        let schedule = match interval {
            Some(_) if cron.is_some() && rank(cron) == rank(period) => {
                return Err(self.invalid(
                    "schedule",
                    format!(
                        "both a cron schedule and backup_period (from {}) are set; set only one",
                        self.source("backup_period")
                    ),
                ));
            }
            Some(d) if rank(period) > rank(cron) => Schedule::every(d, &show_duration(d))
                .map_err(|m| self.invalid("backup_period", m))?,
            _ => Schedule::cron(&self.text("schedule"), timezone.clone(), &timezone_name)
                .map_err(|m| self.invalid("schedule", m))?,
        };
        match &schedule {
            Schedule::Cron { .. } => {
                self.resolve_text("schedule", &schedule.describe());
                self.resolve("backup_period", Value::Unset);
            }
            Schedule::Every { .. } => {
                self.resolve_text("schedule", "(interval)");
                self.resolve_text("backup_period", &schedule.describe());
            }
        }
        let verify_schedule = match self.opt_text("verify_schedule") {
            Some(expr) => {
                let s = Schedule::cron(&expr, timezone.clone(), &timezone_name)
                    .map_err(|m| self.invalid("verify_schedule", m))?;
                self.resolve_text("verify_schedule", &s.describe());
                Some(s)
            }
            None => None,
        };
        Ok((schedule, verify_schedule, timezone, timezone_name))
    }
}
