//! The restore level of a verification: load a backup that passed the checksum level into a
//! scratch database with the restore engine's loader, compare every table's row count with the
//! manifest, run the user's checks, and drop the copy again.

use std::time::Instant;

use jiff::Timestamp;

use super::error::VerifyError;
use super::failure::Failure;
use super::read::{parse_manifest, read_manifest_bytes};
use super::record::{Level, Record};
use crate::catalog::MANIFEST_SUFFIX;
use crate::model::{Compression, Format};
use crate::pg::tools::Search;
use crate::pg::{ConnParams, PgError, query_error};
use crate::restore::{
    Checked, Input, LoadError, Loader, RowShare, ScratchLoad, Tools, scratch_name,
};
use crate::shutdown::Shutdown;
use crate::storage::{Store, staging};

/// What a restore-level verification needs: the admin connection (its `dbname` is the
/// maintenance database), a private passfile for children, the tools search, the user's checks.
pub struct RestoreRequest<'a> {
    /// Told the bytes fed to the test load as it runs (`loading`).
    pub progress: crate::model::Progress,
    pub admin: &'a ConnParams,
    pub passfile: Option<&'a std::path::Path>,
    pub child_env: &'a [(String, String)],
    pub search: &'a Search,
    /// SQL that must succeed (and return at least one row) in the loaded copy.
    pub checks: &'a [String],
    pub shutdown: &'a Shutdown,
    pub now: Timestamp,
    /// The server is a throwaway cluster (`--local`): create the roles the backup references
    /// first (no passwords, no login), so its owners and grants load.
    pub create_roles: bool,
    /// Who runs the file's SQL and what psql may be used.
    pub load: crate::restore::LoadPolicy,
    /// The age identities that decrypt an encrypted backup.
    pub identities: Option<&'a crate::model::age::AgeIdentities>,
}

/// The test restore needs a scratch database: an admin role that may not create one cannot run
/// it, which says nothing about the backup (inconclusive, `restore-privilege`).
async fn may_create_databases(client: &tokio_postgres::Client) -> Result<(), VerifyError> {
    let me = client
        .query_one(
            "SELECT current_user::text, rolsuper OR rolcreatedb FROM pg_roles \
             WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| query_error("the admin role's privileges", e))?;
    let (user, may): (String, bool) = (me.get(0), me.get(1));
    if may {
        return Ok(());
    }
    Err(VerifyError::Privilege(format!(
        "role \"{user}\" lacks CREATEDB, which the test restore needs for its scratch database \
         (ALTER ROLE {} CREATEDB, or set PGKEEP_ADMIN_USER to a role that has it); the backup was \
         not judged",
        crate::pg::ident::quote_ident(&user)
    )))
}

/// Owner of a legacy file's scratch database in a throwaway cluster (a role without login).
const LOCAL_OWNER: &str = "pgkeep_verify_owner";

/// The restore level on top of a checksum-level record that passed: load the backup into a
/// scratch database with the restore engine's loader, compare the row counts with the
/// manifest's (legacy files: with the counts seen in the file), run the checks, drop the scratch
/// database. Updates `rec`: a test restore that could not be done here (server unreachable, no
/// tools of a suitable major, a missing privilege, resource limits of the server, a failing
/// check) ends `inconclusive`, and only a failure the dump's content causes ends `bad`. `Err`
/// only when interrupted.
pub async fn restore_level(
    store: &dyn Store,
    rr: &RestoreRequest<'_>,
    rec: &mut Record,
) -> Result<(), VerifyError> {
    rec.level = Level::Restore;
    if !rec.ok {
        return Ok(());
    }
    let started = Instant::now();
    let outcome = match test_restore(store, rr, rec).await {
        Ok(outcome) => outcome,
        Err(VerifyError::Interrupted(r)) => return Err(VerifyError::Interrupted(r)),
        Err(e) => Err(unproven(e)),
    };
    rec.duration_seconds += started.elapsed().as_secs_f64();
    match outcome {
        Ok(m) => rec.message = format!("{}; {m}", rec.message),
        Err(f) => rec.conclude(Err(f)),
    }
    Ok(())
}

/// Load, check and drop the scratch copy: what it proved, or the failure it found; `Err` when it
/// could not run (see [`unproven`]).
async fn test_restore(
    store: &dyn Store,
    rr: &RestoreRequest<'_>,
    rec: &Record,
) -> Result<Result<String, Failure>, VerifyError> {
    let manifest = match read_manifest_bytes(store, &format!("{}{MANIFEST_SUFFIX}", rec.file))? {
        Some(bytes) => Some(
            parse_manifest(&rec.file, &bytes).map_err(|f| VerifyError::Restore(f.to_string()))?,
        ),
        None => None,
    };
    let client = rr.admin.connect().await?;
    may_create_databases(&client).await?;
    let server = crate::pg::catalog::server_info(&client).await?;
    if let Some(f) = manifest
        .as_ref()
        .and_then(|m| unsuitable_server(m, server.version_num))
    {
        return Ok(Err(f));
    }
    if rr.create_roles
        && let Some(m) = &manifest
    {
        local_roles(&client, rr, m).await?;
    }
    let (info, unapplied) =
        properties(&client, rr, rec, manifest.as_ref(), server.version_num).await?;
    let made_by = manifest.as_ref().map_or(0, |m| m.pg_dump_major());
    let tools = Tools::find(server.version_num, made_by, rr.search)?;
    let loader = Loader {
        admin: rr.admin,
        tools: &tools,
        child_env: rr.child_env,
        passfile: rr.passfile,
        shutdown: rr.shutdown,
        server_version_num: server.version_num,
        allow_unrestricted_psql: rr.load.allow_unrestricted_psql,
        progress: rr.progress.clone(),
    };
    let (local, manifest, sha256) = local_copy(store, rr, rec, manifest)?;
    let m = manifest.as_ref();
    let mut input = Input {
        path: local.path().to_path_buf(),
        format: m.map_or(Format::Plain, |m| m.format),
        compression: m.map_or(Compression::Gzip, |m| m.compression),
        sha256,
        toc: None,
        rows: m.and_then(|m| RowShare::of(&m.tables)),
    };
    let run_as = run_as(rr, info.as_ref())?;
    // The file is read through the psql lexer first (as a restore's preflight does).
    match vet(
        &input,
        manifest.as_ref(),
        rec,
        &client,
        &run_as,
        (&tools, rr),
    )
    .await?
    {
        Err(f) => return Ok(Err(f)),
        Ok(toc) => input.toc = toc,
    }
    drop(client);
    let db = rec
        .database
        .clone()
        .unwrap_or_else(|| "pgkeep_verify".to_string());
    let scratch = scratch_name(&db, rr.now);
    let res = loader
        .load_and_check(&ScratchLoad {
            database: &scratch,
            input: &input,
            info: info.as_ref(),
            expected: manifest.as_ref().map(|m| &m.tables),
            checks: rr.checks,
            jobs: 1,
            run_as: &run_as,
            names_encoding: manifest.as_ref().and_then(|m| m.dump_encoding.as_deref()),
        })
        .await;
    Ok(verdict(res, &loader, (&db, &scratch), rr.checks.len())
        .await?
        .map(|m| {
            let m = format!("{m} (PostgreSQL {} server)", server.version);
            match unapplied.is_empty() {
                true => m,
                false => format!("{m}; not applied: {}", unapplied.join("; ")),
            }
        }))
}

/// The local file the loader reads (the local store's own, else a fetched copy; decrypted for an
/// encrypted backup), the manifest as it describes that file, and the file's expected sha256.
fn local_copy(
    store: &dyn Store,
    rr: &RestoreRequest<'_>,
    rec: &Record,
    manifest: Option<crate::catalog::Manifest>,
) -> Result<
    (
        staging::LocalFile,
        Option<crate::catalog::Manifest>,
        Option<String>,
    ),
    VerifyError,
> {
    let m = manifest.as_ref();
    // The loader reads a local file: the local store's own, else a fetched copy (decrypted,
    // for an encrypted backup: the checksum level proved its stored bytes).
    let (local, sha256) = match m.and_then(|m| m.encryption.as_ref()) {
        None => (
            staging::local_file(store, &rec.file, &staging::default_dir())
                .map_err(|e| VerifyError::Restore(format!("cannot stage the file: {e}")))?,
            m.map(|m| m.sha256.clone())
                .or_else(|| Some(rec.sha256.clone())),
        ),
        Some(e) => {
            let expected = m.map(|m| (m.stored_bytes, m.sha256.as_str()));
            let (local, _, sha) = crate::pipeline::crypt::decrypt_object(
                store,
                &rec.file,
                &staging::default_dir(),
                rr.identities,
                (&e.recipients, expected),
            )
            .map_err(|e| VerifyError::Restore(format!("cannot decrypt the file: {e}")))?;
            (local, Some(sha))
        }
    };
    // From here on the decrypted file is what is checked: the manifest's view of it.
    let view = match (&manifest, m.and_then(|m| m.encryption.as_ref())) {
        (Some(orig), Some(_)) => {
            let mut view = orig.clone();
            view.sha256 = sha256.clone().unwrap_or_default();
            view.stored_bytes = std::fs::metadata(local.path()).map_or(0, |md| md.len());
            Some(view)
        }
        _ => manifest.clone(),
    };
    Ok((local, view, sha256))
}

/// A server older than the one the backup came from cannot prove anything about it: its
/// failures would be the version's.
fn unsuitable_server(m: &crate::catalog::Manifest, server_version_num: u32) -> Option<Failure> {
    let need = dump_major(m);
    let have = crate::pg::tools::server_major(server_version_num);
    (have < need).then(|| {
        Failure::RestoreVersion(format!(
            "the test server is PostgreSQL {have}, older than the backup's {need} (server {}, pg_dump {}); test-restore it into PostgreSQL {need} or newer",
            m.server_version, m.pg_dump_version
        ))
    })
}

/// The oldest PostgreSQL major that can load a backup: that of the server it came from, also
/// when a newer pg_dump wrote it (the loader leaves out what that pg_dump writes for newer
/// servers, `crate::pipeline::compat`); the pg_dump's major when the server's is unreadable.
pub fn dump_major(m: &crate::catalog::Manifest) -> u32 {
    match m.server_major() {
        0 => m.pg_dump_major(),
        origin => origin,
    }
}

/// The oldest server major that can load the backup in `file` (see [`dump_major`]); 0 when no
/// manifest says it (a legacy file).
pub fn dump_major_of(store: &dyn Store, file: &str) -> u32 {
    let name = format!("{file}{MANIFEST_SUFFIX}");
    match read_manifest_bytes(store, &name) {
        Ok(Some(bytes)) => parse_manifest(file, &bytes).map_or(0, |m| dump_major(&m)),
        _ => 0,
    }
}

/// The restore level could not even start (no server of a suitable major here, the throwaway
/// cluster would not start): a record that passed the checksum level ends `inconclusive`.
pub fn restore_impossible(rec: &mut Record, why: String) {
    rec.level = Level::Restore;
    if rec.ok {
        rec.conclude(Err(Failure::RestoreVersion(why)));
    }
}

/// A test restore that could not run, as the inconclusive failure it is.
fn unproven(e: VerifyError) -> Failure {
    match e {
        VerifyError::Pg(p) => pg_failure(&p),
        VerifyError::Tool(t) => Failure::RestoreVersion(t.to_string()),
        VerifyError::Storage(s) => Failure::Staging(s.to_string()),
        VerifyError::Privilege(why) => Failure::RestorePrivilege(why),
        other => Failure::RestoreUnproven(other.to_string()),
    }
}

/// A failed query or connection of the test restore, by its SQLSTATE.
fn pg_failure(e: &PgError) -> Failure {
    match e {
        PgError::Query {
            sqlstate: Some(code),
            ..
        } => by_sqlstate(code, e.to_string()),
        PgError::Query { sqlstate: None, .. } => Failure::RestoreUnproven(e.to_string()),
        PgError::Unreachable { .. }
        | PgError::Auth { .. }
        | PgError::NoDatabase { .. }
        | PgError::Tls(_) => Failure::RestoreServer(e.to_string()),
    }
}

/// What a failed statement of the test restore proves, by its SQLSTATE (never by the message,
/// which follows the server's `lc_messages`): data exceptions, integrity violations, syntax
/// errors and data corruption come from the dump's content; everything else (resources,
/// privileges, the server, unknown settings or extensions of this server) does not.
fn by_sqlstate(code: &str, message: String) -> Failure {
    let class = &code[..code.len().min(2)];
    match (class, code) {
        ("22" | "23", _) | (_, "42601" | "XX001" | "XX002") => {
            Failure::RestoreLoad(format!("{message} (SQLSTATE {code})"))
        }
        ("53", _) => Failure::RestoreResources(format!("{message} (SQLSTATE {code})")),
        ("42", "42501") | ("28", _) => {
            Failure::RestorePrivilege(format!("{message} (SQLSTATE {code})"))
        }
        ("08" | "57" | "58", _) => Failure::RestoreServer(format!("{message} (SQLSTATE {code})")),
        _ => Failure::RestoreUnproven(format!("{message} (SQLSTATE {code})")),
    }
}

/// In a throwaway cluster: create the backup's roles (and their recorded memberships).
async fn local_roles(
    client: &tokio_postgres::Client,
    rr: &RestoreRequest<'_>,
    m: &crate::catalog::Manifest,
) -> Result<(), VerifyError> {
    let created = create_roles(client, &rr.admin.user, &m.database_info.roles).await?;
    let roles = m.database_info.roles.iter().cloned().collect();
    let made = created.iter().cloned().collect();
    for sql in crate::restore::memberships_sql(&m.database_info.memberships, &roles, &made) {
        if let Err(e) = client.batch_execute(&sql).await {
            tracing::warn!(statement = %sql, error = %crate::pg::error_text(&e), "cannot recreate a role membership");
        }
    }
    if !created.is_empty() {
        tracing::info!(roles = %created.join(", "), "created the backup's roles in the throwaway cluster");
    }
    Ok(())
}

/// The database properties the scratch copy gets (the manifest's, fitted to the server, or a
/// legacy file's), and the recorded ones the server cannot take.
async fn properties(
    client: &tokio_postgres::Client,
    rr: &RestoreRequest<'_>,
    rec: &Record,
    manifest: Option<&crate::catalog::Manifest>,
    version_num: u32,
) -> Result<(Option<crate::pg::catalog::DatabaseInfo>, Vec<String>), VerifyError> {
    let Some(m) = manifest else {
        return Ok((legacy_info(client, rr, rec).await?, Vec::new()));
    };
    let mut i = m.database_info.clone();
    let roles = i.roles.iter().cloned().collect();
    let target = crate::restore::target_server(client, version_num, &roles).await?;
    let unapplied = crate::restore::fit_to_target(&mut i, &target);
    Ok((Some(i), unapplied))
}

/// What the test restore proved, or which failure it found (by [`by_sqlstate`]); `Err` when
/// interrupted. A loaded copy is dropped again.
async fn verdict(
    res: Result<Checked, LoadError>,
    loader: &Loader<'_>,
    (db, scratch): (&str, &str),
    checks: usize,
) -> Result<Result<String, Failure>, VerifyError> {
    Ok(match res {
        Ok(checked) => {
            // It proved what it had to; the copy goes.
            let dropped = match loader.drop_checked(scratch).await {
                crate::restore::Dropped::Gone => "dropped again".to_string(),
                left => {
                    let fix = crate::restore::cleanup_command(db);
                    let phrase = left.phrase("the scratch database", scratch, &fix);
                    tracing::warn!(database = %scratch, "{phrase}");
                    phrase
                }
            };
            Ok(format!(
                "loaded into scratch database \"{scratch}\" in {:.1}s: {} rows in {} tables as recorded{}{}; {dropped}",
                checked.load.duration.as_secs_f64(),
                checked.rows_checked,
                checked.tables_checked,
                if checks == 0 {
                    String::new()
                } else {
                    format!(", {checks} check(s) passed")
                },
                match checked.load.left_out.as_slice() {
                    [] => String::new(),
                    l => format!(" (left out, unknown to this server: {})", l.join("; ")),
                }
            ))
        }
        Err(LoadError::Pg(e)) => Err(pg_failure(&e)),
        Err(LoadError::Interrupted(r)) => return Err(VerifyError::Interrupted(r)),
        Err(e @ LoadError::RoleRefused(_)) => Err(Failure::RestorePrivilege(e.to_string())),
        Err(e @ LoadError::Io { .. }) => Err(Failure::RestoreUnproven(e.to_string())),
        Err(e @ (LoadError::Refused(_) | LoadError::Changed { .. } | LoadError::Incomplete(_))) => {
            Err(Failure::RestoreLoad(e.to_string()))
        }
        Err(e @ LoadError::RowCounts(_)) => Err(Failure::RestoreRows(
            e.to_string()
                .trim_start_matches("row counts differ from the backup's: ")
                .to_string(),
        )),
        Err(e @ LoadError::CheckFailed { .. }) => Err(Failure::RestoreCheck(e.to_string())),
        Err(LoadError::LoadFailed {
            database,
            message,
            sqlstate: Some(code),
        }) => Err(by_sqlstate(
            &code,
            format!("loading the backup into \"{database}\" failed: {message}"),
        )),
        // No SQLSTATE (pg_restore does not print it; a loader that was killed): the bytes
        // already read back intact, so this proves nothing about them.
        Err(e @ LoadError::LoadFailed { sqlstate: None, .. }) => {
            Err(Failure::RestoreUnproven(e.to_string()))
        }
    })
}

/// Who loads: the owner of the recorded (or live) database, or the admin role when asked.
fn run_as(
    rr: &RestoreRequest<'_>,
    info: Option<&crate::pg::catalog::DatabaseInfo>,
) -> Result<crate::restore::RunAs, VerifyError> {
    Ok(match (rr.load.as_admin, info) {
        (false, Some(i)) => crate::restore::RunAs::Owner {
            owner: i.owner.clone(),
            configured: rr.load.configured.clone(),
        },
        (false, None) => {
            return Err(VerifyError::Restore(
                "the legacy file's database does not exist on the server, so no owner is known to load it as: verify it with --local, or pass --load-as-admin".into(),
            ));
        }
        (true, _) => crate::restore::RunAs::Admin,
    })
}

/// The properties of a legacy file's scratch database: owned by the live database's owner,
/// or in a throwaway cluster by a role without login made for it.
async fn legacy_info(
    client: &tokio_postgres::Client,
    rr: &RestoreRequest<'_>,
    rec: &Record,
) -> Result<Option<crate::pg::catalog::DatabaseInfo>, VerifyError> {
    let owner = if rr.create_roles {
        create_roles(client, &rr.admin.user, &[LOCAL_OWNER.to_string()]).await?;
        Some(LOCAL_OWNER.to_string())
    } else {
        match &rec.database {
            Some(db) => client
                .query_opt(
                    "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                    &[db],
                )
                .await
                .map_err(|e| query_error("looking up the live database's owner", e))?
                .map(|r| r.get(0)),
            None => None,
        }
    };
    match owner {
        Some(o) => Ok(Some(
            crate::restore::default_info(client, "pgkeep_verify", &o).await?,
        )),
        None => Ok(None),
    }
}

/// Read the file as a restore's preflight does (`crate::restore::check_file`): refused content
/// (psql meta-commands) and incomplete files make the backup bad; statements the owner may not
/// run make the test restore impossible here without `--load-as-admin`.
async fn vet(
    input: &Input,
    manifest: Option<&crate::catalog::Manifest>,
    rec: &Record,
    client: &tokio_postgres::Client,
    run_as: &crate::restore::RunAs,
    (tools, rr): (&Tools, &RestoreRequest<'_>),
) -> Result<Result<Option<std::sync::Arc<str>>, Failure>, VerifyError> {
    let chosen = crate::restore::Chosen {
        id: rec.id.clone(),
        path: input.path.clone(),
        format: input.format,
        compression: input.compression,
        stored_bytes: 0,
        time: None,
        manifest: manifest.cloned(),
        uncommitted: false,
        local: None,
        skipped: Vec::new(),
    };
    let checked = tokio::task::block_in_place(|| {
        let mut c = crate::restore::check_file(&chosen)?;
        if input.format == Format::Custom && matches!(run_as, crate::restore::RunAs::Owner { .. }) {
            crate::restore::custom_statements(&chosen, &tools.pg_restore, rr.child_env, &mut c)?;
        }
        Ok::<_, crate::restore::RestoreError>(c)
    });
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            let msg = msg.strip_suffix("; nothing was changed").unwrap_or(&msg);
            return Ok(Err(Failure::RestoreLoad(msg.to_string())));
        }
    };
    if let crate::restore::RunAs::Owner { owner, .. } = run_as {
        let needs = crate::restore::needs_admin(client, owner, &checked, None).await?;
        if !needs.is_empty() {
            return Ok(Err(Failure::RestorePrivilege(format!(
                "the backup holds statements that need more than the database owner \"{owner}\" may do: {}; pass --load-as-admin to load it as the admin role",
                needs.join("; ")
            ))));
        }
    }
    Ok(Ok(checked.toc))
}

/// Create the roles of `roles` that do not exist yet, without password and without login (a
/// throwaway cluster only needs them to own objects and hold grants). The connecting superuser
/// and the predefined `pg_*` roles are left alone. Returns the roles created.
pub async fn create_roles(
    client: &tokio_postgres::Client,
    superuser: &str,
    roles: &[String],
) -> Result<Vec<String>, PgError> {
    let mut created = Vec::new();
    for role in roles {
        if role == superuser || role == "postgres" || role.starts_with("pg_") {
            continue;
        }
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role])
            .await
            .map_err(|e| query_error("looking up a role", e))?
            .is_some();
        if exists {
            continue;
        }
        client
            .batch_execute(&format!(
                "CREATE ROLE {} NOLOGIN",
                crate::pg::ident::quote_ident(role)
            ))
            .await
            .map_err(|e| query_error(&format!("creating role \"{role}\""), e))?;
        created.push(role.clone());
    }
    Ok(created)
}
