//! The plan of a restore, built from the same SQL builders and commands that `execute` runs: what
//! `--dry-run` prints and the confirmation shows, step by step, with the space it needs.

use super::database;
use super::hooks;
use super::load;
use super::preflight::Preflight;
use super::request::{Request, Strategy};
use super::roles::create_role_sql;
use super::swap::{block_sql, swap_sql, terminate_sql};
use crate::model::Format;
use crate::pg::ident::quote_ident;

/// One step of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    /// SQL statements or command lines, as they will run.
    pub details: Vec<String>,
}

/// The plan that `--dry-run` prints and `execute` follows.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
    /// Rough space the restore needs on the server.
    pub space: String,
}

fn step(title: impl Into<String>, details: Vec<String>) -> Step {
    Step {
        title: title.into(),
        details,
    }
}

/// The plan, built from the same SQL builders that `execute` runs.
pub fn plan(req: &Request, pre: &Preflight) -> Plan {
    let in_place = req.strategy == Strategy::InPlace && pre.target_exists;
    let mut steps = before_load(req, pre, in_place);
    steps.extend(load_steps(req, pre));
    steps.extend(after_load(req, pre, in_place));
    Plan {
        steps,
        notes: notes(req, pre, in_place),
        space: space(req, pre, in_place),
    }
}

/// The memberships `--create-roles` grants: those of the recorded roles that touch a created one.
pub fn membership_sql(pre: &Preflight) -> Vec<String> {
    let Some(info) = &pre.info else {
        return Vec::new();
    };
    let created = pre.roles_missing.iter().cloned().collect();
    database::memberships_sql(&info.memberships, &pre.roles_needed, &created)
}

/// Check the file, the pre-restore hooks, the missing roles, and (in place) the drop.
fn before_load(req: &Request, pre: &Preflight, in_place: bool) -> Vec<Step> {
    let db = &req.target;
    let mut steps = vec![step(
        format!("check the backup file {}", req.backup.path.display()),
        vec![pre.file_check.clone()],
    )];
    if !req.pre_hooks.is_empty() {
        steps.push(step(
            format!(
                "run the pre-restore hooks (each stopped after {}s; a failure stops the restore)",
                req.hook_timeout.as_secs()
            ),
            req.pre_hooks.iter().map(|h| hooks::show_argv(h)).collect(),
        ));
    }
    if !pre.roles_missing.is_empty() && req.create_roles {
        let mut sql: Vec<String> = pre
            .roles_missing
            .iter()
            .map(|r| create_role_sql(r))
            .collect();
        sql.extend(membership_sql(pre));
        steps.push(step(
            "create the missing roles (no password, no login privileges beyond the default) and their recorded memberships",
            sql,
        ));
    }
    if in_place {
        steps.push(step(
            format!(
                "IN PLACE: block connections to \"{db}\", end its sessions and DROP it; from here until the end the database is GONE"
            ),
            vec![
                block_sql(db),
                terminate_sql(db),
                database::drop_database_sql(db, pre.server_version_num),
            ],
        ));
    }
    steps
}

/// Create the scratch database, load it, check it, apply the recorded settings.
fn load_steps(req: &Request, pre: &Preflight) -> Vec<Step> {
    let b = &req.backup;
    let info = pre.info.as_ref();
    let input = b.input();
    let load_cmd = load::load_command(
        &pre.tools,
        &input,
        &pre.scratch,
        req.jobs,
        pre.server_version_num,
    );
    let load_line = format!(
        "{}{} {}",
        match b.format {
            Format::Plain if req.jobs > 1 => format!(
                "decompress {} | cut into sections and entries | {} connections of ",
                b.path.display(),
                req.jobs
            ),
            Format::Plain => format!("decompress {} | ", b.path.display()),
            Format::Custom
                if load::as_script(&pre.tools, &input, req.jobs, pre.server_version_num) =>
            {
                let mut line = format!(
                    "{} -f - < {} | ",
                    pre.tools.pg_restore.display(),
                    b.path.display()
                );
                if load::through_psql(&pre.tools, &input, pre.server_version_num) {
                    let major = crate::pg::tools::server_major(pre.server_version_num);
                    line +=
                        &format!("(leave out what the PostgreSQL {major} server does not know) | ");
                }
                if req.jobs > 1 {
                    line += &format!(
                        "cut into sections and entries | {} connections of ",
                        req.jobs
                    );
                }
                line
            }
            Format::Custom => String::new(),
        },
        load_cmd.program.display(),
        load_cmd
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut checks = vec![match (&b.manifest, &pre.legacy_rows) {
        (Some(m), _) => format!(
            "compare the row counts of {} tables ({} rows) with the manifest",
            m.tables.len(),
            m.total_rows()
        ),
        (None, Some(r)) => format!(
            "no manifest: no row counts recorded at backup time to check; compare the {} tables with the counts read from the file itself",
            r.len()
        ),
        (None, None) => "no manifest: no row-count check is possible".into(),
    }];
    checks.extend(
        req.checks
            .iter()
            .map(|c| format!("check (must return rows): {c}")),
    );
    let mut create = vec![database::create_database_sql(&pre.scratch, info)];
    create.extend(database::grants_sql(&pre.scratch, info));
    create.extend(database::extensions_sql(info));
    let mut steps = vec![
        step(
            format!(
                "create the scratch database \"{}\" with the properties of {}",
                pre.scratch, pre.info_source
            ),
            create,
        ),
        step(
            format!(
                "load the backup into \"{}\" (stops at the first error; a failed load drops the scratch database)",
                pre.scratch
            ),
            vec![load_line],
        ),
        step("check the restored copy", checks),
    ];
    let settings = database::settings_sql(&pre.scratch, info);
    if !settings.is_empty() {
        steps.push(step("apply the recorded database settings", settings));
    }
    steps
}

/// The swap (or the rename), the post-restore hooks, and what becomes of the previous copy.
fn after_load(req: &Request, pre: &Preflight, in_place: bool) -> Vec<Step> {
    let db = &req.target;
    let mut steps = Vec::new();
    if pre.target_exists && !in_place {
        let d = swap_sql(db, &pre.previous, &pre.scratch);
        steps.push(step(
            format!(
                "swap (the downtime), in one transaction: end the {} sessions of \"{db}\", rename it to \"{}\" and close that copy, rename the scratch database to \"{db}\"",
                pre.live_sessions, pre.previous
            ),
            d,
        ));
    } else {
        steps.push(step(
            format!("rename the scratch database to \"{db}\""),
            vec![format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&pre.scratch),
                quote_ident(db)
            )],
        ));
    }
    if !req.post_hooks.is_empty() {
        steps.push(step(
            "run the post-restore hooks (also when the restore failed after the pre-restore hooks ran)",
            req.post_hooks.iter().map(|h| hooks::show_argv(h)).collect(),
        ));
    }
    if pre.target_exists && !in_place {
        if req.drop_previous {
            steps.push(step(
                format!("drop the previous copy \"{}\"", pre.previous),
                vec![database::drop_database_sql(
                    &pre.previous,
                    pre.server_version_num,
                )],
            ));
        } else {
            steps.push(step(
                format!(
                    "keep the previous copy \"{}\" (connections disabled) until `pgkeep cleanup` drops it",
                    pre.previous
                ),
                vec![],
            ));
        }
    }
    steps
}

fn notes(req: &Request, pre: &Preflight, in_place: bool) -> Vec<String> {
    let mut notes: Vec<String> = pre
        .unapplied
        .iter()
        .map(|u| format!("a recorded property cannot be applied on the target: {u}"))
        .collect();
    if req.backup.is_legacy() {
        notes.push("legacy file: no manifest, so neither a checksum nor the row counts recorded at backup time can be checked".into());
    }
    if in_place {
        notes.push(format!(
            "strategy in-place: \"{}\" is dropped before the load; if the load fails it stays gone until a restore succeeds",
            req.target
        ));
    }
    notes
}

/// Rough space the restore needs on the server.
fn space(req: &Request, pre: &Preflight, in_place: bool) -> String {
    match (&req.backup.manifest, pre.live_size) {
        (Some(m), _) => format!(
            "about {} free in the server's data directory (the database's size at backup time){}",
            crate::report::human_bytes(m.database_info.size_bytes.max(0) as u64),
            if pre.target_exists && !in_place {
                "; the previous copy stays until cleanup"
            } else {
                ""
            }
        ),
        (None, Some(s)) => format!(
            "about {} free in the server's data directory (the live database's size now)",
            crate::report::human_bytes(s.max(0) as u64)
        ),
        (None, None) => "unknown (legacy file and no live database)".into(),
    }
}
