//! The loader's tests: layers and their precedence, the old pod's variables, URIs, errors that
//! name key and source without leaking secrets, and every typed group.

use std::path::PathBuf;

use super::*;

fn inputs(env: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Inputs {
    Inputs {
        config_file: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        flags: flags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    }
}

#[test]
fn old_pod_variables_are_understood() {
    let s = Settings::load(&inputs(
        &[
            ("DATABASE_SERVICE_NAME", "postgresql"),
            ("POSTGRESQL_USER", "sbi"),
            ("POSTGRESQL_PASSWORD", "s3cr:et@"),
            ("POSTGRESQL_DATABASE", "sbidb"),
            ("BACKUP_DIR", "/backups/"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(s.host, "postgresql");
    assert_eq!(s.user, "sbi");
    assert_eq!(s.password.as_ref().unwrap().expose(), "s3cr:et@");
    assert_eq!(s.database, "sbidb");
    assert_eq!(s.backup_dir, PathBuf::from("/backups/"));
    assert_eq!(s.source("user"), Source::Env("POSTGRESQL_USER".into()));
}

#[test]
fn precedence_pgkeep_then_seed_then_libpq_then_flags_win() {
    let s = Settings::load(&inputs(
        &[
            ("PGUSER", "libpq"),
            ("POSTGRESQL_USER", "seed"),
            ("PGHOST", "libpqhost"),
            ("PGKEEP_DATABASE", "mine"),
            ("POSTGRESQL_DATABASE", "seeddb"),
            ("PGPORT", "6543"),
        ],
        &[("host", "flaghost")],
    ))
    .unwrap();
    assert_eq!(s.user, "seed");
    assert_eq!(s.database, "mine");
    assert_eq!(s.host, "flaghost");
    assert_eq!(s.source("host"), Source::Flag("host".into()));
    assert_eq!(s.port, 6543);
}

#[test]
fn uri_parts_fill_keys_below_separate_keys() {
    let s = Settings::load(&inputs(
        &[
            (
                "PGKEEP_URI",
                "postgresql://u%40x:p%3Aw%40d@db.example:5433/app%20db?sslmode=require",
            ),
            ("PGKEEP_PORT", "7000"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(s.user, "u@x");
    assert_eq!(s.password.unwrap().expose(), "p:w@d");
    assert_eq!(s.host, "db.example");
    assert_eq!(s.port, 7000);
    assert_eq!(s.database, "app db");
    assert_eq!(s.sslmode, SslMode::Require);
}

#[test]
fn bad_values_name_the_key_and_source() {
    let e = Settings::load(&inputs(&[("PGPORT", "abc")], &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value for port (from env PGPORT): `abc` is not a valid number"
    );
    let e = Settings::load(&inputs(&[], &[("compression", "lz5")])).unwrap_err();
    assert!(e.to_string().contains("--compression"), "{e}");
}

#[test]
fn uri_errors_do_not_leak_the_uri() {
    let e = Settings::load(&inputs(&[("PGKEEP_URI", "mysql://u:hunter2@h/db")], &[])).unwrap_err();
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn file_layer_and_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pgkeep.toml");
    std::fs::write(&f, "host = \"filehost\"\nport = 5999\nlevel = 9\n").unwrap();
    let mut i = inputs(&[("PGHOST", "envhost")], &[]);
    i.config_file = Some(f.clone());
    let s = Settings::load(&i).unwrap();
    assert_eq!(s.host, "envhost");
    assert_eq!(s.port, 5999);
    assert_eq!(s.level, 9);
    assert_eq!(s.source("port"), Source::File(f.clone()));

    std::fs::write(&f, "hots = \"x\"\n").unwrap();
    let e = Settings::load(&i).unwrap_err();
    assert!(e.to_string().contains("unknown key `hots`"), "{e}");
}

#[test]
fn notify_and_check_keys() {
    let s = Settings::load(&inputs(
        &[
            (
                "PGKEEP_NOTIFY_SLACK_URL",
                "https://hooks.slack.com/services/T0/B0/tok3n https://second.example/x",
            ),
            (
                "PGKEEP_NOTIFY_TEAMS_URL",
                "https://teams.example/wf?sig=sekr1t",
            ),
            (
                "PGKEEP_NOTIFY_DEADMAN_URL",
                "https://hc-ping.com/uuid-s3cret",
            ),
            ("PGKEEP_NOTIFY_ON", "always"),
            ("PGKEEP_CHECK_MAX_AGE", "1d12h"),
            ("PGKEEP_CHECK_VERIFY_MAX_AGE", "0"),
            ("PGKEEP_CHECK_MIN_FREE", "1.5G"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(s.notify.webhooks.len(), 3);
    assert!(s.notify.on_success);
    assert_eq!(s.check.max_age.as_secs(), 36 * 3600);
    assert_eq!(s.check.verify_max_age, None);
    assert_eq!(s.check.min_free, MinFree::Bytes(1610612736));
    let shown = format!("{:?} {s:?}", s.show());
    for secret in ["tok3n", "sekr1t", "s3cret"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(
        shown.contains("https://hooks.slack.com/<redacted>"),
        "{shown}"
    );
    let e = Settings::load(&inputs(
        &[("PGKEEP_NOTIFY_WEBHOOK_URL", "ftp://h/t0ken")],
        &[],
    ))
    .unwrap_err();
    assert!(!e.to_string().contains("t0ken"), "{e}");
    assert!(Settings::load(&inputs(&[("PGKEEP_CHECK_MAX_AGE", "soon")], &[])).is_err());
    assert!(Settings::load(&inputs(&[("PGKEEP_CHECK_MIN_SIZE_RATIO", "2")], &[])).is_err());
    assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
    assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86400);
    assert_eq!(parse_bytes("10MiB").unwrap(), 10 << 20);
}

#[test]
fn hooks_from_toml_arrays_and_json_env() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pgkeep.toml");
    std::fs::write(
        &f,
        "pre_restore = [[\"oc\", \"scale\", \"deployment/server\", \"--replicas=0\"], [\"sleep\", \"1\"]]\nhook_timeout = 30\n",
    )
    .unwrap();
    let mut i = inputs(
        &[(
            "PGKEEP_POST_RESTORE",
            r#"[["oc","scale","deployment/server","--replicas=1"]]"#,
        )],
        &[],
    );
    i.config_file = Some(f.clone());
    let s = Settings::load(&i).unwrap();
    assert_eq!(
        s.pre_restore,
        vec![
            vec!["oc", "scale", "deployment/server", "--replicas=0"],
            vec!["sleep", "1"]
        ]
    );
    assert_eq!(s.post_restore[0][3], "--replicas=1");
    assert_eq!(s.hook_timeout.as_secs(), 30);

    // A flat list is a mistake (one command split into several?): refused with the shape.
    std::fs::write(&f, "pre_restore = [\"oc\", \"scale\"]\n").unwrap();
    let e = Settings::load(&i).unwrap_err().to_string();
    assert!(
        e.contains("pre_restore") && e.contains("each a list of strings"),
        "{e}"
    );
    // Arrays stay refused for scalar keys.
    std::fs::write(&f, "host = [\"a\"]\n").unwrap();
    assert!(Settings::load(&i).is_err());
    let e = Settings::load(&inputs(&[("PGKEEP_PRE_RESTORE", "[[]]")], &[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no program"), "{e}");
}

#[test]
fn admin_password_is_secret() {
    let s = Settings::load(&inputs(
        &[
            ("PGKEEP_ADMIN_USER", "boss"),
            ("PGKEEP_ADMIN_PASSWORD", "hunter3"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(s.admin_user.as_deref(), Some("boss"));
    assert!(!format!("{:?}", s.show()).contains("hunter3"));
    assert!(!format!("{s:?}").contains("hunter3"));
}

#[test]
fn show_redacts_password() {
    let s = Settings::load(&inputs(&[("PGPASSWORD", "hunter2")], &[])).unwrap();
    let shown = format!("{:?}", s.show());
    assert!(!shown.contains("hunter2"));
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn verify_schedule_is_a_cron_in_the_zone_or_off() {
    let s = Settings::load(&inputs(&[("TZ", "Europe/Berlin")], &[])).unwrap();
    assert!(s.verify_schedule.is_none());
    let s = Settings::load(&inputs(
        &[
            ("TZ", "Europe/Berlin"),
            ("PGKEEP_VERIFY_SCHEDULE", "30 4 * * *"),
        ],
        &[],
    ))
    .unwrap();
    let v = s.verify_schedule.as_ref().expect("a verify schedule");
    // 04:30 in Berlin (winter) is 03:30 UTC.
    assert_eq!(
        v.next_after("2026-11-25T00:00:00Z".parse().unwrap()),
        Some("2026-11-25T03:30:00Z".parse().unwrap())
    );
    let shown = format!("{:?}", s.show());
    assert!(shown.contains("30 4 * * *"), "{shown}");
    let e = Settings::load(&inputs(&[("PGKEEP_VERIFY_SCHEDULE", "61 4 * * *")], &[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("verify_schedule"), "{e}");
}

#[test]
fn daemon_keys() {
    use crate::model::schedule::Schedule;
    let s = Settings::load(&inputs(
        &[
            ("BACKUP_PERIOD", "12h"),
            ("PGKEEP_API_TOKEN", "tok-hunter2"),
            ("PGKEEP_KEEP_DAYS", "7"),
            ("TZ", "Europe/Berlin"),
        ],
        &[],
    ))
    .unwrap();
    assert!(matches!(s.schedule, Schedule::Every { .. }));
    assert_eq!(s.policy.keep_days, 7);
    assert_eq!(s.policy.keep_last, 3);
    assert_eq!(s.timezone_name, "Europe/Berlin");
    assert_eq!(s.listen.to_string(), "0.0.0.0:8080");
    let shown = format!("{:?} {s:?}", s.show());
    assert!(!shown.contains("tok-hunter2"), "{shown}");

    // A flag schedule beats the old pod's BACKUP_PERIOD; the same layer twice is refused.
    let s = Settings::load(&inputs(
        &[("BACKUP_PERIOD", "1d")],
        &[("schedule", "0 3 * * *")],
    ))
    .unwrap();
    assert!(matches!(s.schedule, Schedule::Cron { .. }));
    let e = Settings::load(&inputs(
        &[("BACKUP_PERIOD", "1d"), ("PGKEEP_SCHEDULE", "0 3 * * *")],
        &[],
    ))
    .unwrap_err();
    assert!(e.to_string().contains("set only one"), "{e}");
    let e = Settings::load(&inputs(&[("PGKEEP_SCHEDULE", "every day")], &[])).unwrap_err();
    assert!(e.to_string().contains("PGKEEP_SCHEDULE"), "{e}");
    let e = Settings::load(&inputs(&[("PGKEEP_LISTEN", "8080")], &[])).unwrap_err();
    assert!(e.to_string().contains("listen"), "{e}");
    let e = Settings::load(&inputs(&[("PGKEEP_PARTIAL_MAX_AGE", "5s")], &[])).unwrap_err();
    assert!(e.to_string().contains("partial_max_age"), "{e}");
}

#[test]
fn one_duration_grammar_for_every_duration_key() {
    let secs = |t: &str| parse_duration(t).map(|d| d.as_secs_f64());
    for (text, want) in [
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("26h", 93_600.0),
        ("8d", 691_200.0),
        ("2w", 1_209_600.0),
        ("1d12h", 129_600.0),
        ("1h30m", 5400.0),
        ("2 days", 172_800.0),
        ("1 hour 30 minutes", 5400.0),
        ("P1D", 86_400.0),
        ("PT90M", 5400.0),
        (" 3600 ", 3600.0),
        ("0", 0.0),
        ("1.5s", 1.5),
    ] {
        assert_eq!(secs(text), Ok(want), "{text}");
    }
    for bad in ["soon", "", "-5m", "5m ago", "1 month", "2y", "12x"] {
        assert!(parse_duration(bad).is_err(), "{bad} parsed");
    }
    for (d, shown) in [
        (93_600, "26h"),
        (86_400, "24h"),
        (691_200, "8d"),
        (90, "90s"),
        (300, "5m"),
        (5400, "90m"),
        (25, "25s"),
        (0, "0s"),
    ] {
        let d = std::time::Duration::from_secs(d);
        assert_eq!(show_duration(d), shown);
        assert_eq!(parse_duration(shown), Ok(d), "{shown} does not read back");
    }
    let d = std::time::Duration::from_millis(1500);
    assert_eq!(parse_duration(&show_duration(d)), Ok(d));

    // Every duration key takes the same forms: "2 days" and bare seconds alike.
    let duration_keys: Vec<&Key> = KEYS
        .iter()
        .filter(|k| matches!(k.kind, Kind::Duration { .. }))
        .collect();
    assert_eq!(duration_keys.len(), 13);
    for k in duration_keys {
        let (long, bare) = if k.name == "maintenance_retry_after" {
            ("1 hour", "3600")
        } else {
            ("2 days", "120")
        };
        for v in [long, bare] {
            let var = k.env[0];
            let s = Settings::load(&inputs(&[(var, v)], &[]));
            assert!(s.is_ok(), "{} = {v}: {:?}", k.name, s.err());
        }
    }
    let s = Settings::load(&inputs(
        &[
            ("PGKEEP_CHECK_MAX_AGE", "2 days"),
            ("PGKEEP_NOTIFY_TIMEOUT", "15"),
            ("PGKEEP_SHUTDOWN_GRACE", "2 days"),
            ("PGKEEP_HOOK_TIMEOUT", "90s"),
            ("PGKEEP_CONNECT_TIMEOUT", "1m"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(s.check.max_age.as_secs(), 172_800);
    assert_eq!(s.notify.timeout.as_secs(), 15);
    assert_eq!(s.shutdown_grace.as_secs(), 172_800);
    assert_eq!(s.hook_timeout.as_secs(), 90);
    assert_eq!(s.connect_timeout, 60);
}

#[test]
fn every_default_parses_and_every_key_is_shown() {
    for k in KEYS {
        if let Default::Value(v) = k.default {
            assert!(
                k.kind.parse(v).is_ok(),
                "default of {} does not parse",
                k.name
            );
        }
    }
    let s = Settings::load(&inputs(&[], &[])).unwrap();
    let shown: Vec<&str> = s.show().iter().map(|r| r.0).collect();
    let keys: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(shown, keys);
    assert_eq!(
        crate::model::Policy::default(),
        s.policy,
        "the table's retention defaults are the policy's"
    );
}

#[test]
fn s3_keys_take_pgkeep_variables_over_aws_ones() {
    let s = Settings::load(&inputs(
        &[
            ("BACKUP_DIR", "s3://b/p"),
            ("AWS_ENDPOINT_URL", "https://aws.example"),
            ("PGKEEP_S3_ENDPOINT", "https://s3.example"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("PGKEEP_S3_ACCESS_KEY_ID", "pgkeep-id"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
            ("PGKEEP_S3_ALLOW_HTTP", "yes"),
            ("PGKEEP_S3_RETRY_TIMEOUT", "30s"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(s.s3.endpoint.as_deref(), Some("https://s3.example"));
    assert_eq!(s.s3.region, "eu-west-1");
    assert_eq!(s.s3.access_key_id.as_deref(), Some("pgkeep-id"));
    assert_eq!(
        s.s3.secret_access_key.as_ref().map(|k| k.expose()),
        Some("s3cr3t-value")
    );
    assert!(s.s3.allow_http);
    assert_eq!(
        s.s3.path_style, None,
        "worked out by the store from the endpoint"
    );
    assert_eq!(s.s3.retry_timeout.as_secs(), 30);
    assert_eq!(s.s3.max_retries, 40);
    assert_eq!(s.lock_dir, std::path::PathBuf::from("/tmp/pgkeep-locks"));
    let shown = format!("{:?}", s.show());
    assert!(
        !shown.contains("s3cr3t-value") && !shown.contains("pgkeep-id"),
        "{shown}"
    );
    let e = Settings::load(&inputs(&[("PGKEEP_S3_ALLOW_HTTP", "maybe")], &[])).unwrap_err();
    assert!(e.to_string().contains("s3_allow_http"), "{e}");
    let local = Settings::load(&inputs(&[("BACKUP_DIR", "/srv/b")], &[])).unwrap();
    assert_eq!(local.lock_dir, std::path::PathBuf::from("/srv/b"));
}
