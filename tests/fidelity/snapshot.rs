//! What a database is, for comparing a restored copy with its original: the schema as
//! `pg_dump --schema-only` prints it, a checksum of every table's rows, large objects, sequence
//! values, database-level properties, extension owners and the role memberships of the case's
//! roles. Everything is kept as the database's bytes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::target::{As, Target, show};

/// One side of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `pg_dump --schema-only` without the `\restrict` lines, the database name replaced.
    pub schema: Vec<u8>,
    /// Table (or materialized view) -> `rows md5`.
    pub data: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Large object oid -> owner, ACL, comment, md5 of the content.
    pub large_objects: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Sequence -> last value (or `not called`).
    pub sequences: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Database-level property -> value.
    pub database: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Extension -> owner, version, schema.
    pub extensions: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `role member grantor admin` rows of the case's roles.
    pub memberships: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The aspects compared, in table order.
pub const ASPECTS: [&str; 7] = ["schema", "data", "lobs", "seqs", "db", "ext", "roles"];

/// The client encoding that returns a database's text unchanged in a comparable form: UTF-8
/// (converted by the server) except for SQL_ASCII databases, whose bytes have no encoding.
pub fn client_encoding(server_encoding: &str) -> &'static str {
    if server_encoding == "SQL_ASCII" {
        "SQL_ASCII"
    } else {
        "UTF8"
    }
}

impl Snapshot {
    /// Read everything of `db`; `role_prefix` selects the memberships compared.
    pub fn take(t: &Target, db: &OsStr, role_prefix: &str) -> Result<Snapshot, String> {
        let enc = t
            .encoding_of(db)
            .ok_or_else(|| format!("database {} does not exist", show(db.as_bytes())))?;
        let enc = client_encoding(&enc);
        Ok(Snapshot {
            schema: schema(t, db, enc)?,
            data: pairs(t, db, enc, &data_sql(enc))?,
            large_objects: pairs(t, db, enc, LARGE_OBJECTS)?,
            sequences: pairs(t, db, enc, SEQUENCES)?,
            database: pairs(t, db, enc, &database_sql(t.version_num))?,
            extensions: pairs(t, db, enc, EXTENSIONS)?,
            memberships: pairs(t, db, enc, &memberships_sql(role_prefix))?,
        })
    }

    /// How `other` differs from `self`, per aspect (`None`: equal).
    pub fn diff(&self, other: &Snapshot) -> [Option<String>; 7] {
        [
            diff_text(&self.schema, &other.schema),
            diff_map(&self.data, &other.data),
            diff_map(&self.large_objects, &other.large_objects),
            diff_map(&self.sequences, &other.sequences),
            diff_map(&self.database, &other.database),
            diff_map(&self.extensions, &other.extensions),
            diff_map(&self.memberships, &other.memberships),
        ]
    }
}

fn schema(t: &Target, db: &OsStr, enc: &str) -> Result<Vec<u8>, String> {
    let out = t
        .client("pg_dump", As::Superuser)
        .args(["--schema-only", "-E", enc, "-d"])
        .arg(db)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "pg_dump --schema-only: {}",
            super::target::one_line(&out.stderr)
        ));
    }
    let mut text = Vec::new();
    for line in out.stdout.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"\\restrict") || line.starts_with(b"\\unrestrict") {
            continue;
        }
        text.extend_from_slice(line);
    }
    Ok(replace(&text, db.as_bytes(), b"<database>"))
}

/// `hay` with every whole-word `needle` (not part of a longer identifier, such as a role
/// named after the database) replaced.
fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let word =
        |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$');
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if !needle.is_empty()
            && hay[i..].starts_with(needle)
            && !word(i.checked_sub(1).and_then(|p| hay.get(p)))
            && !word(hay.get(i + needle.len()))
        {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Rows of `key, value` as a map.
fn pairs(
    t: &Target,
    db: &OsStr,
    enc: &str,
    sql: &str,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
    Ok(t.rows(db, enc, sql)?
        .into_iter()
        .map(|mut r| {
            let v = if r.len() > 1 { r.remove(1) } else { Vec::new() };
            (r.remove(0), v)
        })
        .collect())
}

/// Per table: the row count and the md5 of its rows' text in byte order (in the comparable
/// encoding, so a LATIN1 original and a UTF-8 copy of it compare equal).
fn data_sql(enc: &str) -> String {
    format!(
        r#"
SELECT format('%I.%I', n.nspname, c.relname),
       (xpath('/row/c/text()', query_to_xml(format(
           'SELECT count(*) || '' '' || coalesce(md5(string_agg(convert_to(x::text, %L), ''\x0a''::bytea ORDER BY convert_to(x::text, %L))), ''-'') AS c FROM ONLY %I.%I x',
           '{enc}', '{enc}', n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relispopulated
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
ORDER BY 1"#
    )
}

const LARGE_OBJECTS: &str = r#"
SELECT 'count', count(*)::text FROM pg_largeobject_metadata
UNION ALL
SELECT l.oid::text,
       concat_ws(' ', 'owner=' || pg_get_userbyid(l.lomowner), 'acl=' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(l.lomacl) a), '-'),
                 'comment=' || coalesce(obj_description(l.oid, 'pg_largeobject'), '-'), 'md5=' || md5(lo_get(l.oid)))
FROM pg_largeobject_metadata l
ORDER BY 1"#;

const SEQUENCES: &str = r#"
SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value::text, 'not called')
FROM pg_sequences ORDER BY 1"#;

const EXTENSIONS: &str = r#"
SELECT e.extname, concat_ws(' ', 'owner=' || pg_get_userbyid(e.extowner), 'version=' || e.extversion,
                            'schema=' || n.nspname)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1"#;

/// Database-level properties, for the server's major (the locale columns moved over time).
/// ACL items are sorted: their order carries no meaning.
fn database_sql(version_num: u32) -> String {
    let locale = match version_num {
        v if v >= 170000 => "d.datlocprovider::text || ' ' || coalesce(d.datlocale, '-')",
        v if v >= 150000 => "d.datlocprovider::text || ' ' || coalesce(d.daticulocale, '-')",
        _ => "'c -'",
    };
    format!(
        r#"
SELECT k, v FROM pg_database d, LATERAL (VALUES
    ('owner', pg_get_userbyid(d.datdba)::text),
    ('encoding', pg_encoding_to_char(d.encoding)::text),
    ('collate', d.datcollate::text),
    ('ctype', d.datctype::text),
    ('locale provider', {locale}),
    ('connection limit', d.datconnlimit::text),
    ('allow connections', d.datallowconn::text),
    ('tablespace', (SELECT spcname::text FROM pg_tablespace WHERE oid = d.dattablespace)),
    ('comment', coalesce(shobj_description(d.oid, 'pg_database'), '-')),
    ('acl', coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(d.datacl) a), '-')),
    ('settings', coalesce((SELECT string_agg(coalesce(pg_get_userbyid(nullif(s.setrole, 0))::text, '*') || ': ' || array_to_string(s.setconfig, ', '), '; ' ORDER BY 1)
                  FROM pg_db_role_setting s WHERE s.setdatabase = d.oid), '-')),
    ('sort order', (SELECT string_agg(w, ',' ORDER BY w) FROM (VALUES ('apa'), ('Bil'), ('öl'), ('zebra'), ('Ärta'), ('åsna')) AS x(w)))
) AS p(k, v)
WHERE d.datname = current_database()
ORDER BY 1"#
    )
}

fn memberships_sql(prefix: &str) -> String {
    let p = prefix.replace('\'', "''");
    format!(
        r#"
SELECT concat_ws(' ', pg_get_userbyid(m.roleid), pg_get_userbyid(m.member)),
       concat_ws(' ', 'grantor=' || pg_get_userbyid(m.grantor), 'admin=' || m.admin_option)
FROM pg_auth_members m
WHERE starts_with(pg_get_userbyid(m.roleid), '{p}') OR starts_with(pg_get_userbyid(m.member), '{p}')
ORDER BY 1"#
    )
}

fn diff_text(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let la: Vec<&[u8]> = a.split(|c| *c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split(|c| *c == b'\n').collect();
    let i = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    let cut = |l: Option<&&[u8]>| {
        let s = l.map_or("<end>".to_string(), |l| show(l));
        s.chars().take(90).collect::<String>()
    };
    Some(format!(
        "line {}: {:?} became {:?}",
        i + 1,
        cut(la.get(i)),
        cut(lb.get(i))
    ))
}

fn diff_map(a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("{} missing", show(k))),
            Some(w) if w != v => out.push(format!("{}: {} -> {}", show(k), show(v), show(w))),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{} extra", show(k)));
    }
    if out.is_empty() {
        return None;
    }
    let n = out.len();
    out.truncate(3);
    if n > 3 {
        out.push(format!("and {} more", n - 3));
    }
    Some(out.join("; "))
}
