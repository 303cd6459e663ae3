//! One test per restore-fidelity failure that the corpus table alone does not pin down: big
//! catalogs, subscriptions, extension owners, prepared transactions, newline table names,
//! role memberships with `--create-roles`, kept-copy names within one second, a database name
//! that is not UTF-8. Tests of failures that are not fixed yet are ignored with the failure they
//! show; `cargo test --test fidelity -- --ignored` runs them.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::OnceLock;

use super::cases::*;
use super::report::{self, Report};
use super::run::{Case, Format, Outcome, Plan, Way};
use super::server;
use super::snapshot::Snapshot;
use super::target::{self, As, Target, one_line, var};

/// A big-catalog case, built and run once per binary (both of its tests read it), on a
/// cluster of its own with the server's default lock settings: a load that fills the shared
/// lock table makes every other session of that server fail with "out of shared memory".
fn big(case: Case) -> &'static Report {
    static LOS: OnceLock<Report> = OnceLock::new();
    static TABLES: OnceLock<Report> = OnceLock::new();
    let cell = if case.name == BIG_TABLES.name {
        &TABLES
    } else {
        &LOS
    };
    cell.get_or_init(|| {
        let own = pgkeep::cluster::TempCluster::start_with(&server().bindir, 5432, "", "")
            .expect("a cluster for the big catalog");
        let t = Target::new(own.socket_dir(), own.port, own.bindir());
        let built = case.build(&t);
        let r = report::run(&t, &built, &Plan::big_catalog());
        print!("{}", r.table());
        r
    })
}

/// The old runbook and `restore -j 2` of a custom archive load a big catalog (they do not
/// load it in one transaction).
fn big_catalog_loads_without_one_transaction(case: Case) {
    let r = big(case);
    let runbook = r.rows.iter().find(|r| r.way == Way::Runbook).unwrap();
    match &runbook.outcome {
        Outcome::Compared(d) => assert!(
            d[..4].iter().all(Option::is_none),
            "the runbook lost objects: {}",
            runbook.why()
        ),
        o => panic!("runbook: {o:?}"),
    }
    let parallel = r
        .rows
        .iter()
        .find(|r| r.way == Way::Copy(2) && r.format == Format::Custom)
        .unwrap();
    assert!(parallel.faithful(), "custom -j 2: {}", parallel.why());
}

#[test]
fn big_large_objects_load_with_the_runbook_and_custom_parallel() {
    big_catalog_loads_without_one_transaction(BIG_LARGE_OBJECTS);
}

#[test]
fn big_tables_load_with_the_runbook_and_custom_parallel() {
    big_catalog_loads_without_one_transaction(BIG_TABLES);
}

#[test]
fn big_large_objects_restore_and_verify() {
    big(BIG_LARGE_OBJECTS).assert_faithful();
}

#[test]
fn big_tables_restore_and_verify() {
    big(BIG_TABLES).assert_faithful();
}

#[test]
fn a_subscription_skipped_by_a_non_superuser_backup_is_reported() {
    let t = server();
    let case = Case {
        backup_as_superuser: false,
        ..SUBSCRIPTION
    };
    let b = case.build_as(t, "fx_subskip", &[]);
    let backup = b.backup(t, Format::Gzip).expect("backup");
    let warning = "subscriptions not dumped";
    assert!(backup.log.contains(warning), "log: {}", backup.log);
    assert!(
        backup.manifest.to_string().contains(warning),
        "manifest: {}",
        backup.manifest
    );
    let out = b.pgkeep(t).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(8), "check: {stdout}");
    assert!(stdout.contains("subscription"), "check: {stdout}");
}

#[test]
fn verify_restore_of_a_dump_with_a_subscription_drops_its_scratch_database() {
    let t = server();
    let b = SUBSCRIPTION.build_as(t, "fx_subverify", &[]);
    for f in [Format::Gzip, Format::Custom] {
        let backup = b.backup(t, f).expect("backup");
        b.verify(t, &backup, false)
            .unwrap_or_else(|e| panic!("{}: {e}", f.name()));
    }
    let out = b
        .pgkeep(t)
        .args(["cleanup", "--yes", "-d", &b.db])
        .output()
        .unwrap();
    assert!(out.status.success(), "cleanup: {}", one_line(&out.stderr));
}

#[test]
fn restored_subscriptions_stay_disabled_and_the_report_says_so() {
    let t = server();
    let b = SUBSCRIPTION.build_as(t, "fx_subdisabled", &[]);
    let backup = b.backup(t, Format::Custom).expect("backup");
    let copy = "fx_subdisabled_copy";
    let out = b
        .restore(t, &backup, &["--target-database", copy])
        .expect("restore");
    let enabled = t.query(
        copy,
        "SELECT subenabled FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = current_database()",
    );
    assert_eq!(enabled.trim(), "f");
    assert!(
        out.contains("feed_sub") && out.contains("disabled"),
        "the report does not name the disabled subscription:\n{out}"
    );
    t.drop_database(OsStr::new(copy));
}

#[test]
fn the_application_still_owns_its_extensions_after_a_restore() {
    let t = server();
    let b = APP_EXTENSIONS.build_as(t, "fx_extowner", &[]);
    let backup = b.backup(t, Format::Gzip).expect("backup");
    b.restore(t, &backup, &[]).expect("restore");
    t.try_sql(
        As::Role(&b.app),
        b.db_os(),
        "UTF8",
        b"COMMENT ON EXTENSION hstore IS 'managed by the application'",
    )
    .unwrap_or_else(|e| panic!("the application cannot manage its extension: {e}"));
}

/// Rolls back a prepared transaction when the test ends, whatever happened.
struct Prepared<'a>(&'a Target, &'a str, &'a str);

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_sql(
            As::Superuser,
            OsStr::new(self.1),
            "UTF8",
            format!("ROLLBACK PREPARED '{}'", self.2).as_bytes(),
        );
    }
}

#[test]
fn a_prepared_transaction_in_the_live_database_is_refused_before_the_load() {
    let t = server();
    let b = ORDERS.build_as(t, "fx_prepared", &[]);
    let backup = b.backup(t, Format::Gzip).expect("backup");
    t.query(
        &b.db,
        "BEGIN; INSERT INTO region VALUES (99, 'pending'); PREPARE TRANSACTION 'fx_pending_tx';",
    );
    let _guard = Prepared(t, &b.db, "fx_pending_tx");
    // Only this case's databases: the other cases of the binary create theirs meanwhile.
    let mine = || -> Vec<OsString> {
        t.databases()
            .into_iter()
            .filter(|d| d.as_bytes().starts_with(b.db.as_bytes()))
            .collect()
    };
    let before = mine();
    let out = b
        .pgkeep(t)
        .args(["restore", "--yes", "--backup", &backup.id])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("fx_pending_tx"), "{stderr}");
    assert_eq!(mine(), before, "a refused restore created a database");
    assert_eq!(
        t.query(
            "postgres",
            "SELECT datallowconn FROM pg_database WHERE datname = 'fx_prepared'"
        )
        .trim(),
        "t"
    );
}

#[test]
fn every_table_is_counted_in_the_manifest_whatever_its_name() {
    let t = server();
    let b = ODD_NAMES.build_as(t, "fx_counted", &[]);
    let tables = t.query(
        &b.db,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    );
    let tables: usize = tables.trim().parse().unwrap();
    for f in super::run::FORMATS {
        let m = b.backup(t, f).expect("backup").manifest;
        let counted = m["tables"].as_object().expect("tables");
        let rows: u64 = counted.values().filter_map(|v| v.as_u64()).sum();
        assert_eq!(
            (counted.len(), rows),
            (tables, 115),
            "{}: the manifest counts {:?}",
            f.name(),
            counted.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn create_roles_recreates_the_memberships_the_schema_needs() {
    let t = server();
    let b = PRIVILEGES.build_as(t, "fx_members", &[]);
    let backup = b.backup(t, Format::Gzip).expect("backup");
    let original = Snapshot::take(t, b.db_os(), &b.db).unwrap();
    let other = pgkeep::cluster::TempCluster::start_with(&t.bindir, 5432, "", "")
        .expect("a second cluster");
    let out = b
        .pgkeep(t)
        .args(["restore", "--yes", "--create-roles", "--backup", &backup.id])
        // The case's objects change owner before its grants are made (see PRIVILEGES).
        .arg("--load-as-admin")
        .arg("--target-host")
        .arg(other.socket_dir())
        .args(["--target-port", &other.port.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "restore: {}", one_line(&out.stderr));
    let there = Target::new(other.socket_dir(), other.port, &t.bindir);
    let restored = Snapshot::take(&there, b.db_os(), &b.db).unwrap();
    let diff = original.diff(&restored);
    assert!(
        diff[6].is_none(),
        "role memberships on the target: {:?}",
        diff[6]
    );
    assert!(diff[..4].iter().all(Option::is_none), "{diff:?}");
}

/// Onto a server without the owner role, `--create-roles` makes it (without a password, so the
/// configured login of that name cannot connect there), and the load runs as the owner through a
/// temporary role.
#[test]
fn create_roles_onto_a_new_server_loads_as_the_created_owner() {
    let t = server();
    let b = MUSIC.build_as(t, "fx_newowner", &[]);
    let backup = b.backup(t, Format::Gzip).expect("backup");
    let original = Snapshot::take(t, b.db_os(), &b.db).unwrap();
    let other = pgkeep::cluster::TempCluster::start_with(&t.bindir, 5432, "", "")
        .expect("a second cluster");
    let out = b
        .pgkeep(t)
        .args(["restore", "--yes", "--create-roles", "--backup", &backup.id])
        .arg("--target-host")
        .arg(other.socket_dir())
        .args(["--target-port", &other.port.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "restore: {}", one_line(&out.stderr));
    let there = Target::new(other.socket_dir(), other.port, &t.bindir);
    let restored = Snapshot::take(&there, b.db_os(), &b.db).unwrap();
    let diff = original.diff(&restored);
    assert!(diff[..2].iter().all(Option::is_none), "{diff:?}");
}

/// `<db>_before_restore_<UTC time>`, the name a restore at `at` keeps the previous copy as.
fn kept_name(db: &str, at: jiff::Timestamp) -> String {
    let stamp = at
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y%m%d_%H%M%S");
    format!("{db}_before_restore_{stamp}")
}

#[test]
fn restores_within_one_second_keep_distinct_copies() {
    let t = server();
    let b = MUSIC.build_as(t, "fx_kept", &[]);
    let backup = b.backup(t, Format::Custom).expect("backup");
    // The copies restores in the next 30 seconds would keep, as if each second had one already.
    let now = jiff::Timestamp::now();
    let taken: Vec<String> = (0..30)
        .map(|s| kept_name(&b.db, now + jiff::SignedDuration::from_secs(s)))
        .collect();
    for name in &taken {
        t.query("postgres", &format!("CREATE DATABASE \"{name}\""));
        t.query(
            name,
            "CREATE TABLE marker (id int); INSERT INTO marker VALUES (1);",
        );
    }
    for round in 1..=2 {
        b.restore(t, &backup, &[])
            .unwrap_or_else(|e| panic!("restore {round}: {e}"));
    }
    let kept: Vec<String> = t
        .databases()
        .into_iter()
        .map(|d| d.to_string_lossy().into_owned())
        .filter(|d| d.starts_with("fx_kept_before_restore_") && !taken.contains(d))
        .collect();
    assert_eq!(kept.len(), 2, "two restores, two new kept copies: {kept:?}");
    for name in &taken {
        assert_eq!(t.query(name, "SELECT count(*) FROM marker").trim(), "1");
    }
}

#[test]
#[ignore = "issue 18: a database name that is not UTF-8 cannot be configured or connected to"]
fn a_database_name_that_is_not_utf8_backs_up_and_restores() {
    let t = server();
    let helper = "fx_ascii_helper";
    t.query(
        "postgres",
        &format!(
            "CREATE ROLE fx_bytes_app LOGIN PASSWORD '{}'; CREATE DATABASE {helper} TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
            target::PASSWORD
        ),
    );
    let name = OsString::from_vec(b"fx_caf\xe9".to_vec());
    let mut c = t.psql_cmd(As::Superuser, OsStr::new(helper), "SQL_ASCII");
    c.arg("-v").arg(var("name", &name));
    let out = target::feed(
        c,
        b"CREATE DATABASE :\"name\" OWNER fx_bytes_app TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
    );
    assert!(out.status.success(), "{}", one_line(&out.stderr));
    t.try_sql(
        As::Role("fx_bytes_app"),
        &name,
        "SQL_ASCII",
        b"CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    )
    .unwrap();
    let original = Snapshot::take(t, &name, "fx_bytes").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = t
        .pgkeep("fx_bytes_app", &name, dir.path())
        .args(["backup"])
        .output()
        .unwrap();
    assert!(out.status.success(), "backup: {}", one_line(&out.stderr));
    let copy = OsString::from_vec(b"fx_caf\xe9_copy".to_vec());
    let out = t
        .pgkeep("fx_bytes_app", &name, dir.path())
        .args(["restore", "--yes", "--target-database"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success(), "restore: {}", one_line(&out.stderr));
    let restored = Snapshot::take(t, &copy, "fx_bytes").unwrap();
    assert!(original.diff(&restored).iter().all(Option::is_none));
}

#[test]
fn an_environment_variable_that_is_not_utf8_does_not_stop_pgkeep() {
    let t = server();
    let b = MUSIC.build_as(t, "fx_envbytes", &[]);
    let out = b
        .pgkeep(t)
        .env("UNRELATED", OsStr::from_bytes(b"caf\xe9"))
        .arg("backup")
        .output()
        .unwrap();
    assert!(out.status.success(), "backup: {}", one_line(&out.stderr));
}

/// A parallel restore of a custom archive gives the serial load's database however pg_restore's
/// workers interleave: the forced row-level security of `documents` is enabled only after its
/// foreign key was added (a key's check runs as the owner with `row_security = off` and is
/// refused on a table whose security is forced). The race lost about every other run on
/// PostgreSQL 17 before; ten runs with four jobs.
#[test]
fn custom_parallel_restores_enable_row_security_after_the_foreign_keys() {
    let t = server();
    let b = RLS.build_as(t, "fx_rlsjobs", &[]);
    let backup = b.backup(t, Format::Custom).expect("backup");
    for run in 0..10 {
        let copy = format!("fx_rlsjobs_copy{run}");
        b.restore(t, &backup, &["--target-database", &copy, "-j", "4"])
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        let forced = t.query(
            &copy,
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'documents'",
        );
        assert_eq!(forced.trim(), "t", "run {run}: row security is not forced");
        t.drop_database(OsStr::new(&copy));
    }
}
