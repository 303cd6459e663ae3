//! The configuration inputs of one run: the flags of the command line by key name, the config
//! file it names, and the environment snapshot (with libpq's default passfile filled in).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cli::{Cli, Command, LogFormatArg};
use crate::config::Inputs;

/// Build the configuration inputs from the CLI and the environment snapshot.
pub fn inputs(cli: &Cli, env: &BTreeMap<String, String>) -> Inputs {
    let mut flags: BTreeMap<&'static str, String> = BTreeMap::new();
    let c = &cli.conn;
    if let Some(v) = &c.host {
        flags.insert("host", v.clone());
    }
    if let Some(v) = &c.port {
        flags.insert("port", v.clone());
    }
    if let Some(v) = &c.user {
        flags.insert("user", v.clone());
    }
    if let Some(v) = &c.backup_dir {
        flags.insert("backup_dir", v.display().to_string());
    }
    if let Some(f) = cli.log_format {
        flags.insert(
            "log_format",
            match f {
                LogFormatArg::Text => "text",
                LogFormatArg::Json => "json",
            }
            .into(),
        );
    }
    if let Command::Backup(b) = &cli.command {
        for (k, v) in [
            ("format", &b.format),
            ("compression", &b.compression),
            ("level", &b.level),
            ("threads", &b.threads),
        ] {
            if let Some(v) = v {
                flags.insert(k, v.clone());
            }
        }
    }
    if let Command::Maintenance(m) = &cli.command {
        for (k, v) in [
            ("maintenance_listen", &m.listen),
            ("maintenance_title", &m.title),
            ("maintenance_message", &m.message),
            ("maintenance_retry_after", &m.retry_after),
        ] {
            if let Some(v) = v {
                flags.insert(k, v.clone());
            }
        }
    }
    let policy = match &cli.command {
        Command::Run(r) => {
            for (k, v) in [
                ("listen", &r.listen),
                ("schedule", &r.schedule),
                ("backup_period", &r.backup_period),
                ("shutdown_grace", &r.shutdown_grace),
            ] {
                if let Some(v) = v {
                    flags.insert(k, v.clone());
                }
            }
            Some(&r.policy)
        }
        Command::Prune(p) => Some(&p.policy),
        _ => None,
    };
    if let Some(p) = policy {
        for (k, v) in [
            ("keep_days", &p.keep_days),
            ("keep_last", &p.keep_last),
            ("keep_daily", &p.keep_daily),
            ("keep_weekly", &p.keep_weekly),
            ("keep_monthly", &p.keep_monthly),
            ("timezone", &p.timezone),
        ] {
            if let Some(v) = v {
                flags.insert(k, v.clone());
            }
        }
    }
    let mut env = env.clone();
    // libpq's default passfile.
    if !env.contains_key("PGPASSFILE")
        && !env.contains_key("PGKEEP_PASSFILE")
        && let Some(home) = env.get("HOME")
    {
        let p = PathBuf::from(home).join(".pgpass");
        if p.is_file() {
            env.insert("PGPASSFILE".into(), p.display().to_string());
        }
    }
    Inputs {
        config_file: cli.config.clone(),
        env,
        flags,
    }
}
