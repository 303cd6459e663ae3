//! `pgkeep verify`: prove the chosen backups (checksum level, then optionally a test restore on
//! the configured server or a throwaway local cluster), record each result beside its backup,
//! print one line per backup, notify, and exit 9 if one is bad.

use anyhow::{Context as _, Result};

use super::context::Context;
use crate::cli::VerifyArgs;
use crate::cluster::TempCluster;
use crate::config::Settings;
use crate::model::SslMode;
use crate::notify::{Event, Notifier, Operation, Outcome};
use crate::pg::ConnParams;
use crate::pg::passfile::PrivatePassfile;
use crate::pg::tools::Search;
use crate::storage::{self, Store};
use crate::verify::{self, Record, Target, VerifyError};

pub async fn run(args: &VerifyArgs, settings: &Settings, ctx: &Context) -> Result<()> {
    // A named backup or --all needs no set; otherwise the newest backup of each database.
    let flag = match (&args.id, args.all) {
        (None, false) => args.database.clone(),
        _ => Some(settings.database_or(&args.database)),
    };
    match super::set::targets(settings, &flag).await? {
        super::set::Targets::One(database) => run_one(args, settings, ctx, database).await,
        super::set::Targets::Set(sel) => {
            super::set::each(&sel, &settings.host, true, async |db| {
                run_one(args, settings, ctx, db.to_string()).await
            })
            .await
            .1
        }
    }
}

/// Verify the chosen backups of one database.
async fn run_one(
    args: &VerifyArgs,
    settings: &Settings,
    ctx: &Context,
    database: String,
) -> Result<()> {
    let store = storage::open(&settings.backup_dir)?;
    let chosen = choose(args, settings, &*store, &database)?;
    if database != crate::catalog::GLOBALS {
        super::repair::repair_quietly(settings, &database, ctx).await;
    }
    let req = verify::Request {
        store: &*store,
        level: verify::Level::Checksum,
        search: Search {
            bindir: settings.pg_bindir.clone(),
            path_env: ctx.path_env(),
        },
        child_env: ctx.child_env(),
        now: jiff::Timestamp::now,
        shutdown: ctx.shutdown.clone(),
        manifest_keys: settings.manifest_keys.clone(),
    };
    // The restore level's admin connection and its private passfile (never a password in argv
    // or the environment of children).
    // --local: a throwaway cluster of the local server binaries stands in for the configured
    // server, which is never contacted. Stopped and removed at the end (or on drop, on error).
    let mut local = start_local(args, settings)?;
    let local_search = local.as_ref().map(|c| Search {
        bindir: Some(c.bindir().to_path_buf()),
        path_env: req.search.path_env.clone(),
    });
    let admin = args.restore.then(|| admin_params(local.as_ref(), settings));
    let passfile = private_passfile(admin.as_ref())?;
    let notifier = Notifier::from_settings(settings);
    let mut records = Vec::new();
    let mut unrecorded = None;
    for t in &chosen {
        if let Some(r) = ctx.shutdown.reason() {
            return Err(VerifyError::Interrupted(r).into());
        }
        tracing::debug!(id = %t.id, file = %t.file, "verifying");
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
                load: crate::restore::LoadPolicy {
                    as_admin: args.load_as_admin,
                    allow_unrestricted_psql: args.allow_unrestricted_psql,
                    owner: None,
                    // The configured user exists on the configured server only.
                    configured: local
                        .is_none()
                        .then(|| crate::pg::ConnParams::from_settings(settings, &database)),
                },
            };
            verify::restore_level(&*store, &rr, &mut rec)
                .await
                .with_context(|| format!("cannot test-restore {}", t.file))?;
        }
        if let Err(e) = verify::record(&*store, &rec) {
            // A read-only backup directory can still be verified; the result just is not kept.
            tracing::warn!(id = %rec.id, error = %e, "cannot record the result beside the backup");
            unrecorded.get_or_insert(e);
        }
        tell_one(&rec, args, settings, &notifier);
        records.push(rec);
    }
    if let Some(mut c) = local.take()
        && let Err(e) = tokio::task::block_in_place(|| c.stop())
    {
        tracing::warn!(error = %format!("{e:#}"), "cannot stop the throwaway cluster cleanly");
    }
    finish(args, settings, &database, &notifier, &records)?;
    if let Some(e) = unrecorded {
        return Err(e.into());
    }
    Ok(())
}

/// The backups to verify: the one named, every one (`--all`), or the newest of the database.
fn choose(
    args: &VerifyArgs,
    settings: &Settings,
    store: &dyn Store,
    database: &str,
) -> Result<Vec<Target>> {
    let all = verify::targets(store, Some(&settings.host), jiff::Timestamp::now())?;
    if let Some(id) = &args.id {
        let found = verify::find(&all, id, &settings.backup_dir);
        if found.is_empty() {
            return Err(VerifyError::NotFound(id.clone()).into());
        }
        return Ok(found);
    }
    if args.all {
        return Ok(all
            .into_iter()
            .filter(|t| !t.settling)
            .filter(|t| {
                args.database.is_none()
                    || t.database.is_none()
                    || t.database.as_deref() == Some(database)
            })
            .collect());
    }
    Ok(vec![
        all.into_iter()
            .find(|t| !t.settling && t.database.as_deref() == Some(database))
            .ok_or_else(|| VerifyError::NoBackups(database.to_string()))?,
    ])
}

/// `--local`: start the throwaway cluster of the local server binaries.
fn start_local(args: &VerifyArgs, settings: &Settings) -> Result<Option<TempCluster>> {
    if !args.local {
        return Ok(None);
    }
    let bindir = crate::cluster::server_bindir(settings.pg_bindir.as_deref())?;
    tracing::info!(bindir = %bindir.display(), "starting a throwaway cluster for the test restore");
    let cluster = tokio::task::block_in_place(|| TempCluster::start(&bindir))
        .context("cannot start a throwaway cluster for verify --local")?;
    Ok(Some(cluster))
}

/// The admin connection of the test restore: the throwaway cluster's superuser, or the
/// configured admin role (its password resolved once).
fn admin_params(local: Option<&TempCluster>, settings: &Settings) -> ConnParams {
    match local {
        Some(c) => ConnParams {
            host: c.socket_dir().display().to_string(),
            port: c.port,
            user: "postgres".into(),
            password: None,
            passfile: None,
            dbname: "postgres".into(),
            sslmode: SslMode::Disable,
            sslrootcert: None,
            connect_timeout: settings.connect_timeout,
        },
        None => {
            let mut a = super::admin::admin_params(settings, &Default::default());
            if a.password.is_none() {
                a.password = a.resolve_password();
            }
            a
        }
    }
}

/// The private passfile that gives the admin password to the test restore's children.
fn private_passfile(admin: Option<&ConnParams>) -> Result<Option<PrivatePassfile>> {
    let Some(pw) = admin.and_then(|a| a.password.clone()) else {
        return Ok(None);
    };
    let file = PrivatePassfile::new(&pw).context("cannot create a private passfile")?;
    Ok(Some(file))
}

/// Log, notify (a bad backup) and print the line of one verified backup.
fn tell_one(rec: &Record, args: &VerifyArgs, settings: &Settings, notifier: &Notifier) {
    if rec.ok {
        tracing::info!(id = %rec.id, duration = %format!("{:.1}s", rec.duration_seconds), result = %rec.message, "backup verified");
    } else {
        // The FAILED line on stdout says it; the log repeats it only with -v.
        tracing::debug!(id = %rec.id, failure = rec.failure.as_deref().unwrap_or(""), error = %rec.message, "verification failed");
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
}

/// The JSON or the empty-list line, the success notification, and exit 9 when one is bad.
fn finish(
    args: &VerifyArgs,
    settings: &Settings,
    database: &str,
    notifier: &Notifier,
    records: &[Record],
) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(records)?);
    } else if records.is_empty() {
        println!("no backups");
    }
    let failed = records.iter().filter(|r| !r.ok).count();
    if failed == 0 && notifier.is_configured() {
        let summary = match records {
            [r] => format!("backup {} verified: {}", r.id, r.message),
            rs => format!("{} backups verified good", rs.len()),
        };
        let event = Event::new(
            Operation::Verify,
            Outcome::Success,
            Some(database),
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
    Ok(())
}
