//! Running a confirmed restore: the lock of the target database, the pre-restore hooks, the
//! load into a scratch database and its checks, the swap (or, in place, the drop before the load),
//! the post-restore hooks whatever happened, and the report of what was done.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::database;
use super::error::RestoreError;
use super::hooks;
use super::load::{LoadError, Loader, ScratchLoad};
use super::preflight::{Preflight, refusal};
use super::request::{Request, Strategy, effective_admin};
use super::roles::create_role_sql;
use super::subscriptions;
use super::swap::{block_sql, rename_scratch, swap, terminate_sql};
use crate::catalog;
use crate::lock::Lock;
use crate::pg::ident::quote_ident;
use crate::pg::passfile::PrivatePassfile;
use crate::pg::{ConnParams, query_error};

/// What a finished restore did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub phases: Vec<(&'static str, Duration)>,
    /// From blocking connections to the commit of the rename (swap), or from the drop to the
    /// rename (in-place).
    pub downtime: Option<Duration>,
    /// The kept previous copy (swap), if any and not dropped.
    pub previous: Option<String>,
    pub previous_dropped: bool,
    pub tables_checked: usize,
    pub rows_checked: u64,
    pub pre_hooks: Vec<hooks::HookResult>,
    pub post_hooks: Vec<hooks::HookResult>,
    pub notes: Vec<String>,
    pub roles_created: Vec<String>,
}

/// The restore lock of one target database.
pub fn lock_path(tmp_dir: &Path, admin: &ConnParams, db: &str) -> PathBuf {
    tmp_dir.join(format!(
        ".pgkeep-restore-{}-{}-{}.lock",
        catalog::host_label(&admin.host),
        admin.port,
        catalog::sanitize(db)
    ))
}

/// Run the restore (after preflight and confirmation).
pub async fn execute(req: &Request, pre: &Preflight) -> Result<Report, RestoreError> {
    if let Some(why) = refusal(req, pre) {
        return Err(RestoreError::Refused(why));
    }
    let _lock = Lock::acquire(
        &lock_path(&req.tmp_dir, &req.admin, &req.target),
        &format!(
            "restore of database \"{}\" by pid {}",
            req.target,
            std::process::id()
        ),
    )?;
    let mut report = Report::default();
    report.phases.push(("check file", pre.file_check_duration));
    if req.backup.is_legacy() {
        report.notes.push(
            "legacy file without manifest: no row counts recorded at backup time could be checked (counts were compared with the file's own data only)".into(),
        );
    }
    if !req.pre_hooks.is_empty() {
        let t = Instant::now();
        report.pre_hooks = run_hooks(req, &req.pre_hooks, "pre_restore", "pending", true).await;
        report.phases.push(("pre-restore hooks", t.elapsed()));
    }
    let result = match report.pre_hooks.iter().find(|h| !h.ok) {
        Some(h) => Err(RestoreError::Refused(format!(
            "pre-restore hook `{}` failed: {}",
            hooks::show_argv(&h.argv),
            h.message
        ))),
        None => run_core(req, pre, &mut report).await,
    };
    // Post-restore hooks run whatever happened, so the apps come back.
    if !req.post_hooks.is_empty() {
        let t = Instant::now();
        let outcome = if result.is_ok() { "success" } else { "failure" };
        report.post_hooks = run_hooks(req, &req.post_hooks, "post_restore", outcome, false).await;
        report.phases.push(("post-restore hooks", t.elapsed()));
    }
    match result {
        Ok(()) => Ok(report),
        Err(e) => {
            let failed: Vec<String> = report
                .post_hooks
                .iter()
                .filter(|h| !h.ok)
                .map(|h| {
                    format!(
                        "post-restore hook `{}` failed too: {}",
                        hooks::show_argv(&h.argv),
                        h.message
                    )
                })
                .collect();
            if failed.is_empty() {
                Err(e)
            } else {
                Err(RestoreError::WithHooks {
                    source: Box::new(e),
                    hooks: failed.join("; "),
                })
            }
        }
    }
}

/// Run one phase's hooks (in a blocking task) with the environment that tells them which.
async fn run_hooks(
    req: &Request,
    commands: &[Vec<String>],
    phase: &str,
    outcome: &str,
    stop_at_failure: bool,
) -> Vec<hooks::HookResult> {
    let mut env = req.child_env.clone();
    env.push(("PGKEEP_DATABASE".into(), req.target.clone()));
    env.push(("PGKEEP_HOOK".into(), phase.into()));
    env.push(("PGKEEP_RESTORE_OUTCOME".into(), outcome.into()));
    let commands = commands.to_vec();
    let timeout = req.hook_timeout;
    tokio::task::spawn_blocking(move || hooks::run_all(&commands, timeout, &env, stop_at_failure))
        .await
        .unwrap_or_default()
}

async fn exec(
    client: &tokio_postgres::Client,
    sql: String,
    what: String,
) -> Result<(), RestoreError> {
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| RestoreError::Pg(query_error(&what, e)))
}

/// What a failure before the swap leaves: the live database unchanged (or, in place, gone).
fn state_before_swap(req: &Request, pre: &Preflight, in_place: bool) -> String {
    let db = &req.target;
    let what = "; the scratch database was dropped";
    if in_place {
        format!(
            "the in-place restore had already dropped \"{db}\": it does not exist until a restore succeeds{what}"
        )
    } else if pre.target_exists {
        format!("the live database \"{db}\" was not changed{what}")
    } else {
        format!("\"{db}\" was not created{what}")
    }
}

async fn run_core(req: &Request, pre: &Preflight, report: &mut Report) -> Result<(), RestoreError> {
    let admin = effective_admin(req, &pre.maintenance_db);
    // Children (psql, pg_restore) connect to the scratch database: give them the password in a
    // private passfile that matches any database name.
    let passfile =
        match &admin.password {
            Some(pw) => Some(PrivatePassfile::create(&req.tmp_dir, pw).map_err(|source| {
                RestoreError::Io {
                    context: format!(
                        "cannot create a private passfile in {}",
                        req.tmp_dir.display()
                    ),
                    source,
                }
            })?),
            _ => None,
        };
    let loader = Loader {
        admin: &admin,
        tools: &pre.tools,
        child_env: &req.child_env,
        passfile: passfile.as_ref().map(|p| p.path()),
        shutdown: &req.shutdown,
        server_version_num: pre.server_version_num,
    };
    let client = admin.connect().await?;
    if req.create_roles && !pre.roles_missing.is_empty() {
        for r in &pre.roles_missing {
            exec(
                &client,
                create_role_sql(r),
                format!("creating role \"{r}\""),
            )
            .await?;
            report.roles_created.push(r.clone());
        }
        for sql in super::plan::membership_sql(pre) {
            if let Err(e) = client.batch_execute(&sql).await {
                report.notes.push(format!(
                    "could not recreate a role membership (`{sql}`): {}",
                    crate::pg::error_text(&e)
                ));
            }
        }
    }
    report.notes.extend(
        pre.unapplied
            .iter()
            .map(|u| format!("not applied to the restored copy: {u}")),
    );
    let in_place = req.strategy == Strategy::InPlace && pre.target_exists;
    let down_since = if in_place {
        Some(drop_live(&client, &admin, req, pre, report).await?)
    } else {
        None
    };
    load_scratch(&loader, req, pre, report, in_place).await?;
    keep_restored_subscriptions_disabled(&admin, &pre.scratch, report).await?;
    put_in_place(&client, &loader, req, pre, report, down_since).await?;
    if req.drop_previous
        && let Some(prev) = report.previous.clone()
    {
        let t = Instant::now();
        match loader.drop(&prev).await {
            Ok(()) => report.previous_dropped = true,
            Err(e) => report
                .notes
                .push(format!("could not drop the previous copy \"{prev}\": {e}")),
        }
        report.phases.push(("drop previous", t.elapsed()));
    }
    Ok(())
}

/// In place: block connections to the live database, end its sessions, drop it. The downtime
/// starts here.
async fn drop_live(
    client: &tokio_postgres::Client,
    admin: &ConnParams,
    req: &Request,
    pre: &Preflight,
    report: &mut Report,
) -> Result<Instant, RestoreError> {
    let db = req.target.as_str();
    let t = Instant::now();
    for s in subscriptions::detach_and_drop(admin, db).await? {
        report.notes.push(format!(
            "subscription \"{s}\" of the dropped database was dropped without its slot: the slot stays on the publisher for the restored subscription"
        ));
    }
    exec(
        client,
        block_sql(db),
        format!("blocking connections to \"{db}\""),
    )
    .await?;
    exec(
        client,
        terminate_sql(db),
        format!("ending the sessions of \"{db}\""),
    )
    .await?;
    exec(
        client,
        database::drop_database_sql(db, pre.server_version_num),
        format!("dropping \"{db}\""),
    )
    .await?;
    report.phases.push(("drop (in-place)", t.elapsed()));
    Ok(t)
}

/// Load the scratch database and check it; a failure or a shutdown drops it again.
async fn load_scratch(
    loader: &Loader<'_>,
    req: &Request,
    pre: &Preflight,
    report: &mut Report,
    in_place: bool,
) -> Result<(), RestoreError> {
    let input = req.backup.input();
    let expected = req.backup.manifest.as_ref().map(|m| &m.tables);
    let scratch = ScratchLoad {
        database: &pre.scratch,
        input: &input,
        info: pre.info.as_ref(),
        expected: expected.or(pre.legacy_rows.as_ref()),
        checks: &req.checks,
        jobs: req.jobs,
        names_encoding: req
            .backup
            .manifest
            .as_ref()
            .and_then(|m| m.dump_encoding.as_deref()),
    };
    let checked = match loader.load_and_check(&scratch).await {
        Ok(c) => c,
        Err(LoadError::Interrupted(reason)) => {
            return Err(RestoreError::Interrupted {
                reason,
                state: state_before_swap(req, pre, in_place),
            });
        }
        Err(source) => {
            return Err(RestoreError::Load {
                source,
                state: state_before_swap(req, pre, in_place),
            });
        }
    };
    report.phases.push(("create scratch", checked.create));
    report.phases.push(("load", checked.load.duration));
    report.phases.push(("row counts", checked.count));
    if !req.checks.is_empty() {
        report.phases.push(("checks", checked.checks));
    }
    report.tables_checked = checked.tables_checked;
    report.rows_checked = checked.rows_checked;
    if let Some(r) = req.shutdown.reason() {
        let _ = loader.drop(&pre.scratch).await;
        return Err(RestoreError::Interrupted {
            reason: r,
            state: state_before_swap(req, pre, in_place),
        });
    }
    Ok(())
}

/// Swap the checked copy in for the live database, or rename it into place where there is none
/// (or, in place, none any more); a failure drops the scratch database.
async fn put_in_place(
    client: &tokio_postgres::Client,
    loader: &Loader<'_>,
    req: &Request,
    pre: &Preflight,
    report: &mut Report,
    down_since: Option<Instant>,
) -> Result<(), RestoreError> {
    let db = req.target.as_str();
    let t = Instant::now();
    if pre.target_exists && down_since.is_none() {
        // The previous copy's subscriptions stop before the restored ones may use their slots.
        let disabled = subscriptions::disable(loader.admin, db).await?;
        match swap(client, db, &pre.previous, &pre.scratch).await {
            Ok(down) => {
                report.downtime = Some(down);
                for s in &disabled {
                    report.notes.push(format!(
                        "subscription \"{s}\" of the previous copy \"{}\" was disabled, so that the restored one can use its slot",
                        pre.previous
                    ));
                }
            }
            Err(e) => {
                let _ = subscriptions::enable(loader.admin, db, &disabled).await;
                let _ = loader.drop(&pre.scratch).await;
                return Err(RestoreError::Swap(format!(
                    "{e}; \"{db}\" was left as it was (connections allowed again) and the scratch database was dropped"
                )));
            }
        }
        report.previous = Some(pre.previous.clone());
    } else {
        if let Err(e) = rename_scratch(client, &pre.scratch, db).await {
            let _ = loader.drop(&pre.scratch).await;
            return Err(RestoreError::Pg(e));
        }
        if let Some(since) = down_since {
            report.downtime = Some(since.elapsed());
        }
    }
    report.phases.push(("swap", t.elapsed()));
    Ok(())
}

/// The restored subscriptions stay disabled (pg_dump creates them so) until the user enables
/// them: the report names them.
async fn keep_restored_subscriptions_disabled(
    admin: &ConnParams,
    scratch: &str,
    report: &mut Report,
) -> Result<(), RestoreError> {
    subscriptions::disable(admin, scratch).await?;
    let restored = subscriptions::of_database(&admin.connect().await?, scratch).await?;
    for (s, _) in restored {
        report.notes.push(format!(
            "subscription \"{s}\" was restored disabled: it replicates nothing until you run ALTER SUBSCRIPTION {} ENABLE (check its slot on the publisher first)",
            quote_ident(&s)
        ));
    }
    Ok(())
}
