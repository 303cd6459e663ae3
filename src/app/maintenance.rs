//! `pgkeep maintenance`: serve the "application offline" page until stopped.

use anyhow::{Context as _, Result};

use super::context::Context;
use crate::cli::MaintenanceArgs;

pub async fn run(args: &MaintenanceArgs, ctx: &Context) -> Result<()> {
    let mut page = crate::maintenance::Page {
        title: args.title.clone(),
        retry_after: args.retry_after,
        ..Default::default()
    };
    if let Some(m) = &args.message {
        page.message = m.clone();
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, retry_after = page.retry_after, "maintenance page listening");
    crate::maintenance::serve(listener, page, ctx.shutdown.clone())
        .await
        .context("maintenance page server failed")?;
    tracing::info!(
        reason = ctx.shutdown.reason().map_or("none", |r| r.name()),
        "maintenance page stopped"
    );
    Ok(())
}
