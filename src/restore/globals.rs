//! Recovery of a server's globals from a globals backup (`pg_dumpall --globals-only`) onto
//! another server: the file proven against its manifest and read through the psql lexer, every
//! statement classified ([`super::globals_sql`]), the roles and tablespaces the target already
//! has left exactly as they are, the rest applied as the admin (a superuser): roles, role
//! settings and memberships in one transaction, then each tablespace (which cannot be created in
//! one).

use std::collections::BTreeSet;
use std::io::Read;

use super::choose::Chosen;
use super::error::RestoreError;
use super::globals_sql::{Kind, classify};
use crate::pg::{ConnParams, query_error};
use crate::pipeline::psql_scan::{Event, ScanOptions, Scanner};
use crate::pipeline::{self, Inspector};

/// Globals files larger than this (decompressed) are refused: a server's roles and tablespaces
/// are a few megabytes at most.
const MAX_GLOBALS_BYTES: u64 = 256 << 20;

/// One statement of a globals file.
#[derive(Debug, Clone)]
pub struct Statement {
    pub line: u64,
    pub sql: String,
    pub kind: Kind,
}

/// The globals file read and proven: its statements in file order.
#[derive(Debug, Clone)]
pub struct GlobalsFile {
    pub statements: Vec<Statement>,
    /// What was checked, one sentence.
    pub check: String,
}

/// What the target server has of the globals.
#[derive(Debug, Clone, Default)]
pub struct TargetGlobals {
    pub roles: BTreeSet<String>,
    pub tablespaces: BTreeSet<String>,
    pub admin_user: String,
    pub superuser: bool,
    pub server_version: String,
}

/// A tablespace of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTablespace {
    pub name: String,
    pub location: String,
    /// On the target already: left as it is.
    pub exists: bool,
}

/// What applying the globals will do on the target.
#[derive(Debug, Clone, Default)]
pub struct GlobalsPlan {
    /// Roles of the file the target lacks: created with their attributes, settings and
    /// memberships.
    pub roles_created: Vec<String>,
    /// Roles of the file the target has: left as they are, with their memberships and settings.
    pub roles_existing: Vec<String>,
    /// Created roles that may log in but get no password (the file has none for them).
    pub passwordless: Vec<String>,
    pub tablespaces: Vec<PlannedTablespace>,
    /// Statements of the role part, applied in one transaction.
    pub role_sql: Vec<Statement>,
    /// Statements of the tablespaces to create, in file order.
    pub tablespace_sql: Vec<Statement>,
}

/// What applying the globals did.
#[derive(Debug, Clone, Default)]
pub struct GlobalsApplied {
    pub statements: usize,
    pub tablespaces_created: Vec<String>,
    /// Tablespaces that could not be created, each with the server's error.
    pub tablespace_failures: Vec<(String, String)>,
}

fn refused(what: String) -> RestoreError {
    RestoreError::Refused(what)
}

fn io(backup: &Chosen, source: std::io::Error) -> RestoreError {
    RestoreError::Io {
        context: format!("cannot read {}", backup.path.display()),
        source,
    }
}

/// Read the globals backup: size and sha256 against its manifest, decompressed completely with
/// pg_dumpall's trailer, no psql meta-command, every statement one a globals file holds, UTF-8.
pub fn read_globals(backup: &Chosen) -> Result<GlobalsFile, RestoreError> {
    let name = backup.path.display();
    let stored = std::fs::read(&backup.path).map_err(|e| io(backup, e))?;
    let (bytes, sha) = pipeline::hash_reader(&stored[..]).map_err(|e| io(backup, e))?;
    let Some(m) = &backup.manifest else {
        return Err(refused(format!("{name} has no manifest")));
    };
    if bytes != m.stored_bytes || sha != m.sha256 {
        return Err(refused(format!(
            "the globals file {name} does not match its manifest: {bytes} bytes with sha256 {}…, the manifest says {} bytes with sha256 {}…",
            &sha[..16],
            m.stored_bytes,
            &m.sha256[..m.sha256.len().min(16)]
        )));
    }
    let mut data = Vec::new();
    pipeline::decoder(&stored[..], backup.compression)
        .and_then(|d| d.take(MAX_GLOBALS_BYTES + 1).read_to_end(&mut data))
        .map_err(|e| refused(format!("the globals file {name} does not decompress: {e}")))?;
    if data.len() as u64 > MAX_GLOBALS_BYTES {
        return Err(refused(format!(
            "the globals file {name} is larger than {} MiB decompressed",
            MAX_GLOBALS_BYTES >> 20
        )));
    }
    let mut inspector = Inspector::new();
    inspector.feed(&data);
    if !inspector.finish().cluster_trailer {
        return Err(refused(format!(
            "the globals file {name} lacks pg_dumpall's completion trailer"
        )));
    }
    let statements = statements(&data).map_err(|why| refused(format!("{name}: {why}")))?;
    Ok(GlobalsFile {
        check: format!(
            "sha256 {} matches the manifest ({bytes} bytes); {} statements, all of roles, memberships, role settings or tablespaces",
            &sha[..16],
            statements.len()
        ),
        statements,
    })
}

/// The statements of a globals file, each classified; the first that is not a globals
/// statement (or a meta-command, or COPY data) refuses the file.
fn statements(data: &[u8]) -> Result<Vec<Statement>, String> {
    let mut scanner = Scanner::new(ScanOptions {
        all_statements: true,
        ..ScanOptions::default()
    });
    scanner.feed(data);
    let end = scanner.finish();
    if let Some(what) = end.unterminated {
        return Err(format!("the file ends inside {what}"));
    }
    let mut out = Vec::new();
    for event in scanner.take_events() {
        let s = match event {
            Event::Refused(f) => return Err(format!("refused: {f}")),
            Event::CopyData { line, .. } => {
                return Err(format!("line {line}: COPY data in a globals file"));
            }
            Event::PgDumpRestrict { .. } => continue,
            Event::Statement(s) => s,
        };
        let sql = std::str::from_utf8(&data[s.start as usize..s.end as usize])
            .map_err(|_| format!("line {}: the statement is not UTF-8", s.line))?;
        let kind = classify(sql).ok_or_else(|| {
            format!(
                "line {}: `{}` is not a statement of a globals file (roles, memberships, role settings, tablespaces)",
                s.line, s.head
            )
        })?;
        if let Kind::Session { name, value } = &kind {
            session_ok(name, value).map_err(|why| format!("line {}: {why}", s.line))?;
        }
        out.push(Statement {
            line: s.line,
            sql: sql.to_string(),
            kind,
        });
    }
    Ok(out)
}

/// The session settings a globals file may make.
fn session_ok(name: &str, value: &str) -> Result<(), String> {
    let v = value.to_ascii_lowercase();
    match name {
        "default_transaction_read_only" => Ok(()),
        "client_encoding" if v == "utf8" || v == "utf-8" => Ok(()),
        "client_encoding" => Err(format!(
            "the file is in client encoding {value}: pgkeep restores UTF8 globals"
        )),
        "standard_conforming_strings" if v == "on" => Ok(()),
        _ => Err(format!("`SET {name}` is not a setting of a globals file")),
    }
}

/// The admin's view of the target: its roles and tablespaces, and whether it is a superuser.
pub async fn target_globals(admin: &ConnParams) -> Result<TargetGlobals, RestoreError> {
    let client = admin.connect().await?;
    let q = |e| query_error("reading the roles and tablespaces of the target", e);
    let me = client
        .query_one(
            "SELECT current_user::text, rolsuper, current_setting('server_version') \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(q)?;
    let names = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect();
    Ok(TargetGlobals {
        admin_user: me.get(0),
        superuser: me.get(1),
        server_version: me.get(2),
        roles: names(
            client
                .query("SELECT rolname::text FROM pg_roles", &[])
                .await
                .map_err(q)?,
        ),
        tablespaces: names(
            client
                .query("SELECT spcname::text FROM pg_tablespace", &[])
                .await
                .map_err(q)?,
        ),
    })
}

/// What applying `file` onto `target` does: everything of a role or tablespace the target
/// already has is left out.
pub fn plan_globals(file: &GlobalsFile, target: &TargetGlobals) -> GlobalsPlan {
    let mut plan = GlobalsPlan::default();
    let mut file_roles = BTreeSet::new();
    let mut with_password = BTreeSet::new();
    let mut login = BTreeSet::new();
    for s in &file.statements {
        let role_exists = |r: &String| target.roles.contains(r);
        let keep_role = match &s.kind {
            Kind::Session { .. } => true,
            Kind::CreateRole { role } => {
                file_roles.insert(role.clone());
                !role_exists(role)
            }
            Kind::RoleAttributes {
                role,
                login: l,
                password,
            } => {
                if *l {
                    login.insert(role.clone());
                }
                if *password {
                    with_password.insert(role.clone());
                }
                !role_exists(role)
            }
            Kind::OfRole { role } => !role_exists(role),
            Kind::Membership { member, .. } => !role_exists(member),
            Kind::CreateTablespace { name, location } => {
                plan.tablespaces.push(PlannedTablespace {
                    name: name.clone(),
                    location: location.clone(),
                    exists: target.tablespaces.contains(name),
                });
                if !target.tablespaces.contains(name) {
                    plan.tablespace_sql.push(s.clone());
                }
                continue;
            }
            Kind::OfTablespace { name } => {
                if !target.tablespaces.contains(name) {
                    plan.tablespace_sql.push(s.clone());
                }
                continue;
            }
        };
        if keep_role {
            plan.role_sql.push(s.clone());
        }
    }
    let (existing, created): (Vec<String>, Vec<String>) = file_roles
        .into_iter()
        .partition(|r| target.roles.contains(r));
    plan.passwordless = created
        .iter()
        .filter(|r| login.contains(*r) && !with_password.contains(*r))
        .cloned()
        .collect();
    plan.roles_existing = existing;
    plan.roles_created = created;
    plan
}

/// Why the globals cannot be applied onto the target, if they cannot.
pub fn globals_refusal(target: &TargetGlobals) -> Option<String> {
    (!target.superuser).then(|| {
        format!(
            "the admin role \"{}\" is not a superuser on the target: restoring roles and tablespaces needs one",
            target.admin_user
        )
    })
}

/// Apply the plan: the role part in one transaction (a failure changes nothing), then every
/// tablespace with its grants and settings (one that cannot be created is reported, its
/// statements skipped, and the others go on).
pub async fn apply_globals(
    admin: &ConnParams,
    plan: &GlobalsPlan,
) -> Result<GlobalsApplied, RestoreError> {
    let mut client = admin.connect().await?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| query_error("starting the transaction of the roles", e))?;
    for s in &plan.role_sql {
        if matches!(&s.kind, Kind::Session { name, .. } if name == "client_encoding") {
            continue;
        }
        tx.batch_execute(&s.sql).await.map_err(|e| {
            RestoreError::Refused(format!(
                "the roles of the globals could not be restored: line {}: {}",
                s.line,
                crate::pg::error_text(&e)
            ))
        })?;
    }
    tx.commit()
        .await
        .map_err(|e| query_error("committing the roles", e))?;
    let mut applied = GlobalsApplied {
        statements: plan.role_sql.len(),
        ..GlobalsApplied::default()
    };
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for s in &plan.tablespace_sql {
        let name = match &s.kind {
            Kind::CreateTablespace { name, .. } | Kind::OfTablespace { name } => name,
            _ => continue,
        };
        if failed.contains(name) {
            continue;
        }
        match client.batch_execute(&s.sql).await {
            Ok(()) => {
                applied.statements += 1;
                if matches!(s.kind, Kind::CreateTablespace { .. }) {
                    applied.tablespaces_created.push(name.clone());
                }
            }
            Err(e) => {
                failed.insert(name.clone());
                applied.tablespace_failures.push((
                    name.clone(),
                    format!("line {}: {}", s.line, crate::pg::error_text(&e)),
                ));
            }
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict abc\n\n\
        SET default_transaction_read_only = off;\nSET client_encoding = 'UTF8';\n\
        SET standard_conforming_strings = on;\n\
        CREATE ROLE ann;\nALTER ROLE ann WITH NOSUPERUSER INHERIT LOGIN;\n\
        CREATE ROLE app;\nALTER ROLE app WITH LOGIN PASSWORD 'SCRAM-SHA-256$x';\n\
        CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER LOGIN;\n\
        CREATE ROLE readers;\nALTER ROLE readers WITH NOLOGIN;\n\
        ALTER ROLE postgres SET work_mem TO '1GB';\nALTER ROLE ann SET statement_timeout TO '5s';\n\
        GRANT readers TO ann GRANTED BY postgres;\nGRANT readers TO postgres GRANTED BY postgres;\n\
        CREATE TABLESPACE fast OWNER app LOCATION '/srv/fast';\nGRANT ALL ON TABLESPACE fast TO ann;\n\
        CREATE TABLESPACE old OWNER app LOCATION '/srv/old';\nCOMMENT ON TABLESPACE old IS 'x';\n\
        \n\\unrestrict abc\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n";

    #[test]
    fn roles_and_tablespaces_the_target_has_are_left_alone() {
        let file = GlobalsFile {
            statements: statements(FILE.as_bytes()).unwrap(),
            check: String::new(),
        };
        let target = TargetGlobals {
            roles: ["postgres".to_string()].into(),
            tablespaces: ["old".to_string(), "pg_default".to_string()].into(),
            superuser: true,
            ..TargetGlobals::default()
        };
        let plan = plan_globals(&file, &target);
        assert_eq!(plan.roles_created, ["ann", "app", "readers"]);
        assert_eq!(plan.roles_existing, ["postgres"]);
        assert_eq!(plan.passwordless, ["ann"]);
        let sql: Vec<&str> = plan.role_sql.iter().map(|s| s.sql.as_str()).collect();
        assert!(
            !sql.iter()
                .any(|s| s.contains("ROLE postgres") || s.contains("TO postgres")),
            "{sql:?}"
        );
        assert!(sql.contains(&"GRANT readers TO ann GRANTED BY postgres;"));
        assert_eq!(
            plan.tablespaces,
            [
                PlannedTablespace {
                    name: "fast".into(),
                    location: "/srv/fast".into(),
                    exists: false
                },
                PlannedTablespace {
                    name: "old".into(),
                    location: "/srv/old".into(),
                    exists: true
                }
            ]
        );
        assert_eq!(plan.tablespace_sql.len(), 2);
    }

    #[test]
    fn anything_but_globals_is_refused() {
        for bad in [
            "CREATE ROLE a;\nCOPY (SELECT 1) TO PROGRAM 'id';\n",
            "CREATE ROLE a;\n\\! id\n",
            "SET client_encoding = 'LATIN1';\n",
            "SET search_path = evil;\n",
            "CREATE ROLE a;\nCOPY t FROM stdin;\n1\n\\.\n",
        ] {
            assert!(statements(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
