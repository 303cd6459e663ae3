//! `pgkeep prune`: what the retention policy keeps and culls, with the rule behind each
//! decision; deletes only with `--apply`.

use anyhow::Result;

use crate::catalog::Status;
use crate::cli::PruneArgs;
use crate::config::Settings;
use crate::prune;
use crate::report;
use crate::storage::{self, Site};

pub async fn run(args: &PruneArgs, settings: &Settings) -> Result<()> {
    let sel = match super::set::targets(settings, &args.database).await? {
        super::set::Targets::One(database) => {
            let (plan, applied) = one(args, settings, &database)?;
            return show(args, settings, &plan, applied.as_ref(), false);
        }
        super::set::Targets::Set(sel) => sel,
    };
    let (done, res) = super::set::each(&sel, &settings.host, true, async |db| {
        one(args, settings, db)
    })
    .await;
    if args.json {
        let all: Vec<_> = done
            .iter()
            .map(|(_, (plan, applied))| json(args, plan, applied.as_ref()))
            .collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for (_, (plan, applied)) in &done {
            show(args, settings, plan, applied.as_ref(), true)?;
        }
    }
    res
}

/// The plan for one database, applied with `--apply`.
fn one(
    args: &PruneArgs,
    settings: &Settings,
    database: &str,
) -> Result<(prune::Plan, Option<prune::Applied>)> {
    let store = storage::open(&settings.backup_dir, &settings.s3)?;
    let lock_dir = storage::lock_dir(&settings.lock_dir)?;
    let plan = prune::plan(
        Site::new(&*store, &lock_dir),
        &settings.host,
        database,
        jiff::Timestamp::now(),
        &settings.policy,
        &settings.timezone,
        settings.partial_max_age,
        &crate::verify::verified_state,
    )?;
    let applied = if args.apply {
        Some(prune::apply(
            Site::new(&*store, &lock_dir),
            &settings.host,
            &plan,
            &format!("pgkeep prune (pid {})", std::process::id()),
        )?)
    } else {
        None
    };
    Ok((plan, applied))
}

fn json(
    args: &PruneArgs,
    plan: &prune::Plan,
    applied: Option<&prune::Applied>,
) -> serde_json::Value {
    serde_json::json!({
        "applied": args.apply,
        "plan": plan,
        "result": applied,
    })
}

/// Print one database's plan (`blank`: a blank line before it, between databases).
fn show(
    args: &PruneArgs,
    settings: &Settings,
    plan: &prune::Plan,
    applied: Option<&prune::Applied>,
    blank: bool,
) -> Result<()> {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json(args, plan, applied))?
        );
    } else {
        if blank {
            println!();
        }
        print!("{}", render_prune(plan, applied, settings));
    }
    Ok(())
}

/// The human output of `pgkeep prune`.
pub fn render_prune(
    plan: &prune::Plan,
    applied: Option<&prune::Applied>,
    settings: &Settings,
) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "ACTION".into(),
        format!(
            "TIME ({})",
            report::zone_label(&settings.timezone, &settings.timezone_name)
        ),
        "STATUS".into(),
        "ID".into(),
        "RULE".into(),
    ]];
    let verb = |keep: bool| match (keep, applied.is_some()) {
        (true, _) => "keep",
        (false, true) => "deleted",
        (false, false) => "delete",
    };
    for i in &plan.items {
        rows.push([
            verb(i.verdict.keep()).into(),
            i.time
                .to_zoned(settings.timezone.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string(),
            match (i.status, i.verified) {
                (Status::Good, Some(crate::model::Verdict::Bad)) => "bad".into(),
                (Status::Good, Some(crate::model::Verdict::Inconclusive)) => {
                    "good (inconclusive)".into()
                }
                (Status::Good, _) => "good".into(),
                (Status::Legacy, _) => "legacy".into(),
                (Status::Uncommitted, _) => "uncommitted".into(),
                (Status::Unreadable, _) => "unreadable".into(),
            },
            i.id.clone(),
            i.verdict.to_string(),
        ]);
    }
    for f in &plan.unattributed {
        rows.push([
            "keep".into(),
            "-".into(),
            "legacy".into(),
            f.clone(),
            "database unknown from the file name: left alone".into(),
        ]);
    }
    for o in &plan.orphans {
        rows.push([
            verb(false).into(),
            "-".into(),
            "orphan".into(),
            o.file.clone(),
            match o.age_seconds / 3600 {
                h if h >= 48 => format!("{}, {} days old", o.kind, h / 24),
                h => format!("{}, {h} hours old", o.kind),
            },
        ]);
    }
    let mut out = format!(
        "{} in {}, policy {}\n",
        super::set::label(&plan.database),
        settings.backup_dir.display(),
        plan.policy
    );
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, w) in widths.iter().enumerate() {
            line.push_str(&format!("{:<w$}  ", r[c]));
        }
        line.push_str(&r[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let culled: Vec<_> = plan.to_delete().collect();
    let bytes: u64 = culled.iter().map(|i| i.stored_bytes).sum();
    match applied {
        Some(a) => out.push_str(&format!(
            "deleted {} of {} backups ({}) and {} leftover files\n",
            a.deleted.len(),
            plan.items.len(),
            report::human_bytes(a.deleted_bytes),
            a.orphans_removed.len()
        )),
        None => out.push_str(&format!(
            "dry run: {} of {} backups ({}) and {} leftover files would be deleted; run with --apply to delete\n",
            culled.len(),
            plan.items.len(),
            report::human_bytes(bytes),
            plan.orphans.len()
        )),
    }
    out
}
