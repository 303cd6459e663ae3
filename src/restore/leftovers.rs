//! What restores leave on the server: the previous copies they keep (`*_before_restore_*`) and
//! the scratch databases of restores that were killed (`*_restoring_*`), for `pgkeep cleanup`.

use jiff::Timestamp;

use super::error::RestoreError;
use super::names::{previous_name, scratch_name, without_seq};
use crate::pg::{ConnParams, query_error};

/// Kept copies and leftovers of restores on the server.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub name: String,
    pub size: i64,
    pub sessions: i64,
    pub kind: &'static str,
}

/// Previous copies (`*_before_restore_*`) and scratch databases left by killed restores
/// (`*_restoring_*` without sessions), optionally only those of `db`.
pub async fn leftovers(
    admin: &ConnParams,
    db: Option<&str>,
) -> Result<Vec<Leftover>, RestoreError> {
    let client = admin.connect().await?;
    let rows = client
        .query(
            "SELECT d.datname::text, pg_database_size(d.oid), \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) \
             FROM pg_database d WHERE d.datname ~ '_(before_restore|restoring)_[0-9]{8}_[0-9]{6}(_[0-9]{1,5})?$' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_error("listing kept copies", e))?;
    // A restore under way holds its scratch database through its journal, sessions or not.
    let busy: Vec<String> = super::journal::find(&client, None)
        .await?
        .into_iter()
        .filter(|f| f.alive)
        .map(|f| f.holder)
        .collect();
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let sessions: i64 = r.get(2);
        let kind = if name.contains("_before_restore_") {
            "previous copy"
        } else {
            "scratch left by an interrupted restore"
        };
        if kind != "previous copy" && (sessions > 0 || busy.contains(&name)) {
            continue; // a restore is loading it now
        }
        if let Some(db) = db {
            let prefix_ok = [
                previous_name(db, Timestamp::UNIX_EPOCH),
                scratch_name(db, Timestamp::UNIX_EPOCH),
            ]
            .iter()
            .any(|n| {
                let base = without_seq(&name);
                base.len() == n.len() && base.starts_with(&n[..n.len() - 15])
            });
            if !prefix_ok {
                continue;
            }
        }
        out.push(Leftover {
            name,
            size: r.get(1),
            sessions,
            kind,
        });
    }
    Ok(out)
}

/// Drop one leftover database.
pub async fn drop_leftover(admin: &ConnParams, name: &str) -> Result<(), RestoreError> {
    super::subscriptions::detach_and_drop(admin, name).await?;
    let client = admin.connect().await?;
    let v = crate::pg::catalog::server_info(&client).await?.version_num;
    super::dropped::drop_confirmed(&client, name, v).await?;
    Ok(())
}
