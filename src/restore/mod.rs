//! Safe restore: pick a backup, prove the file, plan, then execute without ever touching the live
//! database before the restored copy is proven. Strategy `swap` loads into a scratch database,
//! checks it, and renames it into place in one transaction (the downtime is that rename);
//! strategy `in-place` is the old runbook's drop/create/load for disks that cannot hold two
//! copies. Hooks scale the apps down and up around it.

mod choose;
mod custom_jobs;
mod database;
mod dropped;
mod error;
mod execute;
mod feed;
mod file;
mod globals;
mod globals_sql;
pub mod hooks;
pub mod journal;
mod leftovers;
pub mod load;
mod load_custom;
mod load_error;
pub mod load_role;
mod names;
mod parallel;
mod plan;
mod preflight;
mod privilege;
mod request;
mod roles;
pub mod subscriptions;
mod swap;

pub use choose::{Chosen, Selector, check_seal, choose, decrypt, parse_time};
pub use database::{
    TargetServer, create_database_sql, drop_database_sql, fit_to_target, grants_sql,
    memberships_sql, settings_sql,
};
pub use dropped::Dropped;
pub use error::RestoreError;
pub use execute::{PreviousNow, Report, cleanup_command, execute, lock_path};
pub use file::{FileCheck, LegacyScan, check_file, custom_statements, scan_plain};
pub use globals::{
    GlobalsApplied, GlobalsFile, GlobalsPlan, PlannedTablespace, TargetGlobals, apply_globals,
    globals_refusal, plan_globals, read_globals, target_globals,
};
pub use leftovers::{Leftover, drop_leftover, leftovers};
pub use load::{Checked, Input, LoadError, Loader, RowShare, ScratchLoad, Tools};
pub use load_role::{LoadRole, RunAs, TEMP_ROLE_PREFIX};
pub use names::{previous_name, scratch_name, stamp, suffixed};
pub use plan::{Plan, Step, plan};
pub use preflight::{
    Preflight, default_info, dry_run_preflight, preflight, refusal, target_server,
};
pub use privilege::needs_admin;
pub use request::{LoadPolicy, Request, Strategy, effective_admin};
pub use roles::{create_role_sql, dump_roles, roles_in_line, roles_of, roles_of_database};
pub use swap::{block_sql, swap_sql, terminate_sql, unblock_sql};
