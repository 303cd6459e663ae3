//! The verification record kept beside each backup (`<file>.verify.json`): what was proven or what
//! is wrong, at which level, when. Written atomically; the committed manifest is never rewritten.

use std::io::Read;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::error::VerifyError;
use super::failure::Failure;
use crate::catalog::VERIFY_SUFFIX;
use crate::model::Verdict;
use crate::storage::Store;

pub const RECORD_VERSION: u32 = 1;

/// How deep a verification goes. `Checksum` reads the stored file; a `Restore` level (load into a
/// scratch database and compare row counts) joins this enum with the restore engine's loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Read every byte, compare size and sha256 with the manifest, decompress fully, check
    /// completeness and row counts.
    Checksum,
    /// The checksum level, then load into a scratch database with the restore engine's loader,
    /// compare every table's row count with the manifest, run the user's checks, drop it.
    Restore,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Checksum => "checksum",
            Level::Restore => "restore",
        }
    }
}

/// What was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Committed by pgkeep, with a manifest.
    Managed,
    /// A `.sql.gz` of the old backup pod: no manifest, so no checksum to compare.
    Legacy,
    /// A data file written by pgkeep whose manifest is missing.
    Orphan,
}

/// The verification record written beside the data file as `<file>.verify.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub record_version: u32,
    pub id: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub kind: Kind,
    pub level: Level,
    /// True when the verdict is `good` (kept for readers of records before verdicts).
    pub ok: bool,
    /// `good`, `bad` or `inconclusive`; absent in records written before verdicts existed
    /// (see [`Record::verdict`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// One line: what was proven, or what is wrong.
    pub message: String,
    pub checked_at: Timestamp,
    pub duration_seconds: f64,
    /// Bytes read from the stored file and their sha256.
    pub stored_bytes: u64,
    pub sha256: String,
    /// Bytes after decompression (plain) or archive bytes (custom).
    pub raw_bytes: u64,
    pub tables: usize,
    pub rows: u64,
    /// sha256 of the manifest file as it was read (or last seen), to notice a later change or
    /// deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    pub pgkeep_version: String,
}

impl Record {
    pub fn name(&self) -> String {
        record_name(&self.file)
    }

    /// What this verification concluded (a record from before verdicts: from `ok` and its
    /// failure code).
    pub fn verdict(&self) -> Verdict {
        self.verdict
            .unwrap_or_else(|| Verdict::of_legacy(self.ok, self.failure.as_deref()))
    }

    /// Record what was proven (`Ok`: the message) or what failed.
    pub fn conclude(&mut self, result: Result<String, Failure>) {
        match result {
            Ok(msg) => {
                self.ok = true;
                self.verdict = Some(Verdict::Good);
                self.failure = None;
                self.message = msg;
            }
            Err(f) => {
                self.ok = false;
                self.verdict = Some(f.verdict());
                self.failure = Some(f.code().to_string());
                self.message = f.to_string();
            }
        }
    }
}

/// The name of the verification record of a data file.
pub fn record_name(file: &str) -> String {
    format!("{file}{VERIFY_SUFFIX}")
}

/// Write the record beside its backup (`<file>.verify.json`, atomically replacing the previous
/// one). The committed manifest is never rewritten.
pub fn record(store: &dyn Store, rec: &Record) -> Result<(), VerifyError> {
    let json = serde_json::to_vec_pretty(rec).expect("the record serializes");
    store.put(&rec.name(), &json).map_err(VerifyError::Record)
}

/// The previous verification record of a data file.
pub fn read_record(store: &dyn Store, file: &str) -> Option<Record> {
    let mut text = String::new();
    store
        .open(&record_name(file))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}
