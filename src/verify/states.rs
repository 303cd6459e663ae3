//! The verification state of each database, from the records in the store: for retention, for
//! `/metrics` and for `pgkeep check`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::error::VerifyError;
use super::record::{Record, read_record};
use crate::catalog::{Entry, VERIFY_SUFFIX};
use crate::model::Verdict;
use crate::storage::Store;

/// The verification state of a listed backup for retention (`prune::VerifiedFn`): `None` never
/// verified, else the verdict of its last verification.
pub fn verified_state(e: &Entry) -> Option<crate::model::Verdict> {
    e.verification.as_ref().map(|v| v.verdict())
}

/// The verification state of one database, for `/metrics` and `pgkeep check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseState {
    pub database: String,
    /// The most recent verification of any of the database's backups.
    pub last: Option<Record>,
    /// When a backup of this database last verified good.
    pub last_ok_at: Option<Timestamp>,
    /// Verification records found that failed (backups currently known bad).
    pub failed_backups: usize,
    /// Verification records that could not prove their backup either way.
    pub inconclusive_backups: usize,
}

/// Verification results per database, from the records in the store (for `/metrics`).
pub fn states(store: &dyn Store) -> Result<Vec<DatabaseState>, VerifyError> {
    let mut by_db: BTreeMap<String, DatabaseState> = BTreeMap::new();
    for o in store.list()? {
        let Some(file) = o.name.strip_suffix(VERIFY_SUFFIX) else {
            continue;
        };
        let Some(r) = read_record(store, file) else {
            continue;
        };
        let db = r.database.clone().unwrap_or_else(|| "?".into());
        let st = by_db.entry(db.clone()).or_insert(DatabaseState {
            database: db,
            last: None,
            last_ok_at: None,
            failed_backups: 0,
            inconclusive_backups: 0,
        });
        match r.verdict() {
            Verdict::Good => {
                st.last_ok_at = Some(st.last_ok_at.map_or(r.checked_at, |t| t.max(r.checked_at)));
            }
            Verdict::Bad => st.failed_backups += 1,
            Verdict::Inconclusive => st.inconclusive_backups += 1,
        }
        if st.last.as_ref().is_none_or(|l| r.checked_at > l.checked_at) {
            st.last = Some(r);
        }
    }
    Ok(by_db.into_values().collect())
}

/// The verification states in Prometheus text format, for the daemon's `/metrics`.
pub fn metrics_text(states: &[DatabaseState]) -> String {
    fn label(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }
    let mut out = String::new();
    let mut family = |name: &str, help: &str, value: &dyn Fn(&DatabaseState) -> Option<f64>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for s in states {
            if let Some(v) = value(s) {
                out.push_str(&format!(
                    "{name}{{database=\"{}\"}} {v}\n",
                    label(&s.database)
                ));
            }
        }
    };
    family(
        "pgkeep_verify_last_ok",
        "1 if the most recent verification of a backup of the database passed, 0 if it did not (bad or inconclusive).",
        &|s| s.last.as_ref().map(|r| if r.ok { 1.0 } else { 0.0 }),
    );
    family(
        "pgkeep_verify_last_inconclusive",
        "1 if the most recent verification could not prove its backup either way (the backup is kept like an unverified one).",
        &|s| {
            s.last
                .as_ref()
                .map(|r| f64::from(u8::from(r.verdict() == Verdict::Inconclusive)))
        },
    );
    family(
        "pgkeep_verify_last_timestamp_seconds",
        "When the most recent verification ran (Unix time).",
        &|s| s.last.as_ref().map(|r| r.checked_at.as_second() as f64),
    );
    family(
        "pgkeep_verify_last_ok_timestamp_seconds",
        "When a backup of the database last verified good (Unix time).",
        &|s| s.last_ok_at.map(|t| t.as_second() as f64),
    );
    family(
        "pgkeep_verify_failed_backups",
        "Backups whose recorded verification proved them bad.",
        &|s| Some(s.failed_backups as f64),
    );
    family(
        "pgkeep_verify_inconclusive_backups",
        "Backups whose recorded verification was inconclusive.",
        &|s| Some(s.inconclusive_backups as f64),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::storage::LocalStore;
    use crate::verify::record::{Kind, Level, RECORD_VERSION};

    fn record(file: &str, db: &str, ok: bool, at: &str) -> Record {
        Record {
            record_version: RECORD_VERSION,
            id: catalog::id_of(file),
            file: file.into(),
            database: Some(db.into()),
            kind: Kind::Managed,
            level: Level::Checksum,
            ok,
            verdict: None,
            failure: (!ok).then(|| "truncated".into()),
            message: "m".into(),
            checked_at: at.parse().unwrap(),
            duration_seconds: 0.1,
            stored_bytes: 1,
            sha256: "0".repeat(64),
            raw_bytes: 1,
            tables: 1,
            rows: 1,
            manifest_sha256: None,
            pgkeep_version: "0".into(),
        }
    }

    #[test]
    fn states_and_metrics_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for r in [
            record(
                "d/h-a_2026-11-01_00-00-00.sql.gz",
                "a",
                true,
                "2026-11-02T00:00:00Z",
            ),
            record(
                "d/h-a_2026-11-03_00-00-00.sql.gz",
                "a",
                false,
                "2026-11-04T00:00:00Z",
            ),
            record(
                "d/h-b\"x_2026-11-03_00-00-00.sql.gz",
                "b\"x",
                true,
                "2026-11-05T00:00:00Z",
            ),
        ] {
            store
                .put(&r.name(), &serde_json::to_vec(&r).unwrap())
                .unwrap();
        }
        let st = states(&store).unwrap();
        assert_eq!(st.len(), 2);
        let a = &st[0];
        assert_eq!(a.database, "a");
        assert!(!a.last.as_ref().unwrap().ok);
        assert_eq!(a.last_ok_at, Some("2026-11-02T00:00:00Z".parse().unwrap()));
        assert_eq!(a.failed_backups, 1);
        let text = metrics_text(&st);
        assert!(
            text.contains("pgkeep_verify_last_ok{database=\"a\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("pgkeep_verify_last_ok{database=\"b\\\"x\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pgkeep_verify_last_ok_timestamp_seconds{database=\"a\"} 1793577600\n"),
            "{text}"
        );
        assert!(
            text.contains("pgkeep_verify_failed_backups{database=\"a\"} 1\n"),
            "{text}"
        );
    }
}
