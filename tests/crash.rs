//! pgkeep killed with SIGKILL in the middle of a backup, at named fault points
//! (`PGKEEP_FAULT_POINT`) and at random moments, for every format. After every kill: nothing
//! uncommitted is listed, no child process of the run is left, no session is left in
//! `pg_stat_activity`, the password is nowhere on disk (TMPDIR and BACKUP_DIR), and the next backup
//! succeeds. Leftover `.partial` files are swept by the next run of the same database (decided
//! by the database's lock, never by age): a live run's and other databases' are left alone. A
//! killed `verify --restore --local` leaves its throwaway cluster running; the next one stops and
//! removes it, and only it.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::procs::{
    TableLock, find_bytes, killed_by_sigkill, processes_of, wait_for_process, wait_no_processes,
};
use common::*;

/// How long the server and the kernel get to end what a killed run left (both act
/// asynchronously: the backend notices the closed socket, the child receives its signal).
const SETTLE: Duration = Duration::from_secs(10);

/// The formats of a backup, as flags.
const FORMATS: &[(&str, &[&str])] = &[
    ("gzip", &[]),
    ("zstd", &["--compression", "zstd"]),
    ("none", &["--compression", "none"]),
    ("custom", &["--format", "custom"]),
];

/// A test database with a password of its own (searched for on disk after every kill), a few
/// MB of data (so that a dump takes long enough to be killed mid-way) and a private TMPDIR.
struct Crash {
    db: TestDb,
    tmp: tempfile::TempDir,
}

impl Crash {
    fn new() -> Crash {
        let password = format!("crash-pw-{}-{}", std::process::id(), unique("p"));
        let db = TestDb::create_named(&unique("crash"), &unique("role"), &password);
        db.sql_as_owner(SAMPLE);
        db.sql_as_owner(
            "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h, repeat('x', g % 40) AS pad FROM generate_series(1, 150000) g;",
        );
        Crash {
            db,
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    /// `pgkeep` with this database's environment and the private TMPDIR.
    fn command(&self) -> Command {
        let mut c = self.db.command();
        c.env("TMPDIR", self.tmp.path());
        c
    }

    fn backup(&self, flags: &[&str]) -> Command {
        let mut c = self.command();
        c.arg("backup").args(flags);
        c
    }

    /// Run to the end; returns the status and stderr.
    fn run(cmd: &mut Command) -> (ExitStatus, String) {
        let out = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `pgkeep list --json`: (file, status) of every entry.
    fn listed(&self) -> Vec<(String, String)> {
        let out = self.command().args(["list", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["file"].as_str().unwrap().to_string(),
                    e["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Data files that have their manifest: the committed backups.
    fn committed(&self) -> Vec<String> {
        self.db
            .files()
            .into_iter()
            .filter_map(|f| f.strip_suffix(".manifest.json").map(str::to_string))
            .collect()
    }

    fn partial_files(&self) -> Vec<String> {
        self.db
            .files()
            .into_iter()
            .filter(|f| f.ends_with(".partial"))
            .collect()
    }

    fn partials(&self) -> usize {
        self.db
            .files()
            .iter()
            .filter(|f| f.ends_with(".partial"))
            .count()
    }

    /// Files under TMPDIR and BACKUP_DIR that hold the password.
    fn password_on_disk(&self) -> Vec<String> {
        let mut hits = Vec::new();
        for root in [self.tmp.path(), self.db.backup_dir.as_path()] {
            find_bytes(root, self.db.password.as_bytes(), &mut hits);
        }
        hits
    }

    /// Every invariant after a kill, then the next backup, which must succeed.
    fn check_after_kill(&self, what: &str, flags: &[&str]) {
        let left = wait_no_processes(&self.db.name, SETTLE);
        assert!(left.is_empty(), "{what}: processes left: {left:?}");
        assert_eq!(
            self.db.wait_no_sessions(),
            0,
            "{what}: sessions left in pg_stat_activity"
        );
        let secrets = self.password_on_disk();
        assert!(
            secrets.is_empty(),
            "{what}: the password is on disk: {secrets:?}"
        );
        self.check_listing(what);
        let before = self.committed().len();
        let (status, stderr) = Crash::run(&mut self.backup(flags));
        assert!(status.success(), "{what}: the next backup failed: {stderr}");
        assert_eq!(self.committed().len(), before + 1, "{what}");
        self.check_listing(what);
        assert!(
            self.password_on_disk().is_empty(),
            "{what}: password on disk"
        );
    }

    /// Only committed backups are listed, each as good.
    fn check_listing(&self, what: &str) {
        let committed = self.committed();
        let mut good = 0;
        for (file, status) in self.listed() {
            if committed.contains(&file) {
                assert_eq!(
                    status, "good",
                    "{what}: {file} is committed but listed as {status}"
                );
                good += 1;
            } else {
                // A data file whose manifest never landed is no backup: listed as uncommitted.
                assert_eq!(
                    status, "uncommitted",
                    "{what}: listed but not committed: {file} ({status}); committed: {committed:?}"
                );
            }
        }
        assert_eq!(good, committed.len(), "{what}");
    }
}

fn sigkill(pid: u32) {
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// Today a custom-format pg_dump writes its file itself, so it went on after pgkeep was killed,
/// holding its session. It must die with pgkeep.
#[test]
fn custom_backup_killed_leaves_no_pg_dump_running() {
    let c = Crash::new();
    let lock = TableLock::take(&c.db, "routes");
    let mut child = c.backup(&["--format", "custom"]).spawn().unwrap();
    lock.wait_for_waiter();
    let dump = wait_for_process(&c.db.name, "pg_dump", SETTLE).expect("pg_dump runs");
    sigkill(child.id());
    child.wait().unwrap();
    let left = wait_no_processes(&c.db.name, SETTLE);
    lock.release();
    assert!(
        left.is_empty(),
        "pg_dump (pid {}) outlived pgkeep: {left:?}",
        dump.pid
    );
    c.check_after_kill(
        "custom, killed while pg_dump waits",
        &["--format", "custom"],
    );
}

/// Today every kill left the passfile in TMPDIR, in plain text.
#[test]
fn killed_backup_leaves_no_password_on_disk() {
    let c = Crash::new();
    let lock = TableLock::take(&c.db, "routes");
    let mut child = c.backup(&[]).spawn().unwrap();
    lock.wait_for_waiter();
    let in_tmp = c.password_on_disk();
    sigkill(child.id());
    child.wait().unwrap();
    lock.release();
    assert!(
        in_tmp.is_empty(),
        "the password is on disk while the backup runs: {in_tmp:?}"
    );
    let after = c.password_on_disk();
    assert!(
        after.is_empty(),
        "the password is on disk after the kill: {after:?}"
    );
    c.check_after_kill("gzip, killed while pg_dump waits", &[]);
}

/// Passfiles left in TMPDIR by older versions (which wrote them there) are removed at start.
#[test]
fn passfiles_left_by_older_versions_are_removed_at_start() {
    let c = Crash::new();
    let old = c.tmp.path().join(".pgkeep-pass-Ab12Cd");
    std::fs::write(&old, format!("*:*:*:*:{}\n", c.db.password)).unwrap();
    let other = c.tmp.path().join("unrelated-file");
    std::fs::write(&other, "keep me").unwrap();
    let (status, stderr) = Crash::run(&mut c.backup(&[]));
    assert!(status.success(), "{stderr}");
    assert!(!old.exists(), "the old passfile is still there");
    assert!(other.exists(), "an unrelated file was removed");
    assert!(
        stderr.contains("removed 1 passfile"),
        "one line says so: {stderr}"
    );
    assert!(c.password_on_disk().is_empty());
}

/// A pg_dump that outlives pgkeep despite everything (here: a wrapper that runs it in the
/// background, so the signal that kills pgkeep's direct child does not reach it) still holds the
/// database's lock: the next backup is refused and the lock's note names the child; once the
/// orphan is gone the next backup runs.
#[test]
fn a_pg_dump_that_outlives_pgkeep_keeps_the_lock() {
    let c = Crash::new();
    let dir = tempfile::tempdir().unwrap();
    let real = c.db.client_bindir().join("pg_dump");
    let wrapper = script(
        dir.path(),
        "pg_dump",
        &format!(
            "if [ \"$1\" = --version ]; then exec '{0}' --version; fi\n'{0}' \"$@\" &\nwait $!",
            real.display()
        ),
    );
    let lock = TableLock::take(&c.db, "routes");
    let mut child = c
        .backup(&["--format", "custom"])
        .env("PGKEEP_PG_DUMP", &wrapper)
        .spawn()
        .unwrap();
    lock.wait_for_waiter();
    let pgkeep_pid = child.id();
    sigkill(pgkeep_pid);
    child.wait().unwrap();
    // The wrapper died with pgkeep; the real pg_dump is an orphan now.
    let until = Instant::now() + SETTLE;
    let orphans = loop {
        let left = processes_of(&c.db.name);
        if left.len() <= 1 || Instant::now() > until {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        orphans.len(),
        1,
        "only the orphaned pg_dump is left: {orphans:?}"
    );

    let started = Instant::now();
    let out = assert_cmd::Command::from_std(c.backup(&["--format", "custom"]))
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(5),
        "refused while the orphan runs: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "fails fast");
    assert!(
        stderr.contains(&format!("by pid {pgkeep_pid}")) && stderr.contains("pg_dump pid "),
        "the note names pgkeep and its pg_dump: {stderr}"
    );

    lock.release();
    let gone = wait_no_processes(&c.db.name, Duration::from_secs(30));
    assert!(gone.is_empty(), "{gone:?}");
    let (status, stderr) = Crash::run(&mut c.backup(&["--format", "custom"]));
    assert!(status.success(), "{stderr}");
    c.check_listing("after the orphan ended");
}

/// The fault points a backup of `format` passes, with the hit that triggers the kill.
fn points(format: &str) -> Vec<&'static str> {
    let mut p = vec!["backup.locked", "backup.dump-started"];
    if format == "custom" {
        p.extend(["backup.replayed:1", "backup.replayed:3"]);
    } else {
        p.extend(["backup.streamed:1", "backup.streamed:5"]);
    }
    p.extend([
        "backup.dumped",
        "backup.data-renamed",
        "store.put-before-rename",
        "backup.committed",
    ]);
    p
}

/// Points where the data file of a gzip backup is in place but its manifest is not: the listing
/// must tell it from an old pod's legacy `.sql.gz` (see `gzip_data_without_manifest_is_not_listed`).
const GZIP_WITHOUT_MANIFEST: &[&str] = &["backup.data-renamed", "store.put-before-rename"];

#[test]
fn kills_at_every_fault_point_of_every_format() {
    let mut table = BTreeMap::new();
    for (format, flags) in FORMATS {
        let c = Crash::new();
        for point in points(format) {
            let what = format!("{format} killed at {point}");
            let (status, stderr) = Crash::run(c.backup(flags).env("PGKEEP_FAULT_POINT", point));
            assert!(
                killed_by_sigkill(status),
                "{what}: the point was not reached ({status}): {stderr}"
            );
            c.check_after_kill(&what, flags);
            *table.entry(format!("{format:6} {point}")).or_insert(0) += 1;
        }
        eprintln!("{format}: {} partial files left", c.partials());
    }
    eprintln!("kills per point:");
    for (k, n) in &table {
        eprintln!("  {k:40} {n}");
    }
    eprintln!("total aimed kills: {}", table.values().sum::<usize>());
}

/// A gzip backup killed after its data was renamed into place but before its manifest was
/// renamed leaves a `.sql.gz` that pgkeep made: it is listed as `uncommitted`, not as a legacy
/// backup of the old shell loop.
#[test]
fn gzip_data_without_manifest_is_not_listed() {
    let c = Crash::new();
    for point in GZIP_WITHOUT_MANIFEST {
        let (status, stderr) = Crash::run(c.backup(&[]).env("PGKEEP_FAULT_POINT", point));
        assert!(killed_by_sigkill(status), "{point}: {stderr}");
        c.check_after_kill(&format!("gzip killed at {point}"), &[]);
    }
}

/// A small deterministic generator: the seed is printed so a failure can be replayed with
/// `PGKEEP_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kills_at_random_moments_of_every_format() {
    const PER_FORMAT: usize = 6;
    let seed = std::env::var("PGKEEP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("PGKEEP_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut killed = 0;
    let mut finished = 0;
    for (format, flags) in FORMATS {
        let c = Crash::new();
        // How long a whole backup takes here: the kills land anywhere inside it.
        let t0 = Instant::now();
        let (status, stderr) = Crash::run(&mut c.backup(flags));
        assert!(status.success(), "{stderr}");
        let full = t0.elapsed().as_millis() as u64;
        for i in 0..PER_FORMAT {
            let delay = rng.next() % full.max(1);
            let mut child = c
                .backup(flags)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            sigkill(child.id());
            let status = child.wait().unwrap();
            let what = format!("{format} kill {i} after {delay} of {full} ms");
            if killed_by_sigkill(status) {
                killed += 1;
            } else {
                finished += 1;
            }
            // A gzip backup killed between its data and its manifest renames is listed as legacy
            // (the known defect above); the window is a few syscalls wide.
            if *format == "gzip" {
                let committed = c.committed();
                let stray: Vec<_> = c
                    .listed()
                    .into_iter()
                    .filter(|(f, _)| !committed.contains(f))
                    .collect();
                if !stray.is_empty() {
                    eprintln!("{what}: hit the known gzip window: {stray:?}");
                    for (f, _) in stray {
                        std::fs::remove_file(c.db.backup_dir.join(f)).unwrap();
                    }
                }
            }
            c.check_after_kill(&what, flags);
        }
        eprintln!("{format}: {} partial files left", c.partials());
    }
    eprintln!("random kills: {killed} killed mid-run, {finished} finished before the kill");
}

/// Partial files of the backup directory matching `pred`.
fn partials_where(c: &Crash, pred: impl Fn(&str) -> bool) -> Vec<String> {
    c.partial_files().into_iter().filter(|f| pred(f)).collect()
}

/// Leftovers are swept by the next run of the same database, decided by its lock: a killed
/// run's partial file goes (one line says so), a live run's stays, another database's stays
/// (its own next run sweeps it), a file pgkeep did not name stays; a run refused for a database
/// that does not exist leaves no lock file.
#[test]
fn leftovers_of_dead_runs_are_swept_and_only_those() {
    let c = Crash::new();
    let foreign = c.db.backup_dir.join("2026-01-01/notes.txt.partial");
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::write(&foreign, "not ours").unwrap();
    let (status, stderr) = Crash::run(c.backup(&[]).env("PGKEEP_FAULT_POINT", "backup.streamed:1"));
    assert!(killed_by_sigkill(status), "{stderr}");
    let dead = partials_where(&c, |f| f.contains(&c.db.name));
    assert_eq!(
        dead.len(),
        1,
        "the killed run left its partial file: {dead:?}"
    );

    // Another database's backup into the same directory leaves it alone.
    let other = TestDb::create(SAMPLE);
    let (status, stderr) = Crash::run(
        other
            .command()
            .env("BACKUP_DIR", &c.db.backup_dir)
            .env("TMPDIR", c.tmp.path())
            .arg("backup"),
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(partials_where(&c, |f| dead.contains(&f.to_string())), dead);

    // The next backup of the database sweeps it and, while it runs, its own partial file is
    // left alone by the other database's backup and culling.
    let lock = TableLock::take(&c.db, "routes");
    let live = c.backup(&[]).stderr(Stdio::piped()).spawn().unwrap();
    lock.wait_for_waiter();
    let own: Vec<String> = partials_where(&c, |f| f.contains(&c.db.name));
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(
        !dead.contains(&own[0]),
        "the dead run's file is gone: {own:?}"
    );
    for args in [&["backup"][..], &["prune", "--apply"][..]] {
        let (status, stderr) = Crash::run(
            other
                .command()
                .env("BACKUP_DIR", &c.db.backup_dir)
                .env("TMPDIR", c.tmp.path())
                .args(args),
        );
        assert!(status.success(), "{args:?}: {stderr}");
    }
    assert_eq!(partials_where(&c, |f| own.contains(&f.to_string())), own);
    // Culling of the database itself waits for its run (refused, busy) rather than sweep it.
    let (status, stderr) = Crash::run(c.command().args(["prune", "--apply"]));
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert_eq!(partials_where(&c, |f| own.contains(&f.to_string())), own);
    lock.release();
    let out = live.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("removed 1 unfinished file(s) left by a killed backup"),
        "one line says what was swept: {stderr}"
    );
    assert!(foreign.exists(), "a file pgkeep did not name was removed");
    assert_eq!(c.partial_files(), vec!["2026-01-01/notes.txt.partial"]);

    // A refused run leaves no lock file.
    let locks = |c: &Crash| -> Vec<String> {
        std::fs::read_dir(&c.db.backup_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".lock"))
            .collect()
    };
    let before = locks(&c);
    let (status, stderr) = Crash::run(
        c.backup(&[])
            .env("POSTGRESQL_DATABASE", "no_such_database_here"),
    );
    assert!(!status.success(), "{stderr}");
    assert_eq!(locks(&c), before, "the refused run left a lock file");
}

/// The pid in a cluster's `postmaster.pid`, when the server process is alive.
fn live_postmaster(dir: &std::path::Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

fn entries(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// `verify --restore --local` killed while its throwaway cluster runs: the server (daemonized
/// by pg_ctl) goes on; the next `verify --restore --local` stops and removes it, leaving a live
/// run's cluster and directories without a per-run lock alone, and ends its own.
#[test]
fn a_killed_verify_local_leaves_no_cluster_behind() {
    let c = Crash::new();
    let (status, stderr) = Crash::run(&mut c.backup(&[]));
    assert!(status.success(), "{stderr}");
    let verify = || {
        let mut cmd = c.command();
        cmd.args(["verify", "--restore", "--local"]);
        cmd
    };
    let (status, stderr) = Crash::run(verify().env("PGKEEP_FAULT_POINT", "verify.cluster-started"));
    assert!(killed_by_sigkill(status), "{stderr}");
    let left = entries(c.tmp.path(), "pgkeep-verify-");
    let dead_dir = left
        .iter()
        .find(|n| !n.ends_with(".lock"))
        .map(|n| c.tmp.path().join(n))
        .expect("the killed run's cluster directory");
    let dead_pid = live_postmaster(&dead_dir).expect("the killed run's server still runs");

    // A live run's cluster (its lock held here) and directories that are not pgkeep's.
    let live =
        pgkeep::lock::Lock::create_unique(c.tmp.path(), "pgkeep-verify-", "live run").unwrap();
    let live_dir = live.path().with_extension("");
    std::fs::create_dir(&live_dir).unwrap();
    std::fs::write(live_dir.join("f"), "x").unwrap();
    for foreign in ["pgkeep-verify-foreign", "pgkeep-cluster-demo"] {
        std::fs::create_dir(c.tmp.path().join(foreign)).unwrap();
    }

    let (status, stderr) = Crash::run(&mut verify());
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("stopped and removed 1 throwaway cluster(s)"),
        "one line says so: {stderr}"
    );
    let until = Instant::now() + SETTLE;
    while unsafe { libc::kill(dead_pid, 0) } == 0 {
        assert!(
            Instant::now() < until,
            "the dead run's server {dead_pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dead_dir.exists(), "the dead run's cluster is still there");
    let mut expected = vec![
        live.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        live_dir.file_name().unwrap().to_string_lossy().into_owned(),
        "pgkeep-verify-foreign".to_string(),
    ];
    expected.sort();
    assert_eq!(
        entries(c.tmp.path(), "pgkeep-verify-"),
        expected,
        "only the live run's cluster and the foreign directory are left"
    );
    assert!(live_dir.join("f").exists());
    assert!(c.tmp.path().join("pgkeep-cluster-demo").exists());
    assert!(c.password_on_disk().is_empty());
    drop(live);
}
