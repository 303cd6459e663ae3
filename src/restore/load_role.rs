//! The role a backup's SQL runs as: the database's owner, never the admin role (unless the user
//! asks for it). The admin connection only creates, renames and drops databases and roles. When
//! the configured user is the owner, psql and pg_restore connect as it; otherwise a temporary
//! login role (`pgkeep_load_<random>`, not a superuser, a random password the server only ever
//! sees as a SCRAM verifier) is granted the owner role, starts its sessions as the owner, and is
//! dropped after the load (`REASSIGN OWNED`, `DROP OWNED`, `DROP ROLE`). `pgkeep cleanup` drops
//! such roles left by a killed run.

use std::path::Path;

use super::load_error::LoadError;
use crate::model::Secret;
use crate::pg::ident::{quote_ident, quote_literal};
use crate::pg::passfile::PrivatePassfile;
use crate::pg::{ConnParams, query_error};

/// Name prefix of the temporary load roles.
pub const TEMP_ROLE_PREFIX: &str = "pgkeep_load_";

/// Who runs a backup's SQL.
#[derive(Debug, Clone)]
pub enum RunAs {
    /// The admin role (`--load-as-admin`, or a caller that vetted the file itself).
    Admin,
    /// The database owner: through `configured` when that is the owner's own login, else
    /// through a temporary role.
    Owner {
        owner: String,
        configured: Option<ConnParams>,
    },
}

/// The connection children use for a load, and the temporary role behind it, if any.
pub struct LoadRole {
    pub params: ConnParams,
    pub owner: String,
    /// The temporary role made for this load.
    pub temporary: Option<String>,
    passfile: Option<PrivatePassfile>,
}

impl LoadRole {
    pub fn passfile(&self) -> Option<&Path> {
        self.passfile
            .as_ref()
            .map(|p| p.path())
            .or(self.params.passfile.as_deref())
    }

    /// The role the session starts as (`-c role=...`), for a temporary role.
    pub fn session_role(&self) -> Option<&str> {
        self.temporary.as_ref().map(|_| self.owner.as_str())
    }

    /// Make the load role on the server of `admin` (its `dbname` a maintenance database).
    pub async fn prepare(
        admin: &ConnParams,
        owner: &str,
        configured: Option<&ConnParams>,
    ) -> Result<LoadRole, LoadError> {
        let io = |source| LoadError::Io {
            context: "cannot create a private passfile".into(),
            source,
        };
        if let Some(c) = configured.filter(|c| c.user == owner) {
            let mut params = admin.clone();
            params.user = c.user.clone();
            params.password = c.password.clone().or_else(|| c.resolve_password());
            params.passfile = c.passfile.clone();
            let passfile = match &params.password {
                Some(pw) => Some(PrivatePassfile::new(pw).map_err(io)?),
                None => None,
            };
            return Ok(LoadRole {
                params,
                owner: owner.to_string(),
                temporary: None,
                passfile,
            });
        }
        let random = |n| {
            crate::pipeline::guard::random_alnum(n).map_err(|e| LoadError::Io {
                context: "cannot make a random name".into(),
                source: std::io::Error::other(e.to_string()),
            })
        };
        let name = format!("{TEMP_ROLE_PREFIX}{}", random(12)?.to_lowercase());
        let password = Secret::new(random(32)?);
        let passfile = PrivatePassfile::new(&password).map_err(io)?;
        let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
        let client = admin.connect().await?;
        let sql = format!(
            "CREATE ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT \
             PASSWORD {v} VALID UNTIL {until};\nGRANT {o} TO {r}",
            r = quote_ident(&name),
            v = quote_literal(&verifier),
            until = quote_literal(
                &jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_hours(24))
                    .unwrap_or(jiff::Timestamp::MAX)
                    .to_string()
            ),
            o = quote_ident(owner),
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| query_error("creating the temporary load role", e))?;
        let mut params = admin.clone();
        params.user = name.clone();
        params.password = Some(password);
        params.passfile = None;
        Ok(LoadRole {
            params,
            owner: owner.to_string(),
            temporary: Some(name),
            passfile: Some(passfile),
        })
    }

    /// Connect as the load role to `database`: a server whose pg_hba.conf refuses it is told
    /// before anything is loaded.
    pub async fn probe(&self, database: &str) -> Result<(), LoadError> {
        match self.params.with_dbname(database).connect().await {
            Ok(_) => Ok(()),
            Err(e) => Err(LoadError::RoleRefused(format!(
                "the server refuses the load role \"{}\" ({e}){}",
                self.params.user,
                if self.temporary.is_some() {
                    "; allow password logins of members of the owner role in pg_hba.conf, give the configured user the database, or pass --load-as-admin"
                } else {
                    ""
                }
            ))),
        }
    }

    /// Give what the temporary role owns in `database` to the owner (none normally: its
    /// sessions run as the owner).
    pub async fn reassign(&self, admin: &ConnParams, database: &str) -> Result<(), LoadError> {
        let Some(name) = &self.temporary else {
            return Ok(());
        };
        let client = admin.with_dbname(database).connect().await?;
        client
            .batch_execute(&format!(
                "REASSIGN OWNED BY {r} TO {o};\nDROP OWNED BY {r}",
                r = quote_ident(name),
                o = quote_ident(&self.owner)
            ))
            .await
            .map_err(|e| query_error("giving the load role's objects to the owner", e))?;
        Ok(())
    }

    /// Drop the temporary role (its objects must have been reassigned, or their database
    /// dropped).
    pub async fn release(&self, admin: &ConnParams) -> Result<(), LoadError> {
        match &self.temporary {
            Some(name) => drop_role(admin, name).await,
            None => Ok(()),
        }
    }
}

/// Drop a temporary load role: end its sessions first.
pub async fn drop_role(admin: &ConnParams, name: &str) -> Result<(), LoadError> {
    let client = admin.connect().await?;
    client
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {l};\nDROP ROLE IF EXISTS {r}",
            l = quote_literal(name),
            r = quote_ident(name)
        ))
        .await
        .map_err(|e| query_error(&format!("dropping the load role \"{name}\""), e))?;
    Ok(())
}
