//! Lexes a psql input stream the way psql 13-18 does, so that pgkeep knows, byte by byte, what
//! psql will do with a backup before psql sees it: which bytes are SQL, which are COPY data, where
//! a statement ends, and where psql would run a backslash meta-command. Fed arbitrary chunks
//! (split anywhere), constant memory, no I/O.
//!
//! The rules follow psql's own lexer (`psqlscan.l`, `mainloop.c`, `copy.c`), with these safety
//! decisions (each a [`FindingKind`]); a refusal is always decided before the newline of the line
//! on which psql would act, so a caller that withholds the rest of the stream from the refusal's
//! offset on keeps psql from acting on it:
//!
//! - A backslash outside quotes, comments and COPY data starts a meta-command (or the `\;` `\:`
//!   escapes): refused, except a whole line `\restrict KEY` / `\unrestrict KEY` as pg_dump writes
//!   them ([`Event::PgDumpRestrict`]).
//! - NUL bytes are refused anywhere: psql's line reader drops the rest of a line after one, so
//!   psql would not see the quotes and line ends that the scanner sees.
//! - `client_encoding` may only be set (by `SET`, `SET NAMES` or `set_config` with literal
//!   arguments) to an encoding in which no byte of a multi-byte character is ASCII
//!   ([`ascii_safe_encoding`]): in SJIS, BIG5, GBK, UHC, GB18030 or JOHAB psql skips the byte
//!   after a lead byte, which may be a `\` or a quote. A value pgkeep cannot read is refused.
//! - `standard_conforming_strings` is followed through `SET` and `set_config` as a *set* of
//!   values it may have (a `SET` inside a transaction that is rolled back leaves the old value,
//!   and pgkeep does not model transactions). While both values are possible, a `'...'` string
//!   whose end depends on the value is refused.
//! - psql variables that psql may have set (names in upper case, as all of psql's own are) are
//!   refused in every interpolation form: `:NAME` re-lexes the value as input.
//! - A quote right after a number with a letter (`1e'...'`, `0x'...'`) is refused: psql majors
//!   lex these differently (a string prefix or junk after the number).
//! - COPY: data follows only `COPY ... FROM STDIN|STDOUT;`, from the next line to a line `\.`;
//!   nothing but blanks or a comment may follow that `;` on its line, and a COPY whose source
//!   cannot be read is refused. The load must run with `ON_ERROR_STOP=1`: psql reads the data
//!   only after the server accepted the COPY, and stops at the first failing statement.
//!
//! What a lexer cannot see: SQL that changes `client_encoding` or `standard_conforming_strings`
//! without a plain `SET` or `set_config` call (through a function, a `DO` block, a trigger) makes
//! psql lex later lines by other rules. Restricted mode (`\restrict`, see
//! `crate::pipeline::guard`) is what stops meta-commands then; a psql without it is protected
//! by this scanner alone.

mod scanner;
pub mod stmt;
#[cfg(test)]
mod tests;

pub use scanner::Scanner;
pub use stmt::{CopyKind, Privilege, ascii_safe_encoding};

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

/// Why a stream may not be given to psql.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// A psql meta-command outside quotes, comments and COPY data.
    MetaCommand,
    /// psql's `\;` or `\:` escape.
    BackslashEscape,
    /// A NUL byte.
    NulByte,
    /// A psql variable reference that psql may expand.
    Variable,
    /// `client_encoding` set to an encoding that is not ASCII-safe (or unknown).
    EncodingSwitch,
    /// A change of `client_encoding` or `standard_conforming_strings` whose value cannot be read.
    UnreadableSetting,
    /// A string whose end depends on `standard_conforming_strings`, after the file changed it.
    StringDependsOnSettings,
    /// A quote right after a number with a letter, or letters glued to a number in a
    /// `CREATE` statement: lexed differently by different psql majors.
    NumberJunk,
    /// A dollar-quote tag longer than pgkeep follows.
    DollarTagTooLong,
    /// SQL after `COPY ... FROM STDIN;` on the same line (psql runs it after the data).
    SqlAfterCopy,
    /// A COPY whose source or destination cannot be read.
    UnclassifiedCopy,
}

impl FindingKind {
    pub fn describe(self) -> &'static str {
        match self {
            FindingKind::MetaCommand => "psql meta-command",
            FindingKind::BackslashEscape => "psql backslash escape",
            FindingKind::NulByte => "NUL byte",
            FindingKind::Variable => "psql variable reference",
            FindingKind::EncodingSwitch => "switch to an unsafe client encoding",
            FindingKind::UnreadableSetting => "setting change pgkeep cannot follow",
            FindingKind::StringDependsOnSettings => {
                "string constant whose end depends on standard_conforming_strings"
            }
            FindingKind::NumberJunk => "letters glued to a number",
            FindingKind::DollarTagTooLong => "dollar-quote tag too long",
            FindingKind::SqlAfterCopy => "SQL after COPY FROM STDIN on the same line",
            FindingKind::UnclassifiedCopy => "COPY pgkeep cannot classify",
        }
    }
}

/// Something in the stream that must not reach psql.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line, as psql counts them.
    pub line: u64,
    /// Byte offset in the (decompressed) stream: nothing from here on may reach psql.
    pub offset: u64,
    pub kind: FindingKind,
    /// The start of the offending text (a meta-command's first bytes), printable.
    pub text: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {} `{}`",
            self.line,
            self.kind.describe(),
            self.text
        )
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

/// Scan a whole buffer (tests, small inputs).
pub fn scan_all(data: &[u8], opts: ScanOptions) -> (Vec<Event>, ScanEnd) {
    let mut s = Scanner::new(opts);
    s.feed(data);
    let end = s.finish();
    (s.take_events(), end)
}
