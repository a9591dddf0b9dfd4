//! What a source has cost so far: statements run, HTTP requests sent, bytes received, retries, and
//! the time requests were in flight. Counters are shared by every clone of the source's handle and
//! read without locking, for the task summary and the end-to-end benchmark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters (see [`EfdStats`] for a copy).
#[derive(Debug, Default)]
pub struct StatsCounters {
    statements: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    in_flight_nanos: AtomicU64,
}

impl StatsCounters {
    /// One statement run (a SELECT or SHOW, whatever its number of attempts).
    pub(crate) fn statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    /// One HTTP request sent.
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Body bytes received.
    pub(crate) fn bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One retry after a transient failure.
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Time one request was in flight (sent to last byte).
    pub(crate) fn in_flight(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.in_flight_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> EfdStats {
        EfdStats {
            statements: self.statements.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            in_flight: Duration::from_nanos(self.in_flight_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// The counters of a source at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EfdStats {
    /// Statements run (SELECT and SHOW; a file source counts its selects).
    pub statements: u64,
    /// HTTP requests sent, retries included (0 for a file source).
    pub requests: u64,
    /// Response body bytes received (0 for a file source).
    pub bytes: u64,
    /// Retries after transient failures.
    pub retries: u64,
    /// Time requests were in flight, summed over concurrent requests.
    pub in_flight: Duration,
}

impl EfdStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &EfdStats) -> EfdStats {
        EfdStats {
            statements: self.statements.saturating_sub(earlier.statements),
            requests: self.requests.saturating_sub(earlier.requests),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            retries: self.retries.saturating_sub(earlier.retries),
            in_flight: self.in_flight.saturating_sub(earlier.in_flight),
        }
    }
}
