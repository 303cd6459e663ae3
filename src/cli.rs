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
