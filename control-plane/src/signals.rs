//! The signals that stop the server, caught from the moment they are
//! registered: a SIGTERM that arrives while the store opens or the xDS
//! world loads is held until the server runs, which then drains and
//! flushes as it would for a later one, instead of the process dying by
//! the signal's default action.

/// SIGTERM and Ctrl-C, registered by [`ShutdownSignal::register`].
pub struct ShutdownSignal {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Catches SIGTERM and Ctrl-C from now on. Call it before the
    /// server's address is published, so that no one who learns it can
    /// signal the process before the signal is caught.
    pub fn register() -> Self {
        Self {
            #[cfg(unix)]
            terminate: catch(tokio::signal::unix::SignalKind::terminate(), "SIGTERM"),
            #[cfg(unix)]
            interrupt: catch(tokio::signal::unix::SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Resolves on the first SIGTERM or Ctrl-C since registration.
    #[cfg(unix)]
    pub async fn recv(mut self) {
        tokio::select! {
            () = next(self.interrupt.as_mut()) => {
                tracing::info!(signal = "interrupt", "shutting down");
            }
            () = next(self.terminate.as_mut()) => {
                tracing::info!(signal = "terminate", "shutting down");
            }
        }
    }

    /// Resolves on the first Ctrl-C.
    #[cfg(not(unix))]
    pub async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(signal = "interrupt", "shutting down");
    }
}

#[cfg(unix)]
fn catch(
    kind: tokio::signal::unix::SignalKind,
    name: &'static str,
) -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, signal = name, "cannot catch the signal; it kills the server");
            None
        }
    }
}

/// Resolves when `signal` arrives; never when it could not be caught.
#[cfg(unix)]
async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
