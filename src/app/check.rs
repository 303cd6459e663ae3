//! `pgkeep check`: the health of a database's backups for monitoring; one line per problem and
//! exit 8 when there is one.

use anyhow::Result;

use crate::catalog;
use crate::cli::CheckArgs;
use crate::config::Settings;
use crate::report;

pub async fn run(args: &CheckArgs, settings: &Settings) -> Result<()> {
    let sel = match super::set::targets(settings, &args.database).await? {
        super::set::Targets::One(database) => {
            let health = evaluate(settings, &database)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&health)?);
            } else {
                print!("{}", render(&health, &database, ""));
            }
            return verdict(health, database);
        }
        super::set::Targets::Set(sel) => sel,
    };
    let (done, res) = super::set::each(&sel, &settings.host, true, async |db| {
        let health = evaluate(settings, db)?;
        if !args.json {
            let label = super::set::label(db);
            print!("{}", render(&health, db, &format!("{label}: ")));
        }
        Ok(health)
    })
    .await;
    if args.json {
        let all: Vec<_> = done.iter().map(|(_, h)| h).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    let mut unhealthy = Vec::new();
    for (db, health) in done {
        if let Err(e) = verdict(health, db.clone()) {
            unhealthy.push((db, crate::exit::one_line(&e)));
        }
    }
    match (res, unhealthy.is_empty()) {
        (Err(e), _) => Err(e),
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => Err(crate::databases::SetFailed {
            total: sel.databases.len(),
            failed: unhealthy,
            code: crate::exit::UNHEALTHY,
        }
        .into()),
    }
}

fn evaluate(settings: &Settings, database: &str) -> Result<crate::check::Health> {
    let store = crate::storage::open(&settings.backup_dir, &settings.s3)?;
    let entries = catalog::list(&*store, Some(&settings.host))?;
    Ok(crate::check::evaluate(
        &entries,
        database,
        store.free_bytes(),
        &store.describe(),
        jiff::Timestamp::now(),
        &settings.check,
    ))
}

/// The human lines of one database's health (`prefix` before each problem line).
fn render(health: &crate::check::Health, database: &str, prefix: &str) -> String {
    let warnings: String = health
        .warnings
        .iter()
        .map(|w| format!("{prefix}warning: {}: {}\n", w.code, w.message))
        .collect();
    if health.ok {
        return format!(
            "{warnings}ok: the newest good backup of {} is {} ({} old){}\n",
            match database == crate::catalog::GLOBALS {
                true => "the globals".to_string(),
                false => format!("\"{database}\""),
            },
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
    }
    let problems: String = health
        .problems
        .iter()
        .map(|p| format!("{prefix}{}: {}\n", p.code, p.message))
        .collect();
    warnings + &problems
}

fn verdict(health: crate::check::Health, database: String) -> Result<()> {
    if !health.ok {
        return Err(crate::check::Unhealthy {
            count: health.problems.len(),
            database,
        }
        .into());
    }
    Ok(())
}
