//! `pgkeep maintenance`: serve the "application offline" page until stopped.

use anyhow::{Context as _, Result};

use super::context::Context;
use crate::config::Settings;

pub async fn run(settings: &Settings, ctx: &Context) -> Result<()> {
    let m = &settings.maintenance;
    let mut page = crate::maintenance::Page {
        title: m.title.clone(),
        retry_after: m.retry_after,
        ..Default::default()
    };
    if let Some(message) = &m.message {
        page.message = message.clone();
    }
    let listener = tokio::net::TcpListener::bind(m.listen)
        .await
        .with_context(|| format!("cannot listen on {}", m.listen))?;
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
