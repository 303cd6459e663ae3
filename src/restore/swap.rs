//! The swap, the only downtime of a restore: block new connections to the live database, end its
//! sessions, and rename it away and the scratch copy into its place in one transaction. Also the
//! rename of a scratch copy where no live database was.

use std::time::{Duration, Instant};

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

/// The swap: both renames in one transaction.
pub fn swap_sql(live: &str, previous: &str, scratch: &str) -> Vec<String> {
    vec![
        "BEGIN".into(),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(live),
            quote_ident(previous)
        ),
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

/// Block, terminate, rename both in one transaction. On failure, connections to the live
/// database are allowed again and it keeps its name.
pub async fn swap(
    client: &tokio_postgres::Client,
    live: &str,
    previous: &str,
    scratch: &str,
) -> Result<Duration, String> {
    let err = |what: &str, e: tokio_postgres::Error| query_error(what, e).to_string();
    let allowed: bool = client
        .query_one(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&live],
        )
        .await
        .map_err(|e| err("reading the live database", e))?
        .get(0);
    // The scratch database must have no sessions for its rename (the load's own connections may
    // take a moment to end): wait for that before the downtime starts.
    let scratch_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&scratch],
            )
            .await
            .map_err(|e| err("reading the scratch database's sessions", e))?
            .get(0);
        if n == 0 {
            break;
        }
        if Instant::now() > scratch_deadline {
            client
                .batch_execute(&terminate_sql(scratch))
                .await
                .map_err(|e| err("ending the scratch database's sessions", e))?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let down = Instant::now();
    client
        .batch_execute(&block_sql(live))
        .await
        .map_err(|e| err("blocking new connections", e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        if let Err(e) = client.batch_execute(&terminate_sql(live)).await {
            break err("ending sessions", e);
        }
        let sql = swap_sql(live, previous, scratch).join(";\n");
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(down.elapsed()),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                let busy = e.as_db_error().is_some_and(|d| d.code().code() == "55006");
                let text = err("renaming", e);
                if !busy || Instant::now() > deadline {
                    break text;
                }
                // A prepared transaction holds the database until someone ends it: waiting
                // would only keep the connections blocked.
                if let Some(held) = prepared_on(client, live).await {
                    break format!("{text} (prepared transactions hold it: {held})");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    if allowed {
        let _ = client.batch_execute(&unblock_sql(live)).await;
    }
    Err(last)
}

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
