//! What every command does before its verb runs: arm the test-only fault point and remove the
//! passfiles that killed runs of older versions left in TMPDIR.

use anyhow::Result;

use super::context::Context;

/// Arm `PGKEEP_FAULT_POINT` (an unknown point is an error; `PGKEEP_FAULT_SIGNAL` makes it send
/// that signal instead of killing) and sweep old passfiles and dead runs' staging files.
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
    remove_dead_staging(ctx);
    Ok(())
}

/// A run killed with SIGKILL leaves its staging files in TMPDIR: fetched archives, a decrypted
/// copy of an encrypted backup, an archive on its way to being encrypted. Those of dead runs
/// are removed (a live run's are locked and left alone).
fn remove_dead_staging(ctx: &Context) {
    let tmp = ctx.tmp_dir();
    match crate::storage::staging::remove_dead(&tmp) {
        Ok(removed) if !removed.is_empty() => tracing::warn!(
            dir = %tmp.display(),
            "removed {} staging file(s) left in TMPDIR by a killed run",
            removed.len()
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(dir = %tmp.display(), error = %e, "cannot look for staging files")
        }
    }
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
