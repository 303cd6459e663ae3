//! `pgkeep restore --all`: the recovery of a whole server, e.g. onto an empty one after the old
//! one was lost. The globals first (roles the target has left alone), then every database from its
//! newest backup that is not verified bad through the ordinary restore engine; a plan before
//! anything happens, a report per database at the end. One database failing never stops the
//! others.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::admin::admin_params;
use super::context::Context;
use crate::catalog::{self, GLOBALS, Status};
use crate::cli::RestoreArgs;
use crate::config::Settings;
use crate::databases::SetFailed;
use crate::model::DatabaseSet;
use crate::notify::{Event, Notifier, Operation, Outcome};
use crate::pg::ConnParams;
use crate::report::human_bytes;
use crate::restore::{
    self, Chosen, GlobalsApplied, GlobalsPlan, Preflight, Report, Request, RestoreError, Selector,
    TargetGlobals,
};
use crate::storage::Store;

/// One database of the recovery: its request and what its preflight found (or why it could not
/// be prepared, one line).
struct Item {
    db: String,
    req: Option<Request>,
    pre: Result<Preflight, String>,
}

impl Item {
    /// Why this database cannot be restored, if it cannot.
    fn refusal(&self) -> Option<String> {
        match (&self.req, &self.pre) {
            (_, Err(why)) => Some(why.clone()),
            (Some(req), Ok(pre)) => restore::refusal(req, pre),
            (None, Ok(_)) => Some("no request".into()),
        }
    }
}

/// The globals part of the recovery.
struct Globals {
    backup: Chosen,
    check: String,
    target: TargetGlobals,
    plan: GlobalsPlan,
}

/// The admin connection to the target's maintenance database, its password resolved.
fn admin(settings: &Settings, args: &RestoreArgs) -> ConnParams {
    let mut a = admin_params(settings, &args.target);
    if a.password.is_none() {
        a.password = a.resolve_password();
    }
    a
}

/// The databases to restore: those with backups in the store (or the `databases` list when it
/// names them), minus `exclude_databases`.
fn databases(settings: &Settings, store: &dyn Store) -> Result<Vec<String>> {
    let mut entries = catalog::list(store, Some(&settings.host))?;
    entries.retain(|e| e.status != Status::Uncommitted);
    let mut names = match &settings.databases {
        Some(DatabaseSet::Named(list)) => list.clone(),
        _ => crate::databases::with_backups(&entries),
    };
    names.retain(|n| !settings.exclude_databases.contains(n));
    Ok(names)
}

pub async fn run(args: &RestoreArgs, settings: &Settings, ctx: &Context) -> Result<()> {
    let dry_run = args.target.dry_run;
    let store = crate::storage::open(&settings.backup_dir, &settings.s3)?;
    let names = databases(settings, &*store)?;
    let globals = globals(args, settings, ctx, &*store).await?;
    let mut items = Vec::new();
    for db in names {
        items.push(prepare(args, settings, ctx, &*store, db).await);
    }
    print!("{}", render_plan(args, settings, &globals, &items));
    let mut refusals: Vec<String> = restore::globals_refusal(&globals.target)
        .map(|w| format!("the globals: {w}"))
        .into_iter()
        .collect();
    refusals.extend(
        items
            .iter()
            .filter_map(|i| i.refusal().map(|w| format!("database \"{}\": {w}", i.db))),
    );
    let refused = (!refusals.is_empty()).then(|| refusals.join("; "));
    if dry_run {
        return match refused {
            Some(why) => {
                println!("Dry run: the recovery would be REFUSED: {why}. Nothing was changed.");
                Err(
                    RestoreError::Refused(format!("dry run: the recovery would be refused: {why}"))
                        .into(),
                )
            }
            None => {
                println!("Dry run: nothing was changed.");
                Ok(())
            }
        };
    }
    if let Some(why) = refused {
        return Err(RestoreError::Refused(why).into());
    }
    std::io::stdout().flush()?;
    if !args.target.yes {
        let host = target_host(settings, args);
        super::restore::confirm(
            &format!(
                "Type the target server \"{host}\" to restore the globals and {} onto it:",
                count_databases(items.len())
            ),
            &host,
            &ctx.shutdown,
        )
        .await?;
    }
    let applied = restore::apply_globals(&admin(settings, args), &globals.plan)
        .await
        .context("the recovery stopped before any database")?;
    tracing::info!(
        backup = %globals.backup.id,
        roles = globals.plan.roles_created.len(),
        "globals restored"
    );
    let mut rows = Vec::new();
    for item in items {
        rows.push(restore_one(args, settings, ctx, item).await);
    }
    print!(
        "{}",
        render_report(args, settings, &globals, &applied, &rows)
    );
    outcome(&applied, &rows)
}

fn target_host(settings: &Settings, args: &RestoreArgs) -> String {
    args.target
        .target_host
        .clone()
        .unwrap_or_else(|| settings.host.clone())
}

/// Choose and read the newest globals backup that is not bad, and plan it onto the target.
async fn globals(
    args: &RestoreArgs,
    settings: &Settings,
    ctx: &Context,
    store: &dyn Store,
) -> Result<Globals> {
    let backup = restore::choose(
        store,
        &ctx.tmp_dir(),
        &settings.host,
        GLOBALS,
        &Selector::Latest,
        false,
    )
    .map_err(|e| match e {
        RestoreError::NoBackup(_) => RestoreError::NoBackup(format!(
            "no globals backup in {}: `pgkeep backup` with `databases` set records them",
            store.describe()
        )),
        e => e,
    })?;
    let backup = super::restore::opened(store, &Selector::Latest, backup, settings, ctx)?;
    for s in &backup.skipped {
        tracing::warn!(id = %backup.id, "restoring older globals: {s}");
    }
    let file = restore::read_globals(&backup).context("the globals backup is refused")?;
    let target = restore::target_globals(&admin(settings, args))
        .await
        .context("cannot read the roles of the target server")?;
    let plan = restore::plan_globals(&file, &target);
    Ok(Globals {
        backup,
        check: file.check,
        target,
        plan,
    })
}

/// The request and read-only preflight of one database (nothing is changed).
async fn prepare(
    args: &RestoreArgs,
    settings: &Settings,
    ctx: &Context,
    store: &dyn Store,
    db: String,
) -> Item {
    let chosen = restore::choose(
        store,
        &ctx.tmp_dir(),
        &settings.host,
        &db,
        &Selector::Latest,
        false,
    )
    .and_then(|b| super::restore::opened(store, &Selector::Latest, b, settings, ctx));
    let backup = match chosen {
        Ok(b) => b,
        Err(e) => {
            return Item {
                db,
                req: None,
                pre: Err(e.to_string()),
            };
        }
    };
    let mut req = super::restore::build(args, settings, ctx, backup, db.clone());
    // The globals come first: the roles a database needs that they do not hold are created
    // without passwords and listed. Hooks are for the apps of one database, not for a recovery.
    req.create_roles = true;
    req.pre_hooks.clear();
    req.post_hooks.clear();
    let pre = restore::dry_run_preflight(&req)
        .await
        .map_err(|e| e.to_string());
    Item {
        db,
        req: Some(req),
        pre,
    }
}

/// The result of one database's restore.
struct Row {
    db: String,
    backup: String,
    result: Result<(Report, Duration), String>,
    code: u8,
}

/// Restore one database: repair what a killed restore of it left, preflight again (the roles
/// are there now), execute; notify of the outcome.
async fn restore_one(args: &RestoreArgs, settings: &Settings, ctx: &Context, item: Item) -> Row {
    let db = item.db.clone();
    let Some(mut req) = item.req else {
        return Row {
            db,
            backup: "-".into(),
            result: Err("not prepared".into()),
            code: crate::exit::FAILED,
        };
    };
    let backup = req.backup.id.clone();
    let t = Instant::now();
    let done: Result<Report> = async {
        super::repair::repair(settings, &args.target, Some(&db), ctx).await?;
        let pre = restore::preflight(&req)
            .await
            .with_context(|| format!("restore of \"{db}\" refused in preflight"))?;
        let line = super::progress::Line::start(settings);
        req.progress = line.progress();
        let report = restore::execute(&req, &pre)
            .await
            .with_context(|| format!("restore of \"{db}\" failed"));
        line.clear();
        report
    }
    .await;
    let notifier = Notifier::from_settings(settings);
    let (outcome, summary) = match &done {
        Ok(_) => (
            Outcome::Success,
            format!("database \"{db}\" restored from backup {backup}"),
        ),
        Err(e) => (Outcome::Failure, crate::exit::one_line(e)),
    };
    if notifier.is_configured() {
        let event = Event::new(
            Operation::Restore,
            outcome,
            Some(&db),
            &settings.host,
            summary,
        )
        .detail("backup", backup.clone());
        tokio::task::block_in_place(|| notifier.notify(&event));
    }
    match done {
        Ok(report) => {
            tracing::info!(database = %db, backup = %backup, "restore complete");
            Row {
                db,
                backup,
                result: Ok((report, t.elapsed())),
                code: 0,
            }
        }
        Err(e) => {
            tracing::warn!(database = %db, "{}", crate::exit::one_line(&e));
            Row {
                db,
                backup,
                code: super::errors::exit_code(&e),
                result: Err(crate::exit::one_line(&e)),
            }
        }
    }
}

/// Exit: 0 when everything came back, else the first failure's code naming every failure.
fn outcome(applied: &GlobalsApplied, rows: &[Row]) -> Result<()> {
    let mut failed: Vec<(String, String)> = applied
        .tablespace_failures
        .iter()
        .map(|(t, e)| {
            (
                GLOBALS.to_string(),
                format!("tablespace \"{t}\" not created: {e}"),
            )
        })
        .collect();
    let mut code = (!failed.is_empty()).then_some(crate::exit::FAILED);
    for r in rows {
        if let Err(e) = &r.result {
            code.get_or_insert(r.code);
            failed.push((r.db.clone(), e.clone()));
        }
    }
    match code {
        None => Ok(()),
        Some(code) => Err(SetFailed {
            total: rows.len(),
            failed,
            code,
        }
        .into()),
    }
}

fn names(list: &[String]) -> String {
    list.iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn taken(b: &Chosen) -> String {
    b.time
        .map(|t| format!(", taken {}", t.round(jiff::Unit::Second).unwrap_or(t)))
        .unwrap_or_default()
}

/// "1 database", "4 databases".
fn count_databases(n: usize) -> String {
    match n {
        1 => "1 database".to_string(),
        n => format!("{n} databases"),
    }
}

/// The plan: the target, the globals (roles created and left alone, passwords, tablespaces),
/// then one block per database.
fn render_plan(args: &RestoreArgs, settings: &Settings, g: &Globals, items: &[Item]) -> String {
    let t = &g.target;
    let mut out = format!(
        "Recovery plan: the globals and {} from {} -> {} (PostgreSQL {}, as role \"{}\"{})\n",
        count_databases(items.len()),
        settings.backup_dir.display(),
        target_host(settings, args),
        t.server_version,
        t.admin_user,
        if t.superuser { ", superuser" } else { "" }
    );
    out.push_str(&format!(
        "Globals: backup {} ({}, {}{}): {}\n",
        g.backup.id,
        g.backup.path.display(),
        human_bytes(g.backup.stored_bytes),
        taken(&g.backup),
        g.check
    ));
    for s in &g.backup.skipped {
        out.push_str(&format!("  newer globals backup {s}\n"));
    }
    let p = &g.plan;
    out.push_str(&match p.roles_created.len() {
        0 => "  roles to create: none\n".to_string(),
        n => format!("  roles to create ({n}): {}\n", names(&p.roles_created)),
    });
    if !p.roles_existing.is_empty() {
        out.push_str(&format!(
            "  roles already on the target, left as they are with their memberships and settings ({}): {}\n",
            p.roles_existing.len(),
            names(&p.roles_existing)
        ));
    }
    if !p.passwordless.is_empty() {
        out.push_str(&format!(
            "  roles that will have no password (the backup holds none for them): {}\n",
            names(&p.passwordless)
        ));
    }
    for ts in &p.tablespaces {
        out.push_str(&if ts.exists {
            format!("  tablespace \"{}\": on the target already, left as it is\n", ts.name)
        } else {
            format!(
                "  tablespace \"{}\": created in {} (the directory must exist on the target host, empty, owned by the server's OS user)\n",
                ts.name, ts.location
            )
        });
    }
    out.push_str("Databases, each from its newest backup that is not verified bad:\n");
    for i in items {
        out.push_str(&render_item(i, p));
    }
    if !settings.pre_restore.is_empty() || !settings.post_restore.is_empty() {
        out.push_str("Note: the pre_restore and post_restore hooks are not run by --all\n");
    }
    out
}

fn render_item(i: &Item, globals: &GlobalsPlan) -> String {
    let (Some(req), Ok(pre)) = (&i.req, &i.pre) else {
        return format!(
            "  \"{}\": REFUSED: {}\n",
            i.db,
            i.refusal().unwrap_or_default()
        );
    };
    let b = &req.backup;
    let mut out = format!(
        "  \"{}\": backup {} ({}{}); {}\n",
        i.db,
        b.id,
        human_bytes(b.stored_bytes),
        taken(b),
        if pre.target_exists {
            format!(
                "the database exists on the target: swapped, the current one kept as \"{}\"",
                pre.previous
            )
        } else {
            "a new database".into()
        }
    );
    let extra: Vec<String> = pre
        .roles_missing
        .iter()
        .filter(|r| !globals.roles_created.contains(r))
        .cloned()
        .collect();
    if !extra.is_empty() {
        out.push_str(&format!(
            "      roles the globals do not hold, created without a password: {}\n",
            names(&extra)
        ));
    }
    for s in &b.skipped {
        out.push_str(&format!("      newer backup {s}\n"));
    }
    for u in &pre.unapplied {
        out.push_str(&format!("      not applied: {u}\n"));
    }
    if let Some(owner) = pre
        .load_owner
        .as_ref()
        .filter(|o| pre.roles_missing.contains(o))
    {
        out.push_str(&format!(
            "      its SQL runs as the owner \"{owner}\", who comes with the globals: what it may do is checked once it exists (--load-as-admin runs it as the admin)\n"
        ));
    }
    if let Some(why) = restore::refusal(req, pre) {
        out.push_str(&format!("      REFUSED: {why}\n"));
    }
    out
}

/// The report: the globals, then per database the backup used, the rows checked and the
/// duration.
fn render_report(
    args: &RestoreArgs,
    settings: &Settings,
    g: &Globals,
    applied: &GlobalsApplied,
    rows: &[Row],
) -> String {
    let p = &g.plan;
    let mut out = format!(
        "Recovery report for {}\nGlobals from backup {}: {} roles created, {} statements applied\n",
        target_host(settings, args),
        g.backup.id,
        p.roles_created.len(),
        applied.statements
    );
    if !p.roles_existing.is_empty() {
        out.push_str(&format!(
            "  roles left as they were: {}\n",
            names(&p.roles_existing)
        ));
    }
    let mut passwordless = p.passwordless.clone();
    for r in rows {
        if let Ok((report, _)) = &r.result {
            passwordless.extend(report.roles_created.iter().cloned());
        }
    }
    if !passwordless.is_empty() {
        out.push_str(&format!(
            "  roles restored without a password (set one with ALTER ROLE ... PASSWORD before they log in): {}\n",
            names(&passwordless)
        ));
    }
    for ts in &applied.tablespaces_created {
        out.push_str(&format!("  tablespace \"{ts}\" created\n"));
    }
    for (ts, e) in &applied.tablespace_failures {
        out.push_str(&format!("  tablespace \"{ts}\" FAILED: {e}\n"));
    }
    out.push_str(&render_rows(rows));
    out
}

fn render_rows(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.db.len() + 2)
        .max()
        .unwrap_or(8)
        .max(8);
    let b = rows
        .iter()
        .map(|r| r.backup.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<w$}  {:<b$}  {:>6}  {:>12}  {:>9}  RESULT\n",
        "DATABASE", "BACKUP", "TABLES", "ROWS CHECKED", "DURATION"
    );
    for r in rows {
        let name = format!("\"{}\"", r.db);
        out.push_str(&match &r.result {
            Ok((rep, d)) => format!(
                "{name:<w$}  {:<b$}  {:>6}  {:>12}  {:>8.1}s  restored{}\n",
                r.backup,
                rep.tables_checked,
                rep.rows_checked,
                d.as_secs_f64(),
                rep.previous
                    .as_ref()
                    .map(|p| format!(" (previous copy kept as \"{p}\")"))
                    .unwrap_or_default()
            ),
            Err(e) => format!(
                "{name:<w$}  {:<b$}  {:>6}  {:>12}  {:>9}  FAILED: {e}\n",
                r.backup, "-", "-", "-"
            ),
        });
    }
    if rows.is_empty() {
        out.push_str("(no database has backups)\n");
    }
    out
}
