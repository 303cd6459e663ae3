//! The "application offline" page on a real loopback listener (port 0): the library server and
//! the `pgkeep maintenance` command, spoken to with plain HTTP/1.1 over a TCP socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgkeep::maintenance::{Page, serve};

/// A parsed HTTP response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send one request and read the whole response (the server closes the connection).
fn request(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 2\r\n\r\n{}");
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_503_with_retry_after_and_the_escaped_message() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = pgkeep::shutdown::channel();
    let page = Page {
        title: "Orders offline".into(),
        message: "We are restoring the database <today> & will be back soon.\n\nThanks!".into(),
        retry_after: 120,
    };
    let server = tokio::spawn(serve(listener, page, shutdown));

    let replies = tokio::task::spawn_blocking(move || {
        vec![
            request(addr, "GET", "/", &[]),
            request(addr, "GET", "/orders/42?x=1", &[("Accept", "text/html")]),
            request(
                addr,
                "POST",
                "/api/orders",
                &[("Accept", "application/json")],
            ),
            request(addr, "HEAD", "/", &[]),
        ]
    })
    .await
    .unwrap();

    for r in &replies {
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("120"));
        assert!(r.header("cache-control").unwrap().contains("no-store"));
    }
    let html = &replies[0];
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        html.body.contains("<h1>Orders offline</h1>"),
        "{}",
        html.body
    );
    assert!(
        html.body.contains(
            "<p>We are restoring the database &lt;today&gt; &amp; will be back soon.</p>"
        )
    );
    assert!(html.body.contains("<p>Thanks!</p>"));
    assert_eq!(replies[1].body, html.body, "every path gets the same page");
    let json: serde_json::Value = serde_json::from_str(&replies[2].body).unwrap();
    assert_eq!(replies[2].header("content-type"), Some("application/json"));
    assert_eq!(json["error"], "maintenance");
    assert_eq!(json["retry_after_seconds"], 120);
    assert!(replies[3].body.is_empty(), "HEAD has no body");

    trigger.fire(pgkeep::shutdown::Reason::Terminate);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port is closed after shutdown"
    );
}

/// `pgkeep maintenance` with a clean environment; stderr piped so the bound address can be read.
fn spawn_cli(args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("pgkeep"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("maintenance")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pgkeep")
}

/// Wait for the "listening" log line and return the address in it.
fn bound_addr(child: &mut Child) -> (SocketAddr, BufReader<std::process::ChildStderr>) {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).unwrap();
        assert!(n > 0, "pgkeep maintenance exited before listening");
        if line.contains("maintenance page listening") {
            let a = line.split("addr=").nth(1).expect("addr field");
            let a = a.split_whitespace().next().unwrap();
            return (a.parse().expect("socket address"), err);
        }
    }
}

#[test]
fn the_command_serves_its_configured_page_and_exits_0_on_sigterm() {
    let mut child = spawn_cli(&[
        "--listen",
        "127.0.0.1:0",
        "--title",
        "Shop closed",
        "--message",
        "Restore in progress",
        "--retry-after",
        "42",
    ]);
    let (addr, mut err) = bound_addr(&mut child);
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let r = request(addr, "GET", "/checkout", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("42"));
    assert!(r.body.contains("<title>Shop closed</title>"));
    assert!(r.body.contains("<p>Restore in progress</p>"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "exit {status:?}: {rest}");
    assert!(rest.contains("maintenance page stopped"), "{rest}");
}

#[test]
fn the_environment_configures_the_page_like_the_flags() {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("pgkeep"))
        .env_clear()
        .env("PGKEEP_MAINTENANCE_LISTEN", "127.0.0.1:0")
        .env("PGKEEP_MAINTENANCE_MESSAGE", "from the env")
        .env("PGKEEP_MAINTENANCE_RETRY_AFTER", "7")
        .arg("maintenance")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, _err) = bound_addr(&mut child);
    let r = request(addr, "GET", "/", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert!(r.body.contains("<p>from the env</p>"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_listen_address_or_retry_after_is_a_usage_error() {
    for args in [
        &["--listen", "not-an-address"][..],
        &["--listen", "127.0.0.1:0", "--retry-after", "-5"][..],
        &["--listen", "127.0.0.1:0", "--retry-after", "100000"][..],
    ] {
        let out = spawn_cli(args).wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
}

#[test]
fn a_port_in_use_fails_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = spawn_cli(&["--listen", &addr]).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}
