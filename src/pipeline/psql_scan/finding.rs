//! What the scanner refuses: the kinds of input psql could act on in ways pgkeep cannot see
//! (meta-commands, variables, encoding switches, ...), each found at a line and offset.

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
