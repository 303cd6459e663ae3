//! pgkeep: trustworthy logical backups of PostgreSQL databases. The library holds every layer;
//! the binary only parses arguments, sets up logging and maps errors to exit codes.

pub mod backup;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod exit;
pub mod fault;
pub mod lock;
pub mod maintenance;
pub mod notify;
pub mod pg;
pub mod pipeline;
pub mod process;
pub mod prune;
pub mod restore;
pub mod restore_command;
pub mod retention;
pub mod shutdown;
pub mod storage;
pub mod verify;
