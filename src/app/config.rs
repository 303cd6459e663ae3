//! `pgkeep config show` and `pgkeep config keys`: the effective settings with their sources
//! (secrets redacted), and every key with its environment variables.

use crate::cli::ConfigAction;
use crate::config::{KEYS, Settings};

pub fn run(action: &ConfigAction, settings: &Settings) {
    match action {
        ConfigAction::Show => {
            let rows = settings.show();
            let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            let vw = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
            for (k, v, src) in rows {
                println!("{k:<w$}  {v:<vw$}  ({src})");
            }
        }
        ConfigAction::Keys => {
            for k in KEYS {
                println!("{:<16} {:<55} {}", k.name, k.env.join(", "), k.help);
            }
        }
    }
}
