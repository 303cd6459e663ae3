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
    /// Show or explain the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run the built-in demo on a throwaway PostgreSQL cluster made with the local server binaries.
    Demo(DemoArgs),
    /// Restore a backup safely: load it into a scratch database, check it, then swap it in.
    ///
    /// Nothing changes on the live database until the restored copy has loaded and passed its
    /// checks (row counts equal the manifest's, --check-sql queries return rows); the swap
    /// renames live -> <db>_before_restore_<time> and scratch -> <db> in one transaction.
    /// Needs an admin role with CREATEDB or superuser (PGKEEP_ADMIN_USER / PGKEEP_ADMIN_PASSWORD).
    Restore(RestoreArgs),
    /// Drop the copies kept by restores (<db>_before_restore_<time>) and scratch databases left
    /// by interrupted restores, after confirmation.
    Cleanup(CleanupArgs),
}

/// Where a restore goes and how it is confirmed (shared by restore and cleanup).
#[derive(Debug, Args, Default)]
pub struct TargetArgs {
    /// Restore into another server (host name or socket directory); default: the configured host.
    #[arg(long, value_name = "HOST")]
    pub target_host: Option<String>,
    /// Port of the target server; default: the configured port.
    #[arg(long, value_name = "PORT")]
    pub target_port: Option<u16>,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the whole plan (steps, SQL, commands, hooks, space needed) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").multiple(false))]
pub struct RestoreArgs {
    /// Database whose backups are chosen from (default: the configured database).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// The newest good backup of the database (the default).
    #[arg(long, group = "which")]
    pub latest: bool,
    /// The backup with this id (as `pgkeep list` shows it; a unique prefix is enough).
    #[arg(long = "backup", value_name = "ID", group = "which")]
    pub backup_id: Option<String>,
    /// This backup file (its manifest is used when it lies beside it; an old pod's .sql.gz works).
    #[arg(long, value_name = "PATH", group = "which")]
    pub file: Option<PathBuf>,
    /// The newest good backup started before this time (UTC: 2026-11-25, "2026-11-25 10:00" or RFC 3339).
    #[arg(long, value_name = "TIME", group = "which")]
    pub before: Option<String>,
    /// Restore into this database instead of the backup's (a copy; the source is not touched).
    #[arg(long, value_name = "NAME")]
    pub target_database: Option<String>,
    /// Drop, create and load the live database in place (for disks that cannot hold two
    /// copies). The live database is GONE from the drop until the load finishes.
    #[arg(long)]
    pub in_place: bool,
    /// Parallel pg_restore jobs (custom-format backups).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// A query that must return at least one row on the restored copy before it is swapped in
    /// (repeatable), e.g. 'SELECT 1 FROM "SBI_USER" LIMIT 1'.
    #[arg(long, value_name = "SQL")]
    pub check_sql: Vec<String>,
    /// Create roles the backup references that do not exist on the target (without passwords).
    #[arg(long)]
    pub create_roles: bool,
    /// Drop the previous copy once the restore succeeded.
    #[arg(long)]
    pub drop_previous: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Only the copies of this database.
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
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
