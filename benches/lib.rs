//! Shared inputs for the criterion benchmarks in this directory (run them with `make bench`).
//!
//! The benches themselves are the `[[bench]]` targets beside this file; this library only makes their
//! synthetic data, deterministically, so every bench measures the same inputs run after run.

/// A deterministic pseudo-random sequence (SplitMix64), so the benches need no RNG crate.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A sequence from a seed.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next value, uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)] // 53 random bits fit exactly.
        let v = (z >> 11) as f64 / (1u64 << 53) as f64;
        v
    }
}

/// `n` samples of a noisy sine, as telemetry might look.
pub fn samples(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix::new(seed);
    (0..n)
        .map(|i| {
            #[allow(clippy::cast_precision_loss)] // i < 2^53.
            let t = i as f64 * 1e-3;
            20.0 + 5.0 * t.sin() + rng.next_f64()
        })
        .collect()
}
