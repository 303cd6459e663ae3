//! Finding the PostgreSQL client programs (pg_dump, pg_restore, psql) of the right major version,
//! and refusing a client that is older than the server.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ToolError {
    #[error(
        "no {tool} of PostgreSQL {server_major} or newer found (the server is {server_major}; found: {found}); install the matching client tools or set PGKEEP_PG_BINDIR"
    )]
    TooOld {
        tool: String,
        server_major: u32,
        found: String,
    },
    #[error(
        "no {tool} of PostgreSQL {dump_major} or newer found for a dump that pg_dump {dump_major} wrote (found: {found}); install the client tools of PostgreSQL {dump_major} or set PGKEEP_PG_BINDIR"
    )]
    OlderThanDump {
        tool: String,
        dump_major: u32,
        found: String,
    },
    #[error(
        "{tool} not found (searched {searched}); install the PostgreSQL client tools or set PGKEEP_PG_BINDIR"
    )]
    NotFound { tool: String, searched: String },
    #[error("{path} is not a usable {tool}: {message}")]
    Unusable {
        tool: String,
        path: PathBuf,
        message: String,
    },
}

impl crate::exit::ExitCode for ToolError {
    fn exit_code(&self) -> u8 {
        match self {
            ToolError::TooOld { .. }
            | ToolError::OlderThanDump { .. }
            | ToolError::NotFound { .. }
            | ToolError::Unusable { .. } => crate::exit::TOOLS,
        }
    }
}

/// A client program with its version.
#[derive(Debug, Clone)]
pub struct Tool {
    pub path: PathBuf,
    pub major: u32,
    pub version: String,
}

/// Where to look for client programs.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Only this directory (PGKEEP_PG_BINDIR).
    pub bindir: Option<PathBuf>,
    /// The PATH to search after the well-known directories.
    pub path_env: Option<std::ffi::OsString>,
}

impl Search {
    fn dirs(&self) -> Vec<PathBuf> {
        if let Some(d) = &self.bindir {
            return vec![d.clone()];
        }
        let mut dirs = Vec::new();
        for pattern_root in ["/usr/lib/postgresql", "/usr/pgsql"] {
            let (parent, prefix) = match pattern_root.rsplit_once('/') {
                Some((p, n)) => (p, n),
                None => continue,
            };
            if let Ok(rd) = std::fs::read_dir(parent) {
                for e in rd.flatten() {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    if name == prefix {
                        // /usr/lib/postgresql/<major>/bin
                        if let Ok(inner) = std::fs::read_dir(e.path()) {
                            for v in inner.flatten() {
                                dirs.push(v.path().join("bin"));
                            }
                        }
                    } else if let Some(rest) = name.strip_prefix(&format!("{prefix}-")) {
                        // /usr/pgsql-<major>/bin
                        if rest.chars().all(|c| c.is_ascii_digit() || c == '.') {
                            dirs.push(e.path().join("bin"));
                        }
                    }
                }
            }
        }
        if let Some(p) = &self.path_env {
            dirs.extend(std::env::split_paths(p));
        }
        dirs
    }
}

/// Parse the major version from `pg_dump (PostgreSQL) 15.18 (Debian ...)`; 9.6 -> 906.
pub fn parse_major(version_output: &str) -> Option<(u32, String)> {
    let v = version_output
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let first: u32 = parts.next()?.parse().ok()?;
    let major = if first >= 10 {
        first
    } else {
        first * 100 + parts.next().and_then(|p| p.parse().ok()).unwrap_or(0)
    };
    Some((major, v.to_string()))
}

/// Major version from `server_version_num`.
pub fn server_major(version_num: u32) -> u32 {
    if version_num >= 100_000 {
        version_num / 10_000
    } else {
        version_num / 100
    }
}

/// Ask a program for its version.
pub fn probe(tool: &str, path: &Path) -> Result<Tool, ToolError> {
    let out = Command::new(path)
        .arg("--version")
        .env_clear()
        .output()
        .map_err(|e| ToolError::Unusable {
            tool: tool.into(),
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (major, version) = parse_major(&text).ok_or_else(|| ToolError::Unusable {
        tool: tool.into(),
        path: path.to_path_buf(),
        message: format!("unexpected --version output `{}`", text.trim()),
    })?;
    Ok(Tool {
        path: path.to_path_buf(),
        major,
        version,
    })
}

/// Every installed copy of `tool`, deduplicated by path.
pub fn installed(tool: &str, search: &Search) -> Vec<Tool> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for dir in search.dirs() {
        let p = dir.join(tool);
        if !p.is_file() {
            continue;
        }
        let canon = std::fs::canonicalize(&p).unwrap_or(p.clone());
        if !seen.insert(canon) {
            continue;
        }
        if let Ok(t) = probe(tool, &p) {
            out.push(t);
        }
    }
    out
}

/// Choose `tool` for a server of `server_major`: the same major when installed, else the
/// oldest newer one; never an older one.
pub fn select(
    tool: &str,
    server_major: u32,
    explicit: Option<&Path>,
    search: &Search,
) -> Result<Tool, ToolError> {
    let found = match explicit {
        Some(p) => vec![probe(tool, p)?],
        None => installed(tool, search),
    };
    if found.is_empty() {
        return Err(ToolError::NotFound {
            tool: tool.into(),
            searched: search
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut usable: Vec<&Tool> = found.iter().filter(|t| t.major >= server_major).collect();
    usable.sort_by_key(|t| t.major);
    match usable.first() {
        Some(t) => Ok((*t).clone()),
        None => Err(ToolError::TooOld {
            tool: tool.into(),
            server_major,
            found: found
                .iter()
                .map(|t| format!("{} ({})", t.version, t.path.display()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A companion program (pg_restore, psql) from the same directory as `tool`, else by search.
pub fn sibling(tool: &Tool, name: &str, search: &Search) -> Result<Tool, ToolError> {
    if let Some(dir) = tool.path.parent() {
        let p = dir.join(name);
        if p.is_file() {
            return probe(name, &p);
        }
    }
    select(name, tool.major, None, search)
}

/// True if `name` looks like a path rather than a bare program name.
pub fn is_path(name: &OsStr) -> bool {
    name.to_string_lossy().contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)")
                .unwrap()
                .0,
            15
        );
        assert_eq!(parse_major("pg_dump (PostgreSQL) 17beta1").unwrap().0, 17);
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24").unwrap().0, 906);
        assert!(parse_major("garbage").is_none());
        assert_eq!(server_major(150018), 15);
        assert_eq!(server_major(90624), 906);
    }

    #[test]
    fn refuses_older_and_lists_found() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("pg_dump");
        std::fs::write(&fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.2'\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let search = Search {
            bindir: Some(dir.path().to_path_buf()),
            path_env: None,
        };
        let e = select("pg_dump", 16, None, &search).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("server is 16") && msg.contains("14.2"),
            "{msg}"
        );
        let t = select("pg_dump", 13, None, &search).unwrap();
        assert_eq!(t.major, 14);
    }
}
