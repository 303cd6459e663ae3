//! Progress of a long step (a dump, a load, a read-back) as plain numbers: the engine reports
//! through this observer and never prints; the command layer renders it on a terminal, the
//! daemon and non-terminal runs pass none.

use std::io::Read;
use std::sync::Arc;

/// One report: the step under way and the bytes it has handled so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub phase: &'static str,
    pub bytes: u64,
}

/// The observer of a run: nothing at all unless the caller gave one.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(Tick) + Send + Sync>>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(observed)"
        } else {
            "Progress(none)"
        })
    }
}

impl Progress {
    /// No observer: reports go nowhere.
    pub fn none() -> Progress {
        Progress(None)
    }

    pub fn new(observer: impl Fn(Tick) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(observer)))
    }

    pub fn is_observed(&self) -> bool {
        self.0.is_some()
    }

    /// `phase` has handled `bytes` so far.
    pub fn report(&self, phase: &'static str, bytes: u64) {
        if let Some(f) = &self.0 {
            f(Tick { phase, bytes });
        }
    }

    /// `inner`, reporting the bytes read through it under `phase` (starting at 0).
    pub fn reader<R: Read>(&self, phase: &'static str, inner: R) -> Counting<R> {
        self.report(phase, 0);
        Counting {
            inner,
            phase,
            bytes: 0,
            progress: self.clone(),
        }
    }
}

/// A reader that reports how much passed through it.
pub struct Counting<R> {
    inner: R,
    phase: &'static str,
    bytes: u64,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.progress.report(self.phase, self.bytes);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_counting_reader_reports_every_read_and_none_reports_nothing() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let p = Progress::new(move |t| s.lock().unwrap().push(t));
        let mut r = p.reader("loading", &b"0123456789"[..]);
        let mut buf = [0u8; 4];
        while r.read(&mut buf).unwrap() > 0 {}
        let bytes: Vec<u64> = seen.lock().unwrap().iter().map(|t| t.bytes).collect();
        assert_eq!(bytes, [0, 4, 8, 10, 10]);
        assert!(seen.lock().unwrap().iter().all(|t| t.phase == "loading"));
        let mut quiet = Progress::none().reader("loading", &b"abc"[..]);
        assert_eq!(std::io::copy(&mut quiet, &mut std::io::sink()).unwrap(), 3);
        assert!(!Progress::none().is_observed());
    }
}
