//! Which backups to keep and which to cull: a pure function of (backups, now, policy) that gives
//! every backup a decision with the rule behind it, so culling is predictable, testable and can
//! never empty a backup directory because backups kept failing.
//!
//! Rules:
//! - committed backups that are not verified `bad` (good, unverified and inconclusive ones alike)
//!   count toward the floor (`keep_last`) and anchor the age window; legacy files of the old pod
//!   count toward the age window and the tiers, never the floor;
//! - a backup verified `bad` counts toward no floor and is culled by the age rules like any
//!   other, never earlier, so a wave of bad verdicts cannot empty the directory;
//! - the newest `keep_last` good backups are never culled (the floor);
//! - the newest backup that passed verification is never culled;
//! - age windows are measured from the newest good backup, not from the wall clock, so a streak
//!   of failed runs ages nothing out;
//! - a backup dated after `now` is never culled (the clock or the file is off: a person decides);
//! - a policy that keeps nothing is refused.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::model::{Policy, PolicyError, Verdict as Proof};

/// What kind of backup an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Committed by pgkeep (a manifest exists).
    Good,
    /// A file of the old backup pod without manifest: never verified.
    Legacy,
}

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub id: String,
    pub time: Timestamp,
    pub kind: Kind,
    /// Verdict of the last verification: `None` never verified.
    pub verified: Option<Proof>,
}

/// A rule that keeps a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Keep {
    /// Dated after now: never culled.
    Future,
    /// One of the newest `keep_last` good backups.
    Last {
        rank: u32,
        of: u32,
    },
    /// The newest backup that passed verification.
    NewestVerified,
    /// Within `keep_days` of the newest good backup (or of the newest legacy file when there is
    /// no good backup yet).
    Days {
        days: u32,
        from: Anchor,
    },
    Daily {
        period: String,
    },
    Weekly {
        period: String,
    },
    Monthly {
        period: String,
    },
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::Future => write!(f, "dated in the future: never culled"),
            Keep::Last { rank, of } => write!(f, "keep_last: newest good {rank} of {of}"),
            Keep::NewestVerified => write!(f, "newest verified backup"),
            Keep::Days { days, from } => write!(f, "keep_days: within {days} days of the {from}"),
            Keep::Daily { period } => write!(f, "keep_daily: {period}"),
            Keep::Weekly { period } => write!(f, "keep_weekly: {period}"),
            Keep::Monthly { period } => write!(f, "keep_monthly: {period}"),
        }
    }
}

/// What the age window is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    NewestGood,
    /// No good backup exists: the newest legacy file of the old pod.
    NewestLegacy,
    /// Every backup is verified bad: the newest of them.
    NewestBad,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Anchor::NewestGood => "newest good backup",
            Anchor::NewestLegacy => "newest legacy file (no good backup yet)",
            Anchor::NewestBad => "newest backup (every one is verified bad)",
        })
    }
}

/// Why a backup is culled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Cull {
    /// Older than `keep_days` before the newest good backup and kept by no other rule.
    Expired {
        days: u32,
        anchor: Timestamp,
        from: Anchor,
    },
    /// No rule keeps it (the age window is off).
    NotKept,
}

impl fmt::Display for Cull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cull::Expired { days, anchor, from } => write!(
                f,
                "older than {days} days before the {from} ({}); no rule keeps it",
                anchor.round(jiff::Unit::Second).unwrap_or(*anchor)
            ),
            Cull::NotKept => write!(f, "no rule keeps it"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Verdict {
    Keep { rules: Vec<Keep> },
    Delete { reason: Cull },
}

impl Verdict {
    pub fn keep(&self) -> bool {
        matches!(self, Verdict::Keep { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Keep { rules } => {
                let parts: Vec<String> = rules.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join("; "))
            }
            Verdict::Delete { reason } => reason.fmt(f),
        }
    }
}

/// The decision for one backup, in the order of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub time: Timestamp,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Decide for every backup of ONE database whether it is kept or culled, and why.
/// `tz` is the zone in which days, weeks and months of the tiers are counted.
pub fn decide(
    backups: &[Backup],
    now: Timestamp,
    policy: &Policy,
    tz: &TimeZone,
) -> Result<Vec<Decision>, PolicyError> {
    policy.validate()?;
    let n = backups.len();
    let future = |b: &Backup| b.time > now;
    // Counts toward the floor and anchors the age window.
    let good = |b: &Backup| b.kind == Kind::Good && !bad(b) && !future(b);
    // Counts toward the age window and the tiers (a bad backup too: it is culled by age like
    // any other, never earlier).
    let eligible = |b: &Backup| !future(b);

    // Newest first; ties broken by id so the result does not depend on input order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        backups[b]
            .time
            .cmp(&backups[a].time)
            .then_with(|| backups[b].id.cmp(&backups[a].id))
    });

    let mut rules: Vec<Vec<Keep>> = vec![Vec::new(); n];
    for &i in &order {
        if future(&backups[i]) {
            rules[i].push(Keep::Future);
        }
    }

    for (rank, &i) in order
        .iter()
        .filter(|&&i| good(&backups[i]))
        .take(policy.keep_last as usize)
        .enumerate()
    {
        rules[i].push(Keep::Last {
            rank: rank as u32 + 1,
            of: policy.keep_last,
        });
    }

    if let Some(&i) = order.iter().find(|&&i| {
        let b = &backups[i];
        b.kind == Kind::Good && b.verified == Some(Proof::Good) && !future(b)
    }) {
        rules[i].push(Keep::NewestVerified);
    }

    let anchor = order
        .iter()
        .map(|&i| &backups[i])
        .find(|b| good(b))
        .map(|b| (b.time, Anchor::NewestGood))
        .or_else(|| {
            order
                .iter()
                .map(|&i| &backups[i])
                .find(|b| eligible(b) && !bad(b))
                .map(|b| (b.time, Anchor::NewestLegacy))
        })
        .or_else(|| {
            order
                .iter()
                .map(|&i| &backups[i])
                .find(|b| eligible(b))
                .map(|b| (b.time, Anchor::NewestBad))
        });

    if policy.keep_days > 0
        && let Some((anchor, from)) = anchor
    {
        let window = jiff::SignedDuration::from_hours(24 * i64::from(policy.keep_days));
        for &i in &order {
            let b = &backups[i];
            if eligible(b) && anchor.duration_since(b.time) <= window {
                rules[i].push(Keep::Days {
                    days: policy.keep_days,
                    from,
                });
            }
        }
    }

    keep_tiers(backups, &order, &eligible, policy, tz, &mut rules);
    Ok(backups
        .iter()
        .zip(rules)
        .map(|(b, rules)| Decision {
            id: b.id.clone(),
            time: b.time,
            verdict: verdict(rules, policy, anchor),
        })
        .collect())
}

/// The calendar tiers: the newest backup of each of the last N days, ISO weeks and months
/// that have backups (a good backup represents its period before a legacy file does).
fn keep_tiers(
    backups: &[Backup],
    order: &[usize],
    eligible: &dyn Fn(&Backup) -> bool,
    policy: &Policy,
    tz: &TimeZone,
    rules: &mut [Vec<Keep>],
) {
    type PeriodOf = fn(&jiff::Zoned) -> String;
    type MakeKeep = fn(String) -> Keep;
    let tiers: [(u32, PeriodOf, MakeKeep); 3] = [
        (
            policy.keep_daily,
            |z| z.strftime("%Y-%m-%d").to_string(),
            |period| Keep::Daily { period },
        ),
        (
            policy.keep_weekly,
            |z| {
                let w = z.date().iso_week_date();
                format!("{:04}-W{:02}", w.year(), w.week())
            },
            |period| Keep::Weekly { period },
        ),
        (
            policy.keep_monthly,
            |z| z.strftime("%Y-%m").to_string(),
            |period| Keep::Monthly { period },
        ),
    ];
    for (count, key, make) in tiers {
        if count == 0 {
            continue;
        }
        // Periods newest first, each with its backups newest first.
        let mut periods: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in order.iter().filter(|&&i| eligible(&backups[i])) {
            let k = key(&backups[i].time.to_zoned(tz.clone()));
            match periods.last_mut() {
                Some((last, members)) if *last == k => members.push(i),
                _ => periods.push((k, vec![i])),
            }
        }
        for (period, members) in periods.into_iter().take(count as usize) {
            // The newest good backup of the period represents it; else the newest legacy file;
            // a bad backup only when the period has nothing else.
            let pick = members
                .iter()
                .copied()
                .find(|&i| backups[i].kind == Kind::Good && !bad(&backups[i]))
                .or_else(|| members.iter().copied().find(|&i| !bad(&backups[i])))
                .unwrap_or(members[0]);
            rules[pick].push(make(period));
        }
    }
}

/// Verified `bad`: its last verification proved it is not a restorable backup.
fn bad(b: &Backup) -> bool {
    b.verified == Some(Proof::Bad)
}

/// Keep by the rules that matched, else cull with the reason.
fn verdict(rules: Vec<Keep>, policy: &Policy, anchor: Option<(Timestamp, Anchor)>) -> Verdict {
    if !rules.is_empty() {
        Verdict::Keep { rules }
    } else if let (true, Some((anchor, from))) = (policy.keep_days > 0, anchor) {
        Verdict::Delete {
            reason: Cull::Expired {
                days: policy.keep_days,
                anchor,
                from,
            },
        }
    } else {
        Verdict::Delete {
            reason: Cull::NotKept,
        }
    }
}

#[cfg(test)]
mod tests;
