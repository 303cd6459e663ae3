//! pgkeep: trustworthy logical backups of PostgreSQL databases. The library holds every layer;
//! the binary only parses arguments, sets up logging and maps errors to exit codes.

pub mod app;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod lock;
pub mod maintenance;
pub mod model;
pub mod notify;
pub mod pg;
pub mod pipeline;
pub mod process;
pub mod prune;
pub mod report;
pub mod restore;
pub mod retention;
pub mod shutdown;
pub mod storage;
pub mod verify;
