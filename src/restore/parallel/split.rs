//! Cuts the stream a serial load would give psql (what the guard let through) into what a
//! parallel load runs where: the pre-data section, streamed to one connection in order; the
//! data entries (a table's COPY, cut into blocks of whole rows when pg_dump wrote it, sequence
//! values, large-object blocks kept whole), each given to the least busy connection; and the
//! post-data entries, kept for later. Entries are told by pg_dump's `-- Name: ...; Type: ...`
//! headers; statements by psql's own lexer (the scanner the guard runs). Each unit carries the
//! session state it was cut under and the one it leaves (see `state`).

use std::sync::Arc;

use super::fk::{self, Partitioned};
use super::schedule::Locks;
use super::state::{State, session_key};
use crate::pipeline::psql_scan::{CopyKind, Event, ScanOptions, Scanner};

/// Rows of a split COPY given to one connection at a time.
pub const COPY_BLOCK: usize = 4 << 20;
/// A unit is sent on in parts of about this size.
const PART: usize = 1 << 20;

/// The entry types of pg_dump's data section.
const DATA_TYPES: &[&str] = &[
    "TABLE DATA",
    "SEQUENCE SET",
    "BLOBS",
    "LARGE OBJECTS",
    "BLOB DATA",
];
/// Post-data entry types built in parallel, before everything else of the post-data section:
/// indexes and primary key, unique and exclusion constraints depend on the tables only.
const PARALLEL_POST: &[&str] = &["INDEX", "CONSTRAINT"];

/// Where the splitter sends what it cut.
pub trait Sink {
    /// The pre-data section, in order, as the serial load has it.
    fn pre(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The pre-data section ended (the first data entry begins): it must have run.
    fn pre_done(&mut self) -> std::io::Result<()>;
    /// A part of a data unit; `start` with the state of a new unit (the parts of one unit go
    /// to one connection, in order), `after` with the state its last part leaves.
    fn data(
        &mut self,
        start: Option<Arc<State>>,
        bytes: Vec<u8>,
        after: Option<Arc<State>>,
    ) -> std::io::Result<()>;
    /// A unit of its own: a block of a split COPY (its `COPY ... FROM stdin;` line, whole rows
    /// and `\.`), cut from what the guard let through, run under `state`, which it leaves.
    fn copy_block(&mut self, state: Arc<State>, block: Vec<u8>) -> std::io::Result<()>;
}

/// A post-data entry, held until the data is loaded.
#[derive(Debug, Clone)]
pub struct PostEntry {
    /// Built in parallel with the others of its kind.
    pub parallel: bool,
    /// What it locks, for the entries after the builds (see `schedule`).
    pub locks: Locks,
    /// The session state it starts under and the one it leaves.
    pub state: Arc<State>,
    pub after: Arc<State>,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pre,
    Data,
    Post,
}

/// A COPY being read.
struct Copy {
    /// `COPY ... FROM stdin;` when its rows may be cut into blocks.
    split_header: Option<Vec<u8>>,
    /// Rows start after the end of the COPY statement's line.
    in_rows: bool,
}

pub struct Splitter<S: Sink> {
    sink: S,
    scanner: Scanner,
    /// Bytes from stream offset `off` on that are not yet cut.
    buf: Vec<u8>,
    off: u64,
    phase: Phase,
    entry_type: String,
    state: State,
    /// The state of the current unit, set at its first statement.
    unit_state: Option<Arc<State>>,
    /// Bytes of the current data unit or post entry not yet sent.
    unit: Vec<u8>,
    unit_started: bool,
    copy: Option<Copy>,
    pub post: Vec<PostEntry>,
    /// The statements of the current post-data entry but its session `SET`s.
    entry_statements: Vec<Vec<u8>>,
    partitioned: Partitioned,
}

impl<S: Sink> Splitter<S> {
    pub fn new(sink: S, scan: ScanOptions) -> Splitter<S> {
        Splitter {
            sink,
            scanner: Scanner::new(ScanOptions {
                all_statements: true,
                ..scan
            }),
            buf: Vec::new(),
            off: 0,
            phase: Phase::Pre,
            entry_type: String::new(),
            state: State::default(),
            unit_state: None,
            unit: Vec::new(),
            unit_started: false,
            copy: None,
            post: Vec::new(),
            entry_statements: Vec::new(),
            partitioned: Partitioned::default(),
        }
    }

    /// The sink, when the stream failed.
    pub fn into_sink(self) -> S {
        self.sink
    }

    fn at(&self, offset: u64) -> usize {
        (offset - self.off) as usize
    }

    /// Drop the first bytes of the buffer up to stream offset `to`.
    fn consume(&mut self, to: u64) {
        let n = self.at(to);
        self.buf.drain(..n);
        self.off = to;
    }

    pub fn feed(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.scanner.feed(data);
        self.buf.extend_from_slice(data);
        for ev in self.scanner.take_events() {
            self.event(ev)?;
        }
        if self.copy.is_some() {
            self.copy_rows(None)?;
        }
        Ok(())
    }

    /// The stream ended: send what is left; the post-data entries stay in [`Splitter::post`].
    pub fn finish(mut self) -> std::io::Result<(S, Vec<PostEntry>)> {
        self.scanner.finish();
        for ev in self.scanner.take_events() {
            self.event(ev)?;
        }
        let rest = std::mem::take(&mut self.buf);
        match self.phase {
            Phase::Pre => self.sink.pre(&rest)?,
            _ => self.unit.extend_from_slice(&rest),
        }
        self.end_unit()?;
        Ok((self.sink, self.post))
    }

    fn event(&mut self, ev: Event) -> std::io::Result<()> {
        match ev {
            Event::Statement(s) => {
                let (a, b) = (self.at(s.start), self.at(s.end));
                if let Some(t) = header_type(&self.buf[..a]) {
                    self.entry(t)?;
                }
                let stmt = self.buf[a..b].to_vec();
                // A unit starts under the state before its first statement; the `SET`s in it
                // run in it (pg_dump's `SET SESSION AUTHORIZATION` around a grant, the
                // settings of the next entry) and are followed too.
                if self.phase != Phase::Pre && self.unit_state.is_none() {
                    self.unit_state = Some(Arc::new(self.state.clone()));
                }
                match session_key(&stmt) {
                    Some(k) => self.state.apply(&k, &stmt),
                    None if self.phase == Phase::Post => self.entry_statements.push(stmt.clone()),
                    None if self.phase == Phase::Pre => self.partitioned.statement(&stmt),
                    None => {}
                }
                if self.phase == Phase::Pre {
                    let upto = s.end;
                    let bytes = self.buf[..self.at(upto)].to_vec();
                    self.sink.pre(&bytes)?;
                    self.consume(upto);
                    if s.copy == Some(CopyKind::FromClient) {
                        self.copy = Some(Copy {
                            split_header: None,
                            in_rows: true,
                        });
                    }
                    return Ok(());
                }
                self.consume(s.end);
                if s.copy == Some(CopyKind::FromClient) {
                    // Only a COPY that is its entry's first statement: what an entry runs
                    // around it (`--disable-triggers`) must stay around all of its rows.
                    let split = self.phase == Phase::Data
                        && self.entry_type == "TABLE DATA"
                        && self.unit.is_empty()
                        && !self.unit_started
                        && splittable(&stmt);
                    self.copy = Some(Copy {
                        split_header: split.then(|| stmt.clone()),
                        in_rows: false,
                    });
                    if !split {
                        self.unit.extend_from_slice(&stmt);
                    }
                } else {
                    self.unit.extend_from_slice(&stmt);
                    self.unit.push(b'\n');
                    self.send_part(false)?;
                }
            }
            Event::CopyData { end: Some(e), .. } => self.copy_rows(Some(e))?,
            _ => {}
        }
        Ok(())
    }

    /// The rows of the COPY being read, up to `end` (its `\.` line, which is consumed too) or
    /// to the last whole line in the buffer.
    fn copy_rows(&mut self, end: Option<u64>) -> std::io::Result<()> {
        if self.phase == Phase::Pre {
            // The pre-data section streams on as it is, up to the end of the `\.` line.
            let upto = match end {
                Some(e) => {
                    // Part of the `\.` line may have been sent already.
                    let e = self.at(e.max(self.off));
                    self.buf[e..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(self.buf.len(), |p| e + p + 1)
                }
                None => self.buf.len(),
            };
            let bytes: Vec<u8> = self.buf.drain(..upto).collect();
            self.off += bytes.len() as u64;
            if end.is_some() {
                self.copy = None;
            }
            return self.sink.pre(&bytes);
        }
        let Some(copy) = self.copy.as_mut() else {
            return Ok(());
        };
        if !copy.in_rows {
            // The rest of the COPY statement's line.
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                return Ok(());
            };
            let rest: Vec<u8> = self.buf.drain(..=nl).collect();
            self.off += rest.len() as u64;
            copy.in_rows = true;
            if copy.split_header.is_none() {
                self.unit.extend_from_slice(&rest);
            }
        }
        let (rows_end, done) = match end {
            Some(e) => (self.at(e), true),
            None => match self.buf.iter().rposition(|&b| b == b'\n') {
                Some(p) => (p + 1, false),
                None => return Ok(()),
            },
        };
        let header = self.copy.as_ref().and_then(|c| c.split_header.clone());
        match &header {
            Some(h) => {
                let mut from = 0;
                while rows_end - from >= COPY_BLOCK || (done && rows_end > from) {
                    let cut = if rows_end - from > COPY_BLOCK {
                        let limit = from + COPY_BLOCK;
                        match self.buf[from..limit].iter().rposition(|&b| b == b'\n') {
                            Some(i) => from + i + 1,
                            // A row longer than a block: up to its end.
                            None => {
                                limit
                                    + self.buf[limit..rows_end]
                                        .iter()
                                        .position(|&b| b == b'\n')
                                        .map_or(rows_end - limit, |i| i + 1)
                            }
                        }
                    } else {
                        rows_end
                    };
                    let mut block = Vec::with_capacity(h.len() + cut - from + 8);
                    block.extend_from_slice(h);
                    block.push(b'\n');
                    block.extend_from_slice(&self.buf[from..cut]);
                    block.extend_from_slice(b"\\.\n");
                    let st = self.unit_state.clone().unwrap_or_default();
                    self.sink.copy_block(st, block)?;
                    from = cut;
                }
                let to = self.off + from as u64;
                self.consume(to);
            }
            None => {
                let bytes: Vec<u8> = self.buf.drain(..rows_end).collect();
                self.off += bytes.len() as u64;
                self.unit.extend_from_slice(&bytes);
                self.send_part(false)?;
            }
        }
        if done {
            // The `\.` line.
            let nl = self
                .buf
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.buf.len(), |p| p + 1);
            let term: Vec<u8> = self.buf.drain(..nl).collect();
            self.off += term.len() as u64;
            if header.is_none() {
                self.unit.extend_from_slice(&term);
            }
            self.copy = None;
        }
        Ok(())
    }

    /// A new entry of type `t` begins.
    fn entry(&mut self, t: String) -> std::io::Result<()> {
        self.end_unit()?;
        let data = DATA_TYPES.contains(&t.as_str());
        match (self.phase, data) {
            (Phase::Pre, true) => {
                self.sink.pre_done()?;
                self.phase = Phase::Data;
            }
            (Phase::Data, false) => self.phase = Phase::Post,
            _ => {}
        }
        self.entry_type = t;
        Ok(())
    }

    /// Send the current data unit on once it is big (or, with `all`, whatever it holds).
    fn send_part(&mut self, all: bool) -> std::io::Result<()> {
        if self.phase != Phase::Data || (!all && self.unit.len() < PART) || self.unit.is_empty() {
            return Ok(());
        }
        let start = if self.unit_started {
            None
        } else {
            self.unit_started = true;
            Some(self.unit_state.clone().unwrap_or_default())
        };
        let bytes = std::mem::take(&mut self.unit);
        let after = all.then(|| Arc::new(self.state.clone()));
        self.sink.data(start, bytes, after)
    }

    fn end_unit(&mut self) -> std::io::Result<()> {
        match self.phase {
            Phase::Data => self.send_part(true)?,
            Phase::Post if !self.unit.is_empty() => self.post.push(PostEntry {
                parallel: PARALLEL_POST.contains(&self.entry_type.as_str()),
                locks: fk::locks(&self.entry_type, &self.entry_statements, &self.partitioned),
                state: self.unit_state.clone().unwrap_or_default(),
                after: Arc::new(self.state.clone()),
                bytes: std::mem::take(&mut self.unit),
            }),
            _ => {}
        }
        self.unit.clear();
        self.entry_statements.clear();
        self.unit_state = None;
        self.unit_started = false;
        Ok(())
    }
}

/// The type of the last pg_dump entry header (`-- Name: x; Type: T; Schema: ...`) in the bytes
/// before a statement.
fn header_type(gap: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(gap);
    text.lines()
        .rev()
        .filter(|l| l.starts_with("-- ") && l.contains("Name: "))
        .find_map(entry_type)
}

/// `-- Name: TAG; Type: TYPE; Schema: ...`: the first `; Type: X; Schema: ` (a name may hold
/// `; Type: ` too; a type never holds `;`).
fn entry_type(line: &str) -> Option<String> {
    line.match_indices("; Type: ").find_map(|(i, m)| {
        let rest = &line[i + m.len()..];
        let end = rest.find(';')?;
        rest[end..]
            .starts_with("; Schema: ")
            .then(|| rest[..end].to_string())
    })
}

/// A COPY as pg_dump writes it (`COPY name (columns) FROM stdin;`: text format, one row a
/// line), whose rows may go to several connections.
fn splittable(stmt: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stmt).to_ascii_lowercase();
    s.starts_with("copy ") && s.trim_end().ends_with(" from stdin;")
}

#[cfg(test)]
#[path = "split_tests.rs"]
mod tests;
