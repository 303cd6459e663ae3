//! The version matrix: the real `pgkeep backup`, `verify` and `restore` against a server of every
//! supported major (13-18, the builds `.ci/pg-majors` installs under target/pg), with the client
//! tools of that major (or the nearest newer one for a server-only build), the version guard's
//! refusal of client tools older than the server, and backups made with a pg_dump newer than
//! the server and restored into that server.

mod common;

use std::path::Path;
use std::process::Output;

use common::majors::{bindir_of, clients_for};
use common::*;

/// What the matrix database adds to the shared `SAMPLE`: a trusted contrib extension and a view.
const EXTRA: &str = r#"
CREATE EXTENSION citext;
CREATE TABLE tags (id int PRIMARY KEY, name citext UNIQUE);
INSERT INTO tags SELECT g, 'Tag' || g FROM generate_series(1, 20) g;
CREATE VIEW busy AS SELECT count(*) AS n FROM routes WHERE note <> '';
"#;

/// Row counts that `SAMPLE` and `EXTRA` create, as `table=count` lines (the tags are counted
/// through citext's case-insensitive equality, so the extension must work after a restore).
const COUNTS: &str = "SBI_USER=300\nroutes=1000\ntags=20\n";

fn counts(db: &TestDb) -> String {
    db.sql(
        "SELECT 'SBI_USER=' || count(*) FROM \"SBI_USER\" UNION ALL \
         SELECT 'routes=' || count(*) FROM routes UNION ALL \
         SELECT 'tags=' || count(*) FROM tags WHERE name = lower(name::text)::citext",
    )
}

/// A database of `SAMPLE` and `EXTRA` on the cluster of `major`; says which client tools go with it.
fn matrix_db(major: u32) -> TestDb {
    let m = cluster_of(major);
    if !m.own_clients() {
        eprintln!(
            "PostgreSQL {} ({}) has no client tools here: using those of {} ({})",
            m.major,
            m.server_version,
            m.clients_major,
            m.clients.display()
        );
    }
    let db = m.create_db(&format!("{SAMPLE}{EXTRA}"));
    assert_eq!(counts(&db), COUNTS);
    db
}

/// Run `pgkeep ARGS` with `bindir` as PGKEEP_PG_BINDIR and the superuser as admin.
fn run(db: &TestDb, bindir: &Path, args: &[&str]) -> Output {
    db.pgkeep()
        .env("PGKEEP_PG_BINDIR", bindir)
        .env("PGKEEP_ADMIN_USER", "postgres")
        .args(args)
        .output()
        .unwrap()
}

/// Panic with the server, the tools and both streams unless `out` exited 0.
fn ok(db: &TestDb, bindir: &Path, what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} on PostgreSQL {} with the tools in {}: exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        db.server
            .map_or(String::new(), |m| m.server_version.clone()),
        bindir.display(),
        out.status.code()
    );
    stdout
}

/// `pgkeep backup --format FORMAT` with the tools in `bindir`; returns the data file.
fn backup(db: &TestDb, bindir: &Path, format: &str) -> String {
    let want = if format == "custom" {
        ".dump"
    } else {
        ".sql.gz"
    };
    backup_with(db, bindir, &["--format", format], want)
}

/// `pgkeep backup ARGS` with the tools in `bindir`; returns the data file, which ends in `ext`.
/// A pg_dump newer than the server is warned about and recorded in the manifest; one of the
/// server's major is not.
fn backup_with(db: &TestDb, bindir: &Path, args: &[&str], ext: &str) -> String {
    let before = db.files();
    let mut argv = vec!["backup"];
    argv.extend(args);
    let out = run(db, bindir, &argv);
    ok(db, bindir, &argv.join(" "), &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let newer = tools_major(bindir) > db.server.map_or(15, |m| m.major);
    assert_eq!(
        stderr.contains("pg_dump is newer than the server"),
        newer,
        "the warning for a pg_dump newer than the server: {stderr}"
    );
    let new: Vec<String> = db
        .files()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let manifest = new
        .iter()
        .find(|f| f.ends_with(".manifest.json"))
        .unwrap_or_else(|| panic!("no manifest among {new:?}"));
    let data = manifest.strip_suffix(".manifest.json").unwrap();
    assert!(data.ends_with(ext), "{data}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(db.backup_dir.join(manifest)).unwrap()).unwrap();
    assert_eq!(m["newer_pg_dump"].as_bool().unwrap_or(false), newer, "{m}");
    db.backup_dir.join(data).display().to_string()
}

/// The major of the client tools in `bindir`.
fn tools_major(bindir: &Path) -> u32 {
    pgkeep::pg::tools::probe("pg_dump", &bindir.join("pg_dump"))
        .unwrap()
        .major
}

/// The server version a verification's line names (`... (PostgreSQL 14.23 server)`).
fn server_named(stdout: &str) -> String {
    stdout
        .split("(PostgreSQL ")
        .nth(1)
        .and_then(|r| r.split(" server)").next())
        .unwrap_or("?")
        .to_string()
}

/// One row of the version matrix, printed for `cargo test --test majors -- --nocapture`
/// (`.ci/majors-table` collects the rows into the README's table).
fn matrix_row(cells: &[&str]) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    println!("MATRIX| {} |", cells.join(" | ").replace(root, ""));
}

/// Damage the database, `pgkeep restore --yes` the newest backup, and check every row came back.
fn restore_and_check(db: &TestDb, bindir: &Path) {
    db.sql_as_owner("DELETE FROM routes WHERE id > 10; DROP VIEW busy; DROP TABLE tags;");
    let out = run(db, bindir, &["restore", "--yes"]);
    let stdout = ok(db, bindir, "restore --yes", &out);
    assert!(stdout.contains("row counts checked"), "{stdout}");
    assert_eq!(counts(db), COUNTS, "rows after the restore");
    assert_eq!(db.sql("SELECT n FROM busy").trim(), "980");
}

/// The whole life of a backup on a server of `major` with its client tools, in `format`:
/// backup, `verify` (checksum level), `verify --restore` into a scratch database of the same
/// server, `verify --restore --local` into a throwaway cluster of the server binaries beside those
/// tools (the same major, or the next newer one for a server-only build), then damage and
/// `restore --yes`, and every row is back.
fn life_of_a_backup(major: u32, format: &str) {
    let db = matrix_db(major);
    let bindir = db.client_bindir();
    let data = backup(&db, bindir, format);
    let out = run(&db, bindir, &["verify", &data]);
    let stdout = ok(&db, bindir, "verify", &out);
    assert!(stdout.starts_with("ok "), "{stdout}");
    let mut servers = Vec::new();
    for level in [&["--restore"][..], &["--restore", "--local"]] {
        let args: Vec<&str> = ["verify"]
            .iter()
            .chain(level)
            .chain([&data.as_str()])
            .copied()
            .collect();
        let out = run(&db, bindir, &args);
        let stdout = ok(&db, bindir, &args.join(" "), &out);
        assert!(
            stdout.contains("1320 rows in 3 tables as recorded"),
            "{stdout}"
        );
        servers.push(server_named(&stdout));
    }
    restore_and_check(&db, bindir);
    let m = cluster_of(major);
    matrix_row(&[
        &m.server_version,
        format,
        &format!("{} ({})", tools_major(bindir), m.clients.display()),
        "ok",
        "ok",
        &format!("ok ({})", servers[0]),
        &format!("ok ({})", servers[1]),
        "ok",
    ]);
}

/// A custom archive that pg_dump of `major` (16 or newer) compresses with zstd: the manifest and
/// the archive's own header say zstd, and it verifies, test-restores and restores.
fn zstd_archive(major: u32) {
    let db = matrix_db(major);
    let bindir = db.client_bindir();
    let args = [
        "--format",
        "custom",
        "--compression",
        "zstd",
        "--level",
        "9",
    ];
    let data = backup_with(&db, bindir, &args, ".dump");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{data}.manifest.json")).unwrap()).unwrap();
    assert_eq!(m["compression"], "zstd", "{m}");
    assert_eq!(m["level"], 9, "{m}");
    let listed = std::process::Command::new(bindir.join("pg_restore"))
        .arg("-l")
        .arg(&data)
        .output()
        .unwrap();
    let header = String::from_utf8_lossy(&listed.stdout);
    assert!(header.contains("Compression: zstd"), "{header}");
    let out = run(&db, bindir, &["verify", "--restore", &data]);
    let stdout = ok(&db, bindir, "verify --restore", &out);
    assert!(
        stdout.contains("1320 rows in 3 tables as recorded"),
        "{stdout}"
    );
    restore_and_check(&db, bindir);
}

/// A server newer than every pg_dump offered: exit 6 naming the server's major, and nothing is
/// written.
fn version_guard(major: u32) {
    let db = matrix_db(major);
    let (older, tools) = clients_for(major - 1);
    assert!(older < major, "no older client tools than {major}");
    let out = run(&db, &tools, &["backup"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("no pg_dump of PostgreSQL {major} or newer found")),
        "{stderr}"
    );
    assert_eq!(db.files(), Vec::<String>::new());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    println!(
        "GUARD| {} | {older} ({}) | refused, exit 6, nothing written |",
        cluster_of(major).server_version,
        tools.display().to_string().replace(root, "")
    );
}

/// A server newer than all of several client tool sets found by the search (the well-known
/// directories and PATH, no PGKEEP_PG_BINDIR): exit 6, and the message lists what was found.
fn version_guard_searched(major: u32) {
    let db = matrix_db(major);
    let older: Vec<String> = MAJORS
        .iter()
        .filter(|m| **m < major && common::majors::has_client_tools(**m))
        .map(|m| bindir_of(*m).display().to_string())
        .collect();
    assert!(older.len() >= 2, "{older:?}");
    let path = std::env::var("PATH").unwrap_or_default();
    let out = db
        .pgkeep()
        .env_remove("PGKEEP_PG_BINDIR")
        .env("PATH", format!("{path}:{}", older.join(":")))
        .arg("backup")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    for dir in &older {
        let found = pgkeep::pg::tools::probe("pg_dump", &Path::new(dir).join("pg_dump")).unwrap();
        assert!(
            stderr.contains(&found.version),
            "{} not listed: {stderr}",
            found.version
        );
    }
    assert_eq!(db.files(), Vec::<String>::new());
}

/// A backup of a `server` server made with the newer pg_dump of `dump`, verified, then restored
/// into the same server with those tools (the pod that carries only the newest client tools).
/// `pgkeep check` names the backup's newer pg_dump (exit 8, code `newer-pg-dump`); a pg_dump 17+
/// wrote `SET transaction_timeout`, which the load into the older server leaves out and names.
fn newer_pg_dump(server: u32, dump: u32, format: &str) {
    let db = matrix_db(server);
    let bindir = bindir_of(dump);
    let data = backup(&db, &bindir, format);
    let out = run(&db, &bindir, &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(8), "{stdout}");
    assert!(
        stdout.contains("newer-pg-dump") && stdout.contains(&format!("PostgreSQL {server}")),
        "{stdout}"
    );
    let out = run(&db, &bindir, &["verify", &data]);
    ok(&db, &bindir, "verify", &out);
    let out = run(&db, &bindir, &["verify", "--restore", &data]);
    let stdout = ok(&db, &bindir, "verify --restore", &out);
    assert!(
        stdout.contains("1320 rows in 3 tables as recorded"),
        "{stdout}"
    );
    assert_eq!(
        stdout.contains("left out, unknown to this server")
            && stdout.contains("SET transaction_timeout = 0"),
        dump >= 17,
        "{stdout}"
    );
    restore_and_check(&db, &bindir);
    let m = cluster_of(server);
    matrix_row(&[
        &m.server_version,
        format,
        &format!("{dump} ({}), newer on purpose", bindir.display()),
        "ok (warned, newer_pg_dump)",
        "ok",
        &format!("ok ({})", server_named(&stdout)),
        "not run",
        "ok",
    ]);
}

/// `pgkeep verify --restore --local` as on a Debian 12 host with the 15 packages: no
/// PGKEEP_PG_BINDIR, `extra` appended to PATH.
fn verify_local_on_host(db: &TestDb, extra: &Path, data: &str) -> Output {
    let path = std::env::var("PATH").unwrap_or_default();
    db.pgkeep()
        .env_remove("PGKEEP_PG_BINDIR")
        .env("PATH", format!("{path}:{}", extra.display()))
        .args(["verify", "--restore", "--local", data])
        .output()
        .unwrap()
}

/// The host has the 15 server and, on PATH, the whole build of the dump's `major`: the test
/// restore must run in a throwaway cluster of that major (never the older 15), and say so.
fn verify_local_picks_dump_major(major: u32, format: &str) {
    let db = matrix_db(major);
    let data = backup(&db, db.client_bindir(), format);
    let own = bindir_of(major);
    let out = verify_local_on_host(&db, &own, &data);
    let stdout = ok(
        &db,
        &own,
        "verify --restore --local (dump's major on PATH)",
        &out,
    );
    assert!(
        stdout.contains("1320 rows in 3 tables as recorded"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&own.display().to_string()),
        "the throwaway cluster is not of PostgreSQL {major} ({}): {stderr}",
        own.display()
    );
}

/// The host has the 15 server and, on PATH, only the client tools of the dump's `major`: no
/// server of a suitable major exists, so the test restore cannot prove the backup here. It must
/// not pass, and must not condemn the backup either (not exit 9, no FAILED line).
fn verify_local_without_suitable_server(major: u32, format: &str) {
    let db = matrix_db(major);
    let data = backup(&db, db.client_bindir(), format);
    let tools = tempfile::tempdir().unwrap();
    for t in common::majors::CLIENT_TOOLS {
        std::os::unix::fs::symlink(bindir_of(major).join(t), tools.path().join(t)).unwrap();
    }
    let out = verify_local_on_host(&db, tools.path(), &data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        code != Some(0) && code != Some(9) && !stdout.contains("FAILED"),
        "a {major} backup with only the 15 server for the test restore: exit {code:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
}

/// One `#[test]` per line: `name: body;`, attributes (an `#[ignore = "issue 11: ..."]`) before.
macro_rules! matrix {
    ($($(#[$attr:meta])* $name:ident: $body:expr;)*) => {
        $( $(#[$attr])* #[test] fn $name() { $body } )*
    };
}

matrix! {
    plain_13: life_of_a_backup(13, "plain");
    plain_14: life_of_a_backup(14, "plain");
    plain_15: life_of_a_backup(15, "plain");
    plain_16: life_of_a_backup(16, "plain");
    plain_17: life_of_a_backup(17, "plain");
    plain_18: life_of_a_backup(18, "plain");

    custom_13: life_of_a_backup(13, "custom");
    custom_14: life_of_a_backup(14, "custom");
    custom_15: life_of_a_backup(15, "custom");
    custom_16: life_of_a_backup(16, "custom");
    custom_17: life_of_a_backup(17, "custom");
    custom_18: life_of_a_backup(18, "custom");

    zstd_archive_16: zstd_archive(16);
    zstd_archive_17: zstd_archive(17);
    zstd_archive_18: zstd_archive(18);

    version_guard_15: version_guard(15);
    version_guard_16: version_guard(16);
    version_guard_17: version_guard(17);
    version_guard_18: version_guard(18);
    version_guard_searched_18: version_guard_searched(18);

    newer_pg_dump_13_17_plain: newer_pg_dump(13, 17, "plain");
    newer_pg_dump_13_18_plain: newer_pg_dump(13, 18, "plain");
    newer_pg_dump_13_18_custom: newer_pg_dump(13, 18, "custom");
    newer_pg_dump_14_17_plain: newer_pg_dump(14, 17, "plain");
    newer_pg_dump_14_17_custom: newer_pg_dump(14, 17, "custom");
    newer_pg_dump_14_18_plain: newer_pg_dump(14, 18, "plain");
    newer_pg_dump_16_18_plain: newer_pg_dump(16, 18, "plain");
    newer_pg_dump_16_18_custom: newer_pg_dump(16, 18, "custom");
    newer_pg_dump_13_16_plain: newer_pg_dump(13, 16, "plain");
    newer_pg_dump_13_15_custom: newer_pg_dump(13, 15, "custom");
    newer_pg_dump_14_15_plain: newer_pg_dump(14, 15, "plain");

    verify_local_picks_dump_major_16_plain: verify_local_picks_dump_major(16, "plain");
    verify_local_picks_dump_major_17_plain: verify_local_picks_dump_major(17, "plain");
    verify_local_picks_dump_major_17_custom: verify_local_picks_dump_major(17, "custom");
    verify_local_picks_dump_major_18_plain: verify_local_picks_dump_major(18, "plain");
    verify_local_without_suitable_server_16_plain: verify_local_without_suitable_server(16, "plain");
    verify_local_without_suitable_server_17_plain: verify_local_without_suitable_server(17, "plain");
    verify_local_without_suitable_server_17_custom: verify_local_without_suitable_server(17, "custom");
    verify_local_without_suitable_server_18_custom: verify_local_without_suitable_server(18, "custom");
}
