//! `pgkeep databases`: what the `databases` set (else `all`) means on the server right now, for
//! people and for schedulers that start one job per database (`--json`).

use anyhow::Result;

use crate::cli::DatabasesArgs;
use crate::config::Settings;
use crate::model::DatabaseSet;
use crate::model::databases::Selection;

pub async fn run(args: &DatabasesArgs, settings: &Settings) -> Result<()> {
    let set = settings.databases.clone().unwrap_or(DatabaseSet::All);
    let sel = super::set::selection(settings, &set).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sel)?);
    } else {
        print!("{}", render(&sel));
    }
    Ok(())
}

/// One database a line, then what was left out and why.
pub fn render(sel: &Selection) -> String {
    let mut out: String = sel.databases.iter().map(|d| format!("{d}\n")).collect();
    let notes = [
        (&sel.missing, "named in databases but not on the server"),
        (
            &sel.gone,
            "gone from the server, backups kept (never culled for it)",
        ),
        (&sel.excluded, "excluded by exclude_databases"),
        (&sel.no_connections, "allows no connections (datallowconn)"),
        (&sel.templates, "template"),
    ];
    for (names, why) in notes {
        for n in names {
            out.push_str(&format!("# {n}: {why}\n"));
        }
    }
    out
}
