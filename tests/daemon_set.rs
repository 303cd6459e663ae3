//! `pgkeep run` over the `databases` set, on a server of the test's own: a bounded number of
//! databases at a time (`parallel_databases`), one whose backup fails while the others get theirs
//! and their metrics labelled by database, the globals once per run, the API naming a database
//! (path, query or body; an unknown one refused with a 404, one created since the last run
//! found), `all` read again at every run (a database created is picked up, one dropped is
//! reported and its backups kept), and a database on a schedule of its own.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, TOKEN, http_body};
use common::server::Server;

const DATA: &str =
    "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50);";

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn metrics(d: &Daemon) -> String {
    let (status, text) = d.http("GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    text
}

/// Poll /metrics until `pred` holds; panics with the metrics and the log after `timeout`.
fn wait_metrics(d: &Daemon, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let m = metrics(d);
        if pred(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not reached:\n{m}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn successes(m: &str, db: &str) -> f64 {
    metric(
        m,
        &format!("pgkeep_backups_total{{database=\"{db}\",result=\"success\"}}"),
    )
    .unwrap_or(0.0)
}

fn running(m: &str, db: &str) -> f64 {
    metric(m, &format!("pgkeep_backup_running{{database=\"{db}\"}}")).unwrap_or(0.0)
}

fn post(d: &Daemon, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = http_body(d.addr, "POST", path, Some(TOKEN), body);
    (status, serde_json::from_str(&text).unwrap())
}

fn counts(pairs: &[(&str, usize)]) -> std::collections::BTreeMap<String, usize> {
    pairs.iter().map(|(d, n)| (d.to_string(), *n)).collect()
}

#[test]
fn the_set_is_backed_up_two_at_a_time_and_one_failing_database_never_stops_the_others() {
    let s = Server::start();
    for db in ["a1", "b2", "c3", "d4"] {
        s.sql("postgres", &format!("CREATE DATABASE {db}"));
        s.sql(db, DATA);
    }
    // The backup role may read everything but may not connect to b2.
    s.sql(
        "postgres",
        "CREATE ROLE bk LOGIN PASSWORD 'bk-secret' IN ROLE pg_read_all_data; \
         REVOKE CONNECT ON DATABASE b2 FROM PUBLIC",
    );
    // A pg_dump that waits while the hold file exists: the running backups stay running.
    let tools = tempfile::tempdir().unwrap();
    let hold = tools.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let pg_dump = common::daemon::held_pg_dump_of(s.cluster.bindir(), tools.path(), &hold);
    let cmd = s.command(&[
        ("PGKEEP_DATABASES", "all"),
        ("PGKEEP_EXCLUDE_DATABASES", "postgres"),
        ("PGKEEP_PARALLEL_DATABASES", "2"),
        ("POSTGRESQL_USER", "bk"),
        ("POSTGRESQL_PASSWORD", "bk-secret"),
        ("PGKEEP_PG_DUMP", pg_dump.to_str().unwrap()),
        ("PGKEEP_API_TOKEN", TOKEN),
        ("PGKEEP_RETRY_DELAY", "0"),
        // No backup yet: the start catches up; the next run is far away.
        ("PGKEEP_SCHEDULE", "0 3 1 1 *"),
    ]);
    let mut d = Daemon::spawn(cmd, &[]);
    let start = d.wait_log(
        |l| l["message"] == "pgkeep daemon starting",
        Duration::from_secs(5),
    );
    assert_eq!(start["databases"], "all");
    assert_eq!(start["parallel_databases"], 2);

    // a1 and b2 start; b2 fails at once and c3 takes its place; d4 waits for a free slot.
    let m = wait_metrics(&d, Duration::from_secs(30), |m| {
        running(m, "a1") == 1.0 && running(m, "c3") == 1.0
    });
    assert_eq!(
        metric(
            &m,
            "pgkeep_backups_total{database=\"b2\",result=\"failure\"}"
        ),
        Some(1.0),
        "{m}"
    );
    std::thread::sleep(Duration::from_millis(800));
    let m = metrics(&d);
    assert_eq!(running(&m, "d4"), 0.0, "more than two at a time:\n{m}");
    let list = d.json("/api/v1/backups");
    assert_eq!(list["running_all"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        list["databases"],
        serde_json::json!(["a1", "b2", "c3", "d4"])
    );

    std::fs::remove_file(&hold).unwrap();
    let m = wait_metrics(&d, Duration::from_secs(60), |m| {
        ["a1", "c3", "d4", "@globals"]
            .iter()
            .all(|db| successes(m, db) == 1.0)
    });
    for db in ["a1", "c3", "d4", "@globals"] {
        assert_eq!(
            metric(
                &m,
                &format!("pgkeep_last_attempt_success{{database=\"{db}\"}}")
            ),
            Some(1.0),
            "{db}:\n{m}"
        );
        assert!(
            metric(
                &m,
                &format!("pgkeep_last_success_timestamp_seconds{{database=\"{db}\"}}")
            )
            .is_some(),
            "{db}:\n{m}"
        );
    }
    assert_eq!(
        metric(&m, "pgkeep_last_attempt_success{database=\"b2\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(successes(&m, "b2"), 0.0);
    assert!(!m.contains("bk-secret"));
    d.wait_log(
        |l| {
            l["message"] == "backup failed"
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("database \"b2\""))
        },
        Duration::from_secs(5),
    );
    assert_eq!(
        s.backups(),
        counts(&[("", 1), ("a1", 1), ("c3", 1), ("d4", 1)])
    );

    // The API names the database in the path, the query or the body.
    let (status, v) = post(&d, "/api/v1/databases/a1/backups", "");
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["database"], "a1");
    let done = d.wait_attempt(v["id"].as_str().unwrap());
    assert_eq!(done["attempt"]["status"], "succeeded", "{done}");
    assert_eq!(done["attempt"]["database"], "a1");
    let (status, v) = post(&d, "/api/v1/backups", r#"{"database": "c3"}"#);
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["database"], "c3");
    d.wait_attempt(v["id"].as_str().unwrap());
    let mine = d.json("/api/v1/databases/a1/backups");
    let backups = mine["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{mine}");
    assert!(backups.iter().all(|b| b["database"] == "a1"), "{mine}");

    // An unknown database, none named, or a body that is not {"database": NAME}: refused.
    for (path, body) in [
        ("/api/v1/databases/nosuch/backups", ""),
        ("/api/v1/backups?database=nosuch", ""),
        ("/api/v1/backups", r#"{"database": "nosuch"}"#),
    ] {
        let (status, v) = post(&d, path, body);
        assert_eq!(status, 404, "{path}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(
            e.contains("does not back up database \"nosuch\"") && e.contains("a1, b2, c3, d4"),
            "{e}"
        );
    }
    let (status, v) = post(&d, "/api/v1/backups", "");
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("name one"), "{v}");
    let (status, v) = post(&d, "/api/v1/backups", r#"{"database": 5}"#);
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(&d, "/api/v1/backups?database=a1", r#"{"database": "c3"}"#);
    assert_eq!(status, 400, "{v}");

    // A database created since the last run is found by the API.
    s.sql("postgres", "CREATE DATABASE e5");
    s.sql("e5", DATA);
    let (status, v) = post(&d, "/api/v1/databases/e5/backups", "");
    assert_eq!(status, 202, "{v}");
    let done = d.wait_attempt(v["id"].as_str().unwrap());
    assert_eq!(done["attempt"]["status"], "succeeded", "{done}");
    assert_eq!(
        d.json("/api/v1/databases")["databases"],
        serde_json::json!(["a1", "b2", "c3", "d4", "e5"])
    );

    // Ready: the storage is writable and the server's list of databases can be read.
    let (status, body) = d.http("GET", "/readyz", None);
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["database"]["ok"], true, "{ready}");
    // The status page and its JSON show a row for each database.
    let status = d.json("/api/v1/status");
    let names: Vec<&str> = status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|db| db["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "b2", "c3", "d4", "e5"], "{status}");
    let (code, page) = d.http("GET", "/", None);
    assert_eq!(code, 200);
    for db in ["a1", "b2", "e5"] {
        assert!(page.contains(db), "{db} missing from the page");
    }

    d.signal(libc::SIGTERM);
    assert!(d.wait_exit().success());
}

#[test]
fn all_is_read_again_at_every_run_and_a_database_may_have_a_schedule_of_its_own() {
    let s = Server::start();
    for db in ["alpha", "beta"] {
        s.sql("postgres", &format!("CREATE DATABASE {db}"));
        s.sql(db, DATA);
    }
    let cmd = s.command(&[
        ("PGKEEP_DATABASES", "all"),
        ("PGKEEP_EXCLUDE_DATABASES", "postgres"),
        ("PGKEEP_BACKUP_PERIOD", "2s"),
        // beta: once a year (caught up at start, having no backup yet).
        ("PGKEEP_DATABASE_SCHEDULES", "beta=0 3 1 1 *"),
        ("PGKEEP_KEEP_LAST", "1"),
        ("PGKEEP_KEEP_DAYS", "0"),
        ("PGKEEP_RETRY_DELAY", "0"),
    ]);
    let mut d = Daemon::spawn(cmd, &[]);
    wait_metrics(&d, Duration::from_secs(30), |m| {
        successes(m, "alpha") >= 1.0 && successes(m, "beta") == 1.0
    });

    // A database created on the server is backed up by the next run.
    s.sql("postgres", "CREATE DATABASE gamma");
    s.sql("gamma", DATA);
    let m = wait_metrics(&d, Duration::from_secs(30), |m| {
        successes(m, "gamma") >= 2.0
    });
    // beta keeps its own schedule: no second backup, its next run a long way off.
    assert_eq!(successes(&m, "beta"), 1.0, "{m}");
    let next = |db: &str| {
        metric(
            &m,
            &format!("pgkeep_next_run_timestamp_seconds{{database=\"{db}\"}}"),
        )
        .unwrap_or_else(|| panic!("no next run of {db}:\n{m}"))
    };
    assert!(next("beta") > next("alpha") + 86_400.0, "{m}");
    assert!(next("gamma") < next("alpha") + 10.0, "{m}");
    assert!(successes(&m, "@globals") >= 2.0, "{m}");

    // alpha is dropped: reported at every run, its backup kept (never culled for it).
    s.sql("postgres", "DROP DATABASE alpha WITH (FORCE)");
    let m = wait_metrics(&d, Duration::from_secs(30), |m| {
        metric(m, "pgkeep_database_gone{database=\"alpha\"}") == Some(1.0)
    });
    let gamma = successes(&m, "gamma");
    let kept = s.backups()["alpha"];
    assert!(kept >= 1);
    wait_metrics(&d, Duration::from_secs(30), |m| {
        successes(m, "gamma") >= gamma + 2.0
    });
    d.wait_log(
        |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("database \"alpha\" is gone from the server"))
        },
        Duration::from_secs(5),
    );
    let now = s.backups();
    assert_eq!(now["alpha"], kept, "{now:?}");
    assert_eq!(now["gamma"], 1, "culled to keep_last 1: {now:?}");
    assert_eq!(now["beta"], 1, "{now:?}");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit().success());
}

#[test]
fn database_schedules_are_checked_and_shown() {
    let pgkeep = |env: &[(&str, &str)]| {
        let mut cmd = assert_cmd::Command::cargo_bin("pgkeep").unwrap();
        cmd.env_clear().env("PGKEEP_TIMEZONE", "UTC");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(["config", "show"]).output().unwrap()
    };
    let err = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    // Without a set there is nothing to give a schedule of its own.
    let out = pgkeep(&[("PGKEEP_DATABASE_SCHEDULES", "a=@daily")]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(
        err(&out).contains("need a `databases` set"),
        "{}",
        err(&out)
    );
    for (bad, why) in [
        ("a=@daily,a=@hourly", "two schedules"),
        ("@daily", "not NAME=CRON"),
        ("a=every day", "database \"a\""),
    ] {
        let out = pgkeep(&[
            ("PGKEEP_DATABASES", "all"),
            ("PGKEEP_DATABASE_SCHEDULES", bad),
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", err(&out));
        assert!(err(&out).contains(why), "{bad}: {}", err(&out));
        assert_eq!(err(&out).lines().count(), 1, "{}", err(&out));
    }
    let out = pgkeep(&[("PGKEEP_PARALLEL_DATABASES", "0")]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));

    // A TOML table, shown as config show shows schedules.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("pgkeep.toml");
    std::fs::write(
        &conf,
        "databases = \"all\"\nparallel_databases = 3\n\n[database_schedules]\nreports = \"0 */6 * * *\"\n",
    )
    .unwrap();
    let out = pgkeep(&[("PGKEEP_CONFIG", conf.to_str().unwrap())]);
    assert!(out.status.success(), "{}", err(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |k: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .unwrap_or_else(|| panic!("{k} missing:\n{text}"))
            .to_string()
    };
    assert!(
        line("database_schedules").contains("reports=cron `0 */6 * * *` in UTC"),
        "{text}"
    );
    assert!(line("parallel_databases").contains('3'), "{text}");
}
