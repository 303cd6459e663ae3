//! The three verdicts of a verification against real backups and a real PostgreSQL: a test
//! restore that could not be done here (a check query that errors, a role without CREATEDB, no
//! server of the dump's major, a setting this server does not know) is `inconclusive` (exit 10)
//! and keeps the backup exactly like an unverified one; only proof that the stored bytes are wrong
//! (a corrupted file, SQL that does not parse, classified by SQLSTATE) is `bad` (exit 9).
//! Retention (`prune`) and `restore --latest` / `--before` act on the verdicts.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// One committed backup: its data file, absolute.
fn backup(db: &TestDb) -> PathBuf {
    let before = db.files();
    db.pgkeep().arg("backup").assert().success();
    let manifest = db
        .files()
        .into_iter()
        .find(|f| !before.contains(f) && f.ends_with(".manifest.json"))
        .expect("a manifest");
    db.backup_dir
        .join(manifest.strip_suffix(".manifest.json").unwrap())
}

fn record_of(data: &Path) -> serde_json::Value {
    let p = PathBuf::from(format!("{}.verify.json", data.display()));
    serde_json::from_slice(&std::fs::read(&p).expect("a verification record")).unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `pgkeep verify ARGS` must end with `code` and one line starting `word` with `[failure]`.
fn verify_ends(
    db: &TestDb,
    envs: &[(&str, &str)],
    args: &[&str],
    code: i32,
    word: &str,
    failure: &str,
) -> String {
    let mut cmd = db.pgkeep();
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.arg("verify").args(args).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.starts_with(word) && stdout.contains(&format!("[{failure}]")),
        "expected {word} [{failure}]: {stdout}\nstderr: {stderr}"
    );
    stdout
}

fn rel(db: &TestDb, p: &Path) -> String {
    p.strip_prefix(&db.backup_dir)
        .unwrap()
        .display()
        .to_string()
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// Make a file look ten minutes old (older than the settling time of files without manifest).
fn age(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .unwrap();
}

#[test]
fn a_check_query_that_errors_is_inconclusive_alerts_and_never_deletes_the_backup() {
    let db = TestDb::create(SAMPLE);
    let oldest = backup(&db);
    let newest = backup(&db);
    let line = verify_ends(
        &db,
        &[("PGKEEP_ADMIN_USER", "postgres")],
        &[
            "--restore",
            "--check-sql",
            "SELECT no_such_column FROM \"SBI_USER\"",
            newest.to_str().unwrap(),
        ],
        10,
        "INCONCLUSIVE",
        "restore-check",
    );
    assert!(line.contains("no_such_column"), "{line}");
    let r = record_of(&newest);
    assert_eq!(r["verdict"], "inconclusive");
    assert_eq!(r["level"], "restore");

    // `list` shows the verdict, and STATUS does not call it bad.
    let out = db.pgkeep().arg("list").output().unwrap();
    let (stdout, _) = text(&out);
    let row = stdout
        .lines()
        .find(|l| l.contains("inconclusive (restore-check)"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains(" good "), "{row}");

    // `check` alerts.
    let out = db
        .pgkeep()
        .env("PGKEEP_CHECK_VERIFY_MAX_AGE", "0")
        .arg("check")
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(8), "{stdout}");
    assert!(stdout.contains("verify-inconclusive:"), "{stdout}");

    // Retention counts it toward the floor like an unverified backup: keep_last 1 keeps it.
    let out = db
        .pgkeep()
        .env("PGKEEP_KEEP_DAYS", "0")
        .env("PGKEEP_KEEP_LAST", "1")
        .args(["prune", "--apply"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let files = db.files();
    assert!(files.contains(&rel(&db, &newest)), "{stdout}\n{files:?}");
    assert!(
        !files.iter().any(|f| f.starts_with(&rel(&db, &oldest))),
        "{stdout}\n{files:?}"
    );
}

#[test]
fn a_backup_user_without_createdb_makes_the_test_restore_inconclusive() {
    let db = TestDb::create(SAMPLE);
    let data = backup(&db);
    // No PGKEEP_ADMIN_USER: the test restore connects as the backup user, the database's owner,
    // who may not create the scratch database.
    let line = verify_ends(
        &db,
        &[],
        &["--restore", data.to_str().unwrap()],
        10,
        "INCONCLUSIVE",
        "restore-privilege",
    );
    // Found before the scratch database is tried (a refused CREATE DATABASE would say 42501).
    assert!(line.contains("lacks CREATEDB"), "{line}");
    assert_eq!(record_of(&data)["verdict"], "inconclusive");
}

#[test]
fn without_a_server_of_the_dumps_major_the_local_test_restore_is_inconclusive() {
    let db = TestDb::create(SAMPLE);
    let data = backup(&db);
    // The dump claims to come from a server (and pg_dump) newer than any server here.
    let manifest = PathBuf::from(format!("{}.manifest.json", data.display()));
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["pg_dump_version"] = "99.1".into();
    m["server_version"] = "99.1".into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let line = verify_ends(
        &db,
        &[],
        &["--restore", "--local", data.to_str().unwrap()],
        10,
        "INCONCLUSIVE",
        "restore-version",
    );
    assert!(line.contains("install the PostgreSQL 99 server"), "{line}");
    // The configured server refuses to prove it too (it is older than the dump).
    let line = verify_ends(
        &db,
        &[("PGKEEP_ADMIN_USER", "postgres")],
        &["--restore", data.to_str().unwrap()],
        10,
        "INCONCLUSIVE",
        "restore-version",
    );
    assert!(line.contains("older than the backup's 99"), "{line}");
}

/// A backup of this server's major by a pg_dump newer than every psql and pg_restore here: the
/// server could load it, but no tools here can read what that pg_dump wrote.
#[test]
fn without_tools_of_the_pg_dumps_major_the_test_restore_is_inconclusive() {
    let db = TestDb::create(SAMPLE);
    let data = backup(&db);
    let manifest = PathBuf::from(format!("{}.manifest.json", data.display()));
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["pg_dump_version"] = "99.1".into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    for args in [&["--restore", "--local"][..], &["--restore"]] {
        let mut argv = args.to_vec();
        argv.push(data.to_str().unwrap());
        let line = verify_ends(
            &db,
            &[("PGKEEP_ADMIN_USER", "postgres")],
            &argv,
            10,
            "INCONCLUSIVE",
            "restore-version",
        );
        assert!(
            line.contains(
                "no psql of PostgreSQL 99 or newer found for a dump that pg_dump 99 wrote"
            ),
            "{line}"
        );
    }
}

/// An old pod's `.sql.gz` (GNU gzip, no manifest) holding `sql` and pg_dump's trailer.
fn legacy(db: &TestDb, stamp: &str, sql: &str) -> PathBuf {
    let path = db
        .backup_dir
        .join(format!("local-{}_{stamp}.sql.gz", db.name));
    let mut gzip = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&path).unwrap())
        .spawn()
        .unwrap();
    let body = format!("{sql}\n--\n-- PostgreSQL database dump complete\n--\n");
    gzip.stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    assert!(gzip.wait().unwrap().success());
    age(&path);
    path
}

#[test]
fn a_failed_test_load_is_classified_by_its_sqlstate() {
    let db = TestDb::create("");
    // SQL that does not parse (42601): the content is wrong, the backup is bad.
    let broken = legacy(&db, "2026-01-02_03-04-05", "CREATE TABEL t (a int);");
    let line = verify_ends(
        &db,
        &[],
        &["--restore", "--local", broken.to_str().unwrap()],
        9,
        "FAILED",
        "restore-load",
    );
    assert!(line.contains("SQLSTATE 42601"), "{line}");
    assert_eq!(record_of(&broken)["verdict"], "bad");
    // A setting this server does not know (42704, as a newer pg_dump writes for a newer
    // server): that proves nothing about the bytes.
    let newer = legacy(
        &db,
        "2026-01-03_03-04-05",
        "SET pgkeep_no_such.setting_here = 0;\nSET transaction_timeout_of_the_future = 0;",
    );
    let line = verify_ends(
        &db,
        &[],
        &["--restore", "--local", newer.to_str().unwrap()],
        10,
        "INCONCLUSIVE",
        "restore-unproven",
    );
    assert!(line.contains("SQLSTATE 42704"), "{line}");
    assert_eq!(record_of(&newer)["verdict"], "inconclusive");
}

/// Three backups: the newest corrupted and verified bad.
fn three_with_a_bad_newest(db: &TestDb) -> [PathBuf; 3] {
    let oldest = backup(db);
    let middle = backup(db);
    let newest = backup(db);
    flip_byte(&newest, 100);
    verify_ends(
        db,
        &[],
        &[newest.to_str().unwrap()],
        9,
        "FAILED",
        "checksum",
    );
    [oldest, middle, newest]
}

#[test]
fn retention_counts_a_bad_backup_toward_no_floor_and_culls_it_by_age_only() {
    let db = TestDb::create(SAMPLE);
    let [oldest, middle, newest] = three_with_a_bad_newest(&db);
    // Inside the age window the bad backup is kept like any other (a wave of bad verdicts
    // empties nothing).
    let out = db
        .pgkeep()
        .env("PGKEEP_KEEP_LAST", "1")
        .args(["prune", "--apply"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let row = stdout
        .lines()
        .find(|l| {
            l.contains(
                &newest
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .split('.')
                    .next()
                    .unwrap()
                    .to_string(),
            )
        })
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.starts_with("keep") && row.contains(" bad "), "{row}");
    assert_eq!(
        db.files()
            .iter()
            .filter(|f| f.ends_with(".manifest.json"))
            .count(),
        3,
        "{stdout}"
    );
    // Without the age window: the floor (keep_last 1) reaches past the bad one to the middle.
    let out = db
        .pgkeep()
        .env("PGKEEP_KEEP_DAYS", "0")
        .env("PGKEEP_KEEP_LAST", "1")
        .args(["prune", "--apply"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let files = db.files();
    assert!(files.contains(&rel(&db, &middle)), "{stdout}\n{files:?}");
    for gone in [&oldest, &newest] {
        assert!(
            !files.iter().any(|f| f.starts_with(&rel(&db, gone))),
            "{stdout}\n{files:?}"
        );
    }
}

#[test]
fn restore_latest_skips_a_bad_backup_and_restores_the_previous_one() {
    let db = TestDb::create(SAMPLE);
    let [_, middle, newest] = three_with_a_bad_newest(&db);
    let middle_id = middle
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let newest_id = newest
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    db.sql_as_owner("DELETE FROM routes WHERE id > 10");
    for args in [vec!["--latest"], vec!["--before", "2999-01-01"]] {
        let out = db
            .pgkeep()
            .env("PGKEEP_ADMIN_USER", "postgres")
            .arg("restore")
            .args(&args)
            .args(["--dry-run"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("Restore plan: backup {middle_id}")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("skipped {newest_id}")) && stdout.contains("verified bad"),
            "{stdout}"
        );
    }
    let out = db
        .pgkeep()
        .env("PGKEEP_ADMIN_USER", "postgres")
        .args(["restore", "--latest", "--yes", "--drop-previous"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
}

#[test]
fn restore_latest_refuses_with_7_when_every_backup_is_bad() {
    let db = TestDb::create(SAMPLE);
    let data = backup(&db);
    flip_byte(&data, 100);
    verify_ends(&db, &[], &[data.to_str().unwrap()], 9, "FAILED", "checksum");
    let out = db
        .pgkeep()
        .env("PGKEEP_ADMIN_USER", "postgres")
        .args(["restore", "--latest", "--dry-run"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(7), "{stdout}{stderr}");
    assert!(
        stderr.contains("nothing restorable") && stderr.contains("verified bad"),
        "{stderr}"
    );
}
