//! `pgkeep run`: start the backup daemon (one database, or the `databases` set) on the configured
//! listener and run it until stopped.

use anyhow::Result;

use super::context::Context;
use crate::cli::RunArgs;
use crate::config::Settings;
use crate::daemon::{self, Daemon, Options, Scope};

pub async fn run(args: &RunArgs, settings: Settings, ctx: Context) -> Result<()> {
    settings.policy.validate()?;
    crate::storage::open(&settings.backup_dir, &settings.s3)?;
    // `-d NAME` (or no `databases` set): one database; else the set, read at every run.
    let scope = match (&args.database, &settings.databases) {
        (None, Some(set)) => Scope::Set(set.clone()),
        (flag, _) => Scope::One(settings.database_or(flag)),
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| crate::config::ConfigError::Invalid {
            key: "listen",
            from: settings.source("listen"),
            message: format!("cannot listen on {}: {e}", settings.listen),
        })?;
    let addr = listener.local_addr()?;
    let own: Vec<String> = settings
        .database_schedules
        .iter()
        .map(|(db, s)| format!("{db}: {}", s.describe()))
        .collect();
    tracing::info!(
        databases = %describe(&scope),
        parallel_databases = settings.parallel_databases,
        database_schedules = %own.join("; "),
        dir = %settings.backup_dir.display(),
        host = %settings.host,
        schedule = %settings.schedule.describe(),
        verify_schedule = %settings.verify_schedule.as_ref().map_or("off".into(), |s| s.describe()),
        timezone = %settings.timezone_name,
        policy = %settings.policy,
        api = if settings.api_token.is_some() { "read-write (token set)" } else { "read-only (no PGKEEP_API_TOKEN)" },
        shutdown_grace = %format!("{}s", settings.shutdown_grace.as_secs()),
        "pgkeep daemon starting"
    );
    tracing::info!(addr = %addr, "listening");
    match &scope {
        Scope::One(db) => super::repair::repair_quietly(&settings, db, &ctx).await,
        Scope::Set(set) => {
            if let Ok(sel) = super::set::selection(&settings, set).await {
                for db in &sel.databases {
                    super::repair::repair_quietly(&settings, db, &ctx).await;
                }
            }
        }
    }
    let opts = Options {
        scope,
        child_env: ctx.child_env(),
        path_env: ctx.path_env(),
        clock: jiff::Timestamp::now,
        settings: std::sync::Arc::new(settings),
    };
    let d = Daemon::new(opts, ctx.shutdown.clone());
    daemon::run(d, listener).await?;
    Ok(())
}

/// The databases of the daemon for its start line.
fn describe(scope: &Scope) -> String {
    match scope {
        Scope::One(db) => db.clone(),
        Scope::Set(crate::model::DatabaseSet::All) => "all".into(),
        Scope::Set(crate::model::DatabaseSet::Named(names)) => names.join(", "),
    }
}
