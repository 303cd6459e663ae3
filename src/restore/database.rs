//! The SQL that gives a scratch database the recorded properties of the backed-up one (owner,
//! encoding, collation, database-level grants, per-database and per-role settings), and drops a
//! database again.

use crate::pg::catalog::DatabaseInfo;
use crate::pg::ident::{quote_ident, quote_literal, split_quoted};

/// `CREATE DATABASE` with the recorded owner, encoding and collation (from template0 so that
/// any encoding and locale is allowed).
pub fn create_database_sql(name: &str, info: Option<&DatabaseInfo>) -> String {
    let mut sql = format!(
        "CREATE DATABASE {} WITH TEMPLATE template0",
        quote_ident(name)
    );
    if let Some(i) = info {
        sql.push_str(&format!(
            " OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_ident(&i.owner),
            quote_literal(&i.encoding),
            quote_literal(&i.collate),
            quote_literal(&i.ctype)
        ));
    }
    sql
}

/// The database-level grants (the runbook's GRANT step): reproduce the recorded ACL.
pub fn grants_sql(name: &str, info: Option<&DatabaseInfo>) -> Vec<String> {
    let Some(i) = info else { return Vec::new() };
    let Some(_) = &i.acl else {
        // Default ACL: nothing to do, a new database has it.
        return Vec::new();
    };
    let db = quote_ident(name);
    let mut out = vec![format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC")];
    for g in &i.grants {
        let grantee = if g.grantee == "PUBLIC" {
            "PUBLIC".to_string()
        } else {
            quote_ident(&g.grantee)
        };
        out.push(format!(
            "GRANT {} ON DATABASE {db} TO {grantee}{}",
            g.privilege,
            if g.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ));
    }
    out
}

/// Settings whose values are lists of (possibly quoted) identifiers, as pg_dump treats them.
const LIST_SETTINGS: &[&str] = &[
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
];

/// Split a stored list value (`"$user", public`) into its elements.
fn split_list(value: &str) -> Vec<String> {
    split_quoted(value, ',')
        .iter()
        .map(|e| e.trim().to_string())
        .collect()
}

/// `ALTER DATABASE .. SET` and `ALTER ROLE .. IN DATABASE .. SET` for the recorded settings.
pub fn settings_sql(name: &str, info: Option<&DatabaseInfo>) -> Vec<String> {
    let Some(i) = info else { return Vec::new() };
    let db = quote_ident(name);
    let mut out = Vec::new();
    for s in &i.settings {
        for entry in &s.settings {
            let Some((k, v)) = entry.split_once('=') else {
                continue;
            };
            let value = if LIST_SETTINGS.contains(&k) {
                split_list(v)
                    .iter()
                    .map(|e| quote_literal(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                quote_literal(v)
            };
            let target = match &s.role {
                None => format!("ALTER DATABASE {db}"),
                Some(r) => format!("ALTER ROLE {} IN DATABASE {db}", quote_ident(r)),
            };
            out.push(format!("{target} SET {} = {value}", quote_ident(k)));
        }
    }
    out
}

/// `DROP DATABASE`, forcing other sessions out where the server allows it.
pub fn drop_database_sql(name: &str, server_version_num: u32) -> String {
    if server_version_num >= 130_000 {
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name))
    } else {
        format!("DROP DATABASE IF EXISTS {}", quote_ident(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::catalog::{DbSetting, Grant};

    fn info() -> DatabaseInfo {
        DatabaseInfo {
            name: "sbi".into(),
            owner: "sbi_app".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            acl: Some(vec!["=Tc/sbi_app".into()]),
            grants: vec![
                Grant {
                    grantee: "PUBLIC".into(),
                    privilege: "CONNECT".into(),
                    grantable: false,
                },
                Grant {
                    grantee: "Read Only".into(),
                    privilege: "CONNECT".into(),
                    grantable: true,
                },
            ],
            settings: vec![
                DbSetting {
                    role: None,
                    settings: vec![
                        "statement_timeout=5min".into(),
                        "search_path=\"$user\", public, \"We\"\"ird\"".into(),
                    ],
                },
                DbSetting {
                    role: Some("sbi_app".into()),
                    settings: vec!["work_mem=64MB".into()],
                },
            ],
            extensions: vec![],
            roles: vec![],
            size_bytes: 0,
        }
    }

    #[test]
    fn sql_for_recorded_properties() {
        let i = info();
        assert_eq!(
            create_database_sql("sbi_x", Some(&i)),
            "CREATE DATABASE \"sbi_x\" WITH TEMPLATE template0 OWNER \"sbi_app\" ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        );
        assert_eq!(
            grants_sql("sbi_x", Some(&i)),
            vec![
                "REVOKE ALL ON DATABASE \"sbi_x\" FROM PUBLIC",
                "GRANT CONNECT ON DATABASE \"sbi_x\" TO PUBLIC",
                "GRANT CONNECT ON DATABASE \"sbi_x\" TO \"Read Only\" WITH GRANT OPTION",
            ]
        );
        assert_eq!(
            settings_sql("sbi_x", Some(&i)),
            vec![
                "ALTER DATABASE \"sbi_x\" SET \"statement_timeout\" = '5min'",
                "ALTER DATABASE \"sbi_x\" SET \"search_path\" = '$user', 'public', 'We\"ird'",
                "ALTER ROLE \"sbi_app\" IN DATABASE \"sbi_x\" SET \"work_mem\" = '64MB'",
            ]
        );
        let mut default_acl = i.clone();
        default_acl.acl = None;
        assert!(grants_sql("x", Some(&default_acl)).is_empty());
        assert_eq!(
            drop_database_sql("a\"b", 150000),
            "DROP DATABASE IF EXISTS \"a\"\"b\" WITH (FORCE)"
        );
    }
}
