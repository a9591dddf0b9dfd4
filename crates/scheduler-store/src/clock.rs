//! Where "now" comes from: the [`Clock`] trait, the wall clock and a manual clock for tests.
//!
//! Every time comparison the store makes (due tasks, leases, staleness, replica back-off, the
//! `created_at` it writes) reads an injected clock and sends the instant to the database as a bind
//! parameter; no statement calls the server's `now()`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use transform_core::UtcNanos;

/// A source of the current UTC time.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> UtcNanos;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one wall-clock read of the crate (clippy.toml bans it elsewhere): everything else asks a
    // `Clock`, so tests can run on a `ManualClock`.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> UtcNanos {
        let now = std::time::SystemTime::now();
        match now.duration_since(UNIX_EPOCH) {
            Ok(after) => UtcNanos(duration_nanos(after)),
            Err(before) => UtcNanos(-duration_nanos(before.duration())),
        }
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: UtcNanos) -> ManualClock {
        ManualClock {
            nanos: AtomicI64::new(start.0),
        }
    }

    /// Moves the clock to `instant` (backwards too).
    pub fn set(&self, instant: UtcNanos) {
        self.nanos.store(instant.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(duration_nanos(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UtcNanos {
        UtcNanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// A duration in nanoseconds, saturating at `i64::MAX` (about 292 years).
pub(crate) fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(UtcNanos(1_000));
        assert_eq!(clock.now(), UtcNanos(1_000));
        clock.advance(Duration::from_micros(2));
        assert_eq!(clock.now(), UtcNanos(3_000));
        clock.set(UtcNanos(-5));
        assert_eq!(clock.now(), UtcNanos(-5));
    }

    #[test]
    fn system_clock_is_after_2024() {
        // 2024-01-01T00:00:00Z.
        assert!(SystemClock.now() > UtcNanos(1_704_067_200 * 1_000_000_000));
        assert_eq!(duration_nanos(Duration::MAX), i64::MAX);
    }
}
