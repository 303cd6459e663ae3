//! psql variable interpolation (`:name`, `:'name'`, `:"name"`, `:{?name}`): the states of
//! [`Scanner`] after a colon, and the replay of what psql throws back when it is none.

use super::*;

fn variable_char(b: u8) -> bool {
    dolq_cont(b)
}

/// A name psql may have set: psql's own variables and `-v ON_ERROR_STOP` are upper case.
fn settable(name: &[u8]) -> bool {
    name.iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        && name.iter().any(|c| c.is_ascii_uppercase())
}

impl Scanner {
    pub(super) fn colon(&mut self, b: u8) {
        match b {
            b':' | b'=' => {
                self.st = St::Initial;
                self.tok(Tok::Op);
            }
            b'\'' | b'"' => {
                self.tag.clear();
                self.tag_off = self.off;
                self.tag.push(b);
                self.st = St::Var(Var::Quoted(b));
            }
            b'{' => {
                self.tag.clear();
                self.tag_off = self.off;
                self.tag.push(b);
                self.st = St::Var(Var::BraceOpen);
            }
            _ if variable_char(b) => {
                self.tag.clear();
                self.tag_off = self.off;
                self.tag.push(b);
                self.st = St::Var(Var::Plain);
            }
            _ => {
                self.st = St::Initial;
                self.tok(Tok::Op);
                self.initial(b);
            }
        }
    }

    pub(super) fn var(&mut self, v: Var, b: u8) {
        let name_from = match v {
            Var::Plain => 0,
            Var::Quoted(_) | Var::BraceOpen => 1,
            Var::Brace => 2,
        };
        if variable_char(b) && v != Var::BraceOpen {
            if self.tag.len() >= TAG_MAX {
                self.refuse(
                    FindingKind::Variable,
                    self.tag_off - 1,
                    self.line,
                    "a very long psql variable name".into(),
                );
                self.tag.truncate(name_from);
            }
            self.tag.push(b);
            return;
        }
        let named = self.tag.len() > name_from;
        let complete = match v {
            Var::Plain => true,
            Var::Quoted(q) => b == q && named,
            Var::BraceOpen => {
                if b == b'?' {
                    self.tag.push(b);
                    self.st = St::Var(Var::Brace);
                    return;
                }
                false
            }
            Var::Brace => b == b'}' && named,
        };
        self.st = St::Initial;
        if complete {
            if settable(&self.tag[name_from..]) {
                let mut text = vec![b':'];
                text.extend_from_slice(&self.tag);
                if v != Var::Plain {
                    text.push(b);
                }
                self.refuse(
                    FindingKind::Variable,
                    self.tag_off - 1,
                    self.line,
                    printable(&text),
                );
            }
            self.tok(Tok::Op);
            if v == Var::Plain {
                self.step(b);
            }
        } else {
            // psql throws back all but the colon and lexes it again.
            self.tok(Tok::Op);
            let again = std::mem::take(&mut self.tag);
            self.replay(&again, self.tag_off, b);
        }
    }

    pub(super) fn replay(&mut self, bytes: &[u8], start: u64, then: u8) {
        let now = self.off;
        for (k, &c) in bytes.iter().enumerate() {
            self.off = start + k as u64;
            self.step(c);
        }
        self.off = now;
        self.step(then);
    }
}
