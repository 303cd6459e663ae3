//! Every configuration key, declared once with the environment variables that may set it (in
//! priority order), whether it is a secret, and its help line.

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
pub(super) const COMMAND_LIST_KEYS: &[&str] = &["pre_restore", "post_restore"];

pub(super) fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
