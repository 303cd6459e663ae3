//! What a restore will and will not run, against a real PostgreSQL: hostile backup files built
//! here (psql meta-commands, `\connect` to the live database, COPY TO PROGRAM, role changes,
//! swapped and truncated files) are refused with exit 7 before anything changes, and nothing
//! they hold runs; the file's SQL runs as the database's owner; uncommitted files are no backups.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use pgkeep::pg::ident::quote_literal;

fn backup(db: &TestDb, extra: &[&str]) -> PathBuf {
    db.pgkeep().arg("backup").args(extra).assert().success();
    let f = db
        .files()
        .into_iter()
        .filter(|f| !f.ends_with(".json"))
        .max()
        .unwrap();
    db.backup_dir.join(f)
}

/// pg_dump of the database (as the old pod ran it), edited, gzipped by GNU gzip into a
/// legacy file of the backup directory.
fn hostile(db: &TestDb, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
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
    // Named as the old pod named its files, so that the database is known.
    let n = name.bytes().map(u32::from).sum::<u32>() % 60;
    let path = day.join(format!("local-{}_2026-11-20_01-{n:02}-00.sql.gz", db.name));
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&path).unwrap())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    path
}

/// Insert `what` right after the first `SET` line of a dump (before any table exists).
fn after_header(what: &str) -> impl Fn(String) -> String {
    let what = what.to_string();
    move |dump: String| {
        let at = dump.find("\nSET ").unwrap() + 1;
        format!("{}{what}\n{}", &dump[..at], &dump[at..])
    }
}

fn restore(db: &TestDb) -> assert_cmd::Command {
    let mut c = db.pgkeep();
    c.env("PGKEEP_ADMIN_USER", "postgres")
        .args(["restore", "--yes"]);
    c
}

fn databases() -> String {
    psql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
}

fn users_count(db: &TestDb) -> String {
    db.sql("SELECT count(*) FROM \"SBI_USER\"")
        .trim()
        .to_string()
}

/// Run `cmd`, expect exit 7 with a one-line error containing `needle`; return stderr.
fn refused(cmd: &mut assert_cmd::Command, needle: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    stderr
}

#[test]
fn meta_commands_are_refused_naming_the_line_and_never_run() {
    let db = TestDb::create(SAMPLE);
    let dir = tempfile::tempdir().unwrap();
    let marker = |n: &str| dir.path().join(n);
    let cases = [
        ("bang", format!("\\! touch {}", marker("bang").display())),
        ("out", format!("\\o {}\nSELECT 1;", marker("out").display())),
        (
            "copyto",
            format!("\\copy (SELECT 1) to '{}'", marker("copyto").display()),
        ),
    ];
    let copies = || {
        databases()
            .lines()
            .filter(|d| d.starts_with(&format!("{}_", db.name)))
            .count()
    };
    for (name, line) in &cases {
        let f = hostile(&db, name, after_header(line));
        let err = refused(restore(&db).arg("--file").arg(&f), "psql meta-command");
        assert!(err.contains("line "), "{err}");
        assert!(err.contains(&line[..4]), "{err}");
        assert!(!marker(name).exists(), "{name}: the meta-command ran");
        // verify --restore, on the configured server and in a throwaway cluster.
        for local in [false, true] {
            let mut c = db.pgkeep();
            c.env("PGKEEP_ADMIN_USER", "postgres")
                .args(["verify", "--restore"])
                .arg(f.strip_prefix(&db.backup_dir).unwrap());
            if local {
                c.arg("--local");
            }
            let out = c.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(9), "{name} local={local}: {stdout}");
            assert!(stdout.contains("psql meta-command"), "{stdout}");
            assert!(!marker(name).exists(), "{name}: ran in verify");
        }
        std::fs::remove_file(&f).unwrap();
    }
    assert_eq!(copies(), 0, "no database was created or left");
}

#[test]
fn connect_to_the_live_database_changes_nothing_also_with_target_database() {
    let db = TestDb::create(SAMPLE);
    let other = TestDb::create("CREATE TABLE keep (a int); INSERT INTO keep VALUES (1);");
    let f = hostile(
        &db,
        "connect",
        after_header(&format!(
            "\\connect {}\nUPDATE \"SBI_USER\" SET \"USERNAME\" = 'pwned';\nSELECT 1/0;",
            db.name
        )),
    );
    refused(restore(&db).arg("--file").arg(&f), "`\\connect");
    assert_eq!(
        db.sql("SELECT count(*) FROM \"SBI_USER\" WHERE \"USERNAME\" = 'pwned'")
            .trim(),
        "0"
    );
    let g = hostile(
        &db,
        "connect2",
        after_header(&format!(
            "\\connect {}\nDROP TABLE keep;\nCREATE TABLE planted (a int);",
            other.name
        )),
    );
    refused(
        restore(&db)
            .arg("--file")
            .arg(&g)
            .args(["--target-database", &unique("copy")]),
        "`\\connect",
    );
    assert_eq!(other.sql("SELECT count(*) FROM keep").trim(), "1");
}

#[test]
fn statements_beyond_the_owner_are_listed_and_refused_unless_load_as_admin() {
    let db = TestDb::create(SAMPLE);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("program");
    let f = hostile(
        &db,
        "program",
        after_header(&format!(
            "CREATE TABLE IF NOT EXISTS x (a int);\nCOPY x TO PROGRAM 'touch {}';",
            marker.display()
        )),
    );
    let out = restore(&db)
        .arg("--file")
        .arg(&f)
        .arg("--dry-run")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("would be REFUSED"), "{stdout}");
    assert!(stdout.contains("COPY x TO PROGRAM"), "{stdout}");
    refused(restore(&db).arg("--file").arg(&f), "--load-as-admin");
    assert!(!marker.exists());
    std::fs::remove_file(&f).unwrap();

    let g = hostile(
        &db,
        "superuser",
        after_header(&format!("ALTER ROLE {} SUPERUSER;", db.user)),
    );
    refused(restore(&db).arg("--file").arg(&g), "a role change");
    assert_eq!(
        psql(
            "postgres",
            &format!(
                "SELECT rolsuper FROM pg_roles WHERE rolname = {}",
                quote_literal(&db.user)
            )
        )
        .trim(),
        "f"
    );
}

#[test]
fn the_files_sql_runs_as_the_owner_and_the_load_role_is_dropped() {
    let db = TestDb::create(SAMPLE);
    backup(&db, &[]);
    // The configured user owns the database: the load connects as it.
    restore(&db).arg("--drop-previous").assert().success();
    assert_eq!(users_count(&db), "300");
    // Another configured user: a temporary role granted the owner loads, and is dropped.
    let app = unique("app");
    psql(
        "postgres",
        &format!("CREATE ROLE {app} LOGIN PASSWORD 'app-secret'"),
    );
    restore(&db)
        .env("POSTGRESQL_USER", &app)
        .env("POSTGRESQL_PASSWORD", "app-secret")
        .env("PGKEEP_ADMIN_PASSWORD", "")
        .assert()
        .success();
    assert_eq!(users_count(&db), "300");
    assert_eq!(
        psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'pgkeep_load_%'"
        )
        .trim(),
        "0"
    );
    assert_eq!(
        db.sql("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'SBI_USER'")
            .trim(),
        db.user
    );
}

#[test]
fn swapped_truncated_and_replaced_files_are_refused() {
    let db = TestDb::create(SAMPLE);
    let a = backup(&db, &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    db.sql("INSERT INTO \"SBI_USER\" (\"USERNAME\") VALUES ('new')");
    let b = backup(&db, &[]);
    let tmp = a.with_extension("tmp");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let id_a = pgkeep::catalog::id_of(&a.display().to_string());
    let id_b = pgkeep::catalog::id_of(&b.display().to_string());
    let err = refused(
        restore(&db).args(["--backup", &id_a]),
        "the data files were swapped",
    );
    assert!(
        err.contains(&format!("data file of backup {id_b}")),
        "{err}"
    );
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();

    // Truncated, with the manifest rewritten to match: refused in preflight.
    let data = std::fs::read(&b).unwrap();
    let cut = pgkeep::pipeline::decoder(&data[..], pgkeep::config::Compression::Gzip)
        .map(|mut r| {
            let mut s = Vec::new();
            let _ = std::io::Read::read_to_end(&mut r, &mut s);
            s
        })
        .unwrap();
    let cut = &cut[..cut.len() / 2];
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, cut).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(&b, &gz).unwrap();
    let mpath = PathBuf::from(format!("{}.manifest.json", b.display()));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["stored_bytes"] = gz.len().into();
    m["sha256"] = pgkeep::pipeline::hash_reader(&gz[..]).unwrap().1.into();
    std::fs::write(&mpath, m.to_string()).unwrap();
    refused(restore(&db).args(["--backup", &id_b]), "incomplete");
    assert_eq!(users_count(&db), "301", "the live database is unchanged");

    // Replaced between the preflight and the load (by a pre-restore hook): caught inline.
    let hostile_file = hostile(&db, "later", after_header("\\! true"));
    let hook = script(
        &db.backup_dir,
        "swap.sh",
        &format!("cp '{}' '{}'", hostile_file.display(), a.display()),
    );
    let saved = std::fs::read(&a).unwrap();
    let out = restore(&db)
        .args(["--backup", &id_a])
        .env(
            "PGKEEP_PRE_RESTORE",
            serde_json::json!([[hook.display().to_string()]]).to_string(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("was not changed"), "{stderr}");
    assert_eq!(users_count(&db), "301");
    std::fs::write(&a, saved).unwrap();
    std::fs::remove_file(&hostile_file).unwrap();
    assert!(!databases().contains("_restore_"), "{}", databases());
}

#[test]
fn uncommitted_files_are_listed_as_such_and_restored_only_when_allowed() {
    let db = TestDb::create(SAMPLE);
    let f = backup(&db, &[]);
    std::fs::remove_file(format!("{}.manifest.json", f.display())).unwrap();
    let list = db.pgkeep().arg("list").output().unwrap();
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(stdout.contains("uncommitted"), "{stdout}");
    let out = restore(&db).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no backup"));
    let id = pgkeep::catalog::id_of(&f.display().to_string());
    refused(
        restore(&db).args(["--backup", &id]),
        "not a committed backup",
    );
    refused(restore(&db).arg("--file").arg(&f), "--allow-unverified");
    restore(&db)
        .arg("--file")
        .arg(&f)
        .arg("--allow-unverified")
        .assert()
        .success();
    assert_eq!(users_count(&db), "300");
}

/// `restore --backup ID -j 2` with `hook` as its pre-restore hook (run after the preflight):
/// refused with exit 7; its stderr.
fn refused_after_hook(db: &TestDb, id: &str, hook: &std::path::Path) -> String {
    let out = restore(db)
        .args(["--backup", id, "-j", "2"])
        .env(
            "PGKEEP_PRE_RESTORE",
            serde_json::json!([[hook.display().to_string()]]).to_string(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    stderr
}

/// The live database is as it was after the backup (301 users) and no scratch copy is left.
fn unchanged(db: &TestDb) {
    assert_eq!(users_count(db), "301");
    assert!(!databases().contains("_restor"), "{}", databases());
}

/// The parallel load of a plain backup (`-j 2`) checks what it loads as the serial load does: a
/// file replaced after the preflight by one with a meta-command in its post-data section is
/// refused inline (exit 7), the meta-command never runs, nothing is swapped in and no scratch
/// database is left, though the pre-data and data sections had already loaded.
#[test]
fn a_parallel_load_refuses_a_file_replaced_after_the_preflight() {
    let db = TestDb::create(SAMPLE);
    let a = backup(&db, &[]);
    // The live database moves on after the backup: a refused restore leaves it at 301 rows.
    db.sql("INSERT INTO \"SBI_USER\" (\"USERNAME\") VALUES ('new')");
    let id = pgkeep::catalog::id_of(&a.display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let line = format!("\\! touch {}", marker.display());
    let hostile_file = hostile(&db, "post", move |dump: String| {
        let at = dump
            .rfind("\n--\n-- PostgreSQL database dump complete")
            .expect("the trailer")
            + 1;
        format!("{}{line}\n{}", &dump[..at], &dump[at..])
    });
    let hook = script(
        &db.backup_dir,
        "swap_post.sh",
        &format!("cp '{}' '{}'", hostile_file.display(), a.display()),
    );
    let stderr = refused_after_hook(&db, &id, &hook);
    assert!(stderr.contains("psql meta-command"), "{stderr}");
    assert!(!marker.exists(), "the meta-command ran");
    unchanged(&db);
}

/// A custom archive whose one big table is cut across the connections (the archive loaded as
/// the script pg_restore writes) is checked as it is fed to pg_restore: an archive replaced
/// after the preflight by another valid one fails the load once its hash differs (exit 7),
/// before the post-data section; nothing is swapped in and no scratch database is left.
#[test]
fn a_custom_archive_cut_across_connections_is_refused_when_replaced_after_the_preflight() {
    let db = TestDb::create(SAMPLE);
    db.sql_as_owner(
        "CREATE TABLE big (id int PRIMARY KEY, t text); \
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 150000) g",
    );
    let a = backup(&db, &["--format", "custom"]);
    db.sql("INSERT INTO \"SBI_USER\" (\"USERNAME\") VALUES ('new')");
    let id = pgkeep::catalog::id_of(&a.display().to_string());
    let info = cluster();
    // The hook dumps the database as it is now (301 users) over the checked archive.
    let hook = script(
        &db.backup_dir,
        "swap_archive.sh",
        &format!(
            "'{}' -Fc -h '{}' -p {} -U postgres -d '{}' -f '{}'",
            info.bindir.join("pg_dump").display(),
            info.socket_dir.display(),
            info.port,
            db.name,
            a.display()
        ),
    );
    let stderr = refused_after_hook(&db, &id, &hook);
    assert!(
        stderr.contains("its COPY cut across the connections"),
        "{stderr}"
    );
    assert!(stderr.contains("changed"), "{stderr}");
    unchanged(&db);
}
