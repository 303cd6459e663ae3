//! `pgkeep demo`: shows the main job end to end on a throwaway cluster, so a new user sees what
//! pgkeep does in one command: make a school-bus database, back it up, list it, damage it,
//! restore it safely (showing the downtime), clean up.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use super::context::Context;
use crate::cli::DemoArgs;
use crate::cluster::{TempCluster, server_bindir};
use crate::config::{Inputs, Settings};
use crate::pg::ident::{quote_ident, quote_literal};

const SAMPLE: &str = include_str!("demo.sql");
pub const APP_USER: &str = "sbi_app";
pub const APP_DB: &str = "sbi";
const APP_PASSWORD: &str = "demo:p@ss'word";

/// Create the demo database in `cluster`: owner role with a password, read-only role, sample data.
pub fn load_sample(cluster: &TempCluster, db: &str) -> Result<()> {
    cluster.psql(
        "postgres",
        &format!(
            "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {user_lit}) THEN CREATE ROLE {user} LOGIN PASSWORD {pw}; END IF;\n\
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sbi_readonly') THEN CREATE ROLE sbi_readonly; END IF; END$$;\n\
             CREATE DATABASE {db} OWNER {user};\n\
             GRANT CONNECT ON DATABASE {db} TO sbi_readonly;\n\
             ALTER DATABASE {db} SET statement_timeout = '5min';\n",
            user = quote_ident(APP_USER),
            user_lit = quote_literal(APP_USER),
            pw = quote_literal(APP_PASSWORD),
            db = quote_ident(db),
        ),
    )?;
    cluster.psql(
        db,
        &format!("SET ROLE {};\n{SAMPLE}", quote_ident(APP_USER)),
    )?;
    Ok(())
}

/// Rows of the sample tables, `-` for a table that is gone.
fn counts(cluster: &TempCluster) -> Result<String> {
    let out = cluster.psql(
        APP_DB,
        "SELECT string_agg(format('%s %s', t, coalesce((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', t), false, true, '')))[1]::text, '-')), ', ' ORDER BY t) \
         FROM unnest(ARRAY['SBI_USER', 'routes', 'vehicles', 'inspections']) t WHERE to_regclass(quote_ident(t)) IS NOT NULL",
    )?;
    Ok(out.trim().to_string())
}

/// Damage the sample database, restore it with the swap strategy, show the data is back.
async fn restore_demo(
    cluster: &TempCluster,
    settings: &Settings,
    ctx: &Context,
    bindir: &std::path::Path,
) -> Result<()> {
    println!(
        "\nNow an accident: table inspections is dropped (with its view) and users are deleted."
    );
    cluster.psql(
        APP_DB,
        "DROP TABLE inspections CASCADE; DELETE FROM \"SBI_USER\" WHERE id > 10;",
    )?;
    println!("  rows now: {}", counts(cluster)?);

    println!("\n$ pgkeep restore --yes   (admin role: the cluster's superuser)");
    let store = crate::storage::open(&settings.backup_dir, &settings.s3)?;
    let backup = crate::restore::choose(
        &*store,
        &ctx.tmp_dir(),
        &settings.host,
        APP_DB,
        &crate::restore::Selector::Latest,
        false,
    )?;
    let mut admin = crate::pg::ConnParams::from_settings(settings, "postgres");
    admin.user = "postgres".into();
    admin.password = None;
    let req = crate::restore::Request {
        load: crate::restore::LoadPolicy {
            configured: Some(crate::pg::ConnParams::from_settings(settings, APP_DB)),
            ..Default::default()
        },
        backup,
        target: APP_DB.into(),
        strategy: crate::restore::Strategy::Swap,
        admin,
        search: crate::pg::tools::Search {
            bindir: Some(bindir.to_path_buf()),
            path_env: None,
        },
        jobs: 1,
        checks: vec!["SELECT 1 FROM \"SBI_USER\" WHERE \"USERNAME\" = 'o''brien'".into()],
        create_roles: false,
        drop_previous: false,
        pre_hooks: Vec::new(),
        post_hooks: Vec::new(),
        hook_timeout: std::time::Duration::from_secs(60),
        child_env: ctx.child_env(),
        tmp_dir: cluster.dir().to_path_buf(),
        shutdown: ctx.shutdown.clone(),
        now: jiff::Timestamp::now(),
        progress: crate::model::Progress::none(),
    };
    let pre = crate::restore::preflight(&req)
        .await
        .context("demo restore preflight failed")?;
    let plan = crate::restore::plan(&req, &pre);
    for (i, s) in plan.steps.iter().enumerate() {
        println!("  {}. {}", i + 1, s.title);
    }
    let report = crate::restore::execute(&req, &pre)
        .await
        .context("demo restore failed")?;
    print!("{}", super::restore::render_report(&req, &report));
    println!("  rows now: {}", counts(cluster)?);
    println!(
        "The data is back; the database was unavailable for {:.3}s (the old runbook: the whole load).",
        report.downtime.map(|d| d.as_secs_f64()).unwrap_or(0.0)
    );
    Ok(())
}

pub async fn run(args: &DemoArgs, ctx: &Context) -> Result<()> {
    let bindir = server_bindir(ctx.env.get("PGKEEP_PG_BINDIR").map(std::path::Path::new))?;
    println!(
        "pgkeep demo: starting a throwaway PostgreSQL cluster with {}",
        bindir.display()
    );
    let mut cluster = TempCluster::start(&bindir).context("cannot start the demo cluster")?;
    cluster.keep = args.keep;
    println!(
        "  cluster at {} (Unix socket only)",
        cluster.dir().display()
    );

    load_sample(&cluster, APP_DB)?;
    let users = cluster.psql(APP_DB, "SELECT count(*) FROM \"SBI_USER\"")?;
    println!(
        "  loaded the school-bus sample: database \"{APP_DB}\", {} rows in \"SBI_USER\", routes, vehicles, inspections",
        users.trim()
    );

    let backup_dir = cluster.dir().join("backups");
    std::fs::create_dir(&backup_dir)?;
    // The same environment the old backup pod had.
    let mut env: BTreeMap<String, String> = ctx
        .env
        .iter()
        .filter(|(k, _)| k.as_str() == "PATH" || k.starts_with("LC_") || k.as_str() == "TMPDIR")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (
            "DATABASE_SERVICE_NAME",
            cluster.socket_dir().display().to_string(),
        ),
        ("POSTGRESQL_USER", APP_USER.to_string()),
        ("POSTGRESQL_PASSWORD", APP_PASSWORD.to_string()),
        ("POSTGRESQL_DATABASE", APP_DB.to_string()),
        ("BACKUP_DIR", backup_dir.display().to_string()),
        ("PGKEEP_PG_BINDIR", bindir.display().to_string()),
    ] {
        env.insert(k.into(), v);
    }
    let settings = Settings::load(&Inputs {
        config_file: None,
        env: env.clone(),
        flags: BTreeMap::new(),
    })?;
    println!(
        "  configured like the old backup pod: DATABASE_SERVICE_NAME, POSTGRESQL_USER, POSTGRESQL_PASSWORD, POSTGRESQL_DATABASE, BACKUP_DIR"
    );

    let demo_ctx = Context {
        env,
        shutdown: ctx.shutdown.clone(),
    };
    println!("\n$ pgkeep backup");
    let done = crate::backup::run(super::backup::request(&settings, APP_DB.into(), &demo_ctx))
        .await
        .context("demo backup failed")?;
    // What `pgkeep backup` prints on a terminal, from the same function; no log line in the story.
    print!("{}", super::backup::render_summary(&done));

    println!("\n$ pgkeep list");
    let entries = super::list::entries(&settings, None)?;
    print!("{}", super::list::render_list(&entries));

    println!(
        "\nThe backup is a plain .sql.gz: `gunzip -c FILE | psql` restores it, and `sha256sum FILE` matches the manifest beside it."
    );

    restore_demo(&cluster, &settings, &demo_ctx, &bindir).await?;

    if args.keep {
        let show = crate::restore::hooks::show_argv;
        println!(
            "Kept: cluster and backups under {}\n  connect: {}\n  stop:    {}\n  then remove the directory: rm -rf {}",
            cluster.dir().display(),
            show(&cluster.psql_argv(APP_DB)),
            show(&cluster.stop_argv()),
            show(&[cluster.dir().display().to_string()]),
        );
    } else {
        cluster.stop()?;
        println!("Cleaned up the demo cluster and its backups.");
    }
    Ok(())
}
