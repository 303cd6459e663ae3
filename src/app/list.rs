//! `pgkeep list`: the backups in BACKUP_DIR, newest first, as a table or JSON.

use anyhow::Result;

use crate::catalog::{self, Entry, Status};
use crate::cli::ListArgs;
use crate::config::Settings;
use crate::model::Verdict;
use crate::report;

/// The listed backups of the configured host, optionally of one database (legacy files whose
/// database is unknown included).
pub fn entries(settings: &Settings, database: Option<&str>) -> Result<Vec<Entry>> {
    let store = crate::storage::open(&settings.backup_dir, &settings.s3)?;
    let mut entries = catalog::list(&*store, Some(&settings.host))?;
    if let Some(db) = database {
        entries.retain(|e| e.database.as_deref() == Some(db) || e.database.is_none());
    }
    Ok(entries)
}

pub fn run(args: &ListArgs, settings: &Settings) -> Result<()> {
    let entries = entries(settings, args.database.as_deref())?;
    let copies = copies(settings)?;
    if args.json {
        let mut value = serde_json::to_value(&entries)?;
        if let (Some((to, copied)), Some(list)) = (&copies, value.as_array_mut()) {
            // Where each backup is: the backup directory, and copy_to when it holds a copy.
            for (v, e) in list.iter_mut().zip(&entries) {
                let mut at = vec![settings.backup_dir.display().to_string()];
                if copied.contains(&e.file) {
                    at.push(to.clone());
                }
                v["locations"] = serde_json::json!(at);
            }
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let mut text = render_list(&entries);
    if let Some((to, copied)) = &copies {
        let n = entries.iter().filter(|e| copied.contains(&e.file)).count();
        let missing: Vec<&str> = entries
            .iter()
            .filter(|e| e.status == Status::Good && !copied.contains(&e.file))
            .map(|e| e.id.as_str())
            .collect();
        text.push_str(&format!("{n} of these are also in {to} (copy_to)"));
        if !missing.is_empty() {
            text.push_str(&format!("; not copied: {}", missing.join(", ")));
        }
        text.push('\n');
    }
    print!("{text}");
    Ok(())
}

/// The data files of the good backups in `copy_to`, with its location (`None` without one).
fn copies(settings: &Settings) -> Result<Option<(String, std::collections::BTreeSet<String>)>> {
    let Some(to) = &settings.copy_to else {
        return Ok(None);
    };
    // An unreachable copy location does not hide the backups: the table then says so.
    let files = crate::storage::open(to, &settings.s3)
        .map_err(crate::copy::CopyError::from)
        .and_then(|store| crate::copy::copied_files(&*store, &settings.host));
    match files {
        Ok(files) => Ok(Some((to.display().to_string(), files))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the copies in copy_to");
            Ok(Some((
                format!("{} (unreadable: {e})", to.display()),
                Default::default(),
            )))
        }
    }
}

/// The human table of `pgkeep list`.
pub fn render_list(entries: &[Entry]) -> String {
    let mut rows: Vec<[String; 8]> = vec![[
        format!(
            "TIME ({})",
            report::zone_label(&jiff::tz::TimeZone::UTC, "UTC")
        ),
        "DATABASE".into(),
        "FORMAT".into(),
        "SIZE".into(),
        "DURATION".into(),
        "STATUS".into(),
        "VERIFIED".into(),
        "ID".into(),
    ]];
    rows.extend(entries.iter().map(row));
    if entries.is_empty() {
        return "no backups\n".into();
    }
    let notes: Vec<String> = entries
        .iter()
        .flat_map(|e| {
            let unknown = e
                .database_unknown
                .as_ref()
                .map(|why| format!("database ? of {}: {why}\n", e.id));
            let unreadable = e.unreadable.as_ref().map(|why| {
                format!(
                    "unreadable manifest of {}: {why}; it is never culled (fix or remove {}{} by hand)\n",
                    e.id,
                    e.file,
                    catalog::MANIFEST_SUFFIX
                )
            });
            unknown.into_iter().chain(unreadable)
        })
        .collect();
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if !notes.is_empty() {
        out.push('\n');
        out.extend(notes);
    }
    out
}

/// The table row of one entry.
fn row(e: &Entry) -> [String; 8] {
    let sealed = if catalog::is_encrypted(&e.file) {
        "+age"
    } else {
        ""
    };
    let format = match (e.format, e.compression) {
        (crate::model::Format::Custom, _) => "custom".to_string(),
        (_, c) => format!(
            "plain+{}",
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ),
    };
    [
        e.time
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        match e.database.as_deref() {
            Some(catalog::GLOBALS) => "(globals)".into(),
            Some(d) => d.to_string(),
            None => "?".into(),
        },
        format!("{}{sealed}", format.replace("plain+none", "plain")),
        report::human_bytes(e.stored_bytes),
        e.duration_seconds
            .map_or("-".into(), |d| format!("{d:.1}s")),
        match e.status {
            Status::Good if e.verification.as_ref().is_some_and(|v| v.is_bad()) => "bad".into(),
            Status::Good => "good".into(),
            Status::Legacy if e.verification.is_some() => "legacy".into(),
            Status::Legacy => "legacy (unverified)".into(),
            Status::Uncommitted => "uncommitted (no manifest)".into(),
            Status::Unreadable => "unreadable".into(),
        },
        match &e.verification {
            None => "-".into(),
            Some(v) => format!(
                "{} {}",
                match v.verdict() {
                    Verdict::Good => "ok".to_string(),
                    Verdict::Bad => format!("FAILED ({})", v.failure.as_deref().unwrap_or("?")),
                    Verdict::Inconclusive =>
                        format!("inconclusive ({})", v.failure.as_deref().unwrap_or("?")),
                },
                v.checked_at
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .strftime("%Y-%m-%d %H:%M")
            ),
        },
        e.id.clone(),
    ]
}
