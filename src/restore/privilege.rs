//! Which statements of a backup need more than its database's owner may do (the load runs as
//! the owner): COPY to or from programs and server files, event triggers, publications FOR ALL,
//! subscriptions, roles, untrusted extensions, languages, server libraries, ALTER SYSTEM,
//! databases and tablespaces. The restore lists them and refuses unless `--load-as-admin`.

use super::file::{FileCheck, LegacyScan};
use crate::pg::{PgError, query_error};
use crate::pipeline::psql_scan::{Privilege, Statement};

/// The extension a `CREATE EXTENSION` head names (`CREATE EXTENSION IF NOT EXISTS "x" ...`).
fn extension_name(head: &str) -> Option<String> {
    let mut words = head.split_whitespace().skip(2);
    let mut w = words.next()?;
    if w.eq_ignore_ascii_case("if") {
        words.next();
        words.next();
        w = words.next()?;
    }
    let w = w.trim_end_matches(';');
    Some(
        match w.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(q) => q.replace("\"\"", "\""),
            None => w.to_lowercase(),
        },
    )
}

fn sentence(s: &Statement, p: Privilege) -> String {
    format!("line {}: `{}` ({})", s.line, s.head, p.describe())
}

/// The statements of `checked` that `owner` may not run, each a sentence (the first 10, then a
/// count).
pub async fn needs_admin(
    client: &tokio_postgres::Client,
    owner: &str,
    checked: &FileCheck,
    _legacy: Option<&LegacyScan>,
) -> Result<Vec<String>, PgError> {
    let ctx = "reading what the database owner may do";
    let owner_row = client
        .query_opt(
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1",
            &[&owner],
        )
        .await
        .map_err(|e| query_error(ctx, e))?;
    if owner_row.as_ref().is_some_and(|r| r.get::<_, bool>(0)) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut owners: Vec<String> = checked.owners.iter().cloned().collect();
    if let Some(public) = &checked.public_owner {
        // The owner `public` has in a new database: pg_database_owner since PostgreSQL 15, the
        // bootstrap superuser before. Giving it that owner again changes nothing.
        let fresh: String = client
            .query_one(
                "SELECT CASE WHEN current_setting('server_version_num')::int >= 150000 \
                 THEN 'pg_database_owner' ELSE (SELECT rolname::text FROM pg_roles WHERE oid = 10) END",
                &[],
            )
            .await
            .map_err(|e| query_error(ctx, e))?
            .get(0);
        if *public != fresh {
            owners.push(public.clone());
        }
    }
    if owner_row.is_some() && !owners.is_empty() {
        let foreign: Vec<String> = client
            .query(
                "SELECT r FROM unnest($1::text[]) r WHERE r <> $2 AND NOT EXISTS \
                 (SELECT 1 FROM pg_roles p WHERE p.rolname = r AND pg_has_role($2, p.oid, 'MEMBER')) ORDER BY 1",
                &[&owners, &owner],
            )
            .await
            .map_err(|e| query_error(ctx, e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !foreign.is_empty() {
            out.push(format!(
                "objects owned by {} (roles \"{owner}\" is not a member of)",
                foreign
                    .iter()
                    .map(|r| format!("\"{r}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let trusted: Vec<String> = client
        .query(
            "SELECT DISTINCT name::text FROM pg_available_extension_versions WHERE trusted",
            &[],
        )
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for s in &checked.privileged {
        let Some(p) = s.privilege else { continue };
        let needs = match p {
            // The server checks role switches against the owner's memberships itself.
            Privilege::SetRole => false,
            Privilege::Extension => !extension_name(&s.head).is_some_and(|n| trusted.contains(&n)),
            _ => true,
        };
        if needs {
            out.push(sentence(s, p));
        }
    }
    if out.len() > 10 {
        let more = out.len() - 10;
        out.truncate(10);
        out.push(format!("and {more} more"));
    }
    if checked.privileged_total > checked.privileged.len() as u64 {
        out.push(format!(
            "{} more privileged statements not listed",
            checked.privileged_total - checked.privileged.len() as u64
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_names() {
        assert_eq!(
            extension_name("CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public").as_deref(),
            Some("hstore")
        );
        assert_eq!(
            extension_name("CREATE EXTENSION \"Odd\"\"x\"").as_deref(),
            Some("Odd\"x")
        );
        assert_eq!(extension_name("CREATE EXTENSION"), None);
    }
}
