//! `pgkeep verify` and `pgkeep check` against real backups of a real PostgreSQL: good backups of
//! every format verify, each corruption of the matrix is detected with its own message, the
//! result is recorded beside the backup without touching the manifest, `list` shows it, and
//! `check` exits non-zero with one line per reason for each condition.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use predicates::prelude::*;

/// One committed backup: (data file, manifest file), absolute.
fn backup(db: &TestDb, envs: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let before = db.files();
    let mut cmd = db.pgkeep();
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.arg("backup").assert().success();
    let new: Vec<String> = db
        .files()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let manifest = new
        .iter()
        .find(|f| f.ends_with(".manifest.json"))
        .expect("a manifest");
    let data = manifest.strip_suffix(".manifest.json").unwrap();
    (db.backup_dir.join(data), db.backup_dir.join(manifest))
}

fn id_of(data: &Path) -> String {
    let name = data.file_name().unwrap().to_string_lossy().into_owned();
    for ext in [".sql.gz", ".sql.zst", ".sql", ".dump"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_string();
        }
    }
    name
}

fn record_of(data: &Path) -> serde_json::Value {
    let p = PathBuf::from(format!("{}.verify.json", data.display()));
    serde_json::from_slice(&std::fs::read(&p).expect("a verification record")).unwrap()
}

fn manifest_json(m: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap()
}

/// Rewrite the manifest's size and checksum to match the data file as it is now.
fn reseal(data: &Path, manifest: &Path) {
    let bytes = std::fs::read(data).unwrap();
    let mut m = manifest_json(manifest);
    m["stored_bytes"] = bytes.len().into();
    use sha2::Digest;
    m["sha256"] = hex::encode(sha2::Sha256::digest(&bytes)).into();
    std::fs::write(manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// `pgkeep verify ARGS` must fail with exit 9 and a line `FAILED  <id>  [code] ...`; returns stdout.
fn verify_fails(db: &TestDb, args: &[&str], id: &str, code: &str) -> String {
    let out = db
        .pgkeep()
        .env("PGKEEP_ADMIN_USER", "postgres")
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(9),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("no line for {id}: {stdout}"));
    assert!(
        line.starts_with("FAILED") && line.contains(&format!("[{code}]")),
        "expected [{code}] for {id}: {line}"
    );
    line.to_string()
}

/// Make a file look ten minutes old (older than the settling time of files without manifest).
fn age(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .unwrap();
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn good_backups_of_every_format_verify_and_list_shows_it() {
    let db = TestDb::create(SAMPLE);
    let (gz, gz_m) = backup(&db, &[]);
    let (zst, _) = backup(&db, &[("PGKEEP_COMPRESSION", "zstd")]);
    let (dump, _) = backup(&db, &[("PGKEEP_FORMAT", "custom")]);
    let manifest_before = std::fs::read(&gz_m).unwrap();

    // No verification yet.
    db.pgkeep()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("VERIFIED").and(predicate::str::contains(" ok ").not()));

    let out = db.pgkeep().args(["verify", "--all"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{stdout}"
    );
    assert!(
        stdout.contains("every archive block replayed by pg_restore"),
        "{stdout}"
    );
    assert!(stdout.contains("1300 rows in 2 tables"), "{stdout}");

    for data in [&gz, &zst, &dump] {
        let r = record_of(data);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["level"], "checksum");
        assert_eq!(r["kind"], "managed");
        assert_eq!(r["rows"], 1300);
        let m = manifest_json(&PathBuf::from(format!("{}.manifest.json", data.display())));
        assert_eq!(r["sha256"], m["sha256"]);
    }
    // The committed manifest is untouched.
    assert_eq!(std::fs::read(&gz_m).unwrap(), manifest_before);

    let list = db.pgkeep().arg("list").output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        list.lines().filter(|l| l.contains(" ok 20")).count(),
        3,
        "{list}"
    );
    let json = db.pgkeep().args(["list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    for e in v.as_array().unwrap() {
        assert_eq!(e["verification"]["ok"], true, "{e}");
        assert!(e["verification"]["checked_at"].is_string());
    }

    // Default is the latest; by id works too; --json prints the records.
    db.pgkeep()
        .arg("verify")
        .assert()
        .success()
        .stdout(predicate::str::contains(id_of(&dump)));
    let out = db
        .pgkeep()
        .args(["verify", "--json", &id_of(&gz)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], id_of(&gz));
    // An unknown id is a usage error.
    db.pgkeep()
        .args(["verify", "nope_2020-01-01_00-00-00"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no backup matches"));
}

#[test]
fn one_flipped_byte_is_detected() {
    let db = TestDb::create(SAMPLE);
    let (data, _) = backup(&db, &[]);
    let len = std::fs::metadata(&data).unwrap().len();
    flip_byte(&data, len / 2);
    let line = verify_fails(&db, &[&id_of(&data)], &id_of(&data), "checksum");
    assert!(
        line.contains("the content changed since the backup"),
        "{line}"
    );
    assert!(line.contains("does not decompress"), "{line}");
    // The failure is recorded and listed.
    let r = record_of(&data);
    assert_eq!(r["ok"], false);
    assert_eq!(r["failure"], "checksum");
    db.pgkeep()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("FAILED (checksum)"));

    // Uncompressed: a flipped byte inside a row still parses, the checksum alone catches it.
    let (plain, _) = backup(&db, &[("PGKEEP_COMPRESSION", "none")]);
    let text = std::fs::read_to_string(&plain).unwrap();
    flip_byte(&plain, text.find("user150").unwrap() as u64 + 2);
    let line = verify_fails(&db, &[&id_of(&plain)], &id_of(&plain), "checksum");
    assert!(line.contains("changed in place"), "{line}");
}

#[test]
fn ten_bytes_cut_off_the_end_are_detected() {
    let db = TestDb::create(SAMPLE);
    let (data, _) = backup(&db, &[]);
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let line = verify_fails(&db, &[], &id_of(&data), "truncated");
    assert!(line.contains("(10 bytes missing)"), "{line}");
}

#[test]
fn a_deleted_manifest_is_detected() {
    let db = TestDb::create(SAMPLE);
    // Without an earlier verification: the gzip framing tells pgkeep's files from the old pod's.
    let (gz, gz_m) = backup(&db, &[]);
    std::fs::remove_file(&gz_m).unwrap();
    let line = verify_fails(&db, &[&id_of(&gz)], &id_of(&gz), "manifest-missing");
    assert!(line.contains("the manifest is missing"), "{line}");

    // With an earlier verification on record.
    let (gz2, gz2_m) = backup(&db, &[]);
    db.pgkeep()
        .args(["verify", &id_of(&gz2)])
        .assert()
        .success();
    std::fs::remove_file(&gz2_m).unwrap();
    let line = verify_fails(&db, &[&id_of(&gz2)], &id_of(&gz2), "manifest-missing");
    assert!(
        line.contains("it had one when it was verified at"),
        "{line}"
    );

    // A custom-format archive without manifest is not listed, but --all still finds it.
    let (dump, dump_m) = backup(&db, &[("PGKEEP_FORMAT", "custom")]);
    std::fs::remove_file(&dump_m).unwrap();
    // Just written, it may be a backup between its data and its manifest: --all leaves it alone.
    let out = db.pgkeep().args(["verify", "--all"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&id_of(&dump)));
    age(&dump);
    verify_fails(
        &db,
        &["--all"],
        &format!("{}.dump", id_of(&dump)),
        "manifest-missing",
    );

    // The old pod's own `pg_dump | gzip` files are legacy, not orphans: they verify as such.
    let info = cluster();
    let day = db.backup_dir.join("2026-01-02");
    std::fs::create_dir_all(&day).unwrap();
    let legacy = day.join(format!("local-{}_2026-01-02_03-04-05.sql.gz", db.name));
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}/pg_dump' -h '{}' -p {} -U postgres '{}' | gzip > '{}'",
            info.bindir.display(),
            info.socket_dir.display(),
            info.port,
            db.name,
            legacy.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let out = db
        .pgkeep()
        .args(["verify", &id_of(&legacy)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("legacy backup without manifest"),
        "{stdout}"
    );
    assert_eq!(record_of(&legacy)["kind"], "legacy");
}

#[test]
fn a_changed_manifest_checksum_is_detected() {
    let db = TestDb::create(SAMPLE);
    let (data, manifest) = backup(&db, &[]);
    let mut m = manifest_json(&manifest);
    m["sha256"] = "0".repeat(64).into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let line = verify_fails(&db, &[], &id_of(&data), "manifest-checksum");
    assert!(
        line.contains("the manifest's checksum was altered"),
        "{line}"
    );

    // When the data verified good before, that is the evidence.
    let (data2, manifest2) = backup(&db, &[]);
    db.pgkeep()
        .args(["verify", &id_of(&data2)])
        .assert()
        .success();
    let mut m = manifest_json(&manifest2);
    m["sha256"] = "f".repeat(64).into();
    std::fs::write(&manifest2, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let line = verify_fails(&db, &[&id_of(&data2)], &id_of(&data2), "manifest-checksum");
    assert!(
        line.contains("byte for byte what verified good at"),
        "{line}"
    );
}

#[test]
fn a_zero_length_data_file_is_detected() {
    let db = TestDb::create(SAMPLE);
    let (data, _) = backup(&db, &[]);
    std::fs::write(&data, b"").unwrap();
    let line = verify_fails(&db, &[], &id_of(&data), "empty");
    assert!(line.contains("the data file is empty (0 bytes)"), "{line}");
    // A manifest whose data file is gone entirely.
    std::fs::remove_file(&data).unwrap();
    let line = verify_fails(&db, &[], &id_of(&data), "data-missing");
    assert!(
        line.contains("is missing although its manifest exists"),
        "{line}"
    );
    db.pgkeep()
        .arg("list")
        .assert()
        .stdout(predicate::str::contains("FAILED (data-missing)"));
}

#[test]
fn a_plain_dump_cut_in_a_copy_block_is_detected_though_psql_loads_it() {
    let db = TestDb::create(SAMPLE);
    let (data, manifest) = backup(&db, &[("PGKEEP_COMPRESSION", "none")]);
    let text = std::fs::read_to_string(&data).unwrap();
    let copy = text
        .find("COPY public.routes")
        .expect("the routes COPY block");
    let cut = copy + text[copy..].find("\n500\t").expect("row 500") + 1;
    std::fs::write(&data, &text[..cut]).unwrap();
    // The file and its manifest agree (as for a dump committed cut short): only the content tells.
    reseal(&data, &manifest);
    let line = verify_fails(&db, &[], &id_of(&data), "cut-in-copy");
    assert!(
        line.contains("cut in the middle of the data of table public.routes"),
        "{line}"
    );

    // psql loads such a file without an error, which is why the trailer check matters.
    let target = unique("cut");
    psql("postgres", &format!("CREATE DATABASE {target}"));
    let info = cluster();
    let status = std::process::Command::new(info.bindir.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&info.socket_dir)
        .args([
            "-p",
            &info.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &target,
            "-f",
        ])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "psql refused the cut file");
    assert_eq!(psql(&target, "SELECT count(*) FROM routes").trim(), "499");

    // The same cut in an old pod's .sql.gz (no manifest, no checksum) is caught as well.
    let legacy = db
        .backup_dir
        .join(format!("local-{}_2026-01-02_03-04-05.sql.gz", db.name));
    // (Written with GNU gzip, as the old pod did.)
    let mut gzip = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&legacy).unwrap())
        .spawn()
        .unwrap();
    gzip.stdin
        .take()
        .unwrap()
        .write_all(&text.as_bytes()[..cut])
        .unwrap();
    assert!(gzip.wait().unwrap().success());
    age(&legacy);
    verify_fails(&db, &["--all"], "2026-01-02_03-04-05", "cut-in-copy");
}

#[test]
fn a_custom_archive_is_replayed_block_by_block() {
    let db = TestDb::create(SAMPLE);
    let (data, manifest) = backup(&db, &[("PGKEEP_FORMAT", "custom")]);
    // Damage the data near the end (the table of contents is at the start), then make the
    // manifest agree, so that only a full replay of the blocks can notice.
    let len = std::fs::metadata(&data).unwrap().len();
    flip_byte(&data, len - 40);
    reseal(&data, &manifest);
    let line = verify_fails(&db, &[], &id_of(&data), "archive");
    assert!(line.contains("does not replay"), "{line}");
    // No pg_restore is this machine's problem, not a bad backup: exit 6, nothing recorded.
    let before = std::fs::read(format!("{}.verify.json", data.display())).unwrap();
    let empty = tempfile::tempdir().unwrap();
    db.pgkeep()
        .env("PGKEEP_PG_BINDIR", empty.path())
        .arg("verify")
        .assert()
        .code(6)
        .stderr(predicate::str::contains("pg_restore not found"));
    assert_eq!(
        std::fs::read(format!("{}.verify.json", data.display())).unwrap(),
        before
    );
    // A TOC-only listing does not see it.
    let info = cluster();
    let status = std::process::Command::new(info.bindir.join("pg_restore"))
        .arg("--list")
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_restore --list noticed the damage");
}

#[test]
fn row_counts_that_differ_from_the_manifest_are_detected() {
    let db = TestDb::create(SAMPLE);
    let (_, manifest) = backup(&db, &[]);
    let mut m = manifest_json(&manifest);
    m["tables"]["public.routes"] = 1001.into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let data = PathBuf::from(
        manifest
            .to_string_lossy()
            .strip_suffix(".manifest.json")
            .unwrap(),
    );
    let line = verify_fails(&db, &[], &id_of(&data), "row-count");
    assert!(
        line.contains("table public.routes has 1000 rows, the manifest records 1001"),
        "{line}"
    );
}

// ---- pgkeep check ----

fn check(db: &TestDb, envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = db.pgkeep();
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.arg("check").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn reasons(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(c, _)| c))
        .collect()
}

#[test]
fn check_passes_for_a_fresh_verified_backup_and_reports_json() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.pgkeep().arg("verify").assert().success();
    let (code, out) = check(&db, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: the newest good backup"), "{out}");
    let json = db.pgkeep().args(["check", "--json"]).output().unwrap();
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    assert!(v["free_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn check_without_any_backup() {
    let db = TestDb::create("");
    let (code, out) = check(&db, &[]);
    assert_eq!(code, 8, "{out}");
    assert_eq!(reasons(&out), vec!["no-backup"], "{out}");
}

#[test]
fn check_stale_backup_and_stale_verification() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.pgkeep().arg("verify").assert().success();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, out) = check(&db, &[("PGKEEP_CHECK_MAX_AGE", "1s")]);
    assert_eq!(code, 8, "{out}");
    assert_eq!(reasons(&out), vec!["stale"], "{out}");
    let (code, out) = check(&db, &[("PGKEEP_CHECK_VERIFY_MAX_AGE", "1s")]);
    assert_eq!(code, 8, "{out}");
    assert_eq!(reasons(&out), vec!["verify-stale"], "{out}");
    // JSON carries the same codes.
    let json = db
        .pgkeep()
        .env("PGKEEP_CHECK_MAX_AGE", "1s")
        .env("PGKEEP_CHECK_VERIFY_MAX_AGE", "1s")
        .args(["check", "--json"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(8));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let codes: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["stale", "verify-stale"]);
}

#[test]
fn check_never_verified() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    let (code, out) = check(&db, &[]);
    assert_eq!(code, 8, "{out}");
    assert_eq!(reasons(&out), vec!["verify-stale"], "{out}");
    assert!(out.contains("has ever been verified"), "{out}");
    let (code, _) = check(&db, &[("PGKEEP_CHECK_VERIFY_MAX_AGE", "0")]);
    assert_eq!(code, 0);
}

#[test]
fn check_shrinking_backup() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.sql_as_owner("DELETE FROM routes WHERE id > 10; DELETE FROM \"SBI_USER\" WHERE id > 10;");
    backup(&db, &[]);
    db.pgkeep().arg("verify").assert().success();
    let (code, out) = check(&db, &[]);
    assert_eq!(code, 8, "{out}");
    assert_eq!(reasons(&out), vec!["shrunk"], "{out}");
    assert!(out.contains("of the size of the one before"), "{out}");
    let (code, out) = check(&db, &[("PGKEEP_CHECK_MIN_SIZE_RATIO", "0")]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_failed_verification() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    let (data, _) = backup(&db, &[]);
    std::fs::write(&data, b"").unwrap();
    db.pgkeep().arg("verify").assert().code(9);
    let (code, out) = check(&db, &[]);
    assert_eq!(code, 8, "{out}");
    // The failed backup does not count as good; the older one still does.
    assert_eq!(
        reasons(&out),
        vec!["verify-failed", "verify-stale"],
        "{out}"
    );
    assert!(out.contains("the data file is empty"), "{out}");
}

#[test]
fn check_low_free_space() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    db.pgkeep().arg("verify").assert().success();
    let (code, out) = check(&db, &[("PGKEEP_CHECK_MIN_FREE", "1000000T")]);
    assert_eq!(code, 8, "{out}");
    assert_eq!(reasons(&out), vec!["low-space"], "{out}");
    let (code, out) = check(&db, &[("PGKEEP_CHECK_MIN_FREE", "bogus")]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn retention_learns_from_verification_and_culls_records_with_backups() {
    let db = TestDb::create(SAMPLE);
    let (oldest, _) = backup(&db, &[]);
    let (middle, _) = backup(&db, &[]);
    let (newest, _) = backup(&db, &[]);
    std::fs::write(&newest, b"").unwrap();
    db.pgkeep().args(["verify", "--all"]).assert().code(9);
    let out = db
        .pgkeep()
        .env("PGKEEP_KEEP_DAYS", "0")
        .env("PGKEEP_KEEP_LAST", "1")
        .args(["prune", "--apply"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("bad"), "{text}");
    // The failed newest does not count: the middle one is the newest good and stays.
    let files = db.files();
    let rel = |p: &Path| {
        p.strip_prefix(&db.backup_dir)
            .unwrap()
            .display()
            .to_string()
    };
    assert!(files.contains(&rel(&middle)), "{files:?}");
    assert!(
        files.contains(&format!("{}.verify.json", rel(&middle))),
        "{files:?}"
    );
    for gone in [&oldest, &newest] {
        assert!(
            !files.iter().any(|f| f.starts_with(&rel(gone))),
            "{} and its record are culled: {files:?}",
            rel(gone)
        );
    }
}

#[test]
fn verify_without_backups_fails_and_an_unknown_id_is_a_usage_error() {
    let db = TestDb::create("");
    db.pgkeep()
        .arg("verify")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no backups of database"));
    // --all over an empty directory is no different (issue 13): nothing to verify is a failure.
    db.pgkeep()
        .args(["verify", "--all"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("no backups in "));
    db.pgkeep()
        .args(["verify", "--all", "--latest"])
        .assert()
        .code(2);
}

fn scratch_databases(db: &TestDb) -> String {
    psql(
        "postgres",
        &format!(
            "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '{}%restoring%'",
            db.name
        ),
    )
    .trim()
    .to_string()
}

#[test]
fn restore_level_loads_counts_checks_and_drops_the_scratch_database() {
    let db = TestDb::create(SAMPLE);
    let (gz, _) = backup(&db, &[]);
    let (dump, _) = backup(&db, &[("PGKEEP_FORMAT", "custom")]);
    for data in [&gz, &dump] {
        let out = db
            .pgkeep()
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args([
                "verify",
                "--restore",
                "--check-sql",
                "SELECT 1 FROM \"SBI_USER\" WHERE \"USERNAME\" = 'user300'",
                // The file, not the id: backups of two formats may share an id.
                data.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("loaded into scratch database"), "{stdout}");
        assert!(
            stdout.contains("1300 rows in 2 tables as recorded, 1 check(s) passed"),
            "{stdout}"
        );
        let r = record_of(data);
        assert_eq!(r["level"], "restore");
        assert_eq!(r["ok"], true);
    }
    assert_eq!(
        scratch_databases(&db),
        "",
        "the scratch databases are dropped"
    );

    // A check that finds nothing does not prove the backup: inconclusive (exit 10), never
    // bad, and the copy is dropped too.
    let out = db
        .pgkeep()
        .env("PGKEEP_ADMIN_USER", "postgres")
        .args([
            "verify",
            "--restore",
            "--check-sql",
            "SELECT 1 FROM \"SBI_USER\" WHERE \"USERNAME\" = 'nobody'",
            gz.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(10), "{line}");
    assert!(
        line.starts_with("INCONCLUSIVE")
            && line.contains("[restore-check]")
            && line.contains("nobody"),
        "{line}"
    );
    assert_eq!(scratch_databases(&db), "");

    // A wrong row count in the manifest fails (caught before anything is loaded).
    let manifest = PathBuf::from(format!("{}.manifest.json", gz.display()));
    let mut m = manifest_json(&manifest);
    m["tables"]["public.\"SBI_USER\""] = 299.into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    verify_fails(
        &db,
        &["--restore", gz.to_str().unwrap()],
        &format!("{}.sql.gz", id_of(&gz)),
        "row-count",
    );
    assert_eq!(scratch_databases(&db), "");
}

#[test]
fn restore_level_local_loads_into_a_throwaway_cluster_and_never_contacts_the_server() {
    let db = TestDb::create(SAMPLE);
    let (gz, _) = backup(&db, &[]);
    let (dump, _) = backup(&db, &[("PGKEEP_FORMAT", "custom")]);
    // A private TMPDIR (traversable by the postgres OS user) shows where the clusters went.
    let tmp = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The configured server is a socket directory that does not exist: any attempt to reach it
    // would fail, so passing proves the production server was not used.
    let nowhere = tempfile::tempdir().unwrap().path().join("no-server-here");
    for data in [&gz, &dump] {
        let out = db
            .pgkeep()
            .env("DATABASE_SERVICE_NAME", &nowhere)
            .env("TMPDIR", tmp.path())
            .args([
                "verify",
                "--restore",
                "--local",
                "--check-sql",
                "SELECT 1 FROM \"SBI_USER\" WHERE \"USERNAME\" = 'user300'",
                data.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("1300 rows in 2 tables as recorded, 1 check(s) passed"),
            "{stdout}"
        );
        // The backup's owner role does not exist in a fresh cluster: it was created there.
        assert!(
            stderr.contains("created the backup's roles") && stderr.contains(&db.user),
            "{stderr}"
        );
        let r = record_of(data);
        assert_eq!(r["level"], "restore");
        assert_eq!(r["ok"], true);
    }
    // No scratch database ever appeared on the real server.
    assert_eq!(scratch_databases(&db), "");

    // Failures in the throwaway cluster have their own messages.
    let nowhere_env = nowhere.to_str().unwrap();
    let out = db
        .pgkeep()
        .env("DATABASE_SERVICE_NAME", nowhere_env)
        .env("TMPDIR", tmp.path())
        .args([
            "verify",
            "--restore",
            "--local",
            "--check-sql",
            "SELECT 1 FROM \"SBI_USER\" WHERE \"USERNAME\" = 'nobody'",
            gz.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{stdout}");
    assert!(
        stdout.starts_with("INCONCLUSIVE") && stdout.contains("[restore-check]"),
        "{stdout}"
    );
    let manifest = PathBuf::from(format!("{}.manifest.json", gz.display()));
    let mut m = manifest_json(&manifest);
    m["tables"]["public.\"SBI_USER\""] = 299.into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let out = db
        .pgkeep()
        .env("DATABASE_SERVICE_NAME", nowhere_env)
        .env("TMPDIR", tmp.path())
        .args(["verify", "--restore", "--local", gz.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(9), "{stdout}");
    assert!(
        stdout.contains("[row-count]") && stdout.contains("the manifest records 299"),
        "{stdout}"
    );
    assert_eq!(scratch_databases(&db), "");
    // Every throwaway cluster was stopped and removed.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
