//! Inverted dropout's keep-mask, drawn from a counter-based hash instead of
//! a random-number stream.
//!
//! Whether unit `j` of example `r` is kept in layer `l` at training step `t`
//! is a pure function of `(seed, t, l, r, j)`:
//!
//! ```text
//! key  = splitmix64(splitmix64(splitmix64(seed) ^ t) ^ l)    once per layer and step
//! h    = fmix32(hi32(splitmix64(key ^ r)) ^ j·0x9E3779B9)     per element
//! keep = (h >> 8) >= round(rate · 2^24)                      probability 1 - rate
//! a    = keep ? f(z) / (1 - rate) : 0
//! ```
//!
//! So the mask needs no storage (the backward pass regenerates it), no
//! generator state to carry across threads, and it is the same whatever
//! the thread count, the shard an example lands in, or the GEMM tile that
//! computes the element: `r` is the row within the whole mini-batch.
//! (`splitmix64` is Steele, Lea and Flood's SplittableRandom finaliser,
//! `fmix32` MurmurHash3's; both are bijections, so no two units of a row
//! share a hash.)

use crate::simd::{LANES, V};

/// `splitmix64`: a 64-bit bijective mixer.
#[inline(always)]
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// MurmurHash3's 32-bit finaliser: a bijective mixer.
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// The dropout of one layer in one training step, for a view of its output
/// whose element `(0, 0)` is example `row0`, unit `col0` of the mini-batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    key: u64,
    row0: usize,
    col0: usize,
    /// An element is dropped when the top 24 bits of its hash are below this.
    threshold: u32,
    /// `1 / (1 - rate)`: what a kept unit is multiplied by.
    scale: f32,
    /// `1 - rate`.
    keep: f32,
}

impl DropoutMask {
    /// The mask of layer `layer` at training step `step` for a network
    /// trained with `seed`, dropping each unit with probability `rate`
    /// (`0 <= rate < 1`; rounded to a multiple of `2^-24`).
    ///
    /// # Panics
    /// If `rate` is outside `0..1` ([`crate::nn`]'s `Network::with_dropout`
    /// checks it before any mask is made).
    pub fn new(rate: f32, seed: u64, step: u64, layer: usize) -> DropoutMask {
        assert!((0.0..1.0).contains(&rate), "dropout rate {rate} outside 0..1");
        let threshold = ((rate as f64 * (1u64 << 24) as f64).round() as u32).min((1 << 24) - 1);
        let key = splitmix64(splitmix64(splitmix64(seed) ^ step) ^ layer as u64);
        DropoutMask {
            key,
            row0: 0,
            col0: 0,
            threshold,
            scale: 1.0 / (1.0 - rate),
            keep: 1.0 - rate,
        }
    }

    /// The same mask for the view that starts `rows` rows and `cols`
    /// columns further into this one (a shard of the batch, a GEMM tile).
    #[inline(always)]
    pub fn offset(self, rows: usize, cols: usize) -> DropoutMask {
        DropoutMask {
            row0: self.row0 + rows,
            col0: self.col0 + cols,
            ..self
        }
    }

    /// What a kept unit's output is multiplied by: `1 / (1 - rate)`.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The probability of dropping a unit, as the mask applies it (`rate`
    /// rounded to a multiple of `2^-24`).
    pub fn rate(&self) -> f64 {
        self.threshold as f64 / (1u64 << 24) as f64
    }

    /// Whether element `(i, j)` of the view is kept.
    #[inline(always)]
    pub fn keeps(&self, i: usize, j: usize) -> bool {
        let row = (splitmix64(self.key ^ (self.row0 + i) as u64) >> 32) as u32;
        let h = fmix32(row ^ ((self.col0 + j) as u32).wrapping_mul(0x9E37_79B9));
        (h >> 8) >= self.threshold
    }

    /// `scale` if element `(i, j)` is kept, else 0: what its output is multiplied by.
    #[inline(always)]
    pub fn factor(&self, i: usize, j: usize) -> f32 {
        if self.keeps(i, j) {
            self.scale
        } else {
            0.0
        }
    }

    /// The factors of elements `(i, j..j + LANES)`, one per lane.
    #[inline(always)]
    pub fn factors(&self, i: usize, j: usize) -> V {
        let row = (splitmix64(self.key ^ (self.row0 + i) as u64) >> 32) as u32;
        let mut f = [0.0f32; LANES];
        for (l, f) in f.iter_mut().enumerate() {
            let h = fmix32(row ^ ((self.col0 + j + l) as u32).wrapping_mul(0x9E37_79B9));
            *f = if (h >> 8) >= self.threshold {
                self.scale
            } else {
                0.0
            };
        }
        V::from(f)
    }

    /// What a stored output `a = f(z)·factor` is multiplied by to give back
    /// the `f(z)` that `act`'s derivative is computed from: `1 - rate` for
    /// sigmoid and tanh (within an ulp or two of `f(z)`), `1` for identity
    /// and ReLU, whose `f'` only needs the sign (exact).
    pub fn unscale_for(&self, act: crate::activation::Activation) -> f32 {
        use crate::activation::Activation;
        match act {
            Activation::Sigmoid | Activation::Tanh => self.keep,
            Activation::Identity | Activation::Relu => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_match_factor_and_offsets_compose() {
        let m = DropoutMask::new(0.3, 7, 11, 2);
        for i in 0..5 {
            let v = m.factors(i, 3).to_array();
            for (l, &f) in v.iter().enumerate() {
                assert_eq!(f, m.factor(i, 3 + l));
            }
        }
        assert_eq!(m.offset(2, 5).factor(1, 1), m.factor(3, 6));
        assert_eq!(DropoutMask::new(0.0, 1, 2, 3).factor(4, 5), 1.0);
    }
}
