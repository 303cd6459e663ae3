//! The bridge from the store's synchronous `Write` to an async multipart upload: the stream is
//! cut into parts on the caller's thread (growing with the part number so that 10,000 parts
//! never cap a big backup), and a task on the store's runtime uploads a few at once, memory
//! bounded by a semaphore of MiB held by the buffer being filled and every part in flight.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::errors;
use crate::storage::store::{StorageError, Upload};

const MIB: usize = 1024 * 1024;

/// Run `f` to completion from a blocking call, wherever that call is made: a plain thread, a
/// blocking task, or an async task of any runtime (a command that is `async` and calls the
/// synchronous store). `f` is polled on this thread by a small executor of its own inside the
/// context of the store's runtime `rt`, whose workers drive the sockets and timers: no runtime
/// is ever started from within another (`Handle::block_on` would panic there). On a worker of a
/// multi-threaded runtime the worker first hands its other tasks off (`block_in_place`); the
/// future runs outside tokio's cooperative budget, which belongs to the caller's task.
pub(super) fn block_on<F: Future>(rt: &Handle, f: F) -> F::Output {
    let run = || {
        let _entered = rt.enter();
        futures::executor::block_on(tokio::task::unconstrained(f))
    };
    let on_worker = Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_worker {
        tokio::task::block_in_place(run)
    } else {
        run()
    }
}

/// How parts are cut.
#[derive(Debug, Clone, Copy)]
pub struct PartPlan {
    /// First part size (S3 wants at least 5 MiB for every part but the last).
    pub base: usize,
    /// Parts per doubling of the part size.
    pub step: usize,
    /// Largest part.
    pub max: usize,
    /// Bytes of part buffers alive at once (filling and in flight).
    pub budget: usize,
    /// Upper bound on parts in flight (the budget bounds it too).
    pub in_flight: usize,
}

impl PartPlan {
    /// 8 MiB doubling every 1000 parts up to 32 MiB, in 64 MiB: 1000 x 8 + 1000 x 16 +
    /// 8000 x 32 MiB = 273 GiB in 10,000 parts.
    pub const DEFAULT: PartPlan = PartPlan {
        base: 8 * MIB,
        step: 1000,
        max: 32 * MIB,
        budget: 64 * MIB,
        in_flight: 4,
    };

    pub fn size_of(&self, idx: usize) -> usize {
        let shift = (idx / self.step).min(16) as u32;
        (self.base << shift).min(self.max)
    }

    /// The largest object the plan stores in 10,000 parts.
    pub fn capacity(&self) -> u64 {
        (0..10_000).map(|i| self.size_of(i) as u64).sum()
    }
}

struct Part {
    idx: usize,
    data: Bytes,
    permit: OwnedSemaphorePermit,
}

/// What an upload needs to finish or give up: the object, its upload id and its marker.
pub struct Target {
    pub rt: Handle,
    pub client: Arc<AmazonS3>,
    pub path: Path,
    pub marker: Path,
    pub upload_id: String,
    /// `s3://...` of the object, for messages.
    pub what: String,
}

pub struct S3Upload {
    t: Target,
    plan: PartPlan,
    sem: Arc<Semaphore>,
    buf: Vec<u8>,
    permit: Option<OwnedSemaphorePermit>,
    idx: usize,
    tx: Option<mpsc::Sender<Part>>,
    task: Option<tokio::task::JoinHandle<object_store::Result<Vec<PartId>>>>,
    done: bool,
}

impl S3Upload {
    pub fn start(t: Target, plan: PartPlan) -> S3Upload {
        let sem = Arc::new(Semaphore::new(plan.budget.div_ceil(MIB)));
        let (tx, rx) = mpsc::channel::<Part>(plan.in_flight);
        let task = t.rt.spawn(upload_parts(
            t.client.clone(),
            t.path.clone(),
            t.upload_id.clone(),
            rx,
            plan.in_flight,
        ));
        S3Upload {
            t,
            plan,
            sem,
            buf: Vec::new(),
            permit: None,
            idx: 0,
            tx: Some(tx),
            task: Some(task),
            done: false,
        }
    }

    fn start_buffer(&mut self) {
        let size = self.plan.size_of(self.idx);
        let permits = size.div_ceil(MIB).min(self.plan.budget.div_ceil(MIB)) as u32;
        let permit = block_on(&self.t.rt, self.sem.clone().acquire_many_owned(permits))
            .expect("the semaphore is never closed");
        self.permit = Some(permit);
        self.buf = Vec::with_capacity(size);
    }

    /// The uploader's error, once it stopped.
    fn failure(&mut self) -> StorageError {
        match self.task.take().map(|t| block_on(&self.t.rt, t)) {
            Some(Ok(Err(e))) => errors::storage("cannot upload", &self.t.what, &e),
            _ => StorageError::Backend {
                kind: crate::storage::store::ErrorKind::Other,
                message: format!("cannot upload {}: the upload stopped", self.t.what),
            },
        }
    }

    fn send(&mut self) -> Result<(), StorageError> {
        let part = Part {
            idx: self.idx,
            data: Bytes::from(std::mem::take(&mut self.buf)),
            permit: self.permit.take().expect("a buffer holds a permit"),
        };
        self.idx += 1;
        let tx = self.tx.as_ref().expect("open until commit or abort");
        if block_on(&self.t.rt, tx.send(part)).is_err() {
            return Err(self.failure());
        }
        Ok(())
    }

    /// Stop the part uploader, abort the upload, remove the marker.
    fn give_up(&mut self) -> Result<(), StorageError> {
        self.done = true;
        drop(self.tx.take());
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = block_on(&self.t.rt, t);
        }
        let t = &self.t;
        match block_on(&t.rt, t.client.abort_multipart(&t.path, &t.upload_id)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(errors::storage("cannot abort the upload of", &t.what, &e)),
        }
        match block_on(&t.rt, t.client.delete(&t.marker)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(errors::storage(
                "cannot delete the upload marker of",
                &t.what,
                &e,
            )),
        }
    }

    fn finish(&mut self) -> Result<(), StorageError> {
        if self.permit.is_none() && self.idx == 0 {
            self.start_buffer(); // an empty object is one empty part
        }
        if self.permit.is_some() {
            self.send()?;
        }
        drop(self.tx.take());
        let Some(task) = self.task.take() else {
            return Err(self.failure());
        };
        let parts = match block_on(&self.t.rt, task) {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => return Err(errors::storage("cannot upload", &self.t.what, &e)),
            Err(_) => return Err(self.failure()),
        };
        let t = &self.t;
        block_on(
            &t.rt,
            t.client.complete_multipart(&t.path, &t.upload_id, parts),
        )
        .map_err(|e| errors::storage("cannot complete the upload of", &t.what, &e))?;
        self.done = true;
        // Committed; a marker left by a failed delete only names a finished upload, which the
        // next run's discard aborts harmlessly.
        let _ = block_on(&t.rt, t.client.delete(&t.marker));
        Ok(())
    }
}

impl Write for S3Upload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.permit.is_none() {
            self.start_buffer();
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.buf.capacity() {
            self.send().map_err(StorageError::into_io)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for S3Upload {
    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let r = self.finish();
        if r.is_err() {
            let _ = self.give_up();
        }
        r
    }

    fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        self.give_up()
    }
}

impl Drop for S3Upload {
    /// Dropped unfinished (an error or a panic on the writer's side): abort, as `abort` does.
    /// Should that fail, the marker stays and the next run's culling discards the upload.
    fn drop(&mut self) {
        if !self.done {
            let _ = self.give_up();
        }
    }
}

async fn upload_parts(
    client: Arc<AmazonS3>,
    path: Path,
    id: String,
    mut rx: mpsc::Receiver<Part>,
    in_flight: usize,
) -> object_store::Result<Vec<PartId>> {
    let mut done: Vec<Option<PartId>> = Vec::new();
    let mut tasks = JoinSet::new();
    let mut open = true;
    while open || !tasks.is_empty() {
        tokio::select! {
            part = rx.recv(), if open && tasks.len() < in_flight => match part {
                None => open = false,
                Some(Part { idx, data, permit }) => {
                    let (c, p, i) = (client.clone(), path.clone(), id.clone());
                    tasks.spawn(async move {
                        let r = c.put_part(&p, &i, idx, PutPayload::from_bytes(data)).await;
                        drop(permit); // the buffer went with the payload
                        r.map(|pid| (idx, pid))
                    });
                }
            },
            Some(r) = tasks.join_next() => {
                let (idx, pid) = match r {
                    Ok(r) => r?, // an error drops the JoinSet, which cancels the rest
                    Err(e) => return Err(object_store::Error::Generic { store: "S3", source: e.into() }),
                };
                if done.len() <= idx {
                    done.resize(idx + 1, None);
                }
                done[idx] = Some(pid);
            }
        }
    }
    Ok(done
        .into_iter()
        .map(|p| p.expect("every part was uploaded"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_grows_past_a_quarter_terabyte_in_the_budget() {
        let p = PartPlan::DEFAULT;
        assert_eq!(p.size_of(0), 8 * MIB);
        assert_eq!(p.size_of(1000), 16 * MIB);
        assert_eq!(p.size_of(9999), 32 * MIB);
        assert!(p.capacity() > 270 * 1024 * MIB as u64);
        assert!(
            p.max * 2 <= p.budget,
            "the largest part and one in flight fit the budget"
        );
    }
}
