//! libpq password files: looking a password up (for pgkeep's own connections) and writing a
//! private one for child processes, so the password never travels in argv or the environment.
//!
//! The private passfile lives in memory only ([`crate::process::MemoryFile`]): no file on disk
//! holds the password, so none is left behind when pgkeep is killed. Older versions wrote
//! `.pgkeep-pass-*` files into TMPDIR; [`remove_stale`] removes what their killed runs left.

use std::path::{Path, PathBuf};

use crate::model::Secret;
use crate::process::MemoryFile;

/// `PGPASSFILE` for a child when no password is known: a path that cannot exist (`/dev/null` is
/// no directory), so libpq finds no passfile and says nothing. `/dev/null` itself made libpq add
/// `WARNING: password file "/dev/null" is not a plain file` to every error it printed, and
/// leaving `PGPASSFILE` unset would send libpq to `~/.pgpass`, which pgkeep was not told to use.
pub const NONE: &str = "/dev/null/no-passfile";

/// The name prefix of the passfiles older versions wrote into TMPDIR.
const STALE_PREFIX: &str = ".pgkeep-pass-";

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

/// A private passfile for child processes, in memory only; gone when dropped (or when pgkeep
/// dies). Children given [`PrivatePassfile::path`] as `PGPASSFILE` read it.
pub struct PrivatePassfile {
    file: MemoryFile,
}

impl PrivatePassfile {
    /// A passfile that gives `password` for every connection (`*:*:*:*:password`).
    pub fn new(password: &Secret) -> std::io::Result<PrivatePassfile> {
        let line = format!("*:*:*:*:{}\n", escape(password.expose()));
        Ok(PrivatePassfile {
            file: MemoryFile::new("passfile", line.as_bytes())?,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Remove the passfiles that runs of older versions left in `dir` (their TMPDIR) when they were
/// killed: regular files named `.pgkeep-pass-*` owned by this user. Returns what was removed.
pub fn remove_stale(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let uid = nix::unistd::geteuid().as_raw();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(STALE_PREFIX)
        {
            continue;
        }
        let path = entry.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() && m.uid() == uid => {}
            _ => continue,
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
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
            let pf = PrivatePassfile::new(&Secret::new(pw)).unwrap();
            let got = lookup(pf.path(), "h", 5432, "db", "u").unwrap();
            assert_eq!(got.expose(), pw);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_passfiles_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(".pgkeep-pass-abc123"), "*:*:*:*:old\n").unwrap();
        std::fs::write(d.join(".pgkeep-passive"), "not ours").unwrap();
        std::fs::write(d.join("pgkeep-pass-x"), "not ours").unwrap();
        std::fs::create_dir(d.join(".pgkeep-pass-dir")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join(".pgkeep-pass-link")).unwrap();
        let removed = remove_stale(d).unwrap();
        assert_eq!(removed, vec![d.join(".pgkeep-pass-abc123")]);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".pgkeep-pass-dir",
                ".pgkeep-pass-link",
                ".pgkeep-passive",
                "pgkeep-pass-x"
            ]
        );
    }

    /// No password: libpq must find no passfile, and must not be told about one it would
    /// complain of.
    #[test]
    fn the_no_passfile_path_cannot_exist() {
        let e = std::fs::metadata(NONE).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENOTDIR), "{e}");
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
