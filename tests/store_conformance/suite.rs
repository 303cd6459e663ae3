//! The rules every `Store` keeps, in the style of restic's backend tests: each case is a
//! function over a [`Backend`] (a factory of fresh, empty stores), so that a new backend runs
//! through all of them by implementing `Backend` and invoking `conformance!` once.

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgkeep::storage::{ErrorKind, Store};
use sha2::{Digest, Sha256};

/// A fresh store and what keeps it alive (a temporary directory, a bucket prefix, a server).
pub struct Fixture {
    pub store: Box<dyn Store>,
    /// How a child process finds the same store ([`Backend::reopen`]).
    pub location: String,
    pub _guard: Box<dyn std::any::Any>,
}

pub trait Backend {
    /// A new, empty store.
    fn fresh(&self) -> Fixture;
    /// The store of a fixture, opened again (in another process) from its location.
    fn reopen(&self, location: &str) -> Box<dyn Store>;
    /// A store with less than 1 MiB of room, if this backend and machine can make one.
    fn full(&self) -> Option<Fixture>;
    /// Whether the store must know its free space (a local filesystem does; object stores don't).
    fn knows_free_space(&self) -> bool;
}

/// Set in the child of [`killed_mid_write`]: the location of the store to write into.
const CHILD_ENV: &str = "PGKEEP_CONFORMANCE_CHILD";
const READY: &str = "conformance-child-ready";

fn names(store: &dyn Store) -> Vec<String> {
    store.list().unwrap().into_iter().map(|o| o.name).collect()
}

fn read_all(store: &dyn Store, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store.open(name).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// Nothing of `name` is visible as an object.
fn invisible(store: &dyn Store, name: &str) {
    assert!(
        !names(store).contains(&name.to_string()),
        "{name} is listed"
    );
    assert!(store.stat(name).unwrap().is_none(), "{name} has a stat");
    assert!(!store.exists(name).unwrap(), "{name} exists");
    let e = store.open(name).err().expect("open of an invisible object");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

pub fn put_get_stat_list_delete(b: &dyn Backend) {
    let f = b.fresh();
    let s = &*f.store;
    s.check_writable().unwrap();
    assert!(names(s).is_empty(), "a fresh store is empty");
    invisible(s, "2026-01-01/a.sql.gz");
    s.put("2026-01-01/a.sql.gz", b"hello").unwrap();
    s.put("2026-01-01/b.sql.gz", b"").unwrap();
    s.put("top.json", b"{}").unwrap();
    assert_eq!(
        names(s),
        ["2026-01-01/a.sql.gz", "2026-01-01/b.sql.gz", "top.json"],
        "sorted by name"
    );
    assert_eq!(read_all(s, "2026-01-01/a.sql.gz"), b"hello");
    assert_eq!(read_all(s, "2026-01-01/b.sql.gz"), b"");
    let st = s.stat("2026-01-01/a.sql.gz").unwrap().unwrap();
    assert_eq!((st.name.as_str(), st.size), ("2026-01-01/a.sql.gz", 5));
    let listed = s.list().unwrap();
    assert_eq!(listed[0], st, "list and stat agree");
    let age = st.modified.elapsed().unwrap_or(Duration::ZERO);
    assert!(
        age < Duration::from_secs(600),
        "modified is now-ish: {age:?}"
    );
    assert!(s.exists("top.json").unwrap());
    assert!(
        !s.exists("2026-01-01").unwrap(),
        "a prefix is not an object"
    );
    s.delete("2026-01-01/a.sql.gz").unwrap();
    invisible(s, "2026-01-01/a.sql.gz");
    s.delete("2026-01-01/a.sql.gz").unwrap();
    s.delete("never/was.sql").unwrap();
    assert_eq!(names(s), ["2026-01-01/b.sql.gz", "top.json"]);
}

/// A deterministic, incompressible-enough stream of `len` bytes, written in uneven chunks.
fn pattern_chunks(len: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut left = len;
    let mut i: u64 = 0;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        i += 1;
        let n = left.min(((i * 7919) % (1 << 20)) as usize + 1);
        left -= n;
        let seed = Sha256::digest(i.to_le_bytes());
        Some((0..n).map(|k| seed[k % 32] ^ (k as u8)).collect())
    })
}

pub fn streams_large_objects(b: &dyn Backend) {
    let f = b.fresh();
    let s = &*f.store;
    let len = 40 * 1024 * 1024 + 12345;
    let mut up = s.create("big/object.dump").unwrap();
    let mut sent = Sha256::new();
    for chunk in pattern_chunks(len) {
        sent.update(&chunk);
        up.write_all(&chunk).unwrap();
    }
    assert!(names(s).is_empty(), "invisible until committed");
    up.commit().unwrap();
    assert_eq!(s.stat("big/object.dump").unwrap().unwrap().size, len as u64);
    let mut r = s.open("big/object.dump").unwrap();
    let mut got = Sha256::new();
    let mut buf = vec![0u8; 100_000];
    let mut n = 0usize;
    loop {
        match r.read(&mut buf).unwrap() {
            0 => break,
            k => {
                got.update(&buf[..k]);
                n += k;
            }
        }
    }
    assert_eq!(n, len);
    assert_eq!(
        got.finalize(),
        sent.finalize(),
        "the bytes read are the bytes written"
    );
}

/// Names with characters that URLs, shells and file systems treat specially.
pub const ODD_NAMES: &[&str] = &[
    "odd names/with space.sql.gz",
    "ünï-cödé/日本語 データ.dump",
    "percent%20and+plus.sql",
    "quote'and\"double.sql",
    "hash#question?amp&.sql",
    "brackets[1](2){3}<4>.sql",
    "semi;colon=eq,comma.sql",
    "tilde~dollar$at@bang!star*.sql",
    "back\\slash|pipe.sql",
    "a..b/c.d..e",
    "-leading-dash",
    ".hidden",
    "trailing.dot.",
    "one/two/three/four.sql",
];

pub fn odd_names(b: &dyn Backend) {
    let f = b.fresh();
    let s = &*f.store;
    for (i, n) in ODD_NAMES.iter().enumerate() {
        if i % 2 == 0 {
            s.put(n, n.as_bytes()).unwrap();
        } else {
            let mut up = s.create(n).unwrap();
            up.write_all(n.as_bytes()).unwrap();
            up.commit().unwrap();
        }
    }
    let mut want: Vec<String> = ODD_NAMES.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(names(s), want);
    for n in ODD_NAMES {
        assert_eq!(read_all(s, n), n.as_bytes(), "{n}");
        assert_eq!(s.stat(n).unwrap().unwrap().size, n.len() as u64);
    }
    for n in ODD_NAMES {
        s.delete(n).unwrap();
    }
    assert!(names(s).is_empty());
}

pub fn invalid_names_are_refused(b: &dyn Backend) {
    let f = b.fresh();
    let s = &*f.store;
    for n in [
        "",
        "/abs",
        "a//b",
        "a/",
        "../up",
        "a/./b",
        "new\nline",
        ".pgkeep-x",
        "a/b/c/d/e",
    ] {
        let kinds = [
            s.put(n, b"x").err(),
            s.create(n).err(),
            s.open(n).err(),
            s.stat(n).err(),
            s.delete(n).err(),
        ];
        for e in kinds {
            let e = e.unwrap_or_else(|| panic!("{n:?} was accepted"));
            assert_eq!(e.kind(), ErrorKind::Other, "{n:?}: {e}");
        }
    }
    assert!(names(s).is_empty());
}

pub fn overwriting_rules(b: &dyn Backend) {
    let f = b.fresh();
    let s = &*f.store;
    let mut up = s.create("d/x.sql.gz").unwrap();
    up.write_all(b"first").unwrap();
    up.commit().unwrap();
    // A streamed write never replaces a committed object.
    let e = s.create("d/x.sql.gz").err().expect("create over an object");
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert_eq!(read_all(s, "d/x.sql.gz"), b"first");
    // A put replaces atomically; the last one wins.
    s.put("d/x.sql.gz.verify.json", b"one").unwrap();
    s.put("d/x.sql.gz.verify.json", b"two, longer").unwrap();
    assert_eq!(read_all(s, "d/x.sql.gz.verify.json"), b"two, longer");
    s.put("d/x.sql.gz.verify.json", b"3").unwrap();
    assert_eq!(read_all(s, "d/x.sql.gz.verify.json"), b"3");
    // A reader opened before a replacement reads one version whole, never a mix.
    s.put("d/r.json", &[b'a'; 100_000]).unwrap();
    let mut r = s.open("d/r.json").unwrap();
    s.put("d/r.json", &[b'b'; 100_000]).unwrap();
    let mut old = Vec::new();
    r.read_to_end(&mut old).unwrap();
    assert!(
        old == vec![b'a'; 100_000] || old == vec![b'b'; 100_000],
        "a mixed read"
    );
    assert_eq!(read_all(s, "d/r.json"), vec![b'b'; 100_000]);
    assert_eq!(
        names(s),
        ["d/r.json", "d/x.sql.gz", "d/x.sql.gz.verify.json"]
    );
    // After a delete the name can be written again.
    s.delete("d/x.sql.gz").unwrap();
    let mut up = s.create("d/x.sql.gz").unwrap();
    up.write_all(b"second").unwrap();
    up.commit().unwrap();
    assert_eq!(read_all(s, "d/x.sql.gz"), b"second");
}

pub fn aborted_and_dropped_writes_leave_nothing_listed(b: &dyn Backend) {
    let f = b.fresh();
    let s = &*f.store;
    s.put("keep/old.sql.gz", b"old").unwrap();

    let mut up = s.create("d/aborted.sql.gz").unwrap();
    up.write_all(&[1u8; 300_000]).unwrap();
    assert!(
        s.in_progress("d/aborted.sql.gz").unwrap(),
        "a write in progress"
    );
    invisible(s, "d/aborted.sql.gz");
    up.abort().unwrap();
    invisible(s, "d/aborted.sql.gz");
    assert!(!s.in_progress("d/aborted.sql.gz").unwrap());
    assert!(
        s.unfinished().unwrap().is_empty(),
        "an abort leaves no unfinished write"
    );

    {
        let mut up = s.create("d/dropped.sql.gz").unwrap();
        up.write_all(&[2u8; 300_000]).unwrap();
        // Dropped: the caller failed (its source broke, it panicked) without an abort.
    }
    invisible(s, "d/dropped.sql.gz");
    // A store may keep a dropped write as unfinished; then discard removes it.
    for u in s.unfinished().unwrap() {
        assert_eq!(u.name, "d/dropped.sql.gz", "{u:?}");
        s.discard(&u).unwrap();
    }
    assert!(s.unfinished().unwrap().is_empty());

    // A write whose source fails midway (as a dump that breaks off) is given up.
    let mut up = s.create("d/failed.sql.gz").unwrap();
    let mut source = std::io::Read::chain(&[3u8; 200_000][..], FailingReader);
    let copied = std::io::copy(&mut source, &mut up);
    assert!(copied.is_err());
    up.abort().unwrap();
    invisible(s, "d/failed.sql.gz");

    // A failed small put (invalid name here) leaves nothing either.
    assert!(s.put("d/../escape", b"x").is_err());
    assert_eq!(names(s), ["keep/old.sql.gz"]);
    assert_eq!(read_all(s, "keep/old.sql.gz"), b"old");
}

struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("the source broke off"))
    }
}

/// The child side of [`killed_mid_write`]: write into the store until killed.
fn child_writes_until_killed(b: &dyn Backend, location: &str) -> ! {
    let store = b.reopen(location);
    let mut up = store.create("d/killed.sql.gz").unwrap();
    for chunk in pattern_chunks(3 * 1024 * 1024) {
        up.write_all(&chunk).unwrap();
    }
    up.flush().unwrap();
    println!("{READY}");
    std::io::stdout().flush().unwrap();
    loop {
        up.write_all(&[9u8; 4096]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A process killed (SIGKILL) in the middle of a write leaves no listed object; the write shows
/// as unfinished and can be discarded by the next run. `test` is this case's libtest name, so
/// that the test binary can run itself as the child.
pub fn killed_mid_write(b: &dyn Backend, test: &str) {
    if let Ok(location) = std::env::var(CHILD_ENV) {
        child_writes_until_killed(b, &location);
    }
    let f = b.fresh();
    let s = &*f.store;
    s.put("keep/old.sql.gz", b"old").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &f.location)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if line.contains(READY) {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = rx.recv_timeout(deadline - Instant::now()).is_ok();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(ready, "the child never wrote (status {status})");
    invisible(s, "d/killed.sql.gz");
    assert_eq!(names(s), ["keep/old.sql.gz"]);
    let left = s.unfinished().unwrap();
    assert_eq!(left.len(), 1, "the killed write is found: {left:?}");
    assert_eq!(left[0].name, "d/killed.sql.gz");
    assert!(s.in_progress("d/killed.sql.gz").unwrap());
    s.discard(&left[0]).unwrap();
    assert!(s.unfinished().unwrap().is_empty());
    assert!(!s.in_progress("d/killed.sql.gz").unwrap());
    // The name is free again.
    let mut up = s.create("d/killed.sql.gz").unwrap();
    up.write_all(b"next run").unwrap();
    up.commit().unwrap();
    assert_eq!(read_all(s, "d/killed.sql.gz"), b"next run");
}

/// The catalog shows a backup as committed only once its manifest, written last, exists.
pub fn the_manifest_written_last_is_the_commit_point(b: &dyn Backend) {
    use pgkeep::catalog::{self, Status};
    let f = b.fresh();
    let s = &*f.store;
    let m = manifest("2026-11-25/h-db_2026-11-25_01-00-00.dump", 7);
    let committed = |s: &dyn Store| {
        catalog::list(s, Some("h"))
            .unwrap()
            .into_iter()
            .filter(|e| e.status == Status::Good)
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    // Data being written: nothing.
    let mut up = s.create(&m.file).unwrap();
    up.write_all(b"archive").unwrap();
    assert!(catalog::list(s, Some("h")).unwrap().is_empty());
    // Data committed, no manifest yet: still no backup.
    up.commit().unwrap();
    assert!(
        committed(s).is_empty(),
        "data without manifest is not a backup"
    );
    assert!(
        catalog::list(s, Some("h"))
            .unwrap()
            .iter()
            .all(|e| e.status == Status::Uncommitted),
        "data without manifest is listed as uncommitted only"
    );
    // A manifest write that is given up: still none.
    let json = serde_json::to_vec_pretty(&m).unwrap();
    let mut mup = s.create(&m.manifest_name()).unwrap();
    mup.write_all(&json[..json.len() / 2]).unwrap();
    drop(mup);
    assert!(committed(s).is_empty(), "half a manifest commits nothing");
    for u in s.unfinished().unwrap() {
        s.discard(&u).unwrap();
    }
    // The manifest: now it is a backup.
    s.put(&m.manifest_name(), &json).unwrap();
    assert_eq!(committed(s), vec![m.id.clone()]);
    // Culling order: the manifest goes first and the backup is gone at once.
    s.delete(&m.manifest_name()).unwrap();
    assert!(committed(s).is_empty());
    s.delete(&m.file).unwrap();
    assert!(names(s).is_empty());
}

fn manifest(file: &str, bytes: u64) -> pgkeep::catalog::Manifest {
    let t: jiff::Timestamp = "2026-11-25T01:00:00Z".parse().unwrap();
    pgkeep::catalog::Manifest {
        manifest_version: pgkeep::catalog::MANIFEST_VERSION,
        id: pgkeep::catalog::id_of(file),
        file: file.into(),
        database: "db".into(),
        host: "h".into(),
        port: 5432,
        server_version: "17.0".into(),
        pg_dump_version: "17.0".into(),
        pgkeep_version: "test".into(),
        started_at: t,
        finished_at: t,
        duration_seconds: 1.0,
        format: pgkeep::model::Format::Custom,
        compression: pgkeep::model::Compression::None,
        level: 6,
        stored_bytes: bytes,
        raw_bytes: bytes,
        sha256: "00".repeat(32),
        tables: Default::default(),
        dump_encoding: None,
        newer_pg_dump: false,
        large_objects: 0,
        database_info: pgkeep::pg::catalog::DatabaseInfo {
            name: "db".into(),
            owner: "o".into(),
            encoding: "UTF8".into(),
            collate: "C".into(),
            ctype: "C".into(),
            locale_provider: None,
            locale: None,
            icu_rules: None,
            tablespace: None,
            connection_limit: None,
            comment: None,
            acl: None,
            grants: vec![],
            settings: vec![],
            extensions: vec![],
            roles: vec![],
            memberships: vec![],
            size_bytes: 0,
        },
        warnings: vec![],
        globals: None,
        encryption: None,
    }
}

pub fn free_space(b: &dyn Backend) {
    let f = b.fresh();
    match (f.store.free_bytes(), b.knows_free_space()) {
        (Some(n), _) => assert!(n > 0, "free space of a writable store"),
        (None, false) => {}
        (None, true) => panic!("this store must know its free space"),
    }
    let Some(full) = b.full() else {
        eprintln!("SKIPPED the full-store part: cannot make a small store here");
        return;
    };
    let s = &*full.store;
    let free = s.free_bytes();
    if b.knows_free_space() {
        let n = free.expect("a small store knows its free space");
        assert!(n < 1024 * 1024, "{n} bytes free in a small store");
    }
    // A streamed write that does not fit: NoSpace, and nothing listed.
    let mut up = s.create("d/too-big.sql.gz").unwrap();
    let mut failed = None;
    for chunk in pattern_chunks(2 * 1024 * 1024) {
        if let Err(e) = up.write_all(&chunk) {
            failed = Some(pgkeep::storage::StorageError::from_write(
                "d/too-big.sql.gz",
                e,
            ));
            break;
        }
    }
    let e = match failed {
        Some(e) => {
            let _ = up.abort();
            e
        }
        None => up.commit().expect_err("2 MiB do not fit"),
    };
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    invisible(s, "d/too-big.sql.gz");
    // A put that does not fit, likewise.
    let big: Vec<u8> = pattern_chunks(2 * 1024 * 1024).flatten().collect();
    let e = s.put("d/too-big.json", &big).expect_err("2 MiB do not fit");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert!(names(s).is_empty(), "{:?}", names(s));
}
