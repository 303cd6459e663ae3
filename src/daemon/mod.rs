//! `pgkeep run`: the long-running process of the backup pod. It backs up one database, or the
//! `databases` set, on a schedule (catching up a run missed while down), culls after every
//! successful backup, serves the HTTP API (immediate backups, health, metrics, the status page),
//! and on SIGTERM lets running backups finish within a grace period before aborting them cleanly.
//! Everything it needs is passed in: settings, the bound listener, the shutdown signal and the
//! clock.

pub mod catalog;
pub mod chart;
pub mod http;
pub mod metrics;
pub mod page;
pub mod scheduler;
pub mod scope;
pub mod set;
pub mod state;
pub mod status;
pub mod verifier;

use std::sync::Arc;

pub use scope::Scope;
pub use state::{Attempt, AttemptStatus, Daemon, Options, StartError, Trigger, local};

/// Run the daemon until `shutdown` fires: the schedule loops (the set's, and one for each
/// database with a schedule of its own) and the HTTP server on `listener`. Returns once running
/// backups have finished or been aborted, and the server has stopped.
pub async fn run(
    daemon: Arc<Daemon>,
    listener: tokio::net::TcpListener,
) -> Result<(), std::io::Error> {
    if let Err(e) = daemon.resolve().await {
        tracing::error!(error = %e, "cannot read the databases of the set; the first run tries again");
    }
    let newest = daemon.load_catalog();
    let server = tokio::spawn(http::serve(listener, daemon.clone()));
    let verifier = daemon
        .settings()
        .verify_schedule
        .clone()
        .map(|s| tokio::spawn(daemon.clone().verify_loop(s)));
    let loops: Vec<_> = daemon
        .groups()
        .into_iter()
        .map(|g| {
            let last = daemon.group_last(&g, &newest);
            tokio::spawn(daemon.clone().schedule_loop(g, last))
        })
        .collect();
    for l in loops {
        let _ = l.await;
    }
    daemon.idle().await;
    if let Some(v) = verifier {
        let _ = v.await;
    }
    match server.await {
        Ok(r) => r?,
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    }
    tracing::info!("stopped");
    Ok(())
}
