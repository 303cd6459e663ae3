//! Running a confirmed restore: the lock of the target database, the pre-restore hooks, the
//! load into a scratch database and its checks, the swap (or, in place, the drop before the load),
//! the post-restore hooks whatever happened, and the report of what was done.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::database;
use super::dropped::Dropped;
use super::error::RestoreError;
use super::hooks;
use super::journal::{self, Journal};
use super::load::{LoadError, Loader, ScratchLoad};
use super::load_role::RunAs;
use super::preflight::{Preflight, refusal};
use super::request::{Request, Strategy, effective_admin};
use super::roles::create_role_sql;
use super::subscriptions;
use super::swap::{block_sql, rename_scratch, swap, terminate_sql};
use crate::catalog;
use crate::fault;
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
    /// The kept previous copy (swap), if any.
    pub previous: Option<String>,
    /// What `pg_database` shows of it at the end.
    pub previous_now: Option<PreviousNow>,
    pub tables_checked: usize,
    pub rows_checked: u64,
    pub pre_hooks: Vec<hooks::HookResult>,
    pub post_hooks: Vec<hooks::HookResult>,
    pub notes: Vec<String>,
    pub roles_created: Vec<String>,
}

/// The kept copy at the end of a restore, as `pg_database` shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum PreviousNow {
    /// Listed (it was not to be dropped).
    Kept,
    /// It was to be dropped (`--drop-previous`): what the drop left.
    Drop(Dropped),
    /// It was not to be dropped, and `pg_database` no longer lists it.
    Missing,
    /// `pg_database` could not be read.
    Unread(String),
}

/// The command that drops what a restore of `db` left.
pub fn cleanup_command(db: &str) -> String {
    hooks::show_argv(&["pgkeep".into(), "cleanup".into(), "-d".into(), db.into()])
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

/// Run the restore (after preflight and confirmation). The scratch database is created first
/// and carries the restore's journal (see [`super::journal`]) before any hook runs; it is dropped
/// again only after the post-restore hooks, so that a kill at any step leaves a journal that says
/// what to repair.
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
    let admin = effective_admin(req, &pre.maintenance_db);
    // Children (psql, pg_restore) connect to the scratch database: give them the password in a
    // private passfile that matches any database name.
    let passfile = match &admin.password {
        Some(pw) => Some(PrivatePassfile::new(pw).map_err(|source| RestoreError::Io {
            context: "cannot create a private passfile".into(),
            source,
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
        allow_unrestricted_psql: req.load.allow_unrestricted_psql,
        progress: req.progress.clone(),
    };
    // The restore's own session, open to the end: the journal names it, and a journal whose
    // session is gone is a dead restore's.
    let client = admin.connect().await?;
    client
        .batch_execute(&format!(
            "SET application_name = {}",
            crate::pg::ident::quote_literal(&journal::session_name(&pre.scratch))
        ))
        .await
        .map_err(|e| query_error("naming the restore's session", e))?;
    // The scratch database is created with the recorded owner: --create-roles comes first.
    create_missing_roles(&client, req, pre, &mut report).await?;
    let t = Instant::now();
    let journal = start_journal(req, pre, &client, &loader).await?;
    report.phases.push(("create scratch", t.elapsed()));
    let mut run = Run {
        req,
        pre,
        client: &client,
        loader: &loader,
        journal,
        swapped: false,
    };
    let result = run.hooks_and_core(&mut report).await;
    // Post-restore hooks run whatever happened, so the apps come back.
    if !req.post_hooks.is_empty() && (req.pre_hooks.is_empty() || run.journal.pre_hooks_started) {
        let t = Instant::now();
        let outcome = if result.is_ok() { "success" } else { "failure" };
        report.post_hooks = run_hooks(req, &req.post_hooks, "post_restore", outcome, false).await;
        report.phases.push(("post-restore hooks", t.elapsed()));
        run.journal.post_hooks_done = true;
        let holder = run.holder(&report);
        if let Err(e) = run.journal.write(&client, &holder).await {
            tracing::warn!(error = %e, "cannot note the post-restore hooks in the restore journal");
        }
        fault::point("restore.post-hooks-done");
    }
    let result = match result {
        Ok(()) => run.finish(&mut report).await,
        Err(e) => Err(run.undo(e).await),
    };
    match result {
        Ok(()) => Ok(report),
        Err(e) => Err(with_failed_hooks(e, &report)),
    }
}

/// With `--create-roles`: the roles the backup needs that the server lacks, and the recorded
/// memberships among them (a membership that cannot be made is a note).
async fn create_missing_roles(
    client: &tokio_postgres::Client,
    req: &Request,
    pre: &Preflight,
    report: &mut Report,
) -> Result<(), RestoreError> {
    if !req.create_roles || pre.roles_missing.is_empty() {
        return Ok(());
    }
    for r in &pre.roles_missing {
        exec(client, create_role_sql(r), format!("creating role \"{r}\"")).await?;
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
    Ok(())
}

/// Create the scratch database and write the journal onto it.
async fn start_journal(
    req: &Request,
    pre: &Preflight,
    client: &tokio_postgres::Client,
    loader: &Loader<'_>,
) -> Result<Journal, RestoreError> {
    let previous =
        (pre.target_exists && req.strategy == Strategy::Swap).then_some(pre.previous.as_str());
    let mut journal = Journal::begin(
        client,
        &req.target,
        &pre.scratch,
        previous,
        req.drop_previous,
    )
    .await?;
    loader
        .create(&pre.scratch, pre.info.as_ref())
        .await
        .map_err(|source| RestoreError::Load {
            source,
            state: nothing_changed(req),
        })?;
    // The scratch copy's own comment (the restored database's) is kept in the journal, which
    // puts it back when it is closed or hands it to the live name at the swap.
    match super::journal::comment_of(client, &pre.scratch).await {
        Ok(own) => journal.comment = own,
        Err(e) => {
            let _ = loader.drop(&pre.scratch).await;
            return Err(e);
        }
    }
    if let Err(e) = journal.write(client, &pre.scratch).await {
        let _ = loader.drop(&pre.scratch).await;
        return Err(e);
    }
    fault::point("restore.journaled");
    Ok(journal)
}

fn nothing_changed(req: &Request) -> String {
    format!("nothing was changed (\"{}\" is as it was)", req.target)
}

/// The failed restore's error, with the post-restore hooks that failed too.
fn with_failed_hooks(e: RestoreError, report: &Report) -> RestoreError {
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
        e
    } else {
        RestoreError::WithHooks {
            source: Box::new(e),
            hooks: failed.join("; "),
        }
    }
}

/// One confirmed restore under way.
struct Run<'a> {
    req: &'a Request,
    pre: &'a Preflight,
    client: &'a tokio_postgres::Client,
    loader: &'a Loader<'a>,
    journal: Journal,
    /// The restored copy is live (swapped or renamed into place).
    swapped: bool,
}

impl Run<'_> {
    /// The pre-restore hooks (skipped after a shutdown), then the load and the swap.
    async fn hooks_and_core(&mut self, report: &mut Report) -> Result<(), RestoreError> {
        let req = self.req;
        if let Some(reason) = req.shutdown.reason() {
            return Err(RestoreError::Interrupted {
                reason,
                state: String::new(),
            });
        }
        if !req.pre_hooks.is_empty() {
            self.journal.pre_hooks_started = true;
            self.journal.write(self.client, &self.pre.scratch).await?;
            let t = Instant::now();
            report.pre_hooks = run_hooks(req, &req.pre_hooks, "pre_restore", "pending", true).await;
            report.phases.push(("pre-restore hooks", t.elapsed()));
            fault::point("restore.pre-hooks-done");
        }
        if let Some(h) = report.pre_hooks.iter().find(|h| !h.ok) {
            return Err(RestoreError::Refused(format!(
                "pre-restore hook `{}` failed: {}",
                hooks::show_argv(&h.argv),
                h.message
            )));
        }
        self.core(report).await
    }

    /// The database that holds the journal now.
    fn holder(&self, report: &Report) -> String {
        match (&report.previous, self.swapped) {
            (Some(prev), true) => prev.clone(),
            (None, true) => self.req.target.clone(),
            (_, false) => self.pre.scratch.clone(),
        }
    }

    /// The success: close the journal (or drop the kept copy that holds it, when asked), and
    /// read what is left of the kept copy.
    async fn finish(&mut self, report: &mut Report) -> Result<(), RestoreError> {
        let holder = self.holder(report);
        if let Some(prev) = report.previous.clone() {
            let now = if self.req.drop_previous {
                let t = Instant::now();
                let dropped = self.loader.drop_checked(&prev).await;
                report.phases.push(("drop previous", t.elapsed()));
                PreviousNow::Drop(dropped)
            } else {
                match self.exists(&prev).await {
                    Ok(true) => PreviousNow::Kept,
                    Ok(false) => PreviousNow::Missing,
                    Err(e) => PreviousNow::Unread(e.to_string()),
                }
            };
            report.previous_now = Some(now);
        }
        let previous_gone = matches!(
            report.previous_now,
            Some(PreviousNow::Drop(Dropped::Gone) | PreviousNow::Missing)
        );
        if !previous_gone && let Err(e) = self.journal.close(self.client, &holder).await {
            report.notes.push(format!(
                "could not remove the restore journal from \"{holder}\" (the next pgkeep run will): {e}"
            ));
        }
        Ok(())
    }

    /// The failure: drop the scratch database unless it went live, and say what is left, as
    /// found on the server.
    async fn undo(&self, e: RestoreError) -> RestoreError {
        let mut state = Vec::new();
        let mut scratch_gone = true;
        if !self.swapped {
            let dropped = self.loader.drop_checked(&self.pre.scratch).await;
            scratch_gone = dropped.gone();
            state.push(match dropped {
                Dropped::Gone => "the scratch database was dropped".to_string(),
                left => left.phrase(
                    "the scratch database",
                    &self.pre.scratch,
                    &cleanup_command(&self.req.target),
                ),
            });
        }
        let (live, unchanged) = self.live_state().await;
        state.insert(0, live);
        let state = state.join("; ");
        match e {
            RestoreError::Interrupted { reason, .. } => RestoreError::Interrupted { reason, state },
            RestoreError::Load { source, .. } => RestoreError::Load { source, state },
            RestoreError::Swap(m) => RestoreError::Swap(format!("{m}; {state}")),
            // "Nothing was changed" holds only when the server shows it.
            RestoreError::Refused(why) if scratch_gone && unchanged => RestoreError::Refused(why),
            RestoreError::Refused(why) => RestoreError::Stopped { why, state },
            other => RestoreError::Failed {
                source: Box::new(other),
                state,
            },
        }
    }

    /// What the live name holds now, read from the server; and whether it is as it was.
    async fn live_state(&self) -> (String, bool) {
        let db = &self.req.target;
        let in_place = self.req.strategy == Strategy::InPlace && self.pre.target_exists;
        let text = match self.exists(db).await {
            Ok(true) if self.swapped => format!("\"{db}\" holds the restored data"),
            Ok(true) if in_place => format!("\"{db}\" still exists"),
            Ok(true) if self.pre.target_exists => {
                return (format!("the live database \"{db}\" was not changed"), true);
            }
            Ok(true) => format!("\"{db}\" exists"),
            Ok(false) if in_place => format!(
                "the in-place restore had already dropped \"{db}\": it does not exist until a restore succeeds"
            ),
            Ok(false) => return (format!("\"{db}\" was not created"), true),
            Err(e) => format!("the state of \"{db}\" could not be read ({e})"),
        };
        (text, false)
    }

    /// Whether `pg_database` lists `db`: on the restore's session, or on a new one when that
    /// session is gone (the server restarted under the restore).
    async fn exists(&self, db: &str) -> Result<bool, RestoreError> {
        if !self.client.is_closed() {
            return Ok(super::dropped::exists(self.client, db).await?);
        }
        let client = self.loader.admin.connect().await?;
        Ok(super::dropped::exists(&client, db).await?)
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

impl Run<'_> {
    async fn core(&mut self, report: &mut Report) -> Result<(), RestoreError> {
        let (req, pre, client) = (self.req, self.pre, self.client);
        report.notes.extend(
            pre.unapplied
                .iter()
                .map(|u| format!("not applied to the restored copy: {u}")),
        );
        let in_place = req.strategy == Strategy::InPlace && pre.target_exists;
        let down_since = if in_place {
            Some(drop_live(client, self.loader.admin, req, pre, report).await?)
        } else {
            None
        };
        self.load_scratch(report).await?;
        keep_restored_subscriptions_disabled(self.loader.admin, &pre.scratch, report).await?;
        fault::point("restore.loaded");
        self.put_in_place(report, down_since).await
    }

    /// Load the scratch database (created by [`start_journal`]) and check it.
    async fn load_scratch(&self, report: &mut Report) -> Result<(), RestoreError> {
        let (req, pre) = (self.req, self.pre);
        let mut input = req.backup.input();
        // The bytes loaded must be those the preflight read.
        input.sha256 = Some(pre.file_sha256.clone());
        input.toc = pre.toc.clone();
        let expected = req.backup.manifest.as_ref().map(|m| &m.tables);
        let run_as = match &pre.load_owner {
            Some(owner) => RunAs::Owner {
                owner: owner.clone(),
                // A role this restore created has no password: its configured login cannot work
                // there, so a temporary role loads as it.
                configured: req
                    .load
                    .configured
                    .clone()
                    .filter(|_| !(req.create_roles && pre.roles_missing.contains(owner))),
            },
            None => RunAs::Admin,
        };
        let scratch = ScratchLoad {
            database: &pre.scratch,
            input: &input,
            info: pre.info.as_ref(),
            expected: expected.or(pre.legacy_rows.as_ref()),
            checks: &req.checks,
            jobs: req.jobs,
            run_as: &run_as,
            names_encoding: req
                .backup
                .manifest
                .as_ref()
                .and_then(|m| m.dump_encoding.as_deref()),
        };
        let t = Instant::now();
        let checked = match self
            .loader
            .load_and_check_created(&scratch, t.elapsed())
            .await
        {
            Ok(c) => c,
            Err(LoadError::Interrupted(reason)) => {
                return Err(RestoreError::Interrupted {
                    reason,
                    state: String::new(),
                });
            }
            Err(source) => {
                return Err(RestoreError::Load {
                    source,
                    state: String::new(),
                });
            }
        };
        report.phases.push(("load", checked.load.duration));
        report.phases.push(("row counts", checked.count));
        if !req.checks.is_empty() {
            report.phases.push(("checks", checked.checks));
        }
        report.tables_checked = checked.tables_checked;
        report.rows_checked = checked.rows_checked;
        if let Some(reason) = req.shutdown.reason() {
            return Err(RestoreError::Interrupted {
                reason,
                state: String::new(),
            });
        }
        Ok(())
    }

    /// Swap the checked copy in for the live database (handing the journal to the kept copy in
    /// the same transaction), or rename it into place where there is none (or, in place, none
    /// any more).
    async fn put_in_place(
        &mut self,
        report: &mut Report,
        down_since: Option<Instant>,
    ) -> Result<(), RestoreError> {
        let (req, pre, client) = (self.req, self.pre, self.client);
        let db = req.target.as_str();
        let t = Instant::now();
        if pre.target_exists && down_since.is_none() {
            let hand_over = self.journal.hand_over_sql(client).await?;
            // The previous copy's subscriptions stop before the restored ones may use their slots.
            let disabled = subscriptions::disable(self.loader.admin, db).await?;
            let down = match swap(client, db, &pre.previous, &pre.scratch, &hand_over).await {
                Ok(down) => down,
                Err(e) => {
                    let _ = subscriptions::enable(self.loader.admin, db, &disabled).await;
                    return Err(RestoreError::Swap(e));
                }
            };
            for s in &disabled {
                report.notes.push(format!(
                    "subscription \"{s}\" of the previous copy \"{}\" was disabled, so that the restored one can use its slot",
                    pre.previous
                ));
            }
            report.downtime = Some(down);
            report.previous = Some(pre.previous.clone());
        } else {
            rename_scratch(client, &pre.scratch, db).await?;
            if let Some(since) = down_since {
                report.downtime = Some(since.elapsed());
            }
        }
        self.swapped = true;
        report.phases.push(("swap", t.elapsed()));
        Ok(())
    }
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
