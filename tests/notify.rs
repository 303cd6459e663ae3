//! Notifications received by a real HTTP server on 127.0.0.1: every webhook format's payload after
//! a real backup, the dead-man ping, failures of backup and verification, secrets kept out, and a
//! failing or hanging webhook that never fails the backup.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use predicates::prelude::*;

/// One request the server received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A tiny HTTP/1.1 server: paths starting with `/fail` answer 500, `/hang` never answers,
/// everything else 200. Every request is recorded.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || handle(stream, s));
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    fn at(&self, prefix: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

fn handle(stream: TcpStream, seen: Arc<Mutex<Vec<Received>>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    let mut content_type = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "content-type" => content_type = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).unwrap();
    seen.lock().unwrap().push(Received {
        method,
        path: path.clone(),
        content_type,
        body,
    });
    let mut stream = stream;
    if path.starts_with("/hang") {
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    let status = if path.starts_with("/fail") {
        "500 Internal Server Error"
    } else if path.starts_with("/gone") {
        "404 Not Found"
    } else {
        "200 OK"
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
}

const TOKEN: &str = "T0KEN-s3cr3t";

#[test]
fn a_backup_posts_every_format_and_pings_the_dead_man_switch() {
    let server = Server::start();
    let db = TestDb::create(SAMPLE);
    db.pgkeep()
        .env("PGKEEP_NOTIFY_ON", "always")
        .env(
            "PGKEEP_NOTIFY_WEBHOOK_URL",
            server.url(&format!("/generic/{TOKEN}")),
        )
        .env(
            "PGKEEP_NOTIFY_SLACK_URL",
            server.url(&format!("/slack/services/{TOKEN}")),
        )
        .env(
            "PGKEEP_NOTIFY_TEAMS_URL",
            server.url(&format!("/teams/workflow?sig={TOKEN}")),
        )
        .env(
            "PGKEEP_NOTIFY_ROCKETCHAT_URL",
            server.url(&format!("/rocket/hooks/{TOKEN}")),
        )
        .env(
            "PGKEEP_NOTIFY_DEADMAN_URL",
            server.url(&format!("/ping/{TOKEN}")),
        )
        .arg("backup")
        .assert()
        .success()
        .stderr(predicate::str::contains(TOKEN).not());
    let all = server.requests();
    assert_eq!(all.len(), 5, "{all:?}");
    for r in &all {
        assert_eq!(r.method, "POST");
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains(&db.password),
            "password in {}: {body}",
            r.path
        );
        assert!(!body.contains(TOKEN), "token in {}: {body}", r.path);
    }

    let g = server.at("/generic")[0].json();
    assert_eq!(server.at("/generic")[0].content_type, "application/json");
    assert_eq!(g["source"], "pgkeep");
    assert_eq!(g["event"], "backup.success");
    assert_eq!(g["operation"], "backup");
    assert_eq!(g["outcome"], "success");
    assert_eq!(g["database"], db.name.as_str());
    assert_eq!(g["host"], "local");
    assert!(
        g["summary"]
            .as_str()
            .unwrap()
            .contains("1300 rows in 2 tables"),
        "{g}"
    );
    assert!(
        g["details"]["file"].as_str().unwrap().ends_with(".sql.gz"),
        "{g}"
    );
    assert_eq!(g["details"]["sha256"].as_str().unwrap().len(), 64);

    let s = server.at("/slack")[0].json();
    assert!(s["text"].as_str().unwrap().contains("succeeded"), "{s}");
    assert_eq!(s["attachments"][0]["color"], "#2eb886");
    let fields = s["attachments"][0]["blocks"][1]["fields"]
        .as_array()
        .unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f["text"].as_str().unwrap().contains(&db.name)),
        "{s}"
    );

    let t = server.at("/teams")[0].json();
    assert_eq!(t["type"], "message");
    let card = &t["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(card["content"]["body"][0]["color"], "Good");
    let facts = card["content"]["body"][2]["facts"].as_array().unwrap();
    assert!(
        facts
            .iter()
            .any(|f| f["title"] == "database" && f["value"] == db.name.as_str())
    );

    let r = server.at("/rocket")[0].json();
    assert_eq!(r["alias"], "pgkeep");
    assert!(r["text"].as_str().unwrap().contains("succeeded"));
    assert_eq!(r["attachments"][0]["color"], "#2eb886");
    assert!(
        r["attachments"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["title"] == "size")
    );

    let ping = &server.at("/ping")[0];
    assert!(ping.content_type.starts_with("text/plain"));
    assert!(String::from_utf8_lossy(&ping.body).contains("succeeded"));

    // With the default (failures only), a success posts nothing but still pings the switch.
    let server2 = Server::start();
    db.pgkeep()
        .env("PGKEEP_NOTIFY_SLACK_URL", server2.url("/slack/x"))
        .env("PGKEEP_NOTIFY_DEADMAN_URL", server2.url("/ping/y"))
        .arg("backup")
        .assert()
        .success();
    let paths: Vec<String> = server2.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/ping/y"]);
}

#[test]
fn a_failed_backup_is_notified_without_secrets_and_the_switch_stays_silent() {
    let server = Server::start();
    let db = TestDb::create(SAMPLE);
    db.pgkeep()
        .env("POSTGRESQL_PASSWORD", "wrong-Pa55word")
        .env(
            "PGKEEP_NOTIFY_WEBHOOK_URL",
            server.url(&format!("/generic/{TOKEN}")),
        )
        .env(
            "PGKEEP_NOTIFY_TEAMS_URL",
            server.url(&format!("/teams/{TOKEN}")),
        )
        .env("PGKEEP_NOTIFY_DEADMAN_URL", server.url("/ping/x"))
        .arg("backup")
        .assert()
        .code(3);
    assert!(server.at("/ping").is_empty());
    let g = server.at("/generic")[0].json();
    assert_eq!(g["event"], "backup.failure");
    assert!(g["summary"].as_str().unwrap().contains("failed"), "{g}");
    let t = server.at("/teams")[0].json();
    assert_eq!(
        t["attachments"][0]["content"]["body"][0]["color"],
        "Attention"
    );
    for r in server.requests() {
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("wrong-Pa55word") && !body.contains(TOKEN),
            "{body}"
        );
    }
}

#[test]
fn failing_and_hanging_webhooks_never_fail_the_backup() {
    let server = Server::start();
    let db = TestDb::create(SAMPLE);
    // A port with nothing listening.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = std::time::Instant::now();
    db.pgkeep()
        .env("PGKEEP_NOTIFY_ON", "always")
        .env("PGKEEP_NOTIFY_RETRIES", "1")
        .env("PGKEEP_NOTIFY_TIMEOUT", "2")
        .env(
            "PGKEEP_NOTIFY_WEBHOOK_URL",
            format!(
                "{} http://127.0.0.1:{closed}/down/{TOKEN} {}",
                server.url(&format!("/fail/{TOKEN}")),
                server.url("/hang/x")
            ),
        )
        .arg("backup")
        .assert()
        .success()
        .stderr(
            predicate::str::contains("notification could not be delivered")
                .and(predicate::str::contains("HTTP 500"))
                .and(predicate::str::contains("timed out"))
                .and(predicate::str::contains(TOKEN).not()),
        );
    // Retried once: two attempts at the failing endpoint.
    assert_eq!(server.at("/fail").len(), 2);
    assert_eq!(
        db.files()
            .iter()
            .filter(|f| f.ends_with(".manifest.json"))
            .count(),
        1
    );
    // Bounded by timeout and retries, not by the hanging server.
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn a_failed_verification_is_notified() {
    let server = Server::start();
    let db = TestDb::create(SAMPLE);
    db.pgkeep().arg("backup").assert().success();
    let data = db
        .files()
        .into_iter()
        .find(|f| f.ends_with(".sql.gz"))
        .unwrap();
    std::fs::write(db.backup_dir.join(&data), b"").unwrap();
    db.pgkeep()
        .env("PGKEEP_NOTIFY_ROCKETCHAT_URL", server.url("/rocket/x"))
        .env("PGKEEP_NOTIFY_SLACK_URL", server.url("/slack/x"))
        .arg("verify")
        .assert()
        .code(9);
    let r = server.at("/rocket")[0].json();
    assert!(r["text"].as_str().unwrap().contains("verify of"), "{r}");
    assert!(r["text"].as_str().unwrap().contains("FAILED"), "{r}");
    assert_eq!(r["attachments"][0]["color"], "#d40e0d");
    assert!(
        r["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("the data file is empty"),
        "{r}"
    );
    let fields = r["attachments"][0]["fields"].as_array().unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f["title"] == "failure" && f["value"] == "empty"),
        "{r}"
    );
    let s = server.at("/slack")[0].json();
    assert_eq!(s["attachments"][0]["color"], "#d40e0d");
}

#[test]
fn config_show_redacts_webhook_urls() {
    let db = TestDb::create("");
    db.pgkeep()
        .env(
            "PGKEEP_NOTIFY_SLACK_URL",
            format!("https://hooks.slack.com/services/{TOKEN}"),
        )
        .env(
            "PGKEEP_NOTIFY_DEADMAN_URL",
            format!("https://hc-ping.com/{TOKEN}"),
        )
        .args(["config", "show"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("https://hooks.slack.com/<redacted>")
                .and(predicate::str::contains("https://hc-ping.com/<redacted>"))
                .and(predicate::str::contains(TOKEN).not()),
        );
}

#[test]
fn the_notifier_retries_server_errors_but_not_client_errors() {
    use pgkeep::config::{NotifySettings, Secret, WebhookFormat};
    use pgkeep::notify::{Event, Notifier, Operation, Outcome};
    let server = Server::start();
    let cfg = NotifySettings {
        webhooks: vec![
            (WebhookFormat::Generic, Secret::new(server.url("/fail/a"))),
            (WebhookFormat::Slack, Secret::new(server.url("/gone/b"))),
            (WebhookFormat::Teams, Secret::new(server.url("/ok/c"))),
        ],
        deadman_url: Some(Secret::new(server.url("/ping/d"))),
        on_success: false,
        timeout: Duration::from_secs(5),
        retries: 3,
        proxy: None,
    };
    let mut n = Notifier::new(&cfg, vec!["hunter2".into()]);
    n.retry_delay = Duration::from_millis(10);
    let event = Event::new(
        Operation::Cull,
        Outcome::Failure,
        Some("db"),
        "pg",
        "cull failed: hunter2",
    );
    let d = n.notify(&event);
    assert_eq!(
        d.len(),
        3,
        "the dead-man switch is not pinged on failure: {d:?}"
    );
    let by = |p: &str| d.iter().find(|x| x.target.contains(p)).unwrap().clone();
    assert_eq!((by("generic").ok, by("generic").attempts), (false, 4));
    assert_eq!((by("slack").ok, by("slack").attempts), (false, 1));
    assert_eq!((by("teams").ok, by("teams").attempts), (true, 1));
    assert!(
        d.iter()
            .all(|x| !x.target.contains("/fail/a") && x.target.ends_with("/<redacted>"))
    );
    assert_eq!(server.at("/fail").len(), 4);
    let g = server.at("/ok")[0].json();
    let text = g.to_string();
    assert!(text.contains("cull of"), "{text}");
    assert!(
        !text.contains("hunter2") && text.contains("<redacted>"),
        "{text}"
    );
    // Successes of other operations than backup neither post (failures only) nor ping.
    let ok = Event::new(
        Operation::Verify,
        Outcome::Success,
        Some("db"),
        "pg",
        "fine",
    );
    assert!(n.notify(&ok).is_empty());
    let ok = Event::new(
        Operation::Backup,
        Outcome::Success,
        Some("db"),
        "pg",
        "fine",
    );
    let d = n.notify(&ok);
    assert_eq!(d.len(), 1);
    assert!(d[0].ok && d[0].target.starts_with("dead-man"));
}

#[test]
fn a_restore_is_notified() {
    let server = Server::start();
    let db = TestDb::create(SAMPLE);
    db.pgkeep().arg("backup").assert().success();
    db.pgkeep()
        .env("PGKEEP_ADMIN_USER", "postgres")
        .env("PGKEEP_NOTIFY_ON", "always")
        .env("PGKEEP_NOTIFY_WEBHOOK_URL", server.url("/generic/r"))
        .env("PGKEEP_NOTIFY_DEADMAN_URL", server.url("/ping/r"))
        .args(["restore", "--yes"])
        .assert()
        .success();
    let g = server.at("/generic")[0].json();
    assert_eq!(g["event"], "restore.success");
    assert_eq!(g["database"], db.name.as_str());
    assert!(g["details"]["backup"].as_str().unwrap().contains(&db.name));
    // The dead-man switch is for backups only.
    assert!(server.at("/ping").is_empty());
}
