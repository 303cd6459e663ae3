//! What a command is started with: the environment snapshot and the shutdown signal, and the
//! values commands derive from the environment (temporary directory, PATH, children's env).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::shutdown::Shutdown;

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
