//! The storage conformance suite (`store_conformance/suite.rs`) run against every store:
//! `conformance!(module, backend)` makes one test per rule. The local filesystem store and the
//! S3 store (against moto's server on loopback); another backend adds its `Backend` and one
//! more `conformance!` line.

#[path = "store_conformance/suite.rs"]
mod suite;

#[path = "common/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::path::PathBuf;
use std::process::Command;

use pgkeep::storage::s3::{PartPlan, S3Store};
use pgkeep::storage::{LocalStore, Store};
use suite::{Backend, Fixture};

macro_rules! conformance {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;
            conformance!(@cases $backend;
                put_get_stat_list_delete,
                streams_large_objects,
                odd_names,
                invalid_names_are_refused,
                overwriting_rules,
                aborted_and_dropped_writes_leave_nothing_listed,
                the_manifest_written_last_is_the_commit_point,
                free_space,
            );
            #[test]
            fn killed_mid_write() {
                suite::killed_mid_write(
                    &$backend,
                    concat!(stringify!($module), "::killed_mid_write"),
                );
            }
        }
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                suite::$case(&$backend);
            }
        )*
    };
}

/// The local filesystem store in a temporary directory.
struct Local;

/// A small tmpfs, unmounted when dropped.
struct Mounted(tempfile::TempDir);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

impl Backend for Local {
    fn fresh(&self) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        Fixture {
            location: dir.path().display().to_string(),
            store: Box::new(store),
            _guard: Box::new(dir),
        }
    }

    fn reopen(&self, location: &str) -> Box<dyn Store> {
        Box::new(LocalStore::open(&PathBuf::from(location)).unwrap())
    }

    fn full(&self) -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            return None;
        }
        let store = LocalStore::open(dir.path()).unwrap();
        Some(Fixture {
            location: dir.path().display().to_string(),
            store: Box::new(store),
            _guard: Box::new(Mounted(dir)),
        })
    }

    fn knows_free_space(&self) -> bool {
        true
    }
}

conformance!(local, Local);

/// The S3 store in a fresh bucket of moto's server, with 256 KiB parts (moto's minimum is
/// lowered to that) so that the suite's objects are cut into several parts.
struct S3;

impl S3 {
    /// A location is `ENDPOINT s3://BUCKET/PREFIX`: a child process finds the same server.
    fn open(location: &str) -> Box<dyn Store> {
        let (endpoint, url) = location.split_once(' ').unwrap();
        let store = S3Store::open(url, &moto::options(endpoint)).unwrap();
        Box::new(store.with_part_plan(PartPlan {
            base: 256 * 1024,
            step: 4,
            max: 1024 * 1024,
            budget: 3 * 1024 * 1024,
            in_flight: 2,
        }))
    }
}

impl Backend for S3 {
    fn fresh(&self) -> Fixture {
        let location = format!("{} s3://{}/backups/pg", moto::endpoint(), moto::bucket());
        Fixture {
            store: S3::open(&location),
            location,
            _guard: Box::new(()),
        }
    }

    fn reopen(&self, location: &str) -> Box<dyn Store> {
        S3::open(location)
    }

    /// moto has no bucket quotas.
    fn full(&self) -> Option<Fixture> {
        None
    }

    fn knows_free_space(&self) -> bool {
        false
    }
}

conformance!(s3, S3);

/// The suite itself can fail: a store that lists an unfinished write is caught.
#[test]
fn a_store_that_lists_unfinished_writes_fails_the_suite() {
    struct Leaky;
    impl Backend for Leaky {
        fn fresh(&self) -> Fixture {
            let f = Local.fresh();
            Fixture {
                store: Box::new(LeakyStore(f.store)),
                ..f
            }
        }
        fn reopen(&self, location: &str) -> Box<dyn Store> {
            Box::new(LeakyStore(Local.reopen(location)))
        }
        fn full(&self) -> Option<Fixture> {
            None
        }
        fn knows_free_space(&self) -> bool {
            true
        }
    }
    let caught =
        std::panic::catch_unwind(|| suite::aborted_and_dropped_writes_leave_nothing_listed(&Leaky));
    assert!(
        caught.is_err(),
        "the suite passed a store that lists unfinished writes"
    );
}

/// A local store whose listing also shows the `*.partial` files of unfinished writes.
struct LeakyStore(Box<dyn Store>);

impl Store for LeakyStore {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn check_writable(&self) -> Result<(), pgkeep::storage::StorageError> {
        self.0.check_writable()
    }
    fn create(
        &self,
        name: &str,
    ) -> Result<Box<dyn pgkeep::storage::Upload>, pgkeep::storage::StorageError> {
        self.0.create(name)
    }
    fn put(&self, name: &str, data: &[u8]) -> Result<(), pgkeep::storage::StorageError> {
        self.0.put(name, data)
    }
    fn open(
        &self,
        name: &str,
    ) -> Result<Box<dyn std::io::Read + Send>, pgkeep::storage::StorageError> {
        self.0.open(name)
    }
    fn stat(
        &self,
        name: &str,
    ) -> Result<Option<pgkeep::storage::ObjectInfo>, pgkeep::storage::StorageError> {
        self.0.stat(name)
    }
    fn list(&self) -> Result<Vec<pgkeep::storage::ObjectInfo>, pgkeep::storage::StorageError> {
        let mut all = self.0.list()?;
        for u in self.0.unfinished()? {
            all.push(pgkeep::storage::ObjectInfo {
                name: u.name,
                size: u.size,
                modified: u.modified,
            });
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }
    fn delete(&self, name: &str) -> Result<(), pgkeep::storage::StorageError> {
        self.0.delete(name)
    }
    fn unfinished(
        &self,
    ) -> Result<Vec<pgkeep::storage::Unfinished>, pgkeep::storage::StorageError> {
        self.0.unfinished()
    }
    fn discard(
        &self,
        u: &pgkeep::storage::Unfinished,
    ) -> Result<(), pgkeep::storage::StorageError> {
        self.0.discard(u)
    }
    fn free_bytes(&self) -> Option<u64> {
        self.0.free_bytes()
    }
}
