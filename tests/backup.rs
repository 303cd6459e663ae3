//! Backups against a real PostgreSQL: the happy path and the compatibility promises.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn plain_gzip_backup_restores_with_gunzip_psql_and_sha256sum_matches() {
    let db = TestDb::create(SAMPLE);
    db.pgkeep()
        .arg("backup")
        .assert()
        .success()
        .stderr(predicate::str::contains("backup complete"));
    let files = db.files();
    assert_eq!(files.len(), 2, "{files:?}");
    let data = files.iter().find(|f| f.ends_with(".sql.gz")).unwrap();
    let manifest = files
        .iter()
        .find(|f| f.ends_with(".manifest.json"))
        .unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(db.backup_dir.join(manifest)).unwrap()).unwrap();
    assert_eq!(m["tables"]["public.\"SBI_USER\""], 300);
    assert_eq!(m["tables"]["public.routes"], 1000);
    assert_eq!(m["database_info"]["owner"], db.user.as_str());

    let path = db.backup_dir.join(data);
    let out = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        sum.split_whitespace().next().unwrap(),
        m["sha256"].as_str().unwrap()
    );

    // The old runbook's restore works on our file.
    let target = unique("restored");
    psql("postgres", &format!("CREATE DATABASE {target}"));
    let info = cluster();
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; gunzip -c '{}' | '{}/psql' -X -q -v ON_ERROR_STOP=1 -h '{}' -p {} -U postgres -d {target} >/dev/null",
            path.display(),
            info.bindir.display(),
            info.socket_dir.display(),
            info.port
        ))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        psql(&target, "SELECT count(*) FROM \"SBI_USER\"").trim(),
        "300"
    );
}

#[test]
fn zstd_and_custom_formats_record_row_counts_and_read_back() {
    let db = TestDb::create(SAMPLE);
    db.pgkeep()
        .args(["backup", "--compression", "zstd", "--level", "5"])
        .assert()
        .success();
    // Right after, in another format: ids are unique across formats.
    db.pgkeep()
        .args(["backup", "--format", "custom"])
        .assert()
        .success();
    let files = db.files();
    let ids: std::collections::BTreeSet<String> = files
        .iter()
        .filter(|f| f.ends_with(".manifest.json"))
        .map(|f| catalog_id(f))
        .collect();
    assert_eq!(ids.len(), 2, "{files:?}");
    let zst = files
        .iter()
        .find(|f| f.ends_with(".sql.zst"))
        .expect("zstd file");
    let dump = files
        .iter()
        .find(|f| f.ends_with(".dump"))
        .expect("custom file");
    for f in [zst, dump] {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(db.backup_dir.join(format!("{f}.manifest.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(m["tables"]["public.\"SBI_USER\""], 300, "{f}");
        assert_eq!(m["tables"]["public.routes"], 1000, "{f}");
    }
    // The zstd file is a standard zstd stream.
    let out = std::process::Command::new("zstd")
        .args(["-dc"])
        .arg(db.backup_dir.join(zst))
        .output();
    if let Ok(out) = out {
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("PostgreSQL database dump complete"));
    }
    // The custom archive lists with pg_restore.
    let out = std::process::Command::new(cluster().bindir.join("pg_restore"))
        .arg("-l")
        .arg(db.backup_dir.join(dump))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("TABLE DATA public SBI_USER"));
}

#[test]
fn list_shows_newest_first_with_legacy_files_and_json() {
    let db = TestDb::create(SAMPLE);
    // A file the old pod made: no manifest.
    let day = db.backup_dir.join("2026-01-02");
    std::fs::create_dir(&day).unwrap();
    let legacy = format!("local-{}_2026-01-02_01-00-00.sql.gz", db.name);
    std::fs::write(day.join(&legacy), b"\x1f\x8b old").unwrap();
    db.pgkeep().arg("backup").assert().success();
    let out = db
        .pgkeep()
        .arg("list")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME (UTC)"), "{text}");
    assert!(
        lines[1].contains(" good ") && lines[1].contains("plain+gzip"),
        "{text}"
    );
    assert!(
        lines[2].contains("legacy (unverified)") && lines[2].contains(&db.name),
        "{text}"
    );

    let out = db
        .pgkeep()
        .args(["list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["status"], "good");
    assert_eq!(arr[1]["status"], "legacy");
    assert_eq!(arr[1]["file"], format!("2026-01-02/{legacy}"));
}

#[test]
fn config_show_names_sources_and_bad_config_is_refused() {
    let db = TestDb::create("");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgkeep.toml");
    std::fs::write(&file, "compression = \"zstd\"\nlevel = 7\n").unwrap();
    let out = db
        .pgkeep()
        .args(["config", "show", "--config"])
        .arg(&file)
        .env("PGUSER", "ignored_libpq_user")
        .arg("--host")
        .arg("/flag/socket")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let line = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{k} ")))
            .unwrap()
            .to_string()
    };
    assert!(line("user").contains("env POSTGRESQL_USER"), "{text}");
    assert!(
        line("host").contains("/flag/socket") && line("host").contains("flag --host"),
        "{text}"
    );
    assert!(
        line("compression").contains("zstd") && line("compression").contains("file"),
        "{text}"
    );
    assert!(line("password").contains("<redacted>"), "{text}");

    std::fs::write(&file, "compresion = \"zstd\"\n").unwrap();
    db.pgkeep()
        .args(["backup", "--config"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown key `compresion`"));
    db.pgkeep()
        .arg("backup")
        .env("PGKEEP_LEVEL", "99")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid value for level (from env PGKEEP_LEVEL)",
        ));
    assert!(db.files().is_empty());
}

#[test]
fn json_logs_have_one_line_per_completed_backup() {
    let db = TestDb::create(SAMPLE);
    let out = db
        .pgkeep()
        .args(["--log-format", "json", "backup"])
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8_lossy(&out);
    let done: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every line is JSON"))
        .filter(|v| v["message"] == "backup complete")
        .collect();
    assert_eq!(done.len(), 1, "{text}");
    assert_eq!(done[0]["database"], db.name.as_str());
    assert_eq!(done[0]["sha256"].as_str().unwrap().len(), 12);
    assert!(done[0]["file"].as_str().unwrap().ends_with(".sql.gz"));
}

fn catalog_id(manifest: &str) -> String {
    pgkeep::catalog::id_of(manifest.trim_end_matches(".manifest.json"))
}

/// A value that is not UTF-8 in the environment made pgkeep panic (`std::env::vars`). One of
/// pgkeep's variables is an error line that names it; anyone else's is ignored.
#[test]
fn non_utf8_environment_values() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let db = TestDb::create(SAMPLE);
    let bad = OsStr::from_bytes(b"caf\xe9");
    db.pgkeep()
        .env("PGKEEP_DATABASE", bad)
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "the environment variable PGKEEP_DATABASE is not valid UTF-8",
        ))
        .stderr(predicates::str::contains("panicked").not());
    db.pgkeep()
        .env("POSTGRESQL_PASSWORD", bad)
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("POSTGRESQL_PASSWORD"));
    db.pgkeep()
        .env("SOMEONE_ELSES", bad)
        .arg("backup")
        .assert()
        .success();
}

/// The manifest beside the only data file ending in `ext`.
fn manifest_of(db: &TestDb, ext: &str) -> serde_json::Value {
    let files = db.files();
    let data = files
        .iter()
        .find(|f| f.ends_with(ext))
        .unwrap_or_else(|| panic!("no {ext} among {files:?}"));
    serde_json::from_slice(
        &std::fs::read(db.backup_dir.join(format!("{data}.manifest.json"))).unwrap(),
    )
    .unwrap()
}

#[test]
fn custom_archives_record_the_compression_pg_dump_applied() {
    for (args, compression, level) in [
        (&["--compression", "gzip", "--level", "3"][..], "gzip", 3),
        (&["--compression", "none"][..], "none", 0),
        (&["--compression", "gzip", "--level", "0"][..], "none", 0),
    ] {
        let db = TestDb::create(SAMPLE);
        db.pgkeep()
            .args(["backup", "--format", "custom"])
            .args(args)
            .assert()
            .success();
        let m = manifest_of(&db, ".dump");
        assert_eq!(m["compression"], compression, "{args:?}");
        assert_eq!(m["level"], level, "{args:?}");
        // pg_dump's own header says the same: data blocks are compressed, or not.
        let data = db.backup_dir.join(m["file"].as_str().unwrap());
        let listed = std::process::Command::new(cluster().bindir.join("pg_restore"))
            .arg("-l")
            .arg(&data)
            .output()
            .unwrap();
        let header = String::from_utf8_lossy(&listed.stdout);
        let said = header
            .lines()
            .find(|l| l.contains("Compression:"))
            .unwrap_or_else(|| panic!("no Compression line in\n{header}"));
        let want = if compression == "none" { "0" } else { "3" };
        assert!(said.trim_end().ends_with(want), "{args:?}: {said}");
    }
}

#[test]
fn custom_zstd_with_an_older_pg_dump_is_refused_before_anything_is_written() {
    let db = TestDb::create(SAMPLE);
    let out = db
        .pgkeep()
        .args(["backup", "--format", "custom", "--compression", "zstd"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let dump = cluster().bindir.join("pg_dump");
    let said = std::process::Command::new(&dump)
        .arg("--version")
        .output()
        .unwrap()
        .stdout;
    let (_, version) = pgkeep::pg::tools::parse_major(&String::from_utf8_lossy(&said)).unwrap();
    assert!(
        lines[0].starts_with("pgkeep: error: ")
            && lines[0].contains("needs pg_dump 16 or newer")
            && lines[0].contains(&format!("its pg_dump is {version} ({})", dump.display())),
        "{stderr}"
    );
    assert!(db.files().is_empty(), "{:?}", db.files());
    assert_eq!(db.wait_no_sessions(), 0);
}

#[test]
fn custom_zstd_with_a_pg_dump_built_without_zstd_is_refused() {
    let db = TestDb::create(SAMPLE);
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("dumped");
    // A pg_dump 16 build without zstd answers as PostgreSQL's does; it never gets to dump.
    let fake = script(
        tmp.path(),
        "pg_dump",
        &format!(
            r#"if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 16.15"; exit 0; fi
case " $* " in *" --compress=zstd:"*" --file=/dev/null "*)
  echo 'pg_dump: error: this build does not support compression with ZSTD' >&2; exit 1;;
esac
touch '{}'; exit 1"#,
            marker.display()
        ),
    );
    let out = db
        .pgkeep()
        .env("PGKEEP_PG_DUMP", &fake)
        .args(["backup", "--format", "custom", "--compression", "zstd"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim_end(),
        format!(
            "pgkeep: error: backup of database \"{}\" failed: pg_dump 16.15 ({}) cannot write \
             zstd archives: pg_dump: error: this build does not support compression with ZSTD",
            db.name,
            fake.display()
        )
    );
    assert!(!marker.exists(), "the dump ran");
    assert!(db.files().is_empty(), "{:?}", db.files());
}

#[test]
fn custom_zstd_levels_run_1_to_22() {
    let db = TestDb::create("");
    for level in ["0", "23"] {
        let out = db
            .pgkeep()
            .args(["backup", "--format", "custom", "--compression", "zstd"])
            .args(["--level", level])
            .assert()
            .code(2)
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("out of range 1-22"), "{level}: {stderr}");
    }
    assert!(db.files().is_empty());
}
