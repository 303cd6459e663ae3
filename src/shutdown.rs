//! A shutdown signal that can be passed down to long operations and awaited or polled.

use tokio::sync::watch;

/// Which signal asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Interrupt,
    Terminate,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Interrupt => "SIGINT",
            Reason::Terminate => "SIGTERM",
        }
    }

    /// The conventional exit code: 128 + signal number.
    pub fn exit_code(self) -> u8 {
        match self {
            Reason::Interrupt => 130,
            Reason::Terminate => 143,
        }
    }
}

/// Sender side: trigger once.
#[derive(Debug, Clone)]
pub struct Trigger(watch::Sender<Option<Reason>>);

/// Receiver side: cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<Option<Reason>>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(None);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self, reason: Reason) {
        self.0.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

impl Shutdown {
    /// A shutdown that never fires.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        std::mem::forget(tx);
        Shutdown(rx)
    }

    pub fn reason(&self) -> Option<Reason> {
        *self.0.borrow()
    }

    /// Resolve when shutdown is requested.
    pub async fn wait(&mut self) -> Reason {
        loop {
            if let Some(r) = *self.0.borrow_and_update() {
                return r;
            }
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Fire `trigger` on SIGINT or SIGTERM. Must be called inside a tokio runtime.
pub fn listen_for_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => trigger.fire(Reason::Interrupt),
                _ = term.recv() => trigger.fire(Reason::Terminate),
            }
        }
    });
    Ok(())
}
