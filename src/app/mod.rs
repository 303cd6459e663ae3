//! The commands behind the CLI: each turns parsed arguments and settings into calls of the lower
//! layers, and is the only layer (with `main`) that writes to stdout.

pub mod demo;
pub mod errors;
pub mod restore;

pub use errors::{UsageError, exit_code};

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::backup;
use crate::catalog::{self, Entry, Status};
use crate::cli::{
    BackupArgs, CheckArgs, Cli, Command, ConfigAction, ListArgs, PruneArgs, RunArgs, VerifyArgs,
};
use crate::config::{Inputs, KEYS, Settings};
use crate::notify::{Event, Notifier, Operation, Outcome};
use crate::report;
use crate::shutdown::Shutdown;
use crate::storage::LocalStore;
use crate::verify;

/// What the process was started with.
pub struct Context_ {
    pub env: BTreeMap<String, String>,
    pub shutdown: Shutdown,
}

/// Build the configuration inputs from the CLI and the environment snapshot.
pub fn inputs(cli: &Cli, env: &BTreeMap<String, String>) -> Inputs {
    let mut flags: BTreeMap<&'static str, String> = BTreeMap::new();
    let c = &cli.conn;
    if let Some(v) = &c.host {
        flags.insert("host", v.clone());
    }
    if let Some(v) = &c.port {
        flags.insert("port", v.clone());
    }
    if let Some(v) = &c.user {
        flags.insert("user", v.clone());
    }
    if let Some(v) = &c.backup_dir {
        flags.insert("backup_dir", v.display().to_string());
    }
    if let Some(f) = cli.log_format {
        flags.insert(
            "log_format",
            match f {
                crate::cli::LogFormatArg::Text => "text",
                crate::cli::LogFormatArg::Json => "json",
            }
            .into(),
        );
    }
    if let Command::Backup(b) = &cli.command {
        for (k, v) in [
            ("format", &b.format),
            ("compression", &b.compression),
            ("level", &b.level),
            ("threads", &b.threads),
        ] {
            if let Some(v) = v {
                flags.insert(k, v.clone());
            }
        }
    }
    let policy = match &cli.command {
        Command::Run(r) => {
            for (k, v) in [
                ("listen", &r.listen),
                ("schedule", &r.schedule),
                ("backup_period", &r.backup_period),
                ("shutdown_grace", &r.shutdown_grace),
            ] {
                if let Some(v) = v {
                    flags.insert(k, v.clone());
                }
            }
            Some(&r.policy)
        }
        Command::Prune(p) => Some(&p.policy),
        _ => None,
    };
    if let Some(p) = policy {
        for (k, v) in [
            ("keep_days", &p.keep_days),
            ("keep_last", &p.keep_last),
            ("keep_daily", &p.keep_daily),
            ("keep_weekly", &p.keep_weekly),
            ("keep_monthly", &p.keep_monthly),
            ("timezone", &p.timezone),
        ] {
            if let Some(v) = v {
                flags.insert(k, v.clone());
            }
        }
    }
    let mut env = env.clone();
    // libpq's default passfile.
    if !env.contains_key("PGPASSFILE")
        && !env.contains_key("PGKEEP_PASSFILE")
        && let Some(home) = env.get("HOME")
    {
        let p = PathBuf::from(home).join(".pgpass");
        if p.is_file() {
            env.insert("PGPASSFILE".into(), p.display().to_string());
        }
    }
    Inputs {
        config_file: cli.config.clone(),
        env,
        flags,
    }
}

pub async fn run(cli: Cli, settings: Settings, ctx: Context_) -> Result<()> {
    match &cli.command {
        Command::Backup(args) => cmd_backup(args, &settings, &ctx).await,
        Command::List(args) => cmd_list(args, &settings),
        Command::Verify(args) => cmd_verify(args, &settings, &ctx).await,
        Command::Check(args) => cmd_check(args, &settings),
        Command::Config { action } => {
            cmd_config(action, &settings);
            Ok(())
        }
        Command::Demo(args) => demo::run(args, &ctx).await,
        Command::Maintenance(args) => cmd_maintenance(args, &ctx).await,
        Command::Run(args) => cmd_run(args, settings, ctx).await,
        Command::Prune(args) => cmd_prune(args, &settings),
        Command::Restore(args) => restore::cmd_restore(args, &settings, &ctx).await,
        Command::Cleanup(args) => restore::cmd_cleanup(args, &settings).await,
    }
}

pub fn backup_request<'a>(
    settings: &'a Settings,
    database: String,
    ctx: &Context_,
) -> backup::Request<'a> {
    backup::Request {
        settings,
        database,
        child_env: backup::child_env(&ctx.env),
        tmp_dir: ctx
            .env
            .get("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp")),
        path_env: ctx.env.get("PATH").map(Into::into),
        shutdown: ctx.shutdown.clone(),
        progress: None,
        now: jiff::Timestamp::now,
    }
}

async fn cmd_backup(args: &BackupArgs, settings: &Settings, ctx: &Context_) -> Result<()> {
    let database = settings.database_or(&args.database);
    let mut req = backup_request(settings, database.clone(), ctx);
    let bar = progress_bar();
    if let Some(bar) = &bar {
        let b = bar.clone();
        req.progress = Some(Box::new(move |n| b.set_position(n)));
    }
    tracing::info!(database = %database, dir = %settings.backup_dir.display(), "backup started");
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done.manifest)?);
    }
    Ok(())
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

pub fn list_entries(settings: &Settings, database: Option<&str>) -> Result<Vec<Entry>> {
    let store = LocalStore::open(&settings.backup_dir)?;
    let mut entries = catalog::list(&store, Some(&settings.host))?;
    if let Some(db) = database {
        entries.retain(|e| e.database.as_deref() == Some(db) || e.database.is_none());
    }
    Ok(entries)
}

fn cmd_list(args: &ListArgs, settings: &Settings) -> Result<()> {
    let entries = list_entries(settings, args.database.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    print!("{}", render_list(&entries));
    Ok(())
}

async fn cmd_verify(args: &VerifyArgs, settings: &Settings, ctx: &Context_) -> Result<()> {
    let store = LocalStore::open(&settings.backup_dir)?;
    let database = settings.database_or(&args.database);
    let all = verify::targets(&store, Some(&settings.host), jiff::Timestamp::now())?;
    let chosen: Vec<verify::Target> = if let Some(id) = &args.id {
        let found = verify::find(&all, id, &settings.backup_dir);
        if found.is_empty() {
            return Err(verify::VerifyError::NotFound(id.clone()).into());
        }
        found
    } else if args.all {
        all.into_iter()
            .filter(|t| !t.settling)
            .filter(|t| {
                args.database.is_none()
                    || t.database.is_none()
                    || t.database.as_deref() == Some(database.as_str())
            })
            .collect()
    } else {
        vec![
            all.into_iter()
                .find(|t| !t.settling && t.database.as_deref() == Some(database.as_str()))
                .ok_or_else(|| verify::VerifyError::NoBackups(database.clone()))?,
        ]
    };
    let req = verify::Request {
        store: &store,
        level: verify::Level::Checksum,
        search: crate::pg::tools::Search {
            bindir: settings.pg_bindir.clone(),
            path_env: ctx.env.get("PATH").map(Into::into),
        },
        child_env: backup::child_env(&ctx.env),
        now: jiff::Timestamp::now,
        shutdown: ctx.shutdown.clone(),
    };
    // The restore level's admin connection and its private passfile (never a password in argv
    // or the environment of children).
    // --local: a throwaway cluster of the local server binaries stands in for the configured
    // server, which is never contacted. Stopped and removed at the end (or on drop, on error).
    let mut local = None;
    if args.local {
        let bindir = crate::cluster::server_bindir(settings.pg_bindir.as_deref())?;
        tracing::info!(bindir = %bindir.display(), "starting a throwaway cluster for the test restore");
        local = Some(
            tokio::task::block_in_place(|| crate::cluster::TempCluster::start(&bindir))
                .context("cannot start a throwaway cluster for verify --local")?,
        );
    }
    let local_search = local.as_ref().map(|c| crate::pg::tools::Search {
        bindir: Some(c.bindir().to_path_buf()),
        path_env: req.search.path_env.clone(),
    });
    let admin = args.restore.then(|| match &local {
        Some(c) => crate::pg::ConnParams {
            host: c.socket_dir().display().to_string(),
            port: c.port,
            user: "postgres".into(),
            password: None,
            passfile: None,
            dbname: "postgres".into(),
            sslmode: crate::model::SslMode::Disable,
            sslrootcert: None,
            connect_timeout: settings.connect_timeout,
        },
        None => {
            let mut a = restore::admin_params(settings, &Default::default());
            if a.password.is_none() {
                a.password = a.resolve_password();
            }
            a
        }
    });
    let passfile = match admin.as_ref().and_then(|a| a.password.clone()) {
        Some(pw) => {
            let dir = ctx
                .env
                .get("TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            Some(
                crate::pg::passfile::PrivatePassfile::create(&dir, &pw).with_context(|| {
                    format!("cannot create a private passfile in {}", dir.display())
                })?,
            )
        }
        None => None,
    };
    let notifier = Notifier::from_settings(settings);
    let mut records = Vec::new();
    let mut unrecorded = None;
    for t in &chosen {
        if let Some(r) = ctx.shutdown.reason() {
            return Err(verify::VerifyError::Interrupted(r).into());
        }
        tracing::info!(id = %t.id, file = %t.file, "verifying");
        let mut rec = tokio::task::block_in_place(|| verify::verify(&req, t))
            .with_context(|| format!("cannot verify {}", t.file))?;
        if let Some(admin) = &admin {
            let rr = verify::RestoreRequest {
                admin,
                passfile: passfile.as_ref().map(|p| p.path()),
                child_env: &req.child_env,
                search: local_search.as_ref().unwrap_or(&req.search),
                checks: &args.check_sql,
                shutdown: &ctx.shutdown,
                now: jiff::Timestamp::now(),
                create_roles: local.is_some(),
            };
            verify::restore_level(&store, &rr, &mut rec)
                .await
                .with_context(|| format!("cannot test-restore {}", t.file))?;
        }
        if let Err(e) = verify::record(&store, &rec) {
            // A read-only backup directory can still be verified; the result just is not kept.
            tracing::warn!(id = %rec.id, error = %e, "cannot record the result beside the backup");
            unrecorded.get_or_insert(e);
        }
        if rec.ok {
            tracing::info!(id = %rec.id, duration = %format!("{:.1}s", rec.duration_seconds), result = %rec.message, "backup verified");
        } else {
            tracing::error!(id = %rec.id, failure = rec.failure.as_deref().unwrap_or(""), error = %rec.message, "verification failed");
            if notifier.is_configured() {
                let event = Event::new(
                    Operation::Verify,
                    Outcome::Failure,
                    rec.database.as_deref(),
                    &settings.host,
                    format!("backup {} is bad: {}", rec.id, rec.message),
                )
                .detail("file", rec.file.clone())
                .detail("failure", rec.failure.clone().unwrap_or_default());
                tokio::task::block_in_place(|| notifier.notify(&event));
            }
        }
        if !args.json {
            // The file, not the id: backups of two formats started in the same second share an id.
            println!(
                "{:<6}  {}  {}",
                if rec.ok { "ok" } else { "FAILED" },
                rec.file,
                match &rec.failure {
                    Some(code) => format!("[{code}] {}", rec.message),
                    None => rec.message.clone(),
                }
            );
        }
        records.push(rec);
    }
    if let Some(mut c) = local.take()
        && let Err(e) = tokio::task::block_in_place(|| c.stop())
    {
        tracing::warn!(error = %format!("{e:#}"), "cannot stop the throwaway cluster cleanly");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else if records.is_empty() {
        println!("no backups");
    }
    let failed = records.iter().filter(|r| !r.ok).count();
    if failed == 0 && notifier.is_configured() {
        let summary = match records.as_slice() {
            [r] => format!("backup {} verified: {}", r.id, r.message),
            rs => format!("{} backups verified good", rs.len()),
        };
        let event = Event::new(
            Operation::Verify,
            Outcome::Success,
            Some(&database),
            &settings.host,
            summary,
        );
        tokio::task::block_in_place(|| notifier.notify(&event));
    }
    if failed > 0 {
        return Err(verify::BadBackups {
            failed,
            total: records.len(),
        }
        .into());
    }
    if let Some(e) = unrecorded {
        return Err(e.into());
    }
    Ok(())
}

fn cmd_check(args: &CheckArgs, settings: &Settings) -> Result<()> {
    use crate::storage::Store;
    let database = settings.database_or(&args.database);
    let store = LocalStore::open(&settings.backup_dir)?;
    let entries = catalog::list(&store, Some(&settings.host))?;
    let health = crate::check::evaluate(
        &entries,
        &database,
        store.free_bytes(),
        &settings.backup_dir.display().to_string(),
        jiff::Timestamp::now(),
        &settings.check,
    );
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

/// The human table of `pgkeep list`.
pub fn render_list(entries: &[Entry]) -> String {
    let mut rows: Vec<[String; 8]> = vec![[
        "TIME (UTC)".to_string(),
        "DATABASE".into(),
        "FORMAT".into(),
        "SIZE".into(),
        "DURATION".into(),
        "STATUS".into(),
        "VERIFIED".into(),
        "ID".into(),
    ]];
    for e in entries {
        let format = match (e.format, e.compression) {
            (crate::model::Format::Custom, _) => "custom".to_string(),
            (_, c) => format!(
                "plain+{}",
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ),
        };
        rows.push([
            e.time
                .to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string(),
            e.database.clone().unwrap_or_else(|| "?".into()),
            format.replace("plain+none", "plain"),
            report::human_bytes(e.stored_bytes),
            e.duration_seconds
                .map_or("-".into(), |d| format!("{d:.1}s")),
            match e.status {
                Status::Good => "good".into(),
                Status::Legacy if e.verification.is_some() => "legacy".into(),
                Status::Legacy => "legacy (unverified)".into(),
            },
            match &e.verification {
                None => "-".into(),
                Some(v) => format!(
                    "{} {}",
                    if v.ok {
                        "ok".to_string()
                    } else {
                        format!("FAILED ({})", v.failure.as_deref().unwrap_or("?"))
                    },
                    v.checked_at
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .strftime("%Y-%m-%d %H:%M")
                ),
            },
            e.id.clone(),
        ]);
    }
    if entries.is_empty() {
        return "no backups\n".into();
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn cmd_config(action: &ConfigAction, settings: &Settings) {
    match action {
        ConfigAction::Show => {
            let rows = settings.show();
            let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            let vw = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
            for (k, v, src) in rows {
                println!("{k:<w$}  {v:<vw$}  ({src})");
            }
        }
        ConfigAction::Keys => {
            for k in KEYS {
                println!("{:<16} {:<55} {}", k.name, k.env.join(", "), k.help);
            }
        }
    }
}

async fn cmd_maintenance(args: &crate::cli::MaintenanceArgs, ctx: &Context_) -> Result<()> {
    let mut page = crate::maintenance::Page {
        title: args.title.clone(),
        retry_after: args.retry_after,
        ..Default::default()
    };
    if let Some(m) = &args.message {
        page.message = m.clone();
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, retry_after = page.retry_after, "maintenance page listening");
    crate::maintenance::serve(listener, page, ctx.shutdown.clone())
        .await
        .context("maintenance page server failed")?;
    tracing::info!(
        reason = ctx.shutdown.reason().map_or("none", |r| r.name()),
        "maintenance page stopped"
    );
    Ok(())
}
async fn cmd_run(args: &RunArgs, settings: Settings, ctx: Context_) -> Result<()> {
    use crate::daemon::{self, Daemon, Options};
    settings.policy.validate()?;
    LocalStore::open(&settings.backup_dir)?;
    let database = settings.database_or(&args.database);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| crate::config::ConfigError::Invalid {
            key: "listen",
            from: settings.source("listen"),
            message: format!("cannot listen on {}: {e}", settings.listen),
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(
        database = %database,
        dir = %settings.backup_dir.display(),
        host = %settings.host,
        schedule = %settings.schedule.describe(),
        verify_schedule = %settings.verify_schedule.as_ref().map_or("off".into(), |s| s.describe()),
        timezone = %settings.timezone_name,
        policy = %settings.policy,
        api = if settings.api_token.is_some() { "read-write (token set)" } else { "read-only (no PGKEEP_API_TOKEN)" },
        shutdown_grace = %format!("{}s", settings.shutdown_grace.as_secs()),
        "pgkeep daemon starting"
    );
    tracing::info!(addr = %addr, "listening");
    let opts = Options {
        database,
        child_env: backup::child_env(&ctx.env),
        tmp_dir: ctx
            .env
            .get("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp")),
        path_env: ctx.env.get("PATH").map(Into::into),
        clock: jiff::Timestamp::now,
        settings: std::sync::Arc::new(settings),
    };
    let d = Daemon::new(opts, ctx.shutdown.clone());
    daemon::run(d, listener).await?;
    Ok(())
}

fn cmd_prune(args: &PruneArgs, settings: &Settings) -> Result<()> {
    use crate::prune;
    let database = settings.database_or(&args.database);
    let store = LocalStore::open(&settings.backup_dir)?;
    let plan = prune::plan(
        &store,
        &settings.host,
        &database,
        jiff::Timestamp::now(),
        &settings.policy,
        &settings.timezone,
        settings.partial_max_age,
        &crate::verify::verified_state,
    )?;
    let applied = if args.apply {
        Some(prune::apply(
            &store,
            &settings.host,
            &plan,
            &format!("pgkeep prune (pid {})", std::process::id()),
        )?)
    } else {
        None
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "applied": args.apply,
                "plan": plan,
                "result": applied,
            }))?
        );
        return Ok(());
    }
    print!("{}", render_prune(&plan, applied.as_ref(), settings));
    Ok(())
}

/// The human output of `pgkeep prune`.
pub fn render_prune(
    plan: &crate::prune::Plan,
    applied: Option<&crate::prune::Applied>,
    settings: &Settings,
) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "ACTION".into(),
        format!(
            "TIME ({})",
            settings
                .timezone
                .iana_name()
                .unwrap_or(&settings.timezone_name)
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
            match i.status {
                Status::Good => "good".into(),
                Status::Legacy => "legacy".into(),
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
        "database \"{}\" in {}, policy {}\n",
        plan.database,
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
