//! Which databases a daemon backs up (one, or the `databases` set), what the set meant at its
//! last reading, and how logs and metrics name a database or the globals.

use crate::catalog::{GLOBALS, GLOBALS_LABEL};
use crate::model::DatabaseSet;

/// Which databases the daemon backs up.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One database (`database`, or `run -d NAME`).
    One(String),
    /// The `databases` set, read from the server at every run, and the globals.
    Set(DatabaseSet),
}

/// What the set meant at its last reading.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Known {
    /// The databases backed up.
    pub databases: Vec<String>,
    /// Gone from the server, with backups kept (never culled for it).
    pub gone: Vec<String>,
    /// Named in `databases` but not on the server: a failure at every run.
    pub missing: Vec<String>,
}

impl Known {
    /// Before the first reading: the one database, or nothing yet.
    pub fn start(scope: &Scope) -> Known {
        match scope {
            Scope::One(db) => Known {
                databases: vec![db.clone()],
                ..Known::default()
            },
            Scope::Set(_) => Known::default(),
        }
    }
}

pub use crate::databases::label;

/// The `database` label of the metrics and logs: the name, or `@globals`.
pub fn metric_label(db: &str) -> &str {
    if db == GLOBALS { GLOBALS_LABEL } else { db }
}
