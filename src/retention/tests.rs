//! Table-driven retention scenarios: each pins, for a set of backups, which are kept and which
//! are culled. `expect` lists one letter per backup IN INPUT ORDER: K keep, D delete.

use super::*;
use crate::model::Verdict as Proof;

fn ts(s: &str) -> Timestamp {
    let s = if s.len() == 16 {
        format!("{s}:00Z")
    } else {
        format!("{s}Z")
    };
    s.parse().unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

fn b(time: &str, kind: char) -> Backup {
    let (kind, verified) = match kind {
        'g' => (Kind::Good, None),
        'v' => (Kind::Good, Some(Proof::Good)),
        'x' => (Kind::Good, Some(Proof::Bad)),
        'i' => (Kind::Good, Some(Proof::Inconclusive)),
        'l' => (Kind::Legacy, None),
        other => panic!("unknown kind {other}"),
    };
    Backup {
        id: format!("{}-{time}", if kind == Kind::Good { "g" } else { "l" }),
        time: ts(time),
        kind,
        verified,
    }
}

/// `count` backups of `kind`, newest first, starting at `newest`, `step_hours` apart.
fn series(newest: &str, count: usize, step_hours: i64, kind: char) -> Vec<Backup> {
    let t0 = ts(newest);
    (0..count)
        .map(|i| {
            let t = t0 - jiff::SignedDuration::from_hours(step_hours * i as i64);
            let s = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            b(&s, kind)
        })
        .collect()
}

fn cat(parts: Vec<Vec<Backup>>) -> Vec<Backup> {
    parts.into_iter().flatten().collect()
}

fn policy(days: u32, last: u32, daily: u32, weekly: u32, monthly: u32) -> Policy {
    Policy {
        keep_days: days,
        keep_last: last,
        keep_daily: daily,
        keep_weekly: weekly,
        keep_monthly: monthly,
    }
}

const DEFAULT: Policy = Policy {
    keep_days: 10,
    keep_last: 3,
    keep_daily: 0,
    keep_weekly: 0,
    keep_monthly: 0,
};

struct Case {
    name: &'static str,
    policy: Policy,
    now: &'static str,
    tz: &'static str,
    backups: Vec<Backup>,
    expect: String,
}

fn k(n: usize) -> String {
    "K".repeat(n)
}
fn d(n: usize) -> String {
    "D".repeat(n)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "default policy, 15 daily good: 11 within 10 days kept",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 15, 24, 'g'),
            expect: k(11) + &d(4),
        },
        Case {
            name: "two good backups only: both kept",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 2, 24, 'g'),
            expect: k(2),
        },
        Case {
            name: "failed streak of 20 days: nothing ages out (window from newest good)",
            policy: DEFAULT,
            now: "2026-12-15T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 11, 24, 'g'),
            expect: k(11),
        },
        Case {
            name: "failed streak of 40 days with old backups: only those 10 days before newest go",
            policy: DEFAULT,
            now: "2027-01-05T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 14, 24, 'g'),
            expect: k(11) + &d(3),
        },
        Case {
            name: "keep_days off, keep_last 3: only the floor remains",
            policy: policy(0, 3, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 10, 24, 'g'),
            expect: k(3) + &d(7),
        },
        Case {
            name: "floor beats a short window: keep_last 5, keep_days 1",
            policy: policy(1, 5, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 10, 24, 'g'),
            expect: k(5) + &d(5),
        },
        Case {
            name: "floor protects sparse weekly backups far older than the window",
            policy: policy(1, 3, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 6, 24 * 7, 'g'),
            expect: k(3) + &d(3),
        },
        Case {
            name: "keep_last larger than the number of backups: all kept",
            policy: policy(0, 30, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 8, 24, 'g'),
            expect: k(8),
        },
        Case {
            name: "legacy never counts toward the floor; newer legacy stays within the window",
            policy: policy(1, 3, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: cat(vec![
                series("2026-11-25T01:00", 5, 24, 'l'),
                series("2026-11-19T01:00", 4, 24, 'g'),
            ]),
            expect: k(5) + &k(3) + &d(1),
        },
        Case {
            name: "legacy only, default policy: old pod's 10 days, measured from the newest file",
            policy: DEFAULT,
            now: "2026-12-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 15, 24, 'l'),
            expect: k(11) + &d(4),
        },
        Case {
            name: "legacy only with the age window off: the floor does not protect legacy",
            policy: policy(0, 3, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 5, 24, 'l'),
            expect: d(5),
        },
        Case {
            name: "old pod files older than the window behind new good backups are culled",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: cat(vec![
                series("2026-11-25T01:00", 5, 24, 'g'),
                series("2026-11-20T00:00", 10, 24, 'l'),
            ]),
            expect: k(5) + &k(5) + &d(5),
        },
        Case {
            name: "future-dated good backup kept and takes no floor slot",
            policy: policy(0, 1, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: cat(vec![
                vec![b("2026-11-27T01:00", 'g')],
                series("2026-11-25T01:00", 3, 24, 'g'),
            ]),
            expect: "KKDD".into(),
        },
        Case {
            name: "future-dated legacy file is never culled",
            policy: policy(0, 1, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![b("2027-03-01T01:00", 'l'), b("2026-11-25T01:00", 'g')],
            expect: "KK".into(),
        },
        Case {
            name: "a far-future backup does not anchor the window",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: cat(vec![
                vec![b("2028-01-01T00:00", 'g')],
                series("2026-11-25T01:00", 12, 24, 'g'),
            ]),
            expect: k(1) + &k(11) + &d(1),
        },
        Case {
            name: "no backups: nothing to decide",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![],
            expect: String::new(),
        },
        Case {
            name: "newest backup verified bad (no age window): outside the floor, which moves to the next three",
            policy: policy(0, 3, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: cat(vec![
                vec![b("2026-11-25T01:00", 'x')],
                series("2026-11-24T01:00", 4, 24, 'g'),
            ]),
            expect: "DKKKD".into(),
        },
        Case {
            name: "a bad backup inside the window is kept by the age rule like any other",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'g'),
                b("2026-11-24T01:00", 'x'),
                b("2026-11-23T01:00", 'g'),
            ],
            expect: "KKK".into(),
        },
        Case {
            name: "a bad backup counts toward no floor: the floor reaches past it",
            policy: policy(1, 2, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'g'),
                b("2026-11-20T01:00", 'x'),
                b("2026-11-19T01:00", 'g'),
                b("2026-11-18T01:00", 'g'),
            ],
            expect: "KDKD".into(),
        },
        Case {
            name: "inconclusive backups count toward the floor exactly like unverified ones",
            policy: policy(1, 2, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'i'),
                b("2026-11-20T01:00", 'i'),
                b("2026-11-19T01:00", 'g'),
            ],
            expect: "KKD".into(),
        },
        Case {
            name: "inconclusive backups anchor the window like unverified ones",
            policy: policy(2, 0, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'x'),
                b("2026-11-15T01:00", 'i'),
                b("2026-11-14T01:00", 'g'),
                b("2026-11-12T01:00", 'i'),
            ],
            expect: "KKKD".into(),
        },
        Case {
            name: "a daily tier takes the good backup of a day before a bad one",
            policy: policy(0, 1, 3, 0, 0),
            now: "2026-11-25T23:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T20:00", 'g'),
                b("2026-11-24T20:00", 'x'),
                b("2026-11-24T10:00", 'g'),
                b("2026-11-23T20:00", 'x'),
                b("2026-11-22T20:00", 'g'),
            ],
            expect: "KDKKD".into(),
        },
        Case {
            name: "a bad newest backup does not anchor the window, and is kept while young",
            policy: policy(2, 0, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'x'),
                b("2026-11-15T01:00", 'g'),
                b("2026-11-14T01:00", 'g'),
                b("2026-11-12T01:00", 'g'),
            ],
            expect: "KKKD".into(),
        },
        Case {
            name: "the newest verified backup is kept although old",
            policy: policy(1, 1, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'g'),
                b("2026-11-20T01:00", 'g'),
                b("2026-11-18T01:00", 'v'),
                b("2026-11-17T01:00", 'v'),
                b("2026-11-16T01:00", 'g'),
            ],
            expect: "KDKDD".into(),
        },
        Case {
            name: "all backups verified bad: the age rule keeps them, a wave of bad verdicts empties nothing",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 3, 24, 'x'),
            expect: k(3),
        },
        Case {
            name: "all backups verified bad: those older than the window go, as good ones would",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: series("2026-11-25T01:00", 14, 24, 'x'),
            expect: k(11) + &d(3),
        },
        Case {
            name: "hourly backups, keep_daily 7: the newest of each of the last 7 days",
            policy: policy(0, 1, 7, 0, 0),
            now: "2026-11-25T23:30",
            tz: "UTC",
            // 10 days x 24 hourly, newest 2026-11-25T23:00.
            backups: series("2026-11-25T23:00", 240, 1, 'g'),
            expect: (0..240)
                .map(|i| if i % 24 == 0 && i / 24 < 7 { 'K' } else { 'D' })
                .collect(),
        },
        Case {
            name: "daily tier prefers the good backup of a day over a newer legacy file",
            policy: policy(0, 0, 2, 0, 0),
            now: "2026-11-25T23:59",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T23:00", 'l'),
                b("2026-11-25T01:00", 'g'),
                b("2026-11-24T23:00", 'l'),
                b("2026-11-23T23:00", 'l'),
            ],
            expect: "DKKD".into(),
        },
        Case {
            name: "a day with only legacy files is represented by its newest one",
            policy: policy(0, 0, 3, 0, 0),
            now: "2026-11-25T23:59",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'g'),
                b("2026-11-24T05:00", 'l'),
                b("2026-11-24T01:00", 'l'),
                b("2026-11-23T01:00", 'g'),
                b("2026-11-22T01:00", 'g'),
            ],
            expect: "KKDKD".into(),
        },
        Case {
            name: "daily tier counts days that have backups, skipping empty days",
            policy: policy(0, 0, 3, 0, 0),
            now: "2026-11-25T23:59",
            tz: "UTC",
            backups: vec![
                b("2026-11-20T01:00", 'g'),
                b("2026-11-09T01:00", 'g'),
                b("2026-11-05T01:00", 'g'),
                b("2026-11-01T01:00", 'g'),
            ],
            expect: "KKKD".into(),
        },
        Case {
            name: "keep_weekly 4 over 60 daily backups",
            policy: policy(0, 0, 0, 4, 0),
            // 2026-11-29 is a Sunday: the newest of each ISO week is a Sunday.
            now: "2026-11-29T23:59",
            tz: "UTC",
            backups: series("2026-11-29T01:00", 60, 24, 'g'),
            expect: (0..60)
                .map(|i| if i % 7 == 0 && i / 7 < 4 { 'K' } else { 'D' })
                .collect(),
        },
        Case {
            name: "keep_monthly 3 over 120 daily backups",
            policy: policy(0, 0, 0, 0, 3),
            now: "2026-11-30T23:59",
            tz: "UTC",
            backups: series("2026-11-30T01:00", 120, 24, 'g'),
            // Newest of November (11-30), October (10-31), September (09-30).
            expect: (0..120)
                .map(|i| if [0, 30, 61].contains(&i) { 'K' } else { 'D' })
                .collect(),
        },
        Case {
            name: "tiers combined: 7 daily, 4 weekly, 6 monthly over 200 days",
            policy: policy(0, 0, 7, 4, 6),
            now: "2026-11-29T23:59",
            tz: "UTC",
            backups: series("2026-11-29T01:00", 200, 24, 'g'),
            expect: {
                let t0 = ts("2026-11-29T01:00");
                (0..200)
                    .map(|i| {
                        let t =
                            (t0 - jiff::SignedDuration::from_hours(24 * i)).to_zoned(TimeZone::UTC);
                        let daily = i < 7;
                        // Sundays of the 4 newest ISO weeks.
                        let weekly = i % 7 == 0 && i / 7 < 4;
                        // Last day of each of the 6 newest months (Nov counts 11-29).
                        let last_of_month = (t.clone() + jiff::Span::new().days(1)).day() == 1;
                        let monthly =
                            (i == 0 || last_of_month) && t.date() >= jiff::civil::date(2026, 6, 30);
                        if daily || weekly || monthly { 'K' } else { 'D' }
                    })
                    .collect()
            },
        },
        Case {
            name: "days of the daily tier are counted in UTC",
            policy: policy(0, 0, 2, 0, 0),
            now: "2026-01-11T12:00",
            tz: "UTC",
            backups: vec![
                b("2026-01-10T23:30", 'g'),
                b("2026-01-10T22:30", 'g'),
                b("2026-01-09T12:00", 'g'),
            ],
            expect: "KDK".into(),
        },
        Case {
            name: "days of the daily tier are counted in the configured zone (Berlin)",
            policy: policy(0, 0, 2, 0, 0),
            now: "2026-01-11T12:00",
            tz: "Europe/Berlin",
            backups: vec![
                b("2026-01-10T23:30", 'g'),
                b("2026-01-10T22:30", 'g'),
                b("2026-01-09T12:00", 'g'),
            ],
            expect: "KKD".into(),
        },
        Case {
            name: "ISO week across New Year is one week",
            policy: policy(0, 0, 0, 2, 0),
            now: "2027-01-02T23:59",
            tz: "UTC",
            backups: vec![
                b("2027-01-01T01:00", 'g'),
                b("2026-12-31T01:00", 'g'),
                b("2026-12-27T01:00", 'g'),
                b("2026-12-26T01:00", 'g'),
            ],
            expect: "KDKD".into(),
        },
        Case {
            name: "window boundary: exactly keep_days before the newest is kept, one second more is not",
            policy: policy(10, 0, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00:00", 'g'),
                b("2026-11-15T01:00:00", 'g'),
                b("2026-11-15T00:59:59", 'g'),
            ],
            expect: "KKD".into(),
        },
        Case {
            name: "two backups at the same second: both in the floor",
            policy: policy(0, 2, 0, 0, 0),
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'g'),
                Backup {
                    id: "other".into(),
                    ..b("2026-11-25T01:00", 'g')
                },
                b("2026-11-24T01:00", 'g'),
            ],
            expect: "KKD".into(),
        },
        Case {
            name: "twice-daily backups with default policy: 10 days of them plus the newest",
            policy: DEFAULT,
            now: "2026-11-25T14:00",
            tz: "UTC",
            backups: series("2026-11-25T13:00", 30, 12, 'g'),
            expect: k(21) + &d(9),
        },
        Case {
            name: "verified, unverified and failed mixed with the default policy",
            policy: DEFAULT,
            now: "2026-11-25T02:00",
            tz: "UTC",
            backups: vec![
                b("2026-11-25T01:00", 'x'),
                b("2026-11-24T01:00", 'g'),
                b("2026-11-01T01:00", 'v'),
                b("2026-10-31T01:00", 'g'),
                b("2026-10-30T01:00", 'g'),
                b("2026-10-29T01:00", 'g'),
            ],
            expect: "KKKKDD".into(),
        },
    ]
}

#[test]
fn retention_scenarios() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} scenarios", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let tz = TimeZone::get(c.tz).unwrap();
        let got = decide(&c.backups, ts(c.now), &c.policy, &tz).unwrap();
        assert_eq!(got.len(), c.backups.len(), "{}", c.name);
        let letters: String = got
            .iter()
            .map(|d| if d.verdict.keep() { 'K' } else { 'D' })
            .collect();
        if letters != c.expect {
            let detail: Vec<String> = got
                .iter()
                .map(|d| format!("  {} {}", d.id, d.verdict))
                .collect();
            failures.push(format!(
                "{}\n  expected {}\n  got      {}\n{}",
                c.name,
                c.expect,
                letters,
                detail.join("\n")
            ));
        }
        // The decision never depends on the order of the input.
        let mut reversed = c.backups.clone();
        reversed.reverse();
        let mut again = decide(&reversed, ts(c.now), &c.policy, &tz).unwrap();
        again.reverse();
        assert_eq!(again, got, "{}: order dependence", c.name);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn an_empty_policy_is_refused_even_without_backups() {
    let p = policy(0, 0, 0, 0, 0);
    assert_eq!(
        decide(&[], ts("2026-11-25T00:00"), &p, &TimeZone::UTC),
        Err(PolicyError::Empty)
    );
    let backups = series("2026-11-25T01:00", 3, 24, 'g');
    assert_eq!(
        decide(&backups, ts("2026-11-25T02:00"), &p, &TimeZone::UTC),
        Err(PolicyError::Empty)
    );
    assert!(policy(0, 0, 0, 0, 1).validate().is_ok());
}

#[test]
fn twenty_failed_days_in_a_row_delete_no_good_backup() {
    // Five good daily backups, then the database breaks: each day "now" advances and retention
    // runs again (the daemon never culls after a failure, but even if it did, nothing goes).
    let backups = series("2026-11-05T01:00", 5, 24, 'g');
    for day in 1..=20 {
        let now = ts("2026-11-05T02:00") + jiff::SignedDuration::from_hours(24 * day);
        for p in [DEFAULT, policy(1, 0, 0, 0, 0), policy(0, 3, 0, 0, 0)] {
            let got = decide(&backups, now, &p, &TimeZone::UTC).unwrap();
            let culled: Vec<&str> = got
                .iter()
                .filter(|d| !d.verdict.keep())
                .map(|d| d.id.as_str())
                .collect();
            let day0 = decide(&backups, ts("2026-11-05T02:00"), &p, &TimeZone::UTC).unwrap();
            let culled_day0: Vec<&str> = day0
                .iter()
                .filter(|d| !d.verdict.keep())
                .map(|d| d.id.as_str())
                .collect();
            assert_eq!(
                culled, culled_day0,
                "day {day}, {p}: a failure streak changed what is culled"
            );
            if p == DEFAULT {
                assert!(culled.is_empty(), "day {day}: {culled:?}");
            }
            assert!(got[0].verdict.keep(), "the newest good backup is kept");
        }
    }
}

#[test]
fn reasons_are_named() {
    let backups = vec![
        b("2026-11-26T01:00", 'g'),
        b("2026-11-25T01:00", 'v'),
        b("2026-11-24T01:00", 'x'),
        b("2026-11-23T01:00", 'g'),
        b("2026-11-01T01:00", 'l'),
    ];
    let got = decide(
        &backups,
        ts("2026-11-25T12:00"),
        &policy(10, 1, 0, 0, 0),
        &TimeZone::UTC,
    )
    .unwrap();
    let text: Vec<String> = got
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                if d.verdict.keep() { "keep" } else { "delete" },
                d.verdict
            )
        })
        .collect();
    assert_eq!(
        text,
        vec![
            "keep dated in the future: never culled",
            "keep keep_last: newest good 1 of 1; newest verified backup; keep_days: within 10 days of the newest good backup",
            "keep keep_days: within 10 days of the newest good backup",
            "keep keep_days: within 10 days of the newest good backup",
            "delete older than 10 days before the newest good backup (2026-11-25T01:00:00Z); no rule keeps it",
        ]
    );
    let legacy_only = decide(
        &series("2026-11-25T01:00", 12, 24, 'l'),
        ts("2026-11-25T12:00"),
        &DEFAULT,
        &TimeZone::UTC,
    )
    .unwrap();
    assert_eq!(
        legacy_only[11].verdict.to_string(),
        "older than 10 days before the newest legacy file (no good backup yet) (2026-11-25T01:00:00Z); no rule keeps it"
    );
    let json = serde_json::to_value(&got[4]).unwrap();
    assert_eq!(json["action"], "delete");
    assert_eq!(json["reason"]["rule"], "expired");
}
