//! What a command is started with: the environment snapshot and the shutdown signal, and the
//! values commands derive from the environment (temporary directory, PATH, children's env).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::errors::UsageError;
use crate::shutdown::Shutdown;

/// The process environment as text. A variable whose value is not UTF-8 is an error naming it
/// when pgkeep reads it (a configuration variable, any `PGKEEP_*`, TMPDIR, PATH) and is left
/// out otherwise (children do not see it either); `std::env::vars` would panic on it.
pub fn environment(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<BTreeMap<String, String>, UsageError> {
    let ours = |name: &str| {
        name.starts_with("PGKEEP_")
            || ["TMPDIR", "PATH"].contains(&name)
            || crate::config::KEYS.iter().any(|k| k.env.contains(&name))
    };
    let mut env = BTreeMap::new();
    for (name, value) in vars {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.insert(name, value);
            }
            Err(_) if ours(&name) => {
                return Err(UsageError(format!(
                    "the environment variable {name} is not valid UTF-8"
                )));
            }
            Err(_) => {}
        }
    }
    Ok(env)
}

/// What the process was started with.
pub struct Context {
    pub env: BTreeMap<String, String>,
    pub shutdown: Shutdown,
}

impl Context {
    /// Where private temporary files go: `TMPDIR`, else `/tmp`.
    pub fn tmp_dir(&self) -> PathBuf {
        self.env
            .get("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    }

    /// The PATH client tools are searched in.
    pub fn path_env(&self) -> Option<OsString> {
        self.env.get("PATH").map(Into::into)
    }

    /// The environment children may inherit (free of secrets).
    pub fn child_env(&self) -> Vec<(String, String)> {
        crate::process::inherited_env(&self.env)
    }
}
