//! `pgkeep status`: the summary of the status page in the terminal (or as JSON), read from the
//! backup location; with `--url` the running daemon adds the running backup, the next run and
//! its recent failures (from its `GET /api/v1/status`, which needs no token).

use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::catalog;
use crate::cli::StatusArgs;
use crate::config::Settings;
use crate::report::{human_bytes, human_duration};
use crate::status::{self, Database, Summary};
use crate::storage::{LocalStore, Store};

pub fn run(args: &StatusArgs, settings: &Settings) -> Result<()> {
    let mut summary = local(args, settings)?;
    if let Some(url) = &args.url {
        let remote = ask_daemon(url)?;
        merge(&mut summary, remote, args.database.is_some());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&summary, settings, args.url.is_some()));
    }
    Ok(())
}

/// The summary from the backup location: the database of `-d`, else the configured one and every
/// other database with backups there.
fn local(args: &StatusArgs, settings: &Settings) -> Result<Summary> {
    let store = LocalStore::open(&settings.backup_dir)?;
    let entries = catalog::list(&store, Some(&settings.host))?;
    let mut databases = match (&args.database, &settings.databases) {
        (None, Some(crate::model::DatabaseSet::Named(names))) => names.clone(),
        _ => vec![settings.database_or(&args.database)],
    };
    if args.database.is_none() {
        let mut others: Vec<String> = entries
            .iter()
            .filter(|e| !catalog::is_globals(e))
            .filter_map(|e| e.database.clone())
            .filter(|d| !databases.contains(d))
            .collect();
        others.sort();
        others.dedup();
        databases.extend(others);
    }
    let now = jiff::Timestamp::now();
    let dir = settings.backup_dir.display().to_string();
    Ok(status::summarize(&status::Inputs {
        entries: &entries,
        databases: &databases,
        free_bytes: store.free_bytes(),
        backup_dir: &dir,
        policy: &settings.policy,
        timezone: &settings.timezone,
        check: &settings.check,
        catalog_read_at: now,
        now,
    }))
}

/// `GET URL/api/v1/status` of a running daemon.
fn ask_daemon(url: &str) -> Result<Summary> {
    let endpoint = format!("{}/api/v1/status", url.trim_end_matches('/'));
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut response = agent
        .get(&endpoint)
        .call()
        .with_context(|| format!("cannot ask the daemon at {endpoint}"))?;
    let text = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("cannot read the answer of the daemon at {endpoint}"))?;
    serde_json::from_str(&text)
        .with_context(|| format!("the daemon at {endpoint} answered no status"))
}

/// Take from the daemon what only it knows; its databases that the location does not show are
/// added (unless one database was asked for).
fn merge(summary: &mut Summary, remote: Summary, one: bool) {
    for r in remote.databases {
        match summary.databases.iter_mut().find(|d| d.name == r.name) {
            Some(d) => {
                d.next_run = r.next_run;
                d.running = r.running;
                d.failures = r.failures;
            }
            None if !one => summary.databases.push(r),
            None => {}
        }
    }
}

fn render(summary: &Summary, settings: &Settings, asked: bool) -> String {
    let mut out = String::new();
    let free = summary
        .free_bytes
        .map_or_else(|| "unknown".into(), human_bytes);
    out.push_str(&format!("backups in {}: {free} free\n", summary.backup_dir));
    for db in &summary.databases {
        out.push('\n');
        out.push_str(&render_database(db, settings, asked));
    }
    out
}

fn at(t: jiff::Timestamp, settings: &Settings) -> String {
    crate::daemon::local(&t, settings)
}

fn render_database(db: &Database, s: &Settings, asked: bool) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut fact = |k: &str, v: String| lines.push((k.to_string(), v));
    fact(
        "newest good backup",
        match &db.newest_good {
            Some(r) => format!(
                "{} ({} ago), {}, {}",
                at(r.time, s),
                human_duration(Duration::from_secs(db.newest_good_age_seconds.unwrap_or(0))),
                human_bytes(r.stored_bytes),
                r.id
            ),
            None => "none".into(),
        },
    );
    let unknown = || "unknown (ask the daemon with --url)".to_string();
    fact(
        "next run",
        match db.next_run {
            Some(t) => at(t, s),
            None if asked => "not scheduled".into(),
            None => unknown(),
        },
    );
    fact(
        "running",
        match &db.running {
            Some(r) => format!(
                "{} ({}), started {}, {} dumped{}",
                r.id,
                r.trigger,
                at(r.started_at, s),
                human_bytes(r.dumped_bytes),
                r.expected_bytes
                    .map(|e| format!(" of about {}", human_bytes(e)))
                    .unwrap_or_default()
            ),
            None if asked => "no".into(),
            None => unknown(),
        },
    );
    let v = &db.verdicts;
    let mut verdicts = format!("{} good, {} bad, ", v.good, v.bad);
    if v.inconclusive > 0 {
        verdicts.push_str(&format!("{} inconclusive, ", v.inconclusive));
    }
    verdicts.push_str(&format!("{} unverified", v.unverified));
    if v.legacy > 0 {
        verdicts.push_str(&format!(", {} legacy", v.legacy));
    }
    if let Some((id, last)) = &db.last_verification {
        verdicts.push_str(&format!(
            "; last: {} ({}) {}, {id}: {}",
            last.label(),
            last.level,
            at(last.checked_at, s),
            last.message
        ));
    }
    fact("verification", verdicts);
    fact(
        "retention",
        match db.retention.cutoff {
            Some(c) => format!("{}, window from {}", db.retention.policy, at(c, s)),
            None => db.retention.policy.clone(),
        },
    );
    for p in &db.problems {
        fact("problem", format!("{}: {}", p.code, p.message));
    }
    for f in &db.failures {
        fact(
            "failed",
            format!("{} ({}) {}: {}", at(f.at, s), f.trigger, f.id, f.error),
        );
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("database {}\n", db.name);
    for (k, v) in lines {
        out.push_str(&format!("  {k:<width$}  {v}\n"));
    }
    out.push_str(&history(db, s));
    out
}

fn history(db: &Database, s: &Settings) -> String {
    if db.history.is_empty() {
        return format!("  no backups in the last {} days\n", status::HISTORY_DAYS);
    }
    let mut rows: Vec<[String; 6]> = vec![[
        "TIME".into(),
        "SIZE".into(),
        "DURATION".into(),
        "FORMAT".into(),
        "VERDICT".into(),
        "ID".into(),
    ]];
    for r in &db.history {
        let verdict = match r.verified.as_ref().and_then(|v| v.failure.as_ref()) {
            Some(f) => format!("{} ({f})", r.verdict.as_str()),
            None => r.verdict.as_str().to_string(),
        };
        rows.push([
            at(r.time, s),
            human_bytes(r.stored_bytes),
            r.duration_seconds
                .map_or("-".into(), |d| format!("{d:.1}s")),
            r.format.clone(),
            verdict,
            r.id.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "  history, last {} days{}:\n",
        status::HISTORY_DAYS,
        if db.older_backups > 0 {
            format!(" ({} older not shown)", db.older_backups)
        } else {
            String::new()
        }
    );
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(&format!("    {}\n", cells.join("  ").trim_end()));
    }
    out
}
