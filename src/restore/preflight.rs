//! The read-only preflight of a restore: the file proven, then on the target server the admin
//! role's privileges, the live database, the properties the restored copy gets, the roles the
//! backup needs and the client tools; and whether all that forbids the restore. Changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::error::RestoreError;
use super::file::{FileCheck, check_file};
use super::load::Tools;
use super::names::{previous_name_n, scratch_name_n};
use super::request::{Request, effective_admin};
use super::roles::{dump_roles, roles_of, roles_of_database};
use crate::pg::catalog::DatabaseInfo;
use crate::pg::ident::quote_ident;
use crate::pg::{ConnParams, PgError, query_error};

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
    /// sha256 of the file as checked: the load feeds only bytes that hash the same.
    pub file_sha256: String,
    /// A custom archive's table of contents, as the check listed it.
    pub toc: Option<std::sync::Arc<str>>,
    /// The role the file's SQL runs as (`None`: the admin role).
    pub load_owner: Option<String>,
    /// Statements of the file that need more than the owner has, each a sentence.
    pub needs_admin: Vec<String>,
    /// Prepared transactions of the live database (their gids): they hold it, so neither the
    /// swap nor an in-place drop could go through.
    pub prepared: Vec<String>,
    /// Recorded properties the target cannot take, each a sentence (also left out of `info`).
    pub unapplied: Vec<String>,
    /// Why the file check refused the file, when a dry run went on past it.
    pub file_refused: Option<String>,
}

/// The admin role as the server sees it.
struct AdminRole {
    user: String,
    superuser: bool,
    createdb: bool,
    createrole: bool,
    /// Member of `pg_signal_backend`: may end other roles' sessions.
    signal: bool,
}

/// The live database, when the target exists.
struct Live {
    owner: String,
    size: i64,
    sessions: i64,
    /// Sessions of roles the admin role is not a member of.
    foreign_sessions: i64,
    prepared: Vec<String>,
}

const PRIVILEGES: &str = "reading the admin role's privileges";

/// Read-only preflight: file check, server, privileges, roles, tools, names. Changes nothing.
/// A damaged file stops it at once.
pub async fn preflight(req: &Request) -> Result<Preflight, RestoreError> {
    run(req, false).await
}

/// The preflight of a dry run: a damaged file is recorded in [`Preflight::file_refused`] and the
/// rest of the preflight goes on, so that the plan can still be shown as far as it can be made.
pub async fn dry_run_preflight(req: &Request) -> Result<Preflight, RestoreError> {
    run(req, true).await
}

/// The database the admin connects to: `postgres`, or `template1` when `postgres` is the target.
fn maintenance_db(target: &str) -> String {
    match target == "postgres" {
        true => "template1",
        false => "postgres",
    }
    .to_string()
}

/// What the server and the client tools say, none of which depends on the file: asked while
/// the file is read.
struct ServerSide {
    client: tokio_postgres::Client,
    server: crate::pg::catalog::ServerInfo,
    me: AdminRole,
    live: Option<Live>,
    info: Option<DatabaseInfo>,
    info_source: &'static str,
    tools: Tools,
}

async fn server_side(req: &Request, maintenance_db: &str) -> Result<ServerSide, RestoreError> {
    let admin = effective_admin(req, maintenance_db);
    let client = admin.connect().await?;
    let server = crate::pg::catalog::server_info(&client).await?;
    let dump_major = req.backup.manifest.as_ref().map(|m| m.pg_dump_major());
    let search = req.search.clone();
    let version_num = server.version_num;
    // The tools' version probes run while the catalog is read.
    let tools = tokio::task::spawn_blocking(move || {
        Tools::find(version_num, dump_major.unwrap_or(0), &search)
    });
    let me = admin_role(&client).await?;
    let live = live_database(&client, &req.target).await?;
    let (info, info_source) = properties(req, &admin, &client, live.is_some()).await?;
    let tools = tools.await.map_err(|e| RestoreError::Io {
        context: "cannot look for the client tools".into(),
        source: std::io::Error::other(e.to_string()),
    })??;
    Ok(ServerSide {
        client,
        server,
        me,
        live,
        info,
        info_source,
        tools,
    })
}

/// Read the file (on a thread of its own) while `server` runs; a refused file is the answer
/// whatever the server side does, and it does not wait for it.
async fn file_and_server<S>(
    backup: &super::choose::Chosen,
    server: S,
) -> (Result<FileCheck, RestoreError>, Duration, Option<S::Output>)
where
    S: std::future::Future,
{
    let backup = backup.clone();
    let mut file = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        (check_file(&backup), t.elapsed())
    });
    let mut server = std::pin::pin!(server);
    let mut asked = None;
    let (checked, took) = loop {
        tokio::select! {
            f = &mut file => break f.unwrap_or_else(|e| (
                Err(RestoreError::Io {
                    context: "the file check failed".into(),
                    source: std::io::Error::other(e.to_string()),
                }),
                Duration::ZERO,
            )),
            s = &mut server, if asked.is_none() => asked = Some(s),
        }
    };
    if checked.is_ok() && asked.is_none() {
        asked = Some(server.await);
    }
    (checked, took, asked)
}

async fn run(req: &Request, past_damage: bool) -> Result<Preflight, RestoreError> {
    let maintenance_db = maintenance_db(&req.target);
    let (checked, file_check_duration, asked) =
        file_and_server(&req.backup, server_side(req, &maintenance_db)).await;
    let (mut checked, file_refused) = match checked {
        Ok(checked) => (checked, None),
        Err(RestoreError::Refused(why)) if past_damage => (
            FileCheck {
                summary: format!("REFUSED: {why}"),
                ..FileCheck::default()
            },
            Some(why),
        ),
        Err(e) => return Err(e),
    };
    let side = match asked {
        Some(side) => side?,
        None => server_side(req, &maintenance_db).await?,
    };
    let ServerSide {
        client,
        server,
        me,
        live,
        mut info,
        info_source,
        tools,
    } = side;
    // First: a custom archive's schema, read here, also names the roles it needs.
    let (load_owner, needs_admin) = owner_checks(
        req,
        &client,
        info.as_ref(),
        &tools,
        &mut checked,
        file_refused.is_none(),
    )
    .await?;
    let roles_needed = needed_roles(req, &client, info.as_ref(), &checked, &tools)
        .await
        .or_else(|e| match &file_refused {
            // A damaged archive may not list its roles: the plan goes on with the certain ones.
            Some(_) => Ok(info.as_ref().map(roles_of_database).unwrap_or_default()),
            None => Err(e),
        })?;
    let legacy = checked.legacy.as_ref();
    let existing = lookup_roles(&client, roles_needed.iter().cloned().collect()).await?;
    let roles_missing: Vec<String> = roles_needed.difference(&existing).cloned().collect();
    let unapplied = match info.as_mut() {
        Some(i) => {
            let target = target_server(&client, server.version_num, &roles_needed).await?;
            super::database::fit_to_target(i, &target)
        }
        None => Vec::new(),
    };
    let missing_privileges = if me.superuser {
        Vec::new()
    } else {
        missing_privileges(
            req,
            &client,
            &me,
            info.as_ref(),
            live.as_ref(),
            &roles_missing,
        )
        .await?
    };
    Ok(Preflight {
        server_version: server.version,
        server_version_num: server.version_num,
        admin_user: me.user,
        superuser: me.superuser,
        maintenance_db,
        target_exists: live.is_some(),
        live_sessions: live.as_ref().map_or(0, |l| l.sessions),
        live_size: live.as_ref().map(|l| l.size),
        info,
        info_source,
        roles_needed,
        roles_missing,
        missing_privileges,
        tools,
        scratch: free_name(&client, |n| scratch_name_n(&req.target, req.now, n)).await?,
        previous: free_name(&client, |n| previous_name_n(&req.target, req.now, n)).await?,
        prepared: live
            .as_ref()
            .map(|l| l.prepared.clone())
            .unwrap_or_default(),
        unapplied,
        file_check: checked.summary.clone(),
        file_check_duration,
        legacy_rows: legacy.map(|(r, _)| r.tables.clone()),
        file_refused,
        file_sha256: checked.sha256.clone(),
        toc: checked.toc.clone(),
        load_owner,
        needs_admin,
    })
}

async fn admin_role(client: &tokio_postgres::Client) -> Result<AdminRole, PgError> {
    let me = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolcreatedb, rolcreaterole, \
             pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| query_error(PRIVILEGES, e))?;
    Ok(AdminRole {
        user: me.get(0),
        superuser: me.get(1),
        createdb: me.get(2),
        createrole: me.get(3),
        signal: me.get(4),
    })
}

async fn live_database(
    client: &tokio_postgres::Client,
    target: &str,
) -> Result<Option<Live>, PgError> {
    let live = client
        .query_opt(
            "SELECT pg_get_userbyid(d.datdba), d.datallowconn, pg_database_size(d.oid), \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname), \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname \
                AND NOT pg_has_role(current_user, a.usesysid, 'MEMBER')) \
             FROM pg_database d WHERE d.datname = $1",
            &[&target],
        )
        .await
        .map_err(|e| query_error("looking up the target database", e))?;
    let Some(r) = live else { return Ok(None) };
    let prepared = client
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = $1 ORDER BY prepared",
            &[&target],
        )
        .await
        .map_err(|e| query_error("looking up prepared transactions", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(Live {
        owner: r.get(0),
        size: r.get(2),
        sessions: r.get(3),
        foreign_sessions: r.get(4),
        prepared,
    }))
}

/// What the target server offers: its tablespaces, the roles there (and those a restore with
/// `--create-roles` creates), the roles a non-superuser admin may act as.
pub async fn target_server(
    client: &tokio_postgres::Client,
    version_num: u32,
    roles_needed: &BTreeSet<String>,
) -> Result<super::database::TargetServer, PgError> {
    let ctx = "reading the target server's tablespaces and roles";
    let tablespaces = client
        .query("SELECT spcname::text FROM pg_tablespace", &[])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut roles: BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| query_error(ctx, e))?
        .get(0);
    let can_act_as = if superuser {
        None
    } else {
        Some(
            client
                .query(
                    "SELECT rolname::text FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER')",
                    &[],
                )
                .await
                .map_err(|e| query_error(ctx, e))?
                .iter()
                .map(|r| r.get(0))
                .collect(),
        )
    };
    roles.extend(roles_needed.iter().cloned());
    Ok(super::database::TargetServer {
        version_num,
        tablespaces,
        can_act_as,
        roles,
    })
}

/// The first of `candidate(1)`, `candidate(2)`, .. that names no database on the server.
async fn free_name(
    client: &tokio_postgres::Client,
    candidate: impl Fn(u32) -> String,
) -> Result<String, PgError> {
    let mut n = 1;
    loop {
        let name = candidate(n);
        let taken = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| query_error("looking up database names", e))?
            .is_some();
        if !taken || n >= 99_999 {
            return Ok(name);
        }
        n += 1;
    }
}

/// The properties the restored database gets: the manifest's, else the live database's.
async fn properties(
    req: &Request,
    admin: &ConnParams,
    client: &tokio_postgres::Client,
    target_exists: bool,
) -> Result<(Option<DatabaseInfo>, &'static str), RestoreError> {
    if let (None, false, Some(owner)) = (&req.backup.manifest, target_exists, &req.load.owner) {
        return Ok((
            Some(default_info(client, &req.target, owner).await?),
            "the server's defaults, owned by --owner (legacy file, no live database)",
        ));
    }
    Ok(match (&req.backup.manifest, target_exists) {
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
    })
}

/// Properties of a new database `name` owned by `owner` with the server's defaults
/// (template1's encoding and locale).
pub async fn default_info(
    client: &tokio_postgres::Client,
    name: &str,
    owner: &str,
) -> Result<DatabaseInfo, PgError> {
    let t = client
        .query_one(
            "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text FROM pg_database WHERE datname = 'template1'",
            &[],
        )
        .await
        .map_err(|e| query_error("reading the server's default encoding", e))?;
    Ok(DatabaseInfo {
        name: name.to_string(),
        owner: owner.to_string(),
        encoding: t.get(0),
        collate: t.get(1),
        ctype: t.get(2),
        acl: None,
        grants: Vec::new(),
        settings: Vec::new(),
        extensions: Vec::new(),
        roles: Vec::new(),
        memberships: Vec::new(),
        locale_provider: None,
        locale: None,
        icu_rules: None,
        tablespace: None,
        connection_limit: None,
        comment: None,
        size_bytes: 0,
    })
}

/// The roles of `names` that exist on the server.
async fn lookup_roles(
    client: &tokio_postgres::Client,
    names: Vec<String>,
) -> Result<BTreeSet<String>, PgError> {
    client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
            &[&names],
        )
        .await
        .map_err(|e| query_error("looking up roles", e))
        .map(|rows| rows.iter().map(|r| r.get(0)).collect::<BTreeSet<String>>())
}

/// Roles certainly needed: the owner, grantees and settings roles of the database, and the roles
/// a legacy file names. The manifest's wider list (every role owning anything in the database,
/// built-in objects included) is checked against the dump itself before a role is reported
/// missing.
async fn needed_roles(
    req: &Request,
    client: &tokio_postgres::Client,
    info: Option<&DatabaseInfo>,
    checked: &FileCheck,
    tools: &Tools,
) -> Result<BTreeSet<String>, RestoreError> {
    let mut roles_needed = info.map(roles_of_database).unwrap_or_default();
    if let Some((_, roles)) = &checked.legacy {
        roles_needed.extend(roles.iter().cloned());
    }
    let maybe: BTreeSet<String> = info
        .map(roles_of)
        .unwrap_or_default()
        .difference(&roles_needed)
        .cloned()
        .collect();
    let maybe_existing = lookup_roles(client, maybe.iter().cloned().collect()).await?;
    let maybe_missing: Vec<&String> = maybe.difference(&maybe_existing).collect();
    if !maybe_missing.is_empty() {
        let read;
        let named = match &checked.named_roles {
            Some(named) => named,
            None => {
                read = dump_roles(&req.backup, &tools.pg_restore, &req.child_env)?;
                &read
            }
        };
        roles_needed.extend(
            maybe_missing
                .into_iter()
                .filter(|r| named.contains(*r))
                .cloned(),
        );
    }
    roles_needed.extend(maybe_existing.iter().cloned());
    Ok(roles_needed)
}

/// Privileges a non-superuser admin role lacks for this restore, each a sentence.
async fn missing_privileges(
    req: &Request,
    client: &tokio_postgres::Client,
    me: &AdminRole,
    info: Option<&DatabaseInfo>,
    live: Option<&Live>,
    roles_missing: &[String],
) -> Result<Vec<String>, PgError> {
    let admin_user = &me.user;
    let mut missing = Vec::new();
    if !me.createdb {
        missing.push(format!(
            "role \"{admin_user}\" lacks CREATEDB (needed to create the scratch database; ALTER ROLE {} CREATEDB, or set PGKEEP_ADMIN_USER to a role that has it)",
            quote_ident(admin_user)
        ));
    }
    if req.create_roles && !roles_missing.is_empty() && !me.createrole {
        missing.push(format!(
            "role \"{admin_user}\" lacks CREATEROLE (needed by --create-roles)"
        ));
    }
    // Objects are given to their owners and grants made in their names: membership needed.
    // Non-superusers must be able to act as the owners: of the restored database (CREATE
    // DATABASE .. OWNER, its objects' ALTER .. OWNER TO) and of the live one (rename/drop).
    let check: Vec<String> = info
        .map(|i| i.owner.clone())
        .into_iter()
        .chain(live.map(|l| l.owner.clone()))
        .collect();
    let not_member: Vec<String> = client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) AND NOT pg_has_role(current_user, oid, 'MEMBER') ORDER BY 1",
            &[&check],
        )
        .await
        .map_err(|e| query_error(PRIVILEGES, e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !not_member.is_empty() {
        missing.push(format!(
            "role \"{admin_user}\" is not a member of {} (needed to give the restored database its owner and to rename or drop the live one; GRANT the role to it or use a superuser)",
            not_member.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ")
        ));
    }
    let foreign_sessions = live.map_or(0, |l| l.foreign_sessions);
    if live.is_some() && foreign_sessions > 0 && !me.signal {
        missing.push(format!(
            "role \"{admin_user}\" lacks pg_signal_backend (needed to end the {foreign_sessions} sessions of other roles on \"{}\"; GRANT pg_signal_backend TO {})",
            req.target,
            quote_ident(admin_user)
        ));
    }
    Ok(missing)
}

/// The role the file's SQL runs as (`None`: the admin role), and the statements of the file
/// that need more than that owner has.
async fn owner_checks(
    req: &Request,
    client: &tokio_postgres::Client,
    info: Option<&DatabaseInfo>,
    tools: &Tools,
    checked: &mut FileCheck,
    file_sound: bool,
) -> Result<(Option<String>, Vec<String>), RestoreError> {
    let load_owner = (!req.load.as_admin)
        .then(|| info.map(|i| i.owner.clone()))
        .flatten();
    if load_owner.is_some() && file_sound && req.backup.format == crate::model::Format::Custom {
        super::file::custom_statements(&req.backup, &tools.pg_restore, &req.child_env, checked)?;
    }
    let needs_admin = match &load_owner {
        Some(owner) => {
            super::privilege::needs_admin(client, owner, checked, checked.legacy.as_ref()).await?
        }
        None => Vec::new(),
    };
    Ok((load_owner, needs_admin))
}

/// Why preflight forbids the restore, if it does.
pub fn refusal(req: &Request, pre: &Preflight) -> Option<String> {
    if let Some(why) = &pre.file_refused {
        return Some(why.clone());
    }
    if !pre.missing_privileges.is_empty() {
        return Some(pre.missing_privileges.join("; "));
    }
    if !pre.prepared.is_empty() {
        return Some(format!(
            "the live database \"{}\" has prepared transactions ({}): they hold it, so it cannot be renamed or dropped; COMMIT PREPARED or ROLLBACK PREPARED them first",
            req.target,
            pre.prepared
                .iter()
                .map(|g| format!("'{g}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !req.load.as_admin && pre.info.is_none() {
        return Some("the legacy file's database does not exist, so no owner is known to run its SQL as: pass --owner ROLE (the role that owned the database), or --load-as-admin".into());
    }
    if let (Some(owner), false) = (&pre.load_owner, pre.needs_admin.is_empty()) {
        return Some(format!(
            "the backup holds statements that need more than the database owner \"{owner}\" may do: {}; pass --load-as-admin to run the file as the admin role",
            pre.needs_admin.join("; ")
        ));
    }
    if req.backup.format == crate::model::Format::Plain
        && !pre.tools.psql_restricts()
        && !req.load.allow_unrestricted_psql
    {
        return Some(format!(
            "psql {} ({}) lacks restricted mode (\\restrict: 13.22+, 14.19+, 15.14+, 16.10+, 17.6+, 18), so pgkeep's filter of psql meta-commands would be the only line; install a newer psql or pass --allow-unrestricted-psql",
            pre.tools.psql_version,
            pre.tools.psql.display()
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Compression, Format};
    use std::io::Write;

    const TRAILER: &str = "--\n-- PostgreSQL database dump complete\n--\n\n";

    /// A legacy gzip file (no manifest) of `body`.
    fn legacy(dir: &std::path::Path, body: &str) -> super::super::choose::Chosen {
        let path = dir.join("old.sql.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body.as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        super::super::choose::Chosen {
            id: "old".into(),
            stored_bytes: std::fs::metadata(&path).unwrap().len(),
            path,
            format: Format::Plain,
            compression: Compression::Gzip,
            time: None,
            manifest: None,
            uncommitted: false,
            local: None,
            skipped: Vec::new(),
        }
    }

    fn rows(n: usize) -> String {
        let mut s = "COPY public.t (a) FROM stdin;\n".to_string();
        for i in 0..n {
            s.push_str(&format!("{i}\n"));
        }
        s.push_str("\\.\n");
        s
    }

    #[tokio::test]
    async fn a_refusal_at_the_end_of_the_file_does_not_wait_for_the_server() {
        let dir = tempfile::tempdir().unwrap();
        // Past several chunks of the reader, then a shell command.
        let body = format!("{}\\! touch /tmp/pwned\n{TRAILER}", rows(600_000));
        let backup = legacy(dir.path(), &body);
        let never = std::future::pending::<()>();
        let (checked, _, asked) =
            tokio::time::timeout(Duration::from_secs(60), file_and_server(&backup, never))
                .await
                .expect("the refusal did not wait for the server");
        let why = match checked {
            Err(RestoreError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        assert!(why.contains("\\!"), "{why}");
        assert!(asked.is_none());
    }

    #[tokio::test]
    async fn a_sound_file_waits_for_the_server_and_gives_both() {
        let dir = tempfile::tempdir().unwrap();
        let backup = legacy(dir.path(), &format!("{}{TRAILER}", rows(1000)));
        let slow = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            42
        };
        let (checked, _, asked) = file_and_server(&backup, slow).await;
        let checked = checked.unwrap();
        assert_eq!(asked, Some(42));
        // The legacy file's counts come from the one read that vetted it.
        let (report, _) = checked.legacy.expect("legacy counts");
        assert_eq!(report.tables.get("public.t"), Some(&1000));
        // A server side that fails first is the answer only when the file is sound.
        let fails = async { Err::<(), _>("server down") };
        let (checked, _, asked) = file_and_server(&backup, fails).await;
        assert!(checked.is_ok());
        assert_eq!(asked, Some(Err("server down")));
    }

    #[tokio::test]
    async fn a_file_that_does_not_decompress_is_the_answer_over_a_failed_server() {
        let dir = tempfile::tempdir().unwrap();
        let backup = legacy(dir.path(), &format!("{}{TRAILER}", rows(100_000)));
        // Cut the compressed file in the middle.
        let bytes = std::fs::read(&backup.path).unwrap();
        std::fs::write(&backup.path, &bytes[..bytes.len() / 2]).unwrap();
        let fails = async { Err::<(), _>("server down") };
        let (checked, _, _) = file_and_server(&backup, fails).await;
        match checked {
            Err(RestoreError::Refused(why)) => assert!(why.contains("old.sql.gz"), "{why}"),
            other => panic!("not refused: {other:?}"),
        }
    }
}
