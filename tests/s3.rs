//! Every command over an `s3://BUCKET/PREFIX` backup location, through the real binary against
//! moto's S3 server on loopback: backup, list, verify, check, prune and restore work there, the
//! `s3_*` keys are in the key table with their secrets redacted, and a wrong key, a missing
//! bucket, an unreachable endpoint or a plain-HTTP endpoint not allowed fail in one line with
//! exit 4 before anything is written, never showing a secret.

mod common;

#[path = "common/moto.rs"]
#[allow(dead_code)]
mod moto;

use common::*;
use predicates::prelude::*;

/// `pgkeep` for `db` with its backups at `url` on the test server.
fn at(db: &TestDb, url: &str) -> assert_cmd::Command {
    at_endpoint(db, url, moto::endpoint())
}

fn at_endpoint(db: &TestDb, url: &str, endpoint: &str) -> assert_cmd::Command {
    let mut c = db.pgkeep();
    for (k, v) in moto::vars(endpoint) {
        c.env(k, v);
    }
    c.env("BACKUP_DIR", url);
    c
}

/// Keys of the objects in `bucket` under `prefix`, from a raw LIST.
fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    moto::keys_at(moto::endpoint(), bucket, prefix)
}

fn stdout(c: &mut assert_cmd::Command) -> String {
    let out = c.assert().success().get_output().clone();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains(moto::SECRET_ACCESS_KEY),
        "the secret key was printed: {all}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn entries(db: &TestDb, url: &str) -> Vec<serde_json::Value> {
    let text = stdout(at(db, url).args(["list", "--json"]));
    serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap()
}

#[test]
fn every_command_works_over_s3() {
    let db = TestDb::create(SAMPLE);
    let bucket = moto::bucket();
    let url = format!("s3://{bucket}/team/pg");

    stdout(at(&db, &url).arg("backup"));
    let listed = entries(&db, &url);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "good", "{listed:?}");
    let file = listed[0]["file"].as_str().unwrap().to_string();
    assert!(
        keys(&bucket, "team/pg/").contains(&format!("team/pg/{file}")),
        "the backup is an object under the prefix: {:?}",
        keys(&bucket, "")
    );
    assert!(
        db.files().is_empty(),
        "nothing is written to a local directory: {:?}",
        db.files()
    );

    let verified = stdout(at(&db, &url).arg("verify"));
    assert!(
        verified.contains(listed[0]["id"].as_str().unwrap()),
        "{verified}"
    );
    stdout(at(&db, &url).arg("check"));

    stdout(at(&db, &url).arg("backup"));
    assert_eq!(entries(&db, &url).len(), 2);
    // Culling keeps the newest verified backup: verify the new one.
    stdout(at(&db, &url).arg("verify"));
    let pruned =
        stdout(at(&db, &url).args(["prune", "--apply", "--keep-last", "1", "--keep-days", "0"]));
    let left = entries(&db, &url);
    assert_eq!(left.len(), 1, "{pruned}");
    assert_ne!(left[0]["file"], listed[0]["file"], "the older one went");
    assert!(
        !keys(&bucket, "team/pg/")
            .iter()
            .any(|k| k.starts_with(&format!("team/pg/{file}"))),
        "its data and manifest are gone: {:?}",
        keys(&bucket, "team/pg/")
    );

    db.sql("DELETE FROM routes");
    stdout(
        at(&db, &url)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(["restore", "--yes"]),
    );
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
    assert!(
        keys(&bucket, "team/pg/.pgkeep/uploads/").is_empty(),
        "no upload is left unfinished"
    );
}

#[test]
fn the_s3_keys_are_configuration_keys_with_secrets_redacted() {
    let keys = stdout(
        assert_cmd::Command::cargo_bin("pgkeep")
            .unwrap()
            .env_clear()
            .args(["config", "keys"]),
    );
    for (key, var) in [
        ("s3_endpoint", "AWS_ENDPOINT_URL"),
        ("s3_region", "AWS_REGION"),
        ("s3_access_key_id", "AWS_ACCESS_KEY_ID"),
        ("s3_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("s3_session_token", "AWS_SESSION_TOKEN"),
        ("s3_allow_http", "PGKEEP_S3_ALLOW_HTTP"),
        ("s3_path_style", "PGKEEP_S3_PATH_STYLE"),
        ("s3_web_identity_token_file", "AWS_WEB_IDENTITY_TOKEN_FILE"),
        ("lock_dir", "PGKEEP_LOCK_DIR"),
    ] {
        let line = keys
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("{key} missing from config keys:\n{keys}"));
        assert!(
            keys.contains(var),
            "{key}: {var} not listed: {line}\n{keys}"
        );
    }

    let db = TestDb::create("");
    let token = "session-token-9f2e-secret";
    let shown = stdout(
        at(&db, "s3://b/p")
            .env("AWS_SESSION_TOKEN", token)
            .env("PGKEEP_S3_REGION", "eu-central-1")
            .args(["config", "show"]),
    );
    assert!(!shown.contains(token), "{shown}");
    assert!(!shown.contains(moto::ACCESS_KEY_ID), "{shown}");
    let row = |key: &str| {
        shown
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("{key} missing:\n{shown}"))
            .to_string()
    };
    assert!(row("s3_secret_access_key").contains("<redacted>"));
    assert!(row("s3_secret_access_key").contains("AWS_SECRET_ACCESS_KEY"));
    assert!(row("s3_session_token").contains("<redacted>"));
    assert!(row("s3_region").contains("eu-central-1"));
    assert!(
        row("s3_region").contains("PGKEEP_S3_REGION"),
        "{}",
        row("s3_region")
    );
    assert!(row("s3_endpoint").contains(moto::endpoint()));
    assert!(
        row("s3_path_style").contains("true"),
        "{}",
        row("s3_path_style")
    );
    assert!(
        row("lock_dir").contains("/tmp/pgkeep-locks"),
        "{}",
        row("lock_dir")
    );
}

/// The one error line of a command that must fail with `code`; it never shows a secret.
fn error_line(c: &mut assert_cmd::Command, code: i32) -> String {
    let out = c.assert().code(code).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("pgkeep: error: "),
        "{c:?} printed\n{stderr}"
    );
    assert!(!stderr.contains(moto::SECRET_ACCESS_KEY), "{stderr}");
    stderr
}

#[test]
fn a_wrong_key_fails_before_the_dump_in_one_line() {
    let db = TestDb::create(SAMPLE);
    let (endpoint, bucket) = moto::strict();
    let url = format!("s3://{bucket}/wrong-key");
    for cmd in [&["backup"][..], &["list"], &["verify"]] {
        let e = error_line(at_endpoint(&db, &url, endpoint).args(cmd), 4);
        assert!(
            e.contains("InvalidAccessKeyId") || e.contains("access denied (HTTP 403"),
            "{cmd:?}: {e}"
        );
        assert!(e.contains(&format!("s3://{bucket}/")), "{cmd:?}: {e}");
    }
}

#[test]
fn a_missing_bucket_fails_in_one_line() {
    let db = TestDb::create(SAMPLE);
    let url = format!("s3://no-such-bucket-{}/p", std::process::id());
    for cmd in [
        &["backup"][..],
        &["list"],
        &["prune"],
        &["restore", "--yes"],
    ] {
        let e = error_line(at(&db, &url).args(cmd), 4);
        assert!(e.contains("NoSuchBucket"), "{cmd:?}: {e}");
    }
}

#[test]
fn an_unreachable_endpoint_fails_in_one_line_within_the_retry_time() {
    let db = TestDb::create(SAMPLE);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener is dropped: nothing listens there
    let endpoint = format!("http://127.0.0.1:{closed}");
    let started = std::time::Instant::now();
    for cmd in [&["backup"][..], &["list"]] {
        let e = error_line(
            at_endpoint(&db, "s3://b/p", &endpoint)
                .env("PGKEEP_S3_MAX_RETRIES", "2")
                .env("PGKEEP_S3_RETRY_TIMEOUT", "2s")
                .args(cmd),
            4,
        );
        assert!(e.contains("s3://b/p"), "{cmd:?}: {e}");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "retries are bounded"
    );
}

#[test]
fn a_plain_http_endpoint_must_be_allowed() {
    let db = TestDb::create("");
    let e = error_line(
        at(&db, "s3://b/p")
            .env_remove("PGKEEP_S3_ALLOW_HTTP")
            .arg("list"),
        4,
    );
    assert!(e.contains("PGKEEP_S3_ALLOW_HTTP=true"), "{e}");
    let e = error_line(
        at(&db, "s3://b/p")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .arg("backup"),
        4,
    );
    assert!(e.contains("no S3 credentials"), "{e}");
    assert!(predicate::str::contains("s3://b/p").eval(&e), "{e}");
}

/// `pgkeep run` with its backups in `url` on the server at `endpoint`.
fn daemon(db: &TestDb, url: &str, endpoint: &str) -> common::daemon::Daemon {
    let vars = moto::vars(endpoint);
    let mut env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("BACKUP_DIR", url));
    env.push(("PGKEEP_API_TOKEN", common::daemon::TOKEN));
    common::daemon::Daemon::start(db, &env, &["--schedule", "0 1 1 1 *"])
}

#[test]
fn the_daemon_backs_up_into_s3_and_readyz_probes_the_bucket() {
    use common::daemon::TOKEN;
    use std::time::Duration;
    let db = TestDb::create(SAMPLE);
    let bucket = moto::bucket();
    let url = format!("s3://{bucket}/daemon");
    let mut d = daemon(&db, &url, moto::endpoint());
    d.wait_log(
        |l| l["message"] == "next backup scheduled",
        Duration::from_secs(60),
    );
    let (status, body) = d.http("GET", "/readyz", None);
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(1100)); // a new second: a new backup id
    let (status, body) = d.http("POST", "/api/v1/backups", Some(TOKEN));
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let done = d.wait_attempt(v["id"].as_str().unwrap());
    assert_eq!(done["attempt"]["status"], "succeeded", "{done}");
    assert_eq!(done["backup"]["status"], "good", "{done}");
    assert!(
        entries(&db, &url).iter().any(|e| e["id"] == v["id"]),
        "the API's backup is in the bucket"
    );
    let (status, metrics) = d.http("GET", "/metrics", None);
    assert_eq!(status, 200, "{metrics}");
    assert!(!d.log_text().contains(moto::SECRET_ACCESS_KEY));
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit().success());

    // With a key the server refuses, the pod is not ready and says why in one line.
    let (endpoint, strict) = moto::strict();
    let mut d = daemon(&db, &format!("s3://{strict}/daemon"), endpoint);
    let (status, body) = d.http("GET", "/readyz", None);
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let error = v["checks"]["storage"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("access denied (HTTP 403") || error.contains("InvalidAccessKeyId"),
        "{v}"
    );
    assert!(
        !body.contains(moto::SECRET_ACCESS_KEY) && !d.log_text().contains(moto::SECRET_ACCESS_KEY)
    );
    d.signal(libc::SIGTERM);
    d.wait_exit();
}

#[test]
fn a_custom_format_backup_goes_through_local_staging_and_restores() {
    let db = TestDb::create(SAMPLE);
    let bucket = moto::bucket();
    let url = format!("s3://{bucket}/custom");
    stdout(at(&db, &url).env("PGKEEP_FORMAT", "custom").arg("backup"));
    let listed = entries(&db, &url);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0]["file"].as_str().unwrap().ends_with(".dump"));
    stdout(at(&db, &url).arg("verify"));
    db.sql("DELETE FROM \"SBI_USER\"");
    stdout(
        at(&db, &url)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(["restore", "--yes"]),
    );
    assert_eq!(db.sql("SELECT count(*) FROM \"SBI_USER\"").trim(), "300");
}
