//! A PostgreSQL server of a test's own (not the shared cluster), so that `databases = all` and a
//! recovery see only what the test made, with a backup directory and `pgkeep` configured for it.

use std::path::{Path, PathBuf};

use pgkeep::cluster::{TempCluster, server_bindir};

/// A server of its own and a backup directory, with `pgkeep` configured for the set.
pub struct Server {
    pub cluster: TempCluster,
    pub backup_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

impl Server {
    pub fn start() -> Server {
        let bindir = server_bindir(
            std::env::var_os("PGKEEP_PG_BINDIR")
                .as_deref()
                .map(Path::new),
        )
        .expect("PostgreSQL server binaries");
        // A port of its own per server: the socket files live in each cluster's directory.
        let port = 5433 + PORT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let cluster = TempCluster::start_with(&bindir, port, "", "").expect("start a server");
        let tmp = tempfile::tempdir().unwrap();
        let backup_dir = tmp.path().join("backups");
        std::fs::create_dir(&backup_dir).unwrap();
        Server {
            cluster,
            backup_dir,
            _tmp: tmp,
        }
    }

    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.cluster.psql(db, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `pgkeep` as the superuser over the socket, with `env` added.
    pub fn pgkeep(&self, env: &[(&str, &str)]) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command(env))
    }

    /// The same as a plain `std::process::Command`, for long-running children (the daemon).
    pub fn command(&self, env: &[(&str, &str)]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("pgkeep"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", std::env::temp_dir())
            .env("DATABASE_SERVICE_NAME", self.cluster.socket_dir())
            .env("PGPORT", self.cluster.port.to_string())
            .env("POSTGRESQL_USER", "postgres")
            .env("BACKUP_DIR", &self.backup_dir)
            .env("PGKEEP_PG_BINDIR", self.cluster.bindir());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The databases with committed backups, each with its number of backups.
    pub fn backups(&self) -> std::collections::BTreeMap<String, usize> {
        let out = self.pgkeep(&[]).args(["list", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for e in list {
            if e["status"] == "good" {
                *counts
                    .entry(e["database"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
        }
        counts
    }
}
