//! `pgkeep backup`: one backup now, with a progress line on a terminal, its summary on a
//! terminal (or the manifest with `--json`), its log line and notification.

use std::io::IsTerminal;

use anyhow::{Context as _, Result};

use super::context::Context;
use crate::backup;
use crate::catalog::Manifest;
use crate::cli::BackupArgs;
use crate::config::Settings;
use crate::model::{Compression, Format, Progress};
use crate::notify::{Event, Notifier, Operation, Outcome};
use crate::report;

/// Tables the summary names one by one; more are counted in one line.
const SUMMARY_TABLES: usize = 20;

/// The backup request of a command: the settings, the database and the process's environment.
pub fn request<'a>(settings: &'a Settings, database: String, ctx: &Context) -> backup::Request<'a> {
    backup::Request {
        settings,
        database,
        child_env: ctx.child_env(),
        path_env: ctx.path_env(),
        shutdown: ctx.shutdown.clone(),
        progress: Progress::none(),
        now: jiff::Timestamp::now,
    }
}

pub async fn run(args: &BackupArgs, settings: &Settings, ctx: &Context) -> Result<()> {
    match super::set::targets(settings, &args.database).await? {
        super::set::Targets::One(database) => {
            let m = one(settings, database, ctx, args.json).await?;
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
                    false => one(settings, db.to_string(), ctx, args.json).await,
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

/// One backup of `database`, with its log line and notification, and its summary on a terminal
/// unless `json`.
pub async fn one(
    settings: &Settings,
    database: String,
    ctx: &Context,
    json: bool,
) -> Result<Manifest> {
    let mut req = request(settings, database.clone(), ctx);
    let line = super::progress::Line::start(settings);
    req.progress = line.progress();
    super::repair::repair_quietly(settings, &database, ctx).await;
    tracing::debug!(database = %database, dir = %settings.backup_dir.display(), "backup started");
    let res = backup::run(req).await;
    drop(line);
    let notifier = Notifier::from_settings(settings);
    let done = match res.with_context(|| format!("backup of database \"{database}\" failed")) {
        Ok(done) => done,
        Err(e) => {
            notify_failure(&notifier, settings, Some(&database), &e);
            return Err(e);
        }
    };
    // On a terminal the summary says what the log line would; the log line is for logs.
    let summary = !json && std::io::stdout().is_terminal();
    if summary && std::io::stderr().is_terminal() {
        tracing::debug!(database = %database, file = %done.path.display(), "backup complete");
    } else {
        report::log_done(&done.manifest, &done.path);
    }
    if notifier.is_configured() {
        let event = report::backup_event(&done.manifest, &settings.host);
        tokio::task::block_in_place(|| notifier.notify(&event));
    }
    if summary {
        print!("{}", render_summary(&done));
    }
    copy_after(settings, &database, &notifier).await?;
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
            notify_failure(&notifier, settings, None, &e);
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
    copy_after(settings, crate::catalog::GLOBALS, &notifier).await?;
    Ok(done.manifest)
}

/// Copy the new backup of `database` or of the globals ([`crate::catalog::GLOBALS`]), and any
/// that earlier runs left uncopied, to `copy_to`, then cull the copies by their own retention. A failure is logged and notified, and the command ends with
/// exit 11: the backup itself stays committed.
pub async fn copy_after(settings: &Settings, database: &str, notifier: &Notifier) -> Result<()> {
    let Some(to) = &settings.copy_to else {
        return Ok(());
    };
    let to = to.display().to_string();
    let res = tokio::task::block_in_place(|| {
        crate::copy::run(settings, database, jiff::Timestamp::now())
    });
    let failure = match res {
        Ok(Some((synced, culled))) => {
            for f in &synced.copied {
                tracing::info!(database = %database, file = %f, to = %to, "backup copied");
            }
            for f in &culled {
                tracing::info!(database = %database, file = %f, to = %to, "culled copy");
            }
            if synced.failed.is_empty() {
                return Ok(());
            }
            crate::copy::CopyError::Failed {
                to: to.clone(),
                failed: synced.failed,
            }
        }
        Ok(None) => return Ok(()),
        Err(e) => e,
    };
    let what = match database == crate::catalog::GLOBALS {
        true => "the globals backups".to_string(),
        false => format!("database \"{database}\"'s backups"),
    };
    let e = anyhow::Error::new(failure).context(format!("copy of {what} to {to} failed"));
    let db = (database != crate::catalog::GLOBALS).then_some(database);
    notify_failure(notifier, settings, db, &e);
    Err(e)
}

/// What `pgkeep backup` prints on a terminal (and the demo under its `$ pgkeep backup`): the
/// file, sizes, duration, checksum, the rows of each table and pg_dump's warnings.
pub fn render_summary(done: &backup::Done) -> String {
    let m = &done.manifest;
    let human = report::human_bytes;
    let size = match (m.format, m.compression) {
        (Format::Plain, Compression::None) => format!("{} of dump text", human(m.raw_bytes)),
        (Format::Plain, c) => format!(
            "{} of dump text compressed to {} ({})",
            human(m.raw_bytes),
            human(m.stored_bytes),
            compression_name(c)
        ),
        (Format::Custom, c) => format!(
            "a custom archive of {} ({} inside)",
            human(m.stored_bytes),
            compression_name(c)
        ),
    };
    let mut out = format!(
        "backed up database \"{}\" to {}\n  {size} in {:.2}s, sha256 {}\n  {} rows in {} tables\n",
        m.database,
        done.path.display(),
        m.duration_seconds,
        &m.sha256[..16],
        m.total_rows(),
        m.tables.len()
    );
    for (table, rows) in m.tables.iter().take(SUMMARY_TABLES) {
        out.push_str(&format!("    {table:<28} {rows:>8} rows\n"));
    }
    if m.tables.len() > SUMMARY_TABLES {
        out.push_str(&format!(
            "    … and {} more tables (`--json` lists them all)\n",
            m.tables.len() - SUMMARY_TABLES
        ));
    }
    for w in &m.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::None => "none",
    }
}

/// Tell the configured notifications that a backup (of `database`, or of the globals) failed.
fn notify_failure(
    notifier: &Notifier,
    settings: &Settings,
    database: Option<&str>,
    e: &anyhow::Error,
) {
    if notifier.is_configured() {
        let event = Event::new(
            Operation::Backup,
            Outcome::Failure,
            database,
            &settings.host,
            crate::exit::one_line(e),
        );
        tokio::task::block_in_place(|| notifier.notify(&event));
    }
}
