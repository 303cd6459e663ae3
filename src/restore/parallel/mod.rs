//! A plain dump loaded on several connections at once (`restore -j N`), giving the database the
//! serial load gives. The stored file is read once, hashed, decompressed and guarded exactly as
//! for the serial load (`guard::feed_psql`); what the guard lets through is cut
//! (`split`) and run in this order:
//!
//! 1. the pre-data section, in order, on one connection;
//! 2. the data entries on N connections at once (different tables, and the blocks of rows of
//!    one big table, each on the least busy connection; large-object blocks kept whole);
//! 3. once the file ended as checked (sha256, pg_dump's trailer) and the data is in: the
//!    indexes and primary key, unique and exclusion constraints on N connections, each taken
//!    by the next free one;
//! 4. everything else of the post-data section, once those are built, on N connections as
//!    `schedule` orders it: the foreign keys at once where they lock disjoint tables (`fk`
//!    reads which), every other entry (partition index `ATTACH`, triggers, rules, policies,
//!    row security, materialized-view refreshes, grants, comments) alone in its place of the
//!    file's order.
//!
//! Every connection is a psql started as the serial load starts it, with a guard of its own
//! and the session state of its unit's point in the file replayed first (`state`); the blocks
//! of a split COPY, lexed once by the load's guard, pass the worker's guard unlexed
//! (`Worker::send_copy_block`). On any
//! failure every psql is killed; the caller drops the scratch database.

mod fk;
mod schedule;
mod split;
mod state;
mod worker;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use schedule::{Locks, Next, Schedule};
use split::{PostEntry, Sink, Splitter};
use state::State;
pub use worker::Killers;
use worker::{SendError, Worker, WorkerSpec};

use super::load_error::{Input, LoadError, LoadStats};
use crate::model::Progress;
use crate::pipeline::guard::{self, GuardError, GuardOptions};
use crate::process::{Outcome, Spec};

/// What a parallel load needs: psql's command line and environment, the guard's options (a
/// restricted-mode key is made per connection when `restricts`), the jobs.
pub struct Parallel {
    pub spec: Spec,
    pub opts: GuardOptions,
    pub restricts: bool,
    pub jobs: usize,
    pub database: String,
    pub killers: Killers,
}

/// The first failure of any connection.
#[derive(Clone, Default)]
struct Failure {
    first: Arc<Mutex<Option<LoadError>>>,
    set: Arc<AtomicBool>,
}

impl Failure {
    fn record(&self, e: LoadError) {
        let mut f = self.first.lock().expect("failure");
        if f.is_none() {
            *f = Some(e);
        }
        self.set.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    fn take(&self) -> Option<LoadError> {
        self.first.lock().expect("failure").take()
    }
}

fn failed(database: &str, o: &Outcome) -> LoadError {
    LoadError::LoadFailed {
        database: database.to_string(),
        message: o.describe(),
        sqlstate: o.sqlstate.clone(),
    }
}

/// How a worker that could not take a unit ended, as the load's error.
fn send_failure(database: &str, w: Worker, e: SendError) -> LoadError {
    match e {
        SendError::Refused(g) => {
            w.abort();
            LoadError::Refused(g.to_string())
        }
        SendError::Gone => match w.outcome() {
            Ok(o) => failed(database, &o),
            Err(e) => e,
        },
    }
}

/// End a worker's input; its failure is recorded.
fn finish(database: &str, w: Worker, fail: &Failure) {
    match w.finish() {
        Ok(o) if o.success() => {}
        Ok(o) => fail.record(failed(database, &o)),
        Err(e) => fail.record(e),
    }
}

struct Msg {
    state: Option<Arc<State>>,
    bytes: Vec<u8>,
    after: Option<Arc<State>>,
    /// A block of a split COPY (see [`Worker::send_copy_block`]).
    copy_block: bool,
}

struct DataLane {
    tx: SyncSender<Msg>,
    pending: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

/// Receives what the splitter cut: runs the pre-data section, hands data units to the lanes.
struct Router<'a> {
    p: &'a Parallel,
    spec: WorkerSpec,
    pre: Option<Worker>,
    lanes: Vec<DataLane>,
    sticky: usize,
    fail: Failure,
    /// When the pre-data section had run (the data began).
    pre_end: Option<Instant>,
}

fn gone() -> std::io::Error {
    std::io::Error::other("a connection of the load failed")
}

impl Router<'_> {
    fn start_lanes(&mut self) -> Result<(), LoadError> {
        for _ in 0..self.p.jobs {
            let w = Worker::start(&self.spec, false)?;
            let (tx, rx): (SyncSender<Msg>, Receiver<Msg>) = sync_channel(4);
            let pending = Arc::new(AtomicU64::new(0));
            let (p2, fail, db) = (pending.clone(), self.fail.clone(), self.p.database.clone());
            let thread = std::thread::spawn(move || {
                let mut w = Some(w);
                for m in rx {
                    let n = m.bytes.len() as u64;
                    if let Some(x) = w.as_mut().filter(|_| !fail.is_set())
                        && let Err(e) = match (&m.state, m.copy_block) {
                            (Some(st), true) => x.send_copy_block(st, &m.bytes),
                            _ => x.send(m.state.as_deref(), &m.bytes, m.after.as_deref()),
                        }
                    {
                        let x = w.take().expect("the lane's connection");
                        fail.record(send_failure(&db, x, e));
                    }
                    // Messages are taken to the end, so that the reader never blocks.
                    p2.fetch_sub(n, Ordering::SeqCst);
                }
                match w {
                    Some(w) if fail.is_set() => w.abort(),
                    Some(w) => finish(&db, w, &fail),
                    None => {}
                }
            });
            self.lanes.push(DataLane {
                tx,
                pending,
                thread,
            });
        }
        Ok(())
    }

    /// Wait for every lane; the first failure is recorded.
    fn join_lanes(&mut self) {
        for lane in self.lanes.drain(..) {
            drop(lane.tx);
            let _ = lane.thread.join();
        }
    }
}

impl Sink for Router<'_> {
    fn pre(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.fail.is_set() {
            return Err(gone());
        }
        if self.pre.is_none() {
            let w = Worker::start(&self.spec, false).map_err(|e| {
                self.fail.record(e);
                gone()
            })?;
            self.pre = Some(w);
        }
        let w = self.pre.as_mut().expect("pre-data connection");
        if let Err(e) = w.send(None, bytes, None) {
            let w = self.pre.take().expect("pre-data connection");
            self.fail.record(send_failure(&self.p.database, w, e));
            return Err(gone());
        }
        Ok(())
    }

    fn pre_done(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.pre.take() {
            finish(&self.p.database, w, &self.fail);
        }
        self.pre_end = Some(Instant::now());
        if self.fail.is_set() {
            return Err(gone());
        }
        self.start_lanes().map_err(|e| {
            self.fail.record(e);
            gone()
        })
    }

    fn data(
        &mut self,
        start: Option<Arc<State>>,
        bytes: Vec<u8>,
        after: Option<Arc<State>>,
    ) -> std::io::Result<()> {
        if self.fail.is_set() {
            return Err(gone());
        }
        self.route(start, bytes, after, false)
    }

    fn copy_block(&mut self, state: Arc<State>, block: Vec<u8>) -> std::io::Result<()> {
        if self.fail.is_set() {
            return Err(gone());
        }
        self.route(Some(state.clone()), block, Some(state), true)
    }
}

impl Router<'_> {
    /// Give a unit's part to a lane: a new unit to the least busy one, its next parts to the
    /// same.
    fn route(
        &mut self,
        start: Option<Arc<State>>,
        bytes: Vec<u8>,
        after: Option<Arc<State>>,
        copy_block: bool,
    ) -> std::io::Result<()> {
        if self.lanes.is_empty() {
            self.pre_done()?;
        }
        if start.is_some() {
            self.sticky = (0..self.lanes.len())
                .min_by_key(|&i| self.lanes[i].pending.load(Ordering::SeqCst))
                .unwrap_or(0);
        }
        let lane = &self.lanes[self.sticky];
        lane.pending.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        lane.tx
            .send(Msg {
                state: start,
                bytes,
                after,
                copy_block,
            })
            .map_err(|_| gone())
    }
}

/// The splitter as the guard's output.
struct Cut<'a>(Splitter<Router<'a>>);

impl Write for Cut<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.feed(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Load a plain dump on `p.jobs` connections (see the module documentation).
pub fn load(p: &Parallel, input: &Input, progress: &Progress) -> Result<LoadStats, LoadError> {
    let file = std::fs::File::open(&input.path).map_err(|source| LoadError::Io {
        context: format!("cannot open {}", input.path.display()),
        source,
    })?;
    let what = input.path.display().to_string();
    let source = Source {
        reader: progress.reader("loading", file),
        compression: input.compression,
        what: &what,
    };
    let stats = load_stream(p, source, |feed| input.changed(&feed.sha256))?;
    Ok(stats)
}

/// The script of a plain dump as a stream: its bytes, how they are compressed, what to call it
/// in errors.
pub struct Source<'a, R> {
    pub reader: R,
    pub compression: crate::model::Compression,
    pub what: &'a str,
}

/// Load the script `source` holds on `p.jobs` connections. Before the post-data section runs,
/// `judge` looks at the finished feed (the file's sha256, or the program that wrote the script),
/// then the inspector checks that the script ended with pg_dump's trailer.
pub fn load_stream<R: std::io::Read + Send>(
    p: &Parallel,
    source: Source<'_, R>,
    judge: impl FnOnce(&guard::LoadFeed) -> Option<LoadError>,
) -> Result<LoadStats, LoadError> {
    let spec = WorkerSpec {
        spec: p.spec.clone(),
        opts: p.opts.clone(),
        restricts: p.restricts,
        killers: p.killers.clone(),
    };
    let fail = Failure::default();
    let router = Router {
        p,
        spec: spec.clone(),
        pre: None,
        lanes: Vec::new(),
        sticky: 0,
        fail: fail.clone(),
        pre_end: None,
    };
    let started = Instant::now();
    let mut cut = Cut(Splitter::new(router, p.opts.scan));
    let main_opts = GuardOptions {
        scan: p.opts.scan,
        restrict_key: None,
        server_major: p.opts.server_major,
    };
    let fed = guard::feed_psql(source.reader, source.compression, &mut cut, main_opts);
    let stop = |mut router: Router<'_>, e: LoadError| -> LoadError {
        fail.record(e);
        p.killers.terminate_all();
        if let Some(w) = router.pre.take() {
            w.abort();
        }
        router.join_lanes();
        fail.take().expect("a failure")
    };
    let feed = match fed {
        Ok(feed) => feed,
        Err(e) => {
            let err = fail.take().unwrap_or_else(|| guard_error(source.what, e));
            return Err(stop(cut.0.into_sink(), err));
        }
    };
    let (mut router, post) = match cut.0.finish() {
        Ok(x) => x,
        Err(_) => {
            return Err(fail.take().unwrap_or_else(|| LoadError::Io {
                context: "the load failed".into(),
                source: gone(),
            }));
        }
    };
    let problem =
        judge(&feed).or_else(|| feed.inspect.incomplete_reason().map(LoadError::Incomplete));
    if let Some(e) = problem {
        return Err(stop(router, e));
    }
    if let Some(w) = router.pre.take() {
        finish(&p.database, w, &fail);
    }
    router.join_lanes();
    if let Some(e) = fail.take() {
        p.killers.terminate_all();
        return Err(e);
    }
    let data_end = Instant::now();
    let pre_end = router.pre_end.unwrap_or(data_end);
    let builds_end = post_data(p, &spec, post, &fail)?;
    let secs = |a: Instant, b: Instant| format!("{:.2}s", b.duration_since(a).as_secs_f64());
    tracing::debug!(
        pre_data = %secs(started, pre_end),
        data = %secs(pre_end, data_end),
        builds = %secs(data_end, builds_end),
        post_data = %secs(builds_end, Instant::now()),
        "parallel load phases"
    );
    Ok(LoadStats {
        raw_bytes: feed.guard.raw_bytes,
        report: Some(feed.inspect),
        left_out: feed.guard.left_out,
        ..LoadStats::default()
    })
}

fn guard_error(what: &str, e: GuardError) -> LoadError {
    match e {
        GuardError::Refused(f) => LoadError::Refused(f.to_string()),
        GuardError::Decode(e) => LoadError::Incomplete(format!("{what} does not decompress: {e}")),
        e => LoadError::Io {
            context: format!("cannot read {what}"),
            source: std::io::Error::other(e.to_string()),
        },
    }
}

/// The post-data section: the index and key builds, each on the next free connection, then
/// the rest as [`schedule`] orders it (foreign keys on several connections, the others alone in
/// their place). Returns when the builds ended.
fn post_data(
    p: &Parallel,
    spec: &WorkerSpec,
    post: Vec<PostEntry>,
    fail: &Failure,
) -> Result<Instant, LoadError> {
    let (builds, rest): (Vec<PostEntry>, Vec<PostEntry>) =
        post.into_iter().partition(|e| e.parallel);
    // The builds depend on the tables only: none waits for another.
    let free = vec![Locks::Tables(Vec::new()); builds.len()];
    scheduled(p, spec, builds, free, fail)?;
    let builds_end = Instant::now();
    let locks = rest.iter().map(|e| e.locks.clone()).collect();
    scheduled(p, spec, rest, locks, fail)?;
    Ok(builds_end)
}

/// Run `entries` on up to `p.jobs` connections in the order a [`Schedule`] of `locks` gives.
fn scheduled(
    p: &Parallel,
    spec: &WorkerSpec,
    entries: Vec<PostEntry>,
    locks: Vec<Locks>,
    fail: &Failure,
) -> Result<(), LoadError> {
    let n = p.jobs.min(entries.len());
    let board = Arc::new(Board {
        schedule: Mutex::new(Schedule::new(locks)),
        changed: Condvar::new(),
        entries,
    });
    let mut threads = Vec::new();
    for _ in 0..n {
        let w = match Worker::start(spec, true) {
            Ok(w) => w,
            Err(e) => {
                // The connections started stop at their next entry.
                fail.record(e);
                board.changed.notify_all();
                break;
            }
        };
        let (board, fail, db) = (board.clone(), fail.clone(), p.database.clone());
        threads.push(std::thread::spawn(move || board.work(w, &fail, &db)));
    }
    for t in threads {
        let _ = t.join();
    }
    if let Some(e) = fail.take() {
        p.killers.terminate_all();
        return Err(e);
    }
    Ok(())
}

/// What the connections of a [`scheduled`] run share.
struct Board {
    schedule: Mutex<Schedule>,
    changed: Condvar,
    entries: Vec<PostEntry>,
}

impl Board {
    /// The next entries this connection may run; `None` when all were started (or the load
    /// failed).
    fn take(&self, fail: &Failure) -> Option<(usize, usize)> {
        let mut s = self.schedule.lock().expect("schedule");
        loop {
            if fail.is_set() {
                return None;
            }
            match s.next() {
                Next::Start(i, n) => return Some((i, n)),
                Next::Done => return None,
                Next::Wait => s = self.changed.wait(s).expect("schedule"),
            }
        }
    }

    /// One connection's loop: run what the schedule gives, tell it when that ran.
    fn work(&self, mut w: Worker, fail: &Failure, db: &str) {
        while let Some((i, n)) = self.take(fail) {
            let sent = self.entries[i..i + n]
                .iter()
                .try_for_each(|e| w.send(Some(&e.state), &e.bytes, Some(&e.after)));
            if let Err(err) = sent.and_then(|_| w.sync()) {
                fail.record(send_failure(db, w, err));
                self.changed.notify_all();
                return;
            }
            self.schedule.lock().expect("schedule").done(i, n);
            self.changed.notify_all();
        }
        if fail.is_set() {
            w.abort();
        } else {
            finish(db, w, fail);
        }
        self.changed.notify_all();
    }
}
