//! The one wrapper for child processes (pg_dump, pg_restore, psql, hooks): a private environment,
//! its own process group so that a kill reaches every descendant, stderr drained concurrently
//! with only its tail kept, no orphan left behind when the wrapper is dropped, and none left
//! behind when pgkeep itself is killed.
//!
//! **Children die with pgkeep.** Every child is started with `PR_SET_PDEATHSIG(SIGKILL)` (set in
//! `pre_exec`, followed by a `getppid()` check: if pgkeep died between `fork` and `prctl`, the
//! child is already an orphan and gives up before `exec`). The kernel sends that signal when the
//! *thread* that forked the child ends, not the process: a child forked from one of tokio's
//! blocking threads (which end after idling) would be killed in the middle of its work, so every
//! child is forked by one long-lived spawner thread that is never asked to stop. It ends only
//! with the process, and then every child receives SIGKILL, whatever killed pgkeep (SIGKILL, OOM
//! killer, panic). Only the direct child receives it: its descendants are reached by the process
//! group kill while pgkeep lives (pg_dump, pg_restore and psql start none that would outlive
//! them; `pg_restore -j` workers end when their leader's pipes close). The signal is cleared by a
//! change of credentials, so a program started through `runuser`, `su` or a set-uid binary is not
//! covered: the throwaway clusters of `cluster.rs` (started by `runuser ... pg_ctl`, and
//! daemonized by `pg_ctl` anyway) outlive a killed pgkeep and are left for the next run to sweep.
//!
//! **File descriptors a child inherits.** Rust opens everything close-on-exec. A child gets
//! exactly the descriptors named for it, at the same numbers, with close-on-exec cleared in the
//! child only (so no other child started meanwhile sees them): the ones given with
//! [`Spec::inherit_fd`] (the database's lock, so that the kernel lock stays held as long as a
//! pg_dump lives), and every [`MemoryFile`] that an environment value names as
//! `/proc/self/fd/N` (the path then means the same file in the child; this is how a password
//! reaches libpq without a file on disk).

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
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
    /// Descriptors the child inherits (duplicates, closed once the child is reaped).
    inherit: Vec<Arc<OwnedFd>>,
}

impl Spec {
    pub fn new(program: &Path) -> Spec {
        Spec {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            inherit: Vec::new(),
        }
    }

    /// Let the child inherit `fd`, at the number of a duplicate made now. The duplicate stays
    /// open while this spec (or a clone) lives and until the child has been reaped, so whatever
    /// `fd` holds (a file lock) stays held as long as the child lives, even if pgkeep dies first.
    pub fn inherit_fd(mut self, fd: impl AsFd) -> std::io::Result<Spec> {
        self.inherit.push(Arc::new(dup_above_stdio(fd.as_fd())?));
        Ok(self)
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

/// How a child names a descriptor it inherited: the same path means the same file in pgkeep and
/// in the child, because the descriptor keeps its number.
const FD_PATH: &str = "/proc/self/fd/";

/// The name prefix of pgkeep's memory files, which tells them apart from any other descriptor.
const MEMFD_PREFIX: &str = "pgkeep-";

/// A file that exists only in memory (a memfd, mode 0600): it disappears with its last
/// descriptor, so nothing of it survives pgkeep, whatever ends it. Children read it at
/// [`MemoryFile::path`] (`/proc/self/fd/N`): when an environment value of a [`Spec`] names it,
/// the child inherits the descriptor at the same number. For the kernel it is a regular file, so
/// it satisfies libpq's checks on `PGPASSFILE` (a plain file without group or other access), and
/// every later open (`pg_restore -j` workers connect after the leader) reads it from the start.
#[derive(Debug)]
pub struct MemoryFile {
    fd: OwnedFd,
    path: PathBuf,
}

impl MemoryFile {
    /// A new memory file called `pgkeep-<name>` holding `contents`.
    pub fn new(name: &str, contents: &[u8]) -> std::io::Result<MemoryFile> {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let name = CString::new(format!("{MEMFD_PREFIX}{name}"))
            .map_err(|_| std::io::Error::other("a memory file name holds a NUL byte"))?;
        // Never executable; kernels before 6.3 do not know the flag.
        let no_exec = MFdFlags::from_bits_retain(nix::libc::MFD_NOEXEC_SEAL);
        let fd = match memfd_create(name.as_c_str(), MFdFlags::MFD_CLOEXEC | no_exec) {
            Err(nix::errno::Errno::EINVAL) => memfd_create(name.as_c_str(), MFdFlags::MFD_CLOEXEC),
            r => r,
        }?;
        let fd = if fd.as_raw_fd() < 3 {
            dup_above_stdio(fd.as_fd())?
        } else {
            fd
        };
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(contents)?;
        let fd = OwnedFd::from(file);
        let path = PathBuf::from(format!("{FD_PATH}{}", fd.as_raw_fd()));
        Ok(MemoryFile { fd, path })
    }

    /// Where pgkeep and the children it starts read the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for MemoryFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The descriptors of pgkeep's memory files that values of `env` name as `/proc/self/fd/N`.
fn memory_files_named(env: &[(String, String)]) -> Vec<RawFd> {
    let mut fds: Vec<RawFd> = env
        .iter()
        .filter_map(|(_, v)| v.strip_prefix(FD_PATH)?.parse::<RawFd>().ok())
        .filter(|fd| {
            std::fs::read_link(format!("{FD_PATH}{fd}")).is_ok_and(|target| {
                target
                    .to_string_lossy()
                    .starts_with(&format!("/memfd:{MEMFD_PREFIX}"))
            })
        })
        .collect();
    fds.sort_unstable();
    fds.dedup();
    fds
}

/// A close-on-exec duplicate of `fd` numbered 3 or above: a child's stdin, stdout and stderr are
/// set up at 0-2 before it keeps its inherited descriptors, and would replace one numbered there.
fn dup_above_stdio(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    use nix::fcntl::{FcntlArg, fcntl};
    let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: fcntl just returned this new descriptor, which nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A command for the spawner thread, and where to send what came of it.
type SpawnJob = (Command, mpsc::SyncSender<std::io::Result<Child>>);

/// Start `cmd` from the spawner thread, which lives as long as the process: the parent-death
/// signal of a child fires when the thread that forked it ends (see the module docs).
fn spawn_from_long_lived_thread(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let spawner = match SPAWNER.get() {
        Some(s) => s,
        None => {
            let (tx, rx) = mpsc::channel::<SpawnJob>();
            std::thread::Builder::new()
                .name("pgkeep-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })?;
            // Two first callers may race: the loser's sender is dropped here, unused, and its
            // thread ends at once, having started nothing.
            SPAWNER.get_or_init(|| tx)
        }
    };
    let stopped = || std::io::Error::other("the thread that starts child processes has stopped");
    let (reply, result) = mpsc::sync_channel(1);
    spawner.send((cmd, reply)).map_err(|_| stopped())?;
    result.recv().map_err(|_| stopped())?
}

/// Runs in the child between `fork` and `exec`, so only async-signal-safe calls (no allocation):
/// die with pgkeep, give up if pgkeep is already gone, keep the inherited descriptors.
fn in_child(pgkeep: Pid, keep: &[RawFd]) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid() != pgkeep {
        // pgkeep died before the signal was armed: this child must not run on alone.
        return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
    }
    for &fd in keep {
        // SAFETY: fcntl on a descriptor number; F_SETFD with 0 only clears close-on-exec.
        if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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
    /// The descriptors the child inherited: dropped (closed) only after the child is reaped,
    /// since fields drop after `Drop::drop` and `wait` has consumed the child by then.
    _inherited: Vec<Arc<OwnedFd>>,
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
    /// The SQLSTATE of the first server error on stderr, when the child printed it (psql with
    /// `VERBOSITY=verbose`).
    pub sqlstate: Option<String>,
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

/// Where a server message's severity ends and, with `VERBOSITY=verbose`, its SQLSTATE begins
/// (`ERROR:  42501: permission denied ...`): the SQLSTATE and the rest of the line.
fn split_sqlstate(line: &str) -> Option<(usize, &str, &str)> {
    for severity in ["ERROR:  ", "FATAL:  ", "PANIC:  "] {
        if let Some(at) = line.find(severity) {
            let rest = &line[at + severity.len()..];
            let code = rest.get(..5)?;
            if code
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
                && rest[5..].starts_with(": ")
            {
                return Some((at + severity.len(), code, &rest[7..]));
            }
        }
    }
    None
}

/// The SQLSTATE of the first server error in a child's stderr (psql prints it with
/// `VERBOSITY=verbose`; it does not depend on the server's `lc_messages`).
pub fn first_sqlstate(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .find_map(|l| split_sqlstate(l).map(|(_, code, _)| code.to_string()))
}

/// A stderr line as users read it: a verbose message's SQLSTATE and LOCATION lines left out.
fn plain_line(line: &str) -> Option<String> {
    if line.starts_with("LOCATION:  ") {
        return None;
    }
    Some(match split_sqlstate(line) {
        Some((at, _, rest)) => format!("{}{rest}", &line[..at]),
        None => line.to_string(),
    })
}

/// Keep the last non-empty lines of stderr, joined into one line. The first line with a server
/// error (`ERROR:`) comes first when it is not among them: it says why, where the last lines
/// often only say that a worker gave up or which command it was.
pub fn tail_lines(bytes: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(plain_line)
        .collect();
    let start = lines.len().saturating_sub(max_lines);
    let tail = lines[start..].join(" | ");
    match lines[..start].iter().find(|l| l.contains("ERROR:")) {
        Some(first) if !lines[start..].iter().any(|l| l.contains("ERROR:")) => {
            format!("{first} | … | {tail}")
        }
        _ => tail,
    }
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
        let mut keep: Vec<RawFd> = spec.inherit.iter().map(|fd| fd.as_raw_fd()).collect();
        keep.extend(memory_files_named(&spec.env));
        let pgkeep = nix::unistd::getpid();
        // SAFETY: `in_child` makes only async-signal-safe calls and allocates nothing.
        unsafe {
            cmd.pre_exec(move || in_child(pgkeep, &keep));
        }
        let mut child = spawn_from_long_lived_thread(cmd).map_err(|e| {
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
            _inherited: spec.inherit.clone(),
        })
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.killer.pgid.as_raw() as u32
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
            sqlstate: first_sqlstate(&bytes),
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

    #[test]
    fn the_first_server_error_stays_in_the_tail() {
        let err = b"pg_restore: error: could not execute query: ERROR:  deadlock detected\nDETAIL: x\nCommand was: ALTER TABLE t\npg_restore: error: a worker process died unexpectedly\n";
        assert_eq!(
            super::tail_lines(err, 2),
            "pg_restore: error: could not execute query: ERROR:  deadlock detected | … | Command was: ALTER TABLE t | pg_restore: error: a worker process died unexpectedly"
        );
        assert_eq!(super::tail_lines(err, 4).matches("deadlock").count(), 1);
        assert_eq!(super::tail_lines(b"a\nb\nc\n", 2), "b | c");
    }
    use super::*;

    #[test]
    fn a_verbose_error_gives_its_sqlstate_and_reads_as_a_plain_one() {
        let err = b"psql:<stdin>:9: ERROR:  42501: permission denied for schema s\nLOCATION:  aclcheck_error, aclchk.c:3650\n";
        assert_eq!(first_sqlstate(err).as_deref(), Some("42501"));
        assert_eq!(
            tail_lines(err, 3),
            "psql:<stdin>:9: ERROR:  permission denied for schema s"
        );
        let plain = b"pg_restore: error: could not execute query: ERROR:  permission denied\n";
        assert_eq!(first_sqlstate(plain), None);
        assert_eq!(
            tail_lines(plain, 3),
            "pg_restore: error: could not execute query: ERROR:  permission denied"
        );
    }

    #[test]
    fn env_filter_drops_secrets() {
        let env: BTreeMap<String, String> = [
            ("PATH", "/bin"),
            ("PGPASSWORD", "x"),
            ("POSTGRESQL_PASSWORD", "x"),
            ("LC_ALL", "C"),
            ("HOME", "/root"),
            ("PGKEEP_API_TOKEN", "t"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("PGKEEP_S3_ACCESS_KEY_ID", "k"),
            ("PGKEEP_AGE_IDENTITY", "AGE-SECRET-KEY-1X"),
            ("PGKEEP_AGE_IDENTITY_FILE", "/key"),
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

    /// The parent-death signal fires when the forking *thread* ends: a child started from a
    /// thread that ends at once must live on (it is forked by the long-lived spawner).
    #[test]
    fn a_child_outlives_the_thread_that_started_it() {
        let spec = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("sleep 0.5; echo alive");
        let running = std::thread::spawn(move || Running::spawn(&spec, Stdio::piped()).unwrap())
            .join()
            .unwrap();
        let mut running = running;
        let mut out = String::new();
        running
            .take_stdout()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let o = running.wait().unwrap();
        assert!(o.success(), "{}", o.describe());
        assert_eq!(out, "alive\n");
    }

    /// The child is armed to die with pgkeep (PR_GET_PDEATHSIG in the child says SIGKILL).
    #[test]
    fn a_child_dies_with_pgkeep() {
        let spec = Spec::new(Path::new("/usr/bin/python3")).arg("-c").arg(
            "import ctypes; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s), 0, 0, 0); print(s.value)",
        );
        let (o, out) = output(&spec, None).unwrap();
        assert!(o.success(), "{}", o.describe());
        assert_eq!(String::from_utf8_lossy(&out).trim(), "9");
    }

    /// A memory file named in the environment is readable by the child at the same path, as a
    /// regular 0600 file; a child whose environment does not name it has no descriptor of it.
    #[test]
    fn a_memory_file_reaches_only_the_child_that_names_it() {
        let mf = MemoryFile::new("test", b"secret contents\n").unwrap();
        let path = mf.path().display().to_string();
        assert!(path.starts_with(FD_PATH), "{path}");
        let read = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("cat \"$F\"; stat -L -c '%a %F' \"$F\"; cat \"$F\" >/dev/null && echo again")
            .env("F", path.clone());
        let (o, out) = output(&read, None).unwrap();
        assert!(o.success(), "{}", o.describe());
        assert_eq!(
            String::from_utf8_lossy(&out),
            "secret contents\n600 regular file\nagain\n"
        );
        let other = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg(format!("test -e {path} && echo leaked || echo absent"));
        let (_, out) = output(&other, None).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "absent\n");
        // A /proc/self/fd path that is not a memory file of ours is not passed on.
        let file = tempfile::tempfile().unwrap();
        let not_ours = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("test -e \"$F\" && echo leaked || echo absent")
            .env("F", format!("{FD_PATH}{}", file.as_raw_fd()));
        let (_, out) = output(&not_ours, None).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "absent\n");
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
