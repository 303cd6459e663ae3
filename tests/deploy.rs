//! pgkeep as OpenShift runs it: an arbitrary non-root UID with no passwd entry, in group 0, no home
//! directory, a read-only working directory, and only BACKUP_DIR (group-0 writable, as the image's
//! `chgrp 0` + `g=u` makes it) and TMPDIR to write to. The test binary runs as root and drops to
//! that UID with `setpriv`; the database is the real throwaway test cluster.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// The first UID of a typical OpenShift namespace range; not in /etc/passwd.
const UID: u32 = 1_000_770_000;

/// The tests run one at a time: one of them looks for files of UID anywhere it could write.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn mkdir(p: &Path, mode: u32, uid: u32, gid: u32) {
    std::fs::create_dir_all(p).unwrap();
    nix::unistd::chown(p, Some(uid.into()), Some(gid.into())).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The pgkeep binary at a path the unprivileged UID can execute (copied when an ancestor
/// directory of the build output is not searchable by others).
fn runnable_binary(scratch: &Path) -> PathBuf {
    let bin = assert_cmd::cargo::cargo_bin("pgkeep");
    let searchable = bin.ancestors().skip(1).all(|d| {
        std::fs::metadata(d)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    });
    if searchable {
        return bin;
    }
    let dir = scratch.join("bin");
    mkdir(&dir, 0o755, 0, 0);
    let copy = dir.join("pgkeep");
    std::fs::copy(&bin, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// The pod's filesystem: a read-only working directory, BACKUP_DIR and TMPDIR owned by root and
/// group 0 with `g=u` (what the image and an fsGroup-less PVC give), and no home directory.
struct Pod {
    _scratch: tempfile::TempDir,
    root: PathBuf,
    workdir: PathBuf,
    backup_dir: PathBuf,
    tmp: PathBuf,
    home: PathBuf,
    bin: PathBuf,
}

impl Pod {
    fn new() -> Pod {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let workdir = root.join("app");
        mkdir(&workdir, 0o555, 0, 0);
        let backup_dir = root.join("backups");
        mkdir(&backup_dir, 0o770, 0, 0);
        let tmp = root.join("tmp");
        mkdir(&tmp, 0o770, 0, 0);
        let bin = runnable_binary(&root);
        Pod {
            home: root.join("no-such-home"),
            _scratch: scratch,
            root,
            workdir,
            backup_dir,
            tmp,
            bin,
        }
    }

    /// Run `pgkeep ARGS` as UID:0 with the old backup pod's environment for `db`.
    fn pgkeep(&self, db: &TestDb, backup_dir: &Path, args: &[&str]) -> Output {
        self.command(db, backup_dir, args)
            .output()
            .expect("run setpriv (util-linux)")
    }

    fn command(&self, db: &TestDb, backup_dir: &Path, args: &[&str]) -> Command {
        let info = cluster();
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={UID}"),
            "--regid=0",
            "--clear-groups",
            "--",
        ])
        .arg(&self.bin)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &self.home)
        .env("TMPDIR", &self.tmp)
        .env("DATABASE_SERVICE_NAME", &info.socket_dir)
        .env("PGPORT", info.port.to_string())
        .env("POSTGRESQL_USER", &db.user)
        .env("POSTGRESQL_PASSWORD", &db.password)
        .env("POSTGRESQL_DATABASE", &db.name)
        .env("BACKUP_DIR", backup_dir)
        .env("PGKEEP_PG_BINDIR", &info.bindir)
        .current_dir(&self.workdir);
        cmd
    }
}

/// The UID must reach the cluster's Unix socket: let others traverse the socket directory (the
/// data directory inside stays 0700). In a pod the same connection goes over TCP.
fn open_socket_dir() {
    let dir = &cluster().socket_dir;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011)).unwrap();
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_all(&e.path()));
        }
    }
    out
}

#[test]
fn backup_succeeds_as_an_arbitrary_uid_in_group_0_without_home_and_with_a_read_only_cwd() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: needs root to switch to an arbitrary UID");
        return;
    }
    let passwd = Command::new("getent")
        .args(["passwd", &UID.to_string()])
        .output()
        .unwrap();
    assert!(
        passwd.stdout.is_empty(),
        "UID {UID} must have no passwd entry for this test"
    );
    open_socket_dir();
    let db = TestDb::create(SAMPLE);
    let pod = Pod::new();

    // The working directory really is read-only for that UID.
    let probe = Command::new("setpriv")
        .args([
            &format!("--reuid={UID}"),
            "--regid=0",
            "--clear-groups",
            "--",
        ])
        .args(["touch", "probe"])
        .current_dir(&pod.workdir)
        .output()
        .unwrap();
    assert!(!probe.status.success(), "the working directory is writable");

    let out = pod.pgkeep(&db, &pod.backup_dir, &["backup"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("backup complete"),
        "{}",
        text(&out)
    );

    // The backup and its manifest exist, written by that UID in group 0.
    let files: Vec<PathBuf> = walk_all(&pod.backup_dir)
        .into_iter()
        .filter(|p| p.is_file() && !p.to_string_lossy().ends_with(".lock"))
        .collect();
    let data = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".sql.gz"))
        .unwrap_or_else(|| panic!("no .sql.gz in {files:?}"));
    let manifest = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .unwrap_or_else(|| panic!("no manifest in {files:?}"));
    for p in [data, manifest] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!((m.uid(), m.gid()), (UID, 0), "{}", p.display());
    }
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(m["tables"]["public.\"SBI_USER\""], 300);
    assert_eq!(m["tables"]["public.routes"], 1000);

    // Nothing was written anywhere else: no home, nothing in the working directory, and the
    // private passfile in TMPDIR was removed.
    assert!(!pod.home.exists(), "a home directory was created");
    assert_eq!(std::fs::read_dir(&pod.workdir).unwrap().count(), 0);
    let left: Vec<_> = std::fs::read_dir(&pod.tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");

    // A read-only root filesystem would not have mattered: the UID owns no file outside
    // BACKUP_DIR in the places it could have written to (world-writable directories).
    let stray = Command::new("find")
        .args([
            "/tmp",
            "/var/tmp",
            "/dev/shm",
            "-xdev",
            "-uid",
            &UID.to_string(),
        ])
        .output()
        .unwrap();
    let stray: Vec<&str> = std::str::from_utf8(&stray.stdout)
        .unwrap()
        .lines()
        .filter(|l| !Path::new(l).starts_with(&pod.backup_dir))
        .collect();
    assert!(stray.is_empty(), "written outside BACKUP_DIR: {stray:?}");

    // HOME not set at all works the same (a second backup, a second later: names have seconds).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = pod
        .command(&db, &pod.backup_dir, &["backup"])
        .env_remove("HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // The same UID lists what it wrote.
    let out = pod.pgkeep(&db, &pod.backup_dir, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|e| e["status"] == "good"), "{list:?}");
}

#[test]
fn a_backup_dir_the_uid_cannot_write_is_a_storage_error_naming_the_directory() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: needs root to switch to an arbitrary UID");
        return;
    }
    open_socket_dir();
    let db = TestDb::create(SAMPLE);
    let pod = Pod::new();
    // A volume left owned by another user without group write (the usual mistake).
    let locked = pod.root.join("locked-backups");
    mkdir(&locked, 0o755, 0, 0);
    let out = pod.pgkeep(&db, &locked, &["backup"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "backup directory {} is not writable",
            locked.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

/// A tmpfs of `size` mounted at `dir` for the life of the guard.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0770"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_volume_is_a_storage_error_and_leaves_no_partial_file() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: needs root to switch to an arbitrary UID and mount a tmpfs");
        return;
    }
    open_socket_dir();
    // About 6 MB of barely compressible rows: far more than the 256 KiB volume holds.
    let db = TestDb::create(
        "CREATE TABLE big (id int, payload text);
         INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 80000) g;",
    );
    let pod = Pod::new();
    let small = pod.root.join("small-volume");
    mkdir(&small, 0o770, 0, 0);
    let Some(_volume) = Tmpfs::mount(&small, "256k") else {
        return;
    };
    // The kubelet hands the volume to group 0, as fsGroup 0 / the image's g=u do.
    nix::unistd::chown(&small, Some(0.into()), Some(0.into())).unwrap();
    let out = pod.pgkeep(&db, &small, &["backup"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no space left"), "{err}");
    let left: Vec<PathBuf> = walk_all(&small)
        .into_iter()
        .filter(|p| p.is_file() && !p.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "left on the full volume: {left:?}");
}
