//! Recovery of a whole server onto an empty one: `pgkeep restore --all --target-host`. A server
//! of several databases with roles, memberships, role settings, grants and a tablespace is backed
//! up over the set; then everything is restored into a second, empty throwaway cluster and
//! compared (roles with their passwords, memberships, settings, database properties, every
//! database's schema, grants and data). A role the target has already is left as it is; a dry run
//! changes nothing; a damaged newest backup is passed over once verified bad and refuses the
//! recovery before any change while it is not.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::server::Server;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SET: [(&str, &str); 2] = [
    ("PGKEEP_DATABASES", "all"),
    ("PGKEEP_EXCLUDE_DATABASES", "postgres"),
];

/// A directory for a tablespace, owned by the server's OS user.
fn tablespace_dir(s: &Server, name: &str) -> std::path::PathBuf {
    let dir = s.cluster.socket_dir().join(name);
    std::fs::create_dir(&dir).unwrap();
    let owner = std::fs::metadata(s.cluster.socket_dir()).unwrap();
    std::os::unix::fs::chown(&dir, Some(owner.uid()), Some(owner.gid())).unwrap();
    dir
}

/// The source server: three databases with their owners, schemas, grants and data, roles with
/// memberships and settings, one role without a password, a tablespace, a database that allows
/// no connections (left out of `all`).
fn source() -> (Server, std::path::PathBuf) {
    let s = Server::start();
    let ts = tablespace_dir(&s, "ts_fast");
    s.sql(
        "postgres",
        &format!(
            "CREATE ROLE app_owner LOGIN PASSWORD 'owner-pw' CREATEDB CONNECTION LIMIT 7; \
             CREATE ROLE readers NOLOGIN; \
             CREATE ROLE ann LOGIN PASSWORD 'ann-pw' IN ROLE readers VALID UNTIL '2100-01-01'; \
             GRANT app_owner TO ann WITH ADMIN OPTION; \
             ALTER ROLE ann SET statement_timeout = '5s'; \
             COMMENT ON ROLE ann IS 'the analyst'; \
             CREATE ROLE nopw LOGIN IN ROLE readers; \
             CREATE ROLE legacy LOGIN PASSWORD 'legacy-pw' CONNECTION LIMIT 3 IN ROLE readers; \
             CREATE TABLESPACE fast OWNER app_owner LOCATION '{}'; \
             GRANT CREATE ON TABLESPACE fast TO ann; \
             CREATE DATABASE shop OWNER app_owner; CREATE DATABASE gis; \
             CREATE DATABASE \"Mixed Case\" OWNER ann; CREATE DATABASE odd OWNER ann; \
             CREATE DATABASE frozen; \
             ALTER DATABASE frozen ALLOW_CONNECTIONS false; \
             REVOKE CONNECT ON DATABASE shop FROM PUBLIC; \
             GRANT CONNECT ON DATABASE shop TO readers; \
             ALTER DATABASE shop SET work_mem = '8MB'",
            ts.display()
        ),
    );
    s.sql(
        "shop",
        "SET ROLE app_owner; CREATE SCHEMA sales; \
         CREATE TABLE sales.orders (id int PRIMARY KEY, item text, placed date); \
         INSERT INTO sales.orders SELECT i, 'item ' || i, date '2026-01-01' + i FROM generate_series(1, 300) i; \
         CREATE VIEW sales.recent AS SELECT * FROM sales.orders WHERE placed > date '2026-06-01'; \
         GRANT USAGE ON SCHEMA sales TO readers; GRANT SELECT ON sales.orders, sales.recent TO readers; \
         GRANT INSERT ON sales.orders TO ann",
    );
    s.sql(
        "gis",
        "CREATE TABLE places (id serial PRIMARY KEY, name text); \
         INSERT INTO places (name) SELECT 'place ' || i FROM generate_series(1, 40) i; \
         COMMENT ON TABLE places IS 'all the places'; GRANT SELECT ON places TO nopw",
    );
    s.sql(
        "Mixed Case",
        "SET ROLE ann; CREATE TABLE \"Notes\" (n text); INSERT INTO \"Notes\" VALUES ('a'), ('b')",
    );
    // A table the owner of the database does not own: its restore needs --load-as-admin.
    s.sql("odd", "CREATE TABLE t (n int); INSERT INTO t VALUES (1)");
    (s, ts)
}

/// Roles (attributes and password hashes), memberships and role settings, as comparable text;
/// `skip` left out.
fn roles_of(s: &Server, skip: &str) -> String {
    s.sql(
        "postgres",
        &format!(
            "SELECT string_agg(format('%s super=%s login=%s createdb=%s conn=%s until=%s pw=%s comment=%s', \
             rolname, rolsuper, rolcanlogin, rolcreatedb, rolconnlimit, rolvaliduntil, rolpassword, \
             shobj_description(oid, 'pg_authid')), E'\\n' ORDER BY rolname) \
             FROM pg_authid WHERE rolname !~ '^pg_' AND rolname <> '{skip}';\n\
             SELECT string_agg(format('%s in %s admin=%s by %s', m.rolname, r.rolname, am.admin_option, \
             g.rolname), E'\\n' ORDER BY m.rolname, r.rolname) FROM pg_auth_members am \
             JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member \
             JOIN pg_roles g ON g.oid = am.grantor WHERE r.rolname !~ '^pg_' AND m.rolname <> '{skip}';\n\
             SELECT string_agg(format('%s %s %s', r.rolname, d.datname, s.setconfig), E'\\n' ORDER BY r.rolname) \
             FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole \
             LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname IS DISTINCT FROM '{skip}';\n\
             SELECT string_agg(format('%s %s %s %s', spcname, pg_get_userbyid(spcowner), spcacl, \
             pg_tablespace_location(oid)), E'\\n' ORDER BY spcname) FROM pg_tablespace;\n\
             SELECT string_agg(format('%s owner=%s acl=%s conn=%s', datname, pg_get_userbyid(datdba), \
             (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(datacl) a), datconnlimit), E'\\n' ORDER BY datname) FROM pg_database \
             WHERE datname IN ('shop', 'gis', 'Mixed Case', 'odd');"
        ),
    )
}

/// A database as pg_dump prints it (schema, grants, data), without the random `\restrict` key.
fn dump(s: &Server, db: &str) -> String {
    let out = std::process::Command::new(s.cluster.bindir().join("pg_dump"))
        .arg("-h")
        .arg(s.cluster.socket_dir())
        .args([
            "-p",
            &s.cluster.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn onto<'a>(target: &'a Server, extra: &[&'a str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "restore",
        "--all",
        "--target-host",
        target.cluster.socket_dir().to_str().unwrap(),
        "--target-port",
        &target.cluster.port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn a_server_of_several_databases_comes_back_on_an_empty_one() {
    let (s, ts) = source();
    let out = s.pgkeep(&SET).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let before = roles_of(&s, "legacy");
    let dumps: Vec<String> = ["shop", "gis", "Mixed Case", "odd"]
        .iter()
        .map(|d| dump(&s, d))
        .collect();
    // The source server is lost; its tablespace directory is there again, empty.
    s.sql("postgres", "DROP TABLESPACE fast");
    assert_eq!(std::fs::read_dir(&ts).unwrap().count(), 0);

    // The target has a role of the same name already, with other attributes and no membership.
    let t = Server::start();
    t.sql(
        "postgres",
        "CREATE ROLE legacy NOLOGIN; ALTER ROLE legacy SET work_mem = '1MB'",
    );
    let legacy_before = roles_of(&t, "");

    // One database that cannot be restored as its owner never stops the others.
    let out = s.pgkeep(&SET).args(onto(&t, &["--yes"])).output().unwrap();
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(7), "{report}{}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains("1 of 4 databases failed") && last.contains("--load-as-admin"),
        "{last}"
    );
    let line = |report: &str, db: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("\"{db}\"")))
            .unwrap_or_else(|| panic!("{report}"))
            .to_string()
    };
    assert!(line(&report, "odd").contains("FAILED"), "{report}");
    for db in ["shop", "gis", "Mixed Case"] {
        assert!(line(&report, db).contains("restored"), "{report}");
    }
    // Run again for it alone: the globals are all there now and left alone.
    let out = s
        .pgkeep(&[("PGKEEP_DATABASES", "odd")])
        .args(onto(&t, &["--yes", "--load-as-admin"]))
        .output()
        .unwrap();
    let again = stdout(&out);
    assert!(out.status.success(), "{again}{}", stderr(&out));
    assert!(again.contains("0 roles created"), "{again}");
    assert!(
        again.contains("Recovery plan: the globals and 1 database from")
            && again.contains("  roles to create: none\n"),
        "{again}"
    );
    assert!(line(&again, "odd").contains("restored"), "{again}");
    for (db, want) in ["shop", "gis", "Mixed Case", "odd"].iter().zip(&dumps) {
        assert_eq!(&dump(&t, db), want, "{db}");
    }
    let shop = report.lines().find(|l| l.starts_with("\"shop\"")).unwrap();
    assert!(shop.contains(" 300 "), "rows checked: {shop}");
    assert_eq!(roles_of(&t, "legacy"), before);
    // The role the target had is as it was, and named.
    assert!(
        legacy_before
            .lines()
            .filter(|l| l.contains("legacy"))
            .all(|l| roles_of(&t, "").contains(l)),
        "{}",
        roles_of(&t, "")
    );
    assert!(!roles_of(&t, "").contains("legacy in readers"));
    assert!(
        report.contains("roles left as they were: \"legacy\", \"postgres\""),
        "{report}"
    );
    assert!(
        report.contains("roles restored without a password") && report.contains("\"nopw\""),
        "{report}"
    );
    assert!(report.contains("tablespace \"fast\" created"), "{report}");
    assert!(
        !report.contains("frozen")
            && !t
                .sql("postgres", "SELECT datname FROM pg_database")
                .contains("frozen")
    );
    for secret in ["owner-pw", "ann-pw", "legacy-pw"] {
        assert!(!report.contains(secret) && !stderr(&out).contains(secret));
    }
}

/// Flip a byte in the middle of a backup file.
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_dry_run_changes_nothing_and_a_damaged_backup_is_passed_over_once_verified_bad() {
    let (s, _ts) = source();
    s.pgkeep(&SET).arg("backup").assert().success();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.pgkeep(&SET).arg("backup").assert().success();
    let t = Server::start();
    let state = |t: &Server| {
        format!(
            "{}\n{}",
            roles_of(t, ""),
            t.sql(
                "postgres",
                "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
            )
        )
    };
    let empty = state(&t);

    let out = s
        .pgkeep(&SET)
        .args(onto(&t, &["--dry-run"]))
        .output()
        .unwrap();
    let plan = stdout(&out);
    assert!(out.status.success(), "{plan}{}", stderr(&out));
    assert!(
        plan.contains("Recovery plan: the globals and 4 databases"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "roles to create (5): \"ann\", \"app_owner\", \"legacy\", \"nopw\", \"readers\""
        ),
        "{plan}"
    );
    assert!(plan.contains("roles already on the target, left as they are with their memberships and settings (1): \"postgres\""), "{plan}");
    assert!(
        plan.contains(
            "roles that will have no password (the backup holds none for them): \"nopw\""
        ),
        "{plan}"
    );
    assert!(plan.contains("tablespace \"fast\": created in "), "{plan}");
    assert!(plan.contains("\"shop\": backup local-shop_"), "{plan}");
    assert!(plan.contains("Dry run: nothing was changed."), "{plan}");
    assert_eq!(state(&t), empty);

    // The newest backup of gis is damaged: unverified, it refuses the recovery before any change.
    let list = s.pgkeep(&[]).args(["list", "--json"]).output().unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    let newest_gis = list.iter().find(|e| e["database"] == "gis").unwrap();
    damage(&s.backup_dir.join(newest_gis["file"].as_str().unwrap()));
    let out = s.pgkeep(&SET).args(onto(&t, &["--yes"])).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("database \"gis\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(state(&t), empty);

    // Verified bad, it is passed over for the backup before it, and the plan says so.
    let out = s
        .pgkeep(&SET)
        .args(["verify", "-d", "gis"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let out = s
        .pgkeep(&SET)
        .args(onto(&t, &["--dry-run"]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "newer backup skipped {}",
            newest_gis["id"].as_str().unwrap()
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(state(&t), empty);

    // Without a confirmation (no terminal, no --yes) nothing happens either.
    let out = s.pgkeep(&SET).args(onto(&t, &[])).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(state(&t), empty);
}

#[test]
fn an_encrypted_globals_backup_is_recovered_with_the_identity_and_refused_without_it() {
    use age::secrecy::ExposeSecret;
    let s = Server::start();
    s.sql(
        "postgres",
        "CREATE ROLE vault_owner LOGIN PASSWORD 'vault-pw'; CREATE DATABASE vault OWNER vault_owner",
    );
    s.sql(
        "vault",
        "SET ROLE vault_owner; CREATE TABLE secrets AS SELECT g AS id FROM generate_series(1, 42) g",
    );
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("key.txt");
    std::fs::write(&identity, format!("{}\n", id.to_string().expose_secret())).unwrap();
    let set = [
        ("PGKEEP_DATABASES", "vault"),
        ("PGKEEP_AGE_RECIPIENTS", public.as_str()),
    ];
    let out = s.pgkeep(&set).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list = s.pgkeep(&[]).args(["list", "--json"]).output().unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    let globals = list
        .iter()
        .find(|e| e["database"] == "")
        .expect("a globals backup");
    assert!(
        globals["file"].as_str().unwrap().ends_with(".age"),
        "the globals are encrypted too: {globals}"
    );

    let t = Server::start();
    let state = |t: &Server| {
        t.sql(
            "postgres",
            "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_'; \
             SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
        )
    };
    let empty = state(&t);
    let out = s.pgkeep(&set).args(onto(&t, &["--yes"])).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.starts_with("pgkeep: error: ")
            && l.contains("encrypted with age")
            && l.contains("no identity")),
        "a clear refusal: {err}"
    );
    assert_eq!(state(&t), empty, "nothing changed on the target");

    let mut with_key = set.to_vec();
    let identity = identity.display().to_string();
    with_key.push(("PGKEEP_AGE_IDENTITY_FILE", identity.as_str()));
    let out = s
        .pgkeep(&with_key)
        .args(onto(&t, &["--yes"]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        t.sql("vault", "SELECT count(*) FROM secrets").trim(),
        "42",
        "the data came back"
    );
    assert_eq!(
        t.sql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'vault'"
        )
        .trim(),
        "vault_owner",
        "its owner came back from the encrypted globals"
    );
}
