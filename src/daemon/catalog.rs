//! The listing of the backup location that the daemon keeps for the status page, with the free
//! space beside it, so that a request never waits on the store.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;

use crate::catalog::Entry;
use crate::storage::{LocalStore, Store};

/// The last listing of the backup location.
#[derive(Debug, Clone)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub free_bytes: Option<u64>,
    pub read_at: Timestamp,
}

/// The listing the daemon keeps, and whether a background read is under way.
#[derive(Default)]
pub struct CatalogCache {
    listing: Mutex<Option<Listing>>,
    refreshing: AtomicBool,
}

impl CatalogCache {
    /// Keep `entries`, read at `at`, with the free space of `dir` now.
    pub fn store(&self, entries: Vec<Entry>, at: Timestamp, dir: &Path) {
        let free_bytes = LocalStore::open(dir).ok().and_then(|s| s.free_bytes());
        *self.listing.lock().expect("catalog lock") = Some(Listing {
            entries,
            free_bytes,
            read_at: at,
        });
    }

    /// The last listing, if one was read.
    pub fn get(&self) -> Option<Listing> {
        self.listing.lock().expect("catalog lock").clone()
    }

    /// Claim the one background read; false if one is under way.
    pub fn begin_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::SeqCst)
    }

    pub fn end_refresh(&self) {
        self.refreshing.store(false, Ordering::SeqCst);
    }
}
