//! Faults of the S3 store at the command level, against moto's server on loopback: the server
//! killed mid-upload, a proxy that drops connections mid-upload (the retries get the backup
//! through, or it fails cleanly within their time bound), and pgkeep itself killed with SIGKILL
//! mid-upload. After each: nothing uncommitted is listed, no child process is left, and the next
//! run succeeds, aborting the leftover multipart upload from its marker.
//!
//! A bucket quota is not tested: moto has none (quotas are a MinIO/Ceph feature); the error
//! classification of `QuotaExceeded` and HTTP 507 as "full" is unit-tested in the store.

mod common;

#[path = "common/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::procs::{killed_by_sigkill, wait_no_processes};
use common::*;

/// A database whose plain dump is about 24 MB of incompressible-looking text: with
/// `--compression none` three parts of 8 MiB, so that an upload is cut between parts.
fn big_db() -> TestDb {
    TestDb::create(
        "CREATE TABLE blob AS SELECT g AS id, \
           string_agg(md5(g::text || ':' || i::text), '') AS h \
         FROM generate_series(1, 24000) g, generate_series(1, 32) i GROUP BY g;",
    )
}

/// A TCP proxy on loopback in front of `upstream`: it forwards client bytes at most `rate`
/// bytes a second (0: unthrottled) and, while `cuts` is positive, cuts a connection (both
/// ways) once `cut_after` client bytes went through it, counting each cut down.
struct Proxy {
    port: u16,
    rate: Arc<AtomicU64>,
    cut_after: Arc<AtomicU64>,
    cuts: Arc<AtomicI64>,
    /// Connections cut so far.
    cut: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            rate: Arc::new(AtomicU64::new(0)),
            cut_after: Arc::new(AtomicU64::new(u64::MAX)),
            cuts: Arc::new(AtomicI64::new(0)),
            cut: Arc::new(AtomicU64::new(0)),
        };
        let (rate, cut_after, cuts, cut) = (
            p.rate.clone(),
            p.cut_after.clone(),
            p.cuts.clone(),
            p.cut.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (rate, cut_after, cuts, cut) =
                    (rate.clone(), cut_after.clone(), cuts.clone(), cut.clone());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &s2, &mut &c2);
                    let _ = c2.shutdown(Shutdown::Both);
                    let _ = s2.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    let mut sent = 0u64;
                    loop {
                        let n = match (&client).read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        sent += n as u64;
                        if sent > cut_after.load(Ordering::SeqCst)
                            && cuts.fetch_sub(1, Ordering::SeqCst) > 0
                        {
                            cut.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        let r = rate.load(Ordering::SeqCst);
                        if r > 0 {
                            std::thread::sleep(Duration::from_secs_f64(n as f64 / r as f64));
                        }
                        if (&server).write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                });
            }
        });
        p
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `pgkeep ARGS` for `db` with its backups at `s3://BUCKET/p` through `endpoint`, retries
/// bounded to a few seconds.
fn pgkeep(db: &TestDb, endpoint: &str, bucket: &str, args: &[&str]) -> Command {
    let mut c = db.command();
    c.envs(moto::vars(endpoint))
        .env("BACKUP_DIR", format!("s3://{bucket}/p"))
        .env("PGKEEP_S3_MAX_RETRIES", "5")
        .env("PGKEEP_S3_RETRY_TIMEOUT", "4s")
        .env("PGKEEP_S3_REQUEST_TIMEOUT", "10s")
        .env("PGKEEP_S3_CONNECT_TIMEOUT", "1s")
        .args(args);
    c
}

fn run(c: &mut Command) -> (ExitStatus, String, String) {
    let out = c.stdin(Stdio::null()).output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `list --json` through `endpoint`: (file, status) of every entry.
fn listed(db: &TestDb, endpoint: &str, bucket: &str) -> Vec<(String, String)> {
    let (status, out, err) = run(&mut pgkeep(db, endpoint, bucket, &["list", "--json"]));
    assert!(status.success(), "list failed: {err}");
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Wait up to `bound` for an upload marker in the bucket (the upload has started).
fn wait_marker(endpoint: &str, bucket: &str, bound: Duration) -> bool {
    let until = Instant::now() + bound;
    while Instant::now() < until {
        if !moto::keys_at(endpoint, bucket, "p/.pgkeep/uploads/").is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The one error line of a failed run, naming the bucket.
fn assert_clean_failure(status: ExitStatus, err: &str, bucket: &str) {
    assert!(!status.success(), "the run failed");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("pgkeep: error: "),
        "one error line, got:\n{err}"
    );
    assert!(err.contains(&format!("s3://{bucket}/")), "{err}");
    assert!(!err.contains(moto::SECRET_ACCESS_KEY), "{err}");
}

/// The next backup straight to the server succeeds, aborts every leftover upload and removes
/// its marker; exactly one good backup is listed.
fn next_run_succeeds_and_cleans(db: &TestDb, endpoint: &str, bucket: &str) {
    let (status, _, err) = run(&mut pgkeep(
        db,
        endpoint,
        bucket,
        &["backup", "--compression", "none"],
    ));
    assert!(status.success(), "the next backup failed: {err}");
    let l = listed(db, endpoint, bucket);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].1, "good", "{l:?}");
    assert!(
        moto::keys_at(endpoint, bucket, "p/.pgkeep/").is_empty(),
        "no marker is left: {:?}",
        moto::keys_at(endpoint, bucket, "p/.pgkeep/")
    );
    assert!(
        moto::open_uploads(endpoint, bucket).is_empty(),
        "no multipart upload is left open: {:?}",
        moto::open_uploads(endpoint, bucket)
    );
}

#[test]
fn pgkeep_killed_mid_upload_leaves_nothing_listed_and_the_next_run_aborts_its_upload() {
    let db = big_db();
    let bucket = moto::bucket();
    let proxy = Proxy::start(moto::endpoint().trim_start_matches("http://").to_string());
    proxy.rate.store(4 << 20, Ordering::SeqCst); // 4 MB/s: the upload takes seconds
    let mut child = pgkeep(
        &db,
        &proxy.url(),
        &bucket,
        &["backup", "--compression", "none"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    assert!(
        wait_marker(moto::endpoint(), &bucket, Duration::from_secs(60)),
        "the upload started"
    );
    std::thread::sleep(Duration::from_millis(1500)); // a part or two on the way
    child.kill().unwrap();
    assert!(killed_by_sigkill(child.wait().unwrap()));
    let left = wait_no_processes(&db.name, Duration::from_secs(10));
    assert!(left.is_empty(), "children of the killed run: {left:?}");

    assert!(
        listed(&db, moto::endpoint(), &bucket).is_empty(),
        "nothing uncommitted is listed"
    );
    assert_eq!(
        moto::open_uploads(moto::endpoint(), &bucket).len(),
        1,
        "the killed run's upload is still open on the server"
    );
    next_run_succeeds_and_cleans(&db, moto::endpoint(), &bucket);
}

#[test]
fn dropped_connections_are_retried_and_the_backup_gets_through() {
    let db = big_db();
    let bucket = moto::bucket();
    let proxy = Proxy::start(moto::endpoint().trim_start_matches("http://").to_string());
    // The first three connections that carry more than 1 MB are cut mid-request.
    proxy.cut_after.store(1 << 20, Ordering::SeqCst);
    proxy.cuts.store(3, Ordering::SeqCst);
    let (status, _, err) = run(&mut pgkeep(
        &db,
        &proxy.url(),
        &bucket,
        &["backup", "--compression", "none"],
    ));
    assert!(status.success(), "the retries got it through: {err}");
    assert_eq!(proxy.cut.load(Ordering::SeqCst), 3, "connections were cut");
    let l = listed(&db, moto::endpoint(), &bucket);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].1, "good", "{l:?}");
    assert!(moto::keys_at(moto::endpoint(), &bucket, "p/.pgkeep/").is_empty());
    assert!(moto::open_uploads(moto::endpoint(), &bucket).is_empty());
    let (status, _, err) = run(&mut pgkeep(&db, moto::endpoint(), &bucket, &["verify"]));
    assert!(
        status.success(),
        "the backup that went through is sound: {err}"
    );
}

#[test]
fn connections_dropped_for_good_fail_the_backup_cleanly_within_the_retry_time() {
    let db = big_db();
    let bucket = moto::bucket();
    let proxy = Proxy::start(moto::endpoint().trim_start_matches("http://").to_string());
    proxy.cut_after.store(1 << 20, Ordering::SeqCst);
    proxy.cuts.store(i64::MAX, Ordering::SeqCst);
    let started = Instant::now();
    let (status, _, err) = run(&mut pgkeep(
        &db,
        &proxy.url(),
        &bucket,
        &["backup", "--compression", "none"],
    ));
    let took = started.elapsed();
    assert_clean_failure(status, &err, &bucket);
    assert!(
        took < Duration::from_secs(90),
        "bounded by the retries: {took:?}"
    );
    assert!(proxy.cut.load(Ordering::SeqCst) > 1, "retried");
    assert!(
        wait_no_processes(&db.name, Duration::from_secs(10)).is_empty(),
        "no child is left"
    );
    assert!(
        listed(&db, moto::endpoint(), &bucket).is_empty(),
        "nothing uncommitted is listed"
    );
    next_run_succeeds_and_cleans(&db, moto::endpoint(), &bucket);
}

#[test]
fn the_server_killed_mid_upload_fails_the_backup_cleanly_and_the_next_run_succeeds() {
    let db = big_db();
    let mut server = moto::OwnServer::start();
    let bucket = "killed";
    moto::create_bucket(&server.url(), bucket);
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port));
    proxy.rate.store(4 << 20, Ordering::SeqCst);
    let started = Instant::now();
    let mut child = pgkeep(
        &db,
        &proxy.url(),
        bucket,
        &["backup", "--compression", "none"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(wait_marker(&server.url(), bucket, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_clean_failure(status, &err, bucket);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "bounded by the retries: {:?}",
        started.elapsed()
    );
    assert!(
        wait_no_processes(&db.name, Duration::from_secs(10)).is_empty(),
        "no child is left"
    );
    // A new, empty server (moto keeps nothing on disk) in its place.
    server.restart();
    moto::create_bucket(&server.url(), bucket);
    assert!(listed(&db, &server.url(), bucket).is_empty());
    next_run_succeeds_and_cleans(&db, &server.url(), bucket);
}

#[test]
fn the_server_hung_mid_upload_fails_the_backup_and_the_next_run_aborts_what_it_left() {
    let db = big_db();
    let server = moto::OwnServer::start();
    let bucket = "hung";
    moto::create_bucket(&server.url(), bucket);
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port));
    proxy.rate.store(4 << 20, Ordering::SeqCst);
    let started = Instant::now();
    let mut child = pgkeep(
        &db,
        &proxy.url(),
        bucket,
        &["backup", "--compression", "none"],
    )
    .env("PGKEEP_S3_REQUEST_TIMEOUT", "3s")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(wait_marker(&server.url(), bucket, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(1500));
    server.signal(libc::SIGSTOP);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    let took = started.elapsed();
    server.signal(libc::SIGCONT);
    assert_clean_failure(status, &err, bucket);
    assert!(
        took < Duration::from_secs(120),
        "bounded by the retries: {took:?}"
    );
    assert!(
        wait_no_processes(&db.name, Duration::from_secs(10)).is_empty(),
        "no child is left"
    );
    assert!(
        listed(&db, &server.url(), bucket).is_empty(),
        "nothing uncommitted is listed"
    );
    next_run_succeeds_and_cleans(&db, &server.url(), bucket);
}
