//! Capturing everything the code under test logs, to assert on it (secrets never appear, retries
//! are logged, ...).

use std::sync::{Arc, Mutex};

/// What was logged while the guard of [`capture_logs`] lived.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything logged so far, as text.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keeps a log capture alive; dropping it stops the capture.
#[derive(Debug)]
pub struct LogGuard {
    _default: tracing::subscriber::DefaultGuard,
    _idle: tracing::Dispatch,
}

/// Captures every event at every level on this thread while the returned guard lives.
///
/// The guard also holds a second, idle dispatcher. With a single registered dispatcher,
/// tracing-core computes a new callsite's interest from the registering thread's default only, so
/// a callsite first reached by a concurrent test (no subscriber) would be cached as "never" and
/// this thread would miss its events; with two, every live dispatcher is asked.
pub fn capture_logs() -> (CapturedLogs, LogGuard) {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let idle = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let default = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (
        logs,
        LogGuard {
            _default: default,
            _idle: idle,
        },
    )
}
