//! Many databases on one server: the `databases` set (a list, or `all` without templates and
//! databases that allow no connections, minus `exclude_databases`), `pgkeep databases --json`,
//! backup, prune, verify and check over the set, `-d` narrowing it, a database that is dropped
//! between runs (reported, its backups kept), and one whose backup fails while the others go on.
//! Each test starts its own server, so that `all` sees only the databases the test made.

mod common;

use common::server::Server;
use pgkeep::cluster::TempCluster;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn counts(pairs: &[(&str, usize)]) -> std::collections::BTreeMap<String, usize> {
    pairs.iter().map(|(d, n)| (d.to_string(), *n)).collect()
}

const DATA: &str =
    "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50);";

#[test]
fn all_backs_up_every_connectable_database_and_keeps_the_backups_of_a_dropped_one() {
    let s = Server::start();
    for db in ["alpha", "beta", "frozen", "tpl"] {
        s.sql("postgres", &format!("CREATE DATABASE {db}"));
        s.sql(db, DATA);
    }
    s.sql(
        "postgres",
        "ALTER DATABASE frozen ALLOW_CONNECTIONS false; ALTER DATABASE tpl IS_TEMPLATE true",
    );
    let env = [
        ("PGKEEP_DATABASES", "all"),
        ("PGKEEP_EXCLUDE_DATABASES", "postgres"),
    ];

    let out = s
        .pgkeep(&env)
        .args(["databases", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sel: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sel["databases"], serde_json::json!(["alpha", "beta"]));
    assert_eq!(sel["excluded"], serde_json::json!(["postgres"]));
    assert_eq!(sel["no_connections"], serde_json::json!(["frozen"]));
    assert_eq!(
        sel["templates"],
        serde_json::json!(["template0", "template1", "tpl"])
    );

    // Each run over the set records the globals too (database "").
    s.pgkeep(&env).arg("backup").assert().success();
    assert_eq!(s.backups(), counts(&[("", 1), ("alpha", 1), ("beta", 1)]));

    // A database added to the server is picked up by the next run.
    s.sql("postgres", "CREATE DATABASE gamma");
    s.sql("gamma", DATA);
    s.pgkeep(&env).arg("backup").assert().success();
    assert_eq!(
        s.backups(),
        counts(&[("", 2), ("alpha", 2), ("beta", 2), ("gamma", 1)])
    );

    // -d narrows the set to one database.
    s.pgkeep(&env)
        .args(["backup", "-d", "alpha"])
        .assert()
        .success();
    assert_eq!(
        s.backups(),
        counts(&[("", 2), ("alpha", 3), ("beta", 2), ("gamma", 1)])
    );

    // beta is dropped: the next run reports it and goes on; culling never touches its backups.
    s.sql("postgres", "DROP DATABASE beta");
    let out = s.pgkeep(&env).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("database \"beta\" is gone from the server"),
        "{}",
        stderr(&out)
    );
    let out = s
        .pgkeep(&env)
        .args(["prune", "--apply", "--keep-last", "1", "--keep-days", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("database \"alpha\"") && !stdout(&out).contains("database \"beta\""),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        s.backups(),
        counts(&[("", 1), ("alpha", 1), ("beta", 2), ("gamma", 1)])
    );
    let out = s.pgkeep(&env).arg("databases").output().unwrap();
    assert!(
        stdout(&out).contains("# beta: gone from the server"),
        "{}",
        stdout(&out)
    );

    // verify and check work over the set.
    let out = s.pgkeep(&env).arg("verify").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.pgkeep(&env).arg("check").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for db in ["alpha", "gamma"] {
        assert!(
            stdout(&out).contains(&format!("ok: the newest good backup of \"{db}\"")),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn one_failing_database_never_stops_the_others() {
    let s = Server::start();
    for db in ["a1", "b2", "c3"] {
        s.sql("postgres", &format!("CREATE DATABASE {db}"));
        s.sql(db, DATA);
    }
    // A backup role that may read everything but may not connect to b2.
    s.sql(
        "postgres",
        "CREATE ROLE bk LOGIN PASSWORD 'bk-secret' IN ROLE pg_read_all_data; \
         REVOKE CONNECT ON DATABASE b2 FROM PUBLIC",
    );
    let out = s
        .pgkeep(&[
            ("PGKEEP_DATABASES", "a1, b2,c3,nosuch"),
            ("POSTGRESQL_USER", "bk"),
            ("POSTGRESQL_PASSWORD", "bk-secret"),
        ])
        .arg("backup")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    // Three databases and one missing; the globals succeeded and are not counted.
    assert!(last.contains("2 of 4 databases failed"), "{err}");
    assert!(last.contains("\"nosuch\" does not exist"), "{err}");
    assert!(last.contains("backup of database \"b2\" failed"), "{err}");
    assert!(!err.contains("bk-secret"), "{err}");
    assert_eq!(s.backups(), counts(&[("", 1), ("a1", 1), ("c3", 1)]));
}

#[test]
fn bad_sets_are_refused_and_single_database_commands_want_a_name() {
    let s = Server::start();
    let out = s
        .pgkeep(&[("PGKEEP_DATABASES", "all, x")])
        .arg("backup")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("databases"), "{}", stderr(&out));
    let out = s
        .pgkeep(&[("PGKEEP_DATABASES", "a,,b")])
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = s
        .pgkeep(&[("PGKEEP_DATABASES", "all")])
        .args(["restore", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("-d NAME"), "{}", stderr(&out));

    // TOML arrays hold names with commas; a single POSTGRESQL_DATABASE still means one.
    let conf = s.backup_dir.join("../pgkeep.toml");
    std::fs::write(&conf, "databases = [\"we,ird\", \"postgres\"]\n").unwrap();
    s.sql("postgres", "CREATE DATABASE \"we,ird\"");
    let out = s
        .pgkeep(&[("PGKEEP_CONFIG", conf.to_str().unwrap())])
        .args(["databases", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sel: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sel["databases"], serde_json::json!(["we,ird", "postgres"]));
    s.pgkeep(&[("POSTGRESQL_DATABASE", "postgres")])
        .arg("backup")
        .assert()
        .success();
    assert_eq!(s.backups(), counts(&[("postgres", 1)]));
}

/// The roles, memberships and role settings of a server, as comparable text.
fn globals_of(s: &TempCluster) -> String {
    s.psql(
        "postgres",
        "SELECT string_agg(format('%s super=%s login=%s createdb=%s conn=%s pw=%s', rolname, \
         rolsuper, rolcanlogin, rolcreatedb, rolconnlimit, rolpassword IS NOT NULL), E'\\n' \
         ORDER BY rolname) FROM pg_authid WHERE rolname !~ '^pg_';\n\
         SELECT string_agg(format('%s in %s admin=%s', m.rolname, r.rolname, am.admin_option), \
         E'\\n' ORDER BY m.rolname, r.rolname) FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid \
         JOIN pg_roles m ON m.oid = am.member WHERE r.rolname !~ '^pg_';\n\
         SELECT string_agg(format('%s %s', r.rolname, s.setconfig), E'\\n' ORDER BY r.rolname) \
         FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole;",
    )
    .unwrap()
}

#[test]
fn every_run_over_the_set_records_the_globals_as_a_backup_of_their_own() {
    let s = Server::start();
    s.sql("postgres", "CREATE DATABASE shop");
    s.sql(
        "postgres",
        "CREATE ROLE app_owner LOGIN PASSWORD 'owner-pw' CREATEDB CONNECTION LIMIT 7; \
         CREATE ROLE readers NOLOGIN; CREATE ROLE ann LOGIN PASSWORD 'ann-pw' IN ROLE readers; \
         GRANT app_owner TO ann WITH ADMIN OPTION; \
         ALTER ROLE ann SET statement_timeout = '5s'; \
         ALTER DATABASE shop OWNER TO app_owner; \
         CREATE ROLE lim LOGIN PASSWORD 'lim-secret'",
    );
    let env = [("PGKEEP_DATABASES", "shop")];
    let out = s.pgkeep(&env).args(["backup", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let done: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done.len(), 2, "{done:?}");
    let g = &done[1];
    assert_eq!(g["database"], "");
    assert!(
        g["id"].as_str().unwrap().starts_with("local-@globals_"),
        "{g}"
    );
    assert_eq!(g["globals"]["role_passwords"], true);
    assert!(g["globals"].get("note").is_none(), "{g}");
    let roles = g["globals"]["roles"].as_array().unwrap();
    for r in ["ann", "app_owner", "readers", "postgres"] {
        assert!(roles.iter().any(|x| x == r), "{roles:?}");
    }

    // It is listed, verified, checked and culled like any other backup.
    let out = s.pgkeep(&[]).arg("list").output().unwrap();
    assert!(stdout(&out).contains("(globals)"), "{}", stdout(&out));
    let out = s.pgkeep(&env).args(["verify", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = s.pgkeep(&env).arg("check").output().unwrap();
    assert!(
        stdout(&out).contains("ok: the newest good backup of the globals"),
        "{}",
        stdout(&out)
    );
    s.pgkeep(&env).arg("backup").assert().success();
    let out = s
        .pgkeep(&env)
        .args(["prune", "--apply", "--keep-last", "1", "--keep-days", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("the globals in"), "{}", stdout(&out));
    // The globals are culled by the same policy as the database beside them.
    let b = s.backups();
    assert_eq!(b[""], b["shop"], "{b:?}");

    // A backup role that may not read pg_authid (pg_read_all_data would let it) records the roles without passwords, and says so.
    let out = s
        .pgkeep(&[
            ("PGKEEP_DATABASES", "shop"),
            ("POSTGRESQL_USER", "lim"),
            ("POSTGRESQL_PASSWORD", "lim-secret"),
        ])
        .args(["backup", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let done: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done[1]["globals"]["role_passwords"], false);
    assert!(
        done[1]["globals"]["note"]
            .as_str()
            .unwrap()
            .contains("without their passwords"),
        "{}",
        done[1]
    );
    assert!(
        stderr(&out).contains("without their passwords"),
        "{}",
        stderr(&out)
    );

    // The file with passwords loads into an empty server and gives the same roles, memberships
    // and settings (the superuser's CREATE ROLE fails there, as it exists; the rest goes on).
    let list = s.pgkeep(&[]).args(["list", "--json"]).output().unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    let file = list
        .iter()
        .filter(|e| e["database"] == "")
        .find(|e| {
            let m: serde_json::Value = serde_json::from_slice(
                &std::fs::read(
                    s.backup_dir
                        .join(format!("{}.manifest.json", e["file"].as_str().unwrap())),
                )
                .unwrap(),
            )
            .unwrap();
            m["globals"]["role_passwords"] == true
        })
        .map(|e| s.backup_dir.join(e["file"].as_str().unwrap()))
        .expect("a globals backup with passwords");
    let sql = {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&file).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    assert!(sql.contains("SCRAM-SHA-256$"), "passwords are in the file");
    let empty = Server::start();
    let loaded = sql
        .lines()
        .filter(|l| !l.starts_with("CREATE ROLE postgres;"))
        .collect::<Vec<_>>()
        .join("\n");
    empty.sql("postgres", &loaded);
    let (a, b) = (globals_of(&s.cluster), globals_of(&empty.cluster));
    assert_eq!(a, b);
    assert!(a.contains("ann in app_owner admin=t"), "{a}");
    assert!(a.contains("ann {statement_timeout=5s}"), "{a}");
}
