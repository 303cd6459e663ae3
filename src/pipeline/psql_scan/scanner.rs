//! The state machine behind [`Scanner`]: psql's lexer states one byte at a time, with memchr
//! runs through string bodies, comments and COPY data so that the bulk of a dump is skipped at
//! memory speed.

use memchr::{memchr, memchr2, memchr3};

mod quoted;
mod vars;

use super::events::{Event, ScanEnd, ScanOptions, Statement};
use super::finding::{Finding, FindingKind};
use super::stmt::{Classifier, CopyKind, TOKEN_MAX, Tok};

/// A backslash line kept to tell pg_dump's `\restrict KEY` from other meta-commands.
const META_MAX: usize = 300;
/// Bytes of a refused meta-command shown in its finding.
const TEXT_MAX: usize = 60;
/// Longest dollar-quote tag or variable name followed.
const TAG_MAX: usize = 1024;
/// Bytes of a statement kept as its head.
const HEAD_MAX: usize = 120;
/// A `SET` statement is held back (see [`Statement::setting`]) while it is at most this long.
const SET_HOLD_MAX: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `'...'` with standard_conforming_strings on.
    Xq,
    /// `E'...'`, or `'...'` with standard_conforming_strings off.
    Xe,
    /// `B'...'`.
    Xb,
    /// `X'...'`.
    Xh,
    /// `U&'...'`.
    Xus,
    /// `'...'` while standard_conforming_strings may be on or off: lexed both ways.
    Dual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Normal,
    /// Just after a quote: the end, or the first half of `''`.
    Quote,
    /// Just after a backslash (escape strings).
    Escape,
}

#[derive(Debug, Clone, Copy)]
struct Quoted {
    kind: Kind,
    /// The standard view (and the only one of kinds other than `Dual`).
    on: Sub,
    /// The escape view of `Dual`.
    off: Sub,
}

/// psql's `xqs` state: after a closing quote, looking for a continuation (`'a'<CR>'b'`).
#[derive(Debug, Clone, Copy)]
struct Xqs {
    prev: Kind,
    /// A `\r` (a newline to psql's lexer) was seen.
    nl: bool,
    /// Bytes were consumed on this line (psql carries the state to the next line only when
    /// the quote ended its line).
    consumed: bool,
    dash: bool,
    comment: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Plain,
    Quoted(u8),
    BraceOpen,
    Brace,
}

#[derive(Debug, Clone, Copy)]
enum St {
    Initial,
    Word,
    Number {
        last: u8,
    },
    Prefix(u8),
    UAmp,
    Dash,
    Slash,
    LineComment,
    Block {
        depth: u32,
        last: u8,
    },
    Str(Quoted),
    Xqs(Xqs),
    Ident {
        pending: bool,
    },
    Colon,
    Var(Var),
    Dollar,
    DolQ {
        matched: usize,
    },
    Meta,
    MetaSkip,
    AfterCopy {
        dash: bool,
        comment: bool,
        refused: bool,
    },
    CopyStart(u8),
    CopyLine,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn dolq_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit()
}

/// Bytes as printable text for a message.
fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Lexes a psql stream; see the module documentation for what it refuses.
#[derive(Debug)]
pub struct Scanner {
    opts: ScanOptions,
    st: St,
    /// Offset of the byte being processed (then: bytes processed).
    off: u64,
    line: u64,
    col0: bool,
    // psql's lexer bookkeeping
    paren: u32,
    begin: u32,
    ident_count: u32,
    idents: [u8; 4],
    scs_on: bool,
    scs_off: bool,
    // the current token
    tstart: u64,
    tline: u64,
    word: Vec<u8>,
    word_len: usize,
    strbuf: Vec<u8>,
    str_simple: bool,
    tag: Vec<u8>,
    tag_off: u64,
    colon_off: u64,
    meta: Vec<u8>,
    meta_start: u64,
    meta_line: u64,
    meta_col0: bool,
    // the current statement
    cls: Classifier,
    stmt_open: bool,
    stmt_start: u64,
    stmt_line: u64,
    collecting: bool,
    head: Vec<u8>,
    copy_start: u64,
    copy_line: u64,
    // results
    hold: Option<u64>,
    meta_hold: Option<u64>,
    /// Start of the open `SET` statement, held back until its end.
    set_hold: Option<u64>,
    events: Vec<Event>,
}

impl Scanner {
    pub fn new(opts: ScanOptions) -> Scanner {
        Scanner {
            opts,
            st: St::Initial,
            off: 0,
            line: 1,
            col0: true,
            paren: 0,
            begin: 0,
            ident_count: 0,
            idents: [0; 4],
            scs_on: opts.standard_conforming_strings,
            scs_off: !opts.standard_conforming_strings,
            tstart: 0,
            tline: 1,
            word: Vec::with_capacity(TOKEN_MAX),
            word_len: 0,
            strbuf: Vec::with_capacity(TOKEN_MAX),
            str_simple: false,
            tag: Vec::new(),
            tag_off: 0,
            colon_off: 0,
            meta: Vec::with_capacity(META_MAX),
            meta_start: 0,
            meta_line: 0,
            meta_col0: false,
            cls: Classifier::default(),
            stmt_open: false,
            stmt_start: 0,
            stmt_line: 0,
            collecting: false,
            head: Vec::with_capacity(HEAD_MAX),
            copy_start: 0,
            copy_line: 0,
            hold: None,
            meta_hold: None,
            set_hold: None,
            events: Vec::new(),
        }
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.off
    }

    /// The bytes before this offset may be given to psql: nothing refused or undecided
    /// starts before it.
    pub fn safe_len(&self) -> u64 {
        // A psql variable reference is decided at the byte after its name.
        let pending = matches!(self.st, St::Colon | St::Var(_)).then_some(self.colon_off);
        // The first word of a statement, until it is known not to be `SET`.
        let first_word = (matches!(self.st, St::Word) && !self.stmt_open).then_some(self.tstart);
        let set = self
            .set_hold
            .or(first_word)
            .filter(|&h| self.off - h <= SET_HOLD_MAX);
        [self.hold, self.meta_hold, pending, set]
            .into_iter()
            .flatten()
            .fold(self.off, u64::min)
    }

    /// At the start of a line outside any statement, token or COPY data, with nothing held
    /// back: bytes psql reads from here on are read as a fresh line of SQL.
    pub fn at_rest(&self) -> bool {
        matches!(self.st, St::Initial)
            && self.col0
            && !self.stmt_open
            && self.paren == 0
            && self.begin == 0
            && self.safe_len() == self.off
    }

    /// The events so far, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Feed the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let upto = memchr(0, data).unwrap_or(data.len());
            self.run(&data[..upto]);
            if upto == data.len() {
                break;
            }
            self.refuse(FindingKind::NulByte, self.off, self.line, "\\0".into());
            self.off += 1;
            self.col0 = false;
            data = &data[upto + 1..];
        }
    }

    fn run(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            let n = self.bulk(&data[i..]);
            if n > 0 {
                if self.collecting && self.head.len() < HEAD_MAX {
                    let take = n.min(HEAD_MAX - self.head.len());
                    self.head.extend_from_slice(&data[i..i + take]);
                }
                self.off += n as u64;
                self.col0 = false;
                i += n;
                continue;
            }
            let b = data[i];
            self.step(b);
            if self.collecting && self.head.len() < HEAD_MAX {
                self.head.push(b);
            }
            self.off += 1;
            if b == b'\n' {
                self.line += 1;
                self.col0 = true;
            } else {
                self.col0 = false;
            }
            i += 1;
        }
    }

    /// Bytes at the start of `d` that the current state skips without a transition (never a
    /// newline, so that lines are counted in `step`).
    fn bulk(&mut self, d: &[u8]) -> usize {
        let n = match self.st {
            St::CopyLine | St::MetaSkip => memchr(b'\n', d),
            St::LineComment => memchr2(b'\n', b'\r', d),
            St::Block { last: 0, .. } => memchr3(b'*', b'/', b'\n', d),
            St::Ident { pending: false } => memchr2(b'"', b'\n', d),
            St::Str(q) if q.on == Sub::Normal && q.off == Sub::Normal => match q.kind {
                Kind::Xe | Kind::Dual => memchr3(b'\'', b'\\', b'\n', d),
                _ => memchr2(b'\'', b'\n', d),
            },
            St::DolQ { matched: 0 } => memchr2(b'$', b'\n', d),
            St::Word => {
                let n = d.iter().take_while(|&&c| ident_cont(c)).count();
                for &c in &d[..n] {
                    self.push_word(c);
                }
                return n;
            }
            _ => return 0,
        }
        .unwrap_or(d.len());
        if matches!(self.st, St::Str(_) | St::DolQ { .. }) {
            self.push_str(&d[..n]);
        }
        n
    }

    fn push_str(&mut self, b: &[u8]) {
        let room = TOKEN_MAX - self.strbuf.len();
        if b.len() > room {
            self.str_simple = false;
        }
        self.strbuf.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn push_word(&mut self, b: u8) {
        if self.word.len() < TOKEN_MAX {
            self.word.push(b.to_ascii_lowercase());
        }
        self.word_len += 1;
    }

    fn refuse(&mut self, kind: FindingKind, offset: u64, line: u64, text: String) {
        self.hold = Some(self.hold.map_or(offset, |h| h.min(offset)));
        self.events.push(Event::Refused(Finding {
            line,
            offset,
            kind,
            text,
        }));
    }

    fn step(&mut self, b: u8) {
        match self.st {
            St::Initial => self.initial(b),
            St::Word => {
                if ident_cont(b) {
                    self.push_word(b);
                } else {
                    self.end_word();
                    self.initial(b);
                }
            }
            St::Number { last } => self.number(last, b),
            St::Prefix(p) => self.prefix(p, b),
            St::UAmp => match b {
                b'\'' => self.open(Kind::Xus),
                b'"' => self.st = St::Ident { pending: false },
                _ => {
                    // psql's {xufailed}: the `u` alone, then `&` lexed again.
                    self.st = St::Initial;
                    self.tok(Tok::Op);
                    self.tok(Tok::Op);
                    self.step(b);
                }
            },
            St::Dash => {
                if b == b'-' {
                    self.comment_starts();
                    self.st = St::LineComment;
                } else {
                    self.st = St::Initial;
                    self.tok(Tok::Op);
                    self.initial(b);
                }
            }
            St::Slash => {
                if b == b'*' {
                    self.comment_starts();
                    self.st = St::Block { depth: 0, last: 0 };
                } else {
                    self.st = St::Initial;
                    self.tok(Tok::Op);
                    self.initial(b);
                }
            }
            St::LineComment => {
                if b == b'\n' || b == b'\r' {
                    self.st = St::Initial;
                }
            }
            St::Block { depth, last } => self.block(depth, last, b),
            St::Str(q) => self.quoted(q, b),
            St::Xqs(x) => self.xqs(x, b),
            St::Ident { pending } => {
                if pending && b != b'"' {
                    self.st = St::Initial;
                    self.tok(Tok::QuotedIdent);
                    self.initial(b);
                } else {
                    self.st = St::Ident {
                        pending: !pending && b == b'"',
                    };
                }
            }
            St::Colon => self.colon(b),
            St::Var(v) => self.var(v, b),
            St::Dollar => self.dollar(b),
            St::DolQ { matched } => self.dolq(matched, b),
            St::Meta => self.meta_byte(b),
            St::MetaSkip => {
                if b == b'\n' {
                    self.st = St::Initial;
                }
            }
            St::AfterCopy {
                dash,
                comment,
                refused,
            } => self.after_copy(dash, comment, refused, b),
            St::CopyStart(k) => self.copy_start(k, b),
            St::CopyLine => {
                if b == b'\n' {
                    self.st = St::CopyStart(0);
                }
            }
        }
    }

    fn initial(&mut self, b: u8) {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c) {
            return;
        }
        self.tstart = self.off;
        self.tline = self.line;
        if !self.stmt_open && !self.collecting {
            self.collecting = true;
            self.head.clear();
        }
        match b {
            b'-' => self.st = St::Dash,
            b'/' => self.st = St::Slash,
            b'\'' => self.open_plain(),
            b'"' => self.st = St::Ident { pending: false },
            b'$' => {
                self.tag.clear();
                self.tag_off = self.off + 1;
                self.st = St::Dollar;
            }
            b'\\' => {
                self.meta.clear();
                self.meta.push(b);
                self.meta_start = self.off;
                self.meta_line = self.line;
                self.meta_col0 = self.col0;
                self.meta_hold = Some(self.off);
                self.st = St::Meta;
            }
            b':' => {
                self.colon_off = self.off;
                self.st = St::Colon;
            }
            b'(' => {
                self.paren += 1;
                self.tok(Tok::Punct(b));
            }
            b')' => {
                self.paren = self.paren.saturating_sub(1);
                self.tok(Tok::Punct(b));
            }
            b';' => self.semicolon(),
            b',' | b'.' | b'=' => self.tok(Tok::Punct(b)),
            b'0'..=b'9' => self.st = St::Number { last: b },
            b'e' | b'E' | b'b' | b'B' | b'x' | b'X' | b'n' | b'N' | b'u' | b'U' => {
                self.st = St::Prefix(b)
            }
            _ if ident_start(b) => {
                self.word.clear();
                self.word_len = 0;
                self.push_word(b);
                self.st = St::Word;
            }
            _ => self.tok(Tok::Op),
        }
    }

    fn comment_starts(&mut self) {
        if !self.stmt_open {
            self.collecting = false;
            self.head.clear();
        }
    }

    fn in_create(&self) -> bool {
        self.ident_count > 0 && self.idents[0] == b'c'
    }

    fn number(&mut self, last: u8, b: u8) {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
            let exponent = matches!(b, b'e' | b'E') && (last.is_ascii_digit() || last == b'.');
            if b.is_ascii_alphabetic() && !exponent && self.in_create() {
                // psql 15+ lexes `1begin` as junk after a number, older psql as `1` and a
                // word: the BEGIN ... END counting of CREATE FUNCTION would differ.
                self.refuse(
                    FindingKind::NumberJunk,
                    self.off,
                    self.line,
                    printable(&[last, b]),
                );
            }
            self.st = St::Number { last: b };
            return;
        }
        self.st = St::Initial;
        self.tok(Tok::Number);
        if last.is_ascii_alphabetic() && (b == b'\'' || (b == b'&' && matches!(last, b'u' | b'U')))
        {
            self.refuse(
                FindingKind::NumberJunk,
                self.off,
                self.line,
                printable(&[last, b]),
            );
        }
        self.initial(b);
    }

    fn prefix(&mut self, p: u8, b: u8) {
        match (p.to_ascii_lowercase(), b) {
            (b'e', b'\'') => self.open(Kind::Xe),
            (b'b', b'\'') => self.open(Kind::Xb),
            (b'x', b'\'') => self.open(Kind::Xh),
            // psql's {xnstart}: the `n` is eaten, the quote lexed as any quote.
            (b'n', b'\'') => self.open_plain(),
            (b'u', b'&') => self.st = St::UAmp,
            _ => {
                self.word.clear();
                self.word_len = 0;
                self.push_word(p);
                self.st = St::Word;
                self.step(b);
            }
        }
    }

    fn block(&mut self, depth: u32, last: u8, b: u8) {
        self.st = match (b, last) {
            (b'*', b'/') => St::Block {
                depth: depth + 1,
                last: 0,
            },
            (b'/', b'*') if depth == 0 => St::Initial,
            (b'/', b'*') => St::Block {
                depth: depth - 1,
                last: 0,
            },
            (b'*' | b'/', _) => St::Block { depth, last: b },
            _ => St::Block { depth, last: 0 },
        };
    }

    fn semicolon(&mut self) {
        let begin = if self.opts.psql_major >= 14 {
            self.begin
        } else {
            0
        };
        if self.paren > 0 || begin > 0 {
            self.tok(Tok::Punct(b';'));
            return;
        }
        self.end_statement(self.off + 1);
    }

    fn end_statement(&mut self, end: u64) {
        self.ident_count = 0;
        self.begin = 0;
        self.collecting = false;
        if !self.stmt_open {
            return;
        }
        self.stmt_open = false;
        self.set_hold = None;
        let out = self.cls.finish();
        for v in out.scs {
            if v {
                self.scs_on = true;
            } else {
                self.scs_off = true;
            }
        }
        if let Some((kind, text)) = out.refuse {
            self.refuse(kind, self.off, self.line, text);
        }
        if out.copy == Some(CopyKind::FromClient) && end > self.off {
            self.st = St::AfterCopy {
                dash: false,
                comment: false,
                refused: false,
            };
        }
        if self.opts.all_statements
            || out.copy.is_some()
            || out.privilege.is_some()
            || out.setting.is_some()
        {
            let head = String::from_utf8_lossy(&self.head)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            self.events.push(Event::Statement(Statement {
                line: self.stmt_line,
                start: self.stmt_start,
                end,
                head: printable(head.trim_end_matches(';').as_bytes()),
                copy: out.copy,
                privilege: out.privilege,
                setting: out
                    .setting
                    .map(|s| String::from_utf8_lossy(&s).into_owned()),
            }));
        }
        self.head.clear();
    }

    fn open_stmt(&mut self) {
        if !self.stmt_open {
            self.stmt_open = true;
            self.stmt_start = self.tstart;
            self.stmt_line = self.tline;
        }
    }

    fn tok(&mut self, t: Tok<'_>) {
        self.open_stmt();
        self.cls.token(t, self.paren);
    }

    fn end_word(&mut self) {
        self.st = St::Initial;
        let whole = self.word_len <= TOKEN_MAX;
        // psql 14+: semicolons inside CREATE FUNCTION|PROCEDURE ... BEGIN ... END do not end it.
        if self.ident_count == 0 {
            self.idents = [0; 4];
        }
        let w = self.word.as_slice();
        if whole
            && matches!(
                w,
                b"create" | b"function" | b"procedure" | b"or" | b"replace"
            )
            && self.ident_count < 4
        {
            self.idents[self.ident_count as usize] = w[0];
        }
        self.ident_count += 1;
        let i = self.idents;
        if i[0] == b'c'
            && (i[1] == b'f'
                || i[1] == b'p'
                || (i[1] == b'o' && i[2] == b'r' && (i[3] == b'f' || i[3] == b'p')))
            && self.paren == 0
        {
            match w {
                b"begin" => self.begin += 1,
                b"case" if self.begin >= 1 => self.begin += 1,
                b"end" if self.begin > 0 => self.begin -= 1,
                _ => {}
            }
        }
        self.open_stmt();
        self.cls.token(
            Tok::Word {
                text: &self.word,
                whole,
            },
            self.paren,
        );
        if self.cls.tokens() == 1 && whole && self.word == b"set" {
            self.set_hold = Some(self.stmt_start);
        }
    }

    /// The stream ended.
    pub fn finish(&mut self) -> ScanEnd {
        // End a pending token as any byte that continues none would.
        if !matches!(self.st, St::Meta | St::CopyStart(_) | St::CopyLine) {
            self.step(b' ');
        }
        let mut unterminated = None;
        let mut in_copy = false;
        match self.st {
            St::Xqs(_) => self.end_string(),
            St::Meta => self.end_meta(self.off),
            St::Str(_) => unterminated = Some("quoted string"),
            St::Ident { .. } => unterminated = Some("quoted identifier"),
            St::DolQ { .. } => unterminated = Some("dollar-quoted string"),
            St::Block { .. } => unterminated = Some("block comment"),
            St::CopyStart(_) | St::CopyLine => {
                in_copy = true;
                self.events.push(Event::CopyData {
                    line: self.copy_line,
                    start: self.copy_start,
                    end: None,
                });
            }
            _ => {}
        }
        if !in_copy && self.stmt_open {
            // psql sends what it has at the end of its input.
            self.end_statement(self.off);
        }
        let lines = if self.off == 0 {
            0
        } else if self.col0 {
            self.line - 1
        } else {
            self.line
        };
        ScanEnd {
            bytes: self.off,
            lines,
            in_copy,
            unterminated,
        }
    }
}
