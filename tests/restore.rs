//! Restores against a real PostgreSQL: round trips, failures that must leave the live database
//! unchanged, sessions at the swap, a swap under write load, dry run, in-place, hooks, roles.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use pgkeep::pg::ident::{quote_ident, quote_literal};
use predicates::prelude::*;

/// `pgkeep restore` as the superuser admin, confirmed.
fn restore(db: &TestDb) -> assert_cmd::Command {
    let mut c = db.pgkeep();
    c.env("PGKEEP_ADMIN_USER", "postgres").arg("restore");
    c
}

fn backup(db: &TestDb, extra: &[&str]) {
    db.pgkeep().arg("backup").args(extra).assert().success();
}

/// Every database name on the server.
fn databases() -> Vec<String> {
    psql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Databases that restores made from `db` (kept copies and scratch).
fn restore_copies(db: &TestDb) -> Vec<String> {
    databases()
        .into_iter()
        .filter(|d| d.starts_with(&format!("{}_", db.name)))
        .collect()
}

/// Schema-only dump of a database, without the random `\restrict` / `\unrestrict` lines.
fn schema_dump(db: &str) -> String {
    let info = cluster();
    let out = Command::new(info.bindir.join("pg_dump"))
        .args(["-s", "-h"])
        .arg(&info.socket_dir)
        .args(["-p", &info.port.to_string(), "-U", "postgres", "-d", db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fingerprint of the data: row count and md5 of every table, sequence values, large objects.
fn fingerprint(db: &str) -> String {
    psql(
        db,
        r#"
SELECT string_agg(format('%s=%s', t, c), E'\n' ORDER BY t) FROM (
  SELECT format('%I.%I', n.nspname, c.relname) AS t,
         (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) || '':'' || coalesce(md5(string_agg(x::text, ''|'' ORDER BY x::text)), '''') AS c FROM ONLY %I.%I x', n.nspname, c.relname), false, true, '')))[1]::text AS c
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL
  SELECT format('seq %I.%I', schemaname, sequencename), coalesce(last_value::text, 'null') FROM pg_sequences
  UNION ALL
  SELECT 'lo ' || oid::text, encode(lo_get(oid), 'escape') FROM pg_largeobject_metadata
) s"#,
    )
}

fn db_level(db: &str) -> String {
    psql(
        "postgres",
        &format!(
            "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(datacl) a)::text, \
             (SELECT string_agg(array_to_string(setconfig, ','), ';') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) \
             FROM pg_database d WHERE datname = {}",
            quote_literal(db)
        ),
    )
}

const RICH: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE SEQUENCE "Order_Seq" START 100;
CREATE TABLE "MixedCase" ("Id" int PRIMARY KEY DEFAULT nextval('"Order_Seq"'), "Mood" mood NOT NULL, qty posint, note text);
COMMENT ON TABLE "MixedCase" IS 'mixed ''case'' table';
COMMENT ON COLUMN "MixedCase"."Mood" IS 'how it feels';
CREATE TABLE audit (id bigserial PRIMARY KEY, tbl text, op text);
CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (tbl, op) VALUES (TG_TABLE_NAME, TG_OP); RETURN NEW; END $$;
CREATE TRIGGER mc_audit AFTER INSERT ON "MixedCase" FOR EACH ROW EXECUTE FUNCTION log_change();
INSERT INTO "MixedCase" ("Mood", qty, note)
  SELECT (ARRAY['sad', 'ok', 'happy']::mood[])[1 + g % 3], g, 'note ' || g FROM generate_series(1, 500) g;
INSERT INTO "MixedCase" ("Mood", qty, note) VALUES ('happy', 7, E'sentinel \\ tab\t quote'' "dq" ünï');
CREATE TABLE measurements (id int, at date NOT NULL, v numeric) PARTITION BY RANGE (at);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measurements SELECT g, date '2025-06-01' + g, g * 1.5 FROM generate_series(1, 400) g;
CREATE VIEW happy AS SELECT "Id", note FROM "MixedCase" WHERE "Mood" = 'happy';
CREATE SCHEMA "Other Schema";
CREATE TABLE "Other Schema"."T ""q""" (a text);
INSERT INTO "Other Schema"."T ""q""" VALUES ('x'), ('y');
SELECT lo_from_bytea(0, 'large object sentinel'::bytea);
"#;

/// A database with the rich schema, a read-only role with grants, database grants and settings.
fn rich_db() -> (TestDb, String) {
    let ro = unique("ro");
    psql("postgres", &format!("CREATE ROLE {ro}"));
    let db = TestDb::create(RICH);
    db.sql_as_owner(&format!(
        "GRANT USAGE ON SCHEMA \"Other Schema\" TO {ro};\n\
         GRANT SELECT ON ALL TABLES IN SCHEMA public, \"Other Schema\" TO {ro};"
    ));
    psql(
        "postgres",
        &format!(
            "GRANT CONNECT ON DATABASE {d} TO {ro};\nREVOKE TEMPORARY ON DATABASE {d} FROM PUBLIC;\n\
             ALTER DATABASE {d} SET work_mem = '8MB';\nALTER DATABASE {d} SET search_path = \"$user\", public, \"Other Schema\";",
            d = quote_ident(&db.name)
        ),
    );
    (db, ro)
}

fn round_trip(extra_backup: &[&str], extra_restore: &[&str]) -> String {
    round_trip_with("", extra_backup, extra_restore)
}

/// The round trip of [`rich_db`] with `setup` run as its owner first; the restore's stderr.
fn round_trip_with(setup: &str, extra_backup: &[&str], extra_restore: &[&str]) -> String {
    let (db, ro) = rich_db();
    if !setup.is_empty() {
        db.sql_as_owner(setup);
    }
    backup(&db, extra_backup);
    let schema = schema_dump(&db.name);
    let data = fingerprint(&db.name);
    let level = db_level(&db.name);
    assert!(
        schema.contains("\"MixedCase\"") && data.contains("lo "),
        "{data}"
    );
    // Damage after the backup: the restore must bring the backup's state back.
    db.sql_as_owner("DROP VIEW happy; DELETE FROM measurements WHERE id > 10; DROP TABLE \"Other Schema\".\"T \"\"q\"\"\";");

    let output = restore(&db)
        .arg("--yes")
        .args(extra_restore)
        .assert()
        .success()
        .stdout(predicate::str::contains("downtime (database unavailable)"))
        .stdout(predicate::str::contains("row counts checked"))
        .get_output()
        .clone();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        schema_dump(&db.name),
        schema,
        "schema differs after restore"
    );
    assert_eq!(fingerprint(&db.name), data, "data differs after restore");
    assert_eq!(
        db_level(&db.name),
        level,
        "database-level properties differ"
    );
    assert_eq!(
        psql(
            &db.name,
            "SELECT note FROM \"MixedCase\" WHERE qty = 7 AND note LIKE 'sentinel%'"
        ),
        "sentinel \\ tab\t quote' \"dq\" ünï\n"
    );
    // The read-only role reads through its grants.
    assert_eq!(
        psql(
            &db.name,
            &format!("SET ROLE {ro}; SELECT count(*) FROM \"Other Schema\".\"T \"\"q\"\"\"")
        )
        .trim(),
        "2"
    );
    // The previous copy is kept, blocked for connections.
    let copies = restore_copies(&db);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(copies[0].contains("_before_restore_"), "{copies:?}");
    assert!(out.contains(&copies[0]), "{out}");
    assert_eq!(
        psql(
            "postgres",
            &format!(
                "SELECT datallowconn FROM pg_database WHERE datname = {}",
                quote_literal(&copies[0])
            )
        )
        .trim(),
        "f"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The sentence of the log that says a custom archive's COPY was cut across the connections.
const CUT_ACROSS: &str = "its COPY cut across the connections";

#[test]
fn plain_round_trip_keeps_schema_data_grants_and_settings() {
    round_trip(&[], &[]);
}

#[test]
fn custom_format_round_trip_with_parallel_jobs() {
    let log = round_trip(&["--format", "custom"], &["--jobs", "2"]);
    assert!(!log.contains(CUT_ACROSS), "{log}");
}

#[test]
fn custom_archive_of_one_big_table_is_cut_across_the_connections() {
    // One table holds most of the rows: pg_restore --jobs would load it on one connection, so
    // the archive goes through its script and the parallel plain loader.
    let big = "CREATE TABLE big_events (id int PRIMARY KEY, payload text NOT NULL, at timestamptz);
        INSERT INTO big_events SELECT g, md5(g::text) || E'\\t\\n' || repeat('x', g % 17), now() - g * interval '1 minute' FROM generate_series(1, 150000) g;
        CREATE INDEX big_events_at ON big_events (at);";
    let log = round_trip_with(big, &["--format", "custom"], &["--jobs", "2"]);
    assert!(log.contains(CUT_ACROSS), "{log}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("DELETE FROM routes WHERE id > 500");
    let before = (restore_copies(&db), fingerprint(&db.name));
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hook-ran");
    let cfg = dir.path().join("pgkeep.toml");
    std::fs::write(
        &cfg,
        format!(
            "pre_restore = [[\"touch\", \"{m}\"], [\"oc\", \"scale\", \"deployment/server\", \"--replicas=0\"]]\npost_restore = [[\"touch\", \"{m}\"]]\n",
            m = marker.display()
        ),
    )
    .unwrap();
    restore(&db)
        .args(["--dry-run", "--config"])
        .arg(&cfg)
        .args(["--check-sql", "SELECT 1 FROM routes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("CREATE DATABASE"))
        .stdout(predicate::str::contains("ALLOW_CONNECTIONS false"))
        .stdout(predicate::str::contains("pg_terminate_backend"))
        .stdout(predicate::str::contains("RENAME TO"))
        .stdout(predicate::str::contains(
            "oc scale deployment/server --replicas=0",
        ))
        .stdout(predicate::str::contains("ON_ERROR_STOP=1"))
        .stdout(predicate::str::contains("stops at the first error"))
        .stdout(predicate::str::contains("--single-transaction").not())
        .stdout(predicate::str::contains("Space needed"))
        .stdout(predicate::str::contains("SELECT 1 FROM routes"))
        .stdout(predicate::str::contains("nothing was changed"));
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);
    assert!(!marker.exists(), "a dry run must not run hooks");
}

#[test]
fn without_yes_and_without_a_terminal_it_refuses() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("DELETE FROM routes");
    let before = restore_copies(&db);
    restore(&db)
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    assert_eq!(restore_copies(&db), before);
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "0");
}

#[test]
fn truncated_file_is_refused_before_any_change() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    let data = db
        .files()
        .into_iter()
        .find(|f| f.ends_with(".sql.gz"))
        .unwrap();
    let path = db.backup_dir.join(&data);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    db.sql_as_owner("INSERT INTO routes VALUES (5000, 'after')");
    let before = (restore_copies(&db), fingerprint(&db.name));
    restore(&db)
        .arg("--yes")
        .assert()
        .code(7)
        .stderr(predicate::str::contains("does not match its manifest"))
        .stderr(predicate::str::contains("nothing was changed"));
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);
}

#[test]
fn dry_run_that_would_be_refused_prints_the_plan_and_exits_7() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    let before = (restore_copies(&db), fingerprint(&db.name));
    // A missing privilege: the backup user (no CREATEDB) as admin.
    db.pgkeep()
        .args(["restore", "--dry-run"])
        .assert()
        .code(7)
        .stdout(predicate::str::contains("Missing privilege: role"))
        .stdout(predicate::str::contains("CREATE DATABASE"))
        .stdout(predicate::str::contains(
            "Dry run: the restore would be REFUSED",
        ))
        .stderr(predicate::str::contains(
            "dry run: the restore would be refused: role",
        ))
        .stderr(predicate::str::contains("lacks CREATEDB"));
    // A damaged file: the plan as far as it can be made, its first step says why.
    let data = db
        .files()
        .into_iter()
        .find(|f| f.ends_with(".sql.gz"))
        .unwrap();
    let path = db.backup_dir.join(&data);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let out = restore(&db).arg("--dry-run").assert().code(7);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stdout.starts_with("Restore plan: backup "), "{stdout}");
    assert!(
        stdout.contains(" 1. check the backup file ")
            && stdout.contains("      REFUSED: ")
            && stdout.contains("does not match its manifest"),
        "{stdout}"
    );
    assert!(stdout.contains("CREATE DATABASE"), "{stdout}");
    assert!(
        stdout.contains("Dry run: the restore would be REFUSED: "),
        "{stdout}"
    );
    assert!(
        stderr.contains("dry run: the restore would be refused: ")
            && stderr.contains("does not match its manifest")
            && stderr.trim_end().ends_with("nothing was changed"),
        "{stderr}"
    );
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);
}

/// Write a legacy file as the old pod did (`pg_dump | gzip`, no manifest); `edit` may change
/// the dump text first.
fn legacy_file(db: &TestDb, edit: impl Fn(String) -> String) -> PathBuf {
    let info = cluster();
    let out = Command::new(info.bindir.join("pg_dump"))
        .arg("-h")
        .arg(&info.socket_dir)
        .args([
            "-p",
            &info.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &db.name,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = edit(String::from_utf8(out.stdout).unwrap());
    let day = db.backup_dir.join("2026-11-20");
    std::fs::create_dir_all(&day).unwrap();
    let path = day.join(format!("local-{}_2026-11-20_01-00-00.sql.gz", db.name));
    let mut gz = flate2_write(&path);
    use std::io::Write;
    gz.write_all(text.as_bytes()).unwrap();
    drop(gz);
    path
}

/// gzip through the system's gzip (the old pod's tool).
fn flate2_write(path: &Path) -> impl std::io::Write {
    struct Gz(std::process::Child);
    impl std::io::Write for Gz {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.stdin.as_mut().unwrap().write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Drop for Gz {
        fn drop(&mut self) {
            drop(self.0.stdin.take());
            assert!(self.0.wait().unwrap().success());
        }
    }
    Gz(Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(path).unwrap())
        .spawn()
        .unwrap())
}

#[test]
fn legacy_sql_gz_restores_and_says_no_row_count_check_was_possible() {
    let db = TestDb::create(SAMPLE);
    legacy_file(&db, |t| t);
    let data = fingerprint(&db.name);
    db.sql_as_owner("DROP TABLE routes");
    restore(&db)
        .arg("--yes")
        .assert()
        .success()
        .stdout(predicate::str::contains("legacy file"))
        .stdout(predicate::str::contains(
            "no row counts recorded at backup time",
        ));
    assert_eq!(fingerprint(&db.name), data);
}

#[test]
fn failed_loads_leave_the_live_database_unchanged() {
    let db = TestDb::create(SAMPLE);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let cfg = dir.path().join("pgkeep.toml");
    std::fs::write(
        &cfg,
        format!(
            "pre_restore = [[\"sh\", \"-c\", \"echo pre >> '{l}'\"]]\npost_restore = [[\"sh\", \"-c\", \"echo post $PGKEEP_RESTORE_OUTCOME >> '{l}'\"]]\n",
            l = log.display()
        ),
    )
    .unwrap();
    // A bad statement in the middle of the file: the load stops there and rolls back.
    let path = legacy_file(&db, |t| {
        t.replacen(
            "COPY public.routes",
            "SELECT no_such_function();\nCOPY public.routes",
            1,
        )
    });
    db.sql_as_owner("INSERT INTO routes VALUES (5000, 'live only')");
    let before = (restore_copies(&db), fingerprint(&db.name));
    restore(&db)
        .args(["--yes", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no_such_function"))
        .stderr(predicate::str::contains("was not changed"));
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "pre\npost failure\n"
    );

    // A legacy file cut in the middle: refused before the hooks, nothing changed.
    let text = {
        let out = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let cut = text.find("COPY public.routes").unwrap() + 200;
    legacy_file(&db, |_| text[..cut].to_string());
    restore(&db)
        .args(["--yes", "--config"])
        .arg(&cfg)
        .assert()
        .code(7)
        .stderr(predicate::str::contains("incomplete"));
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);

    // A check that returns no rows: the scratch copy is dropped, live unchanged.
    std::fs::remove_file(&path).unwrap();
    backup(&db, &[]);
    db.sql_as_owner("INSERT INTO routes VALUES (6000, 'newer')");
    let before = (restore_copies(&db), fingerprint(&db.name));
    restore(&db)
        .args([
            "--yes",
            "--check-sql",
            "SELECT 1 FROM routes WHERE id = 6000",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("returned no rows"));
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);
}

#[test]
fn missing_roles_stop_before_any_change_and_create_roles_creates_them() {
    let ro = unique("gone");
    psql("postgres", &format!("CREATE ROLE {ro}"));
    let db = TestDb::create(SAMPLE);
    db.sql_as_owner(&format!("GRANT SELECT ON routes TO {ro}"));
    backup(&db, &[]);
    db.sql_as_owner(&format!("REVOKE ALL ON routes FROM {ro}"));
    psql("postgres", &format!("DROP ROLE {ro}"));
    db.sql_as_owner("DELETE FROM routes");
    let before = (restore_copies(&db), fingerprint(&db.name));
    restore(&db)
        .arg("--yes")
        .assert()
        .code(7)
        .stderr(predicate::str::contains(format!("\"{ro}\"")))
        .stderr(predicate::str::contains("--create-roles"));
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);

    restore(&db)
        .args(["--yes", "--create-roles"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "roles created (no password): {ro}"
        )));
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
    assert_eq!(
        db.sql(&format!(
            "SELECT has_table_privilege('{ro}', 'routes', 'SELECT')"
        ))
        .trim(),
        "t"
    );
}

#[test]
fn admin_without_createdb_is_refused_naming_the_privilege() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    let before = restore_copies(&db);
    // The backup user (the database owner, no CREATEDB) as admin.
    db.pgkeep()
        .args(["restore", "--yes"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains("lacks CREATEDB"));
    assert_eq!(restore_copies(&db), before);

    // With CREATEDB the owner restores its own database (no superuser needed), ending its own
    // sessions; a session of another role needs pg_signal_backend, which preflight names.
    psql(
        "postgres",
        &format!("ALTER ROLE {} CREATEDB", quote_ident(&db.user)),
    );
    db.sql_as_owner("DELETE FROM routes");
    db.pgkeep().args(["restore", "--yes"]).assert().success();
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
    let info = cluster();
    let session = Command::new(info.bindir.join("psql"))
        .args(["-X", "-h"])
        .arg(&info.socket_dir)
        .args([
            "-p",
            &info.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &db.name,
        ])
        .args(["-c", "SELECT pg_sleep(30)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while db.sessions() == 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    db.pgkeep()
        .args(["restore", "--yes"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains("lacks pg_signal_backend"));
    psql(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}",
            quote_literal(&db.name)
        ),
    );
    let _ = session.wait_with_output();
}

#[test]
fn sessions_are_terminated_at_the_swap_and_reconnect_to_restored_data() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("INSERT INTO routes VALUES (7000, 'after the backup')");
    let info = cluster();
    let session = Command::new(info.bindir.join("psql"))
        .args(["-X", "-h"])
        .arg(&info.socket_dir)
        .args([
            "-p",
            &info.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &db.name,
        ])
        .args(["-c", "SELECT pg_sleep(120)"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if db.sessions() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(db.sessions() > 0);
    restore(&db).arg("--yes").assert().success();
    let out = session.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("terminat"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A new connection (as the app) sees the restored data.
    assert_eq!(
        db.sql_as_owner("SELECT count(*) FROM routes WHERE id = 7000")
            .trim(),
        "0"
    );
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
}

#[test]
fn swap_while_pgbench_writes() {
    let db = TestDb::create("");
    let info = cluster();
    let pgbench = |args: &[&str]| {
        let mut c = Command::new(info.bindir.join("pgbench"));
        c.arg("-h")
            .arg(&info.socket_dir)
            .args(["-p", &info.port.to_string(), "-U", &db.user])
            .env("PGPASSWORD", &db.password)
            .args(args)
            .arg(&db.name);
        c
    };
    assert!(
        pgbench(&["-i", "-q", "-s", "2"])
            .output()
            .unwrap()
            .status
            .success()
    );
    backup(&db, &[]);
    let expected = db.sql("SELECT sum(abalance) FROM pgbench_accounts");
    let mut load = pgbench(&["-c", "4", "-T", "60", "-n"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_ne!(db.sql("SELECT count(*) FROM pgbench_history").trim(), "0");
    restore(&db).arg("--yes").assert().success();
    let _ = load.kill();
    let _ = load.wait();
    assert_eq!(db.sql("SELECT count(*) FROM pgbench_history").trim(), "0");
    assert_eq!(
        db.sql("SELECT sum(abalance) FROM pgbench_accounts"),
        expected
    );
}

#[test]
fn in_place_restore_works() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    let data = fingerprint(&db.name);
    db.sql_as_owner("DROP TABLE routes; DELETE FROM \"SBI_USER\" WHERE id > 10");
    restore(&db)
        .args(["--yes", "--in-place"])
        .assert()
        .success()
        .stdout(predicate::str::contains("drop (in-place)"))
        .stdout(predicate::str::contains("downtime"));
    assert_eq!(fingerprint(&db.name), data);
    assert!(restore_copies(&db).is_empty(), "{:?}", restore_copies(&db));
    assert_eq!(db_level(&db.name).split('|').next().unwrap(), db.user);
}

#[test]
fn target_database_gets_a_copy_and_cleanup_drops_kept_copies() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("DELETE FROM routes");
    let copy = unique("copy");
    restore(&db)
        .args(["--yes", "--target-database", &copy])
        .assert()
        .success()
        .stdout(predicate::str::contains("downtime: none"));
    assert_eq!(psql(&copy, "SELECT count(*) FROM routes").trim(), "1000");
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "0");

    restore(&db).arg("--yes").assert().success();
    assert_eq!(restore_copies(&db).len(), 1);
    let mut c = db.pgkeep();
    c.env("PGKEEP_ADMIN_USER", "postgres")
        .args(["cleanup", "--yes", "-d", &db.name])
        .assert()
        .success()
        .stdout(predicate::str::contains("dropped"));
    assert!(restore_copies(&db).is_empty());
}

#[test]
fn failed_pre_hook_stops_the_restore_and_post_hooks_still_run() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("DELETE FROM routes");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let cfg = dir.path().join("pgkeep.toml");
    std::fs::write(
        &cfg,
        format!(
            "hook_timeout = 5\npre_restore = [[\"sh\", \"-c\", \"echo pre >> '{l}'; exit 3\"]]\npost_restore = [[\"sh\", \"-c\", \"echo post >> '{l}'\"]]\n",
            l = log.display()
        ),
    )
    .unwrap();
    let before = restore_copies(&db);
    restore(&db)
        .args(["--yes", "--config"])
        .arg(&cfg)
        .assert()
        .code(7)
        .stderr(predicate::str::contains("pre-restore hook"));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");
    assert_eq!(restore_copies(&db), before);
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "0");
}

/// The reusable load API (what `pgkeep verify --restore` builds on): a plain file cut at a
/// statement boundary would load "successfully" with psql alone; the loader sees the missing
/// trailer and kills psql before its input ends, so nothing commits.
#[test]
fn load_api_rolls_back_a_file_without_trailer_and_checks_a_good_one() {
    use pgkeep::config::{Compression, Format};
    use pgkeep::restore::{Input, LoadError, Loader, ScratchLoad, Tools};
    let db = TestDb::create(SAMPLE);
    backup(&db, &["--compression", "none"]);
    let file = db
        .files()
        .into_iter()
        .find(|f| f.ends_with(".sql"))
        .unwrap();
    let manifest: pgkeep::catalog::Manifest = serde_json::from_slice(
        &std::fs::read(db.backup_dir.join(format!("{file}.manifest.json"))).unwrap(),
    )
    .unwrap();
    let full = std::fs::read_to_string(db.backup_dir.join(&file)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut_path = dir.path().join("cut.sql");
    // Cut right after the routes data: complete statements, no trailer.
    let end = full.find("\\.\n").unwrap() + 3;
    std::fs::write(&cut_path, &full[..end]).unwrap();

    let info = cluster();
    let admin = pgkeep::pg::ConnParams {
        host: info.socket_dir.display().to_string(),
        port: info.port,
        user: "postgres".into(),
        password: None,
        passfile: None,
        dbname: "postgres".into(),
        sslmode: pgkeep::config::SslMode::Disable,
        sslrootcert: None,
        connect_timeout: 10,
    };
    let tools = Tools {
        psql: info.bindir.join("psql"),
        pg_restore: info.bindir.join("pg_restore"),
        psql_version: "15.18".into(),
        pg_restore_version: "15.18".into(),
    };
    let (_trigger, shutdown) = pgkeep::shutdown::channel();
    let env = vec![("PATH".to_string(), std::env::var("PATH").unwrap())];
    let loader = Loader {
        admin: &admin,
        tools: &tools,
        child_env: &env,
        passfile: None,
        shutdown: &shutdown,
        server_version_num: 150000,
        allow_unrestricted_psql: false,
        progress: pgkeep::model::Progress::none(),
    };
    let scratch = unique("scratch");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cut = Input {
            path: cut_path.clone(),
            format: Format::Plain,
            compression: Compression::None,
            sha256: None,
            toc: None,
            rows: None,
        };
        loader
            .create(&scratch, Some(&manifest.database_info))
            .await
            .unwrap();
        let e = loader.load(&scratch, &cut, 1).await.unwrap_err();
        assert!(matches!(e, LoadError::Incomplete(_)), "{e}");
        assert_eq!(
            psql(
                &scratch,
                "SELECT count(*) FROM pg_class WHERE relname = 'SBI_USER'"
            )
            .trim(),
            "0",
            "the partial load must not commit"
        );
        loader.drop(&scratch).await.unwrap();

        let good = Input {
            path: db.backup_dir.join(&file),
            format: Format::Plain,
            compression: Compression::None,
            sha256: None,
            toc: None,
            rows: None,
        };
        let checked = loader
            .load_and_check(&ScratchLoad {
                database: &scratch,
                input: &good,
                info: Some(&manifest.database_info),
                expected: Some(&manifest.tables),
                checks: &["SELECT 1 FROM \"SBI_USER\" WHERE \"USERNAME\" = 'user300'".to_string()],
                jobs: 1,
                run_as: &pgkeep::restore::RunAs::Admin,
                names_encoding: manifest.dump_encoding.as_deref(),
            })
            .await
            .unwrap();
        assert_eq!(checked.rows_checked, 1300);
        loader.drop(&scratch).await.unwrap();
        // Wrong expectations are caught and the scratch database is dropped.
        let mut wrong = manifest.tables.clone();
        *wrong.get_mut("public.routes").unwrap() += 1;
        let e = loader
            .load_and_check(&ScratchLoad {
                database: &scratch,
                input: &good,
                info: Some(&manifest.database_info),
                expected: Some(&wrong),
                checks: &[],
                jobs: 1,
                run_as: &pgkeep::restore::RunAs::Admin,
                names_encoding: None,
            })
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("public.routes has 1000 rows, expected 1001"),
            "{e}"
        );
    });
    assert!(!databases().contains(&scratch));
}

#[test]
fn backups_are_chosen_by_time_id_and_file() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    std::thread::sleep(Duration::from_millis(1100));
    let between = jiff::Timestamp::now();
    std::thread::sleep(Duration::from_millis(1100));
    db.sql_as_owner("INSERT INTO routes VALUES (8000, 'second')");
    backup(&db, &[]);
    let mut data: Vec<String> = db
        .files()
        .into_iter()
        .filter(|f| f.ends_with(".sql.gz"))
        .collect();
    data.sort();
    let first_id = data[0]
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".sql.gz")
        .to_string();
    db.sql_as_owner("DELETE FROM routes");

    // --before picks the first backup.
    restore(&db)
        .args(["--yes", "--drop-previous", "--before", &between.to_string()])
        .assert()
        .success()
        .stdout(predicate::str::contains(&first_id));
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
    // The default is the newest.
    restore(&db)
        .args(["--yes", "--drop-previous"])
        .assert()
        .success();
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1001");
    // An id prefix and a file path.
    restore(&db)
        .args([
            "--yes",
            "--drop-previous",
            "--backup",
            &first_id[..first_id.len() - 9],
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ambiguous"));
    restore(&db)
        .args(["--yes", "--drop-previous", "--file"])
        .arg(db.backup_dir.join(&data[0]))
        .assert()
        .success();
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
    assert!(
        restore_copies(&db).is_empty(),
        "--drop-previous leaves nothing"
    );
    restore(&db)
        .args(["--yes", "--backup", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no backup with id `nope`"));
    // An unreachable target server: exit 3, nothing changed.
    restore(&db)
        .args(["--yes", "--target-host", "/nonexistent-socket-dir"])
        .assert()
        .code(3);
}

/// A new admin role with CREATEDB and `password`, member of the database owner's role.
fn admin_role(db: &TestDb, password: &str) -> String {
    let admin = unique("admin");
    psql(
        "postgres",
        &format!(
            "CREATE ROLE {admin} LOGIN CREATEDB PASSWORD {};\nGRANT {} TO {admin};",
            quote_literal(password),
            quote_ident(&db.user)
        ),
    );
    admin
}

#[test]
fn admin_role_from_a_passfile_entry_for_the_app_database_only() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("DELETE FROM routes");
    let pw = "adm:in\\pw'secret";
    let admin = admin_role(&db, pw);
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!(
            "*:*:{}:{admin}:{}\n",
            db.name,
            pgkeep::pg::passfile::escape(pw)
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = db.pgkeep();
    cmd.env("PGKEEP_ADMIN_PASSFILE", &passfile);
    restore_as(cmd, &admin, &[]);
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
}

/// `restore --yes` as `admin` with `extra` flags: it succeeds, says which role it used, and no
/// output holds the password (which contains "secret").
fn restore_as(mut cmd: assert_cmd::Command, admin: &str, extra: &[&str]) {
    let out = cmd
        .env("PGKEEP_ADMIN_USER", admin)
        .args(["restore", "--yes"])
        .args(extra)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("as role \"{admin}\"")))
        .get_output()
        .clone();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("secret"), "{all}");
}

/// The admin password reaches pg_restore in a passfile that lives in memory: every parallel
/// worker connects later than the leader and reads it again, as a role that needs its password.
#[test]
fn parallel_restore_workers_read_the_memory_passfile() {
    let db = TestDb::create(SAMPLE);
    for i in 0..6 {
        db.sql_as_owner(&format!(
            "CREATE TABLE t{i} AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g; ALTER TABLE t{i} ADD PRIMARY KEY (id);"
        ));
    }
    backup(&db, &["--format", "custom"]);
    db.sql_as_owner("DELETE FROM routes; DROP TABLE t3;");
    let pw = "memory:passfile\\pw'secret";
    let admin = admin_role(&db, pw);
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = db.pgkeep();
    cmd.env("TMPDIR", tmp.path())
        .env("PGKEEP_ADMIN_PASSWORD", pw);
    restore_as(cmd, &admin, &["--jobs", "4"]);
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
    assert_eq!(db.sql("SELECT count(*) FROM t3").trim(), "20000");
    // TMPDIR holds the restore's lock file, and nothing with the password in it.
    for e in std::fs::read_dir(tmp.path()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".lock"), "left in TMPDIR: {name}");
        let text = std::fs::read(e.path()).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains("secret"), "{name}");
    }
}

#[test]
fn sigterm_during_the_load_drops_the_scratch_database_and_keeps_live() {
    let db = TestDb::create(SAMPLE);
    legacy_file(&db, |t| {
        t.replacen(
            "COPY public.routes",
            "SELECT pg_sleep(30);\nCOPY public.routes",
            1,
        )
    });
    db.sql_as_owner("INSERT INTO routes VALUES (9000, 'live only')");
    let before = (restore_copies(&db), fingerprint(&db.name));
    let info = cluster();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("pgkeep"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", std::env::temp_dir())
        .env("DATABASE_SERVICE_NAME", &info.socket_dir)
        .env("PGPORT", info.port.to_string())
        .env("POSTGRESQL_USER", &db.user)
        .env("POSTGRESQL_PASSWORD", &db.password)
        .env("POSTGRESQL_DATABASE", &db.name)
        .env("BACKUP_DIR", &db.backup_dir)
        .env("PGKEEP_PG_BINDIR", &info.bindir)
        .env("PGKEEP_ADMIN_USER", "postgres")
        .args(["restore", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the load is running (the scratch database exists and psql sleeps in it).
    let mut loading = false;
    for _ in 0..200 {
        if restore_copies(&db)
            .iter()
            .any(|d| d.contains("_restoring_"))
            && psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'",
            )
            .trim()
                != "0"
        {
            loading = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(loading, "the load did not start");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!((restore_copies(&db), fingerprint(&db.name)), before);
}

#[test]
fn failed_in_place_restore_says_the_database_is_gone() {
    let db = TestDb::create(SAMPLE);
    legacy_file(&db, |t| {
        t.replacen(
            "COPY public.routes",
            "SELECT no_such_function();\nCOPY public.routes",
            1,
        )
    });
    restore(&db)
        .args(["--yes", "--in-place"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no_such_function"))
        .stderr(predicate::str::contains("had already dropped"));
    assert!(!databases().contains(&db.name));
    assert!(restore_copies(&db).is_empty());
}

/// Ctrl-C at the confirmation prompt did nothing (the prompt went on waiting): it must end the
/// restore with exit 130 and change nothing.
#[test]
fn ctrl_c_at_the_confirmation_prompt_exits_130_and_changes_nothing() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("DELETE FROM routes");
    let before = restore_copies(&db);
    let (mut master, mut slave) = (0, 0);
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    let _master = unsafe { std::fs::File::from_raw_fd(master) };
    let tty = unsafe { std::fs::File::from_raw_fd(slave) };
    let mut cmd = db.command();
    cmd.env("PGKEEP_ADMIN_USER", "postgres")
        .arg("restore")
        .stdin(Stdio::from(tty))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut asked = false;
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !asked && String::from_utf8_lossy(&seen).contains("Type the database name") {
                asked = true;
                let _ = tx.send(());
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the restore asks for confirmation");
    std::thread::sleep(Duration::from_millis(200));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait().unwrap());
    });
    let status = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("Ctrl-C at the prompt ends the restore");
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(restore_copies(&db), before);
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "0");
}
