//! Safe restore: pick a backup, prove the file, plan, then execute without ever touching the live
//! database before the restored copy is proven. Strategy `swap` loads into a scratch database,
//! checks it, and renames it into place in one transaction (the downtime is that rename);
//! strategy `in-place` is the old runbook's drop/create/load for disks that cannot hold two
//! copies. Hooks scale the apps down and up around it.

pub mod hooks;
pub mod load;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use thiserror::Error;

use crate::catalog::{self, CatalogError, Entry, Manifest, Status};
use crate::lock::{Lock, LockError};
use crate::model::{Compression, Format};
use crate::pg::catalog::DatabaseInfo;
use crate::pg::ident::{quote_ident, quote_literal};
use crate::pg::tools::{Search, ToolError};
use crate::pg::{ConnParams, PgError, query_error};
use crate::pipeline::{self, Inspector};
use crate::shutdown::{Reason, Shutdown};
use crate::storage::{LocalStore, StorageError};
pub use load::{Checked, Input, LoadError, Loader, ScratchLoad, Tools};

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// No backup matches the selection.
    #[error("{0}")]
    NoBackup(String),
    /// Stopped before anything was changed (checksum, incomplete file, roles, privileges,
    /// a failed pre-restore hook).
    #[error("{0}; nothing was changed")]
    Refused(String),
    #[error("{source}; {state}")]
    Load { source: LoadError, state: String },
    #[error("the swap failed: {0}")]
    Swap(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The restore failed and post-restore hooks failed as well.
    #[error("{source}; {hooks}")]
    WithHooks {
        #[source]
        source: Box<RestoreError>,
        hooks: String,
    },
    #[error("interrupted by {}; {state}", .reason.name())]
    Interrupted { reason: Reason, state: String },
}

impl crate::exit::ExitCode for RestoreError {
    fn exit_code(&self) -> u8 {
        use crate::exit::{FAILED, REFUSED, STORAGE, USAGE};
        match self {
            RestoreError::Refused(_) => REFUSED,
            RestoreError::NoBackup(_) => USAGE,
            RestoreError::Interrupted { reason, .. } => reason.exit_code(),
            RestoreError::Load { source, .. } => source.exit_code(),
            RestoreError::Swap(_) | RestoreError::Io { .. } => FAILED,
            // The connection worked; a statement of the restore failed.
            RestoreError::Pg(PgError::Query { .. }) => FAILED,
            RestoreError::Pg(e) => e.exit_code(),
            RestoreError::Tool(e) => e.exit_code(),
            RestoreError::Storage(_) | RestoreError::Catalog(_) => STORAGE,
            RestoreError::Lock(e) => e.exit_code(),
            RestoreError::WithHooks { source, .. } => source.exit_code(),
        }
    }
}

/// How a backup is chosen.
#[derive(Debug, Clone)]
pub enum Selector {
    /// The newest good backup of the database (the newest legacy file when there is none).
    Latest,
    /// A backup id (or a unique prefix of one).
    Id(String),
    /// A file, inside the backup directory or not; its manifest is used when it lies beside it.
    File(PathBuf),
    /// The newest good backup started before this time.
    Before(Timestamp),
}

/// The chosen backup.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub id: String,
    pub path: PathBuf,
    pub format: Format,
    pub compression: Compression,
    pub stored_bytes: u64,
    pub time: Option<Timestamp>,
    /// `None` for legacy files (the old pod's `.sql.gz` without manifest).
    pub manifest: Option<Manifest>,
}

impl Chosen {
    pub fn is_legacy(&self) -> bool {
        self.manifest.is_none()
    }

    pub fn input(&self) -> Input {
        Input {
            path: self.path.clone(),
            format: self.format,
            compression: self.compression,
        }
    }
}

fn from_entry(dir: &Path, e: &Entry) -> Chosen {
    Chosen {
        id: e.id.clone(),
        path: dir.join(&e.file),
        format: e.format,
        compression: e.compression,
        stored_bytes: e.stored_bytes,
        time: Some(e.time),
        manifest: e.manifest.clone(),
    }
}

/// Parse `--before`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD` (UTC).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let utc = |dt: jiff::civil::DateTime| dt.to_zoned(jiff::tz::TimeZone::UTC).ok();
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = jiff::civil::DateTime::strptime(f, s) {
            return utc(dt).map(|z| z.timestamp());
        }
    }
    jiff::civil::Date::strptime("%Y-%m-%d", s)
        .ok()
        .and_then(|d| utc(d.to_datetime(jiff::civil::Time::midnight())))
        .map(|z| z.timestamp())
}

/// Pick a backup of `database` from `dir`.
pub fn choose(
    dir: &Path,
    host_hint: &str,
    database: &str,
    selector: &Selector,
) -> Result<Chosen, RestoreError> {
    if let Selector::File(p) = selector {
        return chosen_file(dir, p);
    }
    let store = LocalStore::open(dir)?;
    let entries = catalog::list(&store, Some(host_hint))?;
    let of_db: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.database.as_deref() == Some(database))
        .collect();
    let none = |what: String| RestoreError::NoBackup(format!("{what} in {}", dir.display()));
    match selector {
        Selector::Latest => of_db
            .iter()
            .find(|e| e.status == Status::Good)
            .or_else(|| of_db.first())
            .map(|e| from_entry(dir, e))
            .ok_or_else(|| none(format!("no backup of database \"{database}\""))),
        Selector::Before(t) => of_db
            .iter()
            .find(|e| e.status == Status::Good && e.time < *t)
            .or_else(|| of_db.iter().find(|e| e.time < *t))
            .map(|e| from_entry(dir, e))
            .ok_or_else(|| none(format!("no backup of database \"{database}\" before {t}"))),
        Selector::Id(id) => {
            if let Some(e) = entries.iter().find(|e| e.id == *id) {
                return Ok(from_entry(dir, e));
            }
            let matches: Vec<&Entry> = entries
                .iter()
                .filter(|e| e.id.starts_with(id.as_str()))
                .collect();
            match matches.as_slice() {
                [e] => Ok(from_entry(dir, e)),
                [] => Err(none(format!("no backup with id `{id}`"))),
                many => Err(RestoreError::NoBackup(format!(
                    "backup id `{id}` is ambiguous: {}",
                    many.iter()
                        .map(|e| e.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
        Selector::File(_) => unreachable!(),
    }
}

fn chosen_file(dir: &Path, p: &Path) -> Result<Chosen, RestoreError> {
    let path = if p.is_file() || p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    let meta = std::fs::metadata(&path).map_err(|e| {
        RestoreError::NoBackup(format!("cannot read backup file {}: {e}", path.display()))
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest_path = PathBuf::from(format!("{}{}", path.display(), catalog::MANIFEST_SUFFIX));
    let manifest = if manifest_path.is_file() {
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| RestoreError::Io {
            context: format!("cannot read {}", manifest_path.display()),
            source: e,
        })?;
        Some(
            serde_json::from_str::<Manifest>(&text).map_err(|e| CatalogError::BadManifest {
                name: manifest_path.display().to_string(),
                message: e.to_string(),
            })?,
        )
    } else {
        None
    };
    let (format, compression) = match &manifest {
        Some(m) => (m.format, m.compression),
        None if name.ends_with(".gz") => (Format::Plain, Compression::Gzip),
        None if name.ends_with(".zst") => (Format::Plain, Compression::Zstd),
        None if name.ends_with(".dump") => (Format::Custom, Compression::None),
        None if name.ends_with(".sql") => (Format::Plain, Compression::None),
        None => {
            return Err(RestoreError::NoBackup(format!(
                "{} is not a backup file pgkeep can restore (.sql.gz, .sql.zst, .sql or .dump)",
                path.display()
            )));
        }
    };
    Ok(Chosen {
        id: catalog::id_of(&name),
        path,
        format,
        compression,
        stored_bytes: meta.len(),
        time: manifest.as_ref().map(|m| m.started_at),
        manifest,
    })
}

/// Restore strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Swap,
    InPlace,
}

/// Everything a restore needs, passed in by the command layer.
pub struct Request {
    pub backup: Chosen,
    /// The database to restore into.
    pub target: String,
    pub strategy: Strategy,
    /// Admin connection to the target server (its dbname is ignored: a maintenance database is
    /// used).
    pub admin: ConnParams,
    pub search: Search,
    pub jobs: usize,
    pub checks: Vec<String>,
    pub create_roles: bool,
    pub drop_previous: bool,
    pub pre_hooks: Vec<Vec<String>>,
    pub post_hooks: Vec<Vec<String>>,
    pub hook_timeout: Duration,
    /// Environment children may see (free of secrets).
    pub child_env: Vec<(String, String)>,
    pub tmp_dir: PathBuf,
    pub shutdown: Shutdown,
    pub now: Timestamp,
}

/// What a read-only preflight found.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub server_version: String,
    pub server_version_num: u32,
    pub admin_user: String,
    pub superuser: bool,
    pub maintenance_db: String,
    /// The target database exists (it is "live").
    pub target_exists: bool,
    /// Sessions connected to the live database now.
    pub live_sessions: i64,
    pub live_size: Option<i64>,
    /// Properties the scratch database gets: the manifest's, else the live database's.
    pub info: Option<DatabaseInfo>,
    pub info_source: &'static str,
    pub roles_needed: BTreeSet<String>,
    pub roles_missing: Vec<String>,
    /// Privileges the admin role lacks, each a sentence.
    pub missing_privileges: Vec<String>,
    pub tools: Tools,
    pub scratch: String,
    pub previous: String,
    /// The file was read fully: checksum matched (or, for legacy files, it decompressed and ended
    /// with pg_dump's trailer).
    pub file_check: String,
    pub file_check_duration: Duration,
    /// Row counts seen in a legacy file (none for manifest backups: the manifest has them).
    pub legacy_rows: Option<BTreeMap<String, u64>>,
}

/// One step of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    /// SQL statements or command lines, as they will run.
    pub details: Vec<String>,
}

/// The plan that `--dry-run` prints and `execute` follows.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
    /// Rough space the restore needs on the server.
    pub space: String,
}

/// What a finished restore did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub phases: Vec<(&'static str, Duration)>,
    /// From blocking connections to the commit of the rename (swap), or from the drop to the
    /// rename (in-place).
    pub downtime: Option<Duration>,
    /// The kept previous copy (swap), if any and not dropped.
    pub previous: Option<String>,
    pub previous_dropped: bool,
    pub tables_checked: usize,
    pub rows_checked: u64,
    pub pre_hooks: Vec<hooks::HookResult>,
    pub post_hooks: Vec<hooks::HookResult>,
    pub notes: Vec<String>,
    pub roles_created: Vec<String>,
}

const MAX_IDENT: usize = 63;

/// `<db><suffix>`, the database part cut (at a character boundary) so the whole fits in 63 bytes.
pub fn suffixed(db: &str, suffix: &str) -> String {
    let room = MAX_IDENT.saturating_sub(suffix.len());
    let mut cut = db.len().min(room);
    while !db.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &db[..cut])
}

pub fn stamp(now: Timestamp) -> String {
    now.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y%m%d_%H%M%S")
        .to_string()
}

/// Name of the kept previous copy.
pub fn previous_name(db: &str, now: Timestamp) -> String {
    suffixed(db, &format!("_before_restore_{}", stamp(now)))
}

/// Name of the scratch database.
pub fn scratch_name(db: &str, now: Timestamp) -> String {
    suffixed(db, &format!("_restoring_{}", stamp(now)))
}

/// Roles a backup references (built-in `pg_*` roles excluded).
pub fn roles_of(info: &DatabaseInfo) -> BTreeSet<String> {
    let mut r: BTreeSet<String> = info.roles.iter().cloned().collect();
    r.insert(info.owner.clone());
    r.extend(
        info.grants
            .iter()
            .filter(|g| g.grantee != "PUBLIC")
            .map(|g| g.grantee.clone()),
    );
    r.extend(info.settings.iter().filter_map(|s| s.role.clone()));
    r.retain(|n| !n.starts_with("pg_"));
    r
}

/// Roles the database itself needs: owner, grantees of database privileges, roles with
/// database settings.
pub fn roles_of_database(info: &DatabaseInfo) -> BTreeSet<String> {
    let mut r = BTreeSet::new();
    r.insert(info.owner.clone());
    r.extend(
        info.grants
            .iter()
            .filter(|g| g.grantee != "PUBLIC")
            .map(|g| g.grantee.clone()),
    );
    r.extend(info.settings.iter().filter_map(|s| s.role.clone()));
    r.retain(|n| !n.starts_with("pg_"));
    r
}

/// Roles named by the dump's statements (a plain file is read through; a custom archive's
/// schema is listed with `pg_restore --schema-only`).
pub fn dump_roles(
    backup: &Chosen,
    pg_restore: &Path,
    env: &[(String, String)],
) -> Result<BTreeSet<String>, RestoreError> {
    match backup.format {
        Format::Plain => {
            let input = backup.input();
            let file = std::fs::File::open(&input.path).map_err(|e| RestoreError::Io {
                context: format!("cannot open {}", input.path.display()),
                source: e,
            })?;
            let reader =
                pipeline::decoder(file, input.compression).map_err(|e| RestoreError::Io {
                    context: format!("cannot read {}", input.path.display()),
                    source: e,
                })?;
            Ok(roles_in_dump(std::io::BufReader::new(reader)))
        }
        Format::Custom => {
            let spec = crate::process::Spec::new(pg_restore)
                .envs(env.iter().cloned())
                .arg("--schema-only")
                .arg("--file=-")
                .arg(&backup.path);
            let (outcome, out) =
                crate::process::output(&spec, None).map_err(|e| RestoreError::Io {
                    context: "cannot run pg_restore".into(),
                    source: e,
                })?;
            if !outcome.success() {
                return Err(RestoreError::Refused(format!(
                    "the archive's schema does not read: {}",
                    outcome.describe()
                )));
            }
            Ok(roles_in_dump(&out[..]))
        }
    }
}

/// Collects the roles named by a plain dump's statements, line by line (COPY data skipped).
#[derive(Default)]
struct RoleScanner {
    roles: BTreeSet<String>,
    in_copy: bool,
}

impl RoleScanner {
    /// Look at one line, with its newline.
    fn line(&mut self, line: &[u8]) {
        if self.in_copy {
            self.in_copy = line != b"\\.\n";
            return;
        }
        if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;\n") {
            self.in_copy = true;
            return;
        }
        if let Ok(text) = std::str::from_utf8(line)
            && let Some(role) = roles_in_line(text.trim_end())
        {
            self.roles.insert(role);
        }
    }
}

/// Roles named by the statements of a plain dump read from `r` (COPY data skipped).
fn roles_in_dump(mut r: impl std::io::BufRead) -> BTreeSet<String> {
    let mut scanner = RoleScanner::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => scanner.line(&line),
        }
    }
    scanner.roles
}

/// The identifier at the start of `s` (quoted or not), unquoted.
fn leading_ident(s: &str) -> Option<String> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    out.push('"');
                    chars.next();
                } else {
                    return Some(out);
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let id: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        (!id.is_empty()).then_some(id)
    }
}

/// Roles named by a statement line of a plain dump (`OWNER TO x`, `GRANT .. TO x`,
/// `REVOKE .. FROM x`).
pub fn roles_in_line(line: &str) -> Option<String> {
    let role = if line.starts_with("ALTER ") {
        line.rfind(" OWNER TO ")
            .and_then(|i| leading_ident(&line[i + 10..]))
    } else if line.starts_with("GRANT ") {
        line.rfind(" TO ")
            .and_then(|i| leading_ident(&line[i + 4..]))
    } else if line.starts_with("REVOKE ") {
        line.rfind(" FROM ")
            .and_then(|i| leading_ident(&line[i + 6..]))
    } else {
        None
    }?;
    (role != "PUBLIC" && !role.starts_with("pg_")).then_some(role)
}

/// What reading a legacy file found: its row counts and trailer, and the roles it names.
pub type LegacyScan = (pipeline::Report, BTreeSet<String>);

/// Read a legacy plain file fully: it must decompress and end with pg_dump's trailer. Returns its
/// row counts and the roles it references.
pub fn scan_plain(input: &Input) -> Result<LegacyScan, RestoreError> {
    let file = std::fs::File::open(&input.path).map_err(|e| RestoreError::Io {
        context: format!("cannot open {}", input.path.display()),
        source: e,
    })?;
    let reader = pipeline::decoder(file, input.compression).map_err(|e| RestoreError::Io {
        context: format!("cannot read {}", input.path.display()),
        source: e,
    })?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, reader);
    let mut inspector = Inspector::new();
    let mut scanner = RoleScanner::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(|e| {
            RestoreError::Refused(format!("{} does not decompress: {e}", input.path.display()))
        })?;
        if n == 0 {
            break;
        }
        inspector.feed(&line);
        scanner.line(&line);
    }
    let roles = scanner.roles;
    let report = inspector.finish();
    if let Some(reason) = report.incomplete_reason() {
        return Err(RestoreError::Refused(format!(
            "{} is incomplete: {reason}",
            input.path.display()
        )));
    }
    Ok((report, roles))
}

/// Check the file before anything else: the manifest's sha256 and size, or for legacy files a
/// full read (decompress, trailer, row counts, roles).
pub fn check_file(backup: &Chosen) -> Result<(String, Option<LegacyScan>), RestoreError> {
    match &backup.manifest {
        Some(m) => {
            let file = std::fs::File::open(&backup.path).map_err(|e| RestoreError::Io {
                context: format!("cannot open {}", backup.path.display()),
                source: e,
            })?;
            let (bytes, sha) = pipeline::hash_reader(file).map_err(|e| RestoreError::Io {
                context: format!("cannot read {}", backup.path.display()),
                source: e,
            })?;
            if bytes != m.stored_bytes || sha != m.sha256 {
                return Err(RestoreError::Refused(format!(
                    "{} does not match its manifest (size {bytes}, sha256 {}; the manifest says size {}, sha256 {}): the file is damaged or truncated",
                    backup.path.display(),
                    &sha[..16],
                    m.stored_bytes,
                    &m.sha256[..m.sha256.len().min(16)]
                )));
            }
            Ok((
                format!("sha256 {} matches the manifest ({bytes} bytes)", &sha[..16]),
                None,
            ))
        }
        None if backup.format == Format::Plain => {
            let (report, roles) = scan_plain(&backup.input())?;
            Ok((
                format!(
                    "legacy file (no manifest, no checksum): read fully, it decompresses and ends with pg_dump's trailer; {} tables, {} rows",
                    report.tables.len(),
                    report.tables.values().sum::<u64>()
                ),
                Some((report, roles)),
            ))
        }
        None => Ok((
            "custom archive without manifest: no checksum to compare".into(),
            None,
        )),
    }
}

/// The admin connection to `dbname`, its password resolved once: the configured one, else the
/// passfile's entry for the maintenance database or for the target database (a passfile entry
/// naming only the application database must also serve the scratch and maintenance ones).
pub fn effective_admin(req: &Request, dbname: &str) -> ConnParams {
    let mut admin = req.admin.with_dbname(dbname);
    if admin.password.is_none() {
        admin.password = admin
            .resolve_password()
            .or_else(|| req.admin.with_dbname(&req.target).resolve_password());
    }
    admin
}

/// Read-only preflight: file check, server, privileges, roles, tools, names. Changes nothing.
pub async fn preflight(req: &Request) -> Result<Preflight, RestoreError> {
    let t = Instant::now();
    let (file_check, legacy) = check_file(&req.backup)?;
    let file_check_duration = t.elapsed();
    let maintenance_db = if req.target == "postgres" {
        "template1"
    } else {
        "postgres"
    }
    .to_string();
    let admin = effective_admin(req, &maintenance_db);
    let client = admin.connect().await?;
    let server = crate::pg::catalog::server_info(&client).await?;
    let ctx = "reading the admin role's privileges";
    let me = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolcreatedb, rolcreaterole, \
             pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| query_error(ctx, e))?;
    let admin_user: String = me.get(0);
    let superuser: bool = me.get(1);
    let createdb: bool = me.get(2);
    let createrole: bool = me.get(3);
    let signal: bool = me.get(4);
    let live = client
        .query_opt(
            "SELECT pg_get_userbyid(d.datdba), d.datallowconn, pg_database_size(d.oid), \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname), \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname \
                AND NOT pg_has_role(current_user, a.usesysid, 'MEMBER')) \
             FROM pg_database d WHERE d.datname = $1",
            &[&req.target],
        )
        .await
        .map_err(|e| query_error("looking up the target database", e))?;
    let target_exists = live.is_some();
    let foreign_sessions: i64 = live.as_ref().map_or(0, |r| r.get(4));
    let (live_owner, live_size, live_sessions) = match &live {
        Some(r) => (
            Some(r.get::<_, String>(0)),
            Some(r.get::<_, i64>(2)),
            r.get::<_, i64>(3),
        ),
        None => (None, None, 0),
    };
    // The properties the restored database gets.
    let (info, info_source) = match (&req.backup.manifest, target_exists) {
        (Some(m), _) => (Some(m.database_info.clone()), "the manifest"),
        (None, true) => {
            let c = admin.with_dbname(&req.target).connect().await?;
            (
                Some(crate::pg::catalog::database_info(&c).await?),
                "the live database (the legacy file has no manifest)",
            )
        }
        (None, false) => (
            None,
            "the server's defaults (legacy file, no live database)",
        ),
    };
    let tools = Tools::find(server.version_num, &req.search)?;
    // Roles certainly needed: the owner, grantees and settings roles of the database, and the
    // roles a legacy file names. The manifest's wider list (every role owning anything in the
    // database, built-in objects included) is checked against the dump itself before a role is
    // reported missing.
    let mut roles_needed = info.as_ref().map(roles_of_database).unwrap_or_default();
    if let Some((_, roles)) = &legacy {
        roles_needed.extend(roles.iter().cloned());
    }
    let maybe: BTreeSet<String> = info
        .as_ref()
        .map(roles_of)
        .unwrap_or_default()
        .difference(&roles_needed)
        .cloned()
        .collect();
    let lookup = |names: Vec<String>| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
                    &[&names],
                )
                .await
                .map_err(|e| query_error("looking up roles", e))
                .map(|rows| rows.iter().map(|r| r.get(0)).collect::<BTreeSet<String>>())
        }
    };
    let maybe_existing = lookup(maybe.iter().cloned().collect()).await?;
    let maybe_missing: Vec<&String> = maybe.difference(&maybe_existing).collect();
    if !maybe_missing.is_empty() {
        let named = dump_roles(&req.backup, &tools.pg_restore, &req.child_env)?;
        roles_needed.extend(
            maybe_missing
                .into_iter()
                .filter(|r| named.contains(*r))
                .cloned(),
        );
    }
    roles_needed.extend(maybe_existing.iter().cloned());
    let existing = lookup(roles_needed.iter().cloned().collect()).await?;
    let roles_missing: Vec<String> = roles_needed.difference(&existing).cloned().collect();

    let mut missing_privileges = Vec::new();
    if !superuser {
        if !createdb {
            missing_privileges.push(format!(
                "role \"{admin_user}\" lacks CREATEDB (needed to create the scratch database; ALTER ROLE {} CREATEDB, or set PGKEEP_ADMIN_USER to a role that has it)",
                quote_ident(&admin_user)
            ));
        }
        if req.create_roles && !roles_missing.is_empty() && !createrole {
            missing_privileges.push(format!(
                "role \"{admin_user}\" lacks CREATEROLE (needed by --create-roles)"
            ));
        }
        // Objects are given to their owners and grants made in their names: membership needed.
        // Non-superusers must be able to act as the owners: of the restored database (CREATE
        // DATABASE .. OWNER, its objects' ALTER .. OWNER TO) and of the live one (rename/drop).
        let check: Vec<String> = info
            .as_ref()
            .map(|i| i.owner.clone())
            .into_iter()
            .chain(live_owner.clone())
            .collect();
        let not_member: Vec<String> = client
            .query(
                "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) AND NOT pg_has_role(current_user, oid, 'MEMBER') ORDER BY 1",
                &[&check],
            )
            .await
            .map_err(|e| query_error(ctx, e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !not_member.is_empty() {
            missing_privileges.push(format!(
                "role \"{admin_user}\" is not a member of {} (needed to give the restored database its owner and to rename or drop the live one; GRANT the role to it or use a superuser)",
                not_member.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ")
            ));
        }
        if target_exists && foreign_sessions > 0 && !signal {
            missing_privileges.push(format!(
                "role \"{admin_user}\" lacks pg_signal_backend (needed to end the {foreign_sessions} sessions of other roles on \"{}\"; GRANT pg_signal_backend TO {})",
                req.target,
                quote_ident(&admin_user)
            ));
        }
    }
    Ok(Preflight {
        server_version: server.version,
        server_version_num: server.version_num,
        admin_user,
        superuser,
        maintenance_db,
        target_exists,
        live_sessions,
        live_size,
        info,
        info_source,
        roles_needed,
        roles_missing,
        missing_privileges,
        tools,
        scratch: scratch_name(&req.target, req.now),
        previous: previous_name(&req.target, req.now),
        file_check,
        file_check_duration,
        legacy_rows: legacy.map(|(r, _)| r.tables),
    })
}

/// Why preflight forbids the restore, if it does.
pub fn refusal(req: &Request, pre: &Preflight) -> Option<String> {
    if !pre.missing_privileges.is_empty() {
        return Some(pre.missing_privileges.join("; "));
    }
    if !pre.roles_missing.is_empty() && !req.create_roles {
        return Some(format!(
            "the backup references roles that do not exist on the target server: {} (create them, or pass --create-roles to create them without passwords)",
            pre.roles_missing
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    None
}

/// SQL that blocks new connections to `db` (nobody, not even superusers, can connect).
pub fn block_sql(db: &str) -> String {
    format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
        quote_ident(db)
    )
}

pub fn unblock_sql(db: &str) -> String {
    format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
        quote_ident(db)
    )
}

pub fn terminate_sql(db: &str) -> String {
    format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
        quote_literal(db)
    )
}

/// The swap: both renames in one transaction.
pub fn swap_sql(live: &str, previous: &str, scratch: &str) -> Vec<String> {
    vec![
        "BEGIN".into(),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(live),
            quote_ident(previous)
        ),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(scratch),
            quote_ident(live)
        ),
        "COMMIT".into(),
    ]
}

pub fn create_role_sql(role: &str) -> String {
    format!("CREATE ROLE {}", quote_ident(role))
}

/// The plan, built from the same SQL builders that `execute` runs.
pub fn plan(req: &Request, pre: &Preflight) -> Plan {
    let mut steps = Vec::new();
    let db = &req.target;
    let b = &req.backup;
    let mut push = |title: String, details: Vec<String>| steps.push(Step { title, details });
    push(
        format!("check the backup file {}", b.path.display()),
        vec![pre.file_check.clone()],
    );
    if !req.pre_hooks.is_empty() {
        push(
            format!(
                "run the pre-restore hooks (each stopped after {}s; a failure stops the restore)",
                req.hook_timeout.as_secs()
            ),
            req.pre_hooks.iter().map(|h| hooks::show_argv(h)).collect(),
        );
    }
    if !pre.roles_missing.is_empty() && req.create_roles {
        push(
            "create the missing roles (no password, no login privileges beyond the default)".into(),
            pre.roles_missing
                .iter()
                .map(|r| create_role_sql(r))
                .collect(),
        );
    }
    let info = pre.info.as_ref();
    let load_cmd = load::load_command(&pre.tools, &b.input(), &pre.scratch, req.jobs);
    let load_line = format!(
        "{}{} {}",
        if b.format == Format::Plain {
            format!("decompress {} | ", b.path.display())
        } else {
            String::new()
        },
        load_cmd.program.display(),
        load_cmd
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let check_lines = |checks: &[String]| -> Vec<String> {
        let mut v = vec![match (&b.manifest, &pre.legacy_rows) {
            (Some(m), _) => format!(
                "compare the row counts of {} tables ({} rows) with the manifest",
                m.tables.len(),
                m.total_rows()
            ),
            (None, Some(r)) => format!(
                "no manifest: no row counts recorded at backup time to check; compare the {} tables with the counts read from the file itself",
                r.len()
            ),
            (None, None) => "no manifest: no row-count check is possible".into(),
        }];
        v.extend(
            checks
                .iter()
                .map(|c| format!("check (must return rows): {c}")),
        );
        v
    };
    let mut create = vec![load::create_database_sql(&pre.scratch, info)];
    create.extend(load::grants_sql(&pre.scratch, info));
    let in_place = req.strategy == Strategy::InPlace && pre.target_exists;
    if in_place {
        push(
            format!(
                "IN PLACE: block connections to \"{db}\", end its sessions and DROP it; from here until the end the database is GONE"
            ),
            vec![
                block_sql(db),
                terminate_sql(db),
                load::drop_database_sql(db, pre.server_version_num),
            ],
        );
    }
    push(
        format!(
            "create the scratch database \"{}\" with the properties of {}",
            pre.scratch, pre.info_source
        ),
        create,
    );
    push(
        format!("load the backup into \"{}\" (one transaction)", pre.scratch),
        vec![load_line],
    );
    push("check the restored copy".into(), check_lines(&req.checks));
    let settings = load::settings_sql(&pre.scratch, info);
    if !settings.is_empty() {
        push("apply the recorded database settings".into(), settings);
    }
    if pre.target_exists && !in_place {
        let mut d = vec![block_sql(db), terminate_sql(db)];
        d.extend(swap_sql(db, &pre.previous, &pre.scratch));
        push(
            format!(
                "swap (the downtime): block new connections to \"{db}\", end its {} sessions, rename it to \"{}\" and the scratch database to \"{db}\" in one transaction",
                pre.live_sessions, pre.previous
            ),
            d,
        );
    } else {
        push(
            format!("rename the scratch database to \"{db}\""),
            vec![format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&pre.scratch),
                quote_ident(db)
            )],
        );
    }
    if !req.post_hooks.is_empty() {
        push(
            "run the post-restore hooks (also when the restore failed after the pre-restore hooks ran)".into(),
            req.post_hooks.iter().map(|h| hooks::show_argv(h)).collect(),
        );
    }
    if pre.target_exists && !in_place {
        if req.drop_previous {
            push(
                format!("drop the previous copy \"{}\"", pre.previous),
                vec![load::drop_database_sql(
                    &pre.previous,
                    pre.server_version_num,
                )],
            );
        } else {
            push(
                format!(
                    "keep the previous copy \"{}\" (connections disabled) until `pgkeep cleanup` drops it",
                    pre.previous
                ),
                vec![],
            );
        }
    }
    let mut notes = Vec::new();
    if b.is_legacy() {
        notes.push("legacy file: no manifest, so neither a checksum nor the row counts recorded at backup time can be checked".into());
    }
    if in_place {
        notes.push(format!(
            "strategy in-place: \"{db}\" is dropped before the load; if the load fails it stays gone until a restore succeeds"
        ));
    }
    let need = match (&b.manifest, pre.live_size) {
        (Some(m), _) => format!(
            "about {} free in the server's data directory (the database's size at backup time){}",
            crate::report::human_bytes(m.database_info.size_bytes.max(0) as u64),
            if pre.target_exists && !in_place {
                "; the previous copy stays until cleanup"
            } else {
                ""
            }
        ),
        (None, Some(s)) => format!(
            "about {} free in the server's data directory (the live database's size now)",
            crate::report::human_bytes(s.max(0) as u64)
        ),
        (None, None) => "unknown (legacy file and no live database)".into(),
    };
    Plan {
        steps,
        notes,
        space: need,
    }
}

/// The restore lock of one target database.
pub fn lock_path(tmp_dir: &Path, admin: &ConnParams, db: &str) -> PathBuf {
    tmp_dir.join(format!(
        ".pgkeep-restore-{}-{}-{}.lock",
        catalog::host_label(&admin.host),
        admin.port,
        catalog::sanitize(db)
    ))
}

/// Run the restore (after preflight and confirmation).
pub async fn execute(req: &Request, pre: &Preflight) -> Result<Report, RestoreError> {
    if let Some(why) = refusal(req, pre) {
        return Err(RestoreError::Refused(why));
    }
    let _lock = Lock::acquire(
        &lock_path(&req.tmp_dir, &req.admin, &req.target),
        &format!(
            "restore of database \"{}\" by pid {}",
            req.target,
            std::process::id()
        ),
    )?;
    let mut report = Report::default();
    report.phases.push(("check file", pre.file_check_duration));
    if req.backup.is_legacy() {
        report.notes.push(
            "legacy file without manifest: no row counts recorded at backup time could be checked (counts were compared with the file's own data only)".into(),
        );
    }
    let hook_env = |phase: &str, outcome: &str| {
        let mut env = req.child_env.clone();
        env.push(("PGKEEP_DATABASE".into(), req.target.clone()));
        env.push(("PGKEEP_HOOK".into(), phase.into()));
        env.push(("PGKEEP_RESTORE_OUTCOME".into(), outcome.into()));
        env
    };
    let t = Instant::now();
    if !req.pre_hooks.is_empty() {
        let pre_hooks = req.pre_hooks.clone();
        let env = hook_env("pre_restore", "pending");
        let timeout = req.hook_timeout;
        report.pre_hooks =
            tokio::task::spawn_blocking(move || hooks::run_all(&pre_hooks, timeout, &env, true))
                .await
                .unwrap_or_default();
        report.phases.push(("pre-restore hooks", t.elapsed()));
    }
    let result = match report.pre_hooks.iter().find(|h| !h.ok) {
        Some(h) => Err(RestoreError::Refused(format!(
            "pre-restore hook `{}` failed: {}",
            hooks::show_argv(&h.argv),
            h.message
        ))),
        None => run_core(req, pre, &mut report).await,
    };
    // Post-restore hooks run whatever happened, so the apps come back.
    if !req.post_hooks.is_empty() {
        let t = Instant::now();
        let post = req.post_hooks.clone();
        let env = hook_env(
            "post_restore",
            if result.is_ok() { "success" } else { "failure" },
        );
        let timeout = req.hook_timeout;
        report.post_hooks =
            tokio::task::spawn_blocking(move || hooks::run_all(&post, timeout, &env, false))
                .await
                .unwrap_or_default();
        report.phases.push(("post-restore hooks", t.elapsed()));
    }
    match result {
        Ok(()) => Ok(report),
        Err(e) => {
            let failed: Vec<String> = report
                .post_hooks
                .iter()
                .filter(|h| !h.ok)
                .map(|h| {
                    format!(
                        "post-restore hook `{}` failed too: {}",
                        hooks::show_argv(&h.argv),
                        h.message
                    )
                })
                .collect();
            if failed.is_empty() {
                Err(e)
            } else {
                Err(RestoreError::WithHooks {
                    source: Box::new(e),
                    hooks: failed.join("; "),
                })
            }
        }
    }
}

async fn run_core(req: &Request, pre: &Preflight, report: &mut Report) -> Result<(), RestoreError> {
    let admin = effective_admin(req, &pre.maintenance_db);
    // Children (psql, pg_restore) connect to the scratch database: give them the password in a
    // private passfile that matches any database name.
    let passfile = match &admin.password {
        Some(pw) => Some(
            crate::pg::passfile::PrivatePassfile::create(&req.tmp_dir, pw).map_err(|source| {
                RestoreError::Io {
                    context: format!(
                        "cannot create a private passfile in {}",
                        req.tmp_dir.display()
                    ),
                    source,
                }
            })?,
        ),
        _ => None,
    };
    let loader = Loader {
        admin: &admin,
        tools: &pre.tools,
        child_env: &req.child_env,
        passfile: passfile.as_ref().map(|p| p.path()),
        shutdown: &req.shutdown,
        server_version_num: pre.server_version_num,
    };
    let db = req.target.as_str();
    let client = admin.connect().await?;
    let exec = |sql: String, what: String| {
        let client = &client;
        async move {
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| RestoreError::Pg(query_error(&what, e)))
        }
    };
    if req.create_roles && !pre.roles_missing.is_empty() {
        for r in &pre.roles_missing {
            exec(create_role_sql(r), format!("creating role \"{r}\"")).await?;
            report.roles_created.push(r.clone());
        }
    }
    let in_place = req.strategy == Strategy::InPlace && pre.target_exists;
    let mut down_since = None;
    if in_place {
        let t = Instant::now();
        down_since = Some(t);
        exec(block_sql(db), format!("blocking connections to \"{db}\"")).await?;
        exec(
            terminate_sql(db),
            format!("ending the sessions of \"{db}\""),
        )
        .await?;
        exec(
            load::drop_database_sql(db, pre.server_version_num),
            format!("dropping \"{db}\""),
        )
        .await?;
        report.phases.push(("drop (in-place)", t.elapsed()));
    }
    let gone = |what: &str| {
        if in_place {
            format!(
                "the in-place restore had already dropped \"{db}\": it does not exist until a restore succeeds{what}"
            )
        } else if pre.target_exists {
            format!("the live database \"{db}\" was not changed{what}")
        } else {
            format!("\"{db}\" was not created{what}")
        }
    };
    let input = req.backup.input();
    let expected = req.backup.manifest.as_ref().map(|m| &m.tables);
    let scratch = ScratchLoad {
        database: &pre.scratch,
        input: &input,
        info: pre.info.as_ref(),
        expected: expected.or(pre.legacy_rows.as_ref()),
        checks: &req.checks,
        jobs: req.jobs,
    };
    let checked = match loader.load_and_check(&scratch).await {
        Ok(c) => c,
        Err(LoadError::Interrupted(reason)) => {
            return Err(RestoreError::Interrupted {
                reason,
                state: gone("; the scratch database was dropped"),
            });
        }
        Err(source) => {
            return Err(RestoreError::Load {
                source,
                state: gone("; the scratch database was dropped"),
            });
        }
    };
    report.phases.push(("create scratch", checked.create));
    report.phases.push(("load", checked.load.duration));
    report.phases.push(("row counts", checked.count));
    if !req.checks.is_empty() {
        report.phases.push(("checks", checked.checks));
    }
    report.tables_checked = checked.tables_checked;
    report.rows_checked = checked.rows_checked;
    if let Some(r) = req.shutdown.reason() {
        let _ = loader.drop(&pre.scratch).await;
        return Err(RestoreError::Interrupted {
            reason: r,
            state: gone("; the scratch database was dropped"),
        });
    }

    let t = Instant::now();
    if pre.target_exists && !in_place {
        match swap(&client, db, &pre.previous, &pre.scratch).await {
            Ok(down) => report.downtime = Some(down),
            Err(e) => {
                let _ = loader.drop(&pre.scratch).await;
                return Err(RestoreError::Swap(format!(
                    "{e}; \"{db}\" was left as it was (connections allowed again) and the scratch database was dropped"
                )));
            }
        }
        report.previous = Some(pre.previous.clone());
    } else {
        if let Err(e) = rename_scratch(&client, &pre.scratch, db).await {
            let _ = loader.drop(&pre.scratch).await;
            return Err(RestoreError::Pg(e));
        }
        if let Some(since) = down_since {
            report.downtime = Some(since.elapsed());
        }
    }
    report.phases.push(("swap", t.elapsed()));
    if req.drop_previous
        && let Some(prev) = report.previous.clone()
    {
        let t = Instant::now();
        match loader.drop(&prev).await {
            Ok(()) => report.previous_dropped = true,
            Err(e) => report
                .notes
                .push(format!("could not drop the previous copy \"{prev}\": {e}")),
        }
        report.phases.push(("drop previous", t.elapsed()));
    }
    Ok(())
}

/// Rename the scratch database to its final name, retrying while the load's own connections
/// are still ending ("being accessed by other users").
async fn rename_scratch(
    client: &tokio_postgres::Client,
    scratch: &str,
    name: &str,
) -> Result<(), PgError> {
    let sql = format!(
        "ALTER DATABASE {} RENAME TO {}",
        quote_ident(scratch),
        quote_ident(name)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e)
                if e.as_db_error().is_some_and(|d| d.code().code() == "55006")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                return Err(query_error(
                    &format!("renaming the scratch database to \"{name}\""),
                    e,
                ));
            }
        }
    }
}

/// Block, terminate, rename both in one transaction. On failure, connections to the live
/// database are allowed again and it keeps its name.
async fn swap(
    client: &tokio_postgres::Client,
    live: &str,
    previous: &str,
    scratch: &str,
) -> Result<Duration, String> {
    let err = |what: &str, e: tokio_postgres::Error| crate::pg::query_error(what, e).to_string();
    let allowed: bool = client
        .query_one(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&live],
        )
        .await
        .map_err(|e| err("reading the live database", e))?
        .get(0);
    // The scratch database must have no sessions for its rename (the load's own connections may
    // take a moment to end): wait for that before the downtime starts.
    let scratch_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&scratch],
            )
            .await
            .map_err(|e| err("reading the scratch database's sessions", e))?
            .get(0);
        if n == 0 {
            break;
        }
        if Instant::now() > scratch_deadline {
            client
                .batch_execute(&terminate_sql(scratch))
                .await
                .map_err(|e| err("ending the scratch database's sessions", e))?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let down = Instant::now();
    client
        .batch_execute(&block_sql(live))
        .await
        .map_err(|e| err("blocking new connections", e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        if let Err(e) = client.batch_execute(&terminate_sql(live)).await {
            break err("ending sessions", e);
        }
        let sql = swap_sql(live, previous, scratch).join(";\n");
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(down.elapsed()),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                let busy = e.as_db_error().is_some_and(|d| d.code().code() == "55006");
                let text = err("renaming", e);
                if !busy || Instant::now() > deadline {
                    break text;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    if allowed {
        let _ = client.batch_execute(&unblock_sql(live)).await;
    }
    Err(last)
}

/// Kept copies and leftovers of restores on the server.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub name: String,
    pub size: i64,
    pub sessions: i64,
    pub kind: &'static str,
}

/// Previous copies (`*_before_restore_*`) and scratch databases left by killed restores
/// (`*_restoring_*` without sessions), optionally only those of `db`.
pub async fn leftovers(
    admin: &ConnParams,
    db: Option<&str>,
) -> Result<Vec<Leftover>, RestoreError> {
    let client = admin.connect().await?;
    let rows = client
        .query(
            "SELECT d.datname::text, pg_database_size(d.oid), \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) \
             FROM pg_database d WHERE d.datname ~ '_(before_restore|restoring)_[0-9]{8}_[0-9]{6}$' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_error("listing kept copies", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let sessions: i64 = r.get(2);
        let kind = if name.contains("_before_restore_") {
            "previous copy"
        } else {
            "scratch left by an interrupted restore"
        };
        if kind != "previous copy" && sessions > 0 {
            continue; // a restore is loading it now
        }
        if let Some(db) = db {
            let prefix_ok = [
                previous_name(db, Timestamp::UNIX_EPOCH),
                scratch_name(db, Timestamp::UNIX_EPOCH),
            ]
            .iter()
            .any(|n| name.len() == n.len() && name.starts_with(&n[..n.len() - 15]));
            if !prefix_ok {
                continue;
            }
        }
        out.push(Leftover {
            name,
            size: r.get(1),
            sessions,
            kind,
        });
    }
    Ok(out)
}

/// Drop one leftover database.
pub async fn drop_leftover(admin: &ConnParams, name: &str) -> Result<(), RestoreError> {
    let client = admin.connect().await?;
    let v = crate::pg::catalog::server_info(&client).await?.version_num;
    client
        .batch_execute(&load::drop_database_sql(name, v))
        .await
        .map_err(|e| RestoreError::Pg(query_error(&format!("dropping \"{name}\""), e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_63_bytes() {
        let now: Timestamp = "2026-11-25T16:11:00Z".parse().unwrap();
        assert_eq!(
            previous_name("sbi", now),
            "sbi_before_restore_20261125_161100"
        );
        assert_eq!(scratch_name("sbi", now), "sbi_restoring_20261125_161100");
        let long = "é".repeat(40);
        let p = previous_name(&long, now);
        assert!(
            p.len() <= 63 && p.ends_with("_before_restore_20261125_161100"),
            "{p}"
        );
    }

    #[test]
    fn roles_from_dump_lines() {
        assert_eq!(
            roles_in_line("ALTER TABLE public.\"SBI_USER\" OWNER TO sbi_app;").as_deref(),
            Some("sbi_app")
        );
        assert_eq!(
            roles_in_line("GRANT SELECT ON TABLE public.t TO \"Read \"\"Only\"\"\";").as_deref(),
            Some("Read \"Only\"")
        );
        assert_eq!(
            roles_in_line("REVOKE ALL ON SCHEMA public FROM PUBLIC;"),
            None
        );
        assert_eq!(
            roles_in_line("ALTER SCHEMA public OWNER TO pg_database_owner;"),
            None
        );
        assert_eq!(roles_in_line("CREATE TABLE t (a int);"), None);
    }

    #[test]
    fn times_for_before() {
        let t = parse_time("2026-11-25").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T00:00:00Z");
        assert_eq!(
            parse_time("2026-11-25 10:30").unwrap().to_string(),
            "2026-11-25T10:30:00Z"
        );
        assert!(parse_time("2026-11-25T10:30:00+01:00").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
