//! The retention policy: how many backups to keep, by age, count and calendar tier. Checked here
//! (a policy that keeps nothing is refused); applied by `retention`.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// How many backups to keep. Zero switches a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Keep every backup less than this many days older than the newest good backup.
    pub keep_days: u32,
    /// Never cull the newest N good backups.
    pub keep_last: u32,
    /// Keep the newest backup of each of the last N days that have backups.
    pub keep_daily: u32,
    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    pub keep_weekly: u32,
    /// Keep the newest backup of each of the last N months that have backups.
    pub keep_monthly: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_days: 10,
            keep_last: 3,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (name, v) in [
            ("keep_days", self.keep_days),
            ("keep_last", self.keep_last),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
        ] {
            if v > 0 {
                parts.push(format!("{name}={v}"));
            }
        }
        if parts.is_empty() {
            f.write_str("(empty)")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "the retention policy keeps nothing (keep_days, keep_last, keep_daily, keep_weekly and keep_monthly are all 0); refusing to cull"
    )]
    Empty,
}

impl crate::exit::ExitCode for PolicyError {
    fn exit_code(&self) -> u8 {
        match self {
            PolicyError::Empty => crate::exit::USAGE,
        }
    }
}

impl Policy {
    /// Refuse a policy that would keep nothing.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.keep_days == 0
            && self.keep_last == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
        {
            return Err(PolicyError::Empty);
        }
        Ok(())
    }
}
