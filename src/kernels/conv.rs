//! The element-wise work around a convolution's GEMMs, and the dropout of
//! the layers whose output is not made by a GEMM epilogue.
//!
//! - [`apply_dropout`]: `a = a ⊙ m` on a layer's `(rows, outputs)` output
//!   (max-pool, flatten, and a convolution, whose GEMM writes the
//!   `(rows·positions, filters)` view where the mask's keys would not be
//!   the `(row, column)` of the layer's output);
//! - [`channel_dropout_backward`]: a convolution's `dz = da ⊙ m ⊙ f'(a)` with
//!   the bias gradient summed per channel (`db[co] = Σ_rows Σ_positions dz`);
//! - [`flip_filters`]: the filters of the input gradient's "full" convolution,
//!   `W_flipped[(ky, kx, co), ci] = W[(kh-1-ky, kw-1-kx, ci), co]`.

use crate::activation::Activation;
use crate::geometry::Conv2dGeometry;
use crate::kernels::DropoutMask;
use crate::matrix::{MatMut, MatRef};
use crate::simd::interleave::Interleave;
use crate::simd::{spill, LANES, SUM_VECTORS, V};

/// In place: `a_ij <- a_ij · m_ij` (`mask.factor(i, j)`: `1/(1-rate)` or 0).
/// Shape: `a: (rows, outputs)`, the mask keyed by its row and column.
pub fn apply_dropout(mut a: MatMut, mask: &DropoutMask) {
    for i in 0..a.rows() {
        let row = a.row_mut(i);
        let mut chunks = row.chunks_exact_mut(LANES);
        let mut j = 0;
        for chunk in &mut chunks {
            let v = V::from(<[f32; LANES]>::try_from(&*chunk).expect("LANES floats")) * mask.factors(i, j);
            chunk.copy_from_slice(&v.to_array());
            j += LANES;
        }
        for (l, x) in chunks.into_remainder().iter_mut().enumerate() {
            *x *= mask.factor(i, j + l);
        }
    }
}

/// A convolution's backward step before its GEMMs, with dropout on its
/// output: `dz_ij = da_ij · m_ij · f'(a_ij · u)` on the `(rows, outputs)`
/// view (`u = mask.unscale_for(act)`, see
/// [`super::activation_dropout_backward`]), and
/// `db[co] = Σ_i Σ_positions dz` (overwritten) with `co = j mod channels`,
/// summed in the order of the `(rows·positions, channels)` view's rows, as
/// [`super::activation_backward`] on that view would.
///
/// Shapes: `dz, da, a: (rows, positions·channels)`, `db: (channels)`.
pub fn channel_dropout_backward(
    mut dz: MatMut,
    da: MatRef,
    a: MatRef,
    act: Activation,
    mask: &DropoutMask,
    db: &mut [f32],
) {
    let channels = db.len();
    assert!(
        channels > 0 && dz.cols().is_multiple_of(channels),
        "channel_dropout_backward: {} outputs are not a whole number of {channels} channels",
        dz.cols()
    );
    assert_eq!(
        (da.rows(), da.cols()),
        (dz.rows(), dz.cols()),
        "channel_dropout_backward: da"
    );
    assert_eq!(
        (a.rows(), a.cols()),
        (dz.rows(), dz.cols()),
        "channel_dropout_backward: a"
    );
    let unscale = mask.unscale_for(act);
    db.fill(0.0);
    for i in 0..dz.rows() {
        let row = dz.row_mut(i);
        for (j, d) in row.iter_mut().enumerate() {
            *d = da.at(i, j) * mask.factor(i, j) * act.df_from_output(a.at(i, j) * unscale);
            db[j % channels] += *d;
        }
    }
}

/// `w_flipped[((ky·kw + kx)·c_out + co)·c_in + ci] = w[((kh-1-ky)·kw + (kw-1-kx))·c_in + ci)·c_out + co]`:
/// the filters turned by 180° with the channel axes swapped, a
/// `(kh·kw·c_out, c_in)` matrix (the input gradient's B operand).
pub fn flip_filters(
    w_flipped: &mut [f32],
    w: &[f32],
    (kh, kw): (usize, usize),
    (c_in, c_out): (usize, usize),
) {
    let len = kh * kw * c_in * c_out;
    assert!(w.len() == len && w_flipped.len() == len, "flip_filters: sizes");
    for ky in 0..kh {
        for kx in 0..kw {
            let src = &w[((kh - 1 - ky) * kw + (kw - 1 - kx)) * c_in * c_out..][..c_in * c_out];
            let dst = &mut w_flipped[(ky * kw + kx) * c_out * c_in..][..c_out * c_in];
            for ci in 0..c_in {
                for co in 0..c_out {
                    dst[co * c_in + ci] = src[ci * c_out + co];
                }
            }
        }
    }
}

/// The shapes of a convolution over single-channel images (`c_in = 1`, the
/// grey first layer of an MNIST network), for [`single_channel_forward`]
/// and [`single_channel_weight_gradient`].
///
/// Such a layer is a poor GEMM: its depth `kh·kw` (9, 25) is too short to
/// repay packing and its `c_out` (6, 32) fills few lanes of a tile. These
/// kernels slide the filter along each output row instead, `LANES` output
/// columns at a time, over a zero-padded `f32` copy of the image on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SingleChannel(Conv2dGeometry);

impl SingleChannel {
    /// The kernels' view of a convolution `g` (batch 1) reading one channel,
    /// if these kernels take its shape (`None` otherwise: more channels, or
    /// too large for their stack buffers, see [`SingleChannel::fits`]).
    pub fn new(g: &Conv2dGeometry) -> Option<SingleChannel> {
        let shape = SingleChannel(*g);
        (g.input().channels() == 1 && shape.fits()).then_some(shape)
    }
    /// Image rows.
    fn height(&self) -> usize {
        self.0.input().height()
    }
    /// Image columns.
    fn width(&self) -> usize {
        self.0.input().width()
    }
    /// Filter rows.
    fn kernel_h(&self) -> usize {
        self.0.kernel_h()
    }
    /// Filter columns.
    fn kernel_w(&self) -> usize {
        self.0.kernel_w()
    }
    /// Rows of zeros above the image.
    fn pad_top(&self) -> usize {
        self.0.pad_top()
    }
    /// Columns of zeros left of the image.
    fn pad_left(&self) -> usize {
        self.0.pad_left()
    }
    /// Output rows.
    fn out_h(&self) -> usize {
        self.0.output().height()
    }
    /// Output columns.
    fn out_w(&self) -> usize {
        self.0.output().width()
    }
    /// Output channels `c_out`.
    fn filters(&self) -> usize {
        self.0.filters()
    }
}

/// The largest padded image the single-channel kernels take (floats).
const SINGLE_MAX_PADDED: usize = 4096;
/// The most filters the single-channel kernels take: with more, a GEMM's
/// tile is full (Keras' 32-filter first layer ran 0.8 ms per 64 images as a
/// GEMM, 2.2 ms here, its output stores interleaved one float at a time).
const SINGLE_MAX_FILTERS: usize = 16;
/// Filters the single-channel forward kernel computes at once (accumulators in registers).
const GROUP: usize = 8;
/// The most weights (`kh·kw·c_out`) the single-channel weight gradient accumulates.
pub const SINGLE_MAX_WEIGHTS: usize = 320;

impl SingleChannel {
    /// Distance between rows of the padded image: every vector read stays inside.
    fn stride(&self) -> usize {
        self.out_w() + self.kernel_w() - 1 + LANES
    }

    /// Rows of the padded image.
    fn padded_h(&self) -> usize {
        self.out_h() + self.kernel_h() - 1
    }

    /// Whether the kernels take this shape (small enough for their stack buffers).
    pub fn fits(&self) -> bool {
        self.stride() * self.padded_h() <= SINGLE_MAX_PADDED
            && self.filters() <= SINGLE_MAX_FILTERS
            && self.kernel_h() * self.kernel_w() * self.filters() <= SINGLE_MAX_WEIGHTS
    }

    /// `p = x_scale · x` with its padding of zeros, row stride [`Self::stride`].
    fn pad<T: crate::matrix::Element>(&self, p: &mut [f32; SINGLE_MAX_PADDED], x: &[T], x_scale: f32) {
        assert!(self.fits(), "single-channel convolution: shape too large");
        assert_eq!(
            x.len(),
            self.height() * self.width(),
            "single-channel convolution: x"
        );
        let (stride, rows) = (self.stride(), self.padded_h());
        p[..stride * rows].fill(0.0);
        let cols = self.out_w() + self.kernel_w() - 1;
        for iy in 0..self.height() {
            let py = iy + self.pad_top();
            if py >= rows {
                break;
            }
            let n = self.width().min(cols.saturating_sub(self.pad_left()));
            let dst = &mut p[py * stride + self.pad_left()..][..n];
            for (d, &s) in dst.iter_mut().zip(&x[iy * self.width()..][..n]) {
                *d = x_scale * s.to_f32();
            }
        }
    }
}

/// One image's forward pass of a single-channel convolution:
/// `z[(oy·out_w + ox)·c_out + co] = act(b[co] + Σ_ky Σ_kx x_scale·x[oy+ky-pad_top, ox+kx-pad_left] · W[ky,kx,co])`.
///
/// Shapes: `z: out_h·out_w·c_out`, `x: height·width`, `w: (kh·kw, c_out)`, `b: (c_out)`.
pub fn single_channel_forward<T: crate::matrix::Element>(
    z: &mut [f32],
    x: &[T],
    x_scale: f32,
    (w, b, act): (&[f32], &[f32], Activation),
    g: &SingleChannel,
) {
    let f = g.filters();
    assert_eq!(z.len(), g.out_h() * g.out_w() * f, "single_channel_forward: z");
    assert!(
        w.len() == g.kernel_h() * g.kernel_w() * f && b.len() == f,
        "single_channel_forward: w, b"
    );
    let mut p = [0.0f32; SINGLE_MAX_PADDED];
    g.pad(&mut p, x, x_scale);
    if f == 6 {
        // LeNet-5's first layer: one group of 6, no lanes of zero filters
        forward_groups::<6>(z, &p, (w, b, act), g);
    } else {
        forward_groups::<GROUP>(z, &p, (w, b, act), g);
    }
}

/// [`single_channel_forward`] on the padded image `p`, the filters in groups
/// of `G` (each filter's sum is the same whatever `G`: bias, then the taps
/// in order). LeNet-5 (6 filters) with `G = 6` does no FMA on zero filters
/// (`G = 8` did 8 per tap).
fn forward_groups<const G: usize>(
    z: &mut [f32],
    p: &[f32; SINGLE_MAX_PADDED],
    (w, b, act): (&[f32], &[f32], Activation),
    g: &SingleChannel,
) {
    let f = g.filters();
    let (stride, taps) = (g.stride(), g.kernel_h() * g.kernel_w());
    // Filters in groups of G, so that the accumulators stay in registers;
    // a last partial group computes zero filters it does not store.
    let mut wg = [0.0f32; SINGLE_MAX_WEIGHTS * GROUP];
    let interleave = Interleave::<G>::new();
    for co0 in (0..f).step_by(G) {
        let count = G.min(f - co0);
        for t in 0..taps {
            for c in 0..G {
                wg[t * G + c] = if c < count { w[t * f + co0 + c] } else { 0.0 };
            }
        }
        let mut bias = [0.0f32; G];
        bias[..count].copy_from_slice(&b[co0..co0 + count]);
        // up to 3 rows, as many as the registers hold R·G sums and two more
        // vectors (the weights, once broadcast, take registers left over or
        // are read from memory: AVX2's 16 registers take 2 rows of 6 filters)
        let fits = |rows: usize| rows * G + 2 <= crate::simd::VECTOR_REGISTERS;
        let mut oy = 0;
        while oy < g.out_h() {
            let left = g.out_h() - oy;
            let rows = if fits(3) && left >= 3 {
                3
            } else if fits(2) && left >= 2 {
                2
            } else {
                1
            };
            for ox0 in (0..g.out_w()).step_by(LANES) {
                let at = oy * stride + ox0;
                let none = [V::ZERO; G];
                // each row count's sums copied out as soon as they are made
                // (`simd::spill`), so that they stay in registers through
                // their loop: below, a run-time row count reads them
                let sums = match rows {
                    3 => spill(window_sums::<G, 3>(p, &wg, at, g, &bias)),
                    2 => {
                        let [a, b] = spill(window_sums::<G, 2>(p, &wg, at, g, &bias));
                        [a, b, none]
                    }
                    _ => {
                        let [a] = spill(window_sums::<G, 1>(p, &wg, at, g, &bias));
                        [a, none, none]
                    }
                };
                let n = LANES.min(g.out_w() - ox0);
                for (r, acc) in sums.iter().take(rows).enumerate() {
                    let out = &mut z[((oy + r) * g.out_w() + ox0) * f..][..n * f];
                    if f == G {
                        // one group holds every filter: the positions' outputs are
                        // n·f consecutive floats, interleaved in registers
                        let mut a = [V::ZERO; G];
                        for c in 0..G {
                            a[c] = crate::simd::activate(act, acc[c]);
                        }
                        interleave.store(out, &a, n);
                        continue;
                    }
                    for (c, a) in acc.iter().take(count).enumerate() {
                        let v = crate::simd::activate(act, *a).to_array();
                        for (l, &value) in v.iter().take(n).enumerate() {
                            out[l * f + co0 + c] = value;
                        }
                    }
                }
            }
            oy += rows;
        }
    }
}

/// The `G` filters' sums (bias first, then the taps row by row) for `LANES`
/// output columns of `R` consecutive output rows, the first window's corner
/// at `p[at]`. Each row's sums are those of a one-row call: more rows only
/// give the multiply-adds independent chains to hide their latency and
/// share each broadcast weight (LeNet-5's first layer, one 64-image shard,
/// Zen 5, AVX-512: 1 row 0.157 ms, 2 rows 0.13-0.14, 3 rows 0.12).
/// (No `array::from_fn` here or in the caller: a closure holding `&acc`
/// kept every accumulator in memory, stored after every multiply-add. For
/// the same reason the rows start as one array repeated, the weights are
/// read without a bounds check, and the caller copies the result out with
/// [`spill`]: built with fat LTO, a loop over the rows to set the bias, a
/// check that could panic inside the loop, or the sums read by a run-time
/// row count each left some of them in memory, and LeNet-5 trained 1.33x
/// slower than the default build; Zen 5, AVX-512, 16 lanes.)
#[inline(always)]
fn window_sums<const G: usize, const R: usize>(
    p: &[f32; SINGLE_MAX_PADDED],
    wg: &[f32; SINGLE_MAX_WEIGHTS * GROUP],
    at: usize,
    g: &SingleChannel,
    bias: &[f32; G],
) -> [[V; G]; R] {
    let (stride, kh, kw) = (g.stride(), g.kernel_h(), g.kernel_w());
    assert!(
        at + (R - 1 + kh - 1) * stride + kw - 1 + LANES <= p.len() && kh * kw * G <= wg.len(),
        "window_sums: the windows leave the padded image"
    );
    let mut b = [V::ZERO; G];
    for c in 0..G {
        b[c] = V::splat(bias[c]);
    }
    let mut acc = [b; R];
    for ky in 0..kh {
        for kx in 0..kw {
            // SAFETY: (ky·kw + kx + 1)·G <= kh·kw·G <= wg.len() (asserted
            // above); no bounds check, so nothing in the loop can unwind
            // and the sums need not be in memory at any step
            let wt = unsafe { &*wg.as_ptr().add((ky * kw + kx) * G).cast::<[f32; G]>() };
            // each weight broadcast once, for every row
            let mut wv = [V::ZERO; G];
            for c in 0..G {
                wv[c] = V::splat(wt[c]);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: at + (r + ky)·stride + kx + LANES <= p.len() (asserted above)
                let v = unsafe { crate::simd::load(p.as_ptr().add(at + (r + ky) * stride + kx)) };
                for c in 0..G {
                    acc[c] = crate::simd::mul_add(v, wv[c], acc[c]);
                }
            }
        }
    }
    acc
}

/// Vectors of `dz` (one per filter and `LANES` positions) that
/// [`weight_gradient_in_registers`] keeps on the stack: 32 KiB, 512 vectors
/// with AVX-512, 1024 with 8 lanes (it was 512 for every build, which left
/// LeNet-5's 28x28x6 layer, 672 vectors of 8 lanes, to the loop with its
/// sums in memory: its weight gradient 0.58 ms a 64-image shard).
const MAX_DZ_VECTORS: usize = 32 * 1024 / core::mem::size_of::<V>();
/// Taps per group of sums kept in registers: `TAP_GROUP·F` accumulators
/// (24 for `F = 6`), `F` vectors of `dz`, one of `x`: 31 of AVX-512's 32
/// registers; one tap (13 registers) with AVX2's 16. (LeNet-5's first
/// layer, one 64-image shard, Zen 5, AVX-512: 3 taps 0.135-0.146 ms, 4 taps
/// 0.127-0.137, 5 taps 0.158-0.173.)
const TAP_GROUP: usize = if LANES >= 16 { 4 } else { 1 };

/// [`single_channel_weight_gradient`] for `F` filters with the sums of
/// [`TAP_GROUP`] taps in registers: `dz` is turned into one vector per
/// filter and `LANES` positions once, then each group of taps runs over
/// every position, its sums loaded from `acc` before and stored after
/// (with 8 lanes, once per vector of [`SUM_VECTORS`]: the even chunks of
/// each row, then the odd ones).
/// Every lane's sum takes the same products in the same order (positions
/// row by row, `LANES` at a time, images in the caller's order) as the
/// loop with the sums in memory: the same bits.
/// (LeNet-5's first layer, 1 thread, one 64-image shard: 0.45 -> 0.21 ms;
/// `dz` turned by register permutes ([`Interleave::load`]) instead of one float
/// at a time: 0.178 -> 0.134 ms.)
fn weight_gradient_in_registers<const F: usize>(
    acc: &mut [V],
    p: &[f32; SINGLE_MAX_PADDED],
    dz: &[f32],
    g: &SingleChannel,
) {
    let (stride, chunks, taps) = (g.stride(), g.out_w().div_ceil(LANES), g.kernel_h() * g.kernel_w());
    let mut d = [V::ZERO; MAX_DZ_VECTORS];
    let deinterleave = Interleave::<F>::new();
    for oy in 0..g.out_h() {
        for c in 0..chunks {
            let ox0 = c * LANES;
            let n = LANES.min(g.out_w() - ox0);
            let block = &dz[(oy * g.out_w() + ox0) * F..][..n * F];
            let planes = deinterleave.load(block, n);
            d[(oy * chunks + c) * F..][..F].copy_from_slice(&planes);
        }
    }
    let d = &d[..g.out_h() * chunks * F];
    let full = taps / TAP_GROUP * TAP_GROUP;
    for half in 0..SUM_VECTORS.min(chunks) {
        for t0 in (0..full).step_by(TAP_GROUP) {
            tap_group::<F, TAP_GROUP>(acc, p, d, g, (t0, half), stride, chunks);
        }
        for t0 in full..taps {
            tap_group::<F, 1>(acc, p, d, g, (t0, half), stride, chunks);
        }
    }
}

/// The sums of taps `t0..t0 + G` (all `F` filters) over every position of
/// the chunks `half, half + SUM_VECTORS, ..` of each row, in registers.
#[inline(always)]
fn tap_group<const F: usize, const G: usize>(
    acc: &mut [V],
    p: &[f32; SINGLE_MAX_PADDED],
    d: &[V],
    g: &SingleChannel,
    (t0, half): (usize, usize),
    stride: usize,
    chunks: usize,
) {
    let offset: [usize; G] = std::array::from_fn(|i| {
        let t = t0 + i;
        (t / g.kernel_w()) * stride + t % g.kernel_w()
    });
    let at_sum = |i: usize, co: usize| ((t0 + i) * F + co) * SUM_VECTORS + half;
    let mut sums: [[V; F]; G] = std::array::from_fn(|i| std::array::from_fn(|co| acc[at_sum(i, co)]));
    // every read below stays inside `p` and `d` (checked once here, so that
    // the loop has no bounds checks: they were a third of its instructions)
    let last = (g.out_h() - 1) * stride + (chunks - 1) * LANES;
    assert!(
        offset.iter().all(|&off| last + off + LANES <= p.len()) && g.out_h() * chunks * F <= d.len(),
        "tap_group: reads outside the padded image or dz"
    );
    for oy in 0..g.out_h() {
        for c in (half..chunks).step_by(SUM_VECTORS) {
            // SAFETY: (oy·chunks + c + 1)·F <= out_h·chunks·F <= d.len() (asserted)
            let dv: &[V; F] = unsafe { &*d.as_ptr().add((oy * chunks + c) * F).cast::<[V; F]>() };
            let at = oy * stride + c * LANES;
            for (sums, &off) in sums.iter_mut().zip(&offset) {
                // SAFETY: at + off + LANES <= last + off + LANES <= p.len() (asserted)
                let v = unsafe { crate::simd::load(p.as_ptr().add(at + off)) };
                for (s, &dv) in sums.iter_mut().zip(dv) {
                    *s = crate::simd::mul_add(v, dv, *s);
                }
            }
        }
    }
    for (i, sums) in sums.iter().enumerate() {
        for (co, &s) in sums.iter().enumerate() {
            acc[at_sum(i, co)] = s;
        }
    }
}

/// Adds one image's share of a single-channel convolution's weight gradient
/// to `acc` ([`SUM_LANES`](crate::simd::SUM_LANES) partial sums per weight,
/// position `ox` of a row in sum `ox mod 16`; [`single_channel_sums`] turns
/// them into `dW`):
/// `dW[ky,kx,co] += Σ_oy Σ_ox x_scale·x[oy+ky-pad_top, ox+kx-pad_left] · dz[(oy·out_w + ox)·c_out + co]`.
///
/// Shapes: `acc: kh·kw·c_out·SUM_VECTORS` vectors (weight `k`'s sums at
/// `k·SUM_VECTORS..`), `x: height·width`, `dz: out_h·out_w·c_out`.
pub fn single_channel_weight_gradient<T: crate::matrix::Element>(
    acc: &mut [V],
    x: &[T],
    x_scale: f32,
    dz: &[f32],
    g: &SingleChannel,
) {
    let f = g.filters();
    assert_eq!(
        dz.len(),
        g.out_h() * g.out_w() * f,
        "single_channel_weight_gradient: dz"
    );
    assert_eq!(
        acc.len(),
        g.kernel_h() * g.kernel_w() * f * SUM_VECTORS,
        "single_channel_weight_gradient: acc"
    );
    let mut p = [0.0f32; SINGLE_MAX_PADDED];
    g.pad(&mut p, x, x_scale);
    let stride = g.stride();
    if f == 6 && g.out_h() * g.out_w().div_ceil(LANES) * 6 <= MAX_DZ_VECTORS {
        // LeNet-5's first layer: the sums in registers (see `weight_gradient_in_registers`)
        return weight_gradient_in_registers::<6>(acc, &p, dz, g);
    }
    for oy in 0..g.out_h() {
        for (c, ox0) in (0..g.out_w()).step_by(LANES).enumerate() {
            #[allow(clippy::modulo_one)] // SUM_VECTORS is 1 with AVX-512
            let half = c % SUM_VECTORS;
            // dz of these LANES positions, one vector per filter (0 past the row's end)
            let n = LANES.min(g.out_w() - ox0);
            let block = &dz[(oy * g.out_w() + ox0) * f..][..n * f];
            let mut d = [V::ZERO; SINGLE_MAX_FILTERS];
            for (co, d) in d.iter_mut().take(f).enumerate() {
                let mut lanes = [0.0f32; LANES];
                for (l, v) in lanes.iter_mut().take(n).enumerate() {
                    *v = block[l * f + co];
                }
                *d = V::from(lanes);
            }
            for ky in 0..g.kernel_h() {
                let row = &p[(oy + ky) * stride + ox0..];
                for kx in 0..g.kernel_w() {
                    let v = V::from(<[f32; LANES]>::try_from(&row[kx..kx + LANES]).expect("LANES floats"));
                    let sums = &mut acc[(ky * g.kernel_w() + kx) * f * SUM_VECTORS..][..f * SUM_VECTORS];
                    for (s, dv) in sums.iter_mut().skip(half).step_by(SUM_VECTORS).zip(&d) {
                        *s = crate::simd::mul_add(v, *dv, *s);
                    }
                }
            }
        }
    }
}

/// `dw[k]` = the sum of weight `k`'s [`SUM_LANES`](crate::simd::SUM_LANES)
/// partial sums, in order (the lanes of `acc[k·SUM_VECTORS]`, then of the
/// next vector): the weight gradient from [`single_channel_weight_gradient`]'s sums.
pub fn single_channel_sums(dw: &mut [f32], acc: &[V]) {
    assert_eq!(dw.len() * SUM_VECTORS, acc.len(), "single_channel_sums: sizes");
    for (d, a) in dw.iter_mut().zip(acc.chunks_exact(SUM_VECTORS)) {
        *d = a.iter().flat_map(|v| v.to_array()).sum();
    }
}

/// A convolution's `dz = da ⊙ f'(a)` and `db[co] = Σ_rows Σ_positions dz`
/// (overwritten) for fewer channels than a vector has lanes: `dz` a whole
/// vector at a time along each `(rows, outputs)` row, then `db` summed in
/// the order of the `(rows·positions, channels)` view's rows, as
/// [`super::activation_backward`] on that view would (whose narrow rows
/// would take its scalar path). Same bits.
///
/// Shapes: `dz, da, a: (rows, positions·channels)`, `db: (channels)`.
pub fn channel_activation_backward(mut dz: MatMut, da: MatRef, a: MatRef, act: Activation, db: &mut [f32]) {
    let channels = db.len();
    assert!(
        channels > 0 && dz.cols().is_multiple_of(channels),
        "channel_activation_backward: {} outputs are not a whole number of {channels} channels",
        dz.cols()
    );
    assert_eq!(
        (da.rows(), da.cols()),
        (dz.rows(), dz.cols()),
        "channel_activation_backward: da"
    );
    assert_eq!(
        (a.rows(), a.cols()),
        (dz.rows(), dz.cols()),
        "channel_activation_backward: a"
    );
    assert!(
        da.col_stride() == 1 && a.col_stride() == 1,
        "channel_activation_backward: rows must be contiguous"
    );
    let _t = crate::trace::kernel(crate::trace::Kind::ActivationBackward).bytes(12 * dz.rows() * dz.cols());
    db.fill(0.0);
    let n = dz.cols();
    for i in 0..dz.rows() {
        let (da_row, a_row) = (
            &da.data()[i * da.row_stride()..][..n],
            &a.data()[i * a.row_stride()..][..n],
        );
        let row = dz.row_mut(i);
        let mut j = 0;
        while j + LANES <= n {
            let dav = V::from(<[f32; LANES]>::try_from(&da_row[j..j + LANES]).expect("LANES floats"));
            let av = V::from(<[f32; LANES]>::try_from(&a_row[j..j + LANES]).expect("LANES floats"));
            let d = dav * crate::simd::derivative_from_output(act, av);
            row[j..j + LANES].copy_from_slice(&d.to_array());
            j += LANES;
        }
        for k in j..n {
            row[k] = da_row[k] * act.df_from_output(a_row[k]);
        }
        channel_sums_add(db, row);
    }
}

/// `db[c] += Σ_positions row[position·C + c]` for `C = db.len()` channels,
/// position after position (the order of [`channel_activation_backward`]).
pub fn channel_sums_add(db: &mut [f32], row: &[f32]) {
    match db.len() {
        // a fixed channel count keeps the sums in registers (LeNet-5's 6 filters: 0.20 -> 0.06 ms a shard)
        1 => sum_channels::<1>(row, db),
        2 => sum_channels::<2>(row, db),
        3 => sum_channels::<3>(row, db),
        4 => sum_channels::<4>(row, db),
        6 => sum_channels::<6>(row, db),
        8 => sum_channels::<8>(row, db),
        channels => {
            for position in row.chunks_exact(channels) {
                for (s, &d) in db.iter_mut().zip(position) {
                    *s += d;
                }
            }
        }
    }
}

/// `db[c] += Σ_positions row[position·C + c]`, position after position (the
/// order of the loop it replaces), with the `C` sums in registers.
#[inline(always)]
fn sum_channels<const C: usize>(row: &[f32], db: &mut [f32]) {
    let db: &mut [f32; C] = db.try_into().expect("C channel sums");
    let mut sums = *db;
    for position in row.chunks_exact(C) {
        let position: &[f32; C] = position.try_into().expect("C channels");
        for (s, &d) in sums.iter_mut().zip(position) {
            *s += d;
        }
    }
    *db = sums;
}
