//! `pgkeep check`: the health of a database's backups for monitoring; one line per problem and
//! exit 8 when there is one.

use anyhow::Result;

use crate::catalog;
use crate::cli::CheckArgs;
use crate::config::Settings;
use crate::report;

pub fn run(args: &CheckArgs, settings: &Settings) -> Result<()> {
    let database = settings.database_or(&args.database);
    let store = crate::storage::open(&settings.backup_dir, &settings.s3)?;
    let entries = catalog::list(&*store, Some(&settings.host))?;
    let health = crate::check::evaluate(
        &entries,
        &database,
        store.free_bytes(),
        &store.describe(),
        jiff::Timestamp::now(),
        &settings.check,
    );
    if !args.json {
        for w in &health.warnings {
            println!("warning: {}: {}", w.code, w.message);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&health)?);
    } else if health.ok {
        println!(
            "ok: the newest good backup of \"{database}\" is {} ({} old){}",
            health.newest_good.as_deref().unwrap_or("?"),
            report::human_duration(std::time::Duration::from_secs(
                health.newest_good_age_seconds.unwrap_or(0)
            )),
            health
                .last_verified_ok_at
                .map(|t| format!(
                    ", last verified good at {}",
                    t.round(jiff::Unit::Second).unwrap_or(t)
                ))
                .unwrap_or_default()
        );
    } else {
        for p in &health.problems {
            println!("{}: {}", p.code, p.message);
        }
    }
    if !health.ok {
        return Err(crate::check::Unhealthy {
            count: health.problems.len(),
            database,
        }
        .into());
    }
    Ok(())
}
