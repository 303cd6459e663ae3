//! Command-line definitions. The doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The `--help` section of the flags every command takes, apart from each command's own.
const GLOBAL: &str = "Global options";

/// pgkeep keeps PostgreSQL databases safe: logical backups into BACKUP_DIR, now or on a schedule
/// (`pgkeep run`), culling by a retention policy, verification and health checks, a safe
/// one-command restore, and a built-in demo.
///
/// Configuration is layered: defaults < TOML file (--config / PGKEEP_CONFIG) < environment
/// (PGKEEP_*, then the old backup pod's DATABASE_SERVICE_NAME, POSTGRESQL_USER,
/// POSTGRESQL_PASSWORD, POSTGRESQL_DATABASE, BACKUP_DIR, then libpq's PG* variables) < flags.
#[derive(Debug, Parser)]
#[command(name = "pgkeep", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file (keys as in `pgkeep config keys`).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,

    /// Log format on stderr: text (human) or json (one JSON object per line).
    #[arg(long, global = true, value_enum, help_heading = GLOBAL)]
    pub log_format: Option<LogFormatArg>,

    /// More detail in logs (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,

    /// Only warnings and errors in logs.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
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
    #[arg(long, global = true, value_name = "HOST", help_heading = GLOBAL)]
    pub host: Option<String>,
    /// Server port.
    #[arg(long, global = true, value_name = "PORT", help_heading = GLOBAL)]
    pub port: Option<String>,
    /// Role to connect as.
    #[arg(long, short = 'U', global = true, value_name = "USER", help_heading = GLOBAL)]
    pub user: Option<String>,
    /// Directory that holds the backups.
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL)]
    pub backup_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up one database now, into BACKUP_DIR/YYYY-MM-DD/<host>-<db>_<time>.<ext>.
    Backup(BackupArgs),
    /// List backups, newest first (legacy .sql.gz files without a manifest included).
    List(ListArgs),
    /// The databases that backup, prune, verify and check work over (the `databases` setting,
    /// else `all`: every database that accepts connections, templates and exclude_databases
    /// left out), read from the server now; then what was left out and why.
    Databases(DatabasesArgs),
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
    /// The state of the backups at a glance: per database the newest good backup and its age,
    /// verification verdicts, free space, retention window, problems and the history of the
    /// last weeks, from BACKUP_DIR. With --url the running daemon adds the running backup, the
    /// next run and recent failures.
    Status(StatusArgs),
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
    /// Back up this one database (default: the `databases` set when it is set, else the
    /// configured database).
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
    /// Connections to load on at once (plain and custom backups; 1: one psql or pg_restore,
    /// in order). Default: the restore_jobs setting (local cores, at most 4).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
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
    /// Run the file's SQL as the admin role instead of the database's owner: for backups whose
    /// statements need more than the owner may do (the dry run lists them: event triggers,
    /// publications FOR ALL TABLES, untrusted extensions, COPY ... PROGRAM, ...).
    #[arg(long)]
    pub load_as_admin: bool,
    /// The role that owned the database, for a legacy file (no manifest) whose database no
    /// longer exists: its SQL runs as this role.
    #[arg(long, value_name = "ROLE")]
    pub owner: Option<String>,
    /// With --file: restore a pgkeep-made file whose manifest is missing (uncommitted), without
    /// a checksum or recorded row counts to check it against.
    #[arg(long, requires = "file")]
    pub allow_unverified: bool,
    /// Load plain backups with a psql that lacks restricted mode (\restrict; 13.22+, 14.19+,
    /// 15.14+, 16.10+, 17.6+, 18): pgkeep's meta-command filter is then the only line.
    #[arg(long)]
    pub allow_unrestricted_psql: bool,
    /// Recover the whole server, e.g. onto an empty one (--target-host): the globals (roles,
    /// memberships, role settings, tablespaces) from the newest globals backup, then every
    /// database with backups in BACKUP_DIR (the `databases` list, minus `exclude_databases`),
    /// each from its newest backup that is not verified bad.
    #[arg(long, conflicts_with_all = ["database", "which", "target_database", "in_place", "check_sql", "owner"])]
    pub all: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Only the copies of this database.
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Look for copies on another server (host name or socket directory), e.g. the one a restore
    /// went to with --target-host; default: the configured host.
    #[arg(long, value_name = "HOST")]
    pub target_host: Option<String>,
    /// Port of that server; default: the configured port.
    #[arg(long, value_name = "PORT")]
    pub target_port: Option<u16>,
    /// Drop without asking (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// List what would be dropped, with sizes, and drop nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl CleanupArgs {
    /// The server to clean up, in the form restore takes it.
    pub fn target(&self) -> TargetArgs {
        TargetArgs {
            target_host: self.target_host.clone(),
            target_port: self.target_port,
            yes: self.yes,
            dry_run: self.dry_run,
        }
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Database to back up (default: the configured database).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Dump format.
    #[arg(long, value_parser = ["plain", "custom"])]
    pub format: Option<String>,
    /// Compression: pgkeep's of a plain dump, pg_dump's in a custom archive (zstd: pg_dump 16+).
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
pub struct DatabasesArgs {
    /// JSON for schedulers that start one job per database: {"databases": [...], "missing",
    /// "gone", "excluded", "no_connections", "templates"}.
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
    /// After the checksum level passes, load the backup into a scratch database on the
    /// configured server (as PGKEEP_ADMIN_USER if set), compare every table's row count with the
    /// manifest, run the --check-sql queries, and drop the scratch database again.
    #[arg(long)]
    pub restore: bool,
    /// With --restore: SQL that must return at least one row in the loaded copy (repeatable).
    #[arg(long, value_name = "SQL", requires = "restore")]
    pub check_sql: Vec<String>,
    /// With --restore: load into a throwaway cluster started with local server binaries of the
    /// dump's major, else the oldest newer one (PGKEEP_PG_BINDIR, /usr/lib/postgresql/N/bin,
    /// /usr/pgsql-N/bin, PATH; never an older one: then the verdict is inconclusive) instead of
    /// the configured server, which is not contacted; the roles the backup references are
    /// created there (without passwords). The clusters are stopped and removed afterwards.
    #[arg(long, requires = "restore")]
    pub local: bool,
    /// With --restore: run the file's SQL as the admin role (the cluster's superuser with
    /// --local) instead of the database's owner.
    #[arg(long, requires = "restore")]
    pub load_as_admin: bool,
    /// With --restore: load plain backups with a psql that lacks restricted mode (\restrict).
    #[arg(long, requires = "restore")]
    pub allow_unrestricted_psql: bool,
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

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this database (default: the configured database and every other one with backups).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also ask the daemon at this address (e.g. http://127.0.0.1:8080) for its running backup,
    /// next run and recent failures.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
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

/// Flags of `pgkeep maintenance` (each also a configuration key, see `pgkeep config keys`).
#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is logged); key
    /// maintenance_listen, default 0.0.0.0:8081.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Page title and heading (plain text); key maintenance_title.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// Message on the page (plain text, HTML is escaped; a blank line starts a new paragraph);
    /// key maintenance_message.
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// How long clients are asked to wait before retrying (the Retry-After header): seconds or
    /// a duration such as 5m, at most 1d; key maintenance_retry_after, default 5m.
    #[arg(long, value_name = "DURATION")]
    pub retry_after: Option<String>,
}
