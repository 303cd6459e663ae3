//! The effective settings, typed, each field with the source it came from; and the setting groups
//! of notifications and of `pgkeep check`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::source::{Raw, Source};
use crate::model::{Compression, Format, Secret, SslMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective settings. Each field carries where it came from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub(super) values: BTreeMap<&'static str, Raw>,
    /// Every key with the value in effect as `config show` displays it (secrets redacted).
    pub(super) shown: Vec<(&'static str, String)>,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub passfile: Option<PathBuf>,
    pub database: String,
    /// The databases commands work over (`None`: the one `database`).
    pub databases: Option<crate::model::DatabaseSet>,
    pub exclude_databases: Vec<String>,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: u64,
    pub backup_dir: PathBuf,
    /// Local directory of the per-database locks.
    pub lock_dir: PathBuf,
    /// How an `s3://` backup_dir is reached.
    pub s3: crate::model::S3Options,
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
    /// Keys that sign and check manifests (`manifest_keys`); `None`: manifests are not signed.
    pub manifest_keys: Option<crate::model::ManifestKeys>,
    /// Encrypt every backup to these age public keys (`None`: not encrypted).
    pub age_recipients: Option<crate::model::age::AgeRecipients>,
    /// The age identities that decrypt backups (restore, content verification).
    pub age_identities: Option<crate::model::age::AgeIdentities>,
    /// The second location every committed backup is copied to (`None`: one location).
    pub copy_to: Option<PathBuf>,
    /// The retention of `copy_to`.
    pub copy_policy: crate::model::Policy,
    pub shutdown_grace: std::time::Duration,
    /// The first delay before a failed scheduled backup is retried (zero: no retries).
    pub retry_delay: std::time::Duration,
    /// `pgkeep run` over the set: databases backed up at once.
    pub parallel_databases: usize,
    /// `pgkeep run` over the set: databases on a schedule of their own instead of `schedule`.
    pub database_schedules: Vec<(String, crate::model::schedule::Schedule)>,
    /// Role for restores (`None`: the backup user).
    pub admin_user: Option<String>,
    pub admin_password: Option<Secret>,
    pub admin_passfile: Option<PathBuf>,
    /// Restore hooks: argument lists, run without a shell.
    pub pre_restore: Vec<Vec<String>>,
    pub post_restore: Vec<Vec<String>>,
    pub hook_timeout: std::time::Duration,
    /// Connections a restore loads on (`restore_jobs`; `restore -j` overrides it).
    pub restore_jobs: usize,
    pub maintenance: MaintenanceSettings,
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

/// The page `pgkeep maintenance` serves.
#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    pub listen: std::net::SocketAddr,
    pub title: String,
    /// `None`: the standard message.
    pub message: Option<String>,
    /// Seconds of the Retry-After header.
    pub retry_after: u64,
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

impl Settings {
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

    /// True when the host names a Unix socket directory.
    pub fn host_is_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}
