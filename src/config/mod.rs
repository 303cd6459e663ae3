//! One `Settings` value built from layered sources: defaults < TOML file < environment < flags.
//!
//! Every key is declared once in [`KEYS`] with the environment variables that may set it, in
//! priority order (`PGKEEP_*` first, then the old backup pod's variables, then libpq's `PG*`),
//! its kind (parser, range, display) and its default; `config show` and `config keys` are made
//! from that table.
//! The loader never reads the process environment itself: callers pass a snapshot of it, so tests
//! and the daemon control exactly what is seen.

mod keys;
mod kind;
mod load;
mod settings;
mod show;
mod source;
#[cfg(test)]
mod tests;
mod typed;
mod uri;
mod values;

pub use keys::{Default, KEYS, Key, Kind, key};
pub use settings::{
    CheckSettings, LogFormat, MaintenanceSettings, MinFree, NotifySettings, Settings, WebhookFormat,
};
pub use source::{ConfigError, Inputs, Source};
pub use uri::parse_uri;
pub use values::{parse_bytes, parse_commands, parse_duration, show_duration};

// The value types of the settings, defined in the domain layer.
pub use crate::model::{Compression, Format, Secret, SslMode, redact_url};
