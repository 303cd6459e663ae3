//! The `pgkeep restore` and `pgkeep cleanup` commands: turn flags and settings into a restore
//! request, print the plan, ask for confirmation on a terminal, run it, print what happened.
//! (Command layer: the only place besides `commands` and `main` that writes to stdout.)

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::app::{Context_, UsageError};
use crate::cli::{CleanupArgs, RestoreArgs, TargetArgs};
use crate::config::Settings;
use crate::pg::ConnParams;
use crate::pg::tools::Search;
use crate::report::human_bytes;
use crate::restore::{self, Plan, Preflight, Report, Request, Selector, Strategy};

/// The admin connection: PGKEEP_ADMIN_USER with its own password or passfile, else the backup
/// user; on the target server when one is given.
pub fn admin_params(settings: &Settings, target: &TargetArgs) -> ConnParams {
    let mut p = ConnParams::from_settings(settings, "postgres");
    if let Some(u) = &settings.admin_user
        && *u != settings.user
    {
        p.user = u.clone();
        p.password = settings.admin_password.clone();
        p.passfile = settings
            .admin_passfile
            .clone()
            .or_else(|| settings.passfile.clone());
    } else {
        if settings.admin_password.is_some() {
            p.password = settings.admin_password.clone();
        }
        if let Some(f) = &settings.admin_passfile {
            p.passfile = Some(f.clone());
        }
    }
    if let Some(h) = &target.target_host {
        p.host = h.clone();
    }
    if let Some(port) = target.target_port {
        p.port = port;
    }
    p
}

fn tmp_dir(ctx: &Context_) -> PathBuf {
    ctx.env
        .get("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Ask on the terminal; refuse without one.
fn confirm(question: &str, expected: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "refusing to go on without confirmation: standard input is not a terminal; pass --yes to confirm"
                .into(),
        )
        .into());
    }
    eprint!("{question} ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != expected {
        return Err(UsageError("not confirmed; nothing was changed".into()).into());
    }
    Ok(())
}

pub fn render_plan(req: &Request, pre: &Preflight, plan: &Plan) -> String {
    let mut out = String::new();
    let b = &req.backup;
    out.push_str(&format!(
        "Restore plan: backup {} ({}, {}{}) -> database \"{}\" on {} (PostgreSQL {}, as role \"{}\"{})\n",
        b.id,
        b.path.display(),
        human_bytes(b.stored_bytes),
        b.time
            .map(|t| format!(", taken {}", t.round(jiff::Unit::Second).unwrap_or(t)))
            .unwrap_or_default(),
        req.target,
        req.admin.target(),
        pre.server_version,
        pre.admin_user,
        if pre.superuser { ", superuser" } else { "" }
    ));
    out.push_str(&format!(
        "Strategy: {}; the database {}\n",
        match req.strategy {
            Strategy::Swap => "swap",
            Strategy::InPlace => "in-place",
        },
        if pre.target_exists {
            format!("exists ({} sessions now)", pre.live_sessions)
        } else {
            "does not exist yet".into()
        }
    ));
    out.push_str(&format!("Space needed: {}\n", plan.space));
    if !pre.roles_missing.is_empty() {
        out.push_str(&format!(
            "Roles missing on the target: {}{}\n",
            pre.roles_missing.join(", "),
            if req.create_roles {
                " (will be created)"
            } else {
                " (the restore will refuse; --create-roles creates them)"
            }
        ));
    }
    for p in &pre.missing_privileges {
        out.push_str(&format!("Missing privilege: {p}\n"));
    }
    for (i, s) in plan.steps.iter().enumerate() {
        out.push_str(&format!("{:>2}. {}\n", i + 1, s.title));
        for d in &s.details {
            out.push_str(&format!("      {d}\n"));
        }
    }
    for n in &plan.notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    out
}

pub fn render_report(req: &Request, report: &Report) -> String {
    let mut out = format!(
        "Restored database \"{}\" from backup {}\n",
        req.target, req.backup.id
    );
    let w = report
        .phases
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(5);
    for (name, d) in &report.phases {
        out.push_str(&format!("  {name:<w$}  {:>8.2}s\n", d.as_secs_f64()));
    }
    match report.downtime {
        Some(d) => out.push_str(&format!(
            "  downtime (database unavailable): {:.3}s\n",
            d.as_secs_f64()
        )),
        None => out.push_str("  downtime: none (the database did not exist before)\n"),
    }
    if report.tables_checked > 0 {
        out.push_str(&format!(
            "  row counts checked: {} tables, {} rows, all equal\n",
            report.tables_checked, report.rows_checked
        ));
    }
    if !req.checks.is_empty() {
        out.push_str(&format!("  checks passed: {}\n", req.checks.len()));
    }
    if !report.roles_created.is_empty() {
        out.push_str(&format!(
            "  roles created (no password): {}\n",
            report.roles_created.join(", ")
        ));
    }
    match (&report.previous, report.previous_dropped) {
        (Some(p), true) => out.push_str(&format!("  previous copy \"{p}\" dropped\n")),
        (Some(p), false) => out.push_str(&format!(
            "  previous copy kept as \"{p}\" (connections disabled); `pgkeep cleanup` drops it\n"
        )),
        _ => {}
    }
    for h in report.pre_hooks.iter().chain(&report.post_hooks) {
        out.push_str(&format!(
            "  hook {}: {}{}\n",
            restore::hooks::show_argv(&h.argv),
            if h.ok { "ok" } else { "FAILED: " },
            if h.ok {
                String::new()
            } else {
                h.message.clone()
            }
        ));
    }
    for n in &report.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}

pub async fn cmd_restore(args: &RestoreArgs, settings: &Settings, ctx: &Context_) -> Result<()> {
    let source_db = settings.database_or(&args.database);
    let selector = match (&args.backup_id, &args.file, &args.before) {
        (Some(id), _, _) => Selector::Id(id.clone()),
        (_, Some(f), _) => Selector::File(f.clone()),
        (_, _, Some(t)) => Selector::Before(restore::parse_time(t).ok_or_else(|| {
            UsageError(format!(
                "--before `{t}` is not a time (use 2026-11-25, \"2026-11-25 10:00\" or RFC 3339)"
            ))
        })?),
        _ => Selector::Latest,
    };
    let backup = restore::choose(&settings.backup_dir, &settings.host, &source_db, &selector)?;
    let target =
        args.target_database
            .clone()
            .unwrap_or_else(|| match (&backup.manifest, &args.database) {
                (_, Some(d)) => d.clone(),
                (Some(m), None) => m.database.clone(),
                (None, None) => settings.database.clone(),
            });
    if target.is_empty() {
        return Err(UsageError("the target database name is empty".into()).into());
    }
    let req = Request {
        backup,
        target,
        strategy: if args.in_place {
            Strategy::InPlace
        } else {
            Strategy::Swap
        },
        admin: admin_params(settings, &args.target),
        search: Search {
            bindir: settings.pg_bindir.clone(),
            path_env: ctx.env.get("PATH").map(Into::into),
        },
        jobs: args.jobs as usize,
        checks: args.check_sql.clone(),
        create_roles: args.create_roles,
        drop_previous: args.drop_previous,
        pre_hooks: settings.pre_restore.clone(),
        post_hooks: settings.post_restore.clone(),
        hook_timeout: Duration::from_secs(settings.hook_timeout),
        child_env: crate::process::inherited_env(&ctx.env),
        tmp_dir: tmp_dir(ctx),
        shutdown: ctx.shutdown.clone(),
        now: jiff::Timestamp::now(),
    };
    tracing::info!(backup = %req.backup.id, file = %req.backup.path.display(), target = %req.target, "restore preflight");
    let pre = restore::preflight(&req)
        .await
        .with_context(|| format!("restore of \"{}\" refused in preflight", req.target))?;
    let plan = restore::plan(&req, &pre);
    let refusal = restore::refusal(&req, &pre);
    if args.target.dry_run {
        print!("{}", render_plan(&req, &pre, &plan));
        match refusal {
            Some(why) => {
                println!("Dry run: the restore would be REFUSED: {why}. Nothing was changed.")
            }
            None => println!("Dry run: nothing was changed."),
        }
        return Ok(());
    }
    if let Some(why) = refusal {
        return Err(restore::RestoreError::Refused(why).into());
    }
    print!("{}", render_plan(&req, &pre, &plan));
    std::io::stdout().flush()?;
    if !args.target.yes {
        confirm(
            &format!(
                "Type the database name \"{}\" to restore it{}:",
                req.target,
                if args.in_place {
                    " IN PLACE (it is dropped first)"
                } else {
                    ""
                }
            ),
            &req.target,
        )?;
    }
    let notifier = crate::notify::Notifier::from_settings(settings);
    let tell = |outcome: crate::notify::Outcome, summary: String| {
        if notifier.is_configured() {
            let event = crate::notify::Event::new(
                crate::notify::Operation::Restore,
                outcome,
                Some(&req.target),
                &settings.host,
                summary,
            )
            .detail("backup", req.backup.id.clone());
            tokio::task::block_in_place(|| notifier.notify(&event));
        }
    };
    let report = match restore::execute(&req, &pre)
        .await
        .with_context(|| format!("restore of \"{}\" failed", req.target))
    {
        Ok(r) => r,
        Err(e) => {
            tell(crate::notify::Outcome::Failure, crate::exit::one_line(&e));
            return Err(e);
        }
    };
    print!("{}", render_report(&req, &report));
    tracing::info!(
        database = %req.target,
        backup = %req.backup.id,
        downtime = %report.downtime.map(|d| format!("{:.3}s", d.as_secs_f64())).unwrap_or_else(|| "none".into()),
        total = %format!("{:.1}s", report.phases.iter().map(|(_, d)| d.as_secs_f64()).sum::<f64>()),
        "restore complete"
    );
    if let Some(h) = report.post_hooks.iter().find(|h| !h.ok) {
        let msg = format!(
            "the restore of \"{}\" succeeded, but post-restore hook `{}` failed: {}",
            req.target,
            restore::hooks::show_argv(&h.argv),
            h.message
        );
        tell(crate::notify::Outcome::Failure, msg.clone());
        anyhow::bail!(msg);
    }
    tell(
        crate::notify::Outcome::Success,
        format!(
            "database \"{}\" restored from backup {}",
            req.target, req.backup.id
        ),
    );
    Ok(())
}

pub async fn cmd_cleanup(args: &CleanupArgs, settings: &Settings) -> Result<()> {
    let admin = admin_params(settings, &args.target);
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
    if args.target.dry_run {
        println!("Dry run: nothing was dropped.");
        return Ok(());
    }
    if !args.target.yes {
        confirm(
            &format!("Type \"drop {}\" to drop them:", found.len()),
            &format!("drop {}", found.len()),
        )?;
    }
    for l in &found {
        restore::drop_leftover(&admin, &l.name)
            .await
            .with_context(|| format!("cleanup stopped at \"{}\"", l.name))?;
        println!("dropped {}", l.name);
    }
    Ok(())
}
