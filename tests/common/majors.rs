//! The PostgreSQL majors the matrix covers (13-18): the builds `.ci/pg-majors` installs under
//! `target/pg/<major>/`, one throwaway cluster per major started on first use in a test binary,
//! and the client tools that go with each server (its own, or the nearest newer major's for a
//! server-only build).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};

use pgkeep::cluster::TempCluster;

use super::ClusterInfo;

/// Every supported major, oldest first.
pub const MAJORS: [u32; 6] = [13, 14, 15, 16, 17, 18];

/// The client programs pgkeep runs.
pub const CLIENT_TOOLS: [&str; 3] = ["pg_dump", "pg_restore", "psql"];

/// Where `.ci/pg-majors` installs the builds: `PGKEEP_TEST_PG_ROOT`, else `target/pg` of this
/// checkout (the script reads the same variable).
pub fn pg_root() -> PathBuf {
    std::env::var_os("PGKEEP_TEST_PG_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pg"))
}

/// The `bin` directory of `major`'s build. Panics, naming the fix, when it is not installed: a
/// missing major is a failure, never a skip.
pub fn bindir_of(major: u32) -> PathBuf {
    assert!(
        MAJORS.contains(&major),
        "PostgreSQL {major} is not in the matrix {MAJORS:?}"
    );
    let d = pg_root().join(major.to_string()).join("bin");
    if !(d.join("postgres").is_file() && d.join("initdb").is_file()) {
        fetch_majors();
    }
    assert!(
        d.join("postgres").is_file() && d.join("initdb").is_file(),
        "PostgreSQL {major} is not installed at {}: run .ci/pg-majors (it fetches 13-18 into target/pg)",
        d.display()
    );
    d
}

/// Run `.ci/pg-majors` once per test process (serialized across test binaries by a lock file),
/// so that `cargo test` on a fresh clone fetches the builds itself. Its failure is the test's.
fn fetch_majors() {
    static FETCH: Once = Once::new();
    FETCH.call_once(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(root.join("target")).expect("create target/");
        let status = std::process::Command::new("flock")
            .arg(root.join("target/pg-majors.lock"))
            .arg(root.join(".ci/pg-majors"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run .ci/pg-majors");
        assert!(
            status.success(),
            ".ci/pg-majors failed (see its message above)"
        );
    });
}

/// True when `major`'s build has its own pg_dump, pg_restore and psql (13 is a server-only build).
pub fn has_client_tools(major: u32) -> bool {
    let d = bindir_of(major);
    CLIENT_TOOLS.iter().all(|t| d.join(t).is_file())
}

/// The client tools used with a server of `major`: `(their major, their bin directory)`. Its own
/// when the build has them, else those of the oldest newer major that has them: the same choice
/// pgkeep makes when the server's major is not installed.
pub fn clients_for(major: u32) -> (u32, PathBuf) {
    MAJORS
        .iter()
        .copied()
        .filter(|m| *m >= major)
        .find(|m| has_client_tools(*m))
        .map(|m| (m, bindir_of(m)))
        .unwrap_or_else(|| {
            panic!(
                "no client tools of PostgreSQL {major} or newer under {}",
                pg_root().display()
            )
        })
}

/// A running throwaway cluster of one major.
pub struct Major {
    pub major: u32,
    /// `SHOW server_version`, e.g. `13.23`.
    pub server_version: String,
    /// Socket directory, port, and the server's bin directory (`target/pg/<major>/bin`).
    pub info: ClusterInfo,
    /// The client tools used with this server (`PGKEEP_PG_BINDIR` of `TestDb::pgkeep`).
    pub clients: PathBuf,
    /// Their major: `major` itself, or newer for a server-only build.
    pub clients_major: u32,
    cluster: Mutex<Option<TempCluster>>,
}

static CLUSTERS: [OnceLock<Major>; MAJORS.len()] = [const { OnceLock::new() }; MAJORS.len()];
static AT_EXIT: Once = Once::new();

extern "C" fn stop_majors() {
    for slot in &CLUSTERS {
        if let Some(m) = slot.get()
            && let Ok(mut g) = m.cluster.lock()
        {
            drop(g.take());
        }
    }
}

/// The cluster of `major` in this test binary, started on first use (clusters of different
/// majors start concurrently when tests ask for them from different threads). Panics when the
/// build is missing or the server does not start.
pub fn cluster_of(major: u32) -> &'static Major {
    let i = MAJORS
        .iter()
        .position(|m| *m == major)
        .unwrap_or_else(|| panic!("PostgreSQL {major} is not in the matrix {MAJORS:?}"));
    CLUSTERS[i].get_or_init(|| {
        let bindir = bindir_of(major);
        let (clients_major, clients) = clients_for(major);
        let c = TempCluster::start(&bindir).unwrap_or_else(|e| {
            panic!(
                "start the PostgreSQL {major} cluster ({}): {e:#}",
                bindir.display()
            )
        });
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(stop_majors);
        });
        let info = ClusterInfo {
            socket_dir: c.socket_dir().to_path_buf(),
            port: c.port,
            bindir: c.bindir().to_path_buf(),
        };
        let mut m = Major {
            major,
            server_version: String::new(),
            info,
            clients,
            clients_major,
            cluster: Mutex::new(Some(c)),
        };
        m.server_version = m.psql("postgres", "SHOW server_version").trim().to_string();
        assert!(
            m.server_version.starts_with(&format!("{major}.")),
            "the PostgreSQL {major} build runs server {}",
            m.server_version
        );
        m
    })
}

impl std::fmt::Debug for Major {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Major")
            .field("major", &self.major)
            .field("server_version", &self.server_version)
            .field("info", &self.info)
            .field("clients", &self.clients)
            .field("clients_major", &self.clients_major)
            .finish_non_exhaustive()
    }
}

impl Major {
    /// True when this server's own major has client tools here.
    pub fn own_clients(&self) -> bool {
        self.clients_major == self.major
    }

    /// A client program of this server's client tools.
    pub fn client(&self, tool: &str) -> PathBuf {
        self.clients.join(tool)
    }

    /// Run SQL as superuser on `db`; panics on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("PostgreSQL {}: {e}", self.major))
    }

    /// Run SQL as superuser on `db` with this server's client psql (ON_ERROR_STOP).
    pub fn try_psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        super::run_psql(&self.client("psql"), &self.info, db, sql)
    }

    /// A new database on this server, owned by its own login role, with `sql` run as the owner.
    pub fn create_db(&'static self, sql: &str) -> super::TestDb {
        super::TestDb::create_in(Some(self), sql)
    }

    /// The server log so far (for failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.info.socket_dir.join("server.log")).unwrap_or_default()
    }
}

/// A server of one test alone, of the local server binaries, for a test that stops and starts
/// it (`stop_server`, `start_server`): the shared cluster of the binary must stay up for the
/// others. Stopped and removed when the returned guard is dropped.
pub fn private_server() -> PrivateServer {
    let bindir = super::cluster().bindir.clone();
    let c = TempCluster::start(&bindir).expect("start a private cluster");
    let info = ClusterInfo {
        socket_dir: c.socket_dir().to_path_buf(),
        port: c.port,
        bindir: bindir.clone(),
    };
    let mut m = Major {
        major: 0,
        server_version: String::new(),
        info,
        clients: bindir,
        clients_major: 0,
        cluster: Mutex::new(Some(c)),
    };
    m.server_version = m.psql("postgres", "SHOW server_version").trim().to_string();
    m.major = m.server_version.split('.').next().unwrap().parse().unwrap();
    m.clients_major = m.major;
    PrivateServer(Box::leak(Box::new(m)))
}

/// See [`private_server`].
pub struct PrivateServer(pub &'static Major);

impl PrivateServer {
    pub fn stop_server(&self) {
        let mut g = self.0.cluster.lock().unwrap();
        g.as_mut().unwrap().stop().unwrap();
    }

    pub fn start_server(&self) {
        let mut g = self.0.cluster.lock().unwrap();
        g.as_mut().unwrap().restart().unwrap();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.cluster.lock() {
            drop(g.take());
        }
    }
}
