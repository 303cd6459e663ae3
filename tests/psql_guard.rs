//! The load guard against the real psql and pg_dump: hostile files whose shell commands the
//! plain psql runs never run behind the guard, and real pg_dump output of awkward schemas passes
//! and loads.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{TestDb, cluster};
use pgkeep::config::Compression;
use pgkeep::pipeline::guard::{self, GuardError, GuardOptions, LoadFeed, RestrictKey};
use pgkeep::pipeline::preflight;

fn psql(db: &str) -> Child {
    let c = cluster();
    Command::new(c.bindir.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&c.socket_dir)
        .args([
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-f",
            "-",
        ])
        .env("PGOPTIONS", "-c standard_conforming_strings=on")
        .env("PGCLIENTENCODING", "UTF8")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql")
}

/// psql fed the file as it is: (exit success, stderr).
fn load_raw(db: &str, data: &[u8]) -> (bool, String) {
    let mut child = psql(db);
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(data);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// psql fed through the guard; on a refusal psql is killed before its stdin closes.
fn load_guarded(
    db: &str,
    data: &[u8],
    compression: Compression,
    key: Option<RestrictKey>,
) -> (Result<LoadFeed, GuardError>, bool, String) {
    let mut child = psql(db);
    let mut stdin = child.stdin.take().unwrap();
    let opts = GuardOptions {
        restrict_key: key,
        ..Default::default()
    };
    let fed = guard::feed_psql(data, compression, &mut stdin, opts);
    let out_status = if fed.is_err() {
        // psql must not see the end of its input: it would run what it holds.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        drop(stdin);
        status
    } else {
        drop(stdin);
        child.wait().unwrap()
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    (fed, out_status.success(), err)
}

fn hostile(file: &Path) -> Vec<(&'static str, String)> {
    let f = file.display();
    vec![
        ("own line", format!("SELECT 1;\n\\! touch {f}\n")),
        (
            "after SQL on its line",
            format!("SELECT 1; \\! touch {f}\n"),
        ),
        ("after a parameter", format!("SELECT $1 \\! touch {f}\n")),
        (
            "after a quote that std strings end",
            format!("SELECT 'a\\'; \\! touch {f}\n"),
        ),
        (
            "after a comment ended by CR",
            format!("SELECT 1; -- c\r\\! touch {f}\n"),
        ),
        (
            "after an identifier with $$",
            format!("SELECT 1 AS a$$; \\! touch {f}\n"),
        ),
        (
            "after a rolled-back SET standard_conforming_strings",
            format!(
                "BEGIN;\nSET standard_conforming_strings = off;\nROLLBACK;\nSELECT 'a\\'; \\! touch {f}\n"
            ),
        ),
        (
            "behind a NUL byte",
            format!("SELECT 2 \0'\n\\! touch {f}\n'\n;\n"),
        ),
        (
            "after COPY data",
            format!("COPY t FROM stdin;\n1\n\\.\n\\! touch {f}\n"),
        ),
        (
            "after the dump's own unrestrict",
            format!("\\restrict abc\n\\unrestrict abc\n\\! touch {f}\n"),
        ),
    ]
}

#[test]
fn hostile_files_run_their_shell_command_in_psql_but_never_behind_the_guard() {
    let db = TestDb::create("CREATE TABLE t (a int);");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owned");
    for (what, payload) in hostile(&file) {
        // The payload is live: psql alone runs it.
        let (_, err) = load_raw(&db.name, payload.as_bytes());
        assert!(file.exists(), "{what}: psql did not run it: {err}");
        std::fs::remove_file(&file).unwrap();
        for key in [None, Some(RestrictKey::random().unwrap())] {
            let restricted = key.is_some();
            let (fed, ok, err) = load_guarded(&db.name, payload.as_bytes(), Compression::None, key);
            assert!(
                matches!(fed, Err(GuardError::Refused(_))),
                "{what} (restricted {restricted}): {fed:?}"
            );
            assert!(!ok, "{what}: psql was killed");
            assert!(
                !file.exists(),
                "{what} (restricted {restricted}): ran: {err}"
            );
        }
    }
}

#[test]
fn restricted_mode_stops_what_the_lexer_cannot_see() {
    // SQL switches the client encoding to SJIS behind the lexer's back: psql then reads
    // 0x81 0x5C as one character, and the backslash command that follows the string runs.
    let db = TestDb::create("");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owned");
    let payload = format!(
        "DO $$BEGIN PERFORM set_config('client_' || 'encoding', 'SJIS', false); END$$;\n\
         SELECT E'\u{0}\\'; \\! touch {}\nSELECT 1; --'\n;\n",
        file.display()
    )
    .replace('\u{0}', "");
    let mut bytes = payload.into_bytes();
    let at = bytes.windows(3).position(|w| w == b"E'\\").unwrap() + 2;
    bytes.insert(at, 0x81);
    let (_, _) = load_raw(&db.name, &bytes);
    assert!(file.exists(), "psql alone runs it");
    std::fs::remove_file(&file).unwrap();
    let (fed, ok, err) = load_guarded(
        &db.name,
        &bytes,
        Compression::None,
        Some(RestrictKey::random().unwrap()),
    );
    assert!(fed.is_ok(), "{fed:?}");
    assert!(!ok, "psql refuses the command in restricted mode");
    assert!(err.contains("backslash commands are restricted"), "{err}");
    assert!(!file.exists(), "ran: {err}");
}

const TRICKY: &str = r#"
CREATE SCHEMA "we ird\sch""ema";
CREATE TABLE "we ird\sch""ema"."tab\le" (id int PRIMARY KEY, "co\l" text, b bytea);
INSERT INTO "we ird\sch""ema"."tab\le" VALUES
 (1, E'back\\slash \\! not a command', '\x00ff5c'),
 (2, E'\\.', NULL),
 (3, E'line\nbreak\ttab\r\n\\.\n', E'\\x5c2e'),
 (4, $q$it's $$ dollar $q$, NULL),
 (5, 'ünïcödé 日本語 \', NULL);
CREATE FUNCTION "we ird\sch""ema".f(x text) RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  -- \! inside a function body
  RETURN replace(x, E'\\', '/') || $x$ \! $x$ || '\';
END
$body$;
CREATE FUNCTION "we ird\sch""ema".g(x int) RETURNS int LANGUAGE sql
BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END;
CREATE VIEW "we ird\sch""ema".v AS SELECT replace("co\l", '\', '/') AS c, 'a\' AS d FROM "we ird\sch""ema"."tab\le";
COMMENT ON TABLE "we ird\sch""ema"."tab\le" IS 'comment with \ and '' quote; \! x';
CREATE TABLE plain (a text);
COPY plain FROM stdin;
\\! data
\.
"#;

fn dump(db: &str, extra: &[&str]) -> Vec<u8> {
    let c = cluster();
    let out = Command::new(c.bindir.join("pg_dump"))
        .arg("-h")
        .arg(&c.socket_dir)
        .args(["-p", &c.port.to_string(), "-U", "postgres", "-d", db])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fingerprint(db: &TestDb) -> String {
    db.sql(
        r#"SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM "we ird\sch""ema"."tab\le" t;
           SELECT "we ird\sch""ema".f('a\b'), "we ird\sch""ema".g(3);
           SELECT string_agg(c || d, ',') FROM "we ird\sch""ema".v;
           SELECT a FROM plain;"#,
    )
}

#[test]
fn real_dumps_of_awkward_schemas_pass_and_load_the_same() {
    let src = TestDb::create("");
    src.sql(TRICKY);
    let want = fingerprint(&src);
    for extra in [
        &[][..],
        &["--inserts"][..],
        &["--column-inserts", "--quote-all-identifiers"][..],
    ] {
        let plain = dump(&src.name, extra);
        let p = preflight::scan(&plain[..], Compression::None, Default::default()).unwrap();
        assert!(p.acceptable(), "{extra:?}: {:?}", p.refused);
        assert!(p.inspect.trailer, "{extra:?}");
        assert!(p.privileged.is_empty(), "{extra:?}: {:?}", p.privileged);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let stored = gz.finish().unwrap();
        let dst = TestDb::create("");
        let key = guard::psql_supports_restrict("15.18").then(|| RestrictKey::random().unwrap());
        let (fed, ok, err) = load_guarded(&dst.name, &stored, Compression::Gzip, key);
        let fed = fed.unwrap();
        assert!(ok, "{extra:?}: {err}");
        assert_eq!(
            fed.sha256,
            pgkeep::pipeline::hash_reader(&stored[..]).unwrap().1
        );
        assert_eq!(fed.guard.raw_bytes, plain.len() as u64);
        assert!(fed.guard.pg_dump_restrict && fed.guard.pg_dump_unrestrict);
        assert_eq!(fingerprint(&dst), want, "{extra:?}");
    }
}
