//! `pgkeep config show`: the effective settings as rows of key, shown value and source, secrets
//! redacted, one row for every key of the table.

use super::settings::Settings;
use super::source::Source;

impl Settings {
    /// The effective settings as (key, shown value, source) rows in table order, secrets redacted.
    pub fn show(&self) -> Vec<(&'static str, String, Source)> {
        self.shown
            .iter()
            .map(|(k, shown)| (*k, shown.clone(), self.source(k)))
            .collect()
    }
}
