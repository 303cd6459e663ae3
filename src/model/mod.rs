//! Domain types: the values pgkeep's layers pass each other (formats, schedules, policies,
//! secrets), defined once below every layer that uses them, so the configuration only parses
//! into them and depends on nothing above it.

pub mod age;
pub mod databases;
pub mod format;
pub mod name;
pub mod policy;
pub mod progress;
pub mod s3;
pub mod schedule;
pub mod seal;
pub mod secret;
pub mod tls;
pub mod verdict;

pub use databases::DatabaseSet;
pub use format::{Compression, Format};
pub use policy::{Policy, PolicyError};
pub use progress::Progress;
pub use s3::S3Options;
pub use schedule::Schedule;
pub use seal::{ManifestKeys, Seal};
pub use secret::{Secret, redact_url};
pub use tls::SslMode;
pub use verdict::Verdict;
