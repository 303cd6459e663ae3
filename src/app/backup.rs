//! `pgkeep backup`: one backup now, with a progress spinner on a terminal, its log line and
//! notification, and the manifest on stdout with `--json`.

use std::io::IsTerminal;

use anyhow::{Context as _, Result};

use super::context::Context;
use crate::backup;
use crate::catalog::Manifest;
use crate::cli::BackupArgs;
use crate::config::Settings;
use crate::notify::{Event, Notifier, Operation, Outcome};
use crate::report;

/// The backup request of a command: the settings, the database and the process's environment.
pub fn request<'a>(settings: &'a Settings, database: String, ctx: &Context) -> backup::Request<'a> {
    backup::Request {
        settings,
        database,
        child_env: ctx.child_env(),
        path_env: ctx.path_env(),
        shutdown: ctx.shutdown.clone(),
        progress: None,
        now: jiff::Timestamp::now,
    }
}

pub async fn run(args: &BackupArgs, settings: &Settings, ctx: &Context) -> Result<()> {
    match super::set::targets(settings, &args.database).await? {
        super::set::Targets::One(database) => {
            let m = one(settings, database, ctx).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            }
            Ok(())
        }
        super::set::Targets::Set(sel) => {
            // Each database in turn; the manifests of those that succeeded are printed even
            // when another failed.
            // The globals are recorded with every run over the set.
            let (done, res) = super::set::each(&sel, &settings.host, true, async |db| {
                match db == crate::catalog::GLOBALS {
                    true => globals(settings, ctx).await,
                    false => one(settings, db.to_string(), ctx).await,
                }
            })
            .await;
            if args.json {
                let done: Vec<&Manifest> = done.iter().map(|(_, m)| m).collect();
                println!("{}", serde_json::to_string_pretty(&done)?);
            }
            res
        }
    }
}

/// One backup of `database`, with its log line and notification.
pub async fn one(settings: &Settings, database: String, ctx: &Context) -> Result<Manifest> {
    let mut req = request(settings, database.clone(), ctx);
    let bar = progress_bar();
    if let Some(bar) = &bar {
        let b = bar.clone();
        req.progress = Some(Box::new(move |n| b.set_position(n)));
    }
    super::repair::repair_quietly(settings, &database, ctx).await;
    tracing::debug!(database = %database, dir = %settings.backup_dir.display(), "backup started");
    let res = backup::run(req).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let notifier = Notifier::from_settings(settings);
    let done = match res.with_context(|| format!("backup of database \"{database}\" failed")) {
        Ok(done) => done,
        Err(e) => {
            if notifier.is_configured() {
                let event = Event::new(
                    Operation::Backup,
                    Outcome::Failure,
                    Some(&database),
                    &settings.host,
                    crate::exit::one_line(&e),
                );
                tokio::task::block_in_place(|| notifier.notify(&event));
            }
            return Err(e);
        }
    };
    report::log_done(&done.manifest, &done.path);
    if notifier.is_configured() {
        let event = report::backup_event(&done.manifest, &settings.host);
        tokio::task::block_in_place(|| notifier.notify(&event));
    }
    Ok(done.manifest)
}

/// One backup of the server's globals, with its log line and notification.
pub async fn globals(settings: &Settings, ctx: &Context) -> Result<Manifest> {
    let req = crate::globals::Request {
        settings,
        child_env: ctx.child_env(),
        path_env: ctx.path_env(),
        shutdown: ctx.shutdown.clone(),
        now: jiff::Timestamp::now,
    };
    let notifier = Notifier::from_settings(settings);
    let done = match crate::globals::run(req)
        .await
        .context("backup of the globals failed")
    {
        Ok(done) => done,
        Err(e) => {
            if notifier.is_configured() {
                let event = Event::new(
                    Operation::Backup,
                    Outcome::Failure,
                    None,
                    &settings.host,
                    crate::exit::one_line(&e),
                );
                tokio::task::block_in_place(|| notifier.notify(&event));
            }
            return Err(e);
        }
    };
    if let Some(note) = done.manifest.globals.as_ref().and_then(|g| g.note.as_ref()) {
        tracing::warn!(id = %done.manifest.id, "{note}");
    }
    report::log_done(&done.manifest, &done.path);
    if notifier.is_configured() {
        let event = report::backup_event(&done.manifest, &settings.host);
        tokio::task::block_in_place(|| notifier.notify(&event));
    }
    Ok(done.manifest)
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} dumping {bytes} ({bytes_per_sec}) {elapsed}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}
