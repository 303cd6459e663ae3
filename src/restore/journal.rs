//! The restore journal: what a restore that is under way has done, kept on the server so that the
//! next pgkeep command can repair a killed restore from wherever it runs (the daemon in its pod
//! after a restore from a laptop with `--target-host`).
//!
//! The journal is the `COMMENT ON DATABASE` of a database that pgkeep named: the scratch copy
//! (created empty before the pre-restore hooks run) until the swap, then the kept copy, which
//! receives it inside the swap's transaction; without a kept copy (a new database, in place) the
//! journal follows the scratch copy through its rename to the target. Comments live in the shared
//! catalog (`pg_shdescription`), so any role connected to any database of the server reads them.
//! The journal records the names, the live database's original `datallowconn`, whether the
//! pre-restore hooks started, whether the kept copy is to be dropped, the holder's own comment
//! (put back when the journal is closed) and the restore's admin session (pid and start time): a
//! journal whose session is gone belongs to a dead restore.
//!
//! Which step the dead restore reached is read from the holder's current name: still the scratch
//! name, the swap did not commit (the live database is the old one); any other name, it did.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::database::drop_database_sql;
use super::error::RestoreError;
use super::hooks;
use super::swap::unblock_sql;
use crate::pg::ident::{quote_ident, quote_literal};
use crate::pg::{ConnParams, query_error};

/// The `application_name` of a restore's admin session, set before its scratch database is
/// created: a scratch database without a journal (the restore was killed between the two
/// statements) is a dead restore's when no session of this name is left. The name is drawn from
/// the whole scratch name (a hash of it: an `application_name` keeps 63 bytes), so that a restore
/// of another database started in the same second does not make a dead restore's scratch copy
/// look alive.
pub fn session_name(scratch: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(scratch.as_bytes());
    format!("pgkeep restore {}", &hex::encode(digest)[..16])
}

/// The prefix of a journal comment.
const PREFIX: &str = "pgkeep restore journal v1: ";

/// What a restore under way has done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Journal {
    pub target: String,
    pub scratch: String,
    /// The kept copy's name (swap of an existing database).
    pub previous: Option<String>,
    /// `datallowconn` of the live database before the restore (`None`: there was none).
    pub live_allowed: Option<bool>,
    pub pre_hooks_started: bool,
    #[serde(default)]
    pub post_hooks_done: bool,
    pub drop_previous: bool,
    /// The holder's own comment, put back when the journal is closed.
    pub comment: Option<String>,
    /// The restore's admin session: backend pid and start time (UTC text).
    pub pid: i32,
    pub backend_start: String,
    /// The host pgkeep ran on and its pid (for the messages).
    pub by: String,
}

/// SQL of the session identity the journal records: `(pg_backend_pid(), start)`.
const SESSION_SQL: &str = "SELECT pid, to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') \
     FROM pg_stat_activity WHERE pid = pg_backend_pid()";

impl Journal {
    /// A journal for a restore whose admin session is `client`'s.
    pub async fn begin(
        client: &tokio_postgres::Client,
        target: &str,
        scratch: &str,
        previous: Option<&str>,
        drop_previous: bool,
    ) -> Result<Journal, RestoreError> {
        let me = client
            .query_one(SESSION_SQL, &[])
            .await
            .map_err(|e| query_error("reading the restore's session", e))?;
        let live_allowed = client
            .query_opt(
                "SELECT datallowconn FROM pg_database WHERE datname = $1",
                &[&target],
            )
            .await
            .map_err(|e| query_error("reading the live database", e))?
            .map(|r| r.get::<_, bool>(0));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        Ok(Journal {
            target: target.to_string(),
            scratch: scratch.to_string(),
            previous: previous.map(str::to_string),
            live_allowed,
            pre_hooks_started: false,
            post_hooks_done: false,
            drop_previous,
            comment: None,
            pid: me.get(0),
            backend_start: me.get(1),
            by: format!("pid {} on {host}", std::process::id()),
        })
    }

    /// The comment text.
    pub fn text(&self) -> String {
        format!(
            "{PREFIX}{}",
            serde_json::to_string(self).expect("a journal serializes")
        )
    }

    /// Read a comment: `None` when it is no journal.
    pub fn parse(comment: &str) -> Option<Journal> {
        serde_json::from_str(comment.strip_prefix(PREFIX)?).ok()
    }

    /// `COMMENT ON DATABASE holder IS <journal>`.
    pub fn write_sql(&self, holder: &str) -> String {
        format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(holder),
            quote_literal(&self.text())
        )
    }

    /// Write the journal onto `holder`.
    pub async fn write(
        &self,
        client: &tokio_postgres::Client,
        holder: &str,
    ) -> Result<(), RestoreError> {
        client
            .batch_execute(&self.write_sql(holder))
            .await
            .map_err(|e| RestoreError::Pg(query_error("writing the restore journal", e)))
    }

    /// The statements that hand the journal to the kept copy inside the swap's transaction (run
    /// after both renames): the kept copy holds the journal (its own comment saved in it), the new
    /// live database gets the comment the restored copy had (none, unless it was given one).
    pub async fn hand_over_sql(
        &mut self,
        client: &tokio_postgres::Client,
    ) -> Result<Vec<String>, RestoreError> {
        let Some(previous) = self.previous.clone() else {
            return Ok(Vec::new());
        };
        // The scratch copy's own comment (the restored database's, saved when the journal was
        // first written) goes to the new live database; the live one's own to the kept copy.
        let restored = self.comment.take();
        self.comment = comment_of(client, &self.target).await?;
        Ok(vec![
            comment_sql(&self.target, restored.as_deref()),
            self.write_sql(&previous),
        ])
    }

    /// Close the journal on its holder: put the holder's own comment back.
    pub async fn close(
        &self,
        client: &tokio_postgres::Client,
        holder: &str,
    ) -> Result<(), RestoreError> {
        client
            .batch_execute(&comment_sql(holder, self.comment.as_deref()))
            .await
            .map_err(|e| RestoreError::Pg(query_error("closing the restore journal", e)))
    }
}

/// The comment of database `db` (`None`: none, or it is a journal).
pub async fn comment_of(
    client: &tokio_postgres::Client,
    db: &str,
) -> Result<Option<String>, RestoreError> {
    let comment = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .await
        .map_err(|e| RestoreError::Pg(query_error("reading a database comment", e)))?
        .and_then(|r| r.get::<_, Option<String>>(0));
    Ok(comment.filter(|c| Journal::parse(c).is_none()))
}

fn comment_sql(db: &str, comment: Option<&str>) -> String {
    format!(
        "COMMENT ON DATABASE {} IS {}",
        quote_ident(db),
        comment.map_or("NULL".to_string(), quote_literal)
    )
}

/// What a repair may run: the post-restore hooks of the configuration, and their environment.
pub struct Repair<'a> {
    pub admin: &'a ConnParams,
    pub post_hooks: &'a [Vec<String>],
    pub hook_timeout: Duration,
    pub child_env: &'a [(String, String)],
}

/// A journal found on the server: its holder's current name and whether its restore is alive.
#[derive(Debug, Clone)]
pub struct Found {
    pub holder: String,
    pub journal: Journal,
    pub alive: bool,
}

/// The journals on the server (of `db` only, if given).
pub async fn find(
    client: &tokio_postgres::Client,
    db: Option<&str>,
) -> Result<Vec<Found>, RestoreError> {
    let rows = client
        .query(
            "SELECT d.datname::text, c.description FROM pg_shdescription c \
             JOIN pg_database d ON d.oid = c.objoid \
             WHERE c.classoid = 'pg_database'::regclass AND c.description LIKE 'pgkeep restore journal %' \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_error("reading restore journals", e))?;
    let mut out = Vec::new();
    for r in rows {
        let Some(journal) = Journal::parse(r.get(1)) else {
            continue;
        };
        if db.is_some_and(|d| d != journal.target) {
            continue;
        }
        let alive = client
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1 \
                 AND to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') = $2",
                &[&journal.pid, &journal.backend_start],
            )
            .await
            .map_err(|e| query_error("reading the sessions", e))?
            .is_some();
        out.push(Found {
            holder: r.get(0),
            journal,
            alive,
        });
    }
    Ok(out)
}

/// Repair what dead restores of `db` (every database, if `None`) left: connections allowed
/// where the restore closed them, the scratch copy dropped (the swap did not commit) or the kept
/// copy dropped when it was asked to be, the post-restore hooks run when the pre-restore hooks
/// had started, the journal closed. Returns one line per repaired restore.
pub async fn repair(r: &Repair<'_>, db: Option<&str>) -> Result<Vec<String>, RestoreError> {
    let client = r.admin.connect().await?;
    let version = crate::pg::catalog::server_info(&client).await?.version_num;
    let mut lines = Vec::new();
    for f in find(&client, db).await? {
        if f.alive {
            continue;
        }
        lines.push(repair_one(r, &client, version, &f).await?);
    }
    for scratch in unjournaled_scratch(&client, db).await? {
        client
            .batch_execute(&drop_database_sql(&scratch, version))
            .await
            .map_err(|e| RestoreError::Pg(query_error(&format!("dropping \"{scratch}\""), e)))?;
        lines.push(format!(
            "repaired an interrupted restore: dropped the scratch database \"{scratch}\" of a restore killed before it ran any hook or changed anything else"
        ));
    }
    Ok(lines)
}

/// Scratch databases (of `db`) with no journal, no session, and no restore session of their
/// name left.
async fn unjournaled_scratch(
    client: &tokio_postgres::Client,
    db: Option<&str>,
) -> Result<Vec<String>, RestoreError> {
    let rows = client
        .query(
            "SELECT d.datname::text FROM pg_database d \
             WHERE d.datname ~ '_restoring_[0-9]{8}_[0-9]{6}(_[0-9]+)?$' \
             AND coalesce(shobj_description(d.oid, 'pg_database'), '') NOT LIKE 'pgkeep restore journal %' \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname) ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_error("listing scratch databases", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        if let Some(db) = db {
            let pattern = super::names::scratch_name(db, jiff::Timestamp::UNIX_EPOCH);
            let stem = &pattern[..pattern.len() - 15];
            // The first candidate name, or a later one (`_<n>` after the stamp).
            let rest = name.strip_prefix(stem).unwrap_or("");
            if !(rest.len() == 15 || rest.len() > 16 && rest.as_bytes()[15] == b'_') {
                continue;
            }
        }
        let busy = client
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1",
                &[&session_name(&name)],
            )
            .await
            .map_err(|e| query_error("reading the sessions", e))?
            .is_some();
        if !busy {
            out.push(name);
        }
    }
    Ok(out)
}

async fn repair_one(
    r: &Repair<'_>,
    client: &tokio_postgres::Client,
    version: u32,
    f: &Found,
) -> Result<String, RestoreError> {
    let j = &f.journal;
    let exec = |sql: String, what: String| async move {
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| RestoreError::Pg(query_error(&what, e)))
    };
    let swapped = f.holder != j.scratch;
    let mut did = Vec::new();
    if !swapped {
        let live: Option<bool> = client
            .query_opt(
                "SELECT datallowconn FROM pg_database WHERE datname = $1",
                &[&j.target],
            )
            .await
            .map_err(|e| query_error("reading the live database", e))?
            .map(|r| r.get(0));
        if live == Some(false) && j.live_allowed == Some(true) {
            exec(
                unblock_sql(&j.target),
                format!("allowing connections to \"{}\"", j.target),
            )
            .await?;
            did.push(format!("allowed connections to \"{}\" again", j.target));
        }
        exec(
            drop_database_sql(&f.holder, version),
            format!("dropping \"{}\"", f.holder),
        )
        .await?;
        did.push(format!(
            "dropped the scratch database \"{}\" (the restore had not swapped; \"{}\" was not changed)",
            f.holder, j.target
        ));
    }
    if j.pre_hooks_started && !j.post_hooks_done {
        let outcome = if swapped { "success" } else { "failure" };
        did.push(run_post_hooks(r, &j.target, outcome).await);
    }
    if swapped {
        exec(
            comment_sql(&f.holder, j.comment.as_deref()),
            "closing the restore journal".into(),
        )
        .await?;
        match (&j.previous, j.drop_previous) {
            (Some(prev), true) => {
                exec(
                    drop_database_sql(prev, version),
                    format!("dropping the kept copy \"{prev}\""),
                )
                .await?;
                did.push(format!("dropped the kept copy \"{prev}\" as asked"));
            }
            (Some(prev), false) => did.push(format!(
                "the restore had swapped: \"{}\" holds the restored data, the kept copy \"{prev}\" stays",
                j.target
            )),
            (None, _) => did.push(format!(
                "the restore had finished loading: \"{}\" holds the restored data",
                j.target
            )),
        }
    }
    Ok(format!(
        "repaired the interrupted restore of \"{}\" ({}): {}",
        j.target,
        j.by,
        did.join("; ")
    ))
}

/// Run the post-restore hooks for a restore whose pre-restore hooks ran (the apps may still be
/// scaled to 0); one phrase saying how they went.
async fn run_post_hooks(r: &Repair<'_>, target: &str, outcome: &str) -> String {
    if r.post_hooks.is_empty() {
        return "its pre-restore hooks had run and no post-restore hooks are configured here: check the apps".into();
    }
    let mut env = r.child_env.to_vec();
    env.push(("PGKEEP_DATABASE".into(), target.to_string()));
    env.push(("PGKEEP_HOOK".into(), "post_restore".into()));
    env.push(("PGKEEP_RESTORE_OUTCOME".into(), outcome.into()));
    let commands = r.post_hooks.to_vec();
    let timeout = r.hook_timeout;
    let results =
        tokio::task::spawn_blocking(move || hooks::run_all(&commands, timeout, &env, false))
            .await
            .unwrap_or_default();
    let failed: Vec<String> = results
        .iter()
        .filter(|h| !h.ok)
        .map(|h| format!("`{}` {}", hooks::show_argv(&h.argv), h.message))
        .collect();
    if failed.is_empty() {
        format!(
            "its pre-restore hooks had run and its post-restore hooks had not: ran {} post-restore hook(s)",
            results.len()
        )
    } else {
        format!(
            "its pre-restore hooks had run and its post-restore hooks had not: post-restore hooks FAILED: {}",
            failed.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restores of two databases started in the same second have sessions of their own names.
    #[test]
    fn session_names_tell_restores_of_the_same_second_apart() {
        let a = session_name("app_restoring_20261201_120000");
        let b = session_name("other_restoring_20261201_120000");
        assert_ne!(a, b);
        assert_eq!(a, session_name("app_restoring_20261201_120000"));
        assert!(a.len() < 64, "{a}");
    }

    #[test]
    fn a_journal_reads_back_and_other_comments_are_no_journal() {
        let j = Journal {
            target: "app \"x\"".into(),
            scratch: "app_restoring_20261201_120000".into(),
            previous: Some("app_before_restore_20261201_120000".into()),
            live_allowed: Some(true),
            pre_hooks_started: true,
            post_hooks_done: false,
            drop_previous: false,
            comment: Some("it's ours".into()),
            pid: 42,
            backend_start: "2026-12-01 12:00:00.000001".into(),
            by: "pid 7 on laptop".into(),
        };
        assert_eq!(Journal::parse(&j.text()), Some(j.clone()));
        assert_eq!(Journal::parse("the app's database"), None);
        assert_eq!(Journal::parse("pgkeep restore journal v1: {not json"), None);
        let sql = j.write_sql("h");
        assert!(
            sql.starts_with("COMMENT ON DATABASE ")
                && sql.contains("'pgkeep restore journal v1: {"),
            "{sql}"
        );
    }
}
