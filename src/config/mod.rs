//! One `Settings` value built from layered sources: defaults < TOML file < environment < flags.
//!
//! Every key is declared once in [`KEYS`] with the environment variables that may set it, in
//! priority order (`PGKEEP_*` first, then the old backup pod's variables, then libpq's `PG*`).
//! The loader never reads the process environment itself: callers pass a snapshot of it, so tests
//! and the daemon control exactly what is seen.

mod keys;
mod load;
mod settings;
mod show;
mod source;
#[cfg(test)]
mod tests;
mod uri;
mod values;

pub use keys::{KEYS, Key};
pub use settings::{CheckSettings, LogFormat, MinFree, NotifySettings, Settings, WebhookFormat};
pub use source::{ConfigError, Inputs, Source};
pub use uri::parse_uri;
pub use values::{parse_bytes, parse_commands, parse_duration};

// The value types of the settings, defined in the domain layer.
pub use crate::model::{Compression, Format, Secret, SslMode, redact_url};
