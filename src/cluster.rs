//! A throwaway PostgreSQL cluster in a temporary directory, made with the local server binaries:
//! used by `pgkeep demo` and by the integration tests. Unix socket only, no TCP. When running as
//! root the server programs run as the `postgres` OS user (the server refuses to run as root).
//!
//! The server is daemonized by `pg_ctl` (and started through `runuser` as root, which clears a
//! parent-death signal), so it outlives a pgkeep killed with SIGKILL. A cluster that belongs to
//! one run ([`TempCluster::start_owned`], `verify --local`) therefore sits beside a per-run lock
//! of the same name (`TMPDIR/pgkeep-verify-XXXX.lock`, see [`crate::lock`]): whoever finds that
//! lock free knows the run is dead and stops and removes the cluster ([`sweep_dead`]); a live
//! run's cluster, and any directory without such a lock, is never touched.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::lock::Lock;

/// The name prefix of the clusters (and their per-run locks) of `verify --local`.
pub const RUN_PREFIX: &str = "pgkeep-verify-";

/// A running throwaway cluster; stopped and removed on drop unless `keep` is set.
pub struct TempCluster {
    dir: PathBuf,
    bindir: PathBuf,
    run_as: Option<String>,
    pub port: u16,
    pub keep: bool,
    stopped: bool,
    /// The per-run lock of an owned cluster: its file goes last, after the cluster.
    run_lock: Option<Lock>,
}

/// The server bin directory: `pg_bindir` if given, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` that has `initdb`.
pub fn server_bindir(pg_bindir: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = pg_bindir
        && d.join("initdb").is_file()
    {
        return Ok(d.to_path_buf());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if d.join("initdb").is_file() {
            return Ok(d);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let b = e.path().join("bin");
            b.join("initdb").is_file().then_some((v, b))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, b)) => Ok(b),
        None => bail!(
            "no PostgreSQL server binaries found (initdb); install the postgresql server package or set PGKEEP_PG_BINDIR"
        ),
    }
}

/// A server bin directory of PostgreSQL `need` or newer (the exact major preferred, else the
/// oldest newer one; never an older one) that has `initdb`, `pg_ctl` and `postgres`: in
/// `pg_bindir` (PGKEEP_PG_BINDIR), `/usr/lib/postgresql/N/bin`, `/usr/pgsql-N/bin`, then `PATH`.
/// `need == 0` (a dump of unknown major): as [`server_bindir`]. `Err` names what was found and
/// what to install.
pub fn server_bindir_for(
    need: u32,
    pg_bindir: Option<&Path>,
    path_env: Option<std::ffi::OsString>,
) -> std::result::Result<(PathBuf, u32), String> {
    use crate::pg::tools::{Search, installed, probe};
    if need == 0 {
        let d = server_bindir(pg_bindir).map_err(|e| format!("{e:#}"))?;
        let major = probe("postgres", &d.join("postgres")).map_or(0, |t| t.major);
        return Ok((d, major));
    }
    let mut found: Vec<crate::pg::tools::Tool> = pg_bindir
        .and_then(|d| probe("postgres", &d.join("postgres")).ok())
        .into_iter()
        .collect();
    found.extend(installed(
        "postgres",
        &Search {
            bindir: None,
            path_env,
        },
    ));
    let complete = |t: &crate::pg::tools::Tool| {
        t.path
            .parent()
            .is_some_and(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    };
    let pick = found
        .iter()
        .filter(|t| t.major == need && complete(t))
        .chain({
            let mut newer: Vec<_> = found
                .iter()
                .filter(|t| t.major > need && complete(t))
                .collect();
            newer.sort_by_key(|t| t.major);
            newer
        })
        .next();
    match pick {
        Some(t) => Ok((
            t.path
                .parent()
                .expect("a program's directory")
                .to_path_buf(),
            t.major,
        )),
        None => Err(format!(
            "no PostgreSQL {need} server here (or a newer one) to load the dump into; found: {}; install the PostgreSQL {need} server (initdb, pg_ctl, postgres) and point PGKEEP_PG_BINDIR at its bin directory",
            if found.is_empty() {
                "none".to_string()
            } else {
                found
                    .iter()
                    .map(|t| format!("{} ({})", t.version, t.path.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
    }
}

impl TempCluster {
    /// initdb and start a cluster. Superuser `postgres` logs in without password over the
    /// socket; every other role must use its password (scram-sha-256).
    pub fn start(bindir: &Path) -> Result<TempCluster> {
        Self::start_with(bindir, 5432, "", "")
    }

    /// Like `start`, with a port, extra `postgresql.conf` lines (they win over the defaults) and
    /// extra `pg_hba.conf` lines (checked before the defaults). Files named in `extra_conf` that
    /// live in the cluster directory are readable by the server.
    pub fn start_with(
        bindir: &Path,
        port: u16,
        extra_conf: &str,
        extra_hba: &str,
    ) -> Result<TempCluster> {
        let dir = tempfile::Builder::new()
            .prefix("pgkeep-cluster-")
            .tempdir()
            .context("cannot create a temporary directory for the cluster")?
            .keep();
        Self::start_in(dir, None, bindir, port, extra_conf, extra_hba)
    }

    /// A cluster of this run in `tmp`, made beside its per-run lock (noted with `holder`), so
    /// that the next [`sweep_dead`] removes it if pgkeep is killed before it ends.
    pub fn start_owned(bindir: &Path, tmp: &Path, holder: &str) -> Result<TempCluster> {
        let lock = Lock::create_unique(tmp, RUN_PREFIX, holder)
            .context("cannot create the lock of the throwaway cluster")?;
        let dir = lock.path().with_extension("");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Self::start_in(dir, Some(lock), bindir, 5432, "", "")
    }

    fn start_in(
        dir: PathBuf,
        run_lock: Option<Lock>,
        bindir: &Path,
        port: u16,
        extra_conf: &str,
        extra_hba: &str,
    ) -> Result<TempCluster> {
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .context("running as root needs a `postgres` OS user to run the server")?;
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .context("cannot hand the cluster directory to the postgres user")?;
            Some("postgres".to_string())
        } else {
            None
        };
        let mut c = TempCluster {
            dir,
            bindir: bindir.to_path_buf(),
            run_as,
            port,
            keep: false,
            stopped: true,
            run_lock,
        };
        let data = c.data_dir();
        let pwfile = c.dir.join("initdb.pw");
        std::fs::write(&pwfile, "postgres\n")?;
        c.chown(&pwfile)?;
        c.server_cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .run_quiet()
            .context("initdb failed")?;
        let _ = std::fs::remove_file(&pwfile);
        let hba = format!("{extra_hba}\nlocal all postgres trust\nlocal all all scram-sha-256\n");
        std::fs::write(data.join("pg_hba.conf"), hba)?;
        let conf = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nport = {}\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\nshared_buffers = 128MB\nlog_min_messages = warning\n",
            c.dir.display(),
            c.port
        ) + extra_conf;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        std::io::Write::write_all(&mut f, conf.as_bytes())?;
        c.server_cmd("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(c.dir.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .run_quiet()
            .with_context(|| {
                format!(
                    "pg_ctl start failed; see {}",
                    c.dir.join("server.log").display()
                )
            })?;
        c.stopped = false;
        Ok(c)
    }

    /// Give a file in the cluster directory to the server's OS user.
    pub fn chown(&self, p: &Path) -> Result<()> {
        if self.run_as.is_some() {
            let user = nix::unistd::User::from_name("postgres")?.context("postgres user")?;
            nix::unistd::chown(p, Some(user.uid), Some(user.gid))?;
        }
        Ok(())
    }

    fn server_cmd(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.current_dir(&self.dir);
        cmd.env_remove("PGDATA").env("LC_ALL", "C.UTF-8");
        cmd
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The psql command line a user types to connect to `db` as the superuser.
    pub fn psql_argv(&self, db: &str) -> Vec<String> {
        vec![
            self.bindir.join("psql").display().to_string(),
            "-h".into(),
            self.dir.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
            "-d".into(),
            db.into(),
        ]
    }

    /// The pg_ctl command line that stops the server (as the `postgres` OS user when run as root).
    pub fn stop_argv(&self) -> Vec<String> {
        let mut argv = match &self.run_as {
            Some(user) => vec!["runuser".into(), "-u".into(), user.clone(), "--".into()],
            None => Vec::new(),
        };
        argv.push(self.bindir.join("pg_ctl").display().to_string());
        argv.extend([
            "-D".into(),
            self.data_dir().display().to_string(),
            "-m".into(),
            "fast".into(),
            "-w".into(),
            "stop".into(),
        ]);
        argv
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The Unix socket directory (use as host).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Run SQL as the superuser with psql (ON_ERROR_STOP); returns stdout.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d"])
            // As a connection string, so that a name with `=` or a URI prefix is a name.
            .arg(format!(
                "dbname='{}'",
                db.replace('\\', "\\\\").replace('\'', "\\'")
            ))
            .env_remove("PGPASSWORD")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .env_remove("PGUSER")
            .env_remove("PGDATABASE")
            .env("PGAPPNAME", "pgkeep-cluster")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("piped");
                let sql = sql.to_string();
                let w = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
                let out = child.wait_with_output();
                let _ = w.join();
                out
            })
            .context("cannot run psql")?;
        if !out.status.success() {
            bail!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace('\n', " | ")
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stop the server now (fast shutdown).
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.server_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"])
            .run_quiet()
    }

    /// Start it again after `stop`.
    pub fn restart(&mut self) -> Result<()> {
        self.server_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .run_quiet()?;
        self.stopped = false;
        Ok(())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if !self.stopped {
            self.stopped = true;
            let _ = self
                .server_cmd("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "stop"])
                .run_quiet();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(lock) = self.run_lock.take()
            && !self.dir.exists()
        {
            let _ = lock.remove_taken();
        }
    }
}

/// Stop and remove the throwaway clusters in `tmp` whose runs are dead (their per-run lock is
/// free), with the server programs of `bindir`. Returns the directories removed.
pub fn sweep_dead(tmp: &Path, bindir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries =
        std::fs::read_dir(tmp).with_context(|| format!("cannot read {}", tmp.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(RUN_PREFIX) && name.ends_with(".lock")) {
            continue;
        }
        let Some(lock) = Lock::take_dead(&e.path())? else {
            continue;
        };
        let dir = e.path().with_extension("");
        let had_cluster = dir.exists();
        // Dropped, it stops the server (immediate), removes the directory, then the lock.
        drop(TempCluster {
            run_as: nix::unistd::geteuid()
                .is_root()
                .then(|| "postgres".to_string()),
            dir: dir.clone(),
            bindir: bindir.to_path_buf(),
            port: 0,
            keep: false,
            stopped: !dir.join("data").join("postmaster.pid").exists(),
            run_lock: Some(lock),
        });
        if had_cluster {
            removed.push(dir);
        }
    }
    Ok(removed)
}

trait RunQuiet {
    fn run_quiet(&mut self) -> Result<()>;
}

impl RunQuiet for Command {
    fn run_quiet(&mut self) -> Result<()> {
        let out = self
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run {:?}", self.get_program()))?;
        if !out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stdout));
            bail!("{}", crate::process::tail_lines(text.as_bytes(), 3));
        }
        Ok(())
    }
}
