//! One connection of a parallel load: a psql started as the serial load starts it (restricted
//! mode with a key of its own, `ON_ERROR_STOP=1`, the pinned settings), fed through a guard of
//! its own, so that what it is given is checked again exactly as a serial load's input is (but
//! for the blocks of a split COPY, see [`Worker::send_copy_block`]). It
//! replays the session state a unit was cut under before the unit, and can wait until psql has
//! run everything it was given (a marker query it alone can know).

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::state::State;
use crate::pipeline::guard::{Guard, GuardError, GuardOptions, RestrictKey, random_alnum};
use crate::process::{Killer, Outcome, Running, Spec};
use crate::restore::load_error::LoadError;

/// The killers of every psql a parallel load started (a shutdown or a failure ends them all).
#[derive(Clone, Default)]
pub struct Killers(Arc<Mutex<Vec<Killer>>>);

impl Killers {
    pub fn add(&self, k: Killer) {
        self.0.lock().expect("killers").push(k);
    }

    pub fn terminate_all(&self) {
        for k in self.0.lock().expect("killers").iter() {
            k.terminate(Duration::from_millis(500));
        }
    }
}

/// How a unit could not be given to a worker.
#[derive(Debug)]
pub enum SendError {
    /// psql stopped reading: it failed (its outcome tells why).
    Gone,
    /// The worker's own guard refused the unit (it must not: a cut in the wrong place).
    Refused(GuardError),
}

pub struct Worker {
    running: Running,
    pipe: Option<ChildStdin>,
    guard: Option<Guard>,
    applied: State,
    sync: Option<Sync>,
}

struct Sync {
    token: String,
    count: u64,
    out: BufReader<ChildStdout>,
}

/// What a worker needs to start.
#[derive(Clone)]
pub struct WorkerSpec {
    pub spec: Spec,
    pub opts: GuardOptions,
    pub restricts: bool,
    pub killers: Killers,
}

impl Worker {
    /// Start psql; `sync`: with its stdout read for markers.
    pub fn start(w: &WorkerSpec, sync: bool) -> Result<Worker, LoadError> {
        let io = |context: String| move |source| LoadError::Io { context, source };
        let stdout = if sync { Stdio::piped() } else { Stdio::null() };
        let mut running = Running::spawn_with_stdin(&w.spec, Stdio::piped(), stdout)
            .map_err(io(format!("cannot start {}", w.spec.name())))?;
        w.killers.add(running.killer());
        let mut opts = w.opts.clone();
        if w.restricts {
            opts.restrict_key = Some(RestrictKey::random().map_err(|e| LoadError::Io {
                context: "cannot make a restricted-mode key".into(),
                source: std::io::Error::other(e.to_string()),
            })?);
        }
        let sync = match sync {
            true => Some(Sync {
                token: format!(
                    "pgkeep_sync_{}",
                    random_alnum(24).map_err(|e| LoadError::Io {
                        context: "cannot make a marker".into(),
                        source: std::io::Error::other(e.to_string()),
                    })?
                ),
                count: 0,
                out: BufReader::new(running.take_stdout().expect("stdout is piped")),
            }),
            false => None,
        };
        Ok(Worker {
            pipe: running.take_stdin(),
            running,
            guard: Some(Guard::new(opts)),
            applied: State::default(),
            sync,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let (Some(guard), Some(pipe)) = (self.guard.as_mut(), self.pipe.as_mut()) else {
            return Err(SendError::Gone);
        };
        match guard.feed(bytes, pipe) {
            Ok(()) => Ok(()),
            Err(GuardError::Write(_)) => Err(SendError::Gone),
            Err(e) => Err(SendError::Refused(e)),
        }
    }

    /// Give psql `bytes` (whole statements, or a unit's next part when `state` is `None`), with
    /// the session state they were cut under replayed first; `after`: the state they leave.
    pub fn send(
        &mut self,
        state: Option<&State>,
        bytes: &[u8],
        after: Option<&State>,
    ) -> Result<(), SendError> {
        if let Some(s) = state {
            let diff = s.diff(&self.applied);
            if !diff.is_empty() {
                self.write(&diff)?;
            }
            self.applied = s.clone();
        }
        self.write(bytes)?;
        if let Some(a) = after {
            self.applied = a.clone();
        }
        Ok(())
    }

    /// Give psql a COPY block the splitter cut from the checked stream (`COPY ... FROM stdin;`,
    /// whole rows, `\.`), after the session state it was cut under. The statement and its rows
    /// passed the load's guard once already, and a block leaves psql at the start of a fresh
    /// line, where it found it: so when this worker's guard is at rest the block goes to psql
    /// as it is, without a second lexing of every row; otherwise through the guard.
    pub fn send_copy_block(&mut self, state: &State, block: &[u8]) -> Result<(), SendError> {
        self.send(Some(state), b"", None)?;
        let (Some(guard), Some(pipe)) = (self.guard.as_mut(), self.pipe.as_mut()) else {
            return Err(SendError::Gone);
        };
        guard.open(pipe).map_err(|_| SendError::Gone)?;
        if !guard.at_rest() {
            return self.write(block);
        }
        pipe.write_all(block).map_err(|_| SendError::Gone)
    }

    /// Wait until psql ran everything it was given.
    pub fn sync(&mut self) -> Result<(), SendError> {
        let Some(s) = self.sync.as_mut() else {
            return Ok(());
        };
        s.count += 1;
        let marker = format!("{}_{}", s.token, s.count);
        let query = format!("\nSELECT '{marker}' AS pgkeep_sync;\n");
        self.write(query.as_bytes())?;
        if let Some(p) = self.pipe.as_mut() {
            p.flush().map_err(|_| SendError::Gone)?;
        }
        let s = self.sync.as_mut().expect("sync");
        let mut line = String::new();
        loop {
            line.clear();
            match s.out.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(SendError::Gone),
                Ok(_) if line.contains(&marker) => return Ok(()),
                Ok(_) => {}
            }
        }
    }

    /// End psql's input and wait for it.
    pub fn finish(mut self) -> Result<Outcome, LoadError> {
        let mut failed = None;
        if let (Some(guard), Some(pipe)) = (self.guard.take(), self.pipe.as_mut())
            && let Err(e) = guard.finish(pipe)
            && !matches!(e, GuardError::Write(_))
        {
            failed = Some(LoadError::Refused(e.to_string()));
        }
        if let Some(e) = failed {
            self.abort();
            return Err(e);
        }
        drop(self.pipe.take());
        if let Some(s) = self.sync.take() {
            // Drain what psql still prints, so it never blocks on a full pipe.
            let mut out = s.out;
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        }
        self.running.wait().map_err(|source| LoadError::Io {
            context: "cannot wait for psql".into(),
            source,
        })
    }

    /// Stop psql before it sees the end of its input.
    pub fn abort(self) {
        self.running.killer().terminate(Duration::from_millis(500));
        let _ = self.running.wait();
    }

    /// Stop psql and return how it ended (after a [`SendError::Gone`]).
    pub fn outcome(mut self) -> Result<Outcome, LoadError> {
        drop(self.pipe.take());
        drop(self.sync.take());
        self.running.wait().map_err(|source| LoadError::Io {
            context: "cannot wait for psql".into(),
            source,
        })
    }
}
