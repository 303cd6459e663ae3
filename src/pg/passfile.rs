//! libpq password files: looking a password up (for pgkeep's own connections) and writing a
//! private one for child processes, so the password never travels in argv or the environment.

use std::io::Write;
use std::path::Path;

use crate::model::Secret;

/// Escape a field for a passfile line (`:` and `\` are escaped with `\`).
pub fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Split a passfile line into its fields, honouring `\` escapes.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("non-empty").push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

/// Find the password for a connection in a passfile, as libpq does (first match wins, `*`
/// matches anything). A missing or unreadable file yields `None`.
pub fn lookup(file: &Path, host: &str, port: u16, db: &str, user: &str) -> Option<Secret> {
    let text = std::fs::read_to_string(file).ok()?;
    let port = port.to_string();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f = split(line);
        if f.len() < 5 {
            continue;
        }
        let m = |pat: &str, v: &str| pat == "*" || pat == v;
        if m(&f[0], host) && m(&f[1], &port) && m(&f[2], db) && m(&f[3], user) {
            return Some(Secret::new(f[4..].join(":")));
        }
    }
    None
}

/// A private passfile for child processes; removed when dropped.
pub struct PrivatePassfile {
    file: tempfile::NamedTempFile,
}

impl PrivatePassfile {
    /// Write `*:*:*:*:password` into a new 0600 file in `dir`.
    pub fn create(dir: &Path, password: &Secret) -> std::io::Result<PrivatePassfile> {
        let mut file = tempfile::Builder::new()
            .prefix(".pgkeep-pass-")
            .tempfile_in(dir)?;
        // tempfile creates files 0600 already; keep it explicit.
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(file, "*:*:*:*:{}", escape(password.expose()))?;
        file.as_file().sync_all()?;
        Ok(PrivatePassfile { file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_awkward_passwords() {
        let dir = tempfile::tempdir().unwrap();
        for pw in [
            "simple",
            "a:b",
            "back\\slash",
            "x:\\:y",
            "ünï cødé 'q' \"d\"",
            "@#$%",
        ] {
            let pf = PrivatePassfile::create(dir.path(), &Secret::new(pw)).unwrap();
            let got = lookup(pf.path(), "h", 5432, "db", "u").unwrap();
            assert_eq!(got.expose(), pw);
        }
    }

    #[test]
    fn lookup_matches_fields() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(
            &f,
            "# comment\nother:5432:*:*:no\nlocalhost:5432:app:alice:yes\n*:*:*:*:fallback\n",
        )
        .unwrap();
        assert_eq!(
            lookup(&f, "localhost", 5432, "app", "alice")
                .unwrap()
                .expose(),
            "yes"
        );
        assert_eq!(
            lookup(&f, "localhost", 5432, "app", "bob")
                .unwrap()
                .expose(),
            "fallback"
        );
        assert!(lookup(&dir.path().join("missing"), "h", 1, "d", "u").is_none());
    }
}
