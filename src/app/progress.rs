//! The progress line of a one-shot command on a terminal: the phase, bytes so far, the rate and
//! the time since the phase began, redrawn in place on stderr and cleared at the end. Nothing at
//! all when stderr is not a terminal or the logs are JSON: pipes, files and the daemon's log
//! never get it.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use crate::config::{LogFormat, Settings};
use crate::model::Progress;

/// The template of the line: `⠋ loading 12.50 MiB (6.10 MiB/s) 2s`.
const TEMPLATE: &str = "{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}";

/// The line on the terminal now, if any: log lines hide it while they are written.
static ACTIVE: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// The log's stderr: a log line written while a progress line is drawn goes above it, and the
/// line is drawn again below.
pub struct LogWriter;

/// The writer for the log (`tracing_subscriber`'s `with_writer`).
pub fn log_writer() -> LogWriter {
    LogWriter
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match active {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A progress line on stderr, if it is a terminal; cleared when dropped.
pub struct Line {
    bar: Option<indicatif::ProgressBar>,
}

impl Line {
    /// The line of a command run with `settings`: drawn only on a terminal and with text logs.
    pub fn start(settings: &Settings) -> Line {
        Line::start_if(settings.log_format == LogFormat::Text && std::io::stderr().is_terminal())
    }

    fn start_if(shown: bool) -> Line {
        if !shown {
            return Line { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template(TEMPLATE).expect("valid template"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Line { bar: Some(bar) }
    }

    /// The observer the engine reports to: a new phase starts its bytes, rate and time afresh.
    pub fn progress(&self) -> Progress {
        let Some(bar) = self.bar.clone() else {
            return Progress::none();
        };
        let phase: Arc<Mutex<&'static str>> = Arc::new(Mutex::new(""));
        Progress::new(move |tick| {
            let mut current = phase.lock().unwrap_or_else(|e| e.into_inner());
            if *current != tick.phase {
                *current = tick.phase;
                bar.reset();
                bar.set_message(tick.phase);
            }
            bar.set_position(tick.bytes);
        })
    }
}

impl Line {
    /// Run `f` (which prints) with the line taken off the terminal, then draw it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            // Log lines written by `f` go straight to stderr: the line is off already.
            Some(bar) => bar.suspend(|| {
                let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
                let out = f();
                *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = active;
                out
            }),
            None => f(),
        }
    }

    /// Take the line off the terminal (before the command prints its result).
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
            bar.finish_and_clear();
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_there_is_no_observer() {
        let line = Line::start_if(false);
        assert!(!line.progress().is_observed());
    }
}
