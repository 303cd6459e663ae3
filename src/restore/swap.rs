//! The swap, the only downtime of a restore: in one transaction, end the live database's
//! sessions, rename it to the kept copy, close the kept copy and rename the scratch copy into its
//! place. Also the rename of a scratch copy where no live database was.
//!
//! The invariant: at no committed instant does the live name refuse connections because of
//! pgkeep. `ALTER DATABASE ... ALLOW_CONNECTIONS` is transactional and is only ever applied to the
//! kept copy, inside the transaction that gives it its new name; the rename's lock makes new
//! connections to the live name wait rather than refuse. A kill or a server restart at any point
//! rolls the whole transaction back (the old database is live and open) or finds it committed (the
//! restored database is live and open). The in-place strategy, which has no copy to swap, is
//! outside this invariant and is repaired from the restore's journal instead.

use std::time::{Duration, Instant};

use crate::fault;
use crate::pg::ident::{quote_ident, quote_literal};
use crate::pg::{PgError, query_error};

/// SQL that blocks new connections to `db` (nobody, not even superusers, can connect).
pub fn block_sql(db: &str) -> String {
    format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
        quote_ident(db)
    )
}

pub fn unblock_sql(db: &str) -> String {
    format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
        quote_ident(db)
    )
}

pub fn terminate_sql(db: &str) -> String {
    format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
        quote_literal(db)
    )
}

/// The swap's transaction, statement by statement: end the live database's sessions, rename it
/// to the kept copy, close the kept copy, rename the scratch copy to the live name.
pub fn swap_sql(live: &str, previous: &str, scratch: &str) -> Vec<String> {
    vec![
        "BEGIN".into(),
        terminate_sql(live),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(live),
            quote_ident(previous)
        ),
        block_sql(previous),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(scratch),
            quote_ident(live)
        ),
        "COMMIT".into(),
    ]
}

/// Rename the scratch database to its final name, retrying while the load's own connections
/// are still ending ("being accessed by other users").
pub async fn rename_scratch(
    client: &tokio_postgres::Client,
    scratch: &str,
    name: &str,
) -> Result<(), PgError> {
    let sql = format!(
        "ALTER DATABASE {} RENAME TO {}",
        quote_ident(scratch),
        quote_ident(name)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e)
                if e.as_db_error().is_some_and(|d| d.code().code() == "55006")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                return Err(query_error(
                    &format!("renaming the scratch database to \"{name}\""),
                    e,
                ));
            }
        }
    }
}

/// The swap, in one transaction: end the live database's sessions, rename it to the kept copy,
/// close the kept copy, rename the scratch copy to the live name. A session that reappears
/// between the terminate and the rename's lock (SQLSTATE 55006) rolls the attempt back, and it is
/// tried again until a deadline. Returns the downtime (from the first attempt to the commit).
/// `extra` runs inside the transaction after the renames (the restore journal's hand-over).
/// On failure nothing was committed: the live database is as it was.
pub async fn swap(
    client: &tokio_postgres::Client,
    live: &str,
    previous: &str,
    scratch: &str,
    extra: &[String],
) -> Result<Duration, String> {
    wait_scratch_idle(client, scratch).await?;
    let down = Instant::now();
    let deadline = down + Duration::from_secs(30);
    loop {
        match swap_once(client, live, previous, scratch, extra).await {
            Ok(()) => {
                fault::point("restore.swap-committed");
                return Ok(down.elapsed());
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                let busy = e.as_db_error().is_some_and(|d| d.code().code() == "55006");
                let text = query_error("swapping the databases", e).to_string();
                if !busy || Instant::now() > deadline {
                    return Err(text);
                }
                // A prepared transaction holds the database until someone ends it: waiting
                // would only keep the sessions ending for nothing.
                if let Some(held) = prepared_on(client, live).await {
                    return Err(format!("{text} (prepared transactions hold it: {held})"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// One attempt of the swap's transaction. The rename takes the database's lock, so connections
/// that arrive after it wait (and then find the new database under the name) instead of
/// slipping in.
async fn swap_once(
    client: &tokio_postgres::Client,
    live: &str,
    previous: &str,
    scratch: &str,
    extra: &[String],
) -> Result<(), tokio_postgres::Error> {
    let mut sql = swap_sql(live, previous, scratch);
    let commit = sql.pop().expect("the swap ends with COMMIT");
    sql.extend(extra.iter().cloned());
    for (n, statement) in sql.iter().enumerate() {
        match n {
            1 => fault::point("restore.swap-begun"),
            3 => fault::point("restore.swap-live-renamed"),
            _ => {}
        }
        client.batch_execute(statement).await?;
    }
    fault::point("restore.swap-before-commit");
    client.batch_execute(&commit).await
}

/// The scratch database must have no sessions for its rename (the load's own connections may
/// take a moment to end): wait for that before the downtime starts. Autovacuum workers, which
/// a freshly loaded database draws at once, are not waited for: they are ended here where the
/// role may (the rename ends them too, but inside the downtime), and one that starts again is
/// ended by the rename itself.
async fn wait_scratch_idle(client: &tokio_postgres::Client, scratch: &str) -> Result<(), String> {
    let err = |what: &str, e: tokio_postgres::Error| query_error(what, e).to_string();
    // Best effort: a role that is no superuser may not end them (the rename still does).
    if let Err(e) = client.execute(AUTOVACUUM_ENDED, &[&scratch]).await {
        tracing::debug!(error = %crate::pg::error_text(&e), "cannot end autovacuum on the scratch database");
    }
    let started = Instant::now();
    let scratch_deadline = started + Duration::from_secs(5);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type IS DISTINCT FROM 'autovacuum worker'",
                &[&scratch],
            )
            .await
            .map_err(|e| err("reading the scratch database's sessions", e))?
            .get(0);
        if n == 0 {
            tracing::debug!(waited = %format!("{:.3}s", started.elapsed().as_secs_f64()), "the scratch database is idle");
            return Ok(());
        }
        if Instant::now() > scratch_deadline {
            return client
                .batch_execute(&terminate_sql(scratch))
                .await
                .map_err(|e| err("ending the scratch database's sessions", e));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// End the autovacuum workers of database `$1`.
const AUTOVACUUM_ENDED: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'autovacuum worker'";

/// The prepared transactions of `db`, listed, if it has any.
async fn prepared_on(client: &tokio_postgres::Client, db: &str) -> Option<String> {
    let rows = client
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = $1 ORDER BY prepared",
            &[&db],
        )
        .await
        .ok()?;
    let gids: Vec<String> = rows
        .iter()
        .map(|r| format!("'{}'", r.get::<_, String>(0)))
        .collect();
    (!gids.is_empty()).then(|| gids.join(", "))
}
