//! What can be verified: every listed backup, and every data file that has lost its manifest;
//! and finding them by id, file name or path.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::error::VerifyError;
use crate::catalog::{self, DATA_EXTENSIONS, Entry, MANIFEST_SUFFIX, Status, VERIFY_SUFFIX};
use crate::storage::Store;

/// One thing to verify: a listed backup, or a data file that has lost its manifest.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub file: String,
    pub database: Option<String>,
    pub time: Timestamp,
    pub status: Option<Status>,
    /// Without manifest and modified within `SETTLE_SECONDS`: possibly still being committed.
    pub settling: bool,
}

impl From<&Entry> for Target {
    fn from(e: &Entry) -> Target {
        Target {
            id: e.id.clone(),
            file: e.file.clone(),
            database: e.database.clone(),
            time: e.time,
            status: Some(e.status),
            settling: false,
        }
    }
}

/// A data file without manifest younger than this may be a backup between its data commit and
/// its manifest (or an old-pod `gzip` still writing): `--all` and `--latest` leave it alone.
pub const SETTLE_SECONDS: i64 = 120;

/// Every listed backup plus every data file without a manifest that the listing leaves out
/// (a `.dump`, `.sql.zst` or `.sql` whose manifest is gone), newest first.
pub fn targets(
    store: &dyn Store,
    host_hint: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Target>, VerifyError> {
    let entries = catalog::list(store, host_hint)?;
    let objects = store.list()?;
    let modified: BTreeMap<&str, Timestamp> = objects
        .iter()
        .map(|o| {
            (
                o.name.as_str(),
                Timestamp::try_from(o.modified).unwrap_or(Timestamp::UNIX_EPOCH),
            )
        })
        .collect();
    let settling = |name: &str| {
        modified
            .get(name)
            .is_some_and(|m| now.as_second() - m.as_second() < SETTLE_SECONDS)
    };
    let mut out: Vec<Target> = entries
        .iter()
        // A backup whose manifest cannot be read is not judged here (`list` shows why).
        .filter(|e| e.status != Status::Unreadable)
        .map(|e| {
            let mut t = Target::from(e);
            t.settling = e.status != Status::Good && settling(&e.file);
            if e.status == Status::Uncommitted {
                // Checked as a data file without manifest, as those the listing leaves out.
                t.status = None;
            }
            t
        })
        .collect();
    for o in &objects {
        if o.name.ends_with(".sql.gz")
            || !DATA_EXTENSIONS.iter().any(|e| o.name.ends_with(e))
            || modified.contains_key(format!("{}{MANIFEST_SUFFIX}", o.name).as_str())
            || entries.iter().any(|e| e.file == o.name)
        {
            continue;
        }
        out.push(Target {
            id: catalog::id_of(&o.name),
            file: o.name.clone(),
            database: None,
            time: Timestamp::try_from(o.modified).unwrap_or(Timestamp::UNIX_EPOCH),
            status: None,
            settling: settling(&o.name),
        });
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// Find targets by id, file name (relative to the backup directory) or path. An id can name
/// more than one file (backups of different formats started in the same second): all are
/// returned.
pub fn find(targets: &[Target], wanted: &str, root: &std::path::Path) -> Vec<Target> {
    let rel = std::path::Path::new(wanted)
        .strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| wanted.to_string());
    let rel = rel
        .strip_suffix(MANIFEST_SUFFIX)
        .or_else(|| rel.strip_suffix(VERIFY_SUFFIX))
        .unwrap_or(&rel)
        .to_string();
    if let Some(t) = targets.iter().find(|t| t.file == rel) {
        return vec![t.clone()];
    }
    let by_id: Vec<Target> = targets.iter().filter(|t| t.id == rel).cloned().collect();
    if !by_id.is_empty() {
        return by_id;
    }
    targets
        .iter()
        .filter(|t| catalog::id_of(&t.file) == rel)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_by_file_id_or_path_and_all_files_of_a_shared_id() {
        let t = |file: &str| Target {
            id: catalog::id_of(file),
            file: file.into(),
            database: None,
            time: Timestamp::UNIX_EPOCH,
            status: None,
            settling: false,
        };
        let all = vec![
            t("d/h-a_2026-11-01_00-00-00.sql.gz"),
            t("d/h-a_2026-11-01_00-00-00.dump"),
            t("d/h-a_2026-11-02_00-00-00.sql.gz"),
        ];
        let root = std::path::Path::new("/backups");
        assert_eq!(find(&all, "h-a_2026-11-01_00-00-00", root).len(), 2);
        let one = find(&all, "/backups/d/h-a_2026-11-01_00-00-00.dump", root);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].file, "d/h-a_2026-11-01_00-00-00.dump");
        let m = find(&all, "d/h-a_2026-11-02_00-00-00.sql.gz.manifest.json", root);
        assert_eq!(m[0].file, "d/h-a_2026-11-02_00-00-00.sql.gz");
        assert!(find(&all, "nope", root).is_empty());
    }
}
