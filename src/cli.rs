//! Command-line definitions. The doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// pgkeep keeps PostgreSQL databases safe: trustworthy logical backups into BACKUP_DIR,
/// listing, and a built-in demo.
///
/// Configuration is layered: defaults < TOML file (--config / PGKEEP_CONFIG) < environment
/// (PGKEEP_*, then the old backup pod's DATABASE_SERVICE_NAME, POSTGRESQL_USER,
/// POSTGRESQL_PASSWORD, POSTGRESQL_DATABASE, BACKUP_DIR, then libpq's PG* variables) < flags.
#[derive(Debug, Parser)]
#[command(name = "pgkeep", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file (keys as in `pgkeep config keys`).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr: text (human) or json (one JSON object per line).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,

    /// More detail in logs (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors in logs.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

/// Connection and storage flags shared by every command.
#[derive(Debug, Args, Default)]
pub struct ConnArgs {
    /// Server host name or Unix socket directory.
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<String>,
    /// Server port.
    #[arg(long, global = true, value_name = "PORT")]
    pub port: Option<String>,
    /// Role to connect as.
    #[arg(long, short = 'U', global = true, value_name = "USER")]
    pub user: Option<String>,
    /// Directory that holds the backups.
    #[arg(long, global = true, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up one database now, into BACKUP_DIR/YYYY-MM-DD/<host>-<db>_<time>.<ext>.
    Backup(BackupArgs),
    /// List backups, newest first (legacy .sql.gz files without a manifest included).
    List(ListArgs),
    /// Prove backups: read every byte, compare size and sha256 with the manifest, decompress
    /// fully and check completeness and row counts (custom format: replay every block with
    /// pg_restore). The result is recorded beside each backup as <file>.verify.json.
    /// Exit 9 if a backup is bad.
    Verify(VerifyArgs),
    /// Health check for monitoring and CronJobs: exit 8 with one line per reason when there is no
    /// good backup newer than check_max_age, the newest backup shrank below check_min_size_ratio
    /// of the one before, the last verification failed or is older than check_verify_max_age, or
    /// free space is below check_min_free.
    Check(CheckArgs),
    /// Show or explain the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run the built-in demo on a throwaway PostgreSQL cluster made with the local server binaries.
    Demo(DemoArgs),
    /// Serve an "application offline" page (HTTP 503 with Retry-After) until stopped.
    ///
    /// Every request, whatever its method or path, gets the page: point the application's Route
    /// or Service at this port while a restore runs, and back afterwards.
    Maintenance(MaintenanceArgs),
    /// Run as the backup daemon: backups on a schedule (a missed run is caught up at start),
    /// culling after each successful backup, and an HTTP API for immediate backups, health and
    /// metrics. Stops on SIGTERM/SIGINT, letting a running backup finish within the grace period.
    Run(RunArgs),
    /// Cull backups by the retention policy: prints every backup with keep/delete and the rule
    /// that decided; deletes only with --apply.
    Prune(PruneArgs),
}

/// Retention policy flags (see `pgkeep config keys` for their environment variables).
#[derive(Debug, Args, Default)]
pub struct PolicyArgs {
    /// Keep backups up to N days older than the newest good backup (0: off).
    #[arg(long, value_name = "N")]
    pub keep_days: Option<String>,
    /// Never cull the newest N good backups.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<String>,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<String>,
    /// Keep the newest backup of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<String>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<String>,
    /// Time zone of the schedule and of retention days, weeks and months (IANA name, e.g.
    /// Europe/Berlin; default: TZ, else the system zone).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Database to back up (default: the configured database).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Address of the HTTP API, e.g. 0.0.0.0:8080 or 127.0.0.1:0 (any free port; the bound
    /// address is logged as `listening`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Cron expression (minute hour day month weekday), in the configured time zone.
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,
    /// Back up every interval instead (1d, 12h, 90m...).
    #[arg(long, value_name = "INTERVAL")]
    pub backup_period: Option<String>,
    /// How long a running backup may take to finish after SIGTERM before it is aborted.
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Database whose backups are culled (default: the configured database).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Delete what the policy culls (default: only show it).
    #[arg(long)]
    pub apply: bool,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Database to back up (default: the configured database).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Dump format.
    #[arg(long, value_parser = ["plain", "custom"])]
    pub format: Option<String>,
    /// Compression of plain dumps.
    #[arg(long, value_parser = ["gzip", "zstd", "none"])]
    pub compression: Option<String>,
    /// Compression level.
    #[arg(long, value_name = "N")]
    pub level: Option<String>,
    /// Compression threads.
    #[arg(long, value_name = "N")]
    pub threads: Option<String>,
    /// Print the manifest of the new backup as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only backups of this database.
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").args(["id", "latest", "all"])))]
pub struct VerifyArgs {
    /// Backup id or file name (as shown by `pgkeep list`), or a path under BACKUP_DIR.
    pub id: Option<String>,
    /// The newest backup of the database (the default).
    #[arg(long)]
    pub latest: bool,
    /// Every backup in BACKUP_DIR (legacy .sql.gz files and data files without manifest included).
    #[arg(long)]
    pub all: bool,
    /// Database whose backups to verify (default: the configured database).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Print the verification records as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Database to check (default: the configured database).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective settings with where each came from (secrets redacted).
    Show,
    /// List every configuration key with its environment variables.
    Keys,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's cluster and backups (prints where they are) instead of removing them.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is logged).
    #[arg(
        long,
        env = "PGKEEP_MAINTENANCE_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:8081"
    )]
    pub listen: std::net::SocketAddr,
    /// Page title and heading (plain text).
    #[arg(
        long,
        env = "PGKEEP_MAINTENANCE_TITLE",
        value_name = "TEXT",
        default_value = "Down for maintenance"
    )]
    pub title: String,
    /// Message on the page (plain text, HTML is escaped; a blank line starts a new paragraph).
    #[arg(long, env = "PGKEEP_MAINTENANCE_MESSAGE", value_name = "TEXT")]
    pub message: Option<String>,
    /// Seconds clients are asked to wait before retrying (the Retry-After header).
    #[arg(
        long,
        env = "PGKEEP_MAINTENANCE_RETRY_AFTER",
        value_name = "SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(0..=86_400)
    )]
    pub retry_after: u64,
}
