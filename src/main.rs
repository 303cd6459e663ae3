//! The pgkeep binary: parse arguments, set up logging, run the command, map errors to exit codes.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use pgkeep::cli::Cli;
use pgkeep::config::{LogFormat, Settings};
use pgkeep::{app, exit, shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = match app::environment(std::env::vars_os()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("pgkeep: error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let settings = Settings::load(&app::inputs(&cli, &env));
    let json = match &settings {
        Ok(s) => s.log_format == LogFormat::Json,
        Err(_) => matches!(cli.log_format, Some(pgkeep::cli::LogFormatArg::Json)),
    };
    // The demo tells its story on stdout; its log lines show with -v only.
    let quiet =
        cli.quiet || (matches!(cli.command, pgkeep::cli::Command::Demo(_)) && cli.verbose == 0);
    init_logging(json, cli.verbose, quiet, &env);
    let result = match settings {
        Err(e) => Err(anyhow::Error::new(e)),
        Ok(settings) => run(cli, settings, env),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            let msg = exit::one_line(&e);
            if json {
                tracing::error!(error = %msg, "command failed");
            } else {
                eprintln!("pgkeep: error: {msg}");
            }
            ExitCode::from(app::exit_code(&e))
        }
    }
}

fn run(cli: Cli, settings: Settings, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (trigger, shutdown) = shutdown::channel();
        shutdown::listen_for_signals(trigger)?;
        app::run(cli, settings, app::Context { env, shutdown }).await
    })
}

fn init_logging(json: bool, verbose: u8, quiet: bool, env: &BTreeMap<String, String>) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = env
        .get("PGKEEP_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("pgkeep={default},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(app::progress::log_writer);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}
