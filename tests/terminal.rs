//! What a user at a terminal sees, on a real pseudo-terminal: a backup's progress line (phase,
//! bytes, rate, elapsed) redrawn in place and then its summary, the load's progress line of a
//! restore and of `verify --restore`, the read of `verify`; and that off a terminal (pipes, a
//! file, the daemon's log) none of it is printed.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::pty::{self, Screen};
use common::*;

/// Rows that make a dump of a few MiB: enough to be read in many steps.
const ROWS: &str =
    "CREATE TABLE noise AS SELECT g, md5(g::text) AS t FROM generate_series(1, 50000) g;";

/// A copy of the client tools in which `slow` (pg_dump, psql, ...) first runs for real and then
/// keeps its output open for 1.5 s (pg_dump), or waits 1.5 s before it reads its input (psql,
/// pg_restore), so that a progress line has time to be drawn.
fn slow_tools(dir: &Path, slow: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for e in std::fs::read_dir(&cluster().bindir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let real = e.path();
        if !slow.contains(&name.as_str()) {
            std::os::unix::fs::symlink(&real, bin.join(&name)).unwrap();
            continue;
        }
        let body = if name == "pg_dump" {
            format!(
                "[ \"$1\" = --version ] && exec '{r}' --version\n'{r}' \"$@\"; rc=$?; sleep 1.5; exit $rc",
                r = real.display()
            )
        } else {
            format!(
                "[ \"$1\" = --version ] && exec '{r}' --version\nsleep 1.5; exec '{r}' \"$@\"",
                r = real.display()
            )
        };
        script(&bin, &name, &body);
    }
    bin
}

/// The frames of `screen` that show `phase` with a byte count, a rate and the time.
fn progress_frames(screen: &Screen, phase: &str) -> Vec<String> {
    screen
        .redrawn()
        .into_iter()
        .filter(|f| {
            f.contains(&format!("{phase} "))
                && f.contains("/s)")
                && f.ends_with('s')
                && f.chars().any(|c| c.is_ascii_digit())
        })
        .collect()
}

fn assert_no_progress(what: &str, text: &str) {
    for phase in ["dumping", "reading", "loading"] {
        assert!(
            !text
                .lines()
                .any(|l| l.contains(&format!("{phase} ")) && l.contains("/s)")),
            "{what} printed a progress line:\n{text}"
        );
    }
    assert!(!text.contains('\r'), "{what} redrew a line:\n{text:?}");
}

#[test]
fn a_backup_on_a_terminal_shows_its_progress_then_its_summary() {
    let db = TestDb::create(&format!("{SAMPLE}{ROWS}"));
    let tmp = tempfile::tempdir().unwrap();
    let bin = slow_tools(tmp.path(), &["pg_dump"]);
    let mut cmd = db.command();
    cmd.env("PGKEEP_PG_BINDIR", &bin).arg("backup");
    let screen = pty::run(cmd);
    assert_eq!(screen.code, Some(0), "{}", screen.text);
    let frames = progress_frames(&screen, "dumping");
    assert!(!frames.is_empty(), "no progress line in {:?}", screen.raw);
    // The line is redrawn in place and cleared: the screen ends with the summary alone.
    assert!(frames.len() >= 2, "{frames:?}");
    let lines: Vec<&str> = screen.text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("backed up database \"{}\" to ", db.name)),
        "{}",
        screen.text
    );
    assert!(
        lines[1].contains(" of dump text compressed to "),
        "{}",
        screen.text
    );
    assert_eq!(lines[2], "  51300 rows in 3 tables");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("    public.noise") && l.ends_with(" 50000 rows"))
    );
    // The line was cleared: the screen keeps no progress.
    assert_no_progress("backup", &screen.text);
    assert!(!screen.text.contains("backup complete"), "{}", screen.text);
}

#[test]
fn a_backup_off_a_terminal_prints_its_log_line_only() {
    let db = TestDb::create(SAMPLE);
    let tmp = tempfile::tempdir().unwrap();
    let bin = slow_tools(tmp.path(), &["pg_dump"]);
    let out = db
        .pgkeep()
        .env("PGKEEP_PG_BINDIR", &bin)
        .arg("backup")
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].contains("backup complete database="),
        "{stderr}"
    );
    assert_no_progress("backup", &stderr);
}

/// A committed backup of `db` made with the real tools.
fn backed_up(db: &TestDb) -> String {
    db.pgkeep().arg("backup").assert().success();
    let files = db.files();
    files
        .iter()
        .find(|f| f.ends_with(".sql.gz"))
        .map(|f| db.backup_dir.join(f).display().to_string())
        .unwrap()
}

#[test]
fn a_restore_on_a_terminal_shows_the_load_progress() {
    let db = TestDb::create(&format!("{SAMPLE}{ROWS}"));
    backed_up(&db);
    let tmp = tempfile::tempdir().unwrap();
    let bin = slow_tools(tmp.path(), &["psql"]);
    let mut cmd = db.command();
    cmd.env("PGKEEP_PG_BINDIR", &bin)
        .env("PGKEEP_ADMIN_USER", "postgres")
        .args(["restore", "--yes"]);
    let screen = pty::run(cmd);
    assert_eq!(screen.code, Some(0), "{}", screen.text);
    let frames = progress_frames(&screen, "loading");
    assert!(!frames.is_empty(), "no load progress in {:?}", screen.raw);
    assert!(screen.text.contains("Restored database"), "{}", screen.text);
    assert_no_progress("the screen", &screen.text);
    assert_eq!(db.sql("SELECT count(*) FROM noise").trim(), "50000");
}

#[test]
fn verify_on_a_terminal_shows_the_read_and_the_test_load() {
    let db = TestDb::create(&format!("{SAMPLE}{ROWS}"));
    let data = backed_up(&db);
    let tmp = tempfile::tempdir().unwrap();
    let bin = slow_tools(tmp.path(), &["psql"]);
    let mut cmd = db.command();
    cmd.env("PGKEEP_PG_BINDIR", &bin)
        .env("PGKEEP_ADMIN_USER", "postgres")
        .args(["verify", "--restore", &data]);
    let screen = pty::run(cmd);
    assert_eq!(screen.code, Some(0), "{}", screen.text);
    assert!(
        !progress_frames(&screen, "loading").is_empty(),
        "no load progress in {:?}",
        screen.raw
    );
    assert!(
        screen.text.lines().any(|l| l.starts_with("ok ")),
        "{}",
        screen.text
    );
    assert_no_progress("the screen", &screen.text);
}

#[test]
fn restore_and_verify_off_a_terminal_print_no_progress() {
    let db = TestDb::create(SAMPLE);
    let data = backed_up(&db);
    let tmp = tempfile::tempdir().unwrap();
    let bin = slow_tools(tmp.path(), &["psql"]);
    for args in [&["verify", "--restore", &data][..], &["restore", "--yes"]] {
        let out = db
            .pgkeep()
            .env("PGKEEP_PG_BINDIR", &bin)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone();
        assert_no_progress(&args.join(" "), &String::from_utf8_lossy(&out.stdout));
        assert_no_progress(&args.join(" "), &String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn the_daemon_on_a_terminal_logs_its_backup_without_a_progress_line() {
    let db = TestDb::create(&format!("{SAMPLE}{ROWS}"));
    let tmp = tempfile::tempdir().unwrap();
    let bin = slow_tools(tmp.path(), &["pg_dump"]);
    let mut cmd = db.command();
    // No backup yet: the daemon catches up with one at start.
    cmd.env("PGKEEP_PG_BINDIR", &bin).args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "--backup-period",
        "1d",
    ]);
    let (child, master) = pty::spawn(cmd);
    let committed = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        db.files().iter().any(|f| f.ends_with(".manifest.json"))
    });
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let screen = pty::finish(child, master);
    assert!(committed, "no backup within 30 s:\n{}", screen.text);
    assert!(screen.text.contains("backup complete"), "{}", screen.text);
    assert_no_progress("the daemon", &screen.text);
    assert!(
        progress_frames(&screen, "dumping").is_empty(),
        "{:?}",
        screen.raw
    );
}
