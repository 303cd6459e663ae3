//! Every way a backup can fail: non-zero exit, one clear line with the cause, no manifest, no
//! partial file, earlier backups untouched, no orphan child, no leftover session.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{TableLock, processes_of};
use common::*;
use predicates::prelude::*;

/// A good backup first, so that every failure can be checked to leave it untouched.
fn with_earlier_backup(db: &TestDb) -> Vec<String> {
    db.pgkeep().arg("backup").assert().success();
    let files = db.files();
    assert_eq!(files.len(), 2, "{files:?}");
    files
}

/// A fake pg_dump that answers --version like PostgreSQL 15, then runs `body`.
fn fake_pg_dump(dir: &Path, body: &str) -> PathBuf {
    script(
        dir,
        "pg_dump",
        &format!(
            "if [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 15.0'; exit 0; fi\n{body}"
        ),
    )
}

/// Run a failing backup with `pg_dump` replaced by `body`; return stderr.
fn failing_backup(db: &TestDb, body: &str, code: i32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_pg_dump(dir.path(), body);
    let out = db
        .pgkeep()
        .arg("backup")
        .env("PGKEEP_PG_DUMP", &fake)
        .assert()
        .code(code)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(error_lines.len(), 1, "one error line expected: {stderr}");
    stderr
}

fn assert_clean(db: &TestDb, before: &[String]) {
    assert_eq!(db.files(), before, "only the earlier backup may remain");
    assert_eq!(db.wait_no_sessions(), 0, "no session may be left behind");
}

#[test]
fn pg_dump_failing_after_output_is_reported_with_its_stderr() {
    let db = TestDb::create(SAMPLE);
    let before = with_earlier_backup(&db);
    let err = failing_backup(
        &db,
        "echo 'SET x = 1;'; head -c 300000 /dev/zero | tr '\\0' 'a'; echo\necho 'pg_dump: error: Dumping the contents of table \"routes\" failed: connection lost' >&2\nexit 1",
        1,
    );
    assert!(err.contains("pg_dump exited with status 1"), "{err}");
    assert!(
        err.contains("Dumping the contents of table \\\"routes\\\" failed")
            || err.contains("Dumping the contents of table \"routes\" failed"),
        "{err}"
    );
    assert_clean(&db, &before);
}

#[test]
fn pg_dump_failing_silently_is_reported() {
    let db = TestDb::create(SAMPLE);
    let before = with_earlier_backup(&db);
    let err = failing_backup(&db, "echo 'SET x = 1;'\nexit 3", 1);
    assert!(
        err.contains("pg_dump exited with status 3 and printed nothing on stderr"),
        "{err}"
    );
    assert_clean(&db, &before);
}

#[test]
fn pg_dump_killed_by_a_signal_is_reported() {
    let db = TestDb::create(SAMPLE);
    let before = with_earlier_backup(&db);
    let err = failing_backup(&db, "echo 'COPY t (a) FROM stdin;'; echo 1\nkill -9 $$", 1);
    assert!(err.contains("killed by signal 9 (SIGKILL)"), "{err}");
    assert_clean(&db, &before);
}

#[test]
fn pg_dump_exiting_0_without_output_is_not_a_backup() {
    let db = TestDb::create(SAMPLE);
    let before = with_earlier_backup(&db);
    let err = failing_backup(&db, "exit 0", 1);
    assert!(
        err.contains("incomplete") && err.contains("pg_dump wrote nothing"),
        "{err}"
    );
    assert_clean(&db, &before);
}

#[test]
fn pg_dump_exiting_0_without_trailer_is_not_a_backup() {
    let db = TestDb::create(SAMPLE);
    let before = with_earlier_backup(&db);
    let err = failing_backup(
        &db,
        "echo '-- PostgreSQL database dump'; echo 'CREATE TABLE t (a int);'; echo 'COPY public.t (a) FROM stdin;'; seq 1 1000; echo '\\.'\nexit 0",
        1,
    );
    assert!(err.contains("completion trailer"), "{err}");
    // Cut inside a COPY block: the table is named.
    let err = failing_backup(
        &db,
        "echo 'COPY public.t (a) FROM stdin;'; seq 1 1000\nexit 0",
        1,
    );
    assert!(err.contains("inside the data of table public.t"), "{err}");
    assert_clean(&db, &before);
}

#[test]
fn unreachable_server_wrong_password_and_missing_database() {
    let db = TestDb::create(SAMPLE);
    let before = with_earlier_backup(&db);

    let out = db
        .pgkeep()
        .arg("backup")
        .env("DATABASE_SERVICE_NAME", "/nonexistent-socket-dir")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "cannot reach PostgreSQL at /nonexistent-socket-dir",
        ))
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "the error line only"
    );

    let out = db
        .pgkeep()
        .arg("backup")
        .env("POSTGRESQL_PASSWORD", "wrong-Passw0rd!")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("password authentication failed"))
        .get_output()
        .clone();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("wrong-Passw0rd!"), "password leaked: {all}");

    db.pgkeep()
        .args(["backup", "--database", "no_such_db"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "database \"no_such_db\" does not exist",
        ));
    assert_clean(&db, &before);
}

#[test]
fn backup_dir_missing_or_not_writable() {
    let db = TestDb::create(SAMPLE);
    let missing = db.backup_dir.join("nope");
    db.pgkeep()
        .arg("backup")
        .env("BACKUP_DIR", &missing)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("does not exist"));
    assert!(!missing.exists(), "a missing BACKUP_DIR is not created");

    // A read-only filesystem refuses even root.
    let ro = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(ro.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED read-only part: cannot mount tmpfs here");
        return;
    }
    let res = db
        .pgkeep()
        .arg("backup")
        .env("BACKUP_DIR", ro.path())
        .assert();
    let _ = Command::new("umount").arg(ro.path()).status();
    res.code(4)
        .stderr(predicate::str::contains("is not writable"));
    assert_eq!(db.wait_no_sessions(), 0);
}

#[test]
fn disk_full_during_the_write() {
    disk_full(&[]);
}

/// pg_dump writes a custom archive itself; a full disk is still exit 4, and nothing is left.
#[test]
fn disk_full_during_a_custom_archive() {
    disk_full(&["--format", "custom", "--compression", "none"]);
}

fn disk_full(args: &[&str]) {
    // Incompressible rows so that the dump cannot fit in 512 KiB.
    let db = TestDb::create(
        "CREATE TABLE noise AS SELECT g, md5(g::text) || md5((g*7)::text) || md5((g*13)::text) AS t FROM generate_series(1, 60000) g;",
    );
    let small = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(small.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs here");
        return;
    }
    // An earlier (legacy) backup that must survive.
    let day = small.path().join("2026-01-01");
    std::fs::create_dir(&day).unwrap();
    std::fs::write(day.join("postgresql-x_2026-01-01_00-00-00.sql.gz"), b"old").unwrap();
    let res = db
        .pgkeep()
        .arg("backup")
        .args(args)
        .env("BACKUP_DIR", small.path())
        .assert();
    let left: Vec<String> = walk(small.path());
    let _ = Command::new("umount").arg(small.path()).status();
    res.code(4)
        .stderr(predicate::str::contains("no space left on the device"));
    assert_eq!(
        left,
        vec!["2026-01-01/postgresql-x_2026-01-01_00-00-00.sql.gz".to_string()]
    );
    assert_eq!(db.wait_no_sessions(), 0);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") {
            continue;
        }
        if e.path().is_dir() {
            out.extend(walk(&e.path()).into_iter().map(|s| format!("{name}/{s}")));
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// Start `pgkeep backup` in the background with a table locked, so the dump hangs mid-way.
fn blocked_backup(db: &TestDb) -> (Child, TableLock) {
    let lock = TableLock::take(db, "routes");
    let child = db
        .command()
        .arg("backup")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lock.wait_for_waiter();
    (child, lock)
}

fn pg_dump_processes(db: &TestDb) -> usize {
    processes_of(&db.name)
        .iter()
        .filter(|p| p.comm == "pg_dump")
        .count()
}

#[test]
fn sigterm_and_sigint_during_the_dump() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let db = TestDb::create(SAMPLE);
        let before = with_earlier_backup(&db);
        let (child, locker) = blocked_backup(&db);
        assert!(
            db.files().iter().any(|f| f.ends_with(".partial")),
            "the dump is under way"
        );
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let out = child.wait_with_output().unwrap();
        locker.release();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("interrupted by"), "{stderr}");
        assert_eq!(pg_dump_processes(&db), 0, "no orphan pg_dump");
        assert_clean(&db, &before);
    }
}

#[test]
fn a_second_backup_fails_fast_naming_the_first_and_a_killed_holder_does_not_block() {
    let db = TestDb::create(SAMPLE);
    let (mut first, locker) = blocked_backup(&db);
    let started = Instant::now();
    db.pgkeep().arg("backup").assert().code(5).stderr(
        predicate::str::contains("another pgkeep run is in progress: backup").and(
            predicate::str::contains(format!("of database \"{}\"", db.name)),
        ),
    );
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    // Kill the holder outright: the kernel releases its lock.
    first.kill().unwrap();
    first.wait().unwrap();
    locker.release();
    db.pgkeep().arg("backup").assert().success();
    assert_eq!(
        db.files()
            .iter()
            .filter(|f| f.ends_with(".manifest.json"))
            .count(),
        1
    );
}

#[test]
fn secrets_and_awkward_names() {
    let password = "p@ss:w'rd \"q\" \\ ü $HOME";
    let db = TestDb::create_named("My \"DB\" ü:@\\x", "Ünï \"user\" :@", password);
    db.sql_as_owner(SAMPLE);
    db.sql_as_owner("CREATE SCHEMA \"Odd Schema\"; CREATE TABLE \"Odd Schema\".\"T (1)\" (a int); INSERT INTO \"Odd Schema\".\"T (1)\" VALUES (1),(2);");
    // A pg_dump wrapper that records what it was given.
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let real = cluster().bindir.join("pg_dump");
    let fake = fake_pg_dump(
        dir.path(),
        &format!(
            "{{ echo \"ARGS: $*\"; env; echo \"PASSFILE MODE: $(stat -L -c %a \"$PGPASSFILE\")\"; }} > '{}'\nexec '{}' \"$@\"",
            record.display(),
            real.display()
        ),
    );
    let out = db
        .pgkeep()
        .arg("backup")
        .env("PGKEEP_PG_DUMP", &fake)
        .env("PGPASSWORD", password)
        .assert()
        .success()
        .get_output()
        .clone();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!logs.contains(password), "{logs}");
    let rec = std::fs::read_to_string(&record).unwrap();
    assert!(!rec.contains(password), "password reached the child: {rec}");
    assert!(!rec.contains("PASSWORD="), "{rec}");
    assert!(rec.contains("PASSFILE MODE: 600"), "{rec}");
    let passfile = rec
        .lines()
        .find_map(|l| l.strip_prefix("PGPASSFILE="))
        .unwrap();
    assert!(
        passfile.starts_with("/proc/self/fd/"),
        "the private passfile lives in memory, not on disk: {passfile}"
    );

    let m = db
        .files()
        .into_iter()
        .find(|f| f.ends_with(".manifest.json"))
        .unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(db.backup_dir.join(m)).unwrap()).unwrap();
    assert_eq!(m["database"], db.name.as_str());
    assert_eq!(m["tables"]["\"Odd Schema\".\"T (1)\""], 2);

    let shown = db
        .pgkeep()
        .args(["config", "show"])
        .env("PGPASSWORD", password)
        .assert()
        .success()
        .get_output()
        .clone();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(!shown.contains(password));
    assert!(
        shown.contains("<redacted>") && shown.contains("env POSTGRESQL_PASSWORD"),
        "{shown}"
    );
}

#[test]
fn an_older_pg_dump_is_refused_naming_what_was_found() {
    let db = TestDb::create(SAMPLE);
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "pg_dump", "echo 'pg_dump (PostgreSQL) 11.22'");
    db.pgkeep()
        .arg("backup")
        .env("PGKEEP_PG_BINDIR", dir.path())
        .assert()
        .code(6)
        .stderr(
            predicate::str::contains("the server is 15").and(predicate::str::contains("11.22")),
        );
    assert!(db.files().is_empty());
}

/// With no password known, libpq children are pointed at no passfile: their errors say what
/// went wrong without `WARNING: password file "/dev/null" is not a plain file` in front.
#[test]
fn without_a_password_libpq_errors_carry_no_passfile_warning() {
    let db = TestDb::create("");
    let info = cluster();
    let params = pgkeep::pg::ConnParams {
        host: info.socket_dir.display().to_string(),
        port: info.port,
        user: db.user.clone(),
        password: None,
        passfile: None,
        dbname: db.name.clone(),
        sslmode: pgkeep::config::SslMode::Disable,
        sslrootcert: None,
        connect_timeout: 5,
    };
    let env = pgkeep::backup::libpq_env(&params, &[], None);
    let spec = pgkeep::process::Spec::new(&info.bindir.join("psql"))
        .envs(env)
        .arg("-X")
        .arg("-w")
        .arg("-c")
        .arg("SELECT 1");
    let (outcome, _) = pgkeep::process::output(&spec, None).unwrap();
    assert!(!outcome.success());
    let err = outcome.describe();
    assert!(err.contains("no password supplied"), "{err}");
    assert!(!err.contains("WARNING"), "{err}");
}
