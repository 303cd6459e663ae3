//! The SQL that gives a scratch database the recorded properties of the backed-up one (owner,
//! encoding, collation, locale provider, tablespace, comment, connection limit, database-level
//! grants with their grantors, per-database and per-role settings, extension owners, role
//! memberships), what of that a target server cannot take, and the drop of a database.

use std::collections::BTreeSet;

use crate::pg::catalog::{DatabaseInfo, Membership};
use crate::pg::ident::{quote_ident, quote_literal, split_quoted};

/// What the target server offers for the recorded properties.
#[derive(Debug, Clone, Default)]
pub struct TargetServer {
    pub version_num: u32,
    pub tablespaces: BTreeSet<String>,
    /// Roles the admin role may `SET ROLE` to; `None`: any (a superuser).
    pub can_act_as: Option<BTreeSet<String>>,
    /// Roles that exist there.
    pub roles: BTreeSet<String>,
}

impl TargetServer {
    fn acts_as(&self, role: &str) -> bool {
        self.roles.contains(role) && self.can_act_as.as_ref().is_none_or(|r| r.contains(role))
    }
}

/// Schemas every new database has, where an extension can be created before the load.
const SCHEMAS_OF_A_NEW_DATABASE: &[&str] = &["public", "pg_catalog"];

/// Fit the recorded properties to the target: what it cannot take is dropped from `info`, each
/// with a sentence for the plan. A libc database is created with `LOCALE_PROVIDER libc` where
/// the server has providers (its template0 may be ICU).
pub fn fit_to_target(info: &mut DatabaseInfo, t: &TargetServer) -> Vec<String> {
    let mut lost = Vec::new();
    let v = t.version_num;
    match info.locale_provider.as_deref() {
        Some("icu") if v < 150000 => {
            lost.push(format!(
                "the ICU locale provider (locale {}) needs PostgreSQL 15 or later: the copy sorts by the libc collation {}",
                info.locale.as_deref().unwrap_or("-"),
                info.collate
            ));
            info.locale_provider = None;
            info.locale = None;
        }
        Some("builtin") if v < 170000 => {
            lost.push(format!(
                "the builtin locale provider (locale {}) needs PostgreSQL 17 or later: the copy uses the libc collation {}",
                info.locale.as_deref().unwrap_or("-"),
                info.collate
            ));
            info.locale_provider = (v >= 150000).then(|| "libc".into());
            info.locale = None;
        }
        None if v >= 150000 => info.locale_provider = Some("libc".into()),
        _ => {}
    }
    if info.icu_rules.is_some() && (v < 160000 || info.locale_provider.as_deref() != Some("icu")) {
        lost.push("the ICU rules need PostgreSQL 16 or later: the copy has none".into());
        info.icu_rules = None;
    }
    if let Some(ts) = &info.tablespace
        && !t.tablespaces.contains(ts)
    {
        lost.push(format!(
            "tablespace \"{ts}\" does not exist on the target: the copy is in the default tablespace"
        ));
        info.tablespace = None;
    }
    for g in &mut info.grants {
        if let Some(by) = &g.grantor
            && !t.acts_as(by)
        {
            lost.push(format!(
                "{} on the database for {} was granted by \"{by}\", whom the admin role cannot act as: the owner grants it",
                g.privilege, g.grantee
            ));
            g.grantor = None;
        }
    }
    for e in &mut info.extensions {
        let (Some(owner), Some(schema)) = (&e.owner, &e.schema) else {
            continue;
        };
        if !SCHEMAS_OF_A_NEW_DATABASE.contains(&schema.as_str()) {
            lost.push(format!(
                "extension {} (schema {schema}) is created by the load, owned by the admin role instead of \"{owner}\"",
                e.name
            ));
            e.owner = None;
        } else if !t.acts_as(owner) {
            e.owner = None;
        }
    }
    lost
}

/// `CREATE DATABASE` with the recorded owner, encoding, collation, locale provider and
/// tablespace (from template0 so that any encoding and locale is allowed). The connection limit
/// comes after the load (see [`settings_sql`]).
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
        let locale = quote_literal(i.locale.as_deref().unwrap_or(""));
        match i.locale_provider.as_deref() {
            Some("icu") => sql.push_str(&format!(" LOCALE_PROVIDER icu ICU_LOCALE {locale}")),
            Some("builtin") => {
                sql.push_str(&format!(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {locale}"))
            }
            Some(p) => sql.push_str(&format!(" LOCALE_PROVIDER {}", quote_ident(p))),
            None => {}
        }
        if let Some(r) = &i.icu_rules {
            sql.push_str(&format!(" ICU_RULES {}", quote_literal(r)));
        }
        if let Some(ts) = &i.tablespace {
            sql.push_str(&format!(" TABLESPACE {}", quote_ident(ts)));
        }
    }
    sql
}

/// The database-level grants (the runbook's GRANT step): reproduce the recorded ACL, each
/// grant by its grantor; and the database's comment.
pub fn grants_sql(name: &str, info: Option<&DatabaseInfo>) -> Vec<String> {
    let Some(i) = info else { return Vec::new() };
    let db = quote_ident(name);
    let mut out = Vec::new();
    if let Some(c) = &i.comment {
        out.push(format!("COMMENT ON DATABASE {db} IS {}", quote_literal(c)));
    }
    let Some(_) = &i.acl else {
        // Default ACL: nothing to do, a new database has it.
        return out;
    };
    out.push(format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC"));
    // The owner's grants first: a grant passed on needs the grant option it passes on.
    let mut grants: Vec<_> = i.grants.iter().collect();
    grants.sort_by_key(|g| g.grantor.is_some());
    for g in grants {
        let grantee = if g.grantee == "PUBLIC" {
            "PUBLIC".to_string()
        } else {
            quote_ident(&g.grantee)
        };
        let grant = format!(
            "GRANT {} ON DATABASE {db} TO {grantee}{}",
            g.privilege,
            if g.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        );
        out.push(match &g.grantor {
            Some(by) => format!("SET ROLE {}; {grant}; RESET ROLE", quote_ident(by)),
            None => grant,
        });
    }
    out
}

/// Extensions created before the load by the roles that own them (pg_dump's
/// `CREATE EXTENSION IF NOT EXISTS` then finds them): run in the new database.
pub fn extensions_sql(info: Option<&DatabaseInfo>) -> Vec<String> {
    let Some(i) = info else { return Vec::new() };
    i.extensions
        .iter()
        .filter_map(|e| {
            let (owner, schema) = (e.owner.as_ref()?, e.schema.as_ref()?);
            Some(format!(
                "SET ROLE {}; CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}; RESET ROLE",
                quote_ident(owner),
                quote_ident(&e.name),
                quote_ident(schema)
            ))
        })
        .collect()
}

/// `GRANT role TO member` for the recorded memberships among `roles` that touch a role of
/// `created`.
pub fn memberships_sql(
    memberships: &[Membership],
    roles: &BTreeSet<String>,
    created: &BTreeSet<String>,
) -> Vec<String> {
    memberships
        .iter()
        .filter(|m| roles.contains(&m.role) || m.role.starts_with("pg_"))
        .filter(|m| roles.contains(&m.member))
        .filter(|m| created.contains(&m.role) || created.contains(&m.member))
        .map(|m| {
            let mut sql = format!(
                "GRANT {} TO {}",
                quote_ident(&m.role),
                quote_ident(&m.member)
            );
            if m.admin_option {
                sql.push_str(" WITH ADMIN OPTION");
            }
            if let Some(g) = m.grantor.as_ref().filter(|g| roles.contains(*g)) {
                sql.push_str(&format!(" GRANTED BY {}", quote_ident(g)));
            }
            sql
        })
        .collect()
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
    if let Some(n) = i.connection_limit {
        out.push(format!("ALTER DATABASE {db} CONNECTION LIMIT {n}"));
    }
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
            locale_provider: None,
            locale: None,
            icu_rules: None,
            tablespace: None,
            connection_limit: None,
            comment: None,
            acl: Some(vec!["=Tc/sbi_app".into()]),
            grants: vec![
                Grant {
                    grantee: "PUBLIC".into(),
                    privilege: "CONNECT".into(),
                    grantable: false,
                    grantor: None,
                },
                Grant {
                    grantee: "Read Only".into(),
                    privilege: "CONNECT".into(),
                    grantable: true,
                    grantor: None,
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
            memberships: vec![],
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
        let mut fitted = i.clone();
        fitted.locale_provider = Some("icu".into());
        fitted.locale = Some("sv-SE".into());
        fitted.tablespace = Some("fast".into());
        fitted.comment = Some("it's".into());
        fitted.connection_limit = Some(7);
        fitted.grants[1].grantor = Some("alice".into());
        let mut on14 = fitted.clone();
        let target = TargetServer {
            version_num: 150000,
            tablespaces: ["fast".to_string()].into(),
            can_act_as: None,
            roles: ["alice".to_string()].into(),
        };
        assert!(fit_to_target(&mut fitted, &target).is_empty());
        assert_eq!(
            create_database_sql("x", Some(&fitted)),
            "CREATE DATABASE \"x\" WITH TEMPLATE template0 OWNER \"sbi_app\" ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'sv-SE' TABLESPACE \"fast\""
        );
        let g = grants_sql("x", Some(&fitted));
        assert_eq!(g[0], "COMMENT ON DATABASE \"x\" IS 'it''s'");
        assert_eq!(
            g[3],
            "SET ROLE \"alice\"; GRANT CONNECT ON DATABASE \"x\" TO \"Read Only\" WITH GRANT OPTION; RESET ROLE"
        );
        assert_eq!(
            settings_sql("x", Some(&fitted))[0],
            "ALTER DATABASE \"x\" CONNECTION LIMIT 7"
        );
        let lost = fit_to_target(
            &mut on14,
            &TargetServer {
                version_num: 140000,
                ..TargetServer::default()
            },
        );
        assert_eq!(lost.len(), 3, "{lost:?}");
        assert!(
            lost[0].contains("ICU") && lost[1].contains("\"fast\""),
            "{lost:?}"
        );
        assert_eq!(on14.grants[1].grantor, None);
        assert!(!create_database_sql("x", Some(&on14)).contains("LOCALE_PROVIDER"));
        let mut default_acl = i.clone();
        default_acl.acl = None;
        assert!(grants_sql("x", Some(&default_acl)).is_empty());
        let m = |role: &str, member: &str| Membership {
            role: role.into(),
            member: member.into(),
            admin_option: member == "b",
            grantor: Some("c".into()),
        };
        let roles: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        assert_eq!(
            memberships_sql(
                &[m("a", "b"), m("a", "z"), m("pg_read_all_data", "a")],
                &roles,
                &["a".to_string()].into()
            ),
            vec![
                "GRANT \"a\" TO \"b\" WITH ADMIN OPTION GRANTED BY \"c\"",
                "GRANT \"pg_read_all_data\" TO \"a\" GRANTED BY \"c\"",
            ]
        );
        assert_eq!(
            drop_database_sql("a\"b", 150000),
            "DROP DATABASE IF EXISTS \"a\"\"b\" WITH (FORCE)"
        );
    }
}
