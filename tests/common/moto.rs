//! A real S3-compatible server for the S3 store's tests: moto's server (`moto_server`, PyPI
//! `moto[server]`) on a free loopback port, started once per test binary with small multipart
//! parts allowed, killed at exit. Each test gets a bucket of its own.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static SERVERS: Mutex<Vec<Child>> = Mutex::new(Vec::new());
static ENDPOINT: OnceLock<String> = OnceLock::new();
static STRICT: OnceLock<(String, String)> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// Test credentials moto accepts (it checks signatures only with IAM enforcement on).
pub const ACCESS_KEY_ID: &str = "pgkeep-test-key";
pub const SECRET_ACCESS_KEY: &str = "pgkeep-test-secret-8c1d";

extern "C" fn stop_servers() {
    if let Ok(mut g) = SERVERS.lock() {
        for mut c in g.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `http://127.0.0.1:PORT` of this binary's moto server, started on first use.
pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(start)
}

/// A second server that checks credentials (moto's IAM enforcement on: only keys it issued are
/// accepted, so the test keys are refused with InvalidAccessKeyId), and a bucket on it.
/// Separate from [`endpoint`]: with enforcement on, moto refuses some valid listings.
pub fn strict() -> (&'static str, &'static str) {
    let (e, b) = STRICT.get_or_init(|| {
        let url = start();
        ureq::put(format!("{url}/strict"))
            .send_empty()
            .expect("create a bucket");
        ureq::post(format!("{url}/moto-api/reset-auth"))
            .header("Content-Type", "text/plain")
            .send("0")
            .expect("turn IAM enforcement on");
        (url, "strict".to_string())
    });
    (e, b)
}

fn start() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // Parts of 256 KiB, so that multipart tests stay small.
        .env("S3_UPLOAD_PART_MIN_SIZE", "262144")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)");
    {
        let mut servers = SERVERS.lock().unwrap();
        if servers.is_empty() {
            unsafe {
                libc::atexit(stop_servers);
            }
        }
        servers.push(child);
    }
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(format!("{url}/moto-api/data.json"))
        .call()
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer on {url}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    url
}

/// A new, empty bucket.
pub fn bucket() -> String {
    let name = format!(
        "pgkeep-{}-{}",
        std::process::id(),
        BUCKETS.fetch_add(1, Ordering::SeqCst)
    );
    ureq::put(format!("{}/{name}", endpoint()))
        .send_empty()
        .expect("create a bucket");
    name
}

/// The variables a pgkeep process needs to reach the server at `endpoint` (passed in, so that a
/// child process reaches its parent's server instead of starting one).
pub fn vars(endpoint: &str) -> HashMap<String, String> {
    [
        ("PGKEEP_S3_ENDPOINT", endpoint),
        ("PGKEEP_S3_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The S3 settings the configuration makes of [`vars`] (the same path as a pgkeep process).
pub fn options(endpoint: &str) -> pgkeep::model::S3Options {
    let inputs = pgkeep::config::Inputs {
        config_file: None,
        env: vars(endpoint).into_iter().collect(),
        flags: Default::default(),
    };
    pgkeep::config::Settings::load(&inputs)
        .expect("settings")
        .s3
}
