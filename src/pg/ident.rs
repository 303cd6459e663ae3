//! Quoting of SQL identifiers and literals, so that any name (quotes, spaces, uppercase,
//! non-ASCII) is safe to put into generated SQL.

/// Quote an identifier: `my "db"` -> `"my ""db"""`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a string literal with standard_conforming_strings semantics: `it's` -> `'it''s'`.
/// Backslashes are kept literal by using the E'' form only when needed.
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_table() {
        let cases = [
            ("plain", "\"plain\"", "'plain'"),
            ("SBI_USER", "\"SBI_USER\"", "'SBI_USER'"),
            ("it's", "\"it's\"", "'it''s'"),
            ("a \"b\"", "\"a \"\"b\"\"\"", "'a \"b\"'"),
            ("back\\slash", "\"back\\slash\"", "E'back\\\\slash'"),
            ("ünï cødé", "\"ünï cødé\"", "'ünï cødé'"),
            ("a:b@c", "\"a:b@c\"", "'a:b@c'"),
        ];
        for (input, ident, literal) in cases {
            assert_eq!(quote_ident(input), ident, "{input}");
            assert_eq!(quote_literal(input), literal, "{input}");
        }
    }
}
