//! Dropping a database and saying so only after the server shows it gone: a message that says
//! "dropped" (or "kept", or "not changed") is written from what `pg_database` holds after the
//! statement, never from the statement's return alone (a connection lost after a restart, a
//! prepared transaction or a replication slot on the database all leave it there).

use crate::pg::{PgError, query_error};

use super::database::drop_database_sql;

/// Whether `pg_database` lists `name`.
pub async fn exists(client: &tokio_postgres::Client, name: &str) -> Result<bool, PgError> {
    Ok(client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| query_error("reading pg_database", e))?
        .is_some())
}

/// `DROP DATABASE` of `name`, then `pg_database` read on the same connection: `Ok` only when it
/// is gone.
pub async fn drop_confirmed(
    client: &tokio_postgres::Client,
    name: &str,
    server_version_num: u32,
) -> Result<(), PgError> {
    let what = format!("dropping database \"{name}\"");
    client
        .batch_execute(&drop_database_sql(name, server_version_num))
        .await
        .map_err(|e| query_error(&what, e))?;
    if exists(client, name).await? {
        return Err(PgError::Query {
            context: what,
            message: "DROP DATABASE returned, but pg_database still lists it".into(),
            sqlstate: None,
        });
    }
    Ok(())
}

/// What a drop left, as read from the server after it.
#[derive(Debug, Clone, PartialEq)]
pub enum Dropped {
    /// `pg_database` no longer lists it.
    Gone,
    /// The drop failed (why) and `pg_database` still lists it.
    Left(String),
    /// The drop failed (why) and `pg_database` could not be read after it.
    Unknown(String),
}

impl Dropped {
    /// The outcome of a failed drop (`why`), from `pg_database` read after it (`after`).
    pub fn after_failure(why: String, after: Result<bool, PgError>) -> Dropped {
        match after {
            Ok(false) => Dropped::Gone,
            Ok(true) => Dropped::Left(why),
            Err(e) => Dropped::Unknown(format!("{why}; reading pg_database after it: {e}")),
        }
    }

    pub fn gone(&self) -> bool {
        *self == Dropped::Gone
    }

    /// One phrase for a message: `what` is e.g. "the scratch database", `fix` the command that
    /// drops what is left.
    pub fn phrase(&self, what: &str, name: &str, fix: &str) -> String {
        match self {
            Dropped::Gone => format!("{what} \"{name}\" was dropped"),
            Dropped::Left(why) => {
                format!(
                    "{what} \"{name}\" was NOT dropped ({why}): it is still there; `{fix}` drops it"
                )
            }
            Dropped::Unknown(why) => format!(
                "{what} \"{name}\" could not be dropped ({why}) and may still be there; `{fix}` drops it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_drop_is_told_by_what_the_server_shows() {
        let gone = Dropped::after_failure("x".into(), Ok(false));
        assert_eq!(
            gone.phrase("the copy", "d", "fix"),
            "the copy \"d\" was dropped"
        );
        let left = Dropped::after_failure("busy".into(), Ok(true));
        assert!(!left.gone());
        assert_eq!(
            left.phrase("the copy", "d", "pgkeep cleanup -d a"),
            "the copy \"d\" was NOT dropped (busy): it is still there; `pgkeep cleanup -d a` drops it"
        );
        let unknown = Dropped::after_failure("down".into(), Err(PgError::Tls("no".into())));
        assert!(
            unknown
                .phrase("the copy", "d", "f")
                .starts_with("the copy \"d\" could not be dropped (down; reading pg_database after it: TLS setup failed: no) and may still be there"),
        );
    }
}
