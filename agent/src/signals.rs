//! The signals that stop the agent, caught from the moment they are
//! registered: a SIGTERM that arrives while the agent restores its data
//! directory is held until it runs, which then drains as it would for a
//! later one, instead of the process dying by the signal's default action.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGTERM and SIGINT, registered by [`ShutdownSignal::register`].
pub struct ShutdownSignal {
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

impl ShutdownSignal {
    /// Catches SIGTERM and SIGINT from now on.
    pub fn register() -> Self {
        Self {
            terminate: catch(SignalKind::terminate(), "SIGTERM"),
            interrupt: catch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Resolves on the first of them since registration, with its name.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            () = next(self.terminate.as_mut()) => "SIGTERM",
            () = next(self.interrupt.as_mut()) => "SIGINT",
        }
    }
}

fn catch(kind: SignalKind, name: &'static str) -> Option<Signal> {
    match signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, signal = name, "cannot catch the signal; it kills the agent");
            None
        }
    }
}

/// Resolves when `signal` arrives; never when it could not be caught.
async fn next(signal: Option<&mut Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
