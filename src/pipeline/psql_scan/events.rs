//! What a scan reports: its options, the events of the stream (statements, COPY data, pg_dump's
//! `\restrict` lines, refusals) and how it ended.

use super::finding::Finding;
use super::stmt::{CopyKind, Privilege};

/// How psql's session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// `standard_conforming_strings` when psql starts, which is also what `RESET` returns to.
    /// The caller pins it (`PGOPTIONS=-c standard_conforming_strings=on`).
    pub standard_conforming_strings: bool,
    /// psql's major version (13..): psql 14 and later keep `CREATE FUNCTION ... BEGIN ATOMIC`
    /// bodies together across semicolons.
    pub psql_major: u32,
    /// Report every statement ([`Event::Statement`]), not only the notable ones (COPY and
    /// those needing more than the owner's privilege).
    pub all_statements: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            standard_conforming_strings: true,
            psql_major: 18,
            all_statements: false,
        }
    }
}

/// A statement psql sends to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Line of its first token.
    pub line: u64,
    /// Offsets of its first token and of the byte after its `;` (or the end of the stream).
    pub start: u64,
    pub end: u64,
    /// Its first bytes, whitespace folded.
    pub head: String,
    pub copy: Option<CopyKind>,
    pub privilege: Option<Privilege>,
    /// The setting a `SET` statement sets (lower case): reported for every `SET`, whose bytes
    /// are held back until its end (up to a few KiB), so that a caller may replace it.
    pub setting: Option<String>,
}

/// What the scanner reports, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Refused(Finding),
    /// A line `\restrict KEY` or `\unrestrict KEY` as pg_dump writes it: bytes `start..end`
    /// (the newline included). pgkeep replaces it; it is never given to psql as it is.
    PgDumpRestrict {
        line: u64,
        start: u64,
        end: u64,
        unrestrict: bool,
    },
    Statement(Statement),
    /// The COPY data of the statement just reported: bytes `start..end`, the `\.` line
    /// excluded; `end` is `None` when the stream ended inside it.
    CopyData {
        line: u64,
        start: u64,
        end: Option<u64>,
    },
}

/// Where the stream ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanEnd {
    pub bytes: u64,
    /// Lines, counting a last line without a newline.
    pub lines: u64,
    /// The stream ended inside COPY data (a truncated dump).
    pub in_copy: bool,
    /// The stream ended inside a quoted string, identifier, dollar quote or block comment.
    pub unterminated: Option<&'static str>,
}
