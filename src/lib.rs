//! pgkeep: trustworthy logical backups of PostgreSQL databases. The library holds every layer;
//! the binary only parses arguments, sets up logging and maps errors to exit codes. The modules
//! are listed by layer, highest first; a layer only uses the ones below it (`tests/layers.rs`
//! holds the table and checks every path against it).

// app: one file per verb; the only code that prints.
pub mod app;
// interface: the command line's definitions.
pub mod cli;
// servers.
pub mod daemon;
pub mod maintenance;
// engine.
pub mod backup;
pub mod check;
pub mod cluster;
pub mod copy;
pub mod databases;
pub mod globals;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod status;
pub mod verify;
// services.
pub mod notify;
pub mod report;
// infrastructure.
pub mod catalog;
pub mod lock;
pub mod pg;
pub mod pipeline;
pub mod process;
pub mod storage;
// config: parses into the domain types.
pub mod config;
// domain.
pub mod exit;
pub mod fault;
pub mod model;
pub mod shutdown;
