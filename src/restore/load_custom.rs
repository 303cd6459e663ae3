//! The parts of a custom archive's load that differ from pg_restore's plain run: the archive
//! routed through `pg_restore -f -` into the plain loader (for an older server, or to cut a
//! table that holds most of the rows across the connections), and the second pass that enables
//! row security after the constraints of a parallel restore.

use std::process::Stdio;

use super::custom_jobs;
use super::load::{Loader, conninfo_dbname, script_command, split_pays, through_psql};
use super::load_error::{Input, LoadError};
use crate::process::{Running, Spec};

impl Loader<'_> {
    /// Whether a custom archive goes through `pg_restore -f -` and the plain loader (pg_restore
    /// newer than the server, or one table too large for one connection), said in the log.
    pub(super) fn routed(&self, input: &Input, jobs: usize) -> bool {
        if through_psql(self.tools, input, self.server_version_num) {
            tracing::info!(
                pg_restore = %self.tools.pg_restore_version,
                server_version_num = self.server_version_num,
                jobs,
                "pg_restore is newer than the server: the archive is loaded as the script pg_restore -f - writes, through psql, leaving out what this server does not know"
            );
            return true;
        }
        let split = split_pays(self.tools, input, jobs);
        if split && let Some(r) = input.rows {
            tracing::info!(
                largest_table_rows = r.largest,
                rows = r.total,
                jobs,
                "one table holds more than a connection's share of the rows: the archive is loaded as the script pg_restore -f - writes, its COPY cut across the connections"
            );
        }
        split
    }

    /// The one-job pass of a parallel custom restore that enables row security once every
    /// constraint is there, with the lists of both passes (none when the archive has no such
    /// entry).
    pub(super) fn row_security_pass(
        &self,
        input: &Input,
        database: &str,
        env: &[(String, String)],
    ) -> Result<Option<(Spec, custom_jobs::Lists)>, LoadError> {
        let Some(lists) = custom_jobs::lists(&self.tools.pg_restore, input, env)? else {
            return Ok(None);
        };
        let tail = Spec::new(&self.tools.pg_restore)
            .arg("--no-password")
            .arg("-d")
            .arg(conninfo_dbname(database))
            .envs(env.iter().cloned());
        Ok(Some((tail, lists)))
    }

    /// Start `pg_restore -f -` for a routed archive: it reads the archive on stdin, writes SQL.
    pub(super) fn script(&self, env: Vec<(String, String)>) -> Result<Running, LoadError> {
        Running::spawn_with_stdin(
            &script_command(self.tools).envs(env),
            Stdio::piped(),
            Stdio::piped(),
        )
        .map_err(|source| LoadError::Io {
            context: format!("cannot start {}", self.tools.pg_restore.display()),
            source,
        })
    }
}
