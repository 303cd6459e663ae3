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

mod events;
mod finding;
mod scanner;
pub mod stmt;
#[cfg(test)]
mod tests;

pub use events::{Event, ScanEnd, ScanOptions, Statement};
pub use finding::{Finding, FindingKind};
pub use scanner::Scanner;
pub use stmt::{CopyKind, Privilege, ascii_safe_encoding};
/// Scan a whole buffer (tests, small inputs).
pub fn scan_all(data: &[u8], opts: ScanOptions) -> (Vec<Event>, ScanEnd) {
    let mut s = Scanner::new(opts);
    s.feed(data);
    let end = s.finish();
    (s.take_events(), end)
}
