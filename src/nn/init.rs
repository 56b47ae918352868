//! Weight initialisation.

use rand::Rng;

use crate::matrix::Matrix;

/// Glorot (Xavier) uniform, the Keras default for `Dense` kernels:
/// `w ~ U(-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))`.
///
/// Shape: `(fan_in, fan_out)`, filled row by row from `rng`.
pub fn glorot_uniform(fan_in: usize, fan_out: usize, rng: &mut impl Rng) -> Matrix {
    glorot_uniform_limit(fan_in, fan_out, fan_in + fan_out, rng)
}

/// A `(rows, cols)` matrix filled row by row from `rng` with
/// `U(-limit, limit)`, `limit = sqrt(6 / fans)`: Glorot uniform where the
/// fans are not the matrix's sides (a convolution's filters: `fans =
/// kh·kw·c_in + kh·kw·c_out`).
pub fn glorot_uniform_limit(rows: usize, cols: usize, fans: usize, rng: &mut impl Rng) -> Matrix {
    let limit = (6.0 / fans as f64).sqrt() as f32;
    let mut w = Matrix::zeros(rows, cols);
    for v in w.as_mut_slice() {
        *v = rng.random_range(-limit..limit);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn glorot_is_within_limit_and_seeded() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let w = glorot_uniform(784, 16, &mut rng);
        let limit = (6.0f32 / 800.0).sqrt();
        assert!(w.as_slice().iter().all(|v| v.abs() <= limit));
        let mean: f32 = w.as_slice().iter().sum::<f32>() / w.as_slice().len() as f32;
        assert!(mean.abs() < 0.01, "mean {mean}");
        let mut rng2 = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(w, glorot_uniform(784, 16, &mut rng2));
    }
}
