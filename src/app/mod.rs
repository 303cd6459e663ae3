//! The command layer: one file per verb, each turning settings and flags into engine calls and
//! rendering the result. The only layer that prints (with `main`); `run` picks the verb.

pub mod admin;
pub mod backup;
pub mod check;
pub mod cleanup;
pub mod config;
pub mod context;
pub mod databases;
pub mod demo;
pub mod errors;
pub mod inputs;
pub mod list;
pub mod maintenance;
pub mod progress;
pub mod prune;
pub mod recover;
pub mod repair;
pub mod restore;
pub mod run;
pub mod set;
pub mod startup;
pub mod status;
pub mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Settings;
pub use context::{Context, environment};
pub use errors::{UsageError, exit_code};
pub use inputs::inputs;

/// Run the command the command line names.
pub async fn run(cli: Cli, settings: Settings, ctx: Context) -> Result<()> {
    startup::prepare(&ctx)?;
    match &cli.command {
        Command::Backup(args) => backup::run(args, &settings, &ctx).await,
        Command::List(args) => list::run(args, &settings),
        Command::Databases(args) => databases::run(args, &settings).await,
        Command::Verify(args) => verify::run(args, &settings, &ctx).await,
        Command::Check(args) => check::run(args, &settings).await,
        Command::Status(args) => status::run(args, &settings),
        Command::Config { action } => {
            config::run(action, &settings);
            Ok(())
        }
        Command::Demo(args) => demo::run(args, &ctx).await,
        Command::Maintenance(_) => maintenance::run(&settings, &ctx).await,
        Command::Run(args) => run::run(args, settings, ctx).await,
        Command::Prune(args) => prune::run(args, &settings).await,
        Command::Restore(args) if args.all => recover::run(args, &settings, &ctx).await,
        Command::Restore(args) => restore::run(args, &settings, &ctx).await,
        Command::Cleanup(args) => cleanup::run(args, &settings, &ctx).await,
    }
}
