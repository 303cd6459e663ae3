//! `pgkeep verify`: prove the chosen backups (checksum level, then optionally a test restore on
//! the configured server or a throwaway local cluster), record each result beside its backup,
//! print one line per backup, notify, and exit 9 if one is bad.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::context::Context;
use crate::cli::VerifyArgs;
use crate::cluster::TempCluster;
use crate::config::Settings;
use crate::model::{SslMode, Verdict};
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
    let store = storage::open(&settings.backup_dir, &settings.s3)?;
    let chosen = choose(args, settings, &*store, &database)?;
    if database != crate::catalog::GLOBALS {
        super::repair::repair_quietly(settings, &database, ctx).await;
    }
    let line = super::progress::Line::start(settings);
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
        progress: line.progress(),
        manifest_keys: settings.manifest_keys.clone(),
        identities: settings.age_identities.clone(),
    };
    // --local: throwaway clusters of a server major that can load each dump stand in for the
    // configured server, which is never contacted. Stopped and removed at the end (or on drop).
    let mut local = args.local.then(|| LocalServers {
        pg_bindir: settings.pg_bindir.clone(),
        path_env: ctx.path_env(),
        started: BTreeMap::new(),
        swept: false,
    });
    // The configured server's admin connection and its private passfile (never a password in
    // argv or the environment of children).
    let remote = (args.restore && !args.local).then(|| admin_params(None, settings));
    let passfile = private_passfile(remote.as_ref())?;
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
        if args.restore && rec.ok {
            let server = match local.as_mut() {
                Some(l) => l.for_dump(verify::dump_major_of(&*store, &t.file)),
                None => Ok(None),
            };
            match server {
                Err(why) => verify::restore_impossible(&mut rec, why),
                Ok(cluster) => {
                    let admin = match (cluster, &remote) {
                        (None, Some(r)) => r.clone(),
                        _ => admin_params(cluster, settings),
                    };
                    let rr = restore_request(RestoreInputs {
                        args,
                        settings,
                        database: &database,
                        admin: &admin,
                        passfile: passfile.as_ref(),
                        child_env: &req.child_env,
                        search: &req.search,
                        shutdown: &ctx.shutdown,
                        local: cluster,
                        progress: &req.progress,
                    });
                    verify::restore_level(&*store, &rr.request(), &mut rec)
                        .await
                        .with_context(|| format!("cannot test-restore {}", t.file))?;
                }
            }
        }
        if let Err(e) = verify::record(&*store, &rec) {
            // A read-only backup directory can still be verified; the result just is not kept.
            tracing::warn!(id = %rec.id, error = %e, "cannot record the result beside the backup");
            unrecorded.get_or_insert(e);
        }
        line.suspend(|| tell_one(&rec, args, settings, &notifier));
        records.push(rec);
    }
    if let Some(l) = local.as_mut() {
        l.stop_all();
    }
    line.clear();
    finish(args, settings, &database, &notifier, &records)?;
    if let Some(e) = unrecorded {
        return Err(e.into());
    }
    Ok(())
}

/// `--local`: the throwaway clusters of the test restores, one per server bin directory, each
/// started when a backup first needs it.
struct LocalServers {
    pg_bindir: Option<PathBuf>,
    path_env: Option<std::ffi::OsString>,
    started: BTreeMap<PathBuf, TempCluster>,
    /// Whether the clusters that killed runs left in TMPDIR were looked for yet.
    swept: bool,
}

impl LocalServers {
    /// The cluster for a dump that needs server major `need` or newer (0: unknown); `Err` says
    /// why there is none (nothing suitable installed, or it would not start).
    fn for_dump(&mut self, need: u32) -> std::result::Result<Option<&TempCluster>, String> {
        let (bindir, major) = crate::cluster::server_bindir_for(
            need,
            self.pg_bindir.as_deref(),
            self.path_env.clone(),
        )?;
        if !self.started.contains_key(&bindir) {
            let tmp = std::env::temp_dir();
            if !std::mem::replace(&mut self.swept, true) {
                sweep_clusters(&tmp, &bindir);
            }
            tracing::info!(bindir = %bindir.display(), major, dump_major = need, "starting a throwaway cluster for the test restore");
            let holder = format!(
                "verify --local by pid {} started {}",
                std::process::id(),
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap_or_else(|_| jiff::Timestamp::now())
            );
            let cluster =
                tokio::task::block_in_place(|| TempCluster::start_owned(&bindir, &tmp, &holder))
                    .map_err(|e| {
                        format!(
                            "cannot start a throwaway PostgreSQL {major} cluster from {}: {e:#}",
                            bindir.display()
                        )
                    })?;
            crate::fault::point("verify.cluster-started");
            self.started.insert(bindir.clone(), cluster);
        }
        Ok(self.started.get(&bindir))
    }

    fn stop_all(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.started) {
            if let Err(e) = tokio::task::block_in_place(|| c.stop()) {
                tracing::warn!(error = %format!("{e:#}"), "cannot stop the throwaway cluster cleanly");
            }
        }
    }
}

/// Stop and remove the throwaway clusters that killed `verify --local` runs left in TMPDIR.
fn sweep_clusters(tmp: &std::path::Path, bindir: &std::path::Path) {
    match tokio::task::block_in_place(|| crate::cluster::sweep_dead(tmp, bindir)) {
        Ok(removed) if !removed.is_empty() => tracing::warn!(
            clusters = %removed.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            "stopped and removed {} throwaway cluster(s) left by killed verify --local runs",
            removed.len()
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot look for throwaway clusters of killed runs")
        }
    }
}

/// What the restore level of one backup is given.
struct RestoreInputs<'a> {
    args: &'a VerifyArgs,
    settings: &'a Settings,
    database: &'a str,
    admin: &'a ConnParams,
    passfile: Option<&'a PrivatePassfile>,
    child_env: &'a [(String, String)],
    search: &'a Search,
    shutdown: &'a crate::shutdown::Shutdown,
    local: Option<&'a TempCluster>,
    progress: &'a crate::model::Progress,
}

/// The restore request of one backup, with the tools search of its server.
struct OwnedRestore<'a> {
    inputs: RestoreInputs<'a>,
    search: Search,
}

fn restore_request(inputs: RestoreInputs<'_>) -> OwnedRestore<'_> {
    // A throwaway cluster's own client tools when its build has them (a server-only build is
    // loaded with the configured tools, chosen for its major or newer).
    let search = match inputs.local {
        Some(c)
            if ["psql", "pg_restore"]
                .iter()
                .all(|t| c.bindir().join(t).is_file()) =>
        {
            Search {
                bindir: Some(c.bindir().to_path_buf()),
                path_env: inputs.search.path_env.clone(),
            }
        }
        _ => inputs.search.clone(),
    };
    OwnedRestore { inputs, search }
}

impl OwnedRestore<'_> {
    fn request(&self) -> verify::RestoreRequest<'_> {
        let i = &self.inputs;
        verify::RestoreRequest {
            progress: i.progress.clone(),
            admin: i.admin,
            passfile: i.passfile.map(|p| p.path()),
            child_env: i.child_env,
            search: &self.search,
            checks: &i.args.check_sql,
            shutdown: i.shutdown,
            now: jiff::Timestamp::now(),
            create_roles: i.local.is_some(),
            load: crate::restore::LoadPolicy {
                as_admin: i.args.load_as_admin,
                allow_unrestricted_psql: i.args.allow_unrestricted_psql,
                owner: None,
                // The configured user exists on the configured server only.
                configured: i
                    .local
                    .is_none()
                    .then(|| crate::pg::ConnParams::from_settings(i.settings, i.database)),
            },
            identities: i.settings.age_identities.as_ref(),
        }
    }
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
        let chosen: Vec<Target> = all
            .into_iter()
            .filter(|t| !t.settling)
            .filter(|t| {
                args.database.is_none()
                    || t.database.is_none()
                    || t.database.as_deref() == Some(database)
            })
            .collect();
        return match (chosen.is_empty(), &args.database) {
            (false, _) => Ok(chosen),
            (true, Some(_)) => Err(VerifyError::NoBackups(database.to_string()).into()),
            (true, None) => Err(VerifyError::NothingToVerify(store.describe()).into()),
        };
    }
    Ok(vec![
        all.into_iter()
            .find(|t| !t.settling && t.database.as_deref() == Some(database))
            .ok_or_else(|| VerifyError::NoBackups(database.to_string()))?,
    ])
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

/// Log, notify (a bad or inconclusive backup) and print the line of one verified backup.
fn tell_one(rec: &Record, args: &VerifyArgs, settings: &Settings, notifier: &Notifier) {
    let verdict = rec.verdict();
    if verdict == Verdict::Good {
        tracing::info!(id = %rec.id, duration = %format!("{:.1}s", rec.duration_seconds), result = %rec.message, "backup verified");
    } else {
        // The stdout line says it; the log repeats it only with -v, for an inconclusive one
        // too (an alert, never a reason to delete anything: notifications and `check` say it).
        if verdict == Verdict::Inconclusive {
            tracing::debug!(id = %rec.id, failure = rec.failure.as_deref().unwrap_or(""), reason = %rec.message, "verification inconclusive: the backup is kept like an unverified one");
        } else {
            tracing::debug!(id = %rec.id, failure = rec.failure.as_deref().unwrap_or(""), error = %rec.message, "verification failed");
        }
        if notifier.is_configured() {
            let title = match verdict {
                Verdict::Bad => format!("backup {} is bad: {}", rec.id, rec.message),
                _ => format!(
                    "backup {} could not be verified (inconclusive; it is kept): {}",
                    rec.id, rec.message
                ),
            };
            let event = Event::new(
                Operation::Verify,
                Outcome::Failure,
                rec.database.as_deref(),
                &settings.host,
                title,
            )
            .detail("file", rec.file.clone())
            .detail("verdict", verdict.as_str().to_string())
            .detail("failure", rec.failure.clone().unwrap_or_default());
            tokio::task::block_in_place(|| notifier.notify(&event));
        }
    }
    if !args.json {
        // The file, not the id: backups of two formats started in the same second share an id.
        println!(
            "{:<6}  {}  {}",
            match verdict {
                Verdict::Good => "ok",
                Verdict::Bad => "FAILED",
                Verdict::Inconclusive => "INCONCLUSIVE",
            },
            rec.file,
            match &rec.failure {
                Some(code) => format!("[{code}] {}", rec.message),
                None => rec.message.clone(),
            }
        );
    }
}

/// The JSON, the success notification, exit 9 when one is bad, else 10 when one is inconclusive
/// (there is always at least one record: `choose` refuses an empty choice).
fn finish(
    args: &VerifyArgs,
    settings: &Settings,
    database: &str,
    notifier: &Notifier,
    records: &[Record],
) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(records)?);
    }
    let failed = records
        .iter()
        .filter(|r| r.verdict() == Verdict::Bad)
        .count();
    let unproven = records
        .iter()
        .filter(|r| r.verdict() == Verdict::Inconclusive)
        .count();
    if failed == 0 && unproven == 0 && notifier.is_configured() {
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
    if unproven > 0 {
        return Err(verify::Inconclusive {
            inconclusive: unproven,
            total: records.len(),
        }
        .into());
    }
    Ok(())
}
