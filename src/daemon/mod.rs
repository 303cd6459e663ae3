//! `pgkeep run`: the long-running process of the backup pod. It runs backups on a schedule
//! (catching up a run missed while down), culls after every successful backup, serves the HTTP
//! API (immediate backups, health, metrics, the status page), and on SIGTERM lets a running
//! backup finish within a grace period before aborting it cleanly. Everything it needs is passed in: settings, the bound
//! listener, the shutdown signal and the clock.

pub mod catalog;
pub mod chart;
pub mod http;
pub mod metrics;
pub mod page;
pub mod scheduler;
pub mod state;
pub mod status;
pub mod verifier;

use std::sync::Arc;

pub use state::{Attempt, AttemptStatus, Daemon, Options, StartError, Trigger, local};

/// Run the daemon until `shutdown` fires: the schedule loop and the HTTP server on `listener`.
/// Returns once a running backup has finished or been aborted, and the server has stopped.
pub async fn run(
    daemon: Arc<Daemon>,
    listener: tokio::net::TcpListener,
) -> Result<(), std::io::Error> {
    let last = daemon.load_catalog();
    let server = tokio::spawn(http::serve(listener, daemon.clone()));
    let verifier = daemon.settings().verify_schedule.clone().map(|s| {
        daemon
            .metrics
            .lock()
            .expect("metrics lock")
            .db(daemon.database())
            .verify_scheduled = true;
        tokio::spawn(daemon.clone().verify_loop(s))
    });
    daemon.clone().schedule_loop(last).await;
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
