//! `pgkeep config show` and `pgkeep config keys`: the effective settings with their sources
//! (secrets redacted), and every key with its environment variables, default and range; both
//! made from the key table and printed in aligned columns.

use crate::cli::ConfigAction;
use crate::config::{KEYS, Settings};

pub fn run(action: &ConfigAction, settings: &Settings) {
    let rows: Vec<Vec<String>> = match action {
        ConfigAction::Show => settings
            .show()
            .into_iter()
            .map(|(k, v, src)| vec![k.to_string(), v, format!("({src})")])
            .collect(),
        ConfigAction::Keys => std::iter::once(
            ["KEY", "ENVIRONMENT", "DEFAULT", "RANGE", "DESCRIPTION"]
                .map(String::from)
                .to_vec(),
        )
        .chain(KEYS.iter().map(|k| {
            vec![
                k.name.to_string(),
                k.env.join(", "),
                k.default_text(),
                k.kind.range(),
                k.help.to_string(),
            ]
        }))
        .collect(),
    };
    for line in columns(&rows) {
        println!("{line}");
    }
}

/// Rows as lines with every column but the last padded to its widest cell.
fn columns(rows: &[Vec<String>]) -> Vec<String> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line
        })
        .collect()
}
