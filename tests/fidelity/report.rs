//! Carry out a plan for a built case and tabulate it: one row per format and way back, one
//! column per compared aspect (`=` equal, `≠` differs, `-` not compared), the differences
//! spelled out below the table, and the assertion that every pgkeep way brought everything
//! back.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::run::{Backup, Built, Outcome, Plan, Row, Way};
use super::snapshot::{ASPECTS, Snapshot};
use super::target::Target;

/// The rows of one case.
#[derive(Debug)]
pub struct Report {
    pub case: String,
    pub header: String,
    pub rows: Vec<Row>,
    pub took: Duration,
}

/// Back up `built` in every format of the plan and bring it back every way.
pub fn run(t: &Target, built: &Built, plan: &Plan) -> Report {
    let started = Instant::now();
    let original = Snapshot::take(t, built.db_os(), &built.db)
        .unwrap_or_else(|e| panic!("snapshot of the original: {e}"));
    let mut rows = Vec::new();
    let (formats, steps) = plan.schedule();
    let mut backups = Vec::new();
    let mut failed = Vec::new();
    for f in formats {
        let t0 = Instant::now();
        match built.backup(t, f) {
            Ok(b) => backups.push(b),
            Err(e) => failed.push((f, e, t0.elapsed())),
        }
    }
    for (f, w) in steps {
        if let Some(b) = backups.iter().find(|b| b.format == f) {
            rows.push(one_way(t, built, b, w, &original));
        } else if let Some((_, e, took)) = failed.iter().find(|(x, _, _)| *x == f) {
            rows.push(Row {
                format: f,
                way: w,
                outcome: Outcome::Failed(e.clone()),
                note: String::new(),
                took: *took,
            });
        }
    }
    let case = &built.case;
    Report {
        case: case.name.into(),
        header: format!(
            "case {} ({}): {}; built in {:.1}s; backed up as {}; load: {}",
            case.name,
            built.db,
            case.exercises,
            built.build_time.as_secs_f64(),
            built.backup_user(),
            case.admin_load
                .map_or("the database owner's objects only".to_string(), |w| {
                    format!("needs --load-as-admin ({w})")
                }),
        ),
        rows,
        took: started.elapsed(),
    }
}

/// One way back from one backup, compared with the original.
fn one_way(t: &Target, built: &Built, b: &Backup, way: Way, original: &Snapshot) -> Row {
    let started = Instant::now();
    let db = &built.db;
    let mut note = String::new();
    let compare = |name: &str| match Snapshot::take(t, OsStr::new(name), db) {
        Ok(s) => Outcome::Compared(original.diff(&s)),
        Err(e) => Outcome::Failed(e),
    };
    let outcome = match way {
        Way::Copy(jobs) => {
            let name = format!("{db}_{}_j{jobs}", b.format.tag());
            let res = built.restore(
                t,
                b,
                &["--target-database", &name, "--jobs", &jobs.to_string()],
            );
            let o = match res {
                Ok(_) => compare(&name),
                Err(e) => Outcome::Failed(e),
            };
            t.drop_database(OsStr::new(&name));
            o
        }
        Way::Swap | Way::InPlace => {
            let extra: &[&str] = if way == Way::InPlace {
                &["--in-place"]
            } else {
                &[]
            };
            match built.restore(t, b, extra) {
                Ok(_) => compare(db),
                Err(e) => Outcome::Failed(e),
            }
        }
        Way::Verify | Way::VerifyLocal => {
            Outcome::Verified(built.verify(t, b, way == Way::VerifyLocal).map(|_| ()))
        }
        Way::Runbook => {
            let name = format!("{db}_runbook");
            let (errors, first) = built.runbook(t, b, &name);
            if errors > 0 {
                note = format!(
                    "{errors} errors ignored, first: {}",
                    first.unwrap_or_default()
                );
            }
            let o = compare(&name);
            t.drop_database(OsStr::new(&name));
            o
        }
    };
    Row {
        format: b.format,
        way,
        outcome,
        note,
        took: started.elapsed(),
    }
}

impl Report {
    /// The table and the differences, as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\n{}", self.header);
        let _ = write!(s, "  {:<11} {:<34}", "format", "way");
        for a in ASPECTS {
            let _ = write!(s, " {a:<6}");
        }
        let _ = writeln!(s, " {:>6}", "took");
        for r in &self.rows {
            let _ = write!(s, "  {:<11} {:<34}", r.format.name(), r.way.name());
            let cells: Vec<String> = match &r.outcome {
                Outcome::Compared(d) => d
                    .iter()
                    .map(|d| if d.is_none() { "=" } else { "≠" }.to_string())
                    .collect(),
                Outcome::Verified(Ok(())) => vec!["verdict good".into()],
                Outcome::Verified(Err(_)) => vec!["verdict FAILED".into()],
                Outcome::Failed(_) => vec!["FAILED".into()],
            };
            let mut line = String::new();
            for c in &cells {
                let _ = write!(line, " {c:<6}");
            }
            let width = 7 * ASPECTS.len();
            let _ = writeln!(s, "{line:<width$} {:>5.1}s", r.took.as_secs_f64());
        }
        for r in &self.rows {
            let why = r.why();
            if !why.is_empty() || !r.note.is_empty() {
                let _ = writeln!(
                    s,
                    "  {} / {}: {}{}{}",
                    r.format.name(),
                    r.way.name(),
                    why,
                    if why.is_empty() || r.note.is_empty() {
                        ""
                    } else {
                        "; "
                    },
                    r.note
                );
            }
        }
        let _ = writeln!(s, "  ({:.1}s)", self.took.as_secs_f64());
        s
    }

    /// The pgkeep rows that did not bring everything back.
    pub fn unfaithful(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| !r.is_runbook() && !r.faithful())
            .collect()
    }

    /// Print the table; panic naming every pgkeep way that lost something.
    pub fn assert_faithful(&self) {
        print!("{}", self.table());
        let bad = self.unfaithful();
        assert!(
            bad.is_empty(),
            "case {}: {} of {} ways back lost something:\n{}",
            self.case,
            bad.len(),
            self.rows.iter().filter(|r| !r.is_runbook()).count(),
            bad.iter()
                .map(|r| format!("  {} / {}: {}", r.format.name(), r.way.name(), r.why()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
