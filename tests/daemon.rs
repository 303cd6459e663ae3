//! `pgkeep run` end to end: the real binary on 127.0.0.1:0 against the real PostgreSQL. Catch-up
//! at start, HTTP trigger, 409 on a concurrent trigger (in-process and across processes through
//! the lock), metrics, the read-only API without a token, and SIGTERM both within and past the
//! grace period. pg_dump is wrapped by a script that waits while a "hold" file exists
//! (`common::daemon`), so a backup stays running exactly as long as a test needs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, TOKEN, held_pg_dump};
use common::*;

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|v| v.trim().parse().ok())
}

fn partials(db: &TestDb) -> Vec<String> {
    db.files()
        .into_iter()
        .filter(|f| f.ends_with(".partial"))
        .collect()
}

fn good_backups(db: &TestDb) -> Vec<String> {
    db.files()
        .into_iter()
        .filter(|f| f.ends_with(".manifest.json"))
        .collect()
}

#[test]
fn catch_up_trigger_conflict_metrics_and_clean_stop() {
    let db = TestDb::create(SAMPLE);
    let tools = tempfile::tempdir().unwrap();
    let hold = tools.path().join("hold");
    let pg_dump = held_pg_dump(tools.path(), &hold);
    // Twelve daily files of the old pod: after the first good backup, the two that are more than
    // 10 days older than it are culled.
    let now = jiff::Timestamp::now();
    for i in 0..12 {
        let t = now - jiff::SignedDuration::from_hours(24 * i + 1);
        let (day, stem) = pgkeep::catalog::backup_stem("local", &db.name, t);
        std::fs::create_dir_all(db.backup_dir.join(&day)).unwrap();
        std::fs::write(
            db.backup_dir.join(format!("{day}/{stem}.sql.gz")),
            b"\x1f\x8b",
        )
        .unwrap();
    }
    let legacy = |db: &TestDb| {
        db.files()
            .iter()
            .filter(|f| {
                f.ends_with(".sql.gz") && !db.files().contains(&format!("{f}.manifest.json"))
            })
            .count()
    };
    assert_eq!(legacy(&db), 12);
    let mut d = Daemon::start(
        &db,
        &[
            ("PGKEEP_PG_DUMP", pg_dump.to_str().unwrap()),
            ("PGKEEP_API_TOKEN", TOKEN),
            ("PGKEEP_TIMEZONE", "Europe/Berlin"),
        ],
        // The newest old-pod file is an hour old: the run due 30 minutes after it was missed,
        // so it is caught up at start; the next is 30 minutes away, after the test.
        &["--backup-period", "30m"],
    );
    let start = d.wait_log(
        |l| l["message"] == "pgkeep daemon starting",
        Duration::from_secs(5),
    );
    assert_eq!(start["timezone"], "Europe/Berlin");
    assert!(start["schedule"].as_str().unwrap().contains("every 30m"));
    assert_eq!(start["policy"], "keep_days=10 keep_last=3");
    let catch_up = d.wait_log(
        |l| l["message"] == "catching up: backing up now",
        Duration::from_secs(10),
    );
    assert!(
        catch_up["reason"].as_str().unwrap().contains("missed"),
        "{catch_up}"
    );
    d.wait_log(
        |l| l["message"] == "backup complete",
        Duration::from_secs(60),
    );
    let culling = d.wait_log(|l| l["message"] == "culling done", Duration::from_secs(30));
    assert_eq!(culling["culled"], 2, "{culling}");
    assert_eq!(legacy(&db), 10);
    assert_eq!(d.count_log("culled backup"), 2);
    d.wait_log(
        |l| l["message"] == "next backup scheduled",
        Duration::from_secs(10),
    );
    assert_eq!(good_backups(&db).len(), 1);

    assert_eq!(d.http("GET", "/healthz", None).0, 200);
    let (status, body) = d.http("GET", "/readyz", None);
    assert_eq!(status, 200, "{body}");

    // Wrong or missing token: 401, nothing started.
    assert_eq!(d.http("POST", "/api/v1/backups", None).0, 401);
    assert_eq!(d.http("POST", "/api/v1/backups", Some("t0ken")).0, 401);
    assert_eq!(d.http("GET", "/api/v1/backups", None).0, 401);

    // A held backup: the trigger answers at once with its id.
    std::fs::write(&hold, b"").unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // a new second: a new backup id
    // Late in a second, so that a start time rounded to the second would name the next one.
    while !(600..800).contains(&jiff::Timestamp::now().subsec_millisecond()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = d.http("POST", "/api/v1/backups", Some(TOKEN));
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "running");

    // A concurrent trigger gets 409 naming the running backup.
    let (status, body) = d.http("POST", "/api/v1/backups", Some(TOKEN));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&id), "{body}");
    // So does `pgkeep backup` beside the daemon, through the lock (exit 5).
    db.pgkeep()
        .arg("backup")
        .env("PGKEEP_PG_DUMP", &pg_dump)
        .assert()
        .code(5)
        .stderr(predicates::str::contains(
            "another pgkeep run is in progress",
        ));
    let list = d.json("/api/v1/backups");
    assert_eq!(list["running"]["id"], id.as_str());
    // The 409 names the start time the id and started_at name: the same second.
    let started: jiff::Timestamp = list["running"]["started_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let second = started
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let stamp = started
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d_%H-%M-%S")
        .to_string();
    assert!(id.ends_with(&stamp), "{id} vs started_at {started}");
    assert!(
        body.contains(&format!("started {second})")),
        "409 {body} vs started_at {started}"
    );
    let m = d.http("GET", "/metrics", None).1;
    let running = format!("pgkeep_backup_running{{database=\"{}\"}}", db.name);
    assert_eq!(metric(&m, &running), Some(1.0), "{m}");

    std::fs::remove_file(&hold).unwrap();
    let done = d.wait_attempt(&id);
    assert_eq!(done["attempt"]["status"], "succeeded", "{done}");
    assert_eq!(done["backup"]["status"], "good", "{done}");
    assert_eq!(good_backups(&db).len(), 2);

    let m = d.http("GET", "/metrics", None).1;
    let ok = format!(
        "pgkeep_backups_total{{database=\"{}\",result=\"success\"}}",
        db.name
    );
    assert_eq!(metric(&m, &ok), Some(2.0), "{m}");
    let failed = format!(
        "pgkeep_backups_total{{database=\"{}\",result=\"failure\"}}",
        db.name
    );
    assert_eq!(metric(&m, &failed), Some(0.0), "{m}");
    let culled = format!("pgkeep_culled_backups_total{{database=\"{}\"}}", db.name);
    assert_eq!(metric(&m, &culled), Some(2.0), "{m}");
    let last = format!(
        "pgkeep_last_success_timestamp_seconds{{database=\"{}\"}}",
        db.name
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let t = metric(&m, &last).unwrap();
    assert!((now - t).abs() < 120.0, "{t} vs {now}");
    let next = format!(
        "pgkeep_next_run_timestamp_seconds{{database=\"{}\"}}",
        db.name
    );
    assert!(metric(&m, &next).unwrap() > now);
    for name in [
        "pgkeep_last_attempt_timestamp_seconds",
        "pgkeep_last_attempt_success",
        "pgkeep_last_duration_seconds",
        "pgkeep_last_stored_bytes",
        "pgkeep_last_raw_bytes",
        "pgkeep_culled_backups_total",
    ] {
        assert!(
            metric(&m, &format!("{name}{{database=\"{}\"}}", db.name)).is_some(),
            "{name} missing:\n{m}"
        );
    }

    // Verification results join the metrics, from the records beside the backups.
    db.pgkeep().arg("verify").assert().success();
    let m = d.http("GET", "/metrics", None).1;
    let verified = format!("pgkeep_verify_last_ok{{database=\"{}\"}}", db.name);
    assert_eq!(metric(&m, &verified), Some(1.0), "{m}");
    let at = format!(
        "pgkeep_verify_last_ok_timestamp_seconds{{database=\"{}\"}}",
        db.name
    );
    assert!((now - metric(&m, &at).unwrap()).abs() < 120.0, "{m}");

    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert!(
        !d.log_text().contains(TOKEN),
        "the token must never be logged"
    );
}

#[test]
fn sigterm_past_the_grace_period_aborts_cleanly_and_the_api_is_read_only_without_token() {
    let db = TestDb::create(SAMPLE);
    let tools = tempfile::tempdir().unwrap();
    let hold = tools.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let pg_dump = held_pg_dump(tools.path(), &hold);
    let mut d = Daemon::start(
        &db,
        &[
            ("PGKEEP_PG_DUMP", pg_dump.to_str().unwrap()),
            ("PGKEEP_SHUTDOWN_GRACE", "1s"),
        ],
        &[],
    );
    // The catch-up backup is running and held.
    d.wait_log(
        |l| l["message"] == "backup started",
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while partials(&db).is_empty() {
        assert!(Instant::now() < deadline, "no partial file appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Without a token the API is read-only.
    let (status, body) = d.http("POST", "/api/v1/backups", None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("PGKEEP_API_TOKEN"), "{body}");
    let (status, body) = d.http("GET", "/api/v1/backups", None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["running"]["trigger"], "catch_up");

    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert_eq!(
        d.count_log("grace period over: aborting the running backup"),
        1
    );
    assert_eq!(
        d.count_log("backup aborted at shutdown; nothing was kept"),
        1
    );
    assert!(partials(&db).is_empty(), "{:?}", db.files());
    assert!(good_backups(&db).is_empty(), "{:?}", db.files());
    // No orphan pg_dump: the held script is gone.
    let out = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(pg_dump.to_str().unwrap())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "pg_dump still running"
    );
    // The lock is free again.
    db.pgkeep().arg("backup").assert().success();
}

#[test]
fn sigterm_lets_a_running_backup_finish_within_the_grace_period() {
    let db = TestDb::create(SAMPLE);
    let tools = tempfile::tempdir().unwrap();
    let hold = tools.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let pg_dump = held_pg_dump(tools.path(), &hold);
    let mut d = Daemon::start(
        &db,
        &[
            ("PGKEEP_PG_DUMP", pg_dump.to_str().unwrap()),
            ("PGKEEP_SHUTDOWN_GRACE", "5m"),
        ],
        &[],
    );
    d.wait_log(
        |l| l["message"] == "backup started",
        Duration::from_secs(10),
    );
    d.signal(libc::SIGTERM);
    d.wait_log(
        |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("letting the running backup finish"))
        },
        Duration::from_secs(10),
    );
    // New backups are refused while stopping (the server is down or answers 503).
    std::fs::remove_file(&hold).unwrap();
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert_eq!(d.count_log("backup complete"), 1, "{}", d.log_text());
    assert_eq!(good_backups(&db).len(), 1);
    assert!(partials(&db).is_empty());
}

#[test]
fn twenty_failed_runs_delete_no_good_backup() {
    let db = TestDb::create(SAMPLE);
    // Three good backups, then make them look 30, 29 and 28 days old, plus one 45 days old
    // that the policy (10 days before the newest good) does cull.
    for _ in 0..4 {
        db.pgkeep().arg("backup").assert().success();
        std::thread::sleep(Duration::from_millis(1100));
    }
    let mut manifests = good_backups(&db);
    manifests.sort();
    manifests.reverse();
    let now = jiff::Timestamp::now();
    for (m, days) in manifests.iter().zip([28, 29, 30, 45]) {
        let p = db.backup_dir.join(m);
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let t = now - jiff::SignedDuration::from_hours(24 * days);
        v["started_at"] = serde_json::json!(t.to_string());
        v["finished_at"] = serde_json::json!(t.to_string());
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    let tools = tempfile::tempdir().unwrap();
    let real = cluster().bindir.join("pg_dump");
    let failing = script(
        tools.path(),
        "pg_dump",
        &format!(
            "if [ \"$1\" = \"--version\" ]; then exec '{}' --version; fi\n\
             echo 'pg_dump: error: simulated failure' >&2; exit 1",
            real.display()
        ),
    );
    let mut d = Daemon::start(
        &db,
        &[
            ("PGKEEP_PG_DUMP", failing.to_str().unwrap()),
            ("BACKUP_PERIOD", "1"),
        ],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.count_log("backup failed") < 20 {
        assert!(
            Instant::now() < deadline,
            "only {} failures",
            d.count_log("backup failed")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = d.http("GET", "/metrics", None).1;
    let failed = format!(
        "pgkeep_backups_total{{database=\"{}\",result=\"failure\"}}",
        db.name
    );
    assert!(metric(&m, &failed).unwrap() >= 20.0, "{m}");
    let ok = format!("pgkeep_last_attempt_success{{database=\"{}\"}}", db.name);
    assert_eq!(metric(&m, &ok), Some(0.0));
    let culled = format!("pgkeep_culled_backups_total{{database=\"{}\"}}", db.name);
    assert_eq!(metric(&m, &culled), Some(0.0));
    assert!(d.log_text().contains("simulated failure"));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit().code(), Some(0));
    assert_eq!(good_backups(&db).len(), 4, "failed runs never cull");

    // Culling by hand after the failure streak: measured from the newest good backup, only
    // the 45-day-old one goes.
    let out = db.pgkeep().args(["prune", "--apply"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("deleted 1 of 4 backups"), "{text}");
    assert_eq!(good_backups(&db).len(), 3);
}

#[test]
fn readyz_reports_an_unreachable_database_while_healthz_stays_up() {
    let db = TestDb::create("");
    let mut d = Daemon::start(&db, &[("PGPORT", "1")], &["--schedule", "0 1 1 1 *"]);
    // The catch-up run fails (nothing listens there) and is logged; the process stays up.
    d.wait_log(|l| l["message"] == "backup failed", Duration::from_secs(30));
    assert_eq!(d.http("GET", "/healthz", None).0, 200);
    let (status, body) = d.http("GET", "/readyz", None);
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["checks"]["storage"]["ok"], true, "{v}");
    assert_eq!(v["checks"]["database"]["ok"], false, "{v}");
    assert!(
        v["checks"]["database"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach PostgreSQL"),
        "{v}"
    );
    assert!(!body.contains(&db.password));
    let m = d.http("GET", "/metrics", None).1;
    let ok = format!("pgkeep_last_attempt_success{{database=\"{}\"}}", db.name);
    assert_eq!(metric(&m, &ok), Some(0.0), "{m}");
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit().code(), Some(0));
}

/// Requests a recording server received: `(path, body)`.
type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A loopback HTTP server that records `(path, body)` of every request and answers 200.
fn recording_server() -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|_| serde_json::json!({ "text": String::from_utf8_lossy(&body) }));
            sink.lock().unwrap().push((path, body));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (base, seen)
}

fn wait_for_request(
    seen: &Mutex<Vec<(String, serde_json::Value)>>,
    pred: impl Fn(&str, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((_, b)) = seen.lock().unwrap().iter().find(|(p, b)| pred(p, b)) {
            return b.clone();
        }
        assert!(
            Instant::now() < deadline,
            "request not received: {:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_notifies_backups_culling_and_failures_and_pings_the_dead_man_switch() {
    let db = TestDb::create(SAMPLE);
    let (base, seen) = recording_server();
    let mut d = Daemon::start(
        &db,
        &[
            ("PGKEEP_NOTIFY_ON", "always"),
            ("PGKEEP_NOTIFY_WEBHOOK_URL", &format!("{base}/hook")),
            ("PGKEEP_NOTIFY_DEADMAN_URL", &format!("{base}/ping")),
        ],
        &["--backup-period", "1h"],
    );
    d.wait_log(|l| l["message"] == "culling done", Duration::from_secs(60));
    let b = wait_for_request(&seen, |p, b| p == "/hook" && b["event"] == "backup.success");
    assert_eq!(b["database"], db.name.as_str());
    let c = wait_for_request(&seen, |p, b| p == "/hook" && b["event"] == "cull.success");
    assert!(c["summary"].as_str().unwrap().contains("kept 1"), "{c}");
    let ping = wait_for_request(&seen, |p, _| p == "/ping");
    assert!(
        ping["text"].as_str().unwrap().contains("succeeded"),
        "{ping}"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit().code(), Some(0));

    // A failing backup posts a failure and does not ping the switch.
    let tools = tempfile::tempdir().unwrap();
    let real = cluster().bindir.join("pg_dump");
    let broken = script(
        tools.path(),
        "pg_dump",
        &format!(
            "if [ \"$1\" = \"--version\" ]; then exec '{}' --version; fi\necho 'pg_dump: error: boom' >&2\nexit 1",
            real.display()
        ),
    );
    let (base, seen) = recording_server();
    let mut d = Daemon::start(
        &db,
        &[
            ("PGKEEP_PG_DUMP", broken.to_str().unwrap()),
            ("PGKEEP_NOTIFY_WEBHOOK_URL", &format!("{base}/hook")),
            ("PGKEEP_NOTIFY_DEADMAN_URL", &format!("{base}/ping")),
        ],
        &["--backup-period", "1s"],
    );
    let f = wait_for_request(&seen, |p, b| p == "/hook" && b["event"] == "backup.failure");
    assert!(f["summary"].as_str().unwrap().contains("boom"), "{f}");
    assert!(!seen.lock().unwrap().iter().any(|(p, _)| p == "/ping"));
    d.signal(libc::SIGTERM);
    d.wait_exit();
}

#[test]
fn scheduled_verification_verifies_the_newest_backup_and_reports_a_stale_one() {
    let db = TestDb::create(SAMPLE);
    let (base, seen) = recording_server();
    let hook = format!("{base}/hook");
    let env = [
        ("PGKEEP_VERIFY_SCHEDULE", "* * * * * *"),
        ("PGKEEP_NOTIFY_ON", "always"),
        ("PGKEEP_NOTIFY_WEBHOOK_URL", hook.as_str()),
    ];
    let mut d = Daemon::start(&db, &env, &["--backup-period", "1h"]);
    let start = d.wait_log(
        |l| l["message"] == "pgkeep daemon starting",
        Duration::from_secs(5),
    );
    let sched = start["verify_schedule"].as_str().unwrap_or_default();
    assert!(sched.contains("* * * * * *"), "{start}");
    // The catch-up backup is made, then a tick verifies it.
    let passed = d.wait_log(
        |l| l["message"] == "scheduled verification passed",
        Duration::from_secs(60),
    );
    let file = passed["file"].as_str().unwrap().to_string();
    assert_eq!(good_backups(&db), vec![format!("{file}.manifest.json")]);
    assert!(db.backup_dir.join(format!("{file}.verify.json")).exists());
    let (_, text) = d.http("GET", "/metrics", None);
    let label = format!("{{database=\"{}\"}}", db.name);
    assert_eq!(
        metric(&text, &format!("pgkeep_verify_last_ok{label}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, &format!("pgkeep_verify_newest_too_old{label}")),
        Some(0.0),
        "{text}"
    );
    let ok = metric(
        &text,
        &format!(
            "pgkeep_scheduled_verifications_total{{database=\"{}\",result=\"ok\"}}",
            db.name
        ),
    )
    .unwrap();
    assert!(ok >= 1.0, "{text}");
    assert!(
        metric(
            &text,
            &format!("pgkeep_next_verify_timestamp_seconds{label}")
        )
        .is_some(),
        "{text}"
    );
    let v = wait_for_request(&seen, |p, b| p == "/hook" && b["event"] == "verify.success");
    assert_eq!(v["database"], db.name.as_str());
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit().code(), Some(0));

    // The same backup, but the allowed age (check_max_age) is now shorter than its age: every
    // tick reports it as too old instead of verifying it again.
    std::thread::sleep(Duration::from_secs(3));
    let record = db.backup_dir.join(format!("{file}.verify.json"));
    let before = std::fs::read(&record).unwrap();
    let (base, seen) = recording_server();
    let hook = format!("{base}/hook");
    let env = [
        ("PGKEEP_VERIFY_SCHEDULE", "* * * * * *"),
        ("PGKEEP_CHECK_MAX_AGE", "2s"),
        ("PGKEEP_NOTIFY_WEBHOOK_URL", hook.as_str()),
    ];
    let mut d = Daemon::start(&db, &env, &["--backup-period", "1h"]);
    let line = d.wait_log(
        |l| l["message"] == "scheduled verification: the newest backup is too old",
        Duration::from_secs(30),
    );
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("backups are not being made"),
        "{line}"
    );
    let f = wait_for_request(&seen, |p, b| p == "/hook" && b["event"] == "verify.failure");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("backups are not being made"),
        "{f}"
    );
    assert_eq!(f["details"]["failure"], "too-old", "{f}");
    let (_, text) = d.http("GET", "/metrics", None);
    assert_eq!(
        metric(&text, &format!("pgkeep_verify_newest_too_old{label}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(d.count_log("scheduled verification passed"), 0);
    // No new backup was made, and the old one was not verified again.
    assert_eq!(good_backups(&db).len(), 1);
    assert_eq!(std::fs::read(&record).unwrap(), before);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit().code(), Some(0));
}

/// The catch-up backup at start fails because the database server is down: it is retried after
/// `retry_delay`, then after twice that, each retry logged and counted; once the server is back
/// the retry makes the backup, and the next run is the scheduled one again.
#[test]
fn a_failed_catch_up_backup_is_retried_with_backoff() {
    let server = common::majors::private_server();
    let db = server.0.create_db(SAMPLE);
    server.stop_server();
    let mut d = Daemon::start(&db, &[("PGKEEP_RETRY_DELAY", "1s")], &[]);
    let retry = |n: u64| {
        move |l: &serde_json::Value| l["message"] == "backup failed: retrying" && l["failures"] == n
    };
    let first = d.wait_log(retry(1), Duration::from_secs(60));
    assert_eq!(first["delay"], "1s", "{first}");
    let second = d.wait_log(retry(2), Duration::from_secs(60));
    assert_eq!(second["delay"], "2s", "doubled: {second}");
    assert_eq!(d.count_log("backup failed"), 2, "each attempt is logged");
    server.start_server();
    d.wait_log(
        |l| l["message"] == "backup complete",
        Duration::from_secs(90),
    );
    d.wait_log(
        |l| l["message"] == "next backup scheduled",
        Duration::from_secs(30),
    );
    assert_eq!(good_backups(&db).len(), 1);
    let m = d.http("GET", "/metrics", None).1;
    let retries = metric(
        &m,
        &format!("pgkeep_backup_retries_total{{database=\"{}\"}}", db.name),
    )
    .unwrap();
    let failures = metric(
        &m,
        &format!(
            "pgkeep_backups_total{{database=\"{}\",result=\"failure\"}}",
            db.name
        ),
    )
    .unwrap();
    let successes = metric(
        &m,
        &format!(
            "pgkeep_backups_total{{database=\"{}\",result=\"success\"}}",
            db.name
        ),
    )
    .unwrap();
    assert_eq!(successes, 1.0, "{m}");
    assert!(failures >= 2.0, "{m}");
    assert_eq!(retries, failures, "every failure was retried: {m}");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit().success());
}
