//! The preflight read of a plain backup: the whole file through the same decoder and psql lexer
//! the load uses, before anything changes, so that a restore can refuse a file (naming the line
//! and the start of each refused command) and list the statements that need more than the
//! database owner's privilege. Reading, hashing and decompressing run on a thread of their own,
//! ahead of the lexer (`guard::each_chunk`).

use std::io::Read;

use super::guard::GuardError;
use super::inspect::{Inspector, Report};
use super::psql_scan::{Event, Finding, ScanEnd, ScanOptions, Scanner, Statement};
use crate::model::Compression;

/// Refusals and privileged statements kept in the report (the counts are complete).
const KEEP: usize = 100;

/// What the preflight found in a plain backup.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    /// Refused content, first ones first (after the first, positions are best effort: psql
    /// would have run the refused command, which the scanner does not model).
    pub refused: Vec<Finding>,
    pub refused_total: u64,
    /// Statements that need more than the database owner's privilege (COPY PROGRAM, server
    /// files, event triggers, publications FOR ALL, roles, extensions, SET ROLE, ...).
    pub privileged: Vec<Statement>,
    pub privileged_total: u64,
    /// pg_dump's `\restrict KEY` line (pg_dump 13.22+, 14.19+, 15.14+, 16.10+, 17.6+, 18)
    /// and its `\unrestrict KEY`.
    pub pg_dump_restrict: bool,
    pub pg_dump_unrestrict: bool,
    /// Rows per table, the completion trailer, truncation: the same inspector a backup runs.
    pub inspect: Report,
    pub end: ScanEnd,
    pub stored_bytes: u64,
    pub sha256: String,
}

impl Preflight {
    /// Whether psql may be given this file.
    pub fn acceptable(&self) -> bool {
        self.refused_total == 0
    }
}

/// Read a whole stored plain backup (any compression pgkeep writes) and scan it.
pub fn scan<R: Read + Send>(
    stored: R,
    compression: Compression,
    opts: ScanOptions,
) -> Result<Preflight, GuardError> {
    scan_with(stored, compression, opts, &mut |_| {})
}

/// [`scan`], showing every decompressed chunk to `observe` as well (one read for several
/// inspections).
pub fn scan_with<R: Read + Send>(
    stored: R,
    compression: Compression,
    opts: ScanOptions,
    observe: &mut dyn FnMut(&[u8]),
) -> Result<Preflight, GuardError> {
    let mut scanner = Scanner::new(opts);
    let mut inspector = Inspector::new();
    let mut out = Preflight::default();
    let (stored_bytes, sha256) = super::guard::each_chunk(stored, compression, |chunk| {
        observe(chunk);
        scanner.feed(chunk);
        inspector.feed(chunk);
        absorb(&mut out, scanner.take_events());
        Ok(())
    })?;
    (out.stored_bytes, out.sha256) = (stored_bytes, sha256);
    out.end = scanner.finish();
    absorb(&mut out, scanner.take_events());
    out.inspect = inspector.finish();
    Ok(out)
}

fn absorb(out: &mut Preflight, events: Vec<Event>) {
    for ev in events {
        match ev {
            Event::Refused(f) => {
                out.refused_total += 1;
                if out.refused.len() < KEEP {
                    out.refused.push(f);
                }
            }
            Event::Statement(s) if s.privilege.is_some() => {
                out.privileged_total += 1;
                if out.privileged.len() < KEEP {
                    out.privileged.push(s);
                }
            }
            Event::PgDumpRestrict { unrestrict, .. } => {
                if unrestrict {
                    out.pg_dump_unrestrict = true;
                } else {
                    out.pg_dump_restrict = true;
                }
            }
            _ => {}
        }
    }
}
