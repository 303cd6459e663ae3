//! Test harness shared by the integration tests: one throwaway PostgreSQL cluster per test
//! binary (stopped and removed at exit), a fresh database and role per test, and a `pgkeep`
//! command with a clean environment pointing at them. `majors` adds one cluster per supported
//! major (13-18) for the version matrix.

#![allow(dead_code)]

pub mod daemon;
pub mod majors;
pub mod procs;
pub mod pty;
pub mod server;

#[allow(unused_imports)]
pub use majors::{MAJORS, Major, cluster_of};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use pgkeep::cluster::{TempCluster, server_bindir};

static CLUSTER: OnceLock<Mutex<Option<TempCluster>>> = OnceLock::new();
static INFO: OnceLock<ClusterInfo> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);
static EXTRA_CONF: OnceLock<String> = OnceLock::new();

/// What tests need to know about the shared cluster.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub socket_dir: PathBuf,
    pub port: u16,
    pub bindir: PathBuf,
}

extern "C" fn stop_cluster() {
    if let Some(m) = CLUSTER.get()
        && let Ok(mut g) = m.lock()
    {
        drop(g.take());
    }
}

/// Extra `postgresql.conf` lines for this binary's cluster (e.g. `max_prepared_transactions`);
/// every caller must pass the same lines, before or at the first use of the cluster.
pub fn configure_cluster(conf: &str) -> &'static ClusterInfo {
    let set = EXTRA_CONF.get_or_init(|| conf.to_string());
    assert_eq!(set, conf, "the test cluster was configured differently");
    cluster()
}

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static ClusterInfo {
    INFO.get_or_init(|| {
        let bindir = server_bindir(
            std::env::var_os("PGKEEP_PG_BINDIR")
                .as_deref()
                .map(Path::new),
        )
        .expect("PostgreSQL server binaries");
        let conf = EXTRA_CONF.get_or_init(String::new);
        let c = TempCluster::start_with(&bindir, 5432, conf, "").expect("start the test cluster");
        let info = ClusterInfo {
            socket_dir: c.socket_dir().to_path_buf(),
            port: c.port,
            bindir: c.bindir().to_path_buf(),
        };
        CLUSTER
            .set(Mutex::new(Some(c)))
            .ok()
            .expect("cluster set once");
        unsafe {
            libc::atexit(stop_cluster);
        }
        info
    })
}

/// Run SQL as superuser on `db`; panics on failure.
pub fn psql(db: &str, sql: &str) -> String {
    try_psql(db, sql).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_psql(db: &str, sql: &str) -> anyhow::Result<String> {
    cluster();
    let g = CLUSTER.get().unwrap().lock().unwrap();
    g.as_ref().expect("cluster running").psql(db, sql)
}

/// Run SQL as superuser on `db` of the server at `info` with the psql at `psql` (ON_ERROR_STOP,
/// unaligned, tuples only); returns stdout.
pub fn run_psql(psql: &Path, info: &ClusterInfo, db: &str, sql: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(psql)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&info.socket_dir)
        .args(["-p", &info.port.to_string(), "-U", "postgres", "-d", db])
        .env_clear()
        .env("PGAPPNAME", "pgkeep-tests")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", psql.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let sql = sql.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        anyhow::bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " | ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// SQL as superuser on `db` of `server` (`None`: the binary's shared cluster); panics on failure.
fn psql_on(server: Option<&'static Major>, db: &str, sql: &str) -> String {
    match server {
        Some(m) => m.psql(db, sql),
        None => psql(db, sql),
    }
}

/// A database of one test, owned by its own login role with a password.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub name: String,
    pub user: String,
    pub password: String,
    pub backup_dir: PathBuf,
    /// The server it lives on: `None` for the binary's shared cluster, else a major's cluster.
    pub server: Option<&'static Major>,
    _tmp: std::sync::Arc<tempfile::TempDir>,
}

/// A unique lower-case suffix for names.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

impl TestDb {
    /// A new database `name` (quoted as needed) with owner `user` and `password`.
    pub fn create_named(name: &str, user: &str, password: &str) -> TestDb {
        Self::create_named_in(None, name, user, password)
    }

    /// Like `create_named`, on `server` (`None`: the binary's shared cluster).
    pub fn create_named_in(
        server: Option<&'static Major>,
        name: &str,
        user: &str,
        password: &str,
    ) -> TestDb {
        use pgkeep::pg::ident::{quote_ident, quote_literal};
        psql_on(
            server,
            "postgres",
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD {};\nCREATE DATABASE {} OWNER {};",
                quote_ident(user),
                quote_literal(password),
                quote_ident(name),
                quote_ident(user)
            ),
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let backup_dir = tmp.path().join("backups");
        std::fs::create_dir(&backup_dir).unwrap();
        TestDb {
            name: name.into(),
            user: user.into(),
            password: password.into(),
            backup_dir,
            server,
            _tmp: std::sync::Arc::new(tmp),
        }
    }

    /// A new database with generated names and the given SQL run as its owner.
    pub fn create(sql: &str) -> TestDb {
        Self::create_in(None, sql)
    }

    /// Like `create`, on `server` (`None`: the binary's shared cluster).
    pub fn create_in(server: Option<&'static Major>, sql: &str) -> TestDb {
        let db = TestDb::create_named_in(server, &unique("db"), &unique("role"), "pw-secret");
        if !sql.is_empty() {
            db.sql_as_owner(sql);
        }
        db
    }

    /// Connection facts of the server this database lives on.
    pub fn info(&self) -> &'static ClusterInfo {
        match self.server {
            Some(m) => &m.info,
            None => cluster(),
        }
    }

    /// The client tools `pgkeep()` is given (`PGKEEP_PG_BINDIR`).
    pub fn client_bindir(&self) -> &'static Path {
        match self.server {
            Some(m) => &m.clients,
            None => &cluster().bindir,
        }
    }

    pub fn sql(&self, sql: &str) -> String {
        psql_on(self.server, &self.name, sql)
    }

    pub fn sql_as_owner(&self, sql: &str) -> String {
        psql_on(
            self.server,
            &self.name,
            &format!(
                "SET ROLE {};\n{sql}",
                pgkeep::pg::ident::quote_ident(&self.user)
            ),
        )
    }

    /// `pgkeep` with a clean environment configured like the old backup pod.
    pub fn pgkeep(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command())
    }

    /// The same as a plain `std::process::Command`, for long-running children (the daemon).
    pub fn command(&self) -> std::process::Command {
        let info = self.info();
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("pgkeep"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", std::env::temp_dir())
            .env("DATABASE_SERVICE_NAME", &info.socket_dir)
            .env("PGPORT", info.port.to_string())
            .env("POSTGRESQL_USER", &self.user)
            .env("POSTGRESQL_PASSWORD", &self.password)
            .env("POSTGRESQL_DATABASE", &self.name)
            .env("BACKUP_DIR", &self.backup_dir)
            .env("PGKEEP_PG_BINDIR", self.client_bindir());
        cmd
    }

    /// Files under the backup directory, relative, sorted (lock files excluded).
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.backup_dir, &self.backup_dir, &mut out);
        out.sort();
        out
    }

    /// Sessions of this database other than ours.
    pub fn sessions(&self) -> u64 {
        psql_on(
            self.server,
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                pgkeep::pg::ident::quote_literal(&self.name)
            ),
        )
        .trim()
        .parse()
        .unwrap()
    }

    /// Wait up to 10 s for the database to have no sessions; return the count left.
    pub fn wait_no_sessions(&self) -> u64 {
        for _ in 0..100 {
            if self.sessions() == 0 {
                return 0;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.sessions()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") {
            continue;
        }
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

/// Write an executable script (for a misbehaving pg_dump); returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A small schema with data for round trips.
pub const SAMPLE: &str = r#"
CREATE TABLE "SBI_USER" (id serial PRIMARY KEY, "USERNAME" text NOT NULL);
INSERT INTO "SBI_USER" ("USERNAME") SELECT 'user' || g FROM generate_series(1, 300) g;
CREATE TABLE routes (id int PRIMARY KEY, note text);
INSERT INTO routes SELECT g, repeat('x', g % 50) FROM generate_series(1, 1000) g;
"#;
