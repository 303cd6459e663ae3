//! One fidelity run of a corpus case: build the original from its SQL file, back it up with
//! `pgkeep backup` in each format, bring it back every way (a restore into a new database,
//! with and without parallel jobs, a swap over the live database, an in-place restore,
//! `verify --restore` on the server and `--local`, and the old runbook `gunzip -c FILE | psql`),
//! and compare each result with the original. The rows become the comparison table.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::snapshot::ASPECTS;
use super::target::{As, PASSWORD, Target, feed, one_line, pgkeep_offers, show};

/// A backup format, as `pgkeep backup` is told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gzip,
    Zstd,
    Custom,
}

pub const FORMATS: [Format; 3] = [Format::Gzip, Format::Zstd, Format::Custom];

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "plain+gzip",
            Format::Zstd => "plain+zstd",
            Format::Custom => "custom",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Format::Gzip => "gz",
            Format::Zstd => "zst",
            Format::Custom => "fc",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Format::Gzip => &["--format", "plain", "--compression", "gzip"],
            Format::Zstd => &["--format", "plain", "--compression", "zstd"],
            Format::Custom => &["--format", "custom"],
        }
    }
}

/// A way back from a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// `pgkeep restore --target-database COPY` with `--jobs N`.
    Copy(u16),
    /// `pgkeep restore` over the live database (the default strategy).
    Swap,
    /// `pgkeep restore --in-place`.
    InPlace,
    /// `pgkeep verify ID --restore` (a scratch database on the server).
    Verify,
    /// `pgkeep verify ID --restore --local` (a throwaway cluster).
    VerifyLocal,
    /// The old runbook: a fresh database owned by the application role, the runbook's GRANT,
    /// `gunzip -c FILE | psql` as the application role, errors ignored.
    Runbook,
}

impl Way {
    pub fn name(self) -> String {
        match self {
            Way::Copy(1) => "restore --target-database".into(),
            Way::Copy(j) => format!("restore --target-database -j {j}"),
            Way::Swap => "restore (swap)".into(),
            Way::InPlace => "restore --in-place".into(),
            Way::Verify => "verify --restore".into(),
            Way::VerifyLocal => "verify --restore --local".into(),
            Way::Runbook => "runbook: gunzip | psql".into(),
        }
    }

    pub fn applies_to(self, f: Format) -> bool {
        match self {
            Way::Runbook => f == Format::Gzip,
            _ => true,
        }
    }
}

/// Which ways back a run takes from which format. The swap and in-place restores replace the
/// live database, so they run last, once each.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<(Format, Way)>,
}

impl Plan {
    /// Every format, every way; `-j 2` beside `-j 1` for every format (plain files load on two
    /// connections then, custom archives with `pg_restore --jobs 2`). The swap and in-place
    /// restores take the `restore_jobs` default (the local cores, at most 4).
    pub fn full() -> Plan {
        let ways = [
            Way::Copy(1),
            Way::Copy(2),
            Way::VerifyLocal,
            Way::Verify,
            Way::Runbook,
        ];
        let mut steps: Vec<(Format, Way)> = FORMATS
            .iter()
            .flat_map(|f| ways.iter().filter(|w| w.applies_to(*f)).map(|w| (*f, *w)))
            .collect();
        steps.push((Format::Gzip, Way::Swap));
        steps.push((Format::Zstd, Way::InPlace));
        Plan { steps }
    }

    /// The ways that tell whether a big catalog loads at all: pgkeep's serial and parallel
    /// loads of both kinds of file, verification, and the runbook.
    pub fn big_catalog() -> Plan {
        Plan {
            steps: vec![
                (Format::Gzip, Way::Copy(1)),
                (Format::Gzip, Way::Copy(2)),
                (Format::Gzip, Way::Verify),
                (Format::Gzip, Way::Runbook),
                (Format::Custom, Way::Copy(1)),
                (Format::Custom, Way::Copy(2)),
            ],
        }
    }

    fn formats(&self) -> Vec<Format> {
        let mut f: Vec<Format> = Vec::new();
        for (x, _) in &self.steps {
            if !f.contains(x) {
                f.push(*x);
            }
        }
        f
    }

    /// The formats to back up, and the steps in the order they run (live-replacing ones last).
    pub fn schedule(&self) -> (Vec<Format>, Vec<(Format, Way)>) {
        let live = |w: &Way| matches!(w, Way::Swap | Way::InPlace);
        let mut steps: Vec<(Format, Way)> = self
            .steps
            .iter()
            .filter(|(_, w)| !live(w))
            .copied()
            .collect();
        steps.extend(self.steps.iter().filter(|(_, w)| live(w)));
        (self.formats(), steps)
    }
}

/// A corpus case: `corpus/<name>.sql`, run as superuser on `postgres` with the variables `db`,
/// `pw`, the role variables, `tsdir`, `socket` and `port`.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    /// What the case exercises (one line).
    pub exercises: &'static str,
    /// Back up as the superuser instead of the application role (objects pg_dump skips or
    /// cannot read as a non-superuser).
    pub backup_as_superuser: bool,
    /// Why loading needs the admin role (`--load-as-admin`), if it does: superuser-only
    /// objects.
    pub admin_load: Option<&'static str>,
    /// The oldest major the case's SQL runs on.
    pub min_major: u32,
    /// Part of the smoke subset run on every major.
    pub smoke: bool,
}

/// The role variables every corpus file may use; `<db>_<var>` on the server.
pub const ROLE_VARS: [&str; 6] = ["app", "ro", "other", "staff", "alice", "bob"];

/// A built original.
#[derive(Debug, Clone)]
pub struct Built {
    pub case: Case,
    pub db: String,
    pub app: String,
    pub backup_dir: PathBuf,
    pub build_time: Duration,
    _tmp: std::sync::Arc<tempfile::TempDir>,
}

impl Case {
    pub fn file(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fidelity/corpus")
            .join(format!("{}.sql", self.name))
    }

    /// Build the original as database `db` (roles `<db>_<var>`), with extra psql variables.
    pub fn build_as(&self, t: &Target, db: &str, extra: &[(&str, &str)]) -> Built {
        let started = Instant::now();
        let tmp = tempfile::tempdir().expect("tempdir");
        let backup_dir = tmp.path().join("backups");
        std::fs::create_dir(&backup_dir).unwrap();
        let tsdir = tablespace_dir(t, db);
        let mut vars: Vec<(&str, OsString)> = vec![
            ("db", db.into()),
            ("pw", PASSWORD.into()),
            ("tsdir", tsdir.into_os_string()),
            ("socket", t.socket_dir.clone().into_os_string()),
            ("port", t.port.to_string().into()),
        ];
        for r in ROLE_VARS {
            vars.push((r, format!("{db}_{r}").into()));
        }
        for (k, v) in extra {
            vars.push((k, (*v).into()));
        }
        t.run_file(&self.file(), &vars)
            .unwrap_or_else(|e| panic!("building case {}: {e}", self.name));
        Built {
            case: *self,
            db: db.into(),
            app: format!("{db}_app"),
            backup_dir,
            build_time: started.elapsed(),
            _tmp: std::sync::Arc::new(tmp),
        }
    }

    pub fn build(&self, t: &Target) -> Built {
        self.build_as(t, &format!("fid_{}", self.name), &[])
    }
}

/// An empty directory for a tablespace, owned by the server's OS user (the owner of the
/// cluster's socket directory).
fn tablespace_dir(t: &Target, db: &str) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&t.socket_dir).expect("socket dir");
    let dir = t.socket_dir.join(format!("ts_{db}"));
    if !dir.exists() {
        std::fs::create_dir(&dir).expect("tablespace dir");
        std::os::unix::fs::chown(&dir, Some(meta.uid()), Some(meta.gid())).expect("chown");
    }
    dir
}

/// A committed backup.
#[derive(Debug, Clone)]
pub struct Backup {
    pub format: Format,
    pub id: String,
    pub path: PathBuf,
    pub manifest: serde_json::Value,
    /// pgkeep's log (stderr).
    pub log: String,
}

impl Built {
    pub fn db_os(&self) -> &OsStr {
        OsStr::new(&self.db)
    }

    pub fn backup_user(&self) -> &str {
        if self.case.backup_as_superuser {
            "postgres"
        } else {
            &self.app
        }
    }

    pub fn pgkeep(&self, t: &Target) -> std::process::Command {
        t.pgkeep(self.backup_user(), self.db_os(), &self.backup_dir)
    }

    /// `pgkeep backup` in `format`.
    pub fn backup(&self, t: &Target, format: Format) -> Result<Backup, String> {
        let out = self
            .pgkeep(t)
            .arg("backup")
            .args(format.args())
            .arg("--json")
            .output()
            .expect("run pgkeep backup");
        if !out.status.success() {
            return Err(format!(
                "backup exit {}: {}",
                out.status.code().unwrap_or(-1),
                one_line(&out.stderr)
            ));
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("manifest JSON: {e}"))?;
        Ok(Backup {
            format,
            id: manifest["id"].as_str().unwrap_or_default().to_string(),
            path: self
                .backup_dir
                .join(manifest["file"].as_str().unwrap_or_default()),
            manifest,
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// The flags that let a load run superuser-only statements, when the case needs them and
    /// pgkeep has the flag (it comes with loading as the database owner).
    pub fn admin_flags(&self, sub: &str) -> Vec<&'static str> {
        if self.case.admin_load.is_some() && pgkeep_offers(sub, "--load-as-admin") {
            vec!["--load-as-admin"]
        } else {
            vec![]
        }
    }

    /// `pgkeep restore` of `b` with extra arguments; `Err` is the exit code and first error
    /// line.
    pub fn restore(&self, t: &Target, b: &Backup, extra: &[&str]) -> Result<String, String> {
        let out = self
            .pgkeep(t)
            .args(["restore", "--yes", "--backup", &b.id])
            .args(self.admin_flags("restore"))
            .args(extra)
            .output()
            .expect("run pgkeep restore");
        outcome("restore", &out)
    }

    /// `pgkeep verify ID --restore [--local]`, then the check that no scratch database of it
    /// (`<db>_restoring_*`) was left behind.
    pub fn verify(&self, t: &Target, b: &Backup, local: bool) -> Result<String, String> {
        let scratch = format!("{}_restoring_", self.db);
        let ours = |d: &OsString| d.as_encoded_bytes().starts_with(scratch.as_bytes());
        let before: Vec<OsString> = t.databases().into_iter().filter(ours).collect();
        let mut c = self.pgkeep(t);
        c.args(["verify", &b.id, "--restore"])
            .args(self.admin_flags("verify"));
        if local {
            c.arg("--local");
        }
        let out = c.output().expect("run pgkeep verify");
        let res = outcome("verify", &out);
        let left: Vec<String> = t
            .databases()
            .into_iter()
            .filter(|d| ours(d) && !before.contains(d))
            .map(|d| show(d.as_encoded_bytes()))
            .collect();
        match (res, left.is_empty()) {
            (r, true) => r,
            (Ok(_), false) => Err(format!("verify left databases behind: {left:?}")),
            (Err(e), false) => Err(format!("{e}; and left databases behind: {left:?}")),
        }
    }

    /// The old runbook into a new database; the number of errors psql printed (it ignores
    /// them) and the first of them.
    pub fn runbook(&self, t: &Target, b: &Backup, into: &str) -> (usize, Option<String>) {
        t.query(
            "postgres",
            &format!("CREATE DATABASE \"{into}\" OWNER \"{app}\"", app = self.app),
        );
        t.query(
            "postgres",
            &format!("GRANT ALL ON DATABASE \"{into}\" TO \"{}\"", self.app),
        );
        let gz = std::fs::read(&b.path).expect("read the backup");
        let mut dec = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut sql = Vec::new();
        std::io::Read::read_to_end(&mut dec, &mut sql).expect("gunzip");
        let mut c = t.client("psql", As::Role(&self.app));
        c.args(["-X", "-q", "-d", into]);
        let out = feed(c, &sql);
        let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("ERROR:"))
            .map(str::to_string)
            .collect();
        (errors.len(), errors.first().cloned())
    }
}

fn outcome(what: &str, out: &std::process::Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} exit {}: {}",
            out.status.code().unwrap_or(-1),
            one_line(&out.stderr)
        ))
    }
}

/// What one way back gave.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Compared with the original: per aspect `None` (equal) or what differs.
    Compared([Option<String>; 7]),
    /// A verification's verdict.
    Verified(Result<(), String>),
    /// The command failed (or the result could not be read).
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub format: Format,
    pub way: Way,
    pub outcome: Outcome,
    /// Remarks (the runbook's error count).
    pub note: String,
    pub took: Duration,
}

impl Row {
    /// Whether pgkeep brought back everything (the runbook's rows are the baseline, not held to
    /// it).
    pub fn faithful(&self) -> bool {
        match &self.outcome {
            Outcome::Compared(d) => d.iter().all(Option::is_none),
            Outcome::Verified(r) => r.is_ok(),
            Outcome::Failed(_) => false,
        }
    }

    pub fn is_runbook(&self) -> bool {
        self.way == Way::Runbook
    }

    /// Why the row is not faithful, in one line.
    pub fn why(&self) -> String {
        match &self.outcome {
            Outcome::Compared(d) => ASPECTS
                .iter()
                .zip(d)
                .filter_map(|(a, d)| d.as_ref().map(|d| format!("{a}: {d}")))
                .collect::<Vec<_>>()
                .join(" | "),
            Outcome::Verified(Err(e)) | Outcome::Failed(e) => e.clone(),
            Outcome::Verified(Ok(())) => String::new(),
        }
    }
}
