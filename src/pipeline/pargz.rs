//! Parallel gzip: the input is cut into fixed-size chunks, each compressed by a worker thread into
//! its own gzip member with libdeflate, and the members are written in order. A multi-member gzip
//! file is standard (RFC 1952): `gunzip -c` and every zlib reader decode it as one stream.
//! Memory is bounded by the chunk size times the number of chunks in flight. `finish` succeeds
//! only when every chunk came back from a worker and was written: a dead worker fails the stream.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

/// Input bytes per gzip member.
pub const CHUNK: usize = 1024 * 1024;

pub struct ParGzWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    seq: u64,
    jobs: Option<Sender<(u64, Vec<u8>)>>,
    workers: Vec<JoinHandle<()>>,
    collector: Option<JoinHandle<io::Result<(W, u64)>>>,
    failed: Arc<AtomicBool>,
}

impl<W: Write + Send + 'static> ParGzWriter<W> {
    pub fn new(sink: W, level: i32, threads: usize) -> io::Result<Self> {
        Self::with_fault(sink, level, threads, None)
    }

    /// `panic_at`: the chunk at which a worker panics, for the tests of a dying worker.
    fn with_fault(sink: W, level: i32, threads: usize, panic_at: Option<u64>) -> io::Result<Self> {
        let level = libdeflater::CompressionLvl::new(level)
            .map_err(|_| io::Error::other(format!("gzip level {level} is out of range 1..=12")))?;
        let threads = threads.max(1);
        let (job_tx, job_rx) = bounded::<(u64, Vec<u8>)>(threads);
        let (res_tx, res_rx) = bounded::<(u64, io::Result<Vec<u8>>)>(threads * 2);
        let failed = Arc::new(AtomicBool::new(false));
        let workers = (0..threads)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = res_tx.clone();
                std::thread::spawn(move || worker(rx, tx, level, panic_at))
            })
            .collect();
        drop(res_tx);
        let f = failed.clone();
        let collector = std::thread::spawn(move || collect(res_rx, sink, f));
        Ok(ParGzWriter {
            buf: Vec::with_capacity(CHUNK),
            seq: 0,
            jobs: Some(job_tx),
            workers,
            collector: Some(collector),
            failed,
        })
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let seq = self.seq;
        self.seq += 1;
        if self.failed.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "the compressed output could not be written",
            ));
        }
        self.jobs
            .as_ref()
            .expect("not finished")
            .send((seq, chunk))
            .map_err(|_| io::Error::other("gzip workers stopped"))
    }

    /// Flush the last chunk, wait for every member to be written, return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        let submitted = self.submit();
        self.shutdown(submitted)
    }

    /// Every submitted chunk must have come back and been written, in order: a worker that died
    /// (a panic) took its chunk with it, and the shorter stream would still hash and decode
    /// cleanly, so that is an error, never a success.
    fn shutdown(&mut self, submitted: io::Result<()>) -> io::Result<W> {
        self.jobs = None;
        let mut dead = 0;
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                dead += 1;
            }
        }
        let collected = match self.collector.take() {
            Some(c) => c
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("gzip writer thread panicked"))),
            None => Err(io::Error::other("gzip writer already finished")),
        };
        // The sink's own error (e.g. ENOSPC) is the real cause; report it first.
        let (sink, written) = collected?;
        if dead > 0 {
            return Err(io::Error::other(format!(
                "{dead} gzip compression thread(s) died; the compressed stream is incomplete"
            )));
        }
        submitted?;
        if written != self.seq {
            return Err(io::Error::other(format!(
                "only {written} of {} gzip members were written; the compressed stream is incomplete",
                self.seq
            )));
        }
        Ok(sink)
    }
}

impl<W: Write + Send + 'static> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = (CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == CHUNK {
            self.submit()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        if self.collector.is_some() {
            let _ = self.shutdown(Ok(()));
        }
    }
}

fn worker(
    rx: Receiver<(u64, Vec<u8>)>,
    tx: Sender<(u64, io::Result<Vec<u8>>)>,
    level: libdeflater::CompressionLvl,
    panic_at: Option<u64>,
) {
    let mut c = libdeflater::Compressor::new(level);
    for (seq, data) in rx {
        assert!(panic_at != Some(seq), "injected panic at chunk {seq}");
        let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
        let res = c
            .gzip_compress(&data, &mut out)
            .map(|n| {
                out.truncate(n);
                out
            })
            .map_err(|e| io::Error::other(format!("gzip compression failed: {e:?}")));
        if tx.send((seq, res)).is_err() {
            return;
        }
    }
}

fn collect<W: Write>(
    rx: Receiver<(u64, io::Result<Vec<u8>>)>,
    mut sink: W,
    failed: Arc<AtomicBool>,
) -> io::Result<(W, u64)> {
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut error: Option<io::Error> = None;
    for (seq, res) in rx {
        pending.insert(seq, res);
        while let Some(res) = pending.remove(&next) {
            next += 1;
            if error.is_some() {
                continue;
            }
            let res = res.and_then(|out| sink.write_all(&out));
            if let Err(e) = res {
                failed.store(true, Ordering::SeqCst);
                error = Some(e);
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => {
            sink.flush()?;
            // Members still pending wait for one that never came: they are not written.
            Ok((sink, next))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trip_multi_member() {
        let mut data = Vec::new();
        for i in 0..400_000u32 {
            data.extend_from_slice(format!("row {i}\tsome text {}\n", i % 97).as_bytes());
        }
        assert!(data.len() > 3 * CHUNK);
        let mut w = ParGzWriter::new(Vec::new(), 6, 3).unwrap();
        for c in data.chunks(10_000) {
            w.write_all(c).unwrap();
        }
        let gz = w.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::from_raw_os_error(28));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A worker that dies takes its chunk with it: the stream must fail, not end short.
    #[test]
    fn a_dead_worker_fails_the_stream() {
        let data: Vec<u8> = (0..5 * CHUNK).map(|i| (i % 251) as u8).collect();
        for (panic_at, threads) in [(2, 3), (4, 2), (0, 1), (4, 1)] {
            let mut w = ParGzWriter::with_fault(Vec::new(), 1, threads, Some(panic_at)).unwrap();
            let written = w.write_all(&data);
            let finished = w.finish();
            assert!(
                written.is_err() || finished.is_err(),
                "chunk {panic_at} of 5 lost with {threads} workers, yet the stream succeeded"
            );
        }
    }

    #[test]
    fn sink_error_surfaces() {
        let mut w = ParGzWriter::new(Full(1000), 1, 2).unwrap();
        let noise: Vec<u8> = (0..8 * CHUNK).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = w.write_all(&noise);
        let e = w.finish().map(|_| ()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28), "{e}");
    }
}
