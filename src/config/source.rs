//! Where a configuration value came from (shown by `config show`, named by every error), the
//! raw values of each layer before typing, and what loading is given.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// Where an effective value came from; shown by `pgkeep config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    /// A component of a connection URI, which itself came from the inner source.
    Uri(Box<Source>),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Uri(inner) => write!(f, "uri ({inner})"),
            Source::Flag(n) => write!(f, "flag --{n}"),
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: unknown key `{key}`; {hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        /// The key probably meant, or where the keys are listed.
        hint: String,
    },
    #[error("invalid value for {key} (from {from}): {message}")]
    Invalid {
        key: &'static str,
        from: Source,
        message: String,
    },
}

impl crate::exit::ExitCode for ConfigError {
    fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Read { .. }
            | ConfigError::Parse { .. }
            | ConfigError::UnknownKey { .. }
            | ConfigError::Invalid { .. } => crate::exit::USAGE,
        }
    }
}

/// A raw layer value before typing.
#[derive(Clone)]
pub(super) struct Raw {
    pub(super) value: String,
    pub(super) source: Source,
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Raw values may be passwords or URIs with passwords: never shown.
        write!(f, "Raw(<{} bytes> from {})", self.value.len(), self.source)
    }
}

/// The inputs of configuration loading; everything outside the process is passed in.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// Config file named by `--config` (or `PGKEEP_CONFIG` in `env`).
    pub config_file: Option<PathBuf>,
    /// A snapshot of the environment.
    pub env: BTreeMap<String, String>,
    /// Values given as flags, by key name.
    pub flags: BTreeMap<&'static str, String>,
}
