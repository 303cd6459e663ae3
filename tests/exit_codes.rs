//! The README's exit-code table is complete and true: every code `src/exit.rs` defines has a
//! row, and each case the table names is driven through the real binary, which must end with
//! that code and exactly one error line on stderr, and the row of the code must name the case.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

/// The rows of the README's `## Exit codes` table: code -> meaning.
fn table() -> BTreeMap<String, String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("an `## Exit codes` section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() == 4 && cells[1].chars().next().is_some_and(|c| c.is_ascii_digit()))
                .then(|| (cells[1].to_string(), cells[2].to_string()))
        })
        .collect()
}

/// The meaning of `code` in the table (a row may hold several codes: `130, 143`).
fn meaning(code: i32) -> String {
    table()
        .into_iter()
        .find(|(codes, _)| codes.split(", ").any(|c| c == code.to_string()))
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("exit code {code} is not in the README's table"))
}

#[test]
fn every_exit_code_pgkeep_defines_has_a_row() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/exit.rs")).unwrap();
    let codes: Vec<i32> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split_once(": u8 = "))
        .map(|(_, v)| v.trim_end_matches(';').parse().unwrap())
        .collect();
    assert!(codes.len() >= 11, "{codes:?}");
    for code in codes.into_iter().chain([130, 143]) {
        assert!(!meaning(code).is_empty(), "{code}");
    }
}

/// Run `cmd`; it must exit `code` with one `pgkeep: error:` line on stderr containing `says`,
/// and the table's row for `code` must contain every one of `row_names`.
fn case(what: &str, cmd: &mut Command, code: i32, says: &str, row_names: &[&str]) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
    assert!(
        lines.len() == 1 && lines[0].starts_with("pgkeep: error: ") && lines[0].contains(says),
        "{what}: expected one error line containing `{says}`, got\n{stderr}"
    );
    let row = meaning(code);
    for name in row_names {
        assert!(
            row.contains(name),
            "{what}: the row of {code} does not name `{name}`: {row}"
        );
    }
}

#[test]
fn a_role_without_createdb_verify_restore_is_inconclusive_and_restore_refuses() {
    let db = TestDb::create(SAMPLE);
    db.pgkeep().arg("backup").assert().success();
    // The database owner, without CREATEDB, as the admin role.
    let as_owner = |args: &[&str]| {
        let mut c = db.command();
        c.env("PGKEEP_ADMIN_USER", &db.user)
            .env("PGKEEP_ADMIN_PASSWORD", &db.password)
            .args(args);
        c
    };
    case(
        "verify --restore",
        &mut as_owner(&["verify", "--restore"]),
        10,
        "could not be proven",
        &["verify --restore", "CREATEDB", "inconclusive"],
    );
    // The backup's line on stdout says why.
    let out = as_owner(&["verify", "--restore"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("INCONCLUSIVE") && stdout.contains("lacks CREATEDB"),
        "{stdout}"
    );
    case(
        "restore --yes",
        &mut as_owner(&["restore", "--yes"]),
        7,
        "lacks CREATEDB",
        &["restore refused", "CREATEDB"],
    );
    // The record says inconclusive: the backup is kept like an unverified one.
    let record = db
        .files()
        .into_iter()
        .find(|f| f.ends_with(".verify.json"))
        .expect("a verification record");
    let text = std::fs::read_to_string(db.backup_dir.join(record)).unwrap();
    assert!(text.contains("\"verdict\": \"inconclusive\""), "{text}");
}

#[test]
fn verify_with_nothing_to_verify_exits_1_with_or_without_all() {
    let db = TestDb::create("");
    case(
        "verify",
        db.command().arg("verify"),
        1,
        &format!("no backups of database \"{}\" to verify", db.name),
        &["nothing to verify"],
    );
    case(
        "verify --all",
        db.command().args(["verify", "--all"]),
        1,
        &format!("no backups in {} to verify", db.backup_dir.display()),
        &["nothing to verify", "--all"],
    );
}

#[test]
fn custom_zstd_with_pg_dump_15_exits_2() {
    let db = TestDb::create(SAMPLE);
    case(
        "backup --format custom --compression zstd",
        db.command()
            .args(["backup", "--format", "custom", "--compression", "zstd"]),
        2,
        "needs pg_dump 16 or newer",
        &["--compression zstd", "older than 16"],
    );
    assert!(db.files().is_empty(), "{:?}", db.files());
}

#[test]
fn a_full_disk_exits_4_for_plain_and_custom_backups() {
    // Incompressible rows: no format fits them in 512 KiB.
    let db = TestDb::create(
        "CREATE TABLE noise AS SELECT g, md5(g::text) || md5((g*7)::text) AS t FROM generate_series(1, 60000) g;",
    );
    for format in ["plain", "custom"] {
        let small = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(small.path())
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "cannot mount a small tmpfs (the tests run as root)"
        );
        let mut cmd = db.command();
        cmd.env("BACKUP_DIR", small.path())
            .args(["backup", "--format", format]);
        let out = cmd.output().unwrap();
        let left = files_under(small.path());
        let _ = Command::new("umount").arg(small.path()).status();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{format}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{format}: {stderr}");
        assert!(
            stderr.contains("no space left on the device"),
            "{format}: {stderr}"
        );
        assert!(left.is_empty(), "{format}: left {left:?}");
        let row = meaning(4);
        assert!(
            row.contains("full") && row.contains("custom archives"),
            "{row}"
        );
    }
}

/// Files (not directories) under `dir`, lock files aside.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else if !name.ends_with(".lock") {
            out.push(name);
        }
    }
    out
}
