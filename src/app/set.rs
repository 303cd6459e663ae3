//! Commands over the `databases` set: which databases a command works on (`-d NAME`, else the
//! set, else the one configured database), the notes on databases that are gone or missing, and
//! a run over the set in which one database failing never stops the others.

use anyhow::Result;

use crate::catalog;
use crate::config::Settings;
use crate::databases::{self, SetFailed};
use crate::model::databases::Selection;

/// How messages name a database, or the globals.
pub use crate::databases::label;

/// The databases a command works on.
pub enum Targets {
    /// One database: named by `-d`, or the configured `database` when no set is configured.
    One(String),
    /// The `databases` set, resolved on the server.
    Set(Selection),
}

impl Targets {
    pub fn is_set(&self) -> bool {
        matches!(self, Targets::Set(_))
    }
}

/// `-d NAME`, else the `databases` set (read from the server), else the configured database.
pub async fn targets(settings: &Settings, flag: &Option<String>) -> Result<Targets> {
    let (None, Some(set)) = (flag, &settings.databases) else {
        return Ok(Targets::One(settings.database_or(flag)));
    };
    let sel = selection(settings, set).await?;
    for db in &sel.gone {
        tracing::warn!(database = %db, "{}", databases::gone_note(db));
    }
    Ok(Targets::Set(sel))
}

/// What the set means now (for `pgkeep databases` and [`targets`]).
pub async fn selection(settings: &Settings, set: &crate::model::DatabaseSet) -> Result<Selection> {
    Ok(databases::resolve_stored(settings, set).await?)
}

/// A command that works on one database at a time, refusing the set: `-d NAME`, else the
/// configured database; with `databases` set, `-d` is required.
pub fn one(settings: &Settings, flag: &Option<String>, verb: &str) -> Result<String> {
    if flag.is_none() && settings.databases.is_some() {
        return Err(super::errors::UsageError(format!(
            "{verb} works on one database: name it with -d NAME (`databases` is set)"
        ))
        .into());
    }
    Ok(settings.database_or(flag))
}

/// Run `f` for every database of the selection in turn, then (with `globals`) for the server's
/// globals ([`catalog::GLOBALS`]); a failure is recorded and the next one runs. Databases named
/// in the set but missing on the server are failures too. Returns the results of those that
/// succeeded, and [`SetFailed`] naming every failure if one did.
pub async fn each<T>(
    sel: &Selection,
    host: &str,
    globals: bool,
    mut f: impl AsyncFnMut(&str) -> Result<T>,
) -> (Vec<(String, T)>, Result<()>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut code = None;
    for db in &sel.missing {
        failed.push((
            db.clone(),
            format!("database \"{db}\" does not exist on {host}"),
        ));
        code.get_or_insert(crate::exit::CONNECTION);
    }
    let globals = globals.then(|| catalog::GLOBALS.to_string());
    for db in sel.databases.iter().chain(globals.as_ref()) {
        match f(db).await {
            Ok(v) => done.push((db.clone(), v)),
            Err(e) => {
                code.get_or_insert(super::errors::exit_code(&e));
                failed.push((db.clone(), crate::exit::one_line(&e)));
            }
        }
    }
    let res = match code {
        None => Ok(()),
        Some(code) => Err(SetFailed {
            total: sel.databases.len() + sel.missing.len(),
            failed,
            code,
        }
        .into()),
    };
    (done, res)
}
