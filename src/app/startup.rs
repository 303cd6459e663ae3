//! What every command does before its verb runs: arm the test-only fault point and remove the
//! passfiles that killed runs of older versions left in TMPDIR.

use anyhow::Result;

use super::context::Context;

/// Arm `PGKEEP_FAULT_POINT` (an unknown point is an error; `PGKEEP_FAULT_SIGNAL` makes it send
/// that signal instead of killing) and sweep old passfiles.
pub fn prepare(ctx: &Context) -> Result<()> {
    if let Some(point) = ctx.env.get("PGKEEP_FAULT_POINT") {
        match ctx.env.get("PGKEEP_FAULT_SIGNAL") {
            None => crate::fault::arm(point)?,
            Some(signal) => {
                let shutdown = ctx.shutdown.clone();
                crate::fault::arm_signal(
                    point,
                    signal,
                    Box::new(move || shutdown.reason().is_some()),
                )?;
            }
        }
    }
    remove_stale_passfiles(ctx);
    Ok(())
}

/// Older versions wrote passfiles into TMPDIR, and a killed run left its file there.
fn remove_stale_passfiles(ctx: &Context) {
    let tmp = ctx.tmp_dir();
    match crate::pg::passfile::remove_stale(&tmp) {
        Ok(removed) if !removed.is_empty() => tracing::warn!(
            dir = %tmp.display(),
            "removed {} passfile(s) left in TMPDIR by an older pgkeep",
            removed.len()
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(dir = %tmp.display(), error = %e, "cannot look for old passfiles")
        }
    }
}
