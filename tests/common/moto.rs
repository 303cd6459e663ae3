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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn spawn(port: u16) -> Child {
    Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // Parts of 256 KiB, so that multipart tests stay small.
        .env("S3_UPLOAD_PART_MIN_SIZE", "262144")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)")
}

fn start() -> String {
    let port = free_port();
    let child = spawn(port);
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
    wait_ready(&url);
    url
}

/// A server of one test's own, to be stopped, killed and restarted by it (killed when dropped).
pub struct OwnServer {
    pub port: u16,
    pub child: Child,
}

impl OwnServer {
    pub fn start() -> OwnServer {
        let port = free_port();
        let s = OwnServer {
            port,
            child: spawn(port),
        };
        wait_ready(&s.url());
        s
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new server on the same port (an empty one: moto keeps its state in memory).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port);
        wait_ready(&self.url());
    }

    pub fn signal(&self, sig: libc::c_int) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
    }
}

/// Create `bucket` on the server at `endpoint`.
pub fn create_bucket(endpoint: &str, bucket: &str) {
    ureq::put(format!("{endpoint}/{bucket}"))
        .send_empty()
        .expect("create a bucket");
}

/// The ids of the multipart uploads the server at `endpoint` holds unfinished in `bucket`.
pub fn open_uploads(endpoint: &str, bucket: &str) -> Vec<String> {
    let body = ureq::get(format!("{endpoint}/{bucket}?uploads"))
        .call()
        .expect("list the multipart uploads")
        .body_mut()
        .read_to_string()
        .unwrap();
    body.split("<UploadId>")
        .skip(1)
        .filter_map(|k| k.split("</UploadId>").next())
        .map(str::to_string)
        .collect()
}

/// Keys of the objects in `bucket` under `prefix` on the server at `endpoint`, from a raw LIST.
pub fn keys_at(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let body = ureq::get(format!("{endpoint}/{bucket}?list-type=2&prefix={prefix}"))
        .call()
        .expect("list the bucket")
        .body_mut()
        .read_to_string()
        .unwrap();
    body.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

fn wait_ready(url: &str) {
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
