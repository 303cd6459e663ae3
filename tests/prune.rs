//! `pgkeep prune` through the real binary: a dry run changes nothing and names the rule of every
//! decision; `--apply` deletes manifest first then data; an empty policy is refused; old pod
//! files fall under the policy; leftover partial files of the database's killed backups go, no
//! other file does.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use predicates::prelude::*;

fn set_age(path: &std::path::Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

/// Old pod files `<host>-<db>_<stamp>.sql.gz` for the last `days` days.
fn legacy_files(db: &TestDb, days: i64) {
    let host = pgkeep::catalog::host_label(&cluster().socket_dir.display().to_string());
    let now = jiff::Timestamp::now();
    for i in 0..days {
        let t = now - jiff::SignedDuration::from_hours(24 * i + 1);
        let (day, stem) = pgkeep::catalog::backup_stem(&host, &db.name, t);
        let dir = db.backup_dir.join(&day);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{stem}.sql.gz")), b"\x1f\x8b").unwrap();
    }
}

#[test]
fn dry_run_then_apply_with_good_and_legacy_backups() {
    let db = TestDb::create(SAMPLE);
    legacy_files(&db, 15);
    db.pgkeep().arg("backup").assert().success();
    // Leftovers: a partial file of a killed backup of the database (no run holds its lock), one
    // of another database (its own culling's), one pgkeep did not name.
    let host = pgkeep::catalog::host_label(&cluster().socket_dir.display().to_string());
    let at = jiff::Timestamp::from_second(1_577_836_800).unwrap();
    let (day, stem) = pgkeep::catalog::backup_stem(&host, &db.name, at);
    let x = format!("{day}/{stem}.sql.gz.partial");
    let (_, other) = pgkeep::catalog::backup_stem(&host, "other_db", at);
    let o = format!("{day}/{other}.sql.gz.partial");
    std::fs::create_dir_all(db.backup_dir.join(&day)).unwrap();
    for f in [&x, &o] {
        std::fs::write(db.backup_dir.join(f), b"half").unwrap();
    }
    set_age(&db.backup_dir.join(&x), 3 * 86400);
    std::fs::write(db.backup_dir.join("y.sql.gz.partial"), b"half").unwrap();
    let before = db.files();

    let out = db.pgkeep().arg("prune").assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(db.files(), before, "a dry run changes nothing");
    // 1 good + 15 legacy; the legacy ones more than 10 days older than the good one go.
    let deletes: Vec<&str> = text.lines().filter(|l| l.starts_with("delete")).collect();
    assert_eq!(deletes.len(), 5 + 1, "{text}");
    assert!(
        text.contains("keep_last: newest good 1 of 3"),
        "the floor is named: {text}"
    );
    assert!(
        text.contains("older than 10 days before the newest good backup"),
        "{text}"
    );
    assert!(text.contains(&x), "{text}");
    assert!(!text.contains("y.sql.gz.partial"), "{text}");
    assert!(!text.contains(&o), "{text}");
    assert!(text.contains("dry run: 5 of 16 backups"), "{text}");

    let out = db
        .pgkeep()
        .args(["prune", "--apply", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["result"]["deleted"].as_array().unwrap().len(), 5);
    assert_eq!(v["result"]["orphans_removed"], serde_json::json!([x]));
    let after = db.files();
    assert_eq!(after.len(), before.len() - 6, "{after:?}");
    assert!(after.iter().any(|f| f == "y.sql.gz.partial"));
    assert!(after.contains(&o), "{after:?}");
    assert_eq!(
        after
            .iter()
            .filter(|f| f.ends_with(".manifest.json"))
            .count(),
        1
    );
    // Applying again is a no-op.
    db.pgkeep()
        .args(["prune", "--apply"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted 0 of 11 backups"));
}

#[test]
fn empty_policy_is_refused_and_nothing_changes() {
    let db = TestDb::create("");
    legacy_files(&db, 3);
    let before = db.files();
    db.pgkeep()
        .args(["prune", "--apply", "--keep-days", "0", "--keep-last", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("keeps nothing"));
    db.pgkeep()
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("PGKEEP_KEEP_DAYS", "0")
        .env("PGKEEP_KEEP_LAST", "0")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("keeps nothing"));
    assert_eq!(db.files(), before);
}

#[test]
fn bad_daemon_settings_are_refused_at_start() {
    let db = TestDb::create("");
    db.pgkeep()
        .args(["run", "--schedule", "0 25 * * *"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("schedule"));
    db.pgkeep()
        .args(["run", "--listen", "nonsense"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("listen"));
    db.pgkeep()
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("BACKUP_DIR", "/nonexistent/backups")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("does not exist"));
    // A port in use: a clear error naming the address.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    db.pgkeep()
        .args(["run", "--listen", &addr])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("cannot listen on {addr}")));
}

#[test]
fn prune_apply_is_refused_while_a_backup_holds_the_lock() {
    let db = TestDb::create(SAMPLE);
    let tools = tempfile::tempdir().unwrap();
    let hold = tools.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let real = cluster().bindir.join("pg_dump");
    let pg_dump = script(
        tools.path(),
        "pg_dump",
        &format!(
            "if [ \"$1\" = \"--version\" ]; then exec '{r}' --version; fi\n\
             while [ -e '{h}' ]; do sleep 0.05; done\nexec '{r}' \"$@\"",
            r = real.display(),
            h = hold.display()
        ),
    );
    let mut backup = db.command();
    backup
        .arg("backup")
        .env("PGKEEP_PG_DUMP", &pg_dump)
        .stderr(std::process::Stdio::null());
    let mut child = backup.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !db.files().iter().any(|f| f.ends_with(".partial")) {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    // The dry run reads only; --apply needs the lock.
    db.pgkeep().arg("prune").assert().success();
    db.pgkeep()
        .args(["prune", "--apply"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "another pgkeep run is in progress",
        ));
    std::fs::remove_file(&hold).unwrap();
    assert!(child.wait().unwrap().success());
    db.pgkeep().args(["prune", "--apply"]).assert().success();
}
