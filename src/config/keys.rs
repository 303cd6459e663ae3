//! Every configuration key, declared once: the environment variables that may set it (in priority
//! order), its kind (which gives its parser, range and display), its default, whether it is a
//! secret, the flag that sets it, and its help line. `config keys` and `config show` are made
//! from this table.

pub use super::kind::Kind;

/// What a key is when nothing sets it.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    /// This text, parsed like any other value.
    Value(&'static str),
    /// Worked out from other keys or the system (the text says how).
    Derived(&'static str),
    /// Not set; the text says what that means.
    Unset(&'static str),
}

/// A key the configuration understands.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    /// Environment variables that set it, highest priority first.
    pub env: &'static [&'static str],
    pub kind: Kind,
    pub default: Default,
    pub secret: bool,
    /// The flag that sets it, when it is not the name with dashes (`--backup-dir`).
    pub flag: Option<&'static str>,
    pub help: &'static str,
}

impl Key {
    const fn new(
        name: &'static str,
        env: &'static [&'static str],
        kind: Kind,
        default: Default,
        help: &'static str,
    ) -> Key {
        Key {
            name,
            env,
            kind,
            default,
            secret: false,
            flag: None,
            help,
        }
    }

    const fn secret(mut self) -> Key {
        self.secret = true;
        self
    }

    const fn flag(mut self, flag: &'static str) -> Key {
        self.flag = Some(flag);
        self
    }

    /// The default as `config keys` shows it: a value displayed like `config show` displays it.
    pub fn default_text(&self) -> String {
        match self.default {
            Default::Value(v) => self
                .kind
                .parse(v)
                .map_or_else(|_| v.to_string(), |p| self.kind.display(&p, self.secret)),
            Default::Derived(d) | Default::Unset(d) => format!("({d})"),
        }
    }

    /// The flag that sets this key, without its dashes.
    pub fn flag_name(&self) -> String {
        self.flag
            .map_or_else(|| self.name.replace('_', "-"), str::to_string)
    }
}

const SSLMODES: Kind = Kind::Choice {
    names: &[
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ],
    aliases: &[],
};
const FORMATS: Kind = Kind::Choice {
    names: &["plain", "custom"],
    aliases: &[("p", "plain"), ("c", "custom")],
};
const COMPRESSIONS: Kind = Kind::Choice {
    names: &["gzip", "zstd", "none"],
    aliases: &[("gz", "gzip"), ("zst", "zstd")],
};
const LOG_FORMATS: Kind = Kind::Choice {
    names: &["text", "json"],
    aliases: &[],
};
const NOTIFY_ON: Kind = Kind::Choice {
    names: &["failure", "always"],
    aliases: &[("failures", "failure"), ("all", "always")],
};
const BOOL: Kind = Kind::Choice {
    names: &["true", "false"],
    aliases: &[
        ("1", "true"),
        ("yes", "true"),
        ("on", "true"),
        ("0", "false"),
        ("no", "false"),
        ("off", "false"),
    ],
};
/// A count of backups or days.
const COUNT: Kind = Kind::Int {
    min: 0,
    max: u32::MAX as i64,
};

/// Every configuration key. The TOML file uses these names; the environment variables listed set
/// them; flags with the same meaning are passed by the CLI layer under the same name.
pub const KEYS: &[Key] = &[
    Key::new(
        "uri",
        &["PGKEEP_URI", "DATABASE_URL"],
        Kind::Uri,
        Default::Unset("not set"),
        "connection URI postgresql://user:pass@host:port/db?sslmode=..; its parts sit below the separate keys of the same layer",
    ).secret(),
    Key::new(
        "host",
        &["PGKEEP_HOST", "DATABASE_SERVICE_NAME", "PGHOST"],
        Kind::Text,
        Default::Value("/var/run/postgresql"),
        "server host name, or a Unix socket directory (starts with /)",
    ),
    Key::new(
        "port",
        &["PGKEEP_PORT", "PGPORT"],
        Kind::Int { min: 1, max: 65535 },
        Default::Value("5432"),
        "server port",
    ),
    Key::new(
        "user",
        &["PGKEEP_USER", "POSTGRESQL_USER", "PGUSER"],
        Kind::Text,
        Default::Value("postgres"),
        "role that makes backups",
    ),
    Key::new(
        "password",
        &["PGKEEP_PASSWORD", "POSTGRESQL_PASSWORD", "PGPASSWORD"],
        Kind::Text,
        Default::Unset("not set"),
        "password of that role (prefer a passfile or the environment)",
    ).secret(),
    Key::new(
        "passfile",
        &["PGKEEP_PASSFILE", "PGPASSFILE"],
        Kind::Path,
        Default::Unset("not set"),
        "libpq password file (~/.pgpass is used when it exists)",
    ),
    Key::new(
        "database",
        &["PGKEEP_DATABASE", "POSTGRESQL_DATABASE", "PGDATABASE"],
        Kind::Text,
        Default::Derived("the user"),
        "database to back up (the one database of every command unless `databases` is set)",
    ),
    Key::new(
        "databases",
        &["PGKEEP_DATABASES"],
        Kind::Names,
        Default::Unset("one database: `database`"),
        "databases that backup, prune, verify and check work over: names, or all (every database that accepts connections, templates excluded); -d NAME narrows a command to one",
    ),
    Key::new(
        "exclude_databases",
        &["PGKEEP_EXCLUDE_DATABASES"],
        Kind::Names,
        Default::Unset("none"),
        "databases left out of `databases`",
    ),
    Key::new(
        "sslmode",
        &["PGKEEP_SSLMODE", "PGSSLMODE"],
        SSLMODES,
        Default::Value("prefer"),
        "libpq's TLS modes; verify-ca and verify-full check the certificate",
    ),
    Key::new(
        "sslrootcert",
        &["PGKEEP_SSLROOTCERT", "PGSSLROOTCERT"],
        Kind::Path,
        Default::Unset("system roots"),
        "CA certificates (PEM) for verify-ca / verify-full",
    ),
    Key::new(
        "connect_timeout",
        &["PGKEEP_CONNECT_TIMEOUT", "PGCONNECT_TIMEOUT"],
        Kind::duration(0),
        Default::Value("10s"),
        "how long to wait for a connection",
    ),
    Key::new(
        "backup_dir",
        &["PGKEEP_BACKUP_DIR", "BACKUP_DIR"],
        Kind::Path,
        Default::Value("/backups"),
        "directory that holds the backups (must exist)",
    ),
    Key::new(
        "lock_dir",
        &["PGKEEP_LOCK_DIR"],
        Kind::Path,
        Default::Derived("backup_dir; /tmp/pgkeep-locks for an s3:// backup_dir"),
        "local directory of the per-database lock files (created 0700 when missing)",
    ),
    Key::new(
        "s3_endpoint",
        &["PGKEEP_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
        Kind::Url,
        Default::Unset("AWS"),
        "S3-compatible endpoint of an s3:// backup_dir, e.g. https://minio.example:9000",
    ),
    Key::new(
        "s3_region",
        &["PGKEEP_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"],
        Kind::Text,
        Default::Value("us-east-1"),
        "region of the bucket",
    ),
    Key::new(
        "s3_access_key_id",
        &["PGKEEP_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"],
        Kind::Text,
        Default::Unset("not set"),
        "S3 access key id (with s3_secret_access_key; else web identity)",
    ).secret(),
    Key::new(
        "s3_secret_access_key",
        &["PGKEEP_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"],
        Kind::Text,
        Default::Unset("not set"),
        "S3 secret access key",
    ).secret(),
    Key::new(
        "s3_session_token",
        &["PGKEEP_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"],
        Kind::Text,
        Default::Unset("not set"),
        "session token of temporary S3 credentials",
    ).secret(),
    Key::new(
        "s3_path_style",
        &["PGKEEP_S3_PATH_STYLE"],
        BOOL,
        Default::Derived("true with s3_endpoint, else false"),
        "path-style addressing (ENDPOINT/BUCKET/KEY), as S3-compatible servers want",
    ),
    Key::new(
        "s3_allow_http",
        &["PGKEEP_S3_ALLOW_HTTP"],
        BOOL,
        Default::Value("false"),
        "allow a plain http:// s3_endpoint",
    ),
    Key::new(
        "s3_ca_file",
        &["PGKEEP_S3_CA_FILE", "AWS_CA_BUNDLE"],
        Kind::Path,
        Default::Unset("system roots"),
        "extra CA certificates (PEM) for the S3 endpoint",
    ),
    Key::new(
        "s3_web_identity_token_file",
        &["PGKEEP_S3_WEB_IDENTITY_TOKEN_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        Kind::Path,
        Default::Unset("not set"),
        "projected service account token exchanged for S3 credentials (with s3_role_arn)",
    ),
    Key::new(
        "s3_role_arn",
        &["PGKEEP_S3_ROLE_ARN", "AWS_ROLE_ARN"],
        Kind::Text,
        Default::Unset("not set"),
        "role assumed with the web identity token",
    ),
    Key::new(
        "s3_role_session_name",
        &["PGKEEP_S3_ROLE_SESSION_NAME", "AWS_ROLE_SESSION_NAME"],
        Kind::Text,
        Default::Unset("generated"),
        "session name of the assumed role",
    ),
    Key::new(
        "s3_sts_endpoint",
        &["PGKEEP_S3_STS_ENDPOINT", "AWS_ENDPOINT_URL_STS"],
        Kind::Url,
        Default::Unset("AWS STS"),
        "STS endpoint for web identity",
    ),
    Key::new(
        "s3_max_retries",
        &["PGKEEP_S3_MAX_RETRIES"],
        Kind::Int { min: 0, max: 1000 },
        Default::Value("40"),
        "retries of a failed S3 request (5xx, 429, timeouts, dropped connections), with backoff",
    ),
    Key::new(
        "s3_retry_timeout",
        &["PGKEEP_S3_RETRY_TIMEOUT"],
        Kind::duration(1),
        Default::Value("2m"),
        "how long one S3 request is retried before it fails",
    ),
    Key::new(
        "s3_request_timeout",
        &["PGKEEP_S3_REQUEST_TIMEOUT"],
        Kind::duration(1),
        Default::Value("5m"),
        "how long one S3 request may take",
    ),
    Key::new(
        "s3_connect_timeout",
        &["PGKEEP_S3_CONNECT_TIMEOUT"],
        Kind::duration(1),
        Default::Value("5s"),
        "how long to wait for a connection to the S3 endpoint",
    ),
    // Encryption at rest (age).
    Key::new(
        "age_recipients",
        &["PGKEEP_AGE_RECIPIENTS"],
        Kind::Text,
        Default::Unset("not set: backups are not encrypted"),
        "age public keys (age1..., separated by spaces, commas or lines) every backup is encrypted to, or the path of a file of them",
    ),
    Key::new(
        "age_identity_file",
        &["PGKEEP_AGE_IDENTITY_FILE"],
        Kind::Path,
        Default::Unset("not set"),
        "file of age identities (age-keygen output) that decrypt backups: needed by restore and content verification only",
    ),
    Key::new(
        "age_identity",
        &["PGKEEP_AGE_IDENTITY"],
        Kind::Text,
        Default::Unset("not set"),
        "age identity (AGE-SECRET-KEY-1...) that decrypts backups, from a Secret; instead of age_identity_file",
    ).secret(),
    // The second location.
    Key::new(
        "copy_to",
        &["PGKEEP_COPY_TO"],
        Kind::Path,
        Default::Unset("not set: one location"),
        "a second location (a directory or s3://BUCKET/PREFIX, reached with the s3_* settings) every committed backup is copied to",
    ),
    Key::new(
        "copy_keep_days",
        &["PGKEEP_COPY_KEEP_DAYS"],
        COUNT,
        Default::Value("10"),
        "in copy_to: keep copies up to N days older than the newest copy (0: off)",
    ),
    Key::new(
        "copy_keep_last",
        &["PGKEEP_COPY_KEEP_LAST"],
        COUNT,
        Default::Value("3"),
        "in copy_to: never cull the newest N copies",
    ),
    Key::new(
        "format",
        &["PGKEEP_FORMAT"],
        FORMATS,
        Default::Value("plain"),
        "plain (a .sql file, restorable with psql) or custom (pg_dump -Fc)",
    ),
    Key::new(
        "compression",
        &["PGKEEP_COMPRESSION"],
        COMPRESSIONS,
        Default::Value("gzip"),
        "gzip (compatible with gunzip), zstd or none; with the custom format pg_dump compresses the archive (zstd: pg_dump 16 or newer)",
    ),
    Key::new(
        "level",
        &["PGKEEP_LEVEL"],
        Kind::Level,
        Default::Derived("gzip 6, zstd 1, none 0"),
        "compression level",
    ),
    Key::new(
        "threads",
        &["PGKEEP_THREADS"],
        Kind::Int { min: 1, max: 256 },
        Default::Derived("all cores"),
        "compression threads",
    ),
    Key::new(
        "pg_bindir",
        &["PGKEEP_PG_BINDIR"],
        Kind::Path,
        Default::Unset("search"),
        "directory of the PostgreSQL client tools; unset: search /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and PATH",
    ),
    Key::new(
        "pg_dump",
        &["PGKEEP_PG_DUMP"],
        Kind::Path,
        Default::Unset("discover"),
        "exact pg_dump program to run (overrides discovery)",
    ),
    Key::new(
        "min_dump_bytes",
        &["PGKEEP_MIN_DUMP_BYTES"],
        Kind::Int { min: 0, max: i64::MAX },
        Default::Value("64"),
        "smallest plausible raw dump size in bytes",
    ),
    Key::new(
        "manifest_keys",
        &["PGKEEP_MANIFEST_KEYS"],
        Kind::Text,
        Default::Unset("not set: manifests are not signed"),
        "HMAC keys (space-separated, 16+ bytes each) for tamper-evident manifests: the first signs, all verify",
    ).secret(),
    Key::new(
        "manifest_keys_required",
        &["PGKEEP_MANIFEST_KEYS_REQUIRED"],
        BOOL,
        Default::Value("false"),
        "with manifest_keys: refuse manifests without a signature (else they pass with a warning)",
    ),
    Key::new(
        "log_format",
        &["PGKEEP_LOG_FORMAT"],
        LOG_FORMATS,
        Default::Value("text"),
        "log lines on stderr: text (human) or json (one object per line)",
    ),
    Key::new(
        "admin_user",
        &["PGKEEP_ADMIN_USER"],
        Kind::Text,
        Default::Derived("user"),
        "role for restore (creates, renames, drops databases: needs CREATEDB or superuser)",
    ),
    Key::new(
        "admin_password",
        &["PGKEEP_ADMIN_PASSWORD"],
        Kind::Text,
        Default::Unset("not set"),
        "password of admin_user (prefer admin_passfile)",
    ).secret(),
    Key::new(
        "admin_passfile",
        &["PGKEEP_ADMIN_PASSFILE"],
        Kind::Path,
        Default::Unset("passfile"),
        "libpq password file for admin_user",
    ),
    Key::new(
        "pre_restore",
        &["PGKEEP_PRE_RESTORE"],
        Kind::Commands,
        Default::Unset("none"),
        "commands run before a restore changes anything: TOML array of argument arrays (env: JSON), e.g. [[\"oc\",\"scale\",\"deployment/server\",\"--replicas=0\"]]",
    ),
    Key::new(
        "post_restore",
        &["PGKEEP_POST_RESTORE"],
        Kind::Commands,
        Default::Unset("none"),
        "commands run after a restore, even a failed one when pre_restore ran (same form as pre_restore)",
    ),
    Key::new(
        "restore_jobs",
        &["PGKEEP_RESTORE_JOBS"],
        Kind::Int { min: 1, max: 64 },
        Default::Derived("local cores, at most 4"),
        "connections a restore loads on at once (plain and custom backups; 1: one psql or pg_restore, in order); restore -j overrides it",
    ),
    Key::new(
        "hook_timeout",
        &["PGKEEP_HOOK_TIMEOUT"],
        Kind::duration(1),
        Default::Value("5m"),
        "how long each restore hook may run before it is stopped",
    ),
    Key::new(
        "notify_webhook_url",
        &["PGKEEP_NOTIFY_WEBHOOK_URL"],
        Kind::Urls,
        Default::Unset("not set"),
        "webhook(s) that get a generic JSON event (space-separated list); URLs are treated as secrets",
    ).secret(),
    Key::new(
        "notify_slack_url",
        &["PGKEEP_NOTIFY_SLACK_URL"],
        Kind::Urls,
        Default::Unset("not set"),
        "Slack incoming webhook(s) (space-separated list)",
    ).secret(),
    Key::new(
        "notify_teams_url",
        &["PGKEEP_NOTIFY_TEAMS_URL"],
        Kind::Urls,
        Default::Unset("not set"),
        "Microsoft Teams workflow webhook(s), sent an Adaptive Card (space-separated list)",
    ).secret(),
    Key::new(
        "notify_rocketchat_url",
        &["PGKEEP_NOTIFY_ROCKETCHAT_URL"],
        Kind::Urls,
        Default::Unset("not set"),
        "Rocket.Chat incoming webhook(s) (space-separated list)",
    ).secret(),
    Key::new(
        "notify_deadman_url",
        &["PGKEEP_NOTIFY_DEADMAN_URL"],
        Kind::Url,
        Default::Unset("not set"),
        "dead-man switch (healthchecks.io style) pinged after every successful backup",
    ).secret(),
    Key::new(
        "notify_on",
        &["PGKEEP_NOTIFY_ON"],
        NOTIFY_ON,
        Default::Value("failure"),
        "failure (only failures are posted) or always (successes too)",
    ),
    Key::new(
        "notify_timeout",
        &["PGKEEP_NOTIFY_TIMEOUT"],
        Kind::duration(1),
        Default::Value("10s"),
        "how long one notification request may take",
    ),
    Key::new(
        "notify_retries",
        &["PGKEEP_NOTIFY_RETRIES"],
        Kind::Int { min: 0, max: 10 },
        Default::Value("2"),
        "retries of a failed notification",
    ),
    Key::new(
        "notify_proxy",
        &["PGKEEP_NOTIFY_PROXY"],
        Kind::Url,
        Default::Unset("not set"),
        "HTTP(S) proxy for notifications, e.g. http://proxy:3128",
    ).secret(),
    Key::new(
        "check_max_age",
        &["PGKEEP_CHECK_MAX_AGE"],
        Kind::duration(1),
        Default::Value("26h"),
        "`pgkeep check`: the newest good backup must be younger than this",
    ),
    Key::new(
        "check_min_size_ratio",
        &["PGKEEP_CHECK_MIN_SIZE_RATIO"],
        Kind::Ratio,
        Default::Value("0.5"),
        "`pgkeep check`: the newest backup must be at least this fraction of the one before (0 disables)",
    ),
    Key::new(
        "check_verify_max_age",
        &["PGKEEP_CHECK_VERIFY_MAX_AGE"],
        Kind::Duration { min: 1, max: u64::MAX, zero_off: true },
        Default::Value("8d"),
        "`pgkeep check`: a verification must have succeeded within this time",
    ),
    Key::new(
        "check_min_free",
        &["PGKEEP_CHECK_MIN_FREE"],
        Kind::MinFree,
        Default::Value("auto"),
        "`pgkeep check`: least free space in the backup directory (auto: twice the newest backup)",
    ),
    Key::new(
        "schedule",
        &["PGKEEP_SCHEDULE"],
        Kind::Cron,
        Default::Value("0 1 * * *"),
        "cron expression (in `timezone`) at which `pgkeep run` backs up",
    ),
    Key::new(
        "backup_period",
        &["PGKEEP_BACKUP_PERIOD", "BACKUP_PERIOD"],
        Kind::duration(1),
        Default::Unset("not set"),
        "`pgkeep run` backs up every interval instead of on the cron schedule",
    ),
    Key::new(
        "verify_schedule",
        &["PGKEEP_VERIFY_SCHEDULE"],
        Kind::Cron,
        Default::Unset("off"),
        "cron expression (in `timezone`) at which `pgkeep run` verifies the newest backup; unset: off",
    ),
    Key::new(
        "timezone",
        &["PGKEEP_TIMEZONE", "TZ"],
        Kind::Zone,
        Default::Derived("the system zone, else UTC"),
        "time zone of the schedules and of retention days",
    ),
    Key::new(
        "keep_days",
        &["PGKEEP_KEEP_DAYS"],
        COUNT,
        Default::Value("10"),
        "keep backups up to N days older than the newest good backup (0: off)",
    ),
    Key::new(
        "keep_last",
        &["PGKEEP_KEEP_LAST"],
        COUNT,
        Default::Value("3"),
        "never cull the newest N good backups",
    ),
    Key::new(
        "keep_daily",
        &["PGKEEP_KEEP_DAILY"],
        COUNT,
        Default::Value("0"),
        "keep the newest backup of each of the last N days (0: off)",
    ),
    Key::new(
        "keep_weekly",
        &["PGKEEP_KEEP_WEEKLY"],
        COUNT,
        Default::Value("0"),
        "keep the newest backup of each of the last N ISO weeks (0: off)",
    ),
    Key::new(
        "keep_monthly",
        &["PGKEEP_KEEP_MONTHLY"],
        COUNT,
        Default::Value("0"),
        "keep the newest backup of each of the last N months (0: off)",
    ),
    Key::new(
        "partial_max_age",
        &["PGKEEP_PARTIAL_MAX_AGE"],
        Kind::duration(60),
        Default::Value("24h"),
        "age after which culling removes unfinished verification records and uncommitted data files superseded by a newer backup (at least 1m); partial backup files go as soon as no backup of the database holds its lock",
    ),
    Key::new(
        "listen",
        &["PGKEEP_LISTEN"],
        Kind::Addr,
        Default::Value("0.0.0.0:8080"),
        "address of the HTTP API of `pgkeep run`",
    ),
    Key::new(
        "api_token",
        &["PGKEEP_API_TOKEN"],
        Kind::Text,
        Default::Unset("not set: mutating API endpoints off"),
        "bearer token of the HTTP API (printable ASCII); without it the mutating endpoints are off",
    ).secret(),
    Key::new(
        "shutdown_grace",
        &["PGKEEP_SHUTDOWN_GRACE"],
        Kind::duration(0),
        Default::Value("25s"),
        "on SIGTERM, how long a running backup may take to finish before it is aborted",
    ),
    Key::new(
        "retry_delay",
        &["PGKEEP_RETRY_DELAY"],
        Kind::Duration { min: 1, max: u64::MAX, zero_off: true },
        Default::Value("5m"),
        "`pgkeep run`: a failed scheduled or catch-up backup is retried after this delay, doubled after each failure, never at or past the next scheduled run (0: off)",
    ),
    Key::new(
        "parallel_databases",
        &["PGKEEP_PARALLEL_DATABASES"],
        Kind::Int { min: 1, max: 64 },
        Default::Value("1"),
        "`pgkeep run` over `databases`: how many databases are backed up at once",
    ),
    Key::new(
        "database_schedules",
        &["PGKEEP_DATABASE_SCHEDULES"],
        Kind::Names,
        Default::Unset("every database on `schedule`"),
        "`pgkeep run` over `databases`: NAME=CRON entries (comma-separated, or an array; a TOML table too) giving a database its own schedule instead of `schedule`",
    ),
    Key::new(
        "maintenance_listen",
        &["PGKEEP_MAINTENANCE_LISTEN"],
        Kind::Addr,
        Default::Value("0.0.0.0:8081"),
        "address of `pgkeep maintenance` (port 0 picks a free port)",
    ).flag("listen"),
    Key::new(
        "maintenance_title",
        &["PGKEEP_MAINTENANCE_TITLE"],
        Kind::Text,
        Default::Value("Down for maintenance"),
        "title and heading of the maintenance page (plain text)",
    ).flag("title"),
    Key::new(
        "maintenance_message",
        &["PGKEEP_MAINTENANCE_MESSAGE"],
        Kind::Text,
        Default::Unset("the standard message"),
        "message of the maintenance page (plain text; a blank line starts a paragraph)",
    ).flag("message"),
    Key::new(
        "maintenance_retry_after",
        &["PGKEEP_MAINTENANCE_RETRY_AFTER"],
        Kind::Duration { min: 0, max: 86_400, zero_off: false },
        Default::Value("5m"),
        "how long clients of the maintenance page are asked to wait (Retry-After)",
    ).flag("retry-after"),
];

/// Keys whose value is a list (of commands: TOML arrays of string arrays; of names: arrays of
/// strings); kept as JSON text in the raw layer so every layer (file, env, flags) carries them the same way.
pub(super) fn is_command_list(k: &Key) -> bool {
    matches!(k.kind, Kind::Commands | Kind::Names)
}

pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The known key nearest to a misspelt one, when it is near enough to be what was meant: a key
/// the name is the start of (`maintenance_retry`), else the one fewest edits away.
pub(super) fn nearest(name: &str) -> Option<&'static str> {
    if name.len() >= 4
        && let Some(k) = KEYS.iter().find(|k| k.name.starts_with(name))
    {
        return Some(k.name);
    }
    KEYS.iter()
        .map(|k| (strsim::levenshtein(name, k.name), k.name))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
