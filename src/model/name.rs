//! Names as the database's bytes: a table name in a dump is bytes in the dump's encoding
//! (LATIN1, SQL_ASCII's anything, ...), not necessarily UTF-8. The manifest's JSON keeps such a
//! name as text when its bytes are valid UTF-8 and as `hex:<hex of the bytes>` otherwise (no name
//! pg_dump prints starts so: an unquoted identifier is never followed by a colon), and names are
//! compared as bytes.

const HEX_PREFIX: &str = "hex:";

/// The manifest's key for a name whose bytes are `bytes`.
pub fn key_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.starts_with(HEX_PREFIX) => s.to_string(),
        _ => {
            let mut out = String::with_capacity(HEX_PREFIX.len() + 2 * bytes.len());
            out.push_str(HEX_PREFIX);
            for b in bytes {
                out.push_str(&format!("{b:02x}"));
            }
            out
        }
    }
}

/// The bytes of a manifest key (the inverse of [`key_of`]).
pub fn bytes_of(key: &str) -> Vec<u8> {
    if let Some(hex) = key.strip_prefix(HEX_PREFIX)
        && hex.len() % 2 == 0
        && let Some(bytes) = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
    {
        return bytes;
    }
    key.as_bytes().to_vec()
}

/// Split at every `sep` outside double quotes, unquoting as PostgreSQL prints identifiers
/// (`public."we.ird"` at `.`); a doubled quote inside quotes is one. Bytes in, bytes out.
pub fn split_quoted_bytes(s: &[u8], sep: u8) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut cur = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' if quoted && s.get(i + 1) == Some(&b'"') => {
                cur.push(b'"');
                i += 1;
            }
            b'"' => quoted = !quoted,
            c if c == sep && !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
        i += 1;
    }
    parts.push(cur);
    parts
}

/// Split a table name as pg_dump prints it (`public."SBI_USER"`), as bytes, into schema and
/// name.
pub fn parse_qualified_bytes(name: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = split_quoted_bytes(name, b'.');
    match parts.as_slice() {
        [s, t] if !s.is_empty() && !t.is_empty() => {
            let t = parts.pop()?;
            Some((parts.pop()?, t))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_whatever_the_bytes() {
        for name in [
            &b"public.\"caf\xe9\""[..],
            b"public.plain",
            b"public.\"new\nline\"",
            "public.\"crème\"".as_bytes(),
            b"hex:6162",
        ] {
            assert_eq!(bytes_of(&key_of(name)), name);
        }
        assert_eq!(key_of(b"public.t"), "public.t");
        assert_eq!(key_of(b"s.\"caf\xe9\""), "hex:732e22636166e922");
        assert_eq!(
            split_quoted_bytes(b"\"we.ird\".\"t \"\"q\xe9\"", b'.'),
            vec![b"we.ird".to_vec(), b"t \"q\xe9".to_vec()]
        );
    }

    #[test]
    fn qualified_names() {
        assert_eq!(
            parse_qualified_bytes(b"public.\"SBI_USER\""),
            Some((b"public".to_vec(), b"SBI_USER".to_vec()))
        );
        assert_eq!(
            parse_qualified_bytes(b"\"we.ird\".\"t \"\"q\"\"\""),
            Some((b"we.ird".to_vec(), b"t \"q\"".to_vec()))
        );
        assert_eq!(parse_qualified_bytes(b"nodot"), None);
        assert_eq!(
            parse_qualified_bytes(b"\"caf\xe9\".\"a\nb\""),
            Some((b"caf\xe9".to_vec(), b"a\nb".to_vec()))
        );
    }
}
