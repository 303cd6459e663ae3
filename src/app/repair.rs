//! Repairing what killed restores left on the server, from their journals (see
//! `restore::journal`): the commands that touch a database (restore, cleanup, backup, verify, the
//! daemon's start) call it first and log one line per repaired restore.

use anyhow::Result;

use super::admin::admin_params;
use super::context::Context;
use crate::cli::TargetArgs;
use crate::config::Settings;
use crate::restore::journal::{self, Repair};

/// Repair the dead restores of `db` (every database when `None`) on the server `target` points
/// at; one warning line per repaired restore. Fails when the server cannot be asked.
pub async fn repair(
    settings: &Settings,
    target: &TargetArgs,
    db: Option<&str>,
    ctx: &Context,
) -> Result<usize> {
    let mut admin = admin_params(settings, target);
    // As the restore does: a passfile entry naming only the application database serves too.
    if admin.password.is_none() {
        admin.password = admin
            .resolve_password()
            .or_else(|| db.and_then(|d| admin.with_dbname(d).resolve_password()));
    }
    let child_env = ctx.child_env();
    let r = Repair {
        admin: &admin,
        post_hooks: &settings.post_restore,
        hook_timeout: settings.hook_timeout,
        child_env: &child_env,
    };
    let lines = journal::repair(&r, db).await?;
    for line in &lines {
        tracing::warn!("{line}");
    }
    Ok(lines.len())
}

/// [`repair`] for the commands whose own work comes first (backup, verify, the daemon): a
/// server that cannot be asked is left to the command's own error.
pub async fn repair_quietly(settings: &Settings, db: &str, ctx: &Context) {
    if let Err(e) = repair(settings, &TargetArgs::default(), Some(db), ctx).await {
        tracing::debug!(error = %crate::exit::one_line(&e), "cannot look for interrupted restores");
    }
}
