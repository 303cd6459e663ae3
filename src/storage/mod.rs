//! Where backups are kept. The `Store` trait (in `store`) is what every backend provides: an
//! atomic put of a streamed object (written as `*.partial`, visible under its name only once
//! committed), get, list and delete. The local filesystem backend is in `local`.

pub mod local;
pub mod store;

pub use local::LocalStore;
pub use store::{ObjectInfo, PARTIAL_SUFFIX, StorageError, Store, Upload};
