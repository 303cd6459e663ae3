//! The admin connection of the commands that change databases on the server (restore, cleanup,
//! the repair of killed restores): the admin role when one is configured, on the target server.

use crate::cli::TargetArgs;
use crate::config::Settings;
use crate::pg::ConnParams;

/// The admin connection: PGKEEP_ADMIN_USER with its own password or passfile, else the backup
/// user; on the target server when one is given.
pub fn admin_params(settings: &Settings, target: &TargetArgs) -> ConnParams {
    let mut p = ConnParams::from_settings(settings, "postgres");
    if let Some(u) = &settings.admin_user
        && *u != settings.user
    {
        p.user = u.clone();
        p.password = settings.admin_password.clone();
        p.passfile = settings
            .admin_passfile
            .clone()
            .or_else(|| settings.passfile.clone());
    } else {
        if settings.admin_password.is_some() {
            p.password = settings.admin_password.clone();
        }
        if let Some(f) = &settings.admin_passfile {
            p.passfile = Some(f.clone());
        }
    }
    if let Some(h) = &target.target_host {
        p.host = h.clone();
    }
    if let Some(port) = target.target_port {
        p.port = port;
    }
    p
}
