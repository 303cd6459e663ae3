//! The roles a backup needs on the target server: those its manifest records, and those the
//! dump's own statements name (`OWNER TO`, `GRANT .. TO`, `REVOKE .. FROM`), read line by line.

use std::collections::BTreeSet;
use std::path::Path;

use super::choose::Chosen;
use super::error::RestoreError;
use crate::model::Format;
use crate::pg::catalog::DatabaseInfo;
use crate::pg::ident::quote_ident;
use crate::pipeline;

/// Roles a backup references (built-in `pg_*` roles excluded).
pub fn roles_of(info: &DatabaseInfo) -> BTreeSet<String> {
    let mut r = roles_of_database(info);
    r.extend(info.roles.iter().filter(|n| !n.starts_with("pg_")).cloned());
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
pub(super) struct RoleScanner {
    pub(super) roles: BTreeSet<String>,
    /// Roles named by `ALTER ... OWNER TO`: the owners of objects.
    pub(super) owners: BTreeSet<String>,
    /// The owner `ALTER SCHEMA public OWNER TO` gives the `public` schema, kept apart: a new
    /// database already has a `public` schema, and giving it the owner it has is a no-op the
    /// server allows anyone (the bootstrap superuser owns it before PostgreSQL 15).
    pub(super) public_owner: Option<String>,
    in_copy: bool,
    /// The start of a line split across chunks ([`RoleScanner::chunk`]).
    partial: Vec<u8>,
}

impl RoleScanner {
    /// Look at one line, with its newline.
    pub(super) fn line(&mut self, line: &[u8]) {
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
            if line.starts_with(b"ALTER SCHEMA public OWNER TO ") {
                self.public_owner = Some(role.clone());
            } else if line.starts_with(b"ALTER ") {
                self.owners.insert(role.clone());
            }
            self.roles.insert(role);
        }
    }

    /// Look at the next bytes of the stream, split anywhere.
    pub(super) fn chunk(&mut self, mut data: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', data) {
            if self.partial.is_empty() {
                self.line(&data[..=i]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&data[..=i]);
                self.line(&line);
            }
            data = &data[i + 1..];
        }
        self.partial.extend_from_slice(data);
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

pub fn create_role_sql(role: &str) -> String {
    format!("CREATE ROLE {}", quote_ident(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_schema_owner_is_kept_apart_from_the_owners() {
        let mut scan = RoleScanner::default();
        scan.chunk(b"ALTER SCHEMA public OWNER TO postgres;\nALTER TABLE public.t OWNER TO app;\n");
        assert_eq!(scan.public_owner.as_deref(), Some("postgres"));
        assert_eq!(scan.owners.iter().collect::<Vec<_>>(), ["app"]);
        assert!(
            scan.roles.contains("postgres"),
            "still a role the dump names"
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
}
