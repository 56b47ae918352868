//! Channels between vectors and memory: `F` vectors, one per channel, whose
//! lanes are `LANES` consecutive positions, to and from the `F·LANES`
//! floats of those positions stored channel-last (NHWC):
//!
//! ```text
//! store: out[l·F + c] = v[c][l]        load: v[c][l] = src[l·F + c]
//! ```
//!
//! A convolution over one input channel computes a row of outputs as one
//! vector per filter (its lanes: output columns) and must write them
//! interleaved, and its weight gradient reads `dz` the other way. One float
//! at a time that is `F·LANES` scalar moves per chunk (96 for LeNet-5's six
//! filters on AVX-512). With AVX-512 each output vector is instead made by
//! register permutes: `vpermt2ps` picks its lanes from a pair of inputs,
//! `ceil(F/2)` pairs, blended by constant masks (18 permutes for `F = 6`).
//! Other builds move the floats one by one. Both give the same floats.

use super::{LANES, V};

/// The most channels [`Interleave`] takes: 8 pairs of vectors.
pub const MAX_CHANNELS: usize = 16;

/// For output vector `k` and input pair `q`: the `vpermt2ps` index of each
/// lane (`0..16` from the pair's first vector, `16..32` from its second) and
/// the mask of the lanes that pair supplies. Built at compile time.
#[derive(Clone, Copy)]
struct Tables<const F: usize> {
    idx: [[[u32; 16]; 8]; F],
    mask: [[u16; 8]; F],
}

impl<const F: usize> Tables<F> {
    /// The tables for storing.
    const INTERLEAVE: Tables<F> = Tables::new(true);
    /// The tables for loading.
    const DEINTERLEAVE: Tables<F> = Tables::new(false);

    /// The tables for storing (`interleave`) or loading: output float
    /// `g = 16·k + lane` takes input vector `vector`, lane `from`.
    const fn new(interleave: bool) -> Tables<F> {
        assert!(F >= 1 && F <= MAX_CHANNELS, "Interleave: 1..=16 channels");
        let mut t = Tables {
            idx: [[[0u32; 16]; 8]; F],
            mask: [[0u16; 8]; F],
        };
        let mut k = 0;
        while k < F {
            let mut lane = 0;
            while lane < 16 {
                let g = 16 * k + lane;
                let (vector, from) = if interleave {
                    // float g = l·F + c of the output comes from v[c][l]
                    (g % F, g / F)
                } else {
                    // v[c][l] (g = 16·c + l) comes from float l·F + c of the input
                    let at = (g % 16) * F + g / 16;
                    (at / 16, at % 16)
                };
                t.idx[k][vector / 2][lane] = ((vector % 2) * 16 + from) as u32;
                t.mask[k][vector / 2] |= 1 << lane;
                lane += 1;
            }
            k += 1;
        }
        t
    }

    /// Output vector `k`: each pair's `vpermt2ps`, blended by its mask.
    #[cfg(target_feature = "avx512f")]
    #[inline(always)]
    fn permute(&self, v: &[V; F], k: usize) -> V {
        use core::arch::x86_64::{__m512, _mm512_mask_blend_ps};
        let mut out = V::ZERO;
        for q in 0..F.div_ceil(2) {
            let picked = super::permute2(v[2 * q], &self.idx[k][q], v[(2 * q + 1).min(F - 1)]);
            out = if q == 0 {
                picked
            } else {
                // SAFETY: V is f32x16 under AVX-512, the same 64 bytes as
                // __m512; the blend needs only AVX-512F, which this build has
                unsafe {
                    core::mem::transmute::<__m512, V>(_mm512_mask_blend_ps(
                        self.mask[k][q],
                        core::mem::transmute::<V, __m512>(out),
                        core::mem::transmute::<V, __m512>(picked),
                    ))
                }
            };
        }
        out
    }
}

/// `F` channel vectors to and from interleaved floats: [`Interleave::store`]
/// (`out[l·F + c] = v[c][l]`) and [`Interleave::load`] (`v[c][l] = src[l·F + c]`).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
pub struct Interleave<const F: usize> {
    /// The permutes of `store`.
    to_memory: &'static Tables<F>,
    /// The permutes of `load`.
    from_memory: &'static Tables<F>,
}

impl<const F: usize> Default for Interleave<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const F: usize> Interleave<F> {
    /// The tables for `F` channels (`1..=16`), made at compile time.
    pub fn new() -> Self {
        Interleave {
            to_memory: &Tables::INTERLEAVE,
            from_memory: &Tables::DEINTERLEAVE,
        }
    }

    /// `out[l·F + c] = v[c][l]` for `l < n` (`n <= LANES`); the rest of
    /// `out` is untouched. Shapes: `out: >= n·F`, `v: F vectors`.
    #[inline(always)]
    pub fn store(&self, out: &mut [f32], v: &[V; F], n: usize) {
        assert!(n <= LANES && out.len() >= n * F, "Interleave::store: sizes");
        #[cfg(target_feature = "avx512f")]
        {
            let total = n * F;
            for k in 0..total.div_ceil(LANES) {
                let w = self.to_memory.permute(v, k);
                let at = k * LANES;
                // SAFETY: at + min(LANES, total - at) <= total <= out.len() (asserted)
                unsafe {
                    if at + LANES <= total {
                        super::store(out.as_mut_ptr().add(at), w);
                    } else {
                        super::store_partial(out.as_mut_ptr().add(at), w, total - at);
                    }
                }
            }
        }
        #[cfg(not(target_feature = "avx512f"))]
        {
            for (c, v) in v.iter().enumerate() {
                for (l, &x) in v.to_array().iter().take(n).enumerate() {
                    out[l * F + c] = x;
                }
            }
        }
    }

    /// `v[c][l] = src[l·F + c]` for `l < n` (`n <= LANES`), 0 in lanes `l >= n`.
    /// Shapes: `src: >= n·F`.
    #[inline(always)]
    pub fn load(&self, src: &[f32], n: usize) -> [V; F] {
        assert!(n <= LANES && src.len() >= n * F, "Interleave::load: sizes");
        #[cfg(target_feature = "avx512f")]
        {
            let total = n * F;
            let rows: [V; F] = std::array::from_fn(|k| {
                let at = k * LANES;
                // SAFETY: only floats below total <= src.len() are read (asserted)
                unsafe {
                    if at + LANES <= total {
                        super::load(src.as_ptr().add(at))
                    } else if at < total {
                        super::load_partial(src.as_ptr().add(at), total - at)
                    } else {
                        V::ZERO
                    }
                }
            });
            std::array::from_fn(|c| self.from_memory.permute(&rows, c))
        }
        #[cfg(not(target_feature = "avx512f"))]
        {
            std::array::from_fn(|c| {
                let mut lanes = [0.0f32; LANES];
                for (l, x) in lanes.iter_mut().take(n).enumerate() {
                    *x = src[l * F + c];
                }
                V::from(lanes)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct values: channel `c`, lane `l` holds `100·c + l + 1`.
    fn vectors<const F: usize>() -> [V; F] {
        std::array::from_fn(|c| V::from(std::array::from_fn::<f32, LANES, _>(|l| (100 * c + l + 1) as f32)))
    }

    fn check<const F: usize>() {
        let v = vectors::<F>();
        for n in 0..=LANES {
            // store: every float in place, nothing past n·F touched
            let mut out = vec![-1.0f32; F * LANES + 3];
            Interleave::<F>::new().store(&mut out, &v, n);
            for (g, &x) in out.iter().enumerate() {
                let want = if g < n * F {
                    (100 * (g % F) + g / F + 1) as f32
                } else {
                    -1.0
                };
                assert_eq!(x, want, "store F={F} n={n}: float {g}");
            }
            // load: the inverse, zeros past n, nothing read past n·F
            let src: Vec<f32> = (0..n * F).map(|g| (100 * (g % F) + g / F + 1) as f32).collect();
            let back = Interleave::<F>::new().load(&src, n);
            for (c, w) in back.iter().enumerate() {
                for (l, &x) in w.to_array().iter().enumerate() {
                    let want = if l < n { (100 * c + l + 1) as f32 } else { 0.0 };
                    assert_eq!(x, want, "load F={F} n={n}: channel {c} lane {l}");
                }
            }
        }
    }

    #[test]
    fn store_and_load_move_every_float_to_its_place() {
        check::<1>();
        check::<2>();
        check::<3>();
        check::<5>();
        check::<6>();
        check::<7>();
        check::<8>();
        check::<12>();
        check::<16>();
    }
}
