//! The one wrapper for child processes (pg_dump, pg_restore, psql, hooks): a private environment,
//! its own process group so that a kill reaches every descendant, stderr drained concurrently
//! with only its tail kept, and no orphan left behind when the wrapper is dropped.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How many bytes of stderr are kept for error messages.
const STDERR_TAIL: usize = 16 * 1024;

/// Environment variables a child may inherit. Everything else, in particular any password,
/// token or secret, is left out.
const INHERITED: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLROOTCERT",
    "PGTZ",
    "PGCLIENTENCODING",
    "PGGSSENCMODE",
    "PGTARGETSESSIONATTRS",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGKRBSRVNAME",
];

/// The part of `env` a child may see.
pub fn inherited_env(env: &BTreeMap<String, String>) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| INHERITED.contains(&k.as_str()) || k.starts_with("LC_"))
        .filter(|(k, _)| {
            let u = k.to_ascii_uppercase();
            !(u.contains("PASSWORD") || u.contains("TOKEN") || u.contains("SECRET"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment of the child.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl Spec {
    pub fn new(program: &Path) -> Spec {
        Spec {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Spec {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Spec {
        let k = k.into();
        self.env.retain(|(n, _)| *n != k);
        self.env.push((k, v.into()));
        self
    }

    pub fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Spec {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// The program name for messages.
    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string())
    }
}

/// A handle that can signal the child's process group from any thread.
#[derive(Debug, Clone)]
pub struct Killer {
    pgid: Pid,
    reaped: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
}

impl Killer {
    /// Ask the group to stop (SIGTERM), then SIGKILL whatever is left after `grace`.
    pub fn terminate(&self, grace: Duration) {
        if self.reaped.load(Ordering::SeqCst) {
            return;
        }
        self.killed.store(true, Ordering::SeqCst);
        let _ = killpg(self.pgid, Signal::SIGTERM);
        let pgid = self.pgid;
        let reaped = self.reaped.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if reaped.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !reaped.load(Ordering::SeqCst) {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
        });
    }

    /// True once `terminate` was called.
    pub fn was_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// A running child.
pub struct Running {
    name: String,
    child: Option<Child>,
    killer: Killer,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub status: ExitStatus,
    /// The last lines of stderr, cleaned for a one-line message.
    pub stderr_tail: String,
    /// The lines of stderr that are warnings (`pg_dump: warning: ...`), in order.
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// "exited with status 1" / "was killed by signal 9 (SIGKILL)".
    pub fn describe_status(&self) -> String {
        describe(self.status)
    }

    /// A one-line description: status plus the stderr tail.
    pub fn describe(&self) -> String {
        if self.stderr_tail.is_empty() {
            format!(
                "{} {} and printed nothing on stderr",
                self.name,
                describe(self.status)
            )
        } else {
            format!(
                "{} {}: {}",
                self.name,
                describe(self.status),
                self.stderr_tail
            )
        }
    }
}

pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {sig}"));
        format!("was killed by signal {sig} ({name})")
    } else {
        "ended abnormally".into()
    }
}

/// Keep the last non-empty lines of stderr, joined into one line.
pub fn tail_lines(bytes: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join(" | ")
}

/// The lines of stderr in PostgreSQL's client tools' warning form (`prog: warning: text`),
/// without the program's name.
pub fn warning_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.split_once(": warning: ").map(|(_, w)| w.trim()))
        .filter(|w| !w.is_empty())
        .map(|w| format!("warning: {w}"))
        .collect()
}

impl Running {
    /// Start the child with stdout to `stdout`, stdin closed, stderr captured.
    pub fn spawn(spec: &Spec, stdout: Stdio) -> std::io::Result<Running> {
        Self::spawn_with_stdin(spec, Stdio::null(), stdout)
    }

    pub fn spawn_with_stdin(spec: &Spec, stdin: Stdio, stdout: Stdio) -> std::io::Result<Running> {
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(d) = &spec.cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", spec.program.display()),
            )
        })?;
        let pgid = Pid::from_raw(child.id() as i32);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        let stderr_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut s = sink.lock().expect("stderr buffer");
                        s.extend_from_slice(&buf[..n]);
                        if s.len() > 2 * STDERR_TAIL {
                            let cut = s.len() - STDERR_TAIL;
                            s.drain(..cut);
                        }
                    }
                }
            }
        });
        Ok(Running {
            name: spec.name(),
            child: Some(child),
            killer: Killer {
                pgid,
                reaped: Arc::new(AtomicBool::new(false)),
                killed: Arc::new(AtomicBool::new(false)),
            },
            stderr,
            stderr_thread: Some(stderr_thread),
        })
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    pub fn killer(&self) -> Killer {
        self.killer.clone()
    }

    /// Wait for the child and for its stderr to be drained.
    pub fn wait(mut self) -> std::io::Result<Outcome> {
        let mut child = self.child.take().expect("waited once");
        let status = child.wait()?;
        self.killer.reaped.store(true, Ordering::SeqCst);
        // Descendants that kept stderr open would block the drain: end the group first.
        let _ = killpg(self.killer.pgid, Signal::SIGKILL);
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let bytes = self.stderr.lock().expect("stderr buffer").clone();
        Ok(Outcome {
            name: self.name.clone(),
            status,
            stderr_tail: tail_lines(&bytes, 3),
            warnings: warning_lines(&bytes),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(self.killer.pgid, Signal::SIGKILL);
            let _ = child.wait();
            self.killer.reaped.store(true, Ordering::SeqCst);
            if let Some(t) = self.stderr_thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Run a child to completion with stdout captured (for short commands such as psql queries).
pub fn output(spec: &Spec, stdin: Option<&[u8]>) -> std::io::Result<(Outcome, Vec<u8>)> {
    let mut running = Running::spawn_with_stdin(
        spec,
        if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        },
        Stdio::piped(),
    )?;
    let writer = match (stdin, running.take_stdin()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(mut so) = running.take_stdout() {
        so.read_to_end(&mut out)?;
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let outcome = running.wait()?;
    Ok((outcome, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_filter_drops_secrets() {
        let env: BTreeMap<String, String> = [
            ("PATH", "/bin"),
            ("PGPASSWORD", "x"),
            ("POSTGRESQL_PASSWORD", "x"),
            ("LC_ALL", "C"),
            ("HOME", "/root"),
            ("PGKEEP_API_TOKEN", "t"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept: Vec<String> = inherited_env(&env).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kept, vec!["LC_ALL", "PATH"]);
    }

    #[test]
    fn warnings_are_picked_from_stderr() {
        assert_eq!(
            warning_lines(b"pg_dump: warning: subscriptions not dumped because current user is not a superuser\npg_dump: error: x\n"),
            vec!["warning: subscriptions not dumped because current user is not a superuser"]
        );
    }

    #[test]
    fn outcome_describes_signal_and_tail() {
        let spec = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("echo one >&2; echo; echo two >&2; kill -9 $$");
        let (o, _) = output(&spec, None).unwrap();
        assert!(!o.success());
        assert_eq!(
            o.describe(),
            "sh was killed by signal 9 (SIGKILL): one | two"
        );
    }

    #[test]
    fn terminate_reaches_grandchildren() {
        let spec = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("sleep 30 & sleep 30; echo done");
        let mut r = Running::spawn(&spec, Stdio::piped()).unwrap();
        let mut so = r.take_stdout().unwrap();
        let k = r.killer();
        let start = Instant::now();
        k.terminate(Duration::from_secs(1));
        let mut s = String::new();
        so.read_to_string(&mut s).unwrap();
        let o = r.wait().unwrap();
        assert!(!o.success());
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(s.is_empty());
    }
}
