//! Test-only fault points: named steps where pgkeep kills itself with SIGKILL, so that the crash
//! tests can stop a run at an exact instant (between two renames, say) that a kill from outside
//! would hit only by luck.
//!
//! The app layer arms at most one point at start from `PGKEEP_FAULT_POINT=name[:n]` (the `n`-th time
//! the step is reached, default the first); lower layers only call [`point`] and never read the
//! environment. Unarmed, a point costs one atomic load. An unknown name is refused at start, so
//! a test cannot aim at a point that no longer exists and pass because nothing happened.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// Every fault point, in the order a backup (then a restore, then a verification) passes them.
pub const POINTS: &[&str] = &[
    // The backup's lock is held; nothing is written yet.
    "backup.locked",
    // pg_dump was started (and the passfile handed to it).
    "backup.dump-started",
    // A chunk of the plain dump was read from pg_dump and went into the pipeline (once per read).
    "backup.streamed",
    // A chunk of a custom archive's replay through pg_restore was read (once per read).
    "backup.replayed",
    // pg_dump exited 0 and the dump was found complete; the data is still `.partial`.
    "backup.dumped",
    // The data file was renamed into place; its manifest is not written yet.
    "backup.data-renamed",
    // A stored object (e.g. a manifest) was written as `.partial`, not yet synced and renamed.
    "store.put-before-rename",
    // The manifest was committed: the backup exists.
    "backup.committed",
    // A restore's journal was written on the server; no hook has run yet.
    "restore.journaled",
    // The pre-restore hooks ran; the load has not started.
    "restore.pre-hooks-done",
    // The scratch database was loaded and checked; the swap has not started.
    "restore.loaded",
    // The swap's transaction was opened (nothing renamed yet).
    "restore.swap-begun",
    // Inside the swap's transaction: the live database was renamed to the kept copy.
    "restore.swap-live-renamed",
    // Inside the swap's transaction: everything is done but the commit.
    "restore.swap-before-commit",
    // The swap committed; the post-restore hooks have not run.
    "restore.swap-committed",
    // The post-restore hooks ran; the journal is not closed yet.
    "restore.post-hooks-done",
    // `verify --local`: the throwaway cluster runs; no backup is loaded into it yet.
    "verify.cluster-started",
];

#[derive(Debug, Error)]
pub enum FaultError {
    #[error("PGKEEP_FAULT_POINT: unknown fault point \"{0}\" (known: {known})", known = POINTS.join(", "))]
    Unknown(String),
    #[error("PGKEEP_FAULT_POINT: \"{0}\" is not name[:n] with n a positive count")]
    Malformed(String),
    #[error("PGKEEP_FAULT_POINT: a fault point is armed already")]
    Armed,
}

impl crate::exit::ExitCode for FaultError {
    fn exit_code(&self) -> u8 {
        match self {
            FaultError::Unknown(_) | FaultError::Malformed(_) | FaultError::Armed => {
                crate::exit::USAGE
            }
        }
    }
}

struct Armed {
    name: &'static str,
    at: u64,
    hits: AtomicU64,
}

static ARMED: OnceLock<Armed> = OnceLock::new();

/// Arm the point described by `spec` (`name` or `name:n`). Once per process.
pub fn arm(spec: &str) -> Result<(), FaultError> {
    let (name, at) = match spec.split_once(':') {
        None => (spec, 1),
        Some((name, n)) => match n.parse::<u64>() {
            Ok(n) if n > 0 => (name, n),
            _ => return Err(FaultError::Malformed(spec.to_string())),
        },
    };
    let name = POINTS
        .iter()
        .find(|p| **p == name)
        .ok_or_else(|| FaultError::Unknown(name.to_string()))?;
    ARMED
        .set(Armed {
            name,
            at,
            hits: AtomicU64::new(0),
        })
        .map_err(|_| FaultError::Armed)
}

/// The step `name` is reached: if it is the armed point's `n`-th time, die at once by SIGKILL
/// (no destructor, no flush, no cleanup: as if the OOM killer or `kill -9` struck here).
pub fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    let Some(armed) = ARMED.get() else {
        return;
    };
    if armed.name == name && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.at {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; nothing after it runs.
        unreachable!("SIGKILL did not end the process");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_are_refused() {
        assert!(matches!(arm("backup.nowhere"), Err(FaultError::Unknown(_))));
        assert!(matches!(
            arm("backup.streamed:0"),
            Err(FaultError::Malformed(_))
        ));
        assert!(matches!(
            arm("backup.streamed:x"),
            Err(FaultError::Malformed(_))
        ));
        // Unarmed (nothing above was armed): every point passes.
        for p in POINTS {
            point(p);
        }
    }
}
