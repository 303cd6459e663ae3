//! Catalog queries: the server version and the database-level facts a restore must recreate
//! (owner, encoding, collation, database ACL, per-database settings, extensions, roles).

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
}

/// The database-level metadata recorded in every manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub name: String,
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// `datacl` as PostgreSQL prints it (`{=Tc/owner,app=CTc/owner}`), `None` for the default.
    pub acl: Option<Vec<String>>,
    /// The same ACL exploded into grants.
    pub grants: Vec<Grant>,
    pub settings: Vec<DbSetting>,
    pub extensions: Vec<Extension>,
    /// Roles that own objects or hold privileges in the database.
    pub roles: Vec<String>,
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

const DATABASE_INFO: &str = r#"
SELECT d.datname,
       pg_get_userbyid(d.datdba),
       pg_encoding_to_char(d.encoding),
       d.datcollate,
       d.datctype,
       (SELECT array_agg(a::text ORDER BY ord) FROM unnest(d.datacl) WITH ORDINALITY AS u(a, ord)),
       pg_database_size(d.oid)
FROM pg_database d WHERE d.datname = current_database()
"#;

const DATABASE_GRANTS: &str = r#"
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_database d, aclexplode(d.datacl) a
WHERE d.datname = current_database() AND a.grantee <> d.datdba
ORDER BY 1, 2
"#;

const DATABASE_SETTINGS: &str = r#"
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
WHERE d.datname = current_database()
ORDER BY 1 NULLS FIRST
"#;

const EXTENSIONS: &str = "SELECT extname, extversion FROM pg_extension ORDER BY 1";

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
)
SELECT rolname FROM pg_roles WHERE oid IN (SELECT r FROM owners) ORDER BY 1
"#;

pub async fn database_info(client: &Client) -> Result<DatabaseInfo, PgError> {
    let ctx = "reading database metadata";
    let row = client
        .query_one(DATABASE_INFO, &[])
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
        })
        .collect();
    let roles = client
        .query(ROLES, &[])
        .await
        .map_err(|e| query_error(ctx, e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(DatabaseInfo {
        name: row.get(0),
        owner: row.get(1),
        encoding: row.get(2),
        collate: row.get(3),
        ctype: row.get(4),
        acl: row.get(5),
        grants,
        settings,
        extensions,
        roles,
        size_bytes: row.get(6),
    })
}
