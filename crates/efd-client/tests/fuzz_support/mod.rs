//! Shared by the efd-client fuzzing binaries (`faults_fuzz_*`): a counting global allocator that
//! measures the peak bytes allocated while one input is parsed, a small deterministic generator,
//! and byte-level mutation of near-valid documents.

#![allow(dead_code, unreachable_pub)] // Each fuzzing binary uses a different subset.

use std::sync::{Mutex, PoisonError};

use peak_alloc::PeakAlloc;
pub use test_support::Rng;

/// Counts every allocation of the test binary (`realloc` as a new block plus the old one, so a
/// growing vector is charged its copy).
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Inputs per fuzz target: `default` (10^6), or `FAULTS_FUZZ_CASES` for a quick local look.
pub fn cases(default: u32) -> u32 {
    std::env::var("FAULTS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measurement at a time: the counters are process-wide, and `cargo test` runs tests on threads.
static MEASURING: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result and the peak bytes allocated above what was live before it
/// (what `f` returns included, since it was live at the peak or after it).
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _one = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let out = f();
    let peak = ALLOC.peak_usage().saturating_sub(base);
    (out, peak)
}

/// An allocation bound `factor × input + constant`, and the closest any input came to it.
#[derive(Debug)]
pub struct AllocBound {
    /// Bytes allowed per input byte.
    pub factor: usize,
    /// Bytes allowed whatever the input.
    pub constant: usize,
    /// The largest share of its bound an input used, in per mille.
    pub worst_permille: usize,
    /// That input's length and peak.
    pub worst: (usize, usize),
}

impl AllocBound {
    /// A bound of `factor` bytes per input byte plus `constant`.
    pub fn new(factor: usize, constant: usize) -> AllocBound {
        AllocBound {
            factor,
            constant,
            worst_permille: 0,
            worst: (0, 0),
        }
    }

    /// The bound for an input of `len` bytes.
    pub fn limit(&self, len: usize) -> usize {
        self.factor * len + self.constant
    }

    /// Whether `peak` is within the bound for `len`; remembers the closest call.
    pub fn admits(&mut self, len: usize, peak: usize) -> bool {
        let permille = peak * 1000 / self.limit(len);
        if permille > self.worst_permille {
            self.worst_permille = permille;
            self.worst = (len, peak);
        }
        peak <= self.limit(len)
    }

    /// For the report: `peak allocation <= 24x input + 64 KiB (closest: ...)`.
    pub fn describe(&self) -> String {
        format!(
            "peak allocation <= {}x input + {} KiB (closest: {} B for a {} B input, {}.{}% of its bound)",
            self.factor,
            self.constant / 1024,
            self.worst.1,
            self.worst.0,
            self.worst_permille / 10,
            self.worst_permille % 10
        )
    }
}

/// Applies one to `max` byte-level mutations to `doc`: a byte changed, a token from `dictionary`
/// inserted or written over, a range deleted or duplicated, the end cut off.
pub fn mutate(rng: &mut Rng, doc: &mut Vec<u8>, dictionary: &[&[u8]], max: usize) {
    for _ in 0..=rng.below(max) {
        let len = doc.len();
        match rng.below(7) {
            0 => {
                if len > 0 {
                    let at = rng.below(len);
                    doc[at] = rng.byte();
                }
            }
            1 | 2 => {
                let token = rng.pick(dictionary);
                let at = rng.below(len + 1);
                doc.splice(at..at, token.iter().copied());
            }
            3 => {
                let token = rng.pick(dictionary);
                let at = rng.below(len + 1);
                let end = (at + token.len()).min(len);
                doc.splice(at..end, token.iter().copied());
            }
            4 => {
                let at = rng.below(len + 1);
                let end = (at + 1 + rng.below(16)).min(len);
                doc.drain(at..end);
            }
            5 => {
                let at = rng.below(len + 1);
                let end = (at + 1 + rng.below(64)).min(len);
                let copy: Vec<u8> = doc[at..end].to_vec();
                let to = rng.below(len + 1);
                doc.splice(to..to, copy);
            }
            _ => {
                let at = rng.below(len + 1);
                doc.truncate(at);
            }
        }
    }
}
