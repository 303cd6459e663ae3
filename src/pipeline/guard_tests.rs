//! The guard's tests: a clean dump passes, nothing from a refused command on reaches psql, keys,
//! restricted mode, the hash of the stored bytes, and the preflight scan.

use std::io::Write;

use super::*;
use crate::pipeline::psql_scan::FindingKind;

const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abcDEF123\n\nSET standard_conforming_strings = on;\n\
COPY public.t (a) FROM stdin;\n\\! not a command\n\\N\n\\.\nSELECT 'x\\';\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abcDEF123\n\n";

/// Feed `data` in chunks of `chunk` bytes; the bytes written and the outcome.
fn guarded(
    data: &[u8],
    chunk: usize,
    key: Option<RestrictKey>,
) -> (Vec<u8>, Result<GuardReport, GuardError>) {
    let mut out = Vec::new();
    let mut g = Guard::new(GuardOptions {
        restrict_key: key,
        ..Default::default()
    });
    for c in data.chunks(chunk.max(1)) {
        if let Err(e) = g.feed(c, &mut out) {
            return (out, Err(e));
        }
    }
    let r = g.finish(&mut out);
    (out, r)
}

#[test]
fn a_clean_dump_passes_with_its_restrict_lines_replaced() {
    let want = DUMP
        .replace(
            "\\restrict abcDEF123",
            "-- pg_dump restrict line (replaced by pgkeep)",
        )
        .replace(
            "\\unrestrict abcDEF123",
            "-- pg_dump restrict line (replaced by pgkeep)",
        );
    for chunk in [1, 2, 3, 7, 16, 1000] {
        let (out, r) = guarded(DUMP.as_bytes(), chunk, None);
        let r = r.unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), want, "chunk {chunk}");
        assert!(r.pg_dump_restrict && r.pg_dump_unrestrict);
        assert_eq!(r.raw_bytes, DUMP.len() as u64);
        assert_eq!(r.written, want.len() as u64);
        assert_eq!(r.end.lines, DUMP.lines().count() as u64);
    }
}

/// The preamble of pg_dump 17+ (and of pg_restore 17+ writing a script).
const NEWER_PREAMBLE: &str = "SET statement_timeout = 0;\nSET transaction_timeout = 0;\nSET\n  transaction_timeout\n  TO 0; SELECT 1;\n\
SELECT 'SET transaction_timeout = 0;';\nSET app.transaction_timeout = 0;\nCOPY public.t (a) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n";

fn for_server(data: &[u8], chunk: usize, server_major: Option<u32>) -> (String, GuardReport) {
    let mut out = Vec::new();
    let mut g = Guard::new(GuardOptions {
        server_major,
        ..Default::default()
    });
    for c in data.chunks(chunk.max(1)) {
        g.feed(c, &mut out).unwrap();
    }
    let r = g.finish(&mut out).unwrap();
    (String::from_utf8(out).unwrap(), r)
}

#[test]
fn settings_an_older_server_does_not_know_are_left_out_line_for_line() {
    let comment =
        "/* left out by pgkeep: transaction_timeout needs PostgreSQL 17, the server is 13 */";
    let want = format!(
        "SET statement_timeout = 0;\n{comment}\n{comment}\n\n SELECT 1;\n\
SELECT 'SET transaction_timeout = 0;';\nSET app.transaction_timeout = 0;\nCOPY public.t (a) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n"
    );
    for chunk in [1, 2, 5, 13, 1000] {
        let (out, r) = for_server(NEWER_PREAMBLE.as_bytes(), chunk, Some(13));
        assert_eq!(out, want, "chunk {chunk}");
        assert_eq!(out.lines().count(), NEWER_PREAMBLE.lines().count());
        assert_eq!(
            r.left_out,
            vec![
                "line 2: SET transaction_timeout = 0".to_string(),
                "line 3: SET transaction_timeout TO 0".to_string()
            ]
        );
    }
    // A server that knows the setting, or no server named: the stream passes unchanged.
    for major in [Some(17), Some(18), None] {
        let (out, r) = for_server(NEWER_PREAMBLE.as_bytes(), 7, major);
        assert_eq!(out, NEWER_PREAMBLE, "{major:?}");
        assert!(r.left_out.is_empty());
    }
}

#[test]
fn a_very_long_set_passes_through_and_is_not_held() {
    let long = format!("SET transaction_timeout = '{}';\n", "9".repeat(10_000));
    let (out, r) = for_server(long.as_bytes(), 512, Some(13));
    assert_eq!(out, long);
    assert!(r.left_out.is_empty());
}

#[test]
fn restricted_mode_opens_line_one_and_keeps_line_numbers() {
    let key = RestrictKey::random().unwrap();
    let (out, r) = guarded(DUMP.as_bytes(), 5, Some(key.clone()));
    r.unwrap();
    let out = String::from_utf8(out).unwrap();
    let first = out.lines().next().unwrap();
    assert_eq!(first, format!("\\restrict {} \\\\ --", key.as_str()));
    assert_eq!(out.lines().count(), DUMP.lines().count());
    // An empty stream still restricts the session.
    let (out, r) = guarded(b"", 1, Some(key.clone()));
    r.unwrap();
    assert_eq!(
        out,
        format!("\\restrict {} \\\\ ", key.as_str()).into_bytes()
    );
}

#[test]
fn keys_are_random_alphanumeric_and_never_printed() {
    let a = RestrictKey::random().unwrap();
    let b = RestrictKey::random().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 32);
    assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(format!("{a:?}"), "RestrictKey(..)");
}

#[test]
fn nothing_from_a_refused_command_on_reaches_psql() {
    let cases: &[(&str, &str, FindingKind, u64)] = &[
        (
            "SELECT 1;\nSELECT 2; \\! touch x\nSELECT 3;\n",
            "SELECT 1;\nSELECT 2; ",
            FindingKind::MetaCommand,
            2,
        ),
        (
            "SELECT 1;\n\\! touch x\n",
            "SELECT 1;\n",
            FindingKind::MetaCommand,
            2,
        ),
        (
            "\\restrict abc\n\\connect live\n",
            "-- pg_dump restrict line (replaced by pgkeep)\n",
            FindingKind::MetaCommand,
            2,
        ),
        ("SELECT :DBNAME;\n", "SELECT ", FindingKind::Variable, 1),
        (
            "SELECT 1;\nSET client_encoding = 'SJIS';\nSELECT 2;\n",
            "SELECT 1;\nSET client_encoding = 'SJIS'",
            FindingKind::EncodingSwitch,
            2,
        ),
        ("SELECT 1 \0;\n", "SELECT 1 ", FindingKind::NulByte, 1),
        ("SELECT 1;\n\\", "SELECT 1;\n", FindingKind::MetaCommand, 2),
    ];
    for (input, forwarded, kind, line) in cases {
        for chunk in 1..=input.len() {
            let (out, r) = guarded(input.as_bytes(), chunk, None);
            let Err(GuardError::Refused(f)) = r else {
                panic!("{input:?} chunk {chunk}: {r:?}")
            };
            assert_eq!((f.kind, f.line), (*kind, *line), "{input:?}");
            let out = String::from_utf8(out).unwrap();
            assert_eq!(&out, forwarded, "{input:?} chunk {chunk}");
            assert!(!out.contains('\\') || out.starts_with("--"), "{input:?}");
        }
    }
}

#[test]
fn the_writer_adapter_reports_the_refusal_and_returns_psqls_pipe() {
    let mut w = GuardWriter::new(Vec::new(), GuardOptions::default());
    w.write_all(b"SELECT 1;\n").unwrap();
    let e = w.write_all(b"\\! id\n").unwrap_err();
    let inner = e.get_ref().and_then(|e| e.downcast_ref::<GuardError>());
    assert!(
        matches!(inner, Some(GuardError::Refused(f)) if f.line == 2),
        "{e}"
    );
    assert!(
        e.to_string().contains("line 2: psql meta-command `\\! id`"),
        "{e}"
    );
    let (err, pipe) = w.finish().unwrap_err();
    assert!(matches!(err, GuardError::Refused(_)));
    assert_eq!(pipe, b"SELECT 1;\n");
}

#[test]
fn the_hash_covers_the_stored_bytes_and_the_lexer_the_decompressed_ones() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(DUMP.as_bytes()).unwrap();
    let mut stored = gz.finish().unwrap();
    let (n, sha) = crate::pipeline::hash_reader(&stored[..]).unwrap();
    let mut out = Vec::new();
    let feed = feed_psql(
        &stored[..],
        Compression::Gzip,
        &mut out,
        GuardOptions::default(),
    )
    .unwrap();
    assert_eq!((feed.stored_bytes, feed.sha256.as_str()), (n, sha.as_str()));
    assert_eq!(feed.guard.raw_bytes, DUMP.len() as u64);
    // Bytes after the compressed stream are part of the stored file and of its checksum.
    stored.extend_from_slice(b"tail");
    let feed2 = feed_psql(
        &stored[..],
        Compression::Gzip,
        &mut Vec::new(),
        GuardOptions::default(),
    );
    match feed2 {
        Ok(f) => assert_ne!(f.sha256, sha),
        Err(GuardError::Decode(_)) => {}
        Err(e) => panic!("{e}"),
    }
    // A file that does not decompress.
    let e = feed_psql(
        &b"not gzip"[..],
        Compression::Gzip,
        &mut Vec::new(),
        GuardOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, GuardError::Decode(_)), "{e}");
    // A refusal in a zstd file.
    let z = zstd::encode_all(&b"SELECT 1;\n\\! id\n"[..], 3).unwrap();
    let mut out = Vec::new();
    let e = feed_psql(&z[..], Compression::Zstd, &mut out, GuardOptions::default()).unwrap_err();
    assert!(matches!(e, GuardError::Refused(_)));
    assert_eq!(out, b"SELECT 1;\n");
}

#[test]
fn restrict_support_by_version() {
    for (v, want) in [
        ("12.22", false),
        ("13.21", false),
        ("13.22", true),
        ("14.18", false),
        ("14.19", true),
        ("15.13", false),
        ("15.14", true),
        ("15.18", true),
        ("16.9", false),
        ("16.10", true),
        ("17.5", false),
        ("17.6", true),
        ("18beta2", false),
        ("18beta3", true),
        ("18rc1", true),
        ("18.0", true),
        ("19devel", true),
        ("15", false),
        ("", false),
        ("x", false),
    ] {
        assert_eq!(psql_supports_restrict(v), want, "{v}");
    }
}

#[test]
fn preflight_lists_refusals_privileges_restrict_and_trailer() {
    let file = format!("{DUMP}COPY t TO PROGRAM 'id';\n\\! a\nSELECT 1; \\o /tmp/x\n");
    let z = zstd::encode_all(file.as_bytes(), 3).unwrap();
    let p =
        crate::pipeline::preflight::scan(&z[..], Compression::Zstd, Default::default()).unwrap();
    assert!(!p.acceptable());
    let lines: Vec<u64> = p.refused.iter().map(|f| f.line).collect();
    assert_eq!(lines, vec![20, 21]);
    assert_eq!(p.refused[1].text, "\\o /tmp/x");
    assert_eq!(p.privileged.len(), 1);
    assert_eq!(p.privileged[0].head, "COPY t TO PROGRAM 'id'");
    assert!(p.pg_dump_restrict && p.pg_dump_unrestrict);
    assert!(!p.inspect.trailer, "statements follow the trailer");
    assert_eq!(p.inspect.tables["public.t"], 2);
    let clean =
        crate::pipeline::preflight::scan(DUMP.as_bytes(), Compression::None, Default::default())
            .unwrap();
    assert!(clean.acceptable() && clean.inspect.trailer);
    assert_eq!(
        clean.sha256,
        crate::pipeline::hash_reader(DUMP.as_bytes()).unwrap().1
    );
}

/// A caller may write a checked unit past the guard only where psql reads a fresh line of SQL
/// and the guard holds nothing back.
#[test]
fn the_guard_is_at_rest_only_between_whole_statements() {
    let key = RestrictKey::random().unwrap();
    let mut g = Guard::new(GuardOptions {
        restrict_key: Some(key),
        ..Default::default()
    });
    let mut out = Vec::new();
    // The restricted-mode opening is still to be written.
    assert!(!g.at_rest());
    g.open(&mut out).unwrap();
    assert!(g.at_rest());
    let steps: &[(&str, bool)] = &[
        ("SET search_path = a;\n", true),
        ("SET search_path = a;", false),
        ("\n", true),
        ("SELECT 'a\n", false),
        ("b';\n", true),
        ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1;\n", false),
        ("$$ LANGUAGE sql;\n", true),
        ("COPY t (a) FROM stdin;\n1\n", false),
        ("\\.\n", true),
        ("SELECT (1;\n", false),
    ];
    for (bytes, rest) in steps {
        g.feed(bytes.as_bytes(), &mut out).unwrap();
        assert_eq!(g.at_rest(), *rest, "after {bytes:?}");
    }
}
