//! The quoted parts of psql's input (strings, string continuations, dollar quotes), backslash
//! lines, and COPY data: the states of [`Scanner`] that hold text psql does not lex as SQL.

use super::*;

/// `\restrict KEY` / `\unrestrict KEY` as pg_dump writes them: `Some(unrestrict)`.
fn parse_restrict(line: &[u8]) -> Option<bool> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (rest, unrestrict) = if let Some(r) = line.strip_prefix(b"\\restrict") {
        (r, false)
    } else {
        (line.strip_prefix(b"\\unrestrict")?, true)
    };
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let key_at = rest.iter().position(|c| !blank(c))?;
    if key_at == 0 {
        return None;
    }
    let key = &rest[key_at..];
    let key_len = key.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
    (key_len > 0 && key_len <= 256 && key[key_len..].iter().all(blank)).then_some(unrestrict)
}

impl Scanner {
    pub(super) fn open_plain(&mut self) {
        let kind = match (self.scs_on, self.scs_off) {
            (true, false) => Kind::Xq,
            (false, true) => Kind::Xe,
            _ => Kind::Dual,
        };
        self.open(kind);
    }

    pub(super) fn open(&mut self, kind: Kind) {
        self.strbuf.clear();
        self.str_simple = matches!(kind, Kind::Xq | Kind::Xe | Kind::Dual);
        self.st = St::Str(Quoted {
            kind,
            on: Sub::Normal,
            off: Sub::Normal,
        });
    }

    /// One view of a quoted string; true when the string ended just before `b`.
    pub(super) fn sub_step(s: &mut Sub, b: u8, escapes: bool, doubling: bool) -> bool {
        match *s {
            Sub::Normal => {
                if b == b'\'' {
                    *s = Sub::Quote;
                } else if escapes && b == b'\\' {
                    *s = Sub::Escape;
                }
                false
            }
            Sub::Escape => {
                *s = Sub::Normal;
                false
            }
            Sub::Quote if b == b'\'' && doubling => {
                *s = Sub::Normal;
                false
            }
            Sub::Quote => true,
        }
    }

    pub(super) fn quoted(&mut self, mut q: Quoted, b: u8) {
        let was = (q.on, q.off);
        let (on_end, off_end) = match q.kind {
            Kind::Dual => (
                Self::sub_step(&mut q.on, b, false, true),
                Self::sub_step(&mut q.off, b, true, true),
            ),
            k => {
                let end = Self::sub_step(
                    &mut q.on,
                    b,
                    k == Kind::Xe,
                    matches!(k, Kind::Xq | Kind::Xe | Kind::Xus),
                );
                (end, end)
            }
        };
        match (on_end, off_end) {
            (false, false) => {
                if b == b'\\' && q.kind != Kind::Xq || b == b'\'' && was.0 == Sub::Quote {
                    self.str_simple = false;
                }
                if b != b'\'' && !(b == b'\\' && q.kind != Kind::Xq) {
                    self.push_str(&[b]);
                }
                self.st = St::Str(q);
            }
            (true, true) => {
                self.st = St::Xqs(Xqs {
                    prev: q.kind,
                    nl: false,
                    consumed: false,
                    dash: false,
                    comment: false,
                });
                self.step(b);
            }
            (on, _) => {
                self.refuse(
                    FindingKind::StringDependsOnSettings,
                    self.off,
                    self.line,
                    "a string constant read differently with standard_conforming_strings on and off"
                        .into(),
                );
                // Go on (for the report) with the view in which the string is still open.
                let sub = if on { q.off } else { q.on };
                self.st = St::Str(Quoted {
                    kind: if on { Kind::Xe } else { Kind::Xq },
                    on: sub,
                    off: Sub::Normal,
                });
                self.str_simple = false;
            }
        }
    }

    pub(super) fn xqs(&mut self, mut x: Xqs, b: u8) {
        let fail = if x.comment {
            match b {
                b'\r' => {
                    x.comment = false;
                    x.nl = true;
                    false
                }
                b'\n' => true,
                _ => false,
            }
        } else if x.dash {
            if b == b'-' {
                x.dash = false;
                x.comment = true;
                false
            } else {
                self.end_string();
                self.initial(b'-');
                self.step(b);
                return;
            }
        } else {
            match b {
                b' ' | b'\t' | 0x0c => {
                    x.consumed = true;
                    false
                }
                b'\r' => {
                    x.consumed = true;
                    x.nl = true;
                    false
                }
                b'\n' => x.consumed,
                b'-' => {
                    x.consumed = true;
                    x.dash = true;
                    false
                }
                b'\'' if x.nl => {
                    // A continuation: the string goes on, in the state it had.
                    self.str_simple = false;
                    self.st = St::Str(Quoted {
                        kind: x.prev,
                        on: Sub::Normal,
                        off: Sub::Normal,
                    });
                    return;
                }
                _ => true,
            }
        };
        if fail {
            self.end_string();
            self.initial(b);
        } else {
            self.st = St::Xqs(x);
        }
    }

    pub(super) fn end_string(&mut self) {
        self.st = St::Initial;
        let value = std::mem::take(&mut self.strbuf);
        let simple = self.str_simple;
        self.open_stmt();
        self.cls.token(
            Tok::Str {
                value: simple.then_some(value.as_slice()),
            },
            self.paren,
        );
        self.strbuf = value;
    }

    pub(super) fn dollar(&mut self, b: u8) {
        if self.tag.is_empty() && b.is_ascii_digit() {
            // A parameter `$1`, lexed like a number for the junk rule.
            self.st = St::Number { last: b };
        } else if b == b'$' {
            self.strbuf.clear();
            self.str_simple = true;
            self.st = St::DolQ { matched: 0 };
        } else if dolq_cont(b) && !(self.tag.is_empty() && b.is_ascii_digit()) {
            if self.tag.len() >= TAG_MAX {
                self.refuse(
                    FindingKind::DollarTagTooLong,
                    self.off,
                    self.line,
                    printable(&self.tag[..TEXT_MAX]),
                );
                self.tag.clear();
                self.st = St::Initial;
                self.step(b);
                return;
            }
            self.tag.push(b);
        } else {
            // psql's {dolqfailed}: the `$` alone, the rest lexed again.
            self.st = St::Initial;
            self.tok(Tok::Op);
            let again = std::mem::take(&mut self.tag);
            self.replay(&again, self.tag_off, b);
        }
    }

    pub(super) fn dolq(&mut self, matched: usize, b: u8) {
        let len = self.tag.len() + 2;
        let want = if matched == 0 || matched == len - 1 {
            b'$'
        } else {
            self.tag[matched - 1]
        };
        let matched = if b == want {
            matched + 1
        } else if b == b'$' {
            1
        } else {
            0
        };
        self.push_str(&[b]);
        if matched == len {
            self.st = St::Initial;
            let mut value = std::mem::take(&mut self.strbuf);
            let simple = self.str_simple && value.len() >= len;
            value.truncate(value.len().saturating_sub(len));
            self.open_stmt();
            self.cls.token(
                Tok::Str {
                    value: simple.then_some(value.as_slice()),
                },
                self.paren,
            );
            self.strbuf = value;
        } else {
            self.st = St::DolQ { matched };
        }
    }

    pub(super) fn meta_byte(&mut self, b: u8) {
        if b == b'\n' {
            self.end_meta(self.off + 1);
            return;
        }
        self.meta.push(b);
        let cap = if self.meta_col0 { META_MAX } else { TEXT_MAX };
        if self.meta.len() >= cap {
            self.end_meta(self.off + 1);
            self.st = St::MetaSkip;
        }
    }

    /// Decide on the backslash line collected so far; `end` is the offset after it.
    pub(super) fn end_meta(&mut self, end: u64) {
        self.st = St::Initial;
        self.meta_hold = None;
        // A backslash line is no part of the statement's text psql sends.
        self.comment_starts();
        let line = std::mem::take(&mut self.meta);
        let restrict = if self.meta_col0 && line.len() < META_MAX {
            parse_restrict(&line)
        } else {
            None
        };
        match restrict {
            Some(unrestrict) => self.events.push(Event::PgDumpRestrict {
                line: self.meta_line,
                start: self.meta_start,
                end,
                unrestrict,
            }),
            None => {
                let kind = if matches!(line.get(1), Some(b';' | b':')) {
                    FindingKind::BackslashEscape
                } else {
                    FindingKind::MetaCommand
                };
                let text = printable(line[..line.len().min(TEXT_MAX)].trim_ascii_end());
                self.refuse(kind, self.meta_start, self.meta_line, text);
            }
        }
        self.meta = line;
    }

    pub(super) fn after_copy(&mut self, dash: bool, comment: bool, refused: bool, b: u8) {
        let (mut dash, mut comment) = (dash, comment);
        if b == b'\n' && !dash {
            self.copy_start = self.off + 1;
            self.copy_line = self.line + 1;
            self.st = St::CopyStart(0);
            return;
        }
        let ok = if refused {
            true
        } else if comment {
            comment = b != b'\r';
            true
        } else if dash {
            dash = false;
            comment = b == b'-';
            comment
        } else if b == b'-' {
            dash = true;
            true
        } else {
            matches!(b, b' ' | b'\t' | b'\r' | 0x0c)
        };
        if !ok {
            self.refuse(
                FindingKind::SqlAfterCopy,
                self.off,
                self.line,
                "SQL after COPY ... FROM STDIN; on its line".into(),
            );
        }
        self.st = St::AfterCopy {
            dash,
            comment,
            refused: refused || !ok,
        };
    }

    pub(super) fn copy_start(&mut self, k: u8, b: u8) {
        self.st = match (k, b) {
            (_, b'\n') if k >= 2 => {
                self.events.push(Event::CopyData {
                    line: self.copy_line,
                    start: self.copy_start,
                    end: Some(self.off - k as u64),
                });
                St::Initial
            }
            (_, b'\n') => St::CopyStart(0),
            (0, b'\\') | (1, b'.') => St::CopyStart(k + 1),
            (2, b'\r') => St::CopyStart(3),
            _ => St::CopyLine,
        };
    }
}
