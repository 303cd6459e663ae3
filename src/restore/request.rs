//! What a restore is asked to do (passed in by the command layer), and the admin connection it
//! makes with it.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

use super::choose::Chosen;
use crate::pg::ConnParams;
use crate::pg::tools::Search;
use crate::shutdown::Shutdown;

/// Restore strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Swap,
    InPlace,
}

/// Everything a restore needs, passed in by the command layer.
pub struct Request {
    pub backup: Chosen,
    /// The database to restore into.
    pub target: String,
    pub strategy: Strategy,
    /// Admin connection to the target server (its dbname is ignored: a maintenance database is
    /// used).
    pub admin: ConnParams,
    pub search: Search,
    pub jobs: usize,
    pub checks: Vec<String>,
    pub create_roles: bool,
    pub drop_previous: bool,
    pub pre_hooks: Vec<Vec<String>>,
    pub post_hooks: Vec<Vec<String>>,
    pub hook_timeout: Duration,
    /// Environment children may see (free of secrets).
    pub child_env: Vec<(String, String)>,
    pub tmp_dir: PathBuf,
    pub shutdown: Shutdown,
    pub now: Timestamp,
    /// What the file's SQL may do and who runs it.
    pub load: LoadPolicy,
    /// Told the bytes fed to psql or pg_restore as the backup loads (`loading`).
    pub progress: crate::model::Progress,
}

/// Who runs a backup's SQL, and what it may need.
#[derive(Debug, Clone, Default)]
pub struct LoadPolicy {
    /// Run the file's SQL as the admin role (`--load-as-admin`).
    pub as_admin: bool,
    /// Load plain dumps with a psql without restricted mode (`--allow-unrestricted-psql`).
    pub allow_unrestricted_psql: bool,
    /// The owner of a legacy file's database when no live database tells it (`--owner`).
    pub owner: Option<String>,
    /// The configured (application) user's connection: the load connects as it when it owns
    /// the database.
    pub configured: Option<ConnParams>,
}

/// The admin connection to `dbname`, its password resolved once: the configured one, else the
/// passfile's entry for the maintenance database or for the target database (a passfile entry
/// naming only the application database must also serve the scratch and maintenance ones).
pub fn effective_admin(req: &Request, dbname: &str) -> ConnParams {
    let mut admin = req.admin.with_dbname(dbname);
    if admin.password.is_none() {
        admin.password = admin
            .resolve_password()
            .or_else(|| req.admin.with_dbname(&req.target).resolve_password());
    }
    admin
}
