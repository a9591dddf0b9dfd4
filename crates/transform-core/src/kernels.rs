//! The aggregation kernels, over values pooled from one or more fields.
//!
//! Each kernel takes `parts`: one slice per value field, all NaN-free (evaluation drops rows with a
//! missing value first) and, for the row-wise functions, of equal length. Pooling the fields is
//! order-independent for every function but `most_recent_value`, so the kernels read the field slices
//! in place instead of copying them row-major as the reference does.
//!
//! Sums use eight independent accumulators: that lets the compiler vectorise them and keeps rounding
//! error within a few ulps of numpy's pairwise summation.

use crate::config::FitBasis;
use crate::polyfit;

const LANES: usize = 8;

fn lanes_sum(values: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    let mut total =
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for v in rest {
        total += v;
    }
    total
}

fn lanes_squared_deviation(values: &[f64], mean: f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            let d = v - mean;
            *a += d * d;
        }
    }
    let mut total =
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for v in rest {
        let d = v - mean;
        total += d * d;
    }
    total
}

fn lanes_fold(values: &[f64], init: f64, pick: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [init; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = pick(*a, v);
        }
    }
    let mut total = acc.into_iter().fold(init, &pick);
    for &v in rest {
        total = pick(total, v);
    }
    total
}

fn count(parts: &[&[f64]]) -> usize {
    parts.iter().map(|p| p.len()).sum()
}

/// The number of values as a float divisor.
#[allow(clippy::cast_precision_loss)] // Counts stay far below 2^53.
fn as_f64(n: usize) -> f64 {
    n as f64
}

/// Mean of all values; `None` when there are none.
pub fn mean(parts: &[&[f64]]) -> Option<f64> {
    let n = count(parts);
    if n == 0 {
        return None;
    }
    let sum: f64 = parts.iter().map(|p| lanes_sum(p)).sum();
    Some(sum / as_f64(n))
}

/// Standard deviation with `ddof` delta degrees of freedom (two passes, as numpy's `nanstd`);
/// `None` for one value or fewer, or when `ddof` leaves no degrees of freedom.
pub fn stddev(parts: &[&[f64]], ddof: u32) -> Option<f64> {
    let n = count(parts);
    if n <= 1 || n <= ddof as usize {
        return None;
    }
    let mean = mean(parts)?;
    let ss: f64 = parts.iter().map(|p| lanes_squared_deviation(p, mean)).sum();
    Some((ss / as_f64(n - ddof as usize)).sqrt())
}

/// Largest value; `None` when there are none.
pub fn max(parts: &[&[f64]]) -> Option<f64> {
    (count(parts) > 0).then(|| {
        parts
            .iter()
            .map(|p| lanes_fold(p, f64::NEG_INFINITY, |a, b| if b > a { b } else { a }))
            .fold(f64::NEG_INFINITY, f64::max)
    })
}

/// Smallest value; `None` when there are none.
pub fn min(parts: &[&[f64]]) -> Option<f64> {
    (count(parts) > 0).then(|| {
        parts
            .iter()
            .map(|p| lanes_fold(p, f64::INFINITY, |a, b| if b < a { b } else { a }))
            .fold(f64::INFINITY, f64::min)
    })
}

/// The first field's value in the last row; `None` when there are no rows.
pub fn most_recent_value(parts: &[&[f64]]) -> Option<f64> {
    parts.first()?.last().copied()
}

/// Which quantity `rms_from_polynomial_fit` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RmsFormula {
    /// The residual RMS `sqrt(mean((y − ŷ)²))`.
    Residual,
    /// The reference's n×n broadcast value `sqrt(Σ_i Σ_j (y_i − ŷ_j)² / n²)` (BEHAVIOUR.md §5.10).
    ReferenceBroadcast,
}

/// What `rms_from_polynomial_fit` returns when there are too few points to fit (`n ≤ degree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underdetermined {
    /// No value.
    None,
    /// NaN, as the reference returns (it reaches the database as NULL, and as a NULL unpivoted row).
    Nan,
}

/// RMS of a polynomial fit of degree `degree` to `y` over `x` (numpy `polyfit`/`polyval`).
///
/// `x` is the abscissa for [`FitBasis::Time`] (ns since the first sample); for [`FitBasis::Index`]
/// it is ignored and `0..n` is used.
pub fn rms_from_polynomial_fit(
    y: &[f64],
    x_time: &[f64],
    degree: u32,
    fit_basis: FitBasis,
    formula: RmsFormula,
    underdetermined: Underdetermined,
) -> Option<f64> {
    let n = y.len();
    if n == 0 {
        return None;
    }
    if n <= degree as usize {
        return match underdetermined {
            Underdetermined::None => None,
            Underdetermined::Nan => Some(f64::NAN),
        };
    }
    let index: Vec<f64>;
    let x = match fit_basis {
        FitBasis::Index => {
            index = (0..n).map(as_f64).collect();
            &index[..]
        }
        FitBasis::Time => x_time,
    };
    let coeffs = polyfit::polyfit(x, y, degree as usize)?;
    let fitted: Vec<f64> = x.iter().map(|&xi| polyfit::polyval(&coeffs, xi)).collect();
    let nf = as_f64(n);
    let value = match formula {
        RmsFormula::Residual => {
            let ss: f64 = y.iter().zip(&fitted).map(|(a, b)| (a - b) * (a - b)).sum();
            (ss / nf).sqrt()
        }
        RmsFormula::ReferenceBroadcast => {
            // Σ_i Σ_j (y_i − ŷ_j)² = n·Σ(y − ȳ)² + n·Σ(ŷ − ȳ)², since Σ(y − ȳ) = 0: O(n), not O(n²).
            let ybar = y.iter().sum::<f64>() / nf;
            let sy: f64 = y.iter().map(|v| (v - ybar) * (v - ybar)).sum();
            let sf: f64 = fitted.iter().map(|v| (v - ybar) * (v - ybar)).sum();
            ((sy + sf) / nf).sqrt()
        }
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: [f64; 5] = [1.0, 2.0, 3.0, 4.0, 5.0];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn reference_test_values() {
        // tests/transformed_efd/test_summary.py on [1, 2, 3, 4, 5].
        let parts: &[&[f64]] = &[&DATA];
        assert_eq!(mean(parts), Some(3.0));
        assert!(close(stddev(parts, 1).unwrap(), 1.581_138_830_084_189_8));
        assert_eq!(max(parts), Some(5.0));
        assert_eq!(min(parts), Some(1.0));
        assert_eq!(most_recent_value(parts), Some(5.0));
        let rms = |basis, formula| {
            let x: Vec<f64> = (0..5).map(|i| f64::from(i) * 30e9).collect();
            rms_from_polynomial_fit(&DATA, &x, 4, basis, formula, Underdetermined::None).unwrap()
        };
        assert!(close(
            rms(FitBasis::Index, RmsFormula::ReferenceBroadcast),
            2.0
        ));
        assert!(close(
            rms(FitBasis::Time, RmsFormula::ReferenceBroadcast),
            2.0
        ));
        assert!(rms(FitBasis::Index, RmsFormula::Residual) < 1e-9);
    }

    #[test]
    fn broadcast_and_residual_differ_as_documented() {
        // BEHAVIOUR.md §5.10: y = [1, 2, 4, 3, 7], degree 1 → 2.7604 (reference), 0.9274 (true).
        let y = [1.0, 2.0, 4.0, 3.0, 7.0];
        let r = |f| rms_from_polynomial_fit(&y, &[], 1, FitBasis::Index, f, Underdetermined::None);
        assert!((r(RmsFormula::ReferenceBroadcast).unwrap() - 2.7604).abs() < 1e-4);
        assert!((r(RmsFormula::Residual).unwrap() - 0.9274).abs() < 1e-4);
    }

    #[test]
    fn edge_cases() {
        let empty: &[&[f64]] = &[&[]];
        assert_eq!(mean(empty), None);
        assert_eq!(max(empty), None);
        assert_eq!(most_recent_value(empty), None);
        assert_eq!(stddev(&[&[1.0]], 1), None);
        assert_eq!(stddev(&[&[1.0, 2.0]], 2), None);
        assert_eq!(stddev(&[&[1.0, 3.0]], 0), Some(1.0));
        let under = |u| {
            rms_from_polynomial_fit(
                &[1.0, 2.0],
                &[],
                2,
                FitBasis::Index,
                RmsFormula::Residual,
                u,
            )
        };
        assert_eq!(under(Underdetermined::None), None);
        assert!(under(Underdetermined::Nan).unwrap().is_nan());
    }

    #[test]
    fn pooled_fields_and_long_inputs() {
        let a: Vec<f64> = (0..1003).map(f64::from).collect();
        let b: Vec<f64> = (0..17).map(|i| -f64::from(i)).collect();
        let parts: &[&[f64]] = &[&a, &b];
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let naive_mean = all.iter().sum::<f64>() / all.len() as f64;
        assert!(close(mean(parts).unwrap(), naive_mean));
        assert_eq!(max(parts), Some(1002.0));
        assert_eq!(min(parts), Some(-16.0));
        let var =
            all.iter().map(|v| (v - naive_mean).powi(2)).sum::<f64>() / (all.len() - 1) as f64;
        assert!(close(stddev(parts, 1).unwrap(), var.sqrt()));
    }
}
