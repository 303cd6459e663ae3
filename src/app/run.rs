//! `pgkeep run`: start the backup daemon on the configured listener and run it until stopped.

use anyhow::Result;

use super::context::Context;
use crate::cli::RunArgs;
use crate::config::Settings;
use crate::daemon::{self, Daemon, Options};

pub async fn run(args: &RunArgs, settings: Settings, ctx: Context) -> Result<()> {
    settings.policy.validate()?;
    crate::storage::open(&settings.backup_dir, &settings.s3)?;
    // The daemon backs up one database; a set is backed up by `pgkeep backup` (a CronJob).
    let database = super::set::one(&settings, &args.database, "run")?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| crate::config::ConfigError::Invalid {
            key: "listen",
            from: settings.source("listen"),
            message: format!("cannot listen on {}: {e}", settings.listen),
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(
        database = %database,
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
    super::repair::repair_quietly(&settings, &database, &ctx).await;
    let opts = Options {
        database,
        child_env: ctx.child_env(),
        path_env: ctx.path_env(),
        clock: jiff::Timestamp::now,
        settings: std::sync::Arc::new(settings),
    };
    let d = Daemon::new(opts, ctx.shutdown.clone());
    daemon::run(d, listener).await?;
    Ok(())
}
