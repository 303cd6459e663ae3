//! Quoting of SQL identifiers and literals, so that any name (quotes, spaces, uppercase,
//! non-ASCII) is safe to put into generated SQL; and splitting the quoted lists PostgreSQL prints.

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

/// Split at every `sep` outside double quotes, unquoting as PostgreSQL prints identifiers
/// (`public."SBI_USER"` at `.`, `"$user", public` at `,`); a doubled quote inside quotes is one.
pub fn split_quoted(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
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

    #[test]
    fn splitting_quoted_lists() {
        assert_eq!(
            split_quoted("public.\"SBI.USER\"", '.'),
            ["public", "SBI.USER"]
        );
        assert_eq!(
            split_quoted("\"$user\", public, \"We\"\"ird\"", ','),
            ["$user", " public", " We\"ird"]
        );
        assert_eq!(split_quoted("nodot", '.'), ["nodot"]);
    }
}
