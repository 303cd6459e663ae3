//! Logical replication subscriptions of a database pgkeep drops, swaps away or restores: a
//! database with a subscription cannot be dropped (`DROP DATABASE` refuses while any exists), a
//! subscription with a slot cannot be dropped without reaching its publisher, and two enabled
//! subscriptions must not use one slot. So: before a drop, disable, detach from the slot
//! (`slot_name = NONE`, the slot stays on the publisher) and drop them; at the swap, disable the
//! previous copy's; restored ones stay disabled until the user enables them.

use crate::pg::ident::quote_ident;
use crate::pg::{ConnParams, PgError, query_error};

/// The subscriptions of `db` (read from the shared catalog through any database): name and
/// whether enabled.
pub async fn of_database(
    client: &tokio_postgres::Client,
    db: &str,
) -> Result<Vec<(String, bool)>, PgError> {
    Ok(client
        .query(
            "SELECT s.subname::text, s.subenabled FROM pg_subscription s \
             JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = $1 ORDER BY 1",
            &[&db],
        )
        .await
        .map_err(|e| query_error(&format!("listing the subscriptions of \"{db}\""), e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

async fn in_database(admin: &ConnParams, db: &str, sql: &[String]) -> Result<(), PgError> {
    if sql.is_empty() {
        return Ok(());
    }
    let client = admin.with_dbname(db).connect().await?;
    client
        .batch_execute(&sql.join(";\n"))
        .await
        .map_err(|e| query_error(&format!("changing the subscriptions of \"{db}\""), e))
}

/// Disable, detach from their slots and drop the subscriptions of `db`, so that it can be
/// dropped. Returns the names dropped. A database that does not exist has none.
pub async fn detach_and_drop(admin: &ConnParams, db: &str) -> Result<Vec<String>, PgError> {
    let subs = of_database(&admin.connect().await?, db).await?;
    let mut sql = Vec::new();
    for (name, _) in &subs {
        let s = quote_ident(name);
        sql.push(format!("ALTER SUBSCRIPTION {s} DISABLE"));
        sql.push(format!("ALTER SUBSCRIPTION {s} SET (slot_name = NONE)"));
        sql.push(format!("DROP SUBSCRIPTION {s}"));
    }
    in_database(admin, db, &sql).await?;
    Ok(subs.into_iter().map(|(n, _)| n).collect())
}

/// Disable the enabled subscriptions of `db`; returns those it disabled.
pub async fn disable(admin: &ConnParams, db: &str) -> Result<Vec<String>, PgError> {
    let enabled: Vec<String> = of_database(&admin.connect().await?, db)
        .await?
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect();
    let sql: Vec<String> = enabled
        .iter()
        .map(|n| format!("ALTER SUBSCRIPTION {} DISABLE", quote_ident(n)))
        .collect();
    in_database(admin, db, &sql).await?;
    Ok(enabled)
}

/// Enable `names` in `db` again (a swap that did not happen).
pub async fn enable(admin: &ConnParams, db: &str, names: &[String]) -> Result<(), PgError> {
    let sql: Vec<String> = names
        .iter()
        .map(|n| format!("ALTER SUBSCRIPTION {} ENABLE", quote_ident(n)))
        .collect();
    in_database(admin, db, &sql).await
}
