//! Catalog queries: the server version and the database-level facts a restore must recreate
//! (owner, encoding, collation, locale provider, tablespace, connection limit, comment,
//! database ACL with its grantors, per-database settings, extensions and their owners, roles
//! and their memberships). Fields added after the first manifests are optional in the JSON.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{PgError, query_error};

/// Facts about the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: String,
    pub version_num: u32,
}

/// One exploded entry of a database ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Grantee role, or `PUBLIC`.
    pub grantee: String,
    pub privilege: String,
    pub grantable: bool,
    /// The role that granted it, when not the database's owner (a grant passed on by a role
    /// holding it WITH GRANT OPTION).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantor: Option<String>,
}

/// A role membership (`GRANT role TO member`) of a role the database needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub role: String,
    pub member: String,
    pub admin_option: bool,
    /// The grantor, when not a superuser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantor: Option<String>,
}

/// Settings made by `ALTER DATABASE ... SET` (role `None`) or `ALTER ROLE ... IN DATABASE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSetting {
    pub role: Option<String>,
    pub settings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
    /// The role that created it (extensions have no `OWNER TO`; pg_dump does not keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// The database-level metadata recorded in every manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub name: String,
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// `libc`, `icu` or `builtin` (PostgreSQL 15+; absent: libc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_provider: Option<String>,
    /// The ICU (or builtin) locale of a database whose provider is not libc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// ICU tailoring rules (PostgreSQL 16+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu_rules: Option<String>,
    /// The default tablespace, when not `pg_default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablespace: Option<String>,
    /// `CONNECTION LIMIT`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<i32>,
    /// `COMMENT ON DATABASE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `datacl` as PostgreSQL prints it (`{=Tc/owner,app=CTc/owner}`), `None` for the default.
    pub acl: Option<Vec<String>>,
    /// The same ACL exploded into grants.
    pub grants: Vec<Grant>,
    pub settings: Vec<DbSetting>,
    pub extensions: Vec<Extension>,
    /// Roles that own objects or hold privileges in the database.
    pub roles: Vec<String>,
    /// Memberships between those roles and others.
    #[serde(default)]
    pub memberships: Vec<Membership>,
    /// Size on disk in bytes (`pg_database_size`).
    pub size_bytes: i64,
}

pub async fn server_info(client: &Client) -> Result<ServerInfo, PgError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| query_error("reading the server version", e))?;
    Ok(ServerInfo {
        version: row.get(0),
        version_num: row.get::<_, i32>(1) as u32,
    })
}

/// The database's row; the locale columns depend on the major.
fn database_info_sql(version_num: u32) -> String {
    let locale = match version_num {
        v if v >= 170000 => "d.datlocprovider::text, d.datlocale::text, d.daticurules::text",
        v if v >= 160000 => "d.datlocprovider::text, d.daticulocale::text, d.daticurules::text",
        v if v >= 150000 => "d.datlocprovider::text, d.daticulocale::text, NULL::text",
        _ => "'c'::text, NULL::text, NULL::text",
    };
    format!(
        r#"
SELECT d.datname,
       pg_get_userbyid(d.datdba),
       pg_encoding_to_char(d.encoding),
       d.datcollate,
       d.datctype,
       (SELECT array_agg(a::text ORDER BY ord) FROM unnest(d.datacl) WITH ORDINALITY AS u(a, ord)),
       pg_database_size(d.oid),
       {locale},
       (SELECT spcname::text FROM pg_tablespace WHERE oid = d.dattablespace AND spcname <> 'pg_default'),
       NULLIF(d.datconnlimit, -1),
       shobj_description(d.oid, 'pg_database')
FROM pg_database d WHERE d.datname = current_database()
"#
    )
}

/// In ACL order, so that a grant passed on comes after the grant it passes on.
const DATABASE_GRANTS: &str = r#"
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable,
       CASE WHEN a.grantor = d.datdba THEN NULL ELSE pg_get_userbyid(a.grantor) END
FROM pg_database d, aclexplode(d.datacl) WITH ORDINALITY a
WHERE d.datname = current_database() AND a.grantee <> d.datdba
ORDER BY a.ordinality
"#;

const MEMBERSHIPS: &str = r#"
SELECT pg_get_userbyid(m.roleid), pg_get_userbyid(m.member), m.admin_option,
       CASE WHEN g.rolsuper OR g.rolname IS NULL THEN NULL ELSE g.rolname::text END
FROM pg_auth_members m LEFT JOIN pg_roles g ON g.oid = m.grantor
WHERE pg_get_userbyid(m.roleid) = ANY($1) OR pg_get_userbyid(m.member) = ANY($1)
ORDER BY 1, 2
"#;

const DATABASE_SETTINGS: &str = r#"
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
WHERE d.datname = current_database()
ORDER BY 1 NULLS FIRST
"#;

const EXTENSIONS: &str = "SELECT e.extname::text, e.extversion, pg_get_userbyid(e.extowner)::text, n.nspname::text \
     FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1";

const ROLES: &str = r#"
WITH owners AS (
    SELECT relowner AS r FROM pg_class
    UNION SELECT nspowner FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
    UNION SELECT proowner FROM pg_proc
    UNION SELECT typowner FROM pg_type
    UNION SELECT datdba FROM pg_database WHERE datname = current_database()
    UNION SELECT (aclexplode(relacl)).grantee FROM pg_class WHERE relacl IS NOT NULL
    UNION SELECT (aclexplode(nspacl)).grantee FROM pg_namespace WHERE nspacl IS NOT NULL
    UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc WHERE proacl IS NOT NULL
    UNION SELECT (aclexplode(datacl)).grantee FROM pg_database WHERE datname = current_database() AND datacl IS NOT NULL
    UNION SELECT defaclrole FROM pg_default_acl
    UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
    UNION SELECT lomowner FROM pg_largeobject_metadata
    UNION SELECT (aclexplode(lomacl)).grantee FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL
    UNION SELECT (aclexplode(attacl)).grantee FROM pg_attribute WHERE attacl IS NOT NULL
    UNION SELECT (aclexplode(typacl)).grantee FROM pg_type WHERE typacl IS NOT NULL
    UNION SELECT extowner FROM pg_extension
    UNION SELECT evtowner FROM pg_event_trigger
    UNION SELECT pubowner FROM pg_publication
    UNION SELECT srvowner FROM pg_foreign_server
    UNION SELECT (aclexplode(srvacl)).grantee FROM pg_foreign_server WHERE srvacl IS NOT NULL
    UNION SELECT umuser FROM pg_user_mappings
    UNION SELECT fdwowner FROM pg_foreign_data_wrapper
    UNION SELECT collowner FROM pg_collation
    UNION SELECT oprowner FROM pg_operator
    UNION SELECT stxowner FROM pg_statistic_ext
    UNION SELECT cfgowner FROM pg_ts_config
    UNION SELECT dictowner FROM pg_ts_dict
    UNION SELECT polroles[i] FROM pg_policy, generate_subscripts(polroles, 1) i
)
SELECT rolname FROM pg_roles WHERE oid IN (SELECT r FROM owners) ORDER BY 1
"#;

pub async fn database_info(client: &Client) -> Result<DatabaseInfo, PgError> {
    let ctx = "reading database metadata";
    let version_num = server_info(client).await?.version_num;
    let row = client
        .query_one(&database_info_sql(version_num), &[])
        .await
        .map_err(|e| query_error(ctx, e))?;
    let grants = client
        .query(DATABASE_GRANTS, &[])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| Grant {
            grantee: r.get(0),
            privilege: r.get(1),
            grantable: r.get(2),
            grantor: r.get(3),
        })
        .collect();
    let settings = client
        .query(DATABASE_SETTINGS, &[])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| DbSetting {
            role: r.get(0),
            settings: r.get(1),
        })
        .collect();
    let extensions = client
        .query(EXTENSIONS, &[])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| Extension {
            name: r.get(0),
            version: r.get(1),
            owner: r.get(2),
            schema: r.get(3),
        })
        .collect();
    let roles = client
        .query(ROLES, &[])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| r.get(0))
        .collect::<Vec<String>>();
    let memberships = client
        .query(MEMBERSHIPS, &[&roles])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| Membership {
            role: r.get(0),
            member: r.get(1),
            admin_option: r.get(2),
            grantor: r.get(3),
        })
        .collect();
    let provider: String = row.get(7);
    Ok(DatabaseInfo {
        name: row.get(0),
        owner: row.get(1),
        encoding: row.get(2),
        collate: row.get(3),
        ctype: row.get(4),
        locale_provider: match provider.as_str() {
            "i" => Some("icu".into()),
            "b" => Some("builtin".into()),
            _ => None,
        },
        locale: row.get(8),
        icu_rules: row.get(9),
        tablespace: row.get(10),
        connection_limit: row.get(11),
        comment: row.get(12),
        acl: row.get(5),
        grants,
        settings,
        extensions,
        roles,
        memberships,
        size_bytes: row.get(6),
    })
}

/// What the manifest of a globals backup records about the server's globals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalsInfo {
    /// The backup role could read the role passwords (`pg_authid`): they are in the file.
    pub role_passwords: bool,
    /// Why the passwords are not in the file, when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The roles of the server (the `pg_` roles of PostgreSQL itself left out).
    pub roles: Vec<String>,
    /// Tablespaces other than pg_default and pg_global, with the directory each lives in.
    pub tablespaces: Vec<Tablespace>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tablespace {
    pub name: String,
    pub location: String,
}

/// The roles and tablespaces of the server, and whether the role passwords are readable.
pub async fn globals_info(client: &Client) -> Result<GlobalsInfo, PgError> {
    let q = |e| query_error("reading the roles and tablespaces", e);
    let role_passwords: bool = client
        .query_one(
            "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')",
            &[],
        )
        .await
        .map_err(q)?
        .get(0);
    let roles = client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1",
            &[],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tablespaces = client
        .query(
            "SELECT spcname::text, pg_tablespace_location(oid) FROM pg_tablespace \
             WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY 1",
            &[],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| Tablespace {
            name: r.get(0),
            location: r.get(1),
        })
        .collect();
    Ok(GlobalsInfo {
        role_passwords,
        note: (!role_passwords).then(|| {
            "the backup role may not read pg_authid: the roles are recorded without their \
             passwords (pg_dumpall --no-role-passwords); set them again after a restore"
                .to_string()
        }),
        roles,
        tablespaces,
    })
}
