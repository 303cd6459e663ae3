//! What one SQL statement of a psql stream means for a restore: whether the server will read
//! COPY data from psql next, whether it changes how psql lexes later lines (client_encoding,
//! standard_conforming_strings), and whether it needs more than the database owner's privilege.
//! Fed the statement's tokens by the scanner; keeps only a few words, so memory stays bounded.

use super::finding::FindingKind;

/// Bytes of a word, identifier or string kept for classification.
pub(super) const TOKEN_MAX: usize = 64;
/// Words at the head of a statement kept to recognise it.
const HEAD_WORDS: usize = 6;

/// A token of a statement, as the scanner saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    /// An unquoted word (keyword or identifier), lower-cased, at most `TOKEN_MAX` bytes;
    /// `whole` is false when it was longer.
    Word { text: &'a [u8], whole: bool },
    /// A double-quoted identifier's content.
    QuotedIdent,
    /// A string constant; `value` is its content when it is a plain constant of at most
    /// `TOKEN_MAX` bytes without escapes or continuations, else `None`.
    Str { value: Option<&'a [u8]> },
    /// A number or a positional parameter.
    Number,
    /// One of `( ) , . ; =`.
    Punct(u8),
    /// Any other operator character.
    Op,
}

/// What the server does with a COPY statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// `COPY ... FROM STDIN` (or `FROM STDOUT`, the same to the server): psql sends the lines
    /// that follow as data, up to a line `\.`.
    FromClient,
    /// `COPY ... TO STDOUT`: data goes to psql's output, nothing is read.
    ToClient,
    /// `COPY ... FROM/TO PROGRAM`: the server runs a shell command.
    Program,
    /// `COPY ... FROM/TO 'file'`: the server reads or writes one of its files.
    ServerFile,
}

/// Statements that need more than the database owner's privilege, or that reach beyond the
/// database: recorded for the restore's privilege check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// `COPY ... PROGRAM`: runs a command as the server's OS user.
    CopyProgram,
    /// `COPY ... 'file'`: reads or writes the server's files.
    CopyServerFile,
    /// `CREATE/ALTER EVENT TRIGGER`.
    EventTrigger,
    /// `CREATE PUBLICATION ... FOR ALL TABLES` (or another `FOR ALL`).
    PublicationForAll,
    /// `CREATE SUBSCRIPTION`.
    Subscription,
    /// `CREATE/ALTER/DROP ROLE|USER|GROUP`.
    Role,
    /// `CREATE EXTENSION` (trusted or not is decided later, by name).
    Extension,
    /// `SET ROLE`, `SET SESSION AUTHORIZATION` and their `RESET`.
    SetRole,
    /// `ALTER SYSTEM`.
    AlterSystem,
    /// `CREATE LANGUAGE`.
    Language,
    /// `LOAD 'library'`.
    Load,
    /// `CREATE/ALTER/DROP DATABASE`.
    Database,
    /// `CREATE/ALTER/DROP TABLESPACE`.
    Tablespace,
}

impl Privilege {
    pub fn describe(self) -> &'static str {
        match self {
            Privilege::CopyProgram => "COPY with PROGRAM runs a command on the server",
            Privilege::CopyServerFile => "COPY with a file name reads or writes a server file",
            Privilege::EventTrigger => "an event trigger",
            Privilege::PublicationForAll => "a publication FOR ALL",
            Privilege::Subscription => "a subscription",
            Privilege::Role => "a role change",
            Privilege::Extension => "an extension",
            Privilege::SetRole => "a change of the session's role",
            Privilege::AlterSystem => "ALTER SYSTEM",
            Privilege::Language => "a procedural language",
            Privilege::Load => "LOAD of a server library",
            Privilege::Database => "a database-level command",
            Privilege::Tablespace => "a tablespace",
        }
    }
}

/// The meaning of a finished statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    pub copy: Option<CopyKind>,
    pub privilege: Option<Privilege>,
    /// `standard_conforming_strings` may now have this value.
    pub scs: Vec<bool>,
    /// Refuse the statement (it changes psql's lexing in a way the scanner cannot follow).
    pub refuse: Option<(FindingKind, String)>,
    /// The setting a `SET [SESSION | LOCAL] name {TO | =} ...` sets (lower case, unqualified).
    pub setting: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum CopyStep {
    #[default]
    Direction,
    Target {
        from: bool,
    },
    TargetAfterProgram,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum SetStep {
    /// After SET: optional SESSION/LOCAL, then the name.
    #[default]
    Name,
    /// After the name: TO or =.
    Equals,
    /// The first value token.
    Value,
    Done,
}

/// A setting whose change alters how psql lexes the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexing {
    ClientEncoding,
    StandardStrings,
}

fn lexing_setting(name: &[u8]) -> Option<Lexing> {
    match name {
        b"client_encoding" => Some(Lexing::ClientEncoding),
        b"standard_conforming_strings" => Some(Lexing::StandardStrings),
        _ => None,
    }
}

/// Progress through `set_config ( 'name' , value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum SetConfigStep {
    #[default]
    Idle,
    Open,
    Name,
    Comma(Lexing),
    Value(Lexing),
    Unknown,
}

#[derive(Debug, Default)]
pub(super) struct Classifier {
    head: [[u8; 24]; HEAD_WORDS],
    head_len: [u8; HEAD_WORDS],
    words: usize,
    tokens: usize,
    copy: CopyStep,
    set: SetStep,
    set_target: Option<Lexing>,
    set_config: SetConfigStep,
    for_all: u8,
    out: Outcome,
}

impl Classifier {
    fn head(&self, i: usize) -> &[u8] {
        &self.head[i][..self.head_len[i] as usize]
    }

    fn is(&self, words: &[&[u8]]) -> bool {
        words.len() <= self.words.min(HEAD_WORDS)
            && words.iter().enumerate().all(|(i, w)| self.head(i) == *w)
    }

    /// Tokens of the statement so far.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Feed the next token of the statement; `depth` is psql's parenthesis depth.
    pub fn token(&mut self, t: Tok<'_>, depth: u32) {
        if let Tok::Word { text, .. } = t
            && depth == 0
            && self.words < HEAD_WORDS
        {
            let n = text.len().min(24);
            self.head[self.words][..n].copy_from_slice(&text[..n]);
            self.head_len[self.words] = n as u8;
            self.words += 1;
        }
        self.tokens += 1;
        self.set_config(t);
        if self.tokens == 1 {
            return;
        }
        match self.head(0) {
            b"copy" => self.copy(t, depth),
            b"set" => self.set(t),
            b"update" => self.update(t),
            b"create" if self.is(&[b"create", b"publication"]) => self.publication(t, depth),
            _ => {}
        }
    }

    fn copy(&mut self, t: Tok<'_>, depth: u32) {
        let kind = match (self.copy, t) {
            (CopyStep::Direction, Tok::Word { text: b"from", .. }) if depth == 0 => {
                self.copy = CopyStep::Target { from: true };
                return;
            }
            (CopyStep::Direction, Tok::Word { text: b"to", .. }) if depth == 0 => {
                self.copy = CopyStep::Target { from: false };
                return;
            }
            (
                CopyStep::Target { .. },
                Tok::Word {
                    text: b"program", ..
                },
            ) => {
                self.copy = CopyStep::TargetAfterProgram;
                return;
            }
            (CopyStep::Target { from }, Tok::Word { text, .. })
                if text == b"stdin" || text == b"stdout" =>
            {
                if from {
                    CopyKind::FromClient
                } else {
                    CopyKind::ToClient
                }
            }
            (CopyStep::Target { .. }, Tok::Str { .. }) => CopyKind::ServerFile,
            (CopyStep::TargetAfterProgram, _) => CopyKind::Program,
            (CopyStep::Target { .. }, _) => {
                // Neither STDIN/STDOUT, PROGRAM nor a file name: pgkeep cannot tell whether
                // psql would send the following lines as data, so it refuses.
                self.copy = CopyStep::Done;
                self.out.refuse = Some((
                    FindingKind::UnclassifiedCopy,
                    "COPY whose source pgkeep cannot read".into(),
                ));
                return;
            }
            _ => return,
        };
        self.copy = CopyStep::Done;
        self.out.copy = Some(kind);
        self.out.privilege = match kind {
            CopyKind::Program => Some(Privilege::CopyProgram),
            CopyKind::ServerFile => Some(Privilege::CopyServerFile),
            _ => None,
        };
    }

    fn set(&mut self, t: Tok<'_>) {
        match (self.set, t) {
            // SET SESSION / SET LOCAL: the name comes next.
            (SetStep::Name, Tok::Word { text, .. }) if text == b"session" || text == b"local" => {}
            (SetStep::Name, Tok::Word { text, whole }) => {
                self.set = match text {
                    b"names" => {
                        self.set_target = Some(Lexing::ClientEncoding);
                        SetStep::Value
                    }
                    b"authorization" | b"role" => SetStep::Done,
                    _ => {
                        self.set_target = lexing_setting(text);
                        self.out.setting = whole.then(|| text.to_vec());
                        SetStep::Equals
                    }
                }
            }
            (SetStep::Name, Tok::QuotedIdent) => {
                // A quoted setting name: the setting cannot be read here.
                self.set = SetStep::Done;
            }
            (SetStep::Equals, Tok::Word { text: b"to", .. })
            | (SetStep::Equals, Tok::Punct(b'=')) => {
                self.set = SetStep::Value;
            }
            (SetStep::Equals, _) => {
                // `SET x.y = ...` (a qualified name) or `FROM CURRENT`: not one of ours.
                self.set_target = None;
                self.out.setting = None;
                self.set = SetStep::Done;
            }
            (SetStep::Value, _) if self.set_target.is_none() => self.set = SetStep::Done,
            (SetStep::Value, t) => {
                self.set = SetStep::Done;
                if let Some(target) = self.set_target {
                    self.setting_value(target, value_text(t), true);
                }
            }
            _ => {}
        }
    }

    fn update(&mut self, t: Tok<'_>) {
        if let Tok::Word {
            text: b"pg_settings",
            ..
        } = t
            && self.tokens <= 5
        {
            self.out.refuse = Some((
                FindingKind::UnreadableSetting,
                "UPDATE of pg_settings".into(),
            ));
        }
    }

    fn publication(&mut self, t: Tok<'_>, depth: u32) {
        let want: &[u8] = match self.for_all {
            0 => b"for",
            1 => b"all",
            _ => return,
        };
        match t {
            Tok::Word { text, .. } if depth == 0 && text == want => {
                self.for_all += 1;
                if self.for_all == 2 {
                    self.out.privilege = Some(Privilege::PublicationForAll);
                }
            }
            _ => self.for_all = 0,
        }
    }

    /// `set_config('client_encoding' | 'standard_conforming_strings', value, ...)` anywhere in
    /// a statement changes psql's lexing of the following lines.
    fn set_config(&mut self, t: Tok<'_>) {
        use SetConfigStep as S;
        self.set_config = match (self.set_config, t) {
            (
                _,
                Tok::Word {
                    text: b"set_config",
                    ..
                },
            ) => S::Open,
            (S::Open, Tok::Punct(b'(')) => S::Name,
            (S::Name, Tok::Str { value: Some(v) }) => {
                match lexing_setting(&v.to_ascii_lowercase()) {
                    Some(l) => S::Comma(l),
                    None => S::Idle,
                }
            }
            (S::Name, _) => S::Unknown,
            (S::Comma(l), Tok::Punct(b',')) => S::Value(l),
            (S::Comma(_), _) => S::Unknown,
            (S::Value(l), t) => {
                self.setting_value(l, value_text(t), false);
                S::Idle
            }
            _ => S::Idle,
        };
        if self.set_config == S::Unknown {
            self.set_config = S::Idle;
            self.out.refuse = Some((
                FindingKind::UnreadableSetting,
                "set_config with a setting name or value pgkeep cannot read".into(),
            ));
        }
    }

    /// A new value for a setting that changes psql's lexing. `None`: not readable.
    fn setting_value(&mut self, target: Lexing, value: Option<&[u8]>, allow_default: bool) {
        let Some(v) = value else {
            self.out.refuse = Some((
                FindingKind::UnreadableSetting,
                "a change of client_encoding or standard_conforming_strings whose value pgkeep cannot read".into(),
            ));
            return;
        };
        if allow_default && v.eq_ignore_ascii_case(b"default") {
            // Back to the session's start value, which the caller pinned.
            return;
        }
        match target {
            Lexing::StandardStrings => match parse_bool(v) {
                Some(b) => self.out.scs.push(b),
                None => {
                    self.out.refuse = Some((
                        FindingKind::UnreadableSetting,
                        format!(
                            "standard_conforming_strings set to `{}`",
                            String::from_utf8_lossy(v)
                        ),
                    ))
                }
            },
            Lexing::ClientEncoding => {
                if !ascii_safe_encoding(v) {
                    self.out.refuse = Some((
                        FindingKind::EncodingSwitch,
                        format!(
                            "client_encoding set to `{}`, an encoding in which a multi-byte character can hide a backslash or a quote",
                            String::from_utf8_lossy(v)
                        ),
                    ));
                }
            }
        }
    }

    /// The statement ended (psql sends it).
    pub fn finish(&mut self) -> Outcome {
        let out = std::mem::take(&mut self.out);
        let privilege = out.privilege.or_else(|| self.head_privilege());
        *self = Classifier::default();
        Outcome { privilege, ..out }
    }

    fn head_privilege(&self) -> Option<Privilege> {
        let w1 = if self.words > 1 { self.head(1) } else { b"" };
        let w2 = if self.words > 2 { self.head(2) } else { b"" };
        let ddl = matches!(self.head(0), b"create" | b"alter" | b"drop");
        Some(match self.head(0) {
            _ if ddl && w1 == b"event" && w2 == b"trigger" => Privilege::EventTrigger,
            _ if ddl && matches!(w1, b"role" | b"group") => Privilege::Role,
            _ if ddl && w1 == b"user" && w2 != b"mapping" => Privilege::Role,
            _ if ddl && w1 == b"database" => Privilege::Database,
            _ if ddl && w1 == b"tablespace" => Privilege::Tablespace,
            b"create" if w1 == b"subscription" => Privilege::Subscription,
            b"create" if w1 == b"extension" => Privilege::Extension,
            b"create" if self.is_language() => Privilege::Language,
            b"alter" if w1 == b"system" => Privilege::AlterSystem,
            b"load" => Privilege::Load,
            b"set" | b"reset" if self.sets_role() => Privilege::SetRole,
            _ => return None,
        })
    }

    fn is_language(&self) -> bool {
        (1..self.words.min(HEAD_WORDS)).any(|i| self.head(i) == b"language")
            && (1..self.words.min(HEAD_WORDS)).all(|i| {
                matches!(
                    self.head(i),
                    b"or" | b"replace" | b"trusted" | b"procedural" | b"language"
                ) || i > 1 && self.head(i - 1) == b"language"
            })
    }

    fn sets_role(&self) -> bool {
        let mut i = 1;
        if self.words > 1 && matches!(self.head(1), b"local") {
            i = 2;
        }
        if self.words > i && self.head(i) == b"session" {
            return self.words > i + 1 && self.head(i + 1) == b"authorization";
        }
        self.words > i && self.head(i) == b"role"
    }
}

/// The text of a value token (identifiers are lower-cased by the server, as here).
fn value_text<'a>(t: Tok<'a>) -> Option<&'a [u8]> {
    match t {
        Tok::Word { text, whole: true } => Some(text),
        Tok::Str { value } => value,
        // Numbers reach a boolean as their text; `1`/`0` are the only ones it takes, and
        // pgkeep does not keep number texts, so it refuses them.
        _ => None,
    }
}

/// PostgreSQL's `parse_bool`: case-insensitive prefixes of true/false/yes/no, `on`, `off`,
/// `1`, `0`.
pub(super) fn parse_bool(v: &[u8]) -> Option<bool> {
    let l = v.to_ascii_lowercase();
    let prefix_of = |word: &[u8]| !l.is_empty() && word.starts_with(&l);
    match l.first()? {
        b't' if prefix_of(b"true") => Some(true),
        b'f' if prefix_of(b"false") => Some(false),
        b'y' if prefix_of(b"yes") => Some(true),
        b'n' if prefix_of(b"no") => Some(false),
        b'o' if l == b"on" => Some(true),
        b'o' if l == b"of" || l == b"off" => Some(false),
        b'1' if l.len() == 1 => Some(true),
        b'0' if l.len() == 1 => Some(false),
        _ => None,
    }
}

/// Encodings in which every byte of a multi-byte character has its high bit set, so that no
/// byte of one can be read as `\`, a quote or any other ASCII character: the server-side
/// encodings. Names are compared as PostgreSQL's `clean_encoding_name` does (lower case, only
/// letters and digits); a name not listed is treated as unsafe.
pub fn ascii_safe_encoding(name: &[u8]) -> bool {
    let clean: Vec<u8> = name
        .iter()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const SAFE: &[&str] = &[
        "utf8",
        "unicode",
        "sqlascii",
        "eucjp",
        "euccn",
        "euckr",
        "euctw",
        "eucjis2004",
        "muleinternal",
        "latin1",
        "latin2",
        "latin3",
        "latin4",
        "latin5",
        "latin6",
        "latin7",
        "latin8",
        "latin9",
        "latin10",
        "iso88591",
        "iso88592",
        "iso88593",
        "iso88594",
        "iso88595",
        "iso88596",
        "iso88597",
        "iso88598",
        "iso88599",
        "iso885910",
        "iso885913",
        "iso885914",
        "iso885915",
        "iso885916",
        "koi8",
        "koi8r",
        "koi8u",
        "win",
        "alt",
        "win866",
        "win874",
        "win1250",
        "win1251",
        "win1252",
        "win1253",
        "win1254",
        "win1255",
        "win1256",
        "win1257",
        "win1258",
        "abc",
        "tcvn",
        "tcvn5712",
        "vscii",
    ];
    SAFE.iter().any(|s| s.as_bytes() == clean.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bool_is_postgres_parse_bool() {
        for (v, want) in [
            ("on", Some(true)),
            ("ON", Some(true)),
            ("o", None),
            ("of", Some(false)),
            ("off", Some(false)),
            ("offf", None),
            ("t", Some(true)),
            ("TRUE", Some(true)),
            ("tru", Some(true)),
            ("truex", None),
            ("f", Some(false)),
            ("fals", Some(false)),
            ("y", Some(true)),
            ("yes", Some(true)),
            ("n", Some(false)),
            ("no", Some(false)),
            ("1", Some(true)),
            ("0", Some(false)),
            ("10", None),
            ("", None),
            (" on", None),
        ] {
            assert_eq!(parse_bool(v.as_bytes()), want, "{v:?}");
        }
    }

    #[test]
    fn encodings() {
        for safe in [
            "UTF8",
            "utf-8",
            "SQL_ASCII",
            "LATIN1",
            "EUC_JP",
            "WIN1252",
            "ISO_8859_5",
        ] {
            assert!(ascii_safe_encoding(safe.as_bytes()), "{safe}");
        }
        for unsafe_ in [
            "SJIS",
            "Shift_JIS",
            "SHIFT_JIS_2004",
            "BIG5",
            "GBK",
            "UHC",
            "GB18030",
            "JOHAB",
            "WIN932",
            "win936",
            "WIN949",
            "WIN950",
            "mskanji",
            "nonsense",
            "",
        ] {
            assert!(!ascii_safe_encoding(unsafe_.as_bytes()), "{unsafe_}");
        }
    }
}
