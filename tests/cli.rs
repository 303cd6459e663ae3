//! What the real binary prints where no server is needed: each command's `--help` with its own
//! flags apart from the global ones, the top-level description, `cleanup`'s own flag texts, and
//! the tables of `list` and `prune` over a directory of the old pod's files, a failed command's
//! one error line, what `demo --keep` says about the server it leaves running, and that the
//! demo's `$ pgkeep backup` is what `pgkeep backup` prints on a terminal.

mod common;

use std::path::Path;

use assert_cmd::Command;

fn pgkeep(env: &[(&str, &str)]) -> Command {
    let mut c = Command::cargo_bin("pgkeep").unwrap();
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn stdout(c: &mut Command) -> String {
    let out = c.assert().success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

/// The flags listed under each heading of a help text (`Options:`, `Global options:`).
fn sections(help: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            out.push((line.trim_end_matches(':').to_string(), Vec::new()));
        } else if let Some((_, flags)) = out.last_mut() {
            let t = line.trim_start();
            if t.starts_with('-') {
                let long = t
                    .split_whitespace()
                    .find(|w| w.starts_with("--"))
                    .unwrap_or(t)
                    .trim_end_matches(',')
                    .trim_end_matches("...")
                    .to_string();
                flags.push(long);
            }
        }
    }
    out
}

const GLOBAL: [&str; 8] = [
    "--config",
    "--log-format",
    "--verbose",
    "--quiet",
    "--host",
    "--port",
    "--user",
    "--backup-dir",
];

#[test]
fn every_subcommand_help_keeps_the_global_flags_in_their_own_section() {
    for cmd in [
        "backup",
        "list",
        "verify",
        "check",
        "demo",
        "maintenance",
        "run",
        "prune",
        "restore",
        "cleanup",
    ] {
        let help = stdout(pgkeep(&[]).args([cmd, "--help"]));
        let s = sections(&help);
        let own = s
            .iter()
            .find(|(h, _)| h == "Options")
            .unwrap_or_else(|| panic!("{cmd}: no Options section\n{help}"));
        let global = s
            .iter()
            .find(|(h, _)| h == "Global options")
            .unwrap_or_else(|| panic!("{cmd}: no Global options section\n{help}"));
        assert_eq!(global.1, GLOBAL, "{cmd}\n{help}");
        for g in GLOBAL {
            assert!(
                !own.1.iter().any(|f| f == g),
                "{cmd}: {g} among its own options\n{help}"
            );
        }
        assert!(own.1.iter().any(|f| f == "--help"), "{cmd}\n{help}");
    }
    let help = stdout(pgkeep(&[]).args(["maintenance", "--help"]));
    let s = sections(&help);
    let own = &s.iter().find(|(h, _)| h == "Options").unwrap().1;
    assert_eq!(
        own,
        &[
            "--listen",
            "--title",
            "--message",
            "--retry-after",
            "--help"
        ],
        "{help}"
    );
}

#[test]
fn the_top_level_description_names_what_pgkeep_does() {
    let help = stdout(pgkeep(&[]).arg("--help"));
    let about: String = help
        .split("\n\n")
        .next()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        about,
        "pgkeep keeps PostgreSQL databases safe: logical backups into BACKUP_DIR, now or on a \
         schedule (`pgkeep run`), culling by a retention policy, verification and health \
         checks, a safe one-command restore, and a built-in demo."
    );
}

#[test]
fn cleanup_help_describes_its_flags_in_its_own_words() {
    let help = stdout(pgkeep(&[]).args(["cleanup", "--help"]));
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for own in [
        "--target-host <HOST> Look for copies on another server (host name or socket directory), \
         e.g. the one a restore went to with --target-host; default: the configured host",
        "--dry-run List what would be dropped, with sizes, and drop nothing",
        "-y, --yes Drop without asking (required when standard input is not a terminal)",
    ] {
        assert!(flat.contains(own), "missing `{own}` in\n{help}");
    }
    for restore_words in ["Restore into", "the whole plan"] {
        assert!(!flat.contains(restore_words), "{restore_words}\n{help}");
    }
}

/// A directory with two files of the old pod: one named for the configured service
/// (`postgresql`), one for another service name.
fn old_pod_dir(dir: &Path) {
    std::fs::create_dir_all(dir.join("2026-01-02")).unwrap();
    for name in [
        "postgresql-sbi_2026-01-02_01-00-00.sql.gz",
        "oldsvc-sbi_2026-01-02_02-00-00.sql.gz",
    ] {
        std::fs::write(dir.join("2026-01-02").join(name), b"\x1f\x8b\x08\x00").unwrap();
    }
}

#[test]
fn list_and_prune_print_the_same_time_header() {
    let dir = tempfile::tempdir().unwrap();
    old_pod_dir(dir.path());
    for tz in ["UTC", "Etc/UTC"] {
        let env = [
            ("TZ", tz),
            ("DATABASE_SERVICE_NAME", "postgresql"),
            ("BACKUP_DIR", dir.path().to_str().unwrap()),
        ];
        let list = stdout(pgkeep(&env).arg("list"));
        let prune = stdout(pgkeep(&env).args(["prune", "-d", "sbi"]));
        let header = |text: &str, first: &str| {
            text.lines()
                .find(|l| l.starts_with(first))
                .and_then(|l| l.split("  ").find(|c| c.starts_with("TIME")))
                .unwrap_or_else(|| panic!("no TIME column in\n{text}"))
                .trim()
                .to_string()
        };
        assert_eq!(header(&list, "TIME"), "TIME (UTC)", "TZ={tz}\n{list}");
        assert_eq!(header(&prune, "ACTION"), "TIME (UTC)", "TZ={tz}\n{prune}");
    }
}

#[test]
fn list_says_why_an_old_pods_file_has_no_database() {
    let dir = tempfile::tempdir().unwrap();
    old_pod_dir(dir.path());
    let env = [
        ("TZ", "UTC"),
        ("DATABASE_SERVICE_NAME", "postgresql"),
        ("BACKUP_DIR", dir.path().to_str().unwrap()),
    ];
    let list = stdout(pgkeep(&env).arg("list"));
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[1].contains("  ?  ") && lines[1].ends_with("oldsvc-sbi_2026-01-02_02-00-00"));
    assert!(lines[2].contains("  sbi  "), "{list}");
    assert_eq!(lines[3], "");
    assert_eq!(
        lines[4],
        "database ? of oldsvc-sbi_2026-01-02_02-00-00: its name does not start with \
         `postgresql-` (the configured host), so it was made for another service name; its \
         database is unknown and prune never culls it"
    );
    assert_eq!(lines.len(), 5, "{list}");
    let json = stdout(pgkeep(&env).args(["list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v[0]["database_unknown"]
            .as_str()
            .unwrap()
            .contains("another service name"),
        "{json}"
    );
    assert!(v[1].get("database_unknown").is_none(), "{json}");
}

/// The whole stderr of a failed command at the default verbosity: its one error line.
fn only_error_line(c: &mut Command, code: i32) -> String {
    let out = c.assert().code(code).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("pgkeep: error: "),
        "{c:?} printed\n{stderr}"
    );
    stderr
}

#[test]
fn a_failed_one_shot_command_prints_only_its_error_line() {
    let dir = tempfile::tempdir().unwrap();
    old_pod_dir(dir.path());
    // No server listens on this socket directory.
    let nothing = tempfile::tempdir().unwrap();
    let env = [
        ("TZ", "UTC"),
        ("DATABASE_SERVICE_NAME", nothing.path().to_str().unwrap()),
        ("POSTGRESQL_DATABASE", "sbi"),
        ("POSTGRESQL_USER", "app"),
        ("POSTGRESQL_PASSWORD", "secret"),
        ("BACKUP_DIR", dir.path().to_str().unwrap()),
    ];
    let file = dir
        .path()
        .join("2026-01-02/postgresql-sbi_2026-01-02_01-00-00.sql.gz");
    only_error_line(pgkeep(&env).arg("backup"), 3);
    only_error_line(
        pgkeep(&env).args(["restore", "--yes", "--file"]).arg(&file),
        7,
    );
    only_error_line(
        pgkeep(&env).args([
            "verify",
            "2026-01-02/postgresql-sbi_2026-01-02_01-00-00.sql.gz",
        ]),
        9,
    );
    only_error_line(pgkeep(&env).arg("check"), 8);
    only_error_line(pgkeep(&env).args(["cleanup", "--yes"]), 3);
    only_error_line(
        pgkeep(&env).args(["prune", "--apply", "--keep-days", "0", "--keep-last", "0"]),
        2,
    );
}

/// The line of `text` that starts with `prefix` (after indentation), without the prefix.
fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in\n{text}"))
        .trim()
}

fn sh(line: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", line])
        .output()
        .unwrap()
}

#[test]
fn demo_keep_says_how_to_connect_and_how_to_stop() {
    let out = stdout(pgkeep(&[]).args(["demo", "--keep"]));
    let dir = line_after(&out, "Kept: cluster and backups under ");
    let connect = line_after(&out, "connect: ");
    let stop = line_after(&out, "stop: ");
    assert!(connect.contains(&format!(" -h {dir} -p ")), "{out}");
    let rows = sh(&format!(
        "{connect} -X -A -t -c 'SELECT count(*) FROM routes'"
    ));
    assert!(
        rows.status.success() && !String::from_utf8_lossy(&rows.stdout).trim().is_empty(),
        "{connect}: {}",
        String::from_utf8_lossy(&rows.stderr)
    );
    let stopped = sh(stop);
    assert!(
        stopped.status.success(),
        "{stop}: {}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(!sh(&format!("{connect} -X -c 'SELECT 1'")).status.success());
    assert_eq!(
        line_after(&out, "then remove the directory: "),
        format!("rm -rf {dir}")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The block of `text` under the line `$ CMD`, up to the next blank line.
fn block_under<'a>(text: &'a str, cmd: &str) -> Vec<&'a str> {
    text.split(&format!("\n$ {cmd}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no `$ {cmd}` in\n{text}"))
        .lines()
        .take_while(|l| !l.is_empty())
        .collect()
}

/// A summary with what differs between two backups of the same data made apart: the file's
/// path (its time), the sha256 (pg_dump's per-run restrict key) and the digits of the sizes and
/// the duration. The tables and their rows stay as they are.
fn comparable(summary: &[&str]) -> Vec<String> {
    summary
        .iter()
        .enumerate()
        .map(|(i, l)| match i {
            0 => l.split(" to /").next().unwrap().to_string(),
            1 => {
                let (facts, _sha) = l.rsplit_once(' ').unwrap();
                facts.replace(|c: char| c.is_ascii_digit(), "#")
            }
            _ => l.to_string(),
        })
        .collect()
}

#[test]
fn the_demo_shows_what_pgkeep_backup_prints_on_a_terminal() {
    let ran = pgkeep(&[])
        .args(["demo", "--keep"])
        .assert()
        .success()
        .get_output()
        .clone();
    let out = String::from_utf8(ran.stdout).unwrap();
    let dir = line_after(&out, "Kept: cluster and backups under ").to_string();
    let connect = line_after(&out, "connect: ").to_string();
    let stop = line_after(&out, "stop: ").to_string();
    let demo = block_under(&out, "pgkeep backup");
    assert!(
        demo[0].starts_with("backed up database \"sbi\" to /"),
        "{out}"
    );
    // No log line in the story: the demo writes nothing on stderr.
    let err = String::from_utf8(ran.stderr).unwrap();
    assert!(err.is_empty(), "{err}");

    // The real command, on a terminal, against the server the demo kept (the data is back).
    let port = connect
        .split(" -p ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("pgkeep"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("DATABASE_SERVICE_NAME", &dir)
        .env("PGPORT", &port)
        .env("POSTGRESQL_USER", "postgres")
        .env("POSTGRESQL_DATABASE", "sbi")
        .env("BACKUP_DIR", format!("{dir}/backups"))
        .arg("backup");
    let screen = common::pty::run(cmd);
    let stopped = sh(&stop);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(screen.code, Some(0), "{}", screen.text);
    assert!(stopped.status.success(), "{stop}");
    let real: Vec<&str> = screen.text.lines().collect();
    assert_eq!(
        comparable(&demo),
        comparable(&real),
        "demo:\n{out}\nreal:\n{}",
        screen.text
    );
    assert!(real.len() >= 7, "{}", screen.text);
}
