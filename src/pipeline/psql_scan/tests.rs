//! The scanner's tests: psql's lexing rules case by case, statements and COPY blocks, stream
//! ends, findings, and properties that hold however the input is split.

use proptest::prelude::*;

use super::*;

fn opts() -> ScanOptions {
    ScanOptions::default()
}

fn refusals(input: &[u8], o: ScanOptions) -> Vec<(FindingKind, u64)> {
    let (events, _) = scan_all(input, o);
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Refused(f) => Some((f.kind, f.line)),
            _ => None,
        })
        .collect()
}

use FindingKind::*;

/// (input, first refusal expected: kind and line, or None to accept)
const CASES: &[(&str, Option<(FindingKind, u64)>)] = &[
    // meta-commands anywhere outside quotes
    ("\\! touch x\n", Some((MetaCommand, 1))),
    ("SELECT 1;\n\\! touch x\n", Some((MetaCommand, 2))),
    ("SELECT 1; \\! touch x\n", Some((MetaCommand, 1))),
    ("SELECT 1 \\g /tmp/x\n", Some((MetaCommand, 1))),
    ("SELECT (1,\n2) \\gexec\n", Some((MetaCommand, 2))),
    ("\\connect other\n", Some((MetaCommand, 1))),
    ("\\c other\n", Some((MetaCommand, 1))),
    ("\\copy t to '/tmp/x'\n", Some((MetaCommand, 1))),
    ("\\o /tmp/x\n", Some((MetaCommand, 1))),
    ("\\encoding SJIS\n", Some((MetaCommand, 1))),
    ("SELECT 1;\n\\", Some((MetaCommand, 2))),
    ("SELECT 1 \\; SELECT 2;\n", Some((BackslashEscape, 1))),
    ("SELECT 1 \\:x;\n", Some((BackslashEscape, 1))),
    // pg_dump's restrict lines, exactly as written
    (
        "\\restrict abcDEF123\nSELECT 1;\n\\unrestrict abcDEF123\n",
        None,
    ),
    ("\\restrict abc\r\n", None),
    ("\\restrict abc", None),
    ("\\restrict abc extra\n", Some((MetaCommand, 1))),
    ("\\restrict ab-c\n", Some((MetaCommand, 1))),
    ("\\restrict\n", Some((MetaCommand, 1))),
    (" \\restrict abc\n", Some((MetaCommand, 1))),
    ("SELECT 1; \\restrict abc\n", Some((MetaCommand, 1))),
    ("\\restrict abc \\! id\n", Some((MetaCommand, 1))),
    ("\\restrict abc\r\\! id\n", Some((MetaCommand, 1))),
    ("\\restrictabc\n", Some((MetaCommand, 1))),
    // single-quoted strings, standard_conforming_strings on
    ("SELECT '\\! x';\n", None),
    ("SELECT 'a''\\! x';\n", None),
    ("SELECT 'a\\'; \\! x\n", Some((MetaCommand, 1))),
    ("SELECT 'multi\nline \\! x\n';\n", None),
    // E'' strings
    ("SELECT E'a\\'; \\! x';\n", None),
    ("SELECT e'a\\\\'; \\! x\n", Some((MetaCommand, 1))),
    ("SELECT E'a''; \\! x';\n", None),
    ("SELECT xe'a\\'; \\! x\n", Some((MetaCommand, 1))),
    ("SELECT N'a\\'; \\! x\n", Some((MetaCommand, 1))),
    ("SELECT U&'a\\'; \\! x\n", Some((MetaCommand, 1))),
    ("SELECT B'0'; \\! x\n", Some((MetaCommand, 1))),
    ("SELECT X'0''\\! x';\n", None),
    // quote continuation: a CR is a newline to psql's lexer, a LF ends psql's line
    ("SELECT E'a'\r'\\'; \\! x; --';\n", None),
    ("SELECT E'a'\n\r'\\'; \\! x; --';\n", None),
    ("SELECT E'a'\n\n \r'\\'; \\! x; --';\n", None),
    (
        "SELECT E'a' \n\r'\\'; \\! x; --';\n",
        Some((MetaCommand, 2)),
    ),
    ("SELECT E'a'\r-- c\r'\\'; \\! x; --';\n", None),
    ("SELECT E'a' -x'\\'; \\! x\n", Some((MetaCommand, 1))),
    ("SELECT B'0'\r'\\'; \\! x\n", Some((MetaCommand, 1))),
    // quoted identifiers
    ("SELECT \"\\! x\";\n", None),
    ("SELECT \"a\"\"\\! x\";\n", None),
    ("SELECT U&\"\\! x\";\n", None),
    ("SELECT \"a\" \\! x\n", Some((MetaCommand, 1))),
    // comments
    ("-- \\! x\n", None),
    ("SELECT 1; -- \\! x\n", None),
    ("-- c\r\\! x\n", Some((MetaCommand, 1))),
    ("/* \\! x */\n", None),
    ("/* /* */ \\! x */\n", None),
    ("/* /* */ */ \\! x\n", Some((MetaCommand, 1))),
    ("/*/ \\! x */\n", None),
    ("SELECT 1 +/* \\! */ 2;\n", None),
    ("SELECT 1 */ \\! x\n", Some((MetaCommand, 1))),
    // dollar quotes
    ("SELECT $$ \\! x $$;\n", None),
    ("SELECT $f$ $$ \\! x $f$;\n", None),
    ("SELECT $f$ $g$ \\! $f$;\n", None),
    ("SELECT $f$x$g$f$ \\! x\n", Some((MetaCommand, 1))),
    ("SELECT $f$ x $f$ \\! x\n", Some((MetaCommand, 1))),
    ("SELECT $1 \\! x\n", Some((MetaCommand, 1))),
    ("SELECT a$$ \\! x $$;\n", Some((MetaCommand, 1))),
    ("SELECT $a \\! x $a;\n", Some((MetaCommand, 1))),
    ("SELECT $e'a\\'; \\! x';\n", None),
    (
        "CREATE FUNCTION f() RETURNS int AS $_$\nBEGIN\n \\! x\nEND $_$;\n",
        None,
    ),
    // COPY data is never lexed as SQL
    (
        "COPY t (a) FROM stdin;\n\\! x\n\\N\n'\n\\.\nSELECT 1;\n",
        None,
    ),
    (
        "COPY t (a) FROM stdin;\n\\! x\n\\.\n\\! y\n",
        Some((MetaCommand, 4)),
    ),
    ("COPY t FROM STDOUT;\n\\! x\n\\.\n", None),
    ("copy t from stdin with (format csv);\n\"\n\\.\n", None),
    ("COPY t FROM stdin;\r\n\\! x\r\n\\.\r\n", None),
    ("COPY t FROM stdin;\n\\.x\n\\! x\n\\.\n", None),
    ("COPY t\n  (a)\n  FROM stdin;\n\\! x\n\\.\n", None),
    ("COPY t TO stdout;\n\\! x\n", Some((MetaCommand, 2))),
    ("COPY t FROM PROGRAM 'id';\n\\! x\n", Some((MetaCommand, 2))),
    (
        "COPY t FROM '/etc/passwd';\n\\! x\n",
        Some((MetaCommand, 2)),
    ),
    ("COPY (SELECT 1 FROM x) TO stdout;\n", None),
    ("COPY t FROM stdin; SELECT 1;\n", Some((SqlAfterCopy, 1))),
    ("COPY t FROM stdin; -- c\n\\! x\n\\.\n", None),
    (
        "COPY t FROM stdin; -- c\r\\! x\n\\.\n",
        Some((SqlAfterCopy, 1)),
    ),
    ("COPY t FROM \"stdin\";\n", Some((UnclassifiedCopy, 1))),
    ("COPY t FROM :x;\n", Some((UnclassifiedCopy, 1))),
    // psql variables
    ("SELECT :ENCODING;\n", Some((Variable, 1))),
    ("SELECT :'DBNAME';\n", Some((Variable, 1))),
    ("SELECT :\"USER\";\n", Some((Variable, 1))),
    ("SELECT :{?ON_ERROR_STOP};\n", Some((Variable, 1))),
    ("SELECT a[1:2], x::int, y := 1, :foo, :'bar';\n", None),
    ("SELECT ':ENCODING', \":USER\";\n", None),
    ("SELECT :'x \\! y\n", None),
    ("SELECT :'' \\! y\n", Some((MetaCommand, 1))),
    // NUL bytes
    ("SELECT 1;\0\n", Some((NulByte, 1))),
    ("SELECT 1 \0'\n\\! x\n'\n", Some((NulByte, 1))),
    ("COPY t FROM stdin;\na\0\n\\.\n", Some((NulByte, 2))),
    // client encodings
    ("SET client_encoding = 'UTF8';\n", None),
    ("SET client_encoding TO 'LATIN1';\n", None),
    (
        "SET client_encoding = DEFAULT;\nRESET client_encoding;\n",
        None,
    ),
    ("SET client_encoding = 'SJIS';\n", Some((EncodingSwitch, 1))),
    (
        "SET SESSION client_encoding TO sjis;\n",
        Some((EncodingSwitch, 1)),
    ),
    ("SET NAMES 'BIG5';\n", Some((EncodingSwitch, 1))),
    (
        "SET client_encoding = E'\\123JIS';\n",
        Some((UnreadableSetting, 1)),
    ),
    (
        "SELECT pg_catalog.set_config('client_encoding', 'GBK', false);\n",
        Some((EncodingSwitch, 1)),
    ),
    ("SELECT set_config('search_path', '', false);\n", None),
    (
        "SELECT set_config(n, 'on', false);\n",
        Some((UnreadableSetting, 1)),
    ),
    (
        "UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding';\n",
        Some((UnreadableSetting, 1)),
    ),
    // standard_conforming_strings
    (
        "SET standard_conforming_strings = on;\nSELECT 'a\\'; \\! x\n",
        Some((MetaCommand, 2)),
    ),
    (
        "SET standard_conforming_strings = off;\nSELECT 'a''b', 'c\\\\', '\\\\''';\n",
        None,
    ),
    (
        "SET standard_conforming_strings = off;\nSELECT '\\''; \\! x\n",
        Some((StringDependsOnSettings, 2)),
    ),
    (
        "BEGIN;\nSET standard_conforming_strings = off;\nROLLBACK;\nSELECT 'a\\'; \\! x\n';\n",
        Some((StringDependsOnSettings, 4)),
    ),
    (
        "SELECT set_config('standard_conforming_strings', 'off', false);\nSELECT 'a\\'; \\! x';\n",
        Some((StringDependsOnSettings, 2)),
    ),
    (
        "SET standard_conforming_strings = maybe;\n",
        Some((UnreadableSetting, 1)),
    ),
    // numbers glued to letters
    ("SELECT 1e'\\'; \\! x';\n", Some((NumberJunk, 1))),
    ("SELECT 0x'1';\n", Some((NumberJunk, 1))),
    ("SELECT 1u&'x';\n", Some((NumberJunk, 1))),
    ("SELECT 1.5e3, 1e-3, .5, x'1f', 1 e'x', 1::text;\n", None),
    (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1begin; END;\n",
        Some((NumberJunk, 1)),
    ),
];

#[test]
fn every_case_is_lexed_as_psql_does() {
    let mut failed = Vec::new();
    for (input, want) in CASES {
        let got = refusals(input.as_bytes(), opts()).first().copied();
        if got != *want {
            failed.push(format!("{input:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

#[test]
fn begin_atomic_bodies_follow_the_psql_major() {
    // psql 14+ keeps the body together: the COPY inside it is no statement, so the next
    // line is SQL. psql 13 ends the statement at the first `;`.
    let input = b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; COPY t FROM stdin; END;\n\\! x\n";
    let o14 = ScanOptions {
        psql_major: 14,
        ..opts()
    };
    let o13 = ScanOptions {
        psql_major: 13,
        ..opts()
    };
    assert_eq!(refusals(input, o14), vec![(MetaCommand, 2)]);
    assert_eq!(refusals(input, o13).first(), Some(&(SqlAfterCopy, 1)));
    // CASE ... END inside the body does not end it.
    let case = b"CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 END; END;\nCOPY t FROM stdin;\n\\! data\n\\.\n";
    assert_eq!(refusals(case, o14), vec![]);
    // A procedure, with a `begin` inside parentheses that does not count.
    let p = b"CREATE PROCEDURE p(begin int) BEGIN ATOMIC INSERT INTO t VALUES (1); END;\nCOPY t FROM stdin;\n\\! d\n\\.\n";
    assert_eq!(refusals(p, o14), vec![]);
}

#[test]
fn statements_copy_blocks_and_privileges_are_reported() {
    let input = "SET x = 1;\nCOPY public.t (a) FROM stdin;\n1\n\\.\nCOPY t TO PROGRAM 'id';\n\
CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f();\nCREATE PUBLICATION p FOR ALL TABLES;\n\
CREATE PUBLICATION q FOR TABLE t;\nALTER ROLE app SUPERUSER;\nCREATE USER MAPPING FOR app SERVER s;\n\
CREATE EXTENSION plperlu;\nSET ROLE postgres;\nSET SESSION AUTHORIZATION 'x';\nALTER SYSTEM SET a = 1;\n\
LOAD 'x';\nCREATE OR REPLACE TRUSTED PROCEDURAL LANGUAGE plx;\nCOPY t FROM '/etc/passwd';\nSELECT 2";
    let o = ScanOptions {
        all_statements: true,
        ..opts()
    };
    let (events, end) = scan_all(input.as_bytes(), o);
    let stmts: Vec<Statement> = events
        .iter()
        .filter_map(|e| match e {
            Event::Statement(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let privs: Vec<Option<Privilege>> = stmts.iter().map(|s| s.privilege).collect();
    use Privilege::*;
    assert_eq!(
        privs,
        vec![
            None,
            None,
            Some(CopyProgram),
            Some(EventTrigger),
            Some(PublicationForAll),
            None,
            Some(Role),
            None,
            Some(Extension),
            Some(SetRole),
            Some(SetRole),
            Some(AlterSystem),
            Some(Load),
            Some(Language),
            Some(CopyServerFile),
            None,
        ]
    );
    assert_eq!(stmts[1].head, "COPY public.t (a) FROM stdin");
    assert_eq!(stmts[1].copy, Some(CopyKind::FromClient));
    assert_eq!(stmts[1].line, 2);
    let start = input.find("COPY public").unwrap() as u64;
    assert_eq!((stmts[1].start, stmts[1].end), (start, start + 29));
    let data = events
        .iter()
        .find_map(|e| match e {
            Event::CopyData { start, end, line } => Some((*line, *start, *end)),
            _ => None,
        })
        .unwrap();
    let at = input.find("1\n\\.").unwrap() as u64;
    assert_eq!(data, (3, at, Some(at + 2)));
    assert_eq!(stmts.last().unwrap().head, "SELECT 2");
    assert_eq!(end.lines, 18);
    assert!(!end.in_copy);
}

#[test]
fn stream_ends_are_reported() {
    let (_, end) = scan_all(b"COPY t FROM stdin;\n1\n2\n", opts());
    assert!(end.in_copy);
    for (input, what) in [
        ("SELECT 'x", "quoted string"),
        ("SELECT \"x", "quoted identifier"),
        ("SELECT $a$ x", "dollar-quoted string"),
        ("/* /* */", "block comment"),
    ] {
        let (_, end) = scan_all(input.as_bytes(), opts());
        assert_eq!(end.unterminated, Some(what), "{input}");
    }
    let (_, end) = scan_all(b"", opts());
    assert_eq!((end.lines, end.bytes), (0, 0));
}

#[test]
fn findings_name_line_offset_and_text() {
    let input = b"SELECT 1;\nSELECT 2; \\! touch /tmp/owned && rm -rf / # a long tail of text that goes on\n";
    let (events, _) = scan_all(input, opts());
    let Event::Refused(f) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!((f.line, f.offset), (2, 20));
    assert_eq!(
        f.text,
        "\\! touch /tmp/owned && rm -rf / # a long tail of text that g"
    );
    assert_eq!(
        f.to_string(),
        "line 2: psql meta-command `\\! touch /tmp/owned && rm -rf / # a long tail of text that g`"
    );
}

#[test]
fn safe_len_never_passes_an_undecided_or_refused_byte() {
    let mut s = Scanner::new(opts());
    s.feed(b"SELECT 1;\n\\restr");
    assert_eq!(s.safe_len(), 10);
    s.feed(b"ict abc\nSELECT :DBN");
    assert_eq!(s.safe_len(), 31);
    s.feed(b"AME");
    assert_eq!(s.safe_len(), 31);
    s.feed(b";\nSELECT 3;\n");
    assert_eq!(s.safe_len(), 31);
}

/// A sample with every construct, hostile and not, for the chunking properties.
fn sample() -> Vec<u8> {
    let mut v = Vec::new();
    for (input, _) in CASES {
        v.extend_from_slice(input.as_bytes());
        v.extend_from_slice(b";\n");
    }
    v.extend_from_slice("SELECT 'café', \"naïve\", $é$ü$é$; -- ünïcödé\n".as_bytes());
    v
}

fn scan_chunked(data: &[u8], sizes: &[usize]) -> (Vec<Event>, ScanEnd, Vec<u64>) {
    let o = ScanOptions {
        all_statements: true,
        ..opts()
    };
    let mut s = Scanner::new(o);
    let mut events = Vec::new();
    let mut safe = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        s.feed(&rest[..n]);
        events.extend(s.take_events());
        safe.push(s.safe_len());
        rest = &rest[n..];
        i += 1;
    }
    let end = s.finish();
    events.extend(s.take_events());
    (events, end, safe)
}

#[test]
fn every_split_point_gives_the_same_result() {
    let data = sample();
    let (whole, whole_end, _) = scan_chunked(&data, &[data.len()]);
    assert!(whole.iter().any(|e| matches!(e, Event::Refused(_))));
    for cut in 1..data.len() {
        let (events, end, _) = scan_chunked(&data, &[cut, data.len()]);
        assert_eq!(events, whole, "split at {cut}");
        assert_eq!(end, whole_end, "split at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_chunks_give_the_same_result(sizes in proptest::collection::vec(1usize..40, 1..20)) {
        let data = sample();
        let (whole, whole_end, _) = scan_chunked(&data, &[data.len()]);
        let (events, end, safe) = scan_chunked(&data, &sizes);
        prop_assert_eq!(events, whole);
        prop_assert_eq!(end, whole_end);
        prop_assert!(safe.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_does_not_matter(
        data in proptest::collection::vec(proptest::sample::select(b"'\"$\\-/*;:\n\r eExBu&(){}?aZ_0\xc3\xa9\x81".to_vec()), 0..200),
        cut in 0usize..200,
    ) {
        let cut = cut.min(data.len()).max(1);
        let (whole, whole_end, _) = scan_chunked(&data, &[data.len().max(1)]);
        let (events, end, _) = scan_chunked(&data, &[cut, 1, 3]);
        prop_assert_eq!(events, whole);
        prop_assert_eq!(end, whole_end);
    }
}

#[test]
fn set_statements_report_their_setting() {
    let input = "SET transaction_timeout = 0;\nset LOCAL Statement_Timeout TO 5;\nSET app.x = 1;\n\
SET TIME ZONE 'UTC';\nSET SESSION AUTHORIZATION 'x';\nSET ROLE r;\nSET NAMES 'UTF8';\n\
SELECT set_config('transaction_timeout', '0', false);\nSET \"transaction_timeout\" = 0;\n";
    let (events, _) = scan_all(input.as_bytes(), opts());
    let settings: Vec<(u64, Option<String>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Statement(s) => Some((s.line, s.setting.clone())),
            _ => None,
        })
        .collect();
    let some = |l, s: &str| (l, Some(s.to_string()));
    assert_eq!(
        settings,
        vec![
            some(1, "transaction_timeout"),
            some(2, "statement_timeout"),
            (5, None),
            (6, None),
        ],
        "only plain SETs name their setting (roles are reported for their privilege)"
    );
}
