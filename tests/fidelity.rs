//! Restore fidelity: for every corpus case (tests/fidelity/corpus/*.sql), the database pgkeep
//! brings back (restore into a new database, with -j 2, swap, in place, verify --restore on
//! the server and --local) is compared with the original and with what the old runbook
//! (`gunzip -c FILE | psql`) gives: schema, data, large objects, sequences, database
//! properties, extension owners, role memberships. `cargo test --test fidelity -- --nocapture`
//! prints the tables; a case on another major: `PGKEEP_PG_BINDIR=/path/to/bin cargo test --test
//! fidelity` (the cluster of this binary is started with those binaries).

mod common;

#[path = "fidelity/cases.rs"]
mod cases;
#[path = "fidelity/focused.rs"]
mod focused;
#[path = "fidelity/report.rs"]
mod report;
#[path = "fidelity/run.rs"]
mod run;
#[path = "fidelity/snapshot.rs"]
mod snapshot;
#[path = "fidelity/target.rs"]
mod target;

use std::sync::OnceLock;

use cases::*;
use run::{Case, Plan};
use target::Target;

/// Settings of this binary's cluster beyond the defaults: prepared transactions must be
/// possible to test their refusal. The lock settings stay the server's defaults
/// (max_locks_per_transaction = 64), which the big catalogs exceed.
pub const CLUSTER_CONF: &str = "max_prepared_transactions = 4\n";

/// The server of this test binary.
pub fn server() -> &'static Target {
    static T: OnceLock<Target> = OnceLock::new();
    T.get_or_init(|| {
        let c = common::configure_cluster(CLUSTER_CONF);
        Target::new(&c.socket_dir, c.port, &c.bindir)
    })
}

/// Build a case, run the whole plan, print the table, assert every pgkeep way was faithful.
fn corpus_case(case: Case) {
    let t = server();
    assert!(
        t.major() >= case.min_major,
        "case {} needs PostgreSQL {} or later (server {}): leave it out of the run on this major",
        case.name,
        case.min_major,
        t.major()
    );
    let built = case.build(t);
    report::run(t, &built, &Plan::full()).assert_faithful();
}

#[test]
fn rental() {
    corpus_case(RENTAL);
}

#[test]
fn music() {
    corpus_case(MUSIC);
}

#[test]
fn orders() {
    corpus_case(ORDERS);
}

#[test]
fn contrib() {
    corpus_case(CONTRIB);
}

#[test]
fn app_extensions() {
    corpus_case(APP_EXTENSIONS);
}

#[test]
fn rls() {
    corpus_case(RLS);
}

#[test]
fn partitions() {
    corpus_case(PARTITIONS);
}

#[test]
fn columns() {
    corpus_case(COLUMNS);
}

#[test]
fn large_objects() {
    corpus_case(LARGE_OBJECTS);
}

#[test]
fn superuser_objects() {
    corpus_case(SUPERUSER_OBJECTS);
}

#[test]
fn privileges() {
    corpus_case(PRIVILEGES);
}

#[test]
fn db_grants() {
    corpus_case(DB_GRANTS);
}

#[test]
fn dbprops() {
    corpus_case(DBPROPS);
}

#[test]
fn icu() {
    corpus_case(ICU);
}

#[test]
fn latin1() {
    corpus_case(LATIN1);
}

#[test]
fn sql_ascii() {
    corpus_case(SQL_ASCII);
}

#[test]
fn odd_names() {
    corpus_case(ODD_NAMES);
}

#[test]
fn subscription() {
    corpus_case(SUBSCRIPTION);
}

#[test]
fn foreign_keys() {
    corpus_case(FOREIGN_KEYS);
}

/// Every corpus file has its case and every case its file (a file nobody runs is no test).
#[test]
fn every_corpus_file_is_a_case() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/corpus");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut cases: Vec<String> = CORPUS
        .iter()
        .chain([&BIG_LARGE_OBJECTS, &BIG_TABLES])
        .map(|c| format!("{}.sql", c.name))
        .collect();
    cases.sort();
    assert_eq!(files, cases);
    assert!(smoke().count() >= 5 && smoke().all(|c| c.min_major <= 13));
    // What .ci/run runs on the other majors is smoke cases only, each of them a test here.
    let smoke_names: Vec<&str> = smoke().map(|c| c.name).collect();
    let source = include_str!("fidelity.rs");
    for name in SMOKE_ON_OTHER_MAJORS {
        assert!(smoke_names.contains(&name), "{name} is not a smoke case");
        assert!(
            source.contains(&format!("fn {name}() {{")),
            "no test named {name}"
        );
    }
}
