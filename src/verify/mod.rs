//! Proves that a stored backup is what its manifest says: every byte read back, size and sha256
//! compared, the data decompressed in full and checked for completeness (the plain-format trailer
//! and the row counts of every COPY block; for custom format a full `pg_restore` replay of every
//! data block), each failure with its own message; optionally a test restore. The result is
//! recorded beside the backup (`<file>.verify.json`) without touching the committed manifest.

mod checks;
mod error;
mod failure;
mod read;
mod record;
mod restore;
mod states;
mod targets;

pub use checks::{Request, verify};
pub use error::{BadBackups, Inconclusive, VerifyError};
pub use failure::Failure;
pub use record::{Kind, Level, RECORD_VERSION, Record, read_record, record, record_name};
pub use restore::{
    RestoreRequest, create_roles, dump_major, dump_major_of, restore_impossible, restore_level,
};
pub use states::{DatabaseState, metrics_text, states, verified_state};
pub use targets::{SETTLE_SECONDS, Target, find, targets};
