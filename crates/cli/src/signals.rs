//! Stopping on request: every long-running command ends cleanly on Ctrl-C,
//! and on SIGTERM on Unix (what `kill`, systemd and test harnesses send).

/// The stop requests of this process, listened to from [`Stop::listen`]
/// on: a signal that arrives before [`Stop::requested`] is first awaited
/// is kept, not lost (nor does it kill the process).
pub struct Stop {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    /// Starts listening. Must be called on the tokio runtime.
    ///
    /// # Errors
    /// The signal handlers cannot be installed.
    pub fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves on the next Ctrl-C, or SIGTERM on Unix.
    ///
    /// # Errors
    /// Only off Unix: the Ctrl-C handler cannot be installed.
    pub async fn requested(&mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Ok(()),
                _ = self.terminate.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    }
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
pub async fn interrupted() -> std::io::Result<()> {
    Stop::listen()?.requested().await
}
