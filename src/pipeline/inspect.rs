//! Reads a plain-format dump as it streams by: counts the rows of every COPY block and checks
//! that the dump ends with pg_dump's completion trailer. Constant memory: only the current line's
//! head is kept. Table names are the dump's bytes (see `model::name` for their keys); a quoted
//! name may hold a newline, so a COPY header may span lines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The line pg_dump writes when a plain dump is complete.
pub const TRAILER: &[u8] = b"-- PostgreSQL database dump complete";

/// The line pg_dumpall writes when its output is complete (`--globals-only` included).
pub const CLUSTER_TRAILER: &[u8] = b"-- PostgreSQL database cluster dump complete";

/// Lines longer than this are only looked at by their head (COPY headers are far shorter).
const MAX_LINE_HEAD: usize = 64 * 1024;

/// What the inspector saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Rows per table, keyed by the table name as the dump prints it (`public."SBI_USER"`), in
    /// the form of `model::name::key_of`.
    pub tables: BTreeMap<String, u64>,
    /// The dump's `SET client_encoding`: the encoding of its names.
    #[serde(default)]
    pub client_encoding: Option<String>,
    /// The completion trailer was seen, followed only by blank, comment or `\unrestrict` lines.
    pub trailer: bool,
    /// pg_dumpall's completion trailer was seen, on the same terms as `trailer`.
    #[serde(default)]
    pub cluster_trailer: bool,
    /// The stream ended inside a COPY block (a truncated dump).
    pub ended_in_copy: Option<String>,
    /// The stream ended in the middle of a line.
    pub ended_mid_line: bool,
    /// Large objects seen (`lo_create` / `lo_open` calls in the dump).
    pub large_objects: u64,
}

impl Report {
    /// Why this dump is incomplete, or `None` if it is complete.
    pub fn incomplete_reason(&self) -> Option<String> {
        if let Some(t) = &self.ended_in_copy {
            return Some(format!("the dump ends inside the data of table {t}"));
        }
        if !self.trailer {
            return Some(
                "the dump lacks pg_dump's completion trailer (\"-- PostgreSQL database dump complete\")"
                    .into(),
            );
        }
        None
    }
}

#[derive(Debug, Default)]
pub struct Inspector {
    report: Report,
    /// The table whose COPY data is streaming, if any.
    copy: Option<String>,
    rows: u64,
    /// Head of the current (unfinished) line.
    line: Vec<u8>,
    /// Bytes of the current line seen so far (may exceed `line.len()`).
    line_len: usize,
    /// A COPY header whose quoted name goes on past a newline.
    header: Option<Vec<u8>>,
}

impl Inspector {
    pub fn new() -> Inspector {
        Inspector::default()
    }

    /// Feed the next bytes of the dump.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.push(&data[..i]);
                    self.end_line();
                    data = &data[i + 1..];
                }
                None => {
                    self.push(data);
                    break;
                }
            }
        }
    }

    fn push(&mut self, part: &[u8]) {
        // Inside COPY data only the first bytes matter (to spot the `\.` terminator).
        let cap = if self.copy.is_some() {
            3
        } else {
            MAX_LINE_HEAD
        };
        if self.line.len() < cap {
            let take = (cap - self.line.len()).min(part.len());
            self.line.extend_from_slice(&part[..take]);
        }
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let full = self.line_len == line.len();
        self.line_len = 0;
        if let Some(table) = &self.copy {
            if full && line == b"\\." {
                let rows = self.rows;
                *self.report.tables.entry(table.clone()).or_insert(0) += rows;
                self.copy = None;
                self.rows = 0;
            } else {
                self.rows += 1;
            }
            self.line = line;
            self.line.clear();
            return;
        }
        let line = match self.header.take() {
            Some(mut head) => {
                head.push(b'\n');
                head.extend_from_slice(&line);
                head
            }
            None => line,
        };
        if line.starts_with(b"COPY ") && open_quote(&line) {
            if full && line.len() < MAX_LINE_HEAD {
                self.header = Some(line);
            }
            return;
        }
        if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") {
            if let Some(name) = copy_table(&line) {
                self.copy = Some(name);
                self.rows = 0;
            }
        } else if let Some(enc) = client_encoding(&line) {
            self.report.client_encoding = Some(enc);
        } else if line == TRAILER {
            self.report.trailer = true;
        } else if line == CLUSTER_TRAILER {
            self.report.cluster_trailer = true;
        } else if !trailer_epilogue(&line) {
            // Anything substantial after the trailer means the trailer was not the end.
            self.report.trailer = false;
            self.report.cluster_trailer = false;
        }
        if memchr::memmem::find(&line, b"lo_create(").is_some() {
            self.report.large_objects += 1;
        }
        self.line = line;
        self.line.clear();
    }

    /// The stream ended; return what was seen.
    pub fn finish(mut self) -> Report {
        if self.line_len > 0 {
            self.report.ended_mid_line = true;
            if self.copy.is_none() {
                self.report.trailer = false;
                self.report.cluster_trailer = false;
            }
        }
        if let Some(t) = self.copy.take() {
            self.report.ended_in_copy = Some(t);
            self.report.trailer = false;
            self.report.cluster_trailer = false;
        }
        self.report
    }
}

/// Lines allowed after the trailer: blanks, comments, and `\unrestrict KEY` (pg_dump 15.14+).
fn trailer_epilogue(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
        || line.starts_with(b"--")
        || line.starts_with(b"\\unrestrict ")
}

/// An odd number of double quotes: a quoted identifier is still open (doubled quotes inside
/// count twice).
fn open_quote(line: &[u8]) -> bool {
    memchr::memchr_iter(b'"', line).count() % 2 == 1
}

/// `SET client_encoding = 'LATIN1';` -> `LATIN1`.
fn client_encoding(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"SET client_encoding = '")?;
    let enc = rest.strip_suffix(b"';")?;
    Some(String::from_utf8_lossy(enc).into_owned())
}

/// The table name of `COPY name (cols) FROM stdin;`, as written (quotes kept).
fn copy_table(line: &[u8]) -> Option<String> {
    let rest = &line[5..];
    let mut i = 0;
    let mut in_quotes = false;
    while i < rest.len() {
        let b = rest[i];
        if in_quotes {
            if b == b'"' {
                if rest.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    in_quotes = false;
                }
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == b' ' || b == b'(' {
            break;
        }
        i += 1;
    }
    if i == 0 {
        return None;
    }
    Some(crate::model::name::key_of(&rest[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET x = 1;\n\
COPY public.\"SBI_USER\" (id, \"Name (x)\") FROM stdin;\n1\tann\n2\tbob\n\\.\n\n\
COPY \"we ird\".\"t \"\"q\"\"\" (a) FROM stdin;\n\\.\n\
COPY public.routes (id) FROM stdin;\n1\n2\n3\n\\.\n\
SELECT pg_catalog.lo_create('16400');\n\
--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    fn inspect_in_chunks(data: &[u8], chunk: usize) -> Report {
        let mut i = Inspector::new();
        for c in data.chunks(chunk) {
            i.feed(c);
        }
        i.finish()
    }

    #[test]
    fn counts_rows_whatever_the_chunking() {
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let r = inspect_in_chunks(DUMP.as_bytes(), chunk);
            assert!(r.trailer, "chunk {chunk}");
            assert_eq!(r.tables["public.\"SBI_USER\""], 2);
            assert_eq!(r.tables["\"we ird\".\"t \"\"q\"\"\""], 0);
            assert_eq!(r.tables["public.routes"], 3);
            assert_eq!(r.large_objects, 1);
            assert_eq!(r.incomplete_reason(), None);
        }
    }

    #[test]
    fn truncations_are_detected() {
        let d = DUMP.as_bytes();
        // Cut in the middle of a COPY block.
        let cut = DUMP.find("2\tbob").unwrap();
        let r = inspect_in_chunks(&d[..cut], 5);
        assert_eq!(r.ended_in_copy.as_deref(), Some("public.\"SBI_USER\""));
        assert!(r.incomplete_reason().unwrap().contains("SBI_USER"));
        // Cut before the trailer.
        let cut = DUMP.find("-- PostgreSQL database dump complete").unwrap();
        let r = inspect_in_chunks(&d[..cut], 5);
        assert!(!r.trailer);
        assert!(r.incomplete_reason().unwrap().contains("trailer"));
        // Empty.
        assert!(!inspect_in_chunks(b"", 1).trailer);
        // Trailer followed by more statements is not complete.
        let more = format!("{DUMP}CREATE TABLE x ();\n");
        assert!(!inspect_in_chunks(more.as_bytes(), 9).trailer);
        // A trailer line cut mid-way.
        let r = inspect_in_chunks(b"-- PostgreSQL database dump complete", 4);
        assert!(!r.trailer);
    }

    #[test]
    fn names_with_newlines_and_other_encodings_are_counted() {
        let d = b"SET client_encoding = 'LATIN1';\nCOPY public.\"new\nline\" (\"a\nb\") FROM stdin;\n1\n2\n\\.\nCOPY s.\"caf\xe9\" (a) FROM stdin;\n1\n\\.\n-- PostgreSQL database dump complete\n";
        for chunk in [1, 3, 4096] {
            let r = inspect_in_chunks(d, chunk);
            assert_eq!(r.tables["public.\"new\nline\""], 2, "chunk {chunk}");
            assert_eq!(r.tables[&crate::model::name::key_of(b"s.\"caf\xe9\"")], 1);
            assert_eq!(r.client_encoding.as_deref(), Some("LATIN1"));
            assert!(r.trailer);
        }
    }

    #[test]
    fn backslash_dot_inside_data_is_a_row() {
        // A data value starting with \. is escaped by pg_dump as \\. so a row reading `\\.x` is data.
        let d = b"COPY t (a) FROM stdin;\n\\\\.\n\\.x\n\\.\n-- PostgreSQL database dump complete\n";
        let r = inspect_in_chunks(d, 2);
        assert_eq!(r.tables["t"], 2);
        assert!(r.trailer);
    }
}
