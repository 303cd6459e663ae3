//! `pgkeep restore`: turn flags and settings into a restore request, print the plan, ask for
//! confirmation on a terminal, run it, print what happened and notify.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context as _, Result};

use super::admin::admin_params;
use super::context::Context;
use super::errors::UsageError;
use crate::cli::RestoreArgs;
use crate::config::Settings;
use crate::notify::{Event, Notifier, Operation, Outcome};
use crate::pg::tools::Search;
use crate::report::human_bytes;
use crate::restore::{self, Plan, Preflight, Report, Request, Selector, Strategy};
use crate::shutdown::Shutdown;

/// Ask on the terminal; refuse without one. A shutdown signal while it waits for the answer
/// (Ctrl-C) ends it as interrupted, with nothing changed. The line is read on a thread of its
/// own, which does not hold the process up when it exits.
pub async fn confirm(question: &str, expected: &str, shutdown: &Shutdown) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "refusing to go on without confirmation: standard input is not a terminal; pass --yes to confirm"
                .into(),
        )
        .into());
    }
    eprint!("{question} ");
    std::io::stderr().flush()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let mut shutdown = shutdown.clone();
    let line = tokio::select! {
        read = rx => read.map_err(|_| anyhow::anyhow!("cannot read the answer"))??,
        reason = shutdown.wait() => {
            eprintln!();
            return Err(restore::RestoreError::Interrupted {
                reason,
                state: "nothing was changed".into(),
            }
            .into());
        }
    };
    if line.trim() != expected {
        return Err(UsageError("not confirmed; nothing was changed".into()).into());
    }
    Ok(())
}

pub fn render_plan(req: &Request, pre: &Preflight, plan: &Plan) -> String {
    let mut out = String::new();
    let b = &req.backup;
    for s in &b.skipped {
        out.push_str(&format!("Newer backup {s}\n"));
    }
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
    if let (Some(p), Some(now)) = (&report.previous, &report.previous_now) {
        out.push_str(&previous_line(p, now, &req.target));
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

/// How the flags choose a backup.
/// The report's line on the kept copy, from what `pg_database` showed at the end.
fn previous_line(p: &str, now: &restore::PreviousNow, target: &str) -> String {
    use restore::PreviousNow;
    let fix = restore::cleanup_command(target);
    match now {
        PreviousNow::Kept => {
            format!("  previous copy kept as \"{p}\" (connections disabled); `{fix}` drops it\n")
        }
        PreviousNow::Drop(d) => format!("  {}\n", d.phrase("previous copy", p, &fix)),
        PreviousNow::Missing => {
            format!("  previous copy \"{p}\": the server no longer lists it\n")
        }
        PreviousNow::Unread(e) => format!(
            "  previous copy \"{p}\": whether it is still there could not be read ({e}); `{fix}` drops it if it is\n"
        ),
    }
}

fn selector(args: &RestoreArgs) -> Result<Selector> {
    Ok(match (&args.backup_id, &args.file, &args.before) {
        (Some(id), _, _) => Selector::Id(id.clone()),
        (_, Some(f), _) => Selector::File(f.clone()),
        (_, _, Some(t)) => Selector::Before(restore::parse_time(t).ok_or_else(|| {
            UsageError(format!(
                "--before `{t}` is not a time (use 2026-11-25, \"2026-11-25 10:00\" or RFC 3339)"
            ))
        })?),
        _ => Selector::Latest,
    })
}

/// The restore request of the flags and settings: the chosen backup, the target database (the
/// flag's, else the backup's, else the configured one), hooks, tools and the environment.
fn request(args: &RestoreArgs, settings: &Settings, ctx: &Context) -> Result<Request> {
    let source_db = super::set::one(settings, &args.database, "restore")?;
    let store = crate::storage::open(&settings.backup_dir, &settings.s3)?;
    let backup = restore::choose(
        &*store,
        &ctx.tmp_dir(),
        &settings.host,
        &source_db,
        &selector(args)?,
        args.allow_unverified,
    )?;
    let backup = opened(&*store, &selector(args)?, backup, settings, ctx)?;
    for s in &backup.skipped {
        tracing::warn!(id = %backup.id, "restoring an older backup: {s}");
    }
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
    Ok(build(args, settings, ctx, backup, target))
}

/// The chosen backup ready to load: its manifest's seal checked (a warning when it cannot be
/// proven, a refusal when it is broken) and, when it is encrypted, decrypted into a private file.
pub(super) fn opened(
    store: &dyn crate::storage::Store,
    selector: &Selector,
    backup: restore::Chosen,
    settings: &Settings,
    ctx: &Context,
) -> Result<restore::Chosen, restore::RestoreError> {
    if let Some(note) =
        restore::check_seal(store, selector, &backup, settings.manifest_keys.as_ref())?
    {
        tracing::warn!("backup {}: {note}", backup.id);
    }
    restore::decrypt(backup, &ctx.tmp_dir(), settings.age_identities.as_ref())
}

/// The restore request of `backup` into `target` by the flags and settings.
pub(super) fn build(
    args: &RestoreArgs,
    settings: &Settings,
    ctx: &Context,
    backup: restore::Chosen,
    target: String,
) -> Request {
    Request {
        load: restore::LoadPolicy {
            as_admin: args.load_as_admin,
            allow_unrestricted_psql: args.allow_unrestricted_psql,
            owner: args.owner.clone(),
            configured: Some(crate::pg::ConnParams::from_settings(settings, &target)),
        },
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
            path_env: ctx.path_env(),
        },
        jobs: args.jobs.map_or(settings.restore_jobs, usize::from),
        checks: args.check_sql.clone(),
        create_roles: args.create_roles,
        drop_previous: args.drop_previous,
        pre_hooks: settings.pre_restore.clone(),
        post_hooks: settings.post_restore.clone(),
        hook_timeout: settings.hook_timeout,
        child_env: ctx.child_env(),
        tmp_dir: ctx.tmp_dir(),
        shutdown: ctx.shutdown.clone(),
        now: jiff::Timestamp::now(),
        progress: crate::model::Progress::none(),
    }
}

pub async fn run(args: &RestoreArgs, settings: &Settings, ctx: &Context) -> Result<()> {
    let mut req = request(args, settings, ctx)?;
    tracing::debug!(backup = %req.backup.id, file = %req.backup.path.display(), target = %req.target, "restore preflight");
    let pre = if args.target.dry_run {
        restore::dry_run_preflight(&req).await
    } else {
        restore::preflight(&req).await
    }
    .with_context(|| format!("restore of \"{}\" refused in preflight", req.target))?;
    let plan = restore::plan(&req, &pre);
    let refusal = restore::refusal(&req, &pre);
    if args.target.dry_run {
        print!("{}", render_plan(&req, &pre, &plan));
        return match refusal {
            Some(why) => {
                println!("Dry run: the restore would be REFUSED: {why}. Nothing was changed.");
                Err(restore::RestoreError::Refused(format!(
                    "dry run: the restore would be refused: {why}"
                ))
                .into())
            }
            None => {
                println!("Dry run: nothing was changed.");
                Ok(())
            }
        };
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
            &ctx.shutdown,
        )
        .await?;
    }
    super::repair::repair(settings, &args.target, Some(&req.target), ctx).await?;
    // The progress line from here on: not over the plan or the question.
    let line = super::progress::Line::start(settings);
    req.progress = line.progress();
    let done = execute(&req, &pre, &line, settings).await;
    drop(line);
    done
}

/// Run the confirmed restore; print and log what it did, and notify of its outcome.
async fn execute(
    req: &Request,
    pre: &Preflight,
    line: &super::progress::Line,
    settings: &Settings,
) -> Result<()> {
    let notifier = Notifier::from_settings(settings);
    let tell = |outcome: Outcome, summary: String| {
        if notifier.is_configured() {
            let event = Event::new(
                Operation::Restore,
                outcome,
                Some(&req.target),
                &settings.host,
                summary,
            )
            .detail("backup", req.backup.id.clone());
            tokio::task::block_in_place(|| notifier.notify(&event));
        }
    };
    let report = match restore::execute(req, pre)
        .await
        .with_context(|| format!("restore of \"{}\" failed", req.target))
    {
        Ok(r) => r,
        Err(e) => {
            tell(Outcome::Failure, crate::exit::one_line(&e));
            return Err(e);
        }
    };
    line.clear();
    print!("{}", render_report(req, &report));
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
        tell(Outcome::Failure, msg.clone());
        anyhow::bail!(msg);
    }
    tell(
        Outcome::Success,
        format!(
            "database \"{}\" restored from backup {}",
            req.target, req.backup.id
        ),
    );
    Ok(())
}
