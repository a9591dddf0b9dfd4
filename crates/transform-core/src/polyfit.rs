//! numpy-compatible least-squares polynomial fit (`numpy.polyfit`) and evaluation (`numpy.polyval`).
//!
//! The steps follow numpy 2.x exactly: a Vandermonde matrix built by cumulative products (highest
//! power first), each column scaled to unit Euclidean norm, an SVD least-squares solve that treats
//! singular values below `rcond · s_max` as zero with `rcond = n · ε`, then unscaling. numpy solves with
//! LAPACK `gelsd`, nalgebra with its own SVD; both are backward stable, and results agree to ~1e-14
//! relative on well-conditioned fits.

use nalgebra::{DMatrix, DVector};

/// Least-squares coefficients of the polynomial of degree `degree` through `(x, y)`, highest power
/// first; `None` if the lengths differ, there are no points, or the SVD fails to converge.
pub fn polyfit(x: &[f64], y: &[f64], degree: usize) -> Option<Vec<f64>> {
    let n = x.len();
    if n == 0 || y.len() != n {
        return None;
    }
    let order = degree + 1;
    // numpy.vander: column order - 1 is x^0, earlier columns are successive products by x.
    let mut lhs = DMatrix::<f64>::zeros(n, order);
    for (i, &xi) in x.iter().enumerate() {
        let mut p = 1.0;
        lhs[(i, order - 1)] = 1.0;
        for j in (0..order - 1).rev() {
            p *= xi;
            lhs[(i, j)] = p;
        }
    }
    let mut scale = vec![0.0; order];
    for (j, s) in scale.iter_mut().enumerate() {
        *s = lhs.column(j).iter().map(|v| v * v).sum::<f64>().sqrt();
        if *s == 0.0 {
            // numpy divides by zero here and propagates NaN; a zero column carries no information.
            *s = 1.0;
        }
        lhs.column_mut(j).unscale_mut(*s);
    }
    let mut rhs = DVector::from_column_slice(y);
    #[allow(clippy::cast_precision_loss)] // n is a sample count, far below 2^53.
    let rcond = n as f64 * f64::EPSILON;
    // For a tall matrix, reduce to the order × order triangle first: A = QR has the singular values
    // and right singular vectors of R, and min ‖Ax − y‖ = min ‖Rx − (Qᵀy)[..order]‖, so the SVD solve
    // below is the same least-squares problem at O(n·order²) instead of a full-height SVD.
    let (square, rhs) = if n > order {
        let qr = lhs.qr();
        qr.q_tr_mul(&mut rhs);
        (qr.r(), rhs.rows(0, order).into_owned())
    } else {
        (lhs, rhs)
    };
    let svd = square.try_svd(true, true, f64::EPSILON, 0)?;
    let s_max = svd.singular_values.max();
    let c = svd.solve(&rhs, rcond * s_max).ok()?;
    Some(c.iter().zip(&scale).map(|(c, s)| c / s).collect())
}

/// Evaluates a polynomial (highest power first) at `x` by Horner's rule, as `numpy.polyval`.
pub fn polyval(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().fold(0.0, |acc, &c| acc * x + c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_polynomial() {
        let x: Vec<f64> = (0..20).map(|i| f64::from(i) * 0.5).collect();
        let y: Vec<f64> = x.iter().map(|&v| 2.0 * v * v - 3.0 * v + 0.5).collect();
        let c = polyfit(&x, &y, 2).unwrap();
        for (got, want) in c.iter().zip([2.0, -3.0, 0.5]) {
            assert!((got - want).abs() < 1e-10, "{c:?}");
        }
        assert!((polyval(&c, 3.0) - 9.5).abs() < 1e-9);
    }

    #[test]
    fn matches_numpy_on_a_noisy_line() {
        // numpy.polyfit([0, 1, 2, 3, 4], [1, 2, 4, 3, 7], 1) = [1.3, 0.8]
        let c = polyfit(&[0.0, 1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 4.0, 3.0, 7.0], 1).unwrap();
        assert!(
            (c[0] - 1.3).abs() < 1e-14 && (c[1] - 0.8).abs() < 1e-14,
            "{c:?}"
        );
    }

    #[test]
    fn handles_large_time_abscissae() {
        // Nanosecond abscissae over ten minutes, degree 2: column scaling keeps this well posed.
        let x: Vec<f64> = (0..600).map(|i| f64::from(i) * 1e9).collect();
        let y: Vec<f64> = x.iter().map(|&v| 1e-20 * v * v + 1e-9 * v + 4.0).collect();
        let c = polyfit(&x, &y, 2).unwrap();
        let fit = polyval(&c, 3e11);
        assert!((fit - (1e-20 * 9e22 + 300.0 + 4.0)).abs() < 1e-8, "{c:?}");
    }
}
