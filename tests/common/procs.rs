//! Watching the processes and locks of a test database: which processes (pg_dump, pg_restore,
//! psql, wrappers) still work on it, found through `/proc` by the `PGDATABASE` pgkeep gives its
//! children, and a table lock held from another session so that a dump hangs mid-way.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestDb;

/// A process found in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
}

/// The parent pid and name of `pid`, from `/proc/PID/stat` (the name may hold spaces and
/// parentheses, so it ends at the last `)`).
fn stat_of(pid: i32) -> Option<(i32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?;
    if state == "Z" {
        return None;
    }
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, comm))
}

/// Every live process whose environment says `PGDATABASE=<db>`: the children pgkeep starts for
/// the database (and their descendants, which inherit the environment).
pub fn processes_of(db: &str) -> Vec<Proc> {
    let needle = format!("PGDATABASE={db}");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        if let Some((ppid, comm)) = stat_of(pid) {
            out.push(Proc { pid, ppid, comm });
        }
    }
    out
}

/// Wait up to `bound` for no process of `db` to be left; returns what is left.
pub fn wait_no_processes(db: &str, bound: Duration) -> Vec<Proc> {
    let until = Instant::now() + bound;
    loop {
        let left = processes_of(db);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait up to `bound` for a process named `comm` working on `db`.
pub fn wait_for_process(db: &str, comm: &str, bound: Duration) -> Option<Proc> {
    let until = Instant::now() + bound;
    while Instant::now() < until {
        if let Some(p) = processes_of(db).into_iter().find(|p| p.comm == comm) {
            return Some(p);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// An ACCESS EXCLUSIVE lock on a table of a test database, held by a psql session until
/// released: a pg_dump started meanwhile connects and then waits for it.
pub struct TableLock {
    db: TestDb,
    table: String,
    psql: Option<Child>,
}

impl TableLock {
    /// Take the lock on `table` (a plain lower-case name) and wait until it is granted.
    pub fn take(db: &TestDb, table: &str) -> TableLock {
        let info = db.info();
        let psql = Command::new(info.bindir.join("psql"))
            .args(["-X", "-q", "-h"])
            .arg(&info.socket_dir)
            .args([
                "-p",
                &info.port.to_string(),
                "-U",
                "postgres",
                "-d",
                &db.name,
            ])
            .args([
                "-c",
                &format!(
                    "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);"
                ),
            ])
            .env("PGAPPNAME", "pgkeep-tests-locker")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let waited = Instant::now();
        while db
            .sql(&format!(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
            ))
            .trim()
            != "1"
        {
            assert!(waited.elapsed() < Duration::from_secs(20), "lock not taken");
            std::thread::sleep(Duration::from_millis(50));
        }
        TableLock {
            db: db.clone(),
            table: table.into(),
            psql: Some(psql),
        }
    }

    /// Wait until a session of pgkeep's children waits for the lock.
    pub fn wait_for_waiter(&self) {
        let waited = Instant::now();
        loop {
            let n = self.db.sql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock' AND application_name = 'pgkeep'",
                self.db.name
            ));
            if n.trim() != "0" {
                return;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "nothing waits for the lock on {}",
                self.table
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// End the session that holds the lock (killing psql alone leaves its backend asleep).
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(mut psql) = self.psql.take() {
            self.db.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgkeep-tests-locker' AND datname = current_database()",
            );
            let _ = psql.kill();
            let _ = psql.wait();
        }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.end();
    }
}

/// The files under `dir` (recursively, symlinks not followed) whose bytes contain `needle`:
/// where a password would be if one had been left on disk.
pub fn find_bytes(dir: &std::path::Path, needle: &[u8], hits: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            find_bytes(&p, needle, hits);
        } else if meta.is_file()
            && let Ok(data) = std::fs::read(&p)
            && memchr::memmem::find(&data, needle).is_some()
        {
            hits.push(p.display().to_string());
        }
    }
}

/// Whether a child ended by SIGKILL (a fault point's kill, or the test's own).
pub fn killed_by_sigkill(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL)
}
