//! `pgkeep cleanup`: list the copies kept by restores and the scratch databases of interrupted
//! ones, and drop them after confirmation.

use anyhow::{Context as _, Result};

use super::admin::admin_params;
use super::context::Context;
use super::restore::confirm;
use crate::cli::CleanupArgs;
use crate::config::Settings;
use crate::report::human_bytes;
use crate::restore;

pub async fn run(args: &CleanupArgs, settings: &Settings, ctx: &Context) -> Result<()> {
    let target = args.target();
    let admin = admin_params(settings, &target);
    if !target.dry_run {
        super::repair::repair(settings, &target, args.database.as_deref(), ctx).await?;
    }
    let found = restore::leftovers(&admin, args.database.as_deref()).await?;
    if found.is_empty() {
        println!("Nothing to clean up on {}.", admin.target());
        return Ok(());
    }
    println!("Kept copies on {}:", admin.target());
    for l in &found {
        println!(
            "  {:<50} {:>10}  {}{}",
            l.name,
            human_bytes(l.size.max(0) as u64),
            l.kind,
            if l.sessions > 0 {
                format!(" ({} sessions)", l.sessions)
            } else {
                String::new()
            }
        );
    }
    if args.dry_run {
        println!("Dry run: nothing was dropped.");
        return Ok(());
    }
    if !args.yes {
        confirm(
            &format!("Type \"drop {}\" to drop them:", found.len()),
            &format!("drop {}", found.len()),
            &ctx.shutdown,
        )
        .await?;
    }
    for l in &found {
        restore::drop_leftover(&admin, &l.name)
            .await
            .with_context(|| format!("cleanup stopped at \"{}\"", l.name))?;
        println!("dropped {}", l.name);
    }
    Ok(())
}
