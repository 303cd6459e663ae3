//! The status page in a real browser: Debian's headless chromium driven through chromedriver
//! (WebDriver) against `pgkeep run` on loopback and the real PostgreSQL. The database has a hostile
//! name (a `<script>` and an `<img>` that would load from a listener of the test); its history is
//! made by real `pgkeep backup` runs under `faketime` over the last weeks. The test reads the
//! page, types a wrong token and clicks "back up now" (refused), types the right one (the backup
//! appears as running, then in the history), checks the charts, and injects an external image
//! that the Content-Security-Policy must block. It writes a screenshot (to `docs/status-page.png`
//! with `PGKEEP_SCREENSHOT=docs`).

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, TOKEN, http};
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A TCP listener that counts the connections it gets: any is a load the page must not make.
struct Probe {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Probe {
    fn start() -> Probe {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                if s.is_ok() {
                    h.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Probe { port, hits }
    }
}

/// chromedriver on a free loopback port, with a fresh profile directory for chromium.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(which("chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian: apt-get install chromium chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    async fn client(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,1180",
            &format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let caps = json!({
            "goog:chromeOptions": { "binary": which("chromium"), "args": args }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} not found (Debian: apt-get install chromium chromium-driver)")
        })
}

/// A pg_dump that fails with an error line while `fail` exists, waits while `hold` exists, and
/// otherwise is the real one.
fn failing_or_held_pg_dump(dir: &Path, fail: &Path, hold: &Path) -> PathBuf {
    let real = cluster().bindir.join("pg_dump");
    script(
        dir,
        "pg_dump",
        &format!(
            "if [ \"$1\" = \"--version\" ]; then exec '{real}' --version; fi\n\
             if [ -e '{fail}' ]; then echo 'pg_dump: error: connection to server lost' >&2; exit 1; fi\n\
             while [ -e '{hold}' ]; do sleep 0.05; done\n\
             exec '{real}' \"$@\"",
            real = real.display(),
            fail = fail.display(),
            hold = hold.display()
        ),
    )
}

/// `pgkeep backup` as if run `days_ago` days ago (libfaketime).
fn backup_days_ago(db: &TestDb, days_ago: u32) {
    let out = db
        .command()
        .env("LD_PRELOAD", faketime_lib())
        .env("FAKETIME", format!("-{days_ago}d"))
        .env("DONT_FAKE_MONOTONIC", "1")
        .arg("backup")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn faketime_lib() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("libfaketime (Debian: apt-get install faketime)")
}

/// Evaluate `js` (a function body) until it returns something truthy; its value.
async fn wait_js(c: &Client, js: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = c.execute(js, vec![]).await.unwrap();
        if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(c: &Client, js: &str) -> Value {
    c.execute(js, vec![]).await.unwrap()
}

const SECTION: &str = "const s = document.querySelector('section.db');";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_a_real_browser() {
    let started = Instant::now();
    let probe = Probe::start();
    let hostile = format!(
        "<script>document.title=1</script><img src=//127.0.0.1:{}/>",
        probe.port
    );
    let db = TestDb::create_named(&hostile, &unique("role"), "pw-secret");
    db.sql_as_owner(SAMPLE);
    for (i, days) in [20, 13, 9, 6, 3, 1].into_iter().enumerate() {
        db.sql_as_owner(&format!(
            "INSERT INTO routes SELECT g, repeat('y', 200) FROM generate_series({}, {}) g;",
            10_000 + i * 2000,
            10_000 + i * 2000 + 1999
        ));
        backup_days_ago(&db, days);
    }
    // Verified: five good, and the one of 9 days ago bad (a byte appended to it).
    let nine = db
        .files()
        .into_iter()
        .find(|f| f.ends_with(".sql.gz") && f.contains(&day_of(9)))
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(db.backup_dir.join(&nine))
        .unwrap();
    std::io::Write::write_all(&mut f, b"x").unwrap();
    db.pgkeep().args(["verify", "--all"]).assert().code(9);
    let tools = tempfile::tempdir().unwrap();
    let (fail, hold) = (tools.path().join("fail"), tools.path().join("hold"));
    let pg_dump = failing_or_held_pg_dump(tools.path(), &fail, &hold);
    let d = Daemon::start(
        &db,
        &[
            ("PGKEEP_PG_DUMP", pg_dump.to_str().unwrap()),
            ("PGKEEP_API_TOKEN", TOKEN),
            ("PGKEEP_KEEP_DAYS", "14"),
        ],
        &["--backup-period", "7d"],
    );
    let driver = Driver::start();
    let c = driver.client().await;
    let url = format!("http://{}/", d.addr);
    c.goto(&url).await.unwrap();

    reads_the_page(&c, &hostile).await;
    refuses_a_wrong_token(&c).await;
    type_token(&c, TOKEN).await;
    shows_a_failure(&c, &fail).await;
    let id = backs_up_now(&c, &hold, &d.addr).await;
    csp_blocks_an_injected_load(&c, &probe).await;
    no_secret_in_the_page(&c, &db).await;
    c.close().await.unwrap();
    let (status, body) = http(
        d.addr,
        "POST",
        "/api/v1/backups?database=other",
        Some(TOKEN),
    );
    assert_eq!(status, 404, "{body}");
    pgkeep_status(&db, &d, &hostile);
    assert_eq!(
        probe.hits.load(Ordering::SeqCst),
        0,
        "the page loaded from the probe"
    );
    assert!(db.files().iter().any(|f| f.contains(&id)), "{id}");
    println!(
        "browser test ran in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// The name is text, the backups are listed, the charts have their points.
async fn reads_the_page(c: &Client, hostile: &str) {
    let title = c.title().await.unwrap();
    assert!(title.starts_with("pgkeep status: "), "{title}");
    let name = js(
        c,
        &format!("{SECTION} return s.querySelector('h2').textContent;"),
    )
    .await;
    assert_eq!(name, json!(hostile));
    let data_db = js(c, &format!("{SECTION} return s.dataset.db;")).await;
    assert_eq!(data_db, json!(hostile));
    // The hostile name made no element: no image, one script (the page's own).
    assert_eq!(js(c, "return document.images.length;").await, json!(0));
    assert_eq!(js(c, "return document.scripts.length;").await, json!(1));
    let rows = js(
        c,
        &format!("{SECTION} return s.querySelectorAll('table.history tbody tr').length;"),
    )
    .await;
    assert_eq!(rows, json!(6), "six backups in the history");
    let newest = js(
        c,
        &format!("{SECTION} return s.querySelector('.newest').textContent;"),
    )
    .await;
    assert!(newest.as_str().unwrap().contains("1d ago"), "{newest}");
    let next = js(
        c,
        &format!("{SECTION} return s.querySelector('.next').textContent;"),
    )
    .await;
    assert!(next.as_str().unwrap().starts_with("20"), "{next}");
    let charts = js(
        c,
        "return Array.from(document.querySelectorAll('svg.chart')).map(s => [\
            s.querySelectorAll('circle.pt').length,\
            s.querySelector('polyline.series').getAttribute('points').trim().split(' ').length,\
            s.querySelectorAll('rect.keep').length]);",
    )
    .await;
    assert_eq!(
        charts,
        json!([[6, 6, 1], [6, 6, 1]]),
        "size and duration charts"
    );
    let bad = js(
        c,
        "return document.querySelectorAll('svg.chart circle.pt.bad').length;",
    )
    .await;
    assert_eq!(bad, json!(2), "the bad backup is marked in both charts");
    let verdicts = js(
        c,
        &format!("{SECTION} return s.querySelector('.verdicts').textContent;"),
    )
    .await;
    assert!(
        verdicts
            .as_str()
            .unwrap()
            .starts_with("5 good, 1 bad, 0 unverified"),
        "{verdicts}"
    );
    let cells = js(
        c,
        &format!(
            "{SECTION} return Array.from(s.querySelectorAll('td.verdict')).map(t => t.textContent);"
        ),
    )
    .await;
    assert_eq!(
        cells,
        json!(["good", "good", "good", "bad (grown)", "good", "good"])
    );
    let running = js(
        c,
        &format!("{SECTION} return s.querySelector('.running').textContent;"),
    )
    .await;
    assert_eq!(running, json!("No backup running."));
}

/// The UTC day `days` days ago, as in backup names.
fn day_of(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d")
        .to_string()
}

async fn click_backup(c: &Client) {
    c.find(Locator::Css("button.backup"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// A backup that fails shows up under the recent failures with its error line.
async fn shows_a_failure(c: &Client, fail: &Path) {
    std::fs::write(fail, b"").unwrap();
    click_backup(c).await;
    let text = wait_js(
        c,
        &format!(
            "{SECTION} const f = s.querySelector('ul.failures pre'); return f && f.textContent;"
        ),
        "the failure",
    )
    .await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("pg_dump: error: connection to server lost"),
        "{text}"
    );
    std::fs::remove_file(fail).unwrap();
}

async fn type_token(c: &Client, token: &str) {
    let input = c.find(Locator::Id("token")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
}

async fn refuses_a_wrong_token(c: &Client) {
    type_token(c, "not-the-token").await;
    click_backup(c).await;
    let msg = wait_js(
        c,
        &format!("{SECTION} const t = s.querySelector('.msg').textContent; return t.startsWith('Refused') && t;"),
        "the refusal",
    )
    .await;
    assert_eq!(
        msg,
        json!("Refused (401): missing or wrong bearer token"),
        "{msg}"
    );
}

/// Click with the right token while pg_dump is held: running, then in the history.
async fn backs_up_now(c: &Client, hold: &Path, addr: &SocketAddr) -> String {
    std::fs::write(hold, b"").unwrap();
    js(
        c,
        &format!("{SECTION} s.querySelector('.msg').textContent = '';"),
    )
    .await;
    click_backup(c).await;
    let msg = wait_js(
        c,
        &format!("{SECTION} const t = s.querySelector('.msg').textContent; return t.endsWith('started.') && t;"),
        "the start",
    )
    .await;
    let id = msg.as_str().unwrap()["Backup ".len()..]
        .trim_end_matches(" started.")
        .to_string();
    let running = wait_js(
        c,
        &format!("{SECTION} const t = s.querySelector('.running').textContent; return t.includes('Running:') && t;"),
        "the running backup",
    )
    .await;
    assert!(running.as_str().unwrap().contains(&id), "{running}");
    assert_eq!(
        js(c, &format!("{SECTION} return s.dataset.running;")).await,
        json!("1")
    );
    // The picture of the README: a backup running, a failure, a bad backup in the charts.
    screenshot(c).await;
    type_token(c, TOKEN).await;
    // The JSON the page polls says the same.
    let (status, body) = http(*addr, "GET", "/api/v1/status", None);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["databases"][0]["running"]["id"], json!(id));
    std::fs::remove_file(hold).unwrap();
    wait_js(
        c,
        &format!(
            "{SECTION} return s.dataset.running === '0' && \
             Array.from(s.querySelectorAll('table.history code')).some(e => e.textContent === {});",
            json!(id)
        ),
        "the new backup in the history",
    )
    .await;
    let rows = js(
        c,
        &format!("{SECTION} return s.querySelectorAll('table.history tbody tr').length;"),
    )
    .await;
    // Culling after the backup removed the one 20 days old (keep_days=14); the bad one counts
    // toward no floor but is culled by the age rules only, like any other backup.
    assert_eq!(rows, json!(6));
    let msg = js(
        c,
        &format!("{SECTION} return s.querySelector('.msg').textContent;"),
    )
    .await;
    assert_eq!(
        msg,
        json!(format!("Backup {id} started.")),
        "the message stays"
    );
    id
}

/// An image to another origin, injected into the page, is blocked and reported.
async fn csp_blocks_an_injected_load(c: &Client, probe: &Probe) {
    js(
        c,
        &format!(
            "window.violations = [];\
             document.addEventListener('securitypolicyviolation', e => window.violations.push(e.effectiveDirective + ' ' + e.blockedURI));\
             document.body.insertAdjacentHTML('beforeend', '<img id=\"injected\" src=\"http://127.0.0.1:{}/injected.png\">');",
            probe.port
        ),
    )
    .await;
    let v = wait_js(
        c,
        "return window.violations.length > 0 && window.violations;",
        "a CSP violation",
    )
    .await;
    assert_eq!(
        v,
        json!([format!(
            "img-src http://127.0.0.1:{}/injected.png",
            probe.port
        )])
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(probe.hits.load(Ordering::SeqCst), 0);
    js(c, "document.getElementById('injected').remove();").await;
}

/// `pgkeep status` from the backup location, as JSON, and with the daemon's live part.
fn pgkeep_status(db: &TestDb, d: &Daemon, hostile: &str) {
    let out = db.pgkeep().arg("status").assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains(&format!("database {hostile}\n")), "{text}");
    // The bad backup stays until the age rules cull it (it counts toward no floor).
    assert!(text.contains("4 good, 1 bad, 1 unverified"), "{text}");
    assert!(
        text.contains("next run            unknown (ask the daemon with --url)"),
        "{text}"
    );
    assert_eq!(text.matches("plain+gzip").count(), 6, "{text}");
    let url = format!("http://{}", d.addr);
    let out = db
        .pgkeep()
        .args(["status", "--json", "--url", &url])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let first = &v["databases"][0];
    assert_eq!(first["name"], json!(hostile));
    assert!(first["next_run"].as_str().is_some(), "{v}");
    assert_eq!(first["failures"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(first["history"].as_array().unwrap().len(), 6);
    let out = db
        .pgkeep()
        .args(["status", "--url", &url])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("running             no\n"), "{text}");
    assert!(text.contains("connection to server lost"), "{text}");
    // Nobody listens there: one line, exit 1.
    let gone = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = db
        .pgkeep()
        .args(["status", "--url", &format!("http://{gone}")])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.starts_with("pgkeep: error: cannot ask the daemon at http://"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Neither the token typed nor the database password is anywhere in the page's markup.
async fn no_secret_in_the_page(c: &Client, db: &TestDb) {
    let html = c.source().await.unwrap();
    assert!(!html.contains(TOKEN), "the token is in the page");
    assert!(!html.contains(&db.password), "the password is in the page");
    let stored = js(
        c,
        "return [document.cookie, localStorage.length, sessionStorage.length];",
    )
    .await;
    assert_eq!(stored, json!(["", 0, 0]));
    let headers = c
        .execute_async(
            "const done = arguments[0]; fetch('/').then(r => done(['content-security-policy', \
             'x-content-type-options', 'x-frame-options', 'cache-control'].map(h => r.headers.get(h))));",
            vec![],
        )
        .await
        .unwrap();
    let csp = headers[0].as_str().unwrap();
    for part in [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "script-src 'nonce-",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(headers[1], json!("nosniff"));
    assert_eq!(headers[2], json!("DENY"));
    assert_eq!(headers[3], json!("no-store"));
}

async fn screenshot(c: &Client) {
    js(c, "document.getElementById('token').value = '';").await;
    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let dir = if std::env::var("PGKEEP_SCREENSHOT").as_deref() == Ok("docs") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    };
    std::fs::write(dir.join("status-page.png"), png).unwrap();
}
