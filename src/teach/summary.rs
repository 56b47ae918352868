//! A summary of a buffer too large to print in full (the 784 inputs, the
//! 12,544 weights of W1): how many numbers, how many are not zero, and their
//! smallest, largest and mean value. `simdnet explain` prints it.

/// Count, nonzero count, min, max and mean of a buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// How many numbers.
    pub count: usize,
    /// How many of them are not 0 (a black pixel's weights get no gradient).
    pub nonzero: usize,
    /// The smallest (`+∞` for an empty buffer).
    pub min: f64,
    /// The largest (`-∞` for an empty buffer).
    pub max: f64,
    /// The mean (0 for an empty buffer).
    pub mean: f64,
}

impl Summary {
    /// The summary of `v`.
    pub fn of(v: &[f64]) -> Summary {
        let mut s = Summary {
            count: v.len(),
            nonzero: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
        };
        let mut sum = 0.0;
        for &x in v {
            s.nonzero += (x != 0.0) as usize;
            s.min = s.min.min(x);
            s.max = s.max.max(x);
            sum += x;
        }
        s.mean = sum / v.len().max(1) as f64;
        s
    }
}
