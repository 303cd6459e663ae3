//! The configuration as a user meets it through the real binary: `config keys` and `config show`
//! made from the one key table (every key, aligned, ranges, durations shown as `26h`), the one
//! duration grammar, the URI shown redacted with its source, and the one-line errors for an
//! unknown key, a bad cron expression and an API token no client could send.

use std::path::Path;

use assert_cmd::Command;

/// The binary with a clean environment: nothing from the machine running the tests leaks in.
fn pgkeep(env: &[(&str, &str)]) -> Command {
    let mut c = Command::cargo_bin("pgkeep").unwrap();
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TZ", "UTC")
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

/// The one line on stderr of a command that exits 2.
fn usage_error(c: &mut Command) -> String {
    let out = c.assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    err.trim_end().to_string()
}

/// The cells of a line split at runs of two or more spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The byte offsets at which each column after the first starts.
fn column_starts(line: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut prev_spaces = 0;
    for (i, ch) in line.char_indices() {
        if ch == ' ' {
            prev_spaces += 1;
        } else {
            if prev_spaces >= 2 {
                starts.push(i);
            }
            prev_spaces = 0;
        }
    }
    starts
}

const MAINTENANCE_KEYS: [&str; 4] = [
    "maintenance_listen",
    "maintenance_title",
    "maintenance_message",
    "maintenance_retry_after",
];

#[test]
fn config_keys_lists_every_key_aligned_with_default_and_range() {
    let text = stdout(pgkeep(&[]).args(["config", "keys"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        cells(lines[0]),
        ["KEY", "ENVIRONMENT", "DEFAULT", "RANGE", "DESCRIPTION"]
    );
    let header = column_starts(lines[0]);
    let row = |key: &str| -> Vec<&str> {
        let line = lines
            .iter()
            .find(|l| l.split(' ').next() == Some(key))
            .unwrap_or_else(|| panic!("{key} missing from config keys:\n{text}"));
        // Every column starts where its header does.
        for start in &header[..3] {
            assert_eq!(&line[start - 2..*start], "  ", "{key} not aligned: {line}");
            assert_ne!(&line[*start..=*start], " ", "{key} not aligned: {line}");
        }
        cells(line)
    };
    assert_eq!(
        row("maintenance_retry_after"),
        [
            "maintenance_retry_after",
            "PGKEEP_MAINTENANCE_RETRY_AFTER",
            "5m",
            "duration, 0s-24h",
            "how long clients of the maintenance page are asked to wait (Retry-After)"
        ]
    );
    for k in MAINTENANCE_KEYS {
        assert!(row(k)[1].starts_with("PGKEEP_MAINTENANCE_"), "{k}");
    }
    assert_eq!(
        row("level")[3],
        "gzip 1-12 (custom 0-9), zstd 1-19 (custom 1-22), none 0"
    );
    assert_eq!(row("port")[2..4], ["5432", "1-65535"]);
    assert_eq!(row("check_max_age")[2..4], ["26h", "duration, 1s or more"]);
    assert_eq!(
        row("check_verify_max_age")[2..4],
        ["8d", "duration, 0 (off) or more"]
    );
    assert_eq!(
        row("partial_max_age")[2..4],
        ["24h", "duration, 1m or more"]
    );
    assert_eq!(row("hook_timeout")[2], "5m");
    assert_eq!(row("notify_timeout")[2], "10s");
    assert_eq!(row("schedule")[3], "cron, 5 or 6 fields, or @daily ..");
    assert_eq!(row("uri")[1..3], ["PGKEEP_URI, DATABASE_URL", "(not set)"]);
    // 59 keys of the backup, the database set, daemon (parallel_databases and
    // database_schedules among them), restore (restore_jobs among them),
    // verification, manifest signing and notifications, 4 of the page, 16 of S3 storage and
    // lock_dir, 3 of encryption at rest (age_recipients, age_identity_file, age_identity), 3 of
    // the second location (copy_to, copy_keep_days, copy_keep_last).
    assert_eq!(lines.len(), 1 + 63 + 17 + 3 + 3, "{text}");
    assert_eq!(row("retry_delay")[1..3], ["PGKEEP_RETRY_DELAY", "5m"]);
}

#[test]
fn config_show_lists_every_key_with_durations_in_one_form_and_the_uri_redacted() {
    let text = stdout(
        pgkeep(&[
            ("PGKEEP_URI", "postgresql://app:hunter2@db.example:5433/sbi"),
            ("PGKEEP_CHECK_MAX_AGE", "93600"),
            ("PGKEEP_SHUTDOWN_GRACE", "2 days"),
            ("PGKEEP_NOTIFY_TIMEOUT", "30"),
            ("PGKEEP_MAINTENANCE_RETRY_AFTER", "120"),
            ("PGKEEP_MAINTENANCE_TITLE", "Back soon"),
        ])
        .args(["config", "show"]),
    );
    assert!(!text.contains("hunter2"), "{text}");
    let keys = stdout(pgkeep(&[]).args(["config", "keys"]));
    let names: Vec<&str> = keys.lines().skip(1).map(|l| cells(l)[0]).collect();
    let shown: Vec<&str> = text.lines().map(|l| cells(l)[0]).collect();
    assert_eq!(shown, names, "config show lists every key, in table order");
    let starts = column_starts(text.lines().next().unwrap());
    let row = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(key))
            .unwrap();
        assert_eq!(column_starts(line), starts, "{key} not aligned:\n{text}");
        cells(line).into_iter().map(String::from).collect()
    };
    assert_eq!(
        row("uri"),
        [
            "uri",
            "postgresql://db.example:5433/<redacted>",
            "(env PGKEEP_URI)"
        ]
    );
    assert_eq!(
        row("password"),
        ["password", "<redacted>", "(uri (env PGKEEP_URI))"]
    );
    assert_eq!(row("host")[1..], ["db.example", "(uri (env PGKEEP_URI))"]);
    assert_eq!(row("check_max_age")[1], "26h");
    assert_eq!(row("shutdown_grace")[1], "2d");
    assert_eq!(row("notify_timeout")[1], "30s");
    assert_eq!(row("check_verify_max_age")[1..], ["8d", "(default)"]);
    assert_eq!(row("partial_max_age")[1], "24h");
    assert_eq!(
        row("maintenance_retry_after")[1..],
        ["2m", "(env PGKEEP_MAINTENANCE_RETRY_AFTER)"]
    );
    assert_eq!(row("maintenance_title")[1], "Back soon");
    assert_eq!(
        row("maintenance_listen")[1..],
        ["0.0.0.0:8081", "(default)"]
    );
}

#[test]
fn every_duration_key_takes_every_form_accepted_before() {
    // shutdown_grace took "2 days", check_max_age "1d12h" but not "2 days", notify_timeout
    // only bare seconds: now each takes all of them.
    let keys = [
        ("PGKEEP_CHECK_MAX_AGE", "check_max_age"),
        ("PGKEEP_CHECK_VERIFY_MAX_AGE", "check_verify_max_age"),
        ("PGKEEP_SHUTDOWN_GRACE", "shutdown_grace"),
        ("PGKEEP_PARTIAL_MAX_AGE", "partial_max_age"),
        ("PGKEEP_BACKUP_PERIOD", "backup_period"),
        ("PGKEEP_NOTIFY_TIMEOUT", "notify_timeout"),
        ("PGKEEP_HOOK_TIMEOUT", "hook_timeout"),
        ("PGKEEP_CONNECT_TIMEOUT", "connect_timeout"),
    ];
    for (var, key) in keys {
        for (value, shown) in [
            ("2 days", "2d"),
            ("1d12h", "36h"),
            ("7200", "2h"),
            ("90m", "90m"),
            ("PT90S", "90s"),
        ] {
            if key == "partial_max_age" && shown == "90s" {
                continue;
            }
            let text = stdout(pgkeep(&[(var, value)]).args(["config", "show"]));
            let line = text
                .lines()
                .find(|l| l.split(' ').next() == Some(key))
                .unwrap();
            assert!(cells(line)[1].contains(shown), "{key} = {value}: {line}");
        }
    }
    let e = usage_error(pgkeep(&[("PGKEEP_NOTIFY_TIMEOUT", "soon")]).args(["config", "show"]));
    assert_eq!(
        e,
        "pgkeep: error: invalid value for notify_timeout (from env PGKEEP_NOTIFY_TIMEOUT): \
         `soon` is not a duration (e.g. 90s, 15m, 26h, 2 days, or seconds)"
    );
    let e = usage_error(pgkeep(&[("PGKEEP_PARTIAL_MAX_AGE", "30s")]).args(["config", "show"]));
    assert!(e.ends_with("`30s` is less than 1m"), "{e}");
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let f = dir.join("pgkeep.toml");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn an_unknown_key_is_one_line_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_config(dir.path(), "compresion = \"zstd\"\n");
    let e = usage_error(pgkeep(&[]).arg("--config").arg(&f).arg("list"));
    assert_eq!(
        e,
        format!(
            "pgkeep: error: config file {}: unknown key `compresion`; did you mean `compression`?",
            f.display()
        )
    );
    let f = write_config(dir.path(), "maintenance_retry = 5\n");
    let e = usage_error(pgkeep(&[]).arg("--config").arg(&f).args(["config", "show"]));
    assert!(
        e.ends_with("unknown key `maintenance_retry`; did you mean `maintenance_retry_after`?"),
        "{e}"
    );
    let f = write_config(dir.path(), "colour = \"blue\"\n");
    let e = usage_error(pgkeep(&[]).arg("--config").arg(&f).args(["config", "show"]));
    assert!(
        e.ends_with("unknown key `colour`; `pgkeep config keys` lists the keys"),
        "{e}"
    );
}

#[test]
fn a_bad_cron_expression_names_the_bad_field_in_pgkeeps_words() {
    let cases = [
        (
            "61 4 * * *",
            "`61 4 * * *`: the minute field `61` is not valid (0-59)",
        ),
        (
            "0 25 * * *",
            "`0 25 * * *`: the hour field `25` is not valid (0-23)",
        ),
        (
            "0 1 * * MOO",
            "`0 1 * * MOO`: the weekday field `MOO` is not valid (0-7 or SUN-SAT)",
        ),
        (
            "0 0 1 * * 2026 *",
            "`0 0 1 * * 2026 *` has 7 fields; a cron expression has 5 or 6 fields (minute hour \
             day month weekday, seconds first when 6)",
        ),
        (
            "0 1 *",
            "`0 1 *` has 3 fields; a cron expression has 5 or 6 fields (minute hour day month \
             weekday, seconds first when 6)",
        ),
    ];
    for (expr, message) in cases {
        let e = usage_error(pgkeep(&[("PGKEEP_SCHEDULE", expr)]).args(["config", "show"]));
        assert_eq!(
            e,
            format!(
                "pgkeep: error: invalid value for schedule (from env PGKEEP_SCHEDULE): {message}"
            )
        );
    }
    let e =
        usage_error(pgkeep(&[("PGKEEP_VERIFY_SCHEDULE", "*/5 * 32 * *")]).args(["config", "show"]));
    assert!(
        e.ends_with("the day-of-month field `32` is not valid (1-31)"),
        "{e}"
    );
    // 6 fields: seconds first.
    let text = stdout(pgkeep(&[("PGKEEP_SCHEDULE", "30 0 1 * * *")]).args(["config", "show"]));
    assert!(text.contains("cron `30 0 1 * * *`"), "{text}");
}

#[test]
fn a_non_ascii_api_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let e = usage_error(
        pgkeep(&[
            ("PGKEEP_API_TOKEN", "s3crét-tøken"),
            ("PGKEEP_BACKUP_DIR", dir.path().to_str().unwrap()),
        ])
        .args(["run", "--listen", "127.0.0.1:0"]),
    );
    assert_eq!(
        e,
        "pgkeep: error: invalid value for api_token (from env PGKEEP_API_TOKEN): the token \
         holds a character that is not ASCII; HTTP clients can only send printable ASCII, so no \
         request could ever authenticate"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
