//! Load a backup into a scratch database and prove it: create the database with the recorded
//! properties (owner, encoding, collation, grants, settings), load the file (psql for plain
//! dumps, pg_restore for custom archives), compare every table's row count with the manifest,
//! run the user's checks, and drop it again. `pgkeep restore` builds on this; so can
//! `pgkeep verify --restore` (create, load, check, drop):
//!
//! ```text
//! let tools = Tools::find(server_version_num, manifest.pg_dump_major(), &search)?;
//! let loader = Loader { admin: &admin, tools: &tools, child_env: &env, passfile, shutdown: &shutdown,
//!                       server_version_num, allow_unrestricted_psql: false, progress: Progress::none() };
//! let name = crate::restore::scratch_name(&manifest.database, now); // `pgkeep cleanup` finds leftovers
//! let checked = loader.load_and_check(&ScratchLoad { database: &name, input: &input,
//!     info: Some(&manifest.database_info), expected: Some(&manifest.tables), checks: &[], jobs: 1,
//!     names_encoding: manifest.dump_encoding.as_deref() }).await?;
//! loader.drop(&name).await?;   // load_and_check already dropped it on failure
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::database::{create_database_sql, extensions_sql, grants_sql, settings_sql};

use super::dropped::Dropped;
use super::load_role::{LoadRole, RunAs};
use crate::model::Format;
use crate::pg::catalog::DatabaseInfo;
use crate::pg::{ConnParams, query_error};
use crate::pipeline::guard::{GuardOptions, RestrictKey};
use crate::pipeline::psql_scan::{ScanOptions, ascii_safe_encoding};
use crate::process::{Running, Spec};
use crate::shutdown::Shutdown;

pub use super::load_error::{Input, LoadError, LoadStats, Mismatch, RowShare};

/// The client programs a load runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub psql: PathBuf,
    pub pg_restore: PathBuf,
    /// psql's version as it prints it (`15.18`): whether it has restricted mode.
    pub psql_version: String,
    /// pg_restore's version as it prints it: one newer than the server writes settings the
    /// server does not know (see [`through_psql`]).
    pub pg_restore_version: String,
}

impl Tools {
    /// psql and pg_restore for a server of `server_version_num` and a dump that pg_dump of
    /// `dump_major` wrote (0: unknown): of the greater of the two majors, else the oldest newer
    /// one; never an older one (an older pg_restore cannot read a newer archive).
    pub fn find(
        server_version_num: u32,
        dump_major: u32,
        search: &crate::pg::tools::Search,
    ) -> Result<Tools, crate::pg::tools::ToolError> {
        use crate::pg::tools;
        let server = tools::server_major(server_version_num);
        let psql =
            tools::select("psql", server.max(dump_major), None, search).map_err(|e| match e {
                tools::ToolError::TooOld { tool, found, .. } if dump_major > server => {
                    tools::ToolError::OlderThanDump {
                        tool,
                        dump_major,
                        found,
                    }
                }
                e => e,
            })?;
        let pg_restore = tools::sibling(&psql, "pg_restore", search)?;
        Ok(Tools {
            psql: psql.path,
            pg_restore: pg_restore.path,
            psql_version: psql.version,
            pg_restore_version: pg_restore.version,
        })
    }

    /// Whether this psql has restricted mode (`\restrict`).
    pub fn psql_restricts(&self) -> bool {
        crate::pipeline::guard::psql_supports_restrict(&self.psql_version)
    }
}

/// Everything a load needs from its caller: the admin connection (its `dbname` is the
/// maintenance database used for CREATE/DROP DATABASE), the client tools, the environment and
/// passfile for children, and the shutdown signal.
pub struct Loader<'a> {
    pub admin: &'a ConnParams,
    pub tools: &'a Tools,
    /// Base environment of children (already free of secrets).
    pub child_env: &'a [(String, String)],
    /// A private passfile holding the admin password, if one is configured.
    pub passfile: Option<&'a Path>,
    pub shutdown: &'a Shutdown,
    /// `WITH (FORCE)` on DROP DATABASE (PostgreSQL 13+).
    pub server_version_num: u32,
    /// Load plain dumps with a psql that lacks restricted mode (the lexer the only line).
    pub allow_unrestricted_psql: bool,
    /// Told the stored bytes fed to the load as it runs (`loading`).
    pub progress: crate::model::Progress,
}

/// The outcome of `load_and_check`.
#[derive(Debug, Clone)]
pub struct Checked {
    pub create: Duration,
    pub load: LoadStats,
    pub count: Duration,
    pub checks: Duration,
    /// Tables and rows whose counts were compared (0 when nothing was expected).
    pub tables_checked: usize,
    pub rows_checked: u64,
}

/// A complete scratch load: what to load, where, what to expect.
pub struct ScratchLoad<'a> {
    pub database: &'a str,
    pub input: &'a Input,
    /// The recorded properties of the database; `None` creates it with the server defaults.
    pub info: Option<&'a DatabaseInfo>,
    /// Rows per table as the manifest records them; `None` (legacy files) compares with the
    /// counts seen in the file itself while it streams.
    pub expected: Option<&'a BTreeMap<String, u64>>,
    pub checks: &'a [String],
    /// pg_restore parallel jobs (custom archives).
    pub jobs: usize,
    /// Who runs the file's SQL.
    pub run_as: &'a RunAs,
    /// The encoding of the names in `expected` (the dump's); `None`: the one the plain dump
    /// sets, else the recorded database encoding.
    pub names_encoding: Option<&'a str>,
}

/// Whether a custom archive goes through `pg_restore -f -` and the guard into psql rather than
/// straight into the server: when pg_restore is of a newer major than the server, it writes
/// settings that server does not know (pg_restore 17+: `SET transaction_timeout = 0`), and only
/// the plain loader can leave them out.
pub fn through_psql(tools: &Tools, input: &Input, server_version_num: u32) -> bool {
    input.format == Format::Custom
        && psql_major(&tools.pg_restore_version)
            > crate::pg::tools::server_major(server_version_num)
}

/// Whether a custom archive loaded on `jobs` connections goes through its script and the plain
/// loader ([`Input::one_table_dominates`]); only with a psql in restricted mode.
pub fn split_pays(tools: &Tools, input: &Input, jobs: usize) -> bool {
    input.format == Format::Custom && tools.psql_restricts() && input.one_table_dominates(jobs)
}

/// Whether a custom archive is loaded as the script `pg_restore -f -` writes of it, by psql
/// ([`through_psql`], [`split_pays`]).
pub fn as_script(tools: &Tools, input: &Input, jobs: usize, server_version_num: u32) -> bool {
    through_psql(tools, input, server_version_num) || split_pays(tools, input, jobs)
}

/// `pg_restore -f -` reading the archive on stdin: the script [`as_script`] loads.
pub fn script_command(tools: &Tools) -> Spec {
    Spec::new(&tools.pg_restore).arg("-f").arg("-")
}

/// The argument list of the load command, for plans and for running it (psql also for a custom
/// archive loaded [`as_script`]). The load is not one transaction (a catalog of thousands
/// of tables or large objects would need more locks than the server's lock table holds); it
/// stops at the first error, and a failed load's scratch database is dropped, so nothing of it
/// is ever seen under the database's name.
pub fn load_command(
    tools: &Tools,
    input: &Input,
    database: &str,
    jobs: usize,
    server_version_num: u32,
) -> Spec {
    if input.format == Format::Plain || as_script(tools, input, jobs, server_version_num) {
        return psql_command(tools, database);
    }
    let s = Spec::new(&tools.pg_restore)
        .arg("--exit-on-error")
        .arg("--no-password")
        .arg("-d")
        .arg(conninfo_dbname(database));
    if jobs > 1 {
        // A parallel restore needs a file it can seek in.
        s.arg(format!("--jobs={jobs}")).arg(&input.path)
    } else {
        // Read from stdin: the bytes are hashed as they are fed.
        s
    }
}

/// psql reading the (guarded) script on stdin, stopping at the first error.
fn psql_command(tools: &Tools, database: &str) -> Spec {
    Spec::new(&tools.psql)
        .arg("-X")
        .arg("-q")
        .arg("--no-password")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        // The SQLSTATE of a failing statement on stderr: a failed load is classified by
        // it, never by the message text (which follows the server's `lc_messages`).
        .arg("-v")
        .arg("VERBOSITY=verbose")
        .arg("-d")
        .arg(conninfo_dbname(database))
        .arg("-f")
        .arg("-")
}

/// `dbname='...'` as a conninfo string, so that any database name (even one with `=`) is taken
/// as a name.
pub fn conninfo_dbname(name: &str) -> String {
    format!(
        "dbname='{}'",
        name.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// `SELECT count(*) FROM ONLY <the table of oid $1>`, the name built by the server.
const COUNT_BY_OID: &str = "SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %s', $1::oid::regclass), false, true, '')))[1]::text::int8";

/// Compare expected and actual counts; tables not expected are not compared.
pub fn compare_counts(
    expected: &BTreeMap<String, u64>,
    actual: &BTreeMap<String, Option<u64>>,
) -> Vec<Mismatch> {
    expected
        .iter()
        .filter_map(|(t, &e)| {
            let found = actual.get(t).copied().flatten();
            (found != Some(e)).then(|| Mismatch {
                table: t.clone(),
                expected: e,
                found,
            })
        })
        .collect()
}

impl Loader<'_> {
    fn params(&self, database: &str) -> ConnParams {
        self.admin.with_dbname(database)
    }

    async fn admin_exec(&self, sql: &str, what: &str) -> Result<(), LoadError> {
        let client = self.admin.connect().await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|e| query_error(what, e))?;
        Ok(())
    }

    /// Create the database with the recorded owner, encoding, collation and grants.
    /// Settings are applied by [`Loader::apply_settings`] after the load (a recorded
    /// `statement_timeout` or `default_transaction_read_only` must not hit the load).
    pub async fn create(
        &self,
        database: &str,
        info: Option<&DatabaseInfo>,
    ) -> Result<(), LoadError> {
        self.admin_exec(
            &create_database_sql(database, info),
            &format!("creating database \"{database}\""),
        )
        .await?;
        let grants = grants_sql(database, info);
        if !grants.is_empty()
            && let Err(e) = self
                .admin_exec(
                    &grants.join(";\n"),
                    &format!("granting privileges on \"{database}\""),
                )
                .await
        {
            let _ = self.drop(database).await;
            return Err(e);
        }
        let extensions = extensions_sql(info);
        if !extensions.is_empty()
            && let Err(e) = self.create_extensions(database, extensions).await
        {
            let _ = self.drop(database).await;
            return Err(e);
        }
        Ok(())
    }

    /// Create the recorded extensions as their owners before the load, in as many rounds as
    /// their dependencies need. One that cannot be created so is left to the load (which creates
    /// it as the loading role).
    async fn create_extensions(
        &self,
        database: &str,
        mut pending: Vec<String>,
    ) -> Result<(), LoadError> {
        let client = self.params(database).connect().await?;
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            for sql in pending {
                if let Err(e) = client.batch_execute(&sql).await {
                    let _ = client.batch_execute("RESET ROLE").await;
                    failed.push((sql, crate::pg::error_text(&e)));
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if failed.len() == before {
                for (sql, e) in failed {
                    tracing::warn!(statement = %sql, error = %e, "an extension is left to the load");
                }
                return Ok(());
            }
            pending = failed.into_iter().map(|(s, _)| s).collect();
        }
    }

    /// Apply the recorded database and role-in-database settings.
    pub async fn apply_settings(
        &self,
        database: &str,
        info: Option<&DatabaseInfo>,
    ) -> Result<(), LoadError> {
        let sql = settings_sql(database, info);
        if sql.is_empty() {
            return Ok(());
        }
        self.admin_exec(
            &sql.join(";\n"),
            &format!("applying settings to \"{database}\""),
        )
        .await
    }

    /// Drop the database (sessions forced out), its subscriptions first (detached from their
    /// slots: a database with subscriptions cannot be dropped).
    pub async fn drop(&self, database: &str) -> Result<(), LoadError> {
        super::subscriptions::detach_and_drop(self.admin, database).await?;
        let client = self.admin.connect().await?;
        super::dropped::drop_confirmed(&client, database, self.server_version_num).await?;
        Ok(())
    }

    /// [`Loader::drop`], and when it fails, `pg_database` read again on a new connection (the
    /// failure may be a connection lost after the drop): what is left, for the message.
    pub async fn drop_checked(&self, database: &str) -> Dropped {
        let Err(e) = self.drop(database).await else {
            return Dropped::Gone;
        };
        let after = match self.admin.connect().await {
            Ok(client) => super::dropped::exists(&client, database).await,
            Err(c) => Err(c),
        };
        Dropped::after_failure(e.to_string(), after)
    }

    /// The environment of a load's child: the load role's connection, and the settings psql's
    /// lexing depends on, pinned (the guard's reasoning assumes them).
    fn load_env(
        &self,
        database: &str,
        role: Option<&LoadRole>,
        encoding: Option<&str>,
    ) -> Vec<(String, String)> {
        let (params, passfile) = match role {
            Some(r) => (r.params.with_dbname(database), r.passfile()),
            None => (self.params(database), self.passfile),
        };
        let mut env = crate::backup::libpq_env(&params, self.child_env, passfile);
        // Each statement of a load commits on its own; none waits for its WAL flush. The swap's
        // commit (admin connection, the server's setting) flushes them all, and a crash before
        // it leaves only a scratch database, which the next restore drops.
        let mut options = "-c standard_conforming_strings=on -c synchronous_commit=off".to_string();
        if let Some(owner) = role.and_then(LoadRole::session_role) {
            options.push_str(" -c role=");
            for c in owner.chars() {
                if c == ' ' || c == '\\' {
                    options.push('\\');
                }
                options.push(c);
            }
        }
        let encoding = encoding
            .filter(|e| ascii_safe_encoding(e.as_bytes()))
            .unwrap_or("UTF8");
        env.retain(|(k, _)| k != "PGOPTIONS" && k != "PGCLIENTENCODING");
        env.push(("PGOPTIONS".into(), options));
        env.push(("PGCLIENTENCODING".into(), encoding.into()));
        env
    }

    /// Load the file into `database` as the admin role (see [`Loader::load_as`]).
    pub async fn load(
        &self,
        database: &str,
        input: &Input,
        jobs: usize,
    ) -> Result<LoadStats, LoadError> {
        self.load_as(database, input, jobs, None, None).await
    }

    /// Load the file into `database` as `role` (`None`: the admin role). A plain dump streams
    /// through the decoder and the guard into psql's stdin (restricted mode where psql has it);
    /// a custom archive into pg_restore's. The bytes fed are hashed: if they are not those
    /// checked before ([`Input::sha256`]), or a plain dump ends without pg_dump's trailer, the
    /// child is killed before it sees the end of its input, so it never commits.
    pub async fn load_as(
        &self,
        database: &str,
        input: &Input,
        jobs: usize,
        role: Option<&LoadRole>,
        encoding: Option<&str>,
    ) -> Result<LoadStats, LoadError> {
        let started = Instant::now();
        let mut stats = self.run_load(database, input, jobs, role, encoding).await?;
        if !stats.left_out.is_empty() {
            tracing::info!(statements = %stats.left_out.join("; "), "left out of the load: settings this server does not know, written by newer client tools");
        }
        stats.duration = started.elapsed();
        Ok(stats)
    }

    /// [`Loader::load_as`] without its timing and log.
    async fn run_load(
        &self,
        database: &str,
        input: &Input,
        jobs: usize,
        role: Option<&LoadRole>,
        encoding: Option<&str>,
    ) -> Result<LoadStats, LoadError> {
        let env = self.load_env(database, role, encoding);
        let routed = self.routed(input, jobs);
        let mut spec = load_command(self.tools, input, database, jobs, self.server_version_num)
            .envs(env.clone());
        let parallel = input.format == Format::Custom && jobs > 1 && !routed;
        // Row security is enabled in a second pass, after every constraint (see custom_jobs).
        let second = match parallel {
            true => self.row_security_pass(input, database, &env)?,
            false => None,
        };
        if let Some((_, lists)) = &second {
            spec = spec.arg("--use-list").arg(&lists.first);
        }
        let stdin = if parallel {
            Stdio::null()
        } else {
            Stdio::piped()
        };
        let opts = self.guard_options()?;
        // The script of a routed archive: pg_restore reads the archive on stdin, writes SQL.
        let script = match routed {
            true => Some(self.script(env)?),
            false => None,
        };
        if jobs > 1 && (input.format == Format::Plain || routed) {
            let p = super::parallel::Parallel {
                spec,
                opts,
                restricts: self.tools.psql_restricts(),
                jobs,
                database: database.to_string(),
                killers: super::parallel::Killers::default(),
            };
            return self.load_parallel(p, input, script).await;
        }
        let running = Running::spawn_with_stdin(&spec, stdin, Stdio::null()).map_err(|source| {
            LoadError::Io {
                context: format!("cannot start {}", spec.name()),
                source,
            }
        })?;
        let killers = [Some(running.killer()), script.as_ref().map(Running::killer)];
        let input2 = input.clone();
        let db = database.to_string();
        let progress = self.progress.clone();
        let mut task = tokio::task::spawn_blocking(move || -> Result<LoadStats, LoadError> {
            let (outcome, stats) = match (input2.format, script) {
                (Format::Custom, Some(script)) => {
                    super::feed::custom_script((script, running), &input2, &db, opts, &progress)?
                }
                (Format::Plain, _) => super::feed::plain(running, &input2, opts, &progress)?,
                (Format::Custom, _) if parallel => {
                    super::feed::custom_parallel(running, &input2, second)?
                }
                (Format::Custom, None) => super::feed::custom(running, &input2, &progress)?,
            };
            if !outcome.success() {
                return Err(LoadError::LoadFailed {
                    database: db,
                    message: outcome.describe(),
                    sqlstate: outcome.sqlstate.clone(),
                });
            }
            Ok(stats)
        });
        let mut shutdown = self.shutdown.clone();
        let joined = tokio::select! {
            r = &mut task => r,
            reason = shutdown.wait() => {
                for k in killers.iter().flatten() {
                    k.terminate(Duration::from_secs(3));
                }
                let _ = task.await;
                return Err(LoadError::Interrupted(reason));
            }
        };
        joined.map_err(|e| LoadError::Io {
            context: "the load task failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// A plain dump, or the `script` pg_restore writes of a custom archive, on several
    /// connections (see `parallel`); a shutdown kills every psql and pg_restore.
    async fn load_parallel(
        &self,
        p: super::parallel::Parallel,
        input: &Input,
        script: Option<Running>,
    ) -> Result<LoadStats, LoadError> {
        let killers = p.killers.clone();
        if let Some(s) = &script {
            killers.add(s.killer());
        }
        let (input2, progress) = (input.clone(), self.progress.clone());
        let mut task = tokio::task::spawn_blocking(move || match script {
            Some(script) => super::feed::custom_script_parallel(script, &p, &input2, &progress),
            None => super::parallel::load(&p, &input2, &progress),
        });
        let mut shutdown = self.shutdown.clone();
        let joined = tokio::select! {
            r = &mut task => r,
            reason = shutdown.wait() => {
                killers.terminate_all();
                let _ = task.await;
                return Err(LoadError::Interrupted(reason));
            }
        };
        joined.map_err(|e| LoadError::Io {
            context: "the load task failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// Count the rows of the given tables (manifest keys of the names as pg_dump prints them,
    /// in `encoding`) on up to `jobs` connections at once; `None` for a table that does not
    /// exist. Names are compared as bytes: the server converts them to the dump's encoding, and
    /// each table is counted by its oid, so no name has to pass through the client's UTF-8 text.
    pub async fn count_rows<'t>(
        &self,
        database: &str,
        tables: impl IntoIterator<Item = &'t String>,
        encoding: &str,
        jobs: usize,
    ) -> Result<BTreeMap<String, Option<u64>>, LoadError> {
        let client = self.params(database).connect().await?;
        let ctx = format!("counting rows in \"{database}\"");
        let existing: BTreeMap<(Vec<u8>, Vec<u8>), u32> = client
            .query(
                "SELECT convert_to(n.nspname::text, $1), convert_to(c.relname::text, $1), c.oid \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'f')",
                &[&encoding],
            )
            .await
            .map_err(|e| query_error(&ctx, e))?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        let mut out = BTreeMap::new();
        let mut todo = Vec::new();
        for t in tables {
            match crate::model::name::parse_qualified_bytes(&crate::model::name::bytes_of(t))
                .and_then(|key| existing.get(&key).copied())
            {
                Some(oid) => todo.push((t.clone(), oid)),
                None => {
                    out.insert(t.clone(), None);
                }
            }
        }
        let params = self.params(database);
        let mut clients = vec![client];
        let more = jobs.min(todo.len()).saturating_sub(1);
        clients.extend(futures::future::try_join_all((0..more).map(|_| params.connect())).await?);
        let queue = std::sync::Mutex::new(todo.into_iter());
        let (queue, ctx) = (&queue, &ctx);
        let counted = futures::future::try_join_all(clients.iter().map(|client| async move {
            let mut got = Vec::new();
            loop {
                let next = queue.lock().expect("tables").next();
                let Some((t, oid)) = next else {
                    return Ok::<_, LoadError>(got);
                };
                let row = client
                    .query_one(COUNT_BY_OID, &[&oid])
                    .await
                    .map_err(|e| query_error(ctx, e))?;
                got.push((t, Some(row.get::<_, i64>(0) as u64)));
            }
        }))
        .await?;
        out.extend(counted.into_iter().flatten());
        Ok(out)
    }

    /// Run the user's checks: each must return at least one row.
    pub async fn run_checks(&self, database: &str, checks: &[String]) -> Result<(), LoadError> {
        if checks.is_empty() {
            return Ok(());
        }
        let client = self.params(database).connect().await?;
        for sql in checks {
            let msgs = client
                .simple_query(sql)
                .await
                .map_err(|e| LoadError::CheckFailed {
                    sql: sql.clone(),
                    message: match e.as_db_error() {
                        Some(db) => db.message().to_string(),
                        None => crate::pg::error_text(&e),
                    },
                })?;
            let rows = msgs
                .iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count();
            if rows == 0 {
                return Err(LoadError::CheckFailed {
                    sql: sql.clone(),
                    message: "it returned no rows".into(),
                });
            }
        }
        Ok(())
    }

    /// Create, load, count and check; on any failure the scratch database is dropped. On
    /// success it stays (with its recorded settings applied) for the caller to swap or drop.
    /// The file's SQL runs as [`ScratchLoad::run_as`]; a temporary load role is dropped again.
    pub async fn load_and_check(&self, req: &ScratchLoad<'_>) -> Result<Checked, LoadError> {
        self.refuse_unrestricted(req.input)?;
        let t = Instant::now();
        self.create(req.database, req.info).await?;
        let create = t.elapsed();
        let res = self.load_and_check_created(req, create).await;
        if res.is_err()
            && let Err(d) = self.drop(req.database).await
        {
            tracing::warn!(database = %req.database, error = %d, "cannot drop the scratch database");
        }
        res
    }

    /// How the guard runs: psql's lexing rules, restricted mode where psql has it, and the
    /// server's major (what it does not know is left out).
    fn guard_options(&self) -> Result<GuardOptions, LoadError> {
        Ok(GuardOptions {
            scan: ScanOptions {
                psql_major: psql_major(&self.tools.psql_version),
                ..ScanOptions::default()
            },
            restrict_key: if self.tools.psql_restricts() {
                Some(RestrictKey::random().map_err(|e| LoadError::Io {
                    context: "cannot make a restricted-mode key".into(),
                    source: std::io::Error::other(e.to_string()),
                })?)
            } else {
                None
            },
            server_major: Some(crate::pg::tools::server_major(self.server_version_num)),
        })
    }

    /// A plain dump is not given to a psql without restricted mode unless that was allowed.
    fn refuse_unrestricted(&self, input: &Input) -> Result<(), LoadError> {
        let psql = input.format == Format::Plain
            || through_psql(self.tools, input, self.server_version_num);
        if psql && !self.tools.psql_restricts() && !self.allow_unrestricted_psql {
            return Err(LoadError::RoleRefused(format!(
                "psql {} ({}) lacks restricted mode (\\restrict: 13.22+, 14.19+, 15.14+, 16.10+, 17.6+, 18), so pgkeep's filter of psql meta-commands would be the only line; install a newer psql or pass --allow-unrestricted-psql",
                self.tools.psql_version,
                self.tools.psql.display()
            )));
        }
        Ok(())
    }

    /// Load, count and check a scratch database that [`Loader::create`] made, as
    /// [`ScratchLoad::run_as`] (a temporary load role is dropped again); the database stays on
    /// failure too, for the caller to drop.
    pub async fn load_and_check_created(
        &self,
        req: &ScratchLoad<'_>,
        create: Duration,
    ) -> Result<Checked, LoadError> {
        self.refuse_unrestricted(req.input)?;
        let role = match req.run_as {
            RunAs::Admin => None,
            RunAs::Owner { owner, configured } => {
                Some(LoadRole::prepare(self.admin, owner, configured.as_ref()).await?)
            }
        };
        let res = self.checked_load(req, create, role.as_ref()).await;
        if let Some(role) = &role
            && let Err(e) = role.release(self.admin).await
        {
            tracing::warn!(error = %e, "cannot drop the temporary load role");
        }
        res
    }

    async fn checked_load(
        &self,
        req: &ScratchLoad<'_>,
        create: Duration,
        role: Option<&LoadRole>,
    ) -> Result<Checked, LoadError> {
        if let Some(r) = role {
            r.probe(req.database).await?;
        }
        tracing::info!(database = %req.database, file = %req.input.path.display(), role = %role.map_or(self.admin.user.as_str(), |r| r.params.user.as_str()), "loading");
        let encoding = req.info.map(|i| i.encoding.as_str());
        let load = self
            .load_as(req.database, req.input, req.jobs, role, encoding)
            .await?;
        if let Some(r) = role {
            r.reassign(self.admin, req.database).await?;
        }
        tracing::info!(database = %req.database, duration = %format!("{:.1}s", load.duration.as_secs_f64()), "loaded");
        let t = Instant::now();
        let from_file = load.report.as_ref().map(|r| &r.tables);
        let expected = req.expected.or(from_file);
        let (tables_checked, rows_checked) = match expected {
            Some(exp) => {
                let encoding = req
                    .names_encoding
                    .or(load
                        .report
                        .as_ref()
                        .and_then(|r| r.client_encoding.as_deref()))
                    .or(req.info.map(|i| i.encoding.as_str()))
                    .unwrap_or("UTF8");
                let actual = self
                    .count_rows(req.database, exp.keys(), encoding, req.jobs)
                    .await?;
                let mismatches = compare_counts(exp, &actual);
                if !mismatches.is_empty() {
                    return Err(LoadError::RowCounts(mismatches));
                }
                (exp.len(), exp.values().sum())
            }
            None => (0, 0),
        };
        let count = t.elapsed();
        let t = Instant::now();
        self.run_checks(req.database, req.checks).await?;
        self.apply_settings(req.database, req.info).await?;
        Ok(Checked {
            create,
            load,
            count,
            checks: t.elapsed(),
            tables_checked,
            rows_checked,
        })
    }
}

/// The major of a psql version (`15.18` -> 15, `18beta3` -> 18); 18 when unreadable.
fn psql_major(version: &str) -> u32 {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(18)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_compared_and_dbnames_quoted() {
        let exp: BTreeMap<String, u64> = [("a.t".to_string(), 3), ("a.u".to_string(), 0)].into();
        let mut act: BTreeMap<String, Option<u64>> =
            [("a.t".to_string(), Some(3)), ("a.u".to_string(), Some(0))].into();
        assert!(compare_counts(&exp, &act).is_empty());
        act.insert("a.t".into(), Some(2));
        act.insert("a.u".into(), None);
        let m = compare_counts(&exp, &act);
        assert_eq!(m.len(), 2);
        assert_eq!(
            LoadError::RowCounts(m).to_string(),
            "row counts differ from the backup's: a.t has 2 rows, expected 3; a.u is missing (expected 0 rows)"
        );
        assert_eq!(conninfo_dbname("it's\\x"), "dbname='it\\'s\\\\x'");
    }
}
