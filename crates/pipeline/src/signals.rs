//! Signals and exit codes shared by the binaries.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::sync::watch;

use crate::runner::RunSummary;

/// Which signal, if any, asked the process to stop.
#[derive(Debug, Clone, Default)]
pub struct SignalState(Arc<AtomicI32>);

impl SignalState {
    /// The signal number received (2 = SIGINT, 15 = SIGTERM), if any.
    pub fn received(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Starts listening for SIGINT and SIGTERM; the receiver turns true on the first one.
pub fn watch_signals() -> (SignalState, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let state = SignalState::default();
    let seen = Arc::clone(&state.0);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!(
                message = "Cannot install signal handlers.",
                event = "signal_handlers_failed"
            );
            return;
        };
        let number = tokio::select! {
            _ = term.recv() => 15,
            _ = int.recv() => 2,
        };
        seen.store(number, Ordering::SeqCst);
        tracing::warn!(
            message = "Shutdown requested; finishing or releasing the tasks in flight.",
            event = "shutdown_signal_received",
            signal = number
        );
        let _ = tx.send(true);
    });
    (state, rx)
}

/// A name for this process's claims: `host:pid`.
pub fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    format!("{host}:{}", std::process::id())
}

/// The exit code of a finished run: 128 + signal after a signal, 3 when tasks failed, else 0.
pub fn exit_code(summary: &RunSummary, signal: Option<i32>) -> std::process::ExitCode {
    let code: u8 = match signal {
        Some(n) => {
            tracing::warn!(
                message = "Shutdown completed.",
                event = "shutdown_completed",
                signal = n,
                released = summary.released
            );
            u8::try_from(128 + n).unwrap_or(1)
        }
        None if summary.failed > 0 => 3,
        None => 0,
    };
    std::process::ExitCode::from(code)
}
