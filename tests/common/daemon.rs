//! The daemon as the tests start it: `pgkeep run` on 127.0.0.1:0 with JSON logs collected, a
//! minimal HTTP client, and a pg_dump that waits while a "hold" file exists, so a backup stays
//! running exactly as long as a test needs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{TestDb, cluster, script};

pub const TOKEN: &str = "t0ken-with-Secret!";

/// A pg_dump that waits while `hold` exists, then runs the real one.
pub fn held_pg_dump(dir: &Path, hold: &Path) -> PathBuf {
    held_pg_dump_of(&cluster().bindir, dir, hold)
}

/// [`held_pg_dump`] in front of the pg_dump of `bindir`.
pub fn held_pg_dump_of(bindir: &Path, dir: &Path, hold: &Path) -> PathBuf {
    let real = bindir.join("pg_dump");
    script(
        dir,
        "pg_dump",
        &format!(
            "if [ \"$1\" = \"--version\" ]; then exec '{real}' --version; fi\n\
             while [ -e '{hold}' ]; do sleep 0.05; done\n\
             exec '{real}' \"$@\"",
            real = real.display(),
            hold = hold.display()
        ),
    )
}

pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Daemon {
    pub fn start(db: &TestDb, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let mut cmd = db.command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::spawn(cmd, args)
    }

    /// `pgkeep run` as `cmd` is configured, with `args`.
    pub fn spawn(mut cmd: std::process::Command, args: &[&str]) -> Daemon {
        cmd.env("PGKEEP_LOG_FORMAT", "json")
            .args(["run", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "message": line }));
                sink.lock().unwrap().push(v);
            }
        });
        let mut d = Daemon {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            log,
        };
        let line = d.wait_log(|l| l["message"] == "listening", Duration::from_secs(30));
        d.addr = line["addr"].as_str().unwrap().parse().unwrap();
        d
    }

    /// Wait for a log line matching `pred`; panics with the log after `timeout`.
    pub fn wait_log(
        &mut self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!("log line not seen; log:\n{}", self.log_text());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                panic!("daemon exited with {status}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn count_log(&self, message: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["message"] == message)
            .count()
    }

    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn http(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        http(self.addr, method, path, token)
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.http("GET", path, Some(TOKEN));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Poll GET /api/v1/backups/{id} until the attempt is no longer running.
    pub fn wait_attempt(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.json(&format!("/api/v1/backups/{id}"));
            if v["attempt"]["status"] != "running" {
                return v;
            }
            assert!(Instant::now() < deadline, "attempt {id} still running");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Wait for the exit status (up to 60 s).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return s;
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client over loopback.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    http_body(addr, method, path, token, "")
}

/// [`http`] with a JSON request body.
pub fn http_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let kind = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{kind}{auth}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}
