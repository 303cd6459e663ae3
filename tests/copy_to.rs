//! The second location (`copy_to`), through the real binary: each committed backup is copied
//! there with its manifest (byte for byte), to a directory or to S3 (moto on loopback); `list`
//! says where each backup is; a copy that fails leaves the backup committed, ends the command
//! with exit 11 in one line, and is made by the next run; the copies have their own retention.

mod common;

#[path = "common/moto.rs"]
#[allow(dead_code)]
mod moto;

use common::*;

fn output(c: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn listed(c: &mut assert_cmd::Command) -> Vec<serde_json::Value> {
    let (code, out, err) = output(c.args(["list", "--json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The relative data and manifest files under `dir`.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(dir).unwrap().flatten() {
        if !day.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(day.path()).unwrap().flatten() {
            out.push(format!(
                "{}/{}",
                day.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn a_backup_is_copied_with_its_manifest_and_list_says_where_it_is() {
    let db = TestDb::create(SAMPLE);
    let second = tempfile::tempdir().unwrap();
    let pgkeep = || {
        let mut c = db.pgkeep();
        c.env("PGKEEP_COPY_TO", second.path());
        c
    };
    let (code, _, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 0, "{err}");
    let copied = files_in(second.path());
    assert_eq!(copied.len(), 2, "data and manifest: {copied:?}");
    for f in &copied {
        assert_eq!(
            std::fs::read(second.path().join(f)).unwrap(),
            std::fs::read(db.backup_dir.join(f)).unwrap(),
            "{f} is the same bytes in both places"
        );
    }
    let list = listed(&mut pgkeep());
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0]["locations"],
        serde_json::json!([
            db.backup_dir.display().to_string(),
            second.path().display().to_string()
        ])
    );
    let (_, table, _) = output(pgkeep().arg("list"));
    assert!(table.contains("1 of these are also in"), "{table}");

    // The copy is a backup location of its own: it lists and verifies there.
    let (code, out, err) = output(db.pgkeep().env("BACKUP_DIR", second.path()).arg("verify"));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_failed_copy_keeps_the_backup_exits_11_and_the_next_run_copies_it() {
    let db = TestDb::create(SAMPLE);
    let parent = tempfile::tempdir().unwrap();
    let second = parent.path().join("offsite");
    let pgkeep = || {
        let mut c = db.pgkeep();
        c.env("PGKEEP_COPY_TO", &second);
        c
    };
    // The second volume is not mounted: the backup commits, the copy fails.
    let (code, _, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 11, "{err}");
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pgkeep: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(errors[0].contains("copy of database"), "{err}");
    assert!(
        err.contains("backup complete"),
        "the backup itself is logged: {err}"
    );
    // list still works while copy_to is unreachable.
    let list = listed(&mut pgkeep());
    assert_eq!(list.len(), 1, "the backup is committed");
    assert_eq!(
        list[0]["locations"].as_array().unwrap().len(),
        1,
        "{list:?}"
    );
    assert_eq!(list[0]["status"], "good");

    std::fs::create_dir(&second).unwrap();
    let (code, _, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 0, "{err}");
    let copied = files_in(&second);
    assert_eq!(copied.len(), 4, "both backups were copied: {copied:?}");
    let list = listed(&mut pgkeep());
    assert!(
        list.iter()
            .all(|e| e["locations"].as_array().unwrap().len() == 2),
        "{list:?}"
    );
}

#[test]
fn the_copies_have_their_own_retention() {
    let db = TestDb::create(SAMPLE);
    let second = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let (code, _, err) = output(
            db.pgkeep()
                .env("PGKEEP_COPY_TO", second.path())
                .env("PGKEEP_COPY_KEEP_LAST", "1")
                .env("PGKEEP_COPY_KEEP_DAYS", "0")
                .arg("backup"),
        );
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(listed(&mut db.pgkeep()).len(), 2, "the primary keeps both");
    let copies = files_in(second.path());
    assert_eq!(copies.len(), 2, "one copy with its manifest: {copies:?}");
    let newest = listed(&mut db.pgkeep())[0]["file"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(copies.contains(&newest), "the newest is kept: {copies:?}");
}

#[test]
fn a_local_backup_is_copied_to_s3() {
    let db = TestDb::create(SAMPLE);
    let bucket = moto::bucket();
    let url = format!("s3://{bucket}/copies");
    let pgkeep = || {
        let mut c = db.pgkeep();
        for (k, v) in moto::vars(moto::endpoint()) {
            c.env(k, v);
        }
        c.env("PGKEEP_COPY_TO", &url);
        c
    };
    let (code, out, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!format!("{out}{err}").contains(moto::SECRET_ACCESS_KEY));
    let list = listed(&mut pgkeep());
    assert_eq!(list[0]["locations"][1], url.as_str(), "{list:?}");
    // The copy lists as a backup in the bucket.
    let mut there = db.pgkeep();
    for (k, v) in moto::vars(moto::endpoint()) {
        there.env(k, v);
    }
    let copies = listed(there.env("BACKUP_DIR", &url));
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0]["sha256"], list[0]["sha256"]);
}

#[test]
fn the_globals_backup_of_a_run_over_the_set_is_copied_with_its_own_retention() {
    let db = TestDb::create(SAMPLE);
    let second = tempfile::tempdir().unwrap();
    let run = || {
        let (code, _, err) = output(
            db.pgkeep()
                .env("PGKEEP_DATABASES", &db.name)
                .env("PGKEEP_COPY_TO", second.path())
                .env("PGKEEP_COPY_KEEP_LAST", "1")
                .env("PGKEEP_COPY_KEEP_DAYS", "0")
                .arg("backup"),
        );
        assert_eq!(code, 0, "{err}");
    };
    let globals = |files: &[String]| -> Vec<String> {
        files
            .iter()
            .filter(|f| f.contains("-@globals_"))
            .cloned()
            .collect()
    };
    run();
    let copies = files_in(second.path());
    let primary: Vec<serde_json::Value> = listed(db.pgkeep().env("PGKEEP_COPY_TO", second.path()))
        .into_iter()
        .filter(|e| e["database"] == "")
        .collect();
    assert_eq!(primary.len(), 1, "a globals backup was made");
    let file = primary[0]["file"].as_str().unwrap();
    assert!(
        copies.contains(&file.to_string()) && copies.contains(&format!("{file}.manifest.json")),
        "the globals backup and its manifest are copied: {copies:?}"
    );
    assert_eq!(
        std::fs::read(second.path().join(file)).unwrap(),
        std::fs::read(db.backup_dir.join(file)).unwrap(),
        "byte for byte"
    );
    assert_eq!(
        primary[0]["locations"].as_array().map(|l| l.len()),
        Some(2),
        "list says it is in both places: {primary:?}"
    );

    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new second: a new id
    run();
    let primary = globals(&files_in(&db.backup_dir));
    assert_eq!(primary.len(), 4, "the primary keeps both: {primary:?}");
    let copies = globals(&files_in(second.path()));
    assert_eq!(
        copies.len(),
        2,
        "the copy location keeps one globals backup by its own retention: {copies:?}"
    );
    assert!(
        copies.iter().all(|c| primary.contains(c)) && copies.iter().max() == primary.iter().max(),
        "the newest is kept: {copies:?} of {primary:?}"
    );
}
