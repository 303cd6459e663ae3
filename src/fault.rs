//! Test-only fault points: named steps where pgkeep kills itself with SIGKILL, so that the crash
//! tests can stop a run at an exact instant (between two renames, say) that a kill from outside
//! would hit only by luck.
//!
//! The app layer arms at most one point at start from `PGKEEP_FAULT_POINT=name[:n]` (the `n`-th time
//! the step is reached, default the first); lower layers only call [`point`] and never read the
//! environment. With `PGKEEP_FAULT_SIGNAL=SIGTERM` (or `SIGINT`) the point sends itself that signal
//! instead and goes on once the shutdown it asks for is seen, as if the signal had come from
//! outside at that instant. Unarmed, a point costs one atomic load. An unknown name is refused at start, so
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
    #[error("PGKEEP_FAULT_SIGNAL: \"{0}\" is not SIGTERM or SIGINT")]
    Signal(String),
}

impl crate::exit::ExitCode for FaultError {
    fn exit_code(&self) -> u8 {
        match self {
            FaultError::Unknown(_)
            | FaultError::Malformed(_)
            | FaultError::Armed
            | FaultError::Signal(_) => crate::exit::USAGE,
        }
    }
}

/// Tells whether the shutdown a signal asked for is seen.
pub type Seen = Box<dyn Fn() -> bool + Send + Sync>;

struct Armed {
    name: &'static str,
    at: u64,
    hits: AtomicU64,
    /// `None`: SIGKILL. Else the signal, and what tells that it was handled.
    signal: Option<(nix::sys::signal::Signal, Seen)>,
}

static ARMED: OnceLock<Armed> = OnceLock::new();

/// Arm the point described by `spec` (`name` or `name:n`) to kill. Once per process.
pub fn arm(spec: &str) -> Result<(), FaultError> {
    arm_with(spec, None)
}

/// Arm the point described by `spec` to send `signal` (`SIGTERM` or `SIGINT`) and wait (at most
/// 10 s) until `seen` says the shutdown it asks for was noticed.
pub fn arm_signal(spec: &str, signal: &str, seen: Seen) -> Result<(), FaultError> {
    use nix::sys::signal::Signal;
    let signal = match signal {
        "SIGTERM" | "TERM" => Signal::SIGTERM,
        "SIGINT" | "INT" => Signal::SIGINT,
        other => return Err(FaultError::Signal(other.to_string())),
    };
    arm_with(spec, Some((signal, seen)))
}

fn arm_with(
    spec: &str,
    signal: Option<(nix::sys::signal::Signal, Seen)>,
) -> Result<(), FaultError> {
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
            signal,
        })
        .map_err(|_| FaultError::Armed)
}

/// The step `name` is reached: if it is the armed point's `n`-th time, die at once by SIGKILL
/// (no destructor, no flush, no cleanup: as if the OOM killer or `kill -9` struck here), or send
/// the armed signal and go on once its shutdown is seen.
pub fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    let Some(armed) = ARMED.get() else {
        return;
    };
    if armed.name == name && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.at {
        if let Some((signal, seen)) = &armed.signal {
            let _ = nix::sys::signal::raise(*signal);
            // The handler runs on another thread of the runtime: wait for it, bounded.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !seen() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            return;
        }
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
        assert!(matches!(
            arm_signal("backup.streamed", "SIGHUP", Box::new(|| true)),
            Err(FaultError::Signal(_))
        ));
        // Unarmed (nothing above was armed): every point passes.
        for p in POINTS {
            point(p);
        }
    }
}
