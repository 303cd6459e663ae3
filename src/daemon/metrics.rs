//! The daemon's numbers in the Prometheus text format, labelled by database, so that a missing
//! or failing backup pages someone instead of being found on the day of a restore.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Per-database counters and gauges.
#[derive(Debug, Default, Clone)]
pub struct Db {
    pub last_success: Option<f64>,
    pub last_attempt: Option<f64>,
    pub last_attempt_ok: Option<bool>,
    pub last_duration: Option<f64>,
    pub last_stored_bytes: Option<u64>,
    pub last_raw_bytes: Option<u64>,
    /// Attempts by result (`success`, `failure`, `aborted`, `skipped`).
    pub results: BTreeMap<&'static str, u64>,
    pub culled: u64,
    pub orphans_removed: u64,
    /// Retries of failed scheduled and catch-up backups.
    pub retries: u64,
    pub next_run: Option<f64>,
    pub running: bool,
    /// Scheduled verifications by result (`VERIFY_RESULTS`); only with a verify schedule.
    pub verify_results: BTreeMap<&'static str, u64>,
    /// Whether the last scheduled verification found the newest backup too old.
    pub verify_newest_too_old: Option<bool>,
    pub next_verify: Option<f64>,
    pub verify_scheduled: bool,
    /// Gone from the server (its backups kept, never culled for it).
    pub gone: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub dbs: BTreeMap<String, Db>,
}

/// Result labels always exported, so that rate() and alerts see zeros instead of nothing.
pub const RESULTS: [&str; 4] = ["success", "failure", "aborted", "skipped"];

/// Result labels of `pgkeep_scheduled_verifications_total`, always exported.
pub const VERIFY_RESULTS: [&str; 5] = ["ok", "failed", "inconclusive", "too_old", "error"];

/// Escape a label value: backslash, double quote and newline.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn db(&mut self, name: &str) -> &mut Db {
        self.dbs.entry(name.to_string()).or_default()
    }

    /// The exposition text (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, get) in SERIES {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (db, d) in &self.dbs {
                if let Some(v) = get(d) {
                    let _ = writeln!(out, "{name}{{database=\"{}\"}} {}", escape(db), num(v));
                }
            }
        }
        let name = "pgkeep_orphans_removed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Leftover partial files and data without manifest removed by culling."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (db, d) in &self.dbs {
            let _ = writeln!(
                out,
                "{name}{{database=\"{}\"}} {}",
                escape(db),
                d.orphans_removed
            );
        }
        self.by_result(
            &mut out,
            "pgkeep_backups_total",
            "Backup attempts by result.",
            &RESULTS,
            |d| Some(&d.results),
        );
        if self.dbs.values().any(|d| d.verify_scheduled) {
            self.by_result(
                &mut out,
                "pgkeep_scheduled_verifications_total",
                "Scheduled verifications of the newest backup by result.",
                &VERIFY_RESULTS,
                |d| d.verify_scheduled.then_some(&d.verify_results),
            );
        }
        out
    }

    /// A counter by result label, every label exported (zeros included) for each database whose
    /// counts `get` returns.
    fn by_result(
        &self,
        out: &mut String,
        name: &str,
        help: &str,
        labels: &[&str],
        get: fn(&Db) -> Option<&BTreeMap<&'static str, u64>>,
    ) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (db, counts) in self
            .dbs
            .iter()
            .filter_map(|(db, d)| get(d).map(|c| (db, c)))
        {
            for r in labels {
                let _ = writeln!(
                    out,
                    "{name}{{database=\"{}\",result=\"{r}\"}} {}",
                    escape(db),
                    counts.get(r).copied().unwrap_or(0)
                );
            }
        }
    }
}

type Get = fn(&Db) -> Option<f64>;

/// The store's free space, when it knows it (an object store does not: then no series at all,
/// rather than a made-up number).
pub fn free_bytes_text(free: Option<u64>) -> String {
    let Some(free) = free else {
        return String::new();
    };
    let name = "pgkeep_storage_free_bytes";
    format!(
        "# HELP {name} Bytes free where new backups are written.\n# TYPE {name} gauge\n{name} {free}\n"
    )
}

/// The per-database gauges and plain counters: name, type, help, value.
const SERIES: [(&str, &str, &str, Get); 13] = [
    (
        "pgkeep_database_gone",
        "gauge",
        "1 for a database of the set that is gone from the server (its backups are kept).",
        |d| d.gone.then_some(1.0),
    ),
    (
        "pgkeep_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last successful backup finished.",
        |d| d.last_success,
    ),
    (
        "pgkeep_last_attempt_timestamp_seconds",
        "gauge",
        "Unix time the last backup attempt ended.",
        |d| d.last_attempt,
    ),
    (
        "pgkeep_last_attempt_success",
        "gauge",
        "1 if the last backup attempt succeeded, 0 if it failed.",
        |d| d.last_attempt_ok.map(|ok| if ok { 1.0 } else { 0.0 }),
    ),
    (
        "pgkeep_last_duration_seconds",
        "gauge",
        "Duration of the last successful backup.",
        |d| d.last_duration,
    ),
    (
        "pgkeep_last_stored_bytes",
        "gauge",
        "Size on storage of the last successful backup.",
        |d| d.last_stored_bytes.map(|b| b as f64),
    ),
    (
        "pgkeep_last_raw_bytes",
        "gauge",
        "Uncompressed dump size of the last successful backup.",
        |d| d.last_raw_bytes.map(|b| b as f64),
    ),
    (
        "pgkeep_next_run_timestamp_seconds",
        "gauge",
        "Unix time of the next scheduled backup.",
        |d| d.next_run,
    ),
    (
        "pgkeep_backup_running",
        "gauge",
        "1 while a backup of the database is running.",
        |d| Some(if d.running { 1.0 } else { 0.0 }),
    ),
    (
        "pgkeep_verify_newest_too_old",
        "gauge",
        "1 if the last scheduled verification found no backup as recent as the backup schedule allows.",
        |d| d.verify_newest_too_old.map(|b| if b { 1.0 } else { 0.0 }),
    ),
    (
        "pgkeep_next_verify_timestamp_seconds",
        "gauge",
        "Unix time of the next scheduled verification.",
        |d| d.next_verify,
    ),
    (
        "pgkeep_culled_backups_total",
        "counter",
        "Backups deleted by culling.",
        |d| Some(d.culled as f64),
    ),
    (
        "pgkeep_backup_retries_total",
        "counter",
        "Retries of failed scheduled and catch-up backups.",
        |d| Some(d.retries as f64),
    ),
];

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_only_when_known() {
        assert_eq!(free_bytes_text(None), "");
        assert!(free_bytes_text(Some(42)).ends_with("\npgkeep_storage_free_bytes 42\n"));
    }

    #[test]
    fn renders_labelled_series_and_escapes() {
        let mut m = Metrics::default();
        let d = m.db("sbi\"x\\y\nz");
        d.last_success = Some(1_790_000_000.0);
        d.last_attempt_ok = Some(false);
        d.last_duration = Some(1.5);
        *d.results.entry("failure").or_default() += 2;
        let text = m.render();
        assert!(
            text.contains(
                "pgkeep_last_success_timestamp_seconds{database=\"sbi\\\"x\\\\y\\nz\"} 1790000000\n"
            ),
            "{text}"
        );
        assert!(text.contains("pgkeep_last_attempt_success{database=\"sbi\\\"x\\\\y\\nz\"} 0\n"));
        assert!(
            text.contains("pgkeep_last_duration_seconds{database=\"sbi\\\"x\\\\y\\nz\"} 1.5\n")
        );
        assert!(text.contains("result=\"failure\"} 2\n"));
        assert!(text.contains("result=\"success\"} 0\n"));
        assert!(!text.contains("pgkeep_next_run_timestamp_seconds{"));
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
    }
}
