//! The backward pass of a convolution whose output goes straight into a
//! 2x2 max-pool (LeNet-5's second convolution, Keras' mnist_cnn's second),
//! computed from the pool's error one image at a time, by scattering.
//!
//! The pool sends each of its output errors to one of four inputs, so at
//! most a quarter of the convolution's `dz` is non-zero (with ReLU, fewer:
//! LeNet-5's about 16%, Keras' about 7%). The layer-by-layer pass writes
//! all of `dz`, then multiplies it as a matrix twice (the filter gradient,
//! and the input gradient's unfolded columns, which it then folds back
//! into images). Here each non-zero error is kept with its filter, in
//! runs of one window position ([`Errors`]), and adds one window of the
//! input to its filter's gradient and its filter to one window of the
//! input's error:
//!
//! ```text
//! forward:  a1[o] = a0[p] [⊙ m[o]], p = argmax[o]      backward: g = da1[o] [⊙ m[o]]·f'(a0[p])  (kept if g != 0)
//! forward:  a0 = f(z0)                                           db[f] += g
//! forward:  z0[y,x,f] = Σ_{ky,kx,ci} x[y+ky, x+kx, ci]·W[ky,kx,ci,f] + b[f]
//!           backward, for each window row ky:  dW[ky,·,·,f] += g·x[y+ky, x.., ·]
//!                                              dx[y+ky, x.., ·] += g·W[ky,·,·,f]
//! ```
//!
//! A window row is `kw·c_in` consecutive numbers in an NHWC image, a few
//! vectors ([`Pooled`]'s `nv`), so each error costs `kh·nv` vector
//! multiply-adds for each gradient, nothing for the zeros. The errors of
//! one position come together (a run), so they share their loads of `x`,
//! and their sums into `dx` stay in registers until the run ends.
//!
//! Measured, one 64-image shard, 1 thread, Zen 5, AVX-512 (`cargo bench
//! --bench cnn -- --layers`): LeNet-5's second convolution and pool,
//! backward, 0.41 -> 0.16 ms; Keras' 9.4 -> 4.9 ms.
//!
//! The sums are in a fixed order (images in order; in each, the pool's
//! tiles in order, `LANES` filters at a time, positions in order, filters
//! in order), so the result does not depend on the thread count; it is not
//! the GEMM's order, so the bits differ from the layer-by-layer pass by
//! rounding (tested against it in tests/conv_engine.rs, and against the
//! gradients' definition below).

use crate::activation::Activation;
use crate::geometry::Conv2dGeometry;
use crate::kernels::DropoutMask;
use crate::simd::{self, LANES, SUM_LANES, SUM_VECTORS, V};

/// The most vectors in one window row (`kw·c_in` numbers) the kernels take:
/// Keras' second convolution, 3x32 numbers, is 6 with AVX-512 and 12 with 8 lanes.
pub const MAX_VECTORS: usize = 12;

/// The shapes of a convolution the scattering kernels take: windows inside
/// the image (no padding read), a window row of at most [`MAX_VECTORS`]
/// vectors, an output of at least 2x2 (one pool tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pooled {
    /// Numbers in one input image row, `w·c_in`.
    row: usize,
    /// Input channels.
    c_in: usize,
    /// Window rows.
    kh: usize,
    /// Numbers in one window row, `kw·c_in`.
    seg: usize,
    /// Vectors per window row, `⌈seg / LANES⌉`.
    nv: usize,
    /// Output (the pool's input) width.
    ow: usize,
    /// The pool's output height and width.
    ph: usize,
    pw: usize,
    /// Filters.
    c_out: usize,
    /// Numbers in one input image, `h·w·c_in`.
    image: usize,
}

impl Pooled {
    /// The kernels' view of `g` (batch 1), if they take it.
    pub fn new(g: &Conv2dGeometry) -> Option<Pooled> {
        let (input, output) = (g.input(), g.output());
        let (h, w, c_in) = (input.height(), input.width(), input.channels());
        let (kh, kw) = (g.kernel_h(), g.kernel_w());
        let inside = g.pad_top() == 0
            && g.pad_left() == 0
            && output.height() + kh - 1 <= h
            && output.width() + kw - 1 <= w;
        let seg = kw * c_in;
        let nv = seg.div_ceil(LANES);
        let fits = inside && nv <= MAX_VECTORS && output.height() >= 2 && output.width() >= 2;
        let image = h * w * c_in;
        // entries index x with u32; the pool's router compares output indices as f32 (exact below 2^24)
        let small = image < u32::MAX as usize && output.height() * output.width() * g.filters() < 1 << 24;
        (fits && small).then_some(Pooled {
            row: w * c_in,
            c_in,
            kh,
            seg,
            nv,
            ow: output.width(),
            ph: output.height() / 2,
            pw: output.width() / 2,
            c_out: g.filters(),
            image,
        })
    }

    /// The pool's outputs per image: the most entries one image can have.
    pub fn pooled(&self) -> usize {
        self.ph * self.pw * self.c_out
    }

    /// The most runs one image can have: four per pool tile and `LANES` filters.
    pub fn runs_len(&self) -> usize {
        4 * self.ph * self.pw * self.c_out.div_ceil(LANES)
    }

    /// Vectors in the filters' window rows ([`pad_filters`]) and in the
    /// filter gradient's sums ([`pooled_weight_gradient`]): `c_out·kh·nv`.
    pub fn rows_len(&self) -> usize {
        self.c_out * self.kh * self.nv
    }

    /// The largest `at` an entry can have (the last window's first number).
    fn last_window(&self) -> usize {
        self.image - (self.kh - 1) * self.row - self.seg
    }

    /// Numbers in the last vector of a window row.
    fn tail(&self) -> usize {
        self.seg - (self.nv - 1) * LANES
    }
}

/// The non-zero errors of the convolution's output, `g = ∂L/∂z`, one
/// image's, each with its filter, in runs of one position ([`Run`]).
/// Both arrays have `LANES` numbers of room past the last error (written
/// whole vectors at a time).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Errors {
    /// The filter (output channel) of each error.
    pub filters: Vec<u32>,
    /// The errors.
    pub values: Vec<f32>,
    /// The positions: `filters, values[previous run's end..end]` are at `at`.
    pub runs: Vec<Run>,
}

impl Errors {
    /// Room for the errors of one image of `s`'s shape.
    pub fn new(s: &Pooled) -> Errors {
        Errors {
            filters: vec![0; s.pooled() + LANES],
            values: vec![0.0; s.pooled() + LANES],
            runs: vec![Run::default(); s.runs_len()],
        }
    }
}

/// The errors of one position: `[previous run's end..end]` of
/// [`Errors`]' arrays, whose window starts at `x[at]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// The window's first number in the input image: `y·w·c_in + x·c_in`.
    pub at: u32,
    /// One past the run's last error.
    pub end: u32,
}

/// The filters as window rows: row `(f·kh + ky)` is `W[ky,·,·,f]`, the
/// `kw·c_in` numbers one window row meets, zero-padded to `nv` vectors.
///
/// Shapes: `rows: c_out·kh·nv` vectors ([`Pooled::rows_len`]),
/// `w: (kh·kw·c_in, c_out)` row-major.
pub fn pad_filters(rows: &mut [V], w: &[f32], s: &Pooled) {
    assert!(
        rows.len() >= s.rows_len() && w.len() == s.kh * s.seg * s.c_out,
        "pad_filters: sizes"
    );
    for f in 0..s.c_out {
        for ky in 0..s.kh {
            let mut row = [0.0f32; MAX_VECTORS * LANES];
            for (j, r) in row[..s.seg].iter_mut().enumerate() {
                *r = w[(ky * s.seg + j) * s.c_out + f];
            }
            let first = (f * s.kh + ky) * s.nv;
            for (v, out) in rows[first..first + s.nv].iter_mut().enumerate() {
                // SAFETY: `row` has MAX_VECTORS >= nv vectors
                *out = unsafe { simd::load(row.as_ptr().add(v * LANES)) };
            }
        }
    }
}

/// One image's errors: the pool routes `da1[o]` (times the dropout
/// factor, if the pool's output was dropped) to its tile's maximum
/// `p = argmax[o]`, where the activation's derivative multiplies it,
/// `g = da1[o]·m[o]·f'(a0[p])`; each `g != 0` goes into `errors`, and
/// `db[f] += g`. Tile by tile, `LANES` filters at a time, the errors come
/// by position, then filter, in runs of one position. Returns the number of runs.
///
/// Shapes: `errors` from [`Errors::new`], `db: c_out`, `da1, argmax:
/// ph·pw·c_out` (one image of the pool's output), `a0: oh·ow·c_out` (the
/// convolution's output). `dropout`: the pool's mask and this image's row.
///
/// # Panics
/// If an `argmax` is not in its own tile (it did not come from this pool).
#[allow(clippy::too_many_arguments)]
pub fn pooled_errors(
    errors: &mut Errors,
    db: &mut [f32],
    da1: &[f32],
    argmax: &[u32],
    a0: &[f32],
    act: Activation,
    dropout: Option<(&DropoutMask, usize)>,
    s: &Pooled,
) -> usize {
    let pooled = s.pooled();
    assert!(
        errors.values.len() >= pooled + LANES
            && errors.filters.len() >= pooled + LANES
            && errors.runs.len() >= s.runs_len()
            && db.len() == s.c_out
            && da1.len() == pooled
            && argmax.len() == pooled
            && a0.len() >= 2 * s.ph * s.ow * s.c_out,
        "pooled_errors: sizes"
    );
    // the activation's derivative, chosen once (each closure is `simd::derivative_from_output`)
    match act {
        Activation::Relu => route(errors, db, da1, argmax, a0, dropout, s, |a| {
            simd::derivative_from_output(Activation::Relu, a)
        }),
        Activation::Identity => route(errors, db, da1, argmax, a0, dropout, s, |a| {
            simd::derivative_from_output(Activation::Identity, a)
        }),
        Activation::Sigmoid => route(errors, db, da1, argmax, a0, dropout, s, |a| {
            simd::derivative_from_output(Activation::Sigmoid, a)
        }),
        Activation::Tanh => route(errors, db, da1, argmax, a0, dropout, s, |a| {
            simd::derivative_from_output(Activation::Tanh, a)
        }),
    }
}

/// [`pooled_errors`] with the derivative `df` (per lane, from the output).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn route(
    errors: &mut Errors,
    db: &mut [f32],
    da1: &[f32],
    argmax: &[u32],
    a0: &[f32],
    dropout: Option<(&DropoutMask, usize)>,
    s: &Pooled,
    df: impl Fn(V) -> V,
) -> usize {
    let c = s.c_out;
    // argmax[o] - (corner + f): 0, c (right), ow·c (down) or ow·c + c, as floats (exact: < 2^24)
    let (down_by, right_by) = (s.ow * c, c);
    let (down_f, right_f) = (V::splat(down_by as f32), V::splat(right_by as f32));
    let (mut n, mut k) = (0, 0);
    for py in 0..s.ph {
        for px in 0..s.pw {
            let cell = (py * s.pw + px) * c;
            let corner = (2 * py * s.ow + 2 * px) * c;
            // the tile's four windows in order, (0, 0), (0, 1), (1, 0), (1, 1)
            let at = 2 * py * s.row + 2 * px * s.c_in;
            let windows = [at, at + s.c_in, at + s.row, at + s.row + s.c_in];
            // SUM_LANES filters at a time whatever the width (with 8 lanes, two
            // vectors' worth), so that each window's run holds the same errors
            // in the same order at 8 and 16 lanes, and `dx` gets the same bits
            for f00 in (0..c).step_by(SUM_LANES) {
                let parts = (c - f00).div_ceil(LANES).min(SUM_VECTORS);
                // each vector's errors, filter numbers, and which errors each window has
                let mut routed = [(V::ZERO, V::ZERO, [0u32; 4]); SUM_VECTORS];
                for (part, routed) in routed.iter_mut().enumerate().take(parts) {
                    let f0 = f00 + part * LANES;
                    let len = LANES.min(c - f0);
                    let lanes = ((1u64 << len) - 1) as u32;
                    // the filter numbers f0.., as the bits of the lanes (moved, never computed with)
                    let filters = V::from(core::array::from_fn::<f32, LANES, _>(|j| {
                        f32::from_bits((f0 + j) as u32)
                    }));
                    let mut offsets = [f32::NAN; LANES];
                    let first = (corner + f0) as u32;
                    if len == LANES {
                        // (a whole vector: a loop the compiler vectorizes)
                        let arg = &argmax[cell + f0..cell + f0 + LANES];
                        for (j, (d, &a)) in offsets.iter_mut().zip(arg).enumerate() {
                            *d = a.wrapping_sub(first + j as u32) as f32;
                        }
                    } else {
                        let arg = &argmax[cell + f0..cell + f0 + len];
                        for (j, (d, &a)) in offsets.iter_mut().zip(arg).enumerate() {
                            *d = a.wrapping_sub(first + j as u32) as f32;
                        }
                    }
                    let d = V::from(offsets);
                    let right = d.simd_eq(right_f) | d.simd_eq(down_f + right_f);
                    let down = d.simd_eq(down_f) | d.simd_eq(down_f + right_f);
                    let valid = (right | down | d.simd_eq(V::ZERO)).to_bitmask() & lanes;
                    assert!(
                        valid == lanes,
                        "pooled_errors: an argmax of outputs {}..{} is not in its 2x2 tile",
                        cell + f0,
                        cell + f0 + len
                    );
                    // SAFETY: the tile's last input, corner + ow·c + c + f0 + len - 1, is below
                    // 2·ph·ow·c <= a0.len() (2·pw <= ow); cell + f0 + len <= pooled = da1.len()
                    let (g, sums) = unsafe {
                        let at = |k: usize| simd::load_partial(a0.as_ptr().add(corner + k + f0), len);
                        let a = down.bitselect(
                            right.bitselect(at(down_by + right_by), at(down_by)),
                            right.bitselect(at(right_by), at(0)),
                        );
                        let da = simd::load_partial(da1.as_ptr().add(cell + f0), len);
                        // backward: g = da1[o] [⊙ m]·f'(a0[argmax[o]])
                        let da = match dropout {
                            Some((mask, r)) => da * mask.factors(r, cell + f0),
                            None => da,
                        };
                        let g = da * df(a);
                        (g, db.as_mut_ptr().add(f0))
                    };
                    // backward: db[f] += g   (whole vectors unmasked: the next tile's load of them
                    // then takes the value straight from this store; from a masked store it waits)
                    // SAFETY: f0 + len <= c = db.len()
                    unsafe {
                        if len == LANES {
                            simd::store(sums, simd::load(sums) + g);
                        } else {
                            simd::store_partial(sums, simd::load_partial(sums, len) + g, len);
                        }
                    }
                    let nonzero = !g.simd_eq(V::ZERO).to_bitmask() & lanes;
                    let quarters = [!(down | right), right & !down, down & !right, down & right];
                    *routed = (g, filters, quarters.map(|q| q.to_bitmask() & nonzero));
                }
                for (w, window) in windows.into_iter().enumerate() {
                    let start = n;
                    for &(g, filters, masks) in &routed[..parts] {
                        let mask = masks[w];
                        // SAFETY: n <= the errors so far <= pooled, and both arrays have pooled + LANES
                        unsafe {
                            simd::store(errors.values.as_mut_ptr().add(n), simd::compress(g, mask));
                            let ids = errors.filters.as_mut_ptr().add(n).cast::<f32>();
                            simd::store(ids, simd::compress(filters, mask));
                        }
                        n += mask.count_ones() as usize;
                    }
                    // a run for this window if it has errors (k counts at most one per window)
                    errors.runs[k] = Run {
                        at: window as u32,
                        end: n as u32,
                    };
                    k += (n != start) as usize;
                }
            }
        }
    }
    k
}

/// Each of the first `runs` runs' window, whether its rows can be read as
/// whole vectors ([`whole`]), and its errors (filters, values), checked:
/// the window inside the image, the runs in order inside the arrays.
#[allow(clippy::type_complexity)]
fn checked<'e>(
    errors: &'e Errors,
    runs: usize,
    s: &Pooled,
) -> impl Iterator<Item = (usize, bool, &'e [u32], &'e [f32])> {
    let (last, n) = (s.last_window(), errors.filters.len().min(errors.values.len()));
    let s = *s;
    let mut start = 0;
    errors.runs[..runs].iter().map(move |run| {
        let (at, end) = (run.at as usize, run.end as usize);
        assert!(
            at <= last && start <= end && end <= n,
            "conv_pooled: a run outside the image or the errors"
        );
        let run = (
            at,
            whole(at, &s),
            &errors.filters[start..end],
            &errors.values[start..end],
        );
        start = end;
        run
    })
}

/// Whether the window at `at` can be read and written as whole vectors:
/// its last row's `nv` vectors end inside the image. The numbers past a
/// window row then read only reach lanes of the sums nobody reads, and the
/// filters' padding zeros add `±0` to them in `dx`, which changes no number
/// (each starts at `+0`). Only the last windows of the image are not whole
/// (and, with AVX-512, cost nothing more: masked loads and stores).
fn whole(at: usize, s: &Pooled) -> bool {
    at + (s.kh - 1) * s.row + s.nv * LANES <= s.image
}

/// Calls `$kernel::<KH, NV>` for the window shapes with a kernel (a
/// window's rows in registers: `KH·NV <= 24` with AVX-512; 3x12, Keras'
/// second convolution with AVX2, spills some of its 36 vectors but beat
/// `$any`: a Keras epoch of 12,800 images 3.72 -> 3.3 s, Zen 5 running the
/// znver3 build), else `$any`.
macro_rules! by_window {
    ($s:expr, $kernel:ident, $any:ident, ($($arg:expr),*)) => {
        match ($s.kh, $s.nv) {
            (3, 1) => $kernel::<3, 1>($($arg),*),
            (3, 2) => $kernel::<3, 2>($($arg),*),
            (3, 3) => $kernel::<3, 3>($($arg),*),
            (3, 4) => $kernel::<3, 4>($($arg),*),
            (3, 6) => $kernel::<3, 6>($($arg),*),
            (5, 1) => $kernel::<5, 1>($($arg),*),
            (5, 2) => $kernel::<5, 2>($($arg),*),
            (5, 3) => $kernel::<5, 3>($($arg),*),
            (5, 4) => $kernel::<5, 4>($($arg),*),
            (3, 12) => $kernel::<3, 12>($($arg),*),
            _ => $any($($arg),*),
        }
    };
}

/// One image's part of the filter gradient: for each entry and window row
/// `ky`, `rows[f·kh + ky] += g·x[at + ky·w·c_in ..][..kw·c_in]` (the sums,
/// window rows like [`pad_filters`]'; [`pooled_weight_sums`] turns them
/// into `dW`). Returns the multiply-adds done.
///
/// Shapes: `rows: c_out·kh·nv` vectors, `x: h·w·c_in` (one input image),
/// `errors` and its first `runs` runs from [`pooled_errors`].
pub fn pooled_weight_gradient(rows: &mut [V], x: &[f32], errors: &Errors, runs: usize, s: &Pooled) -> usize {
    assert!(
        rows.len() >= s.rows_len() && x.len() == s.image,
        "pooled_weight_gradient: sizes"
    );
    by_window!(s, weight_runs, weight_runs_any, (rows, x, errors, runs, s));
    runs.checked_sub(1).map_or(0, |r| errors.runs[r].end as usize) * s.kh * s.seg
}

/// Window row `ky`'s vector `v` of the window at `x[at]` (the last vector
/// of a row holds its `tail` numbers, then the next ones if the window is
/// `whole`, else zeros).
///
/// # Safety
/// `at <= s.last_window()`, `whole == whole(at, s)`, `ky < kh`, `v < nv`,
/// `x.len() == s.image`.
#[inline(always)]
unsafe fn window_vector(x: &[f32], (at, whole): (usize, bool), ky: usize, v: usize, s: &Pooled) -> V {
    // SAFETY: at + (kh - 1)·row + seg <= h·w·c_in = x.len(), and vector v reads
    // inside the window row's seg numbers (the last one only its tail), or,
    // if whole, at + (kh - 1)·row + nv·LANES <= x.len()
    unsafe {
        let p = x.as_ptr().add(at + ky * s.row + v * LANES);
        if v + 1 < s.nv || whole {
            simd::load(p)
        } else {
            simd::load_partial(p, s.tail())
        }
    }
}

/// [`pooled_weight_gradient`] for `KH·NV`-vector windows: each run's
/// window in registers, added to each of its entries' filter rows.
#[inline(always)]
fn weight_runs<const KH: usize, const NV: usize>(
    rows: &mut [V],
    x: &[f32],
    errors: &Errors,
    runs: usize,
    s: &Pooled,
) {
    debug_assert_eq!((KH, NV), (s.kh, s.nv));
    for (at, whole, filters, values) in checked(errors, runs, s) {
        let mut xs = [[V::ZERO; NV]; KH];
        for (ky, row) in xs.iter_mut().enumerate() {
            for (v, xv) in row.iter_mut().enumerate() {
                // SAFETY: `checked`: at <= last_window, whole(at); ky < kh, v < nv; x.len() == image
                *xv = unsafe { window_vector(x, (at, whole), ky, v, s) };
            }
        }
        for (&f, &g) in filters.iter().zip(values) {
            let sums = &mut rows[f as usize * KH * NV..][..KH * NV];
            let g = V::splat(g);
            for (sums, xs) in sums.chunks_exact_mut(NV).zip(&xs) {
                for (sum, &xv) in sums.iter_mut().zip(xs) {
                    // backward: dW[ky,·,·,f] += g·x[y+ky, x.., ·]
                    *sum = simd::mul_add(g, xv, *sum);
                }
            }
        }
    }
}

/// [`pooled_weight_gradient`] for any window: one vector at a time.
fn weight_runs_any(rows: &mut [V], x: &[f32], errors: &Errors, runs: usize, s: &Pooled) {
    for (at, whole, filters, values) in checked(errors, runs, s) {
        for ky in 0..s.kh {
            for v in 0..s.nv {
                // SAFETY: `checked`: at <= last_window, whole(at); ky < kh, v < nv; x.len() == image
                let xv = unsafe { window_vector(x, (at, whole), ky, v, s) };
                for (&f, &g) in filters.iter().zip(values) {
                    let sum = &mut rows[(f as usize * s.kh + ky) * s.nv + v];
                    // backward: dW[ky,·,·,f] += g·x[y+ky, x.., ·]
                    *sum = simd::mul_add(V::splat(g), xv, *sum);
                }
            }
        }
    }
}

/// The filter gradient from the window-row sums of
/// [`pooled_weight_gradient`]: `dw[(ky·kw·c_in + j)·c_out + f] =
/// rows[f·kh + ky][j]`. Shapes: `dw: (kh·kw·c_in, c_out)`.
pub fn pooled_weight_sums(dw: &mut [f32], rows: &[V], s: &Pooled) {
    assert!(
        dw.len() == s.kh * s.seg * s.c_out && rows.len() >= s.rows_len(),
        "pooled_weight_sums: sizes"
    );
    for f in 0..s.c_out {
        for ky in 0..s.kh {
            let first = (f * s.kh + ky) * s.nv;
            for (v, sums) in rows[first..first + s.nv].iter().enumerate() {
                for (l, &sum) in sums.to_array().iter().enumerate() {
                    let j = v * LANES + l;
                    if j < s.seg {
                        dw[(ky * s.seg + j) * s.c_out + f] = sum;
                    }
                }
            }
        }
    }
}

/// One image's input gradient: `dx = 0`, then for each entry and window
/// row `ky`, `dx[at + ky·w·c_in ..][..kw·c_in] += g·W[ky,·,·,f]` (the
/// entries of one position summed in registers first). Returns the
/// multiply-adds done.
///
/// Shapes: `dx: h·w·c_in` (one image), `w_rows: c_out·kh·nv` vectors from
/// [`pad_filters`], `errors` and its first `runs` runs from [`pooled_errors`].
pub fn pooled_input_gradient(
    dx: &mut [f32],
    w_rows: &[V],
    errors: &Errors,
    runs: usize,
    s: &Pooled,
) -> usize {
    assert!(
        dx.len() == s.image && w_rows.len() >= s.rows_len(),
        "pooled_input_gradient: sizes"
    );
    dx.fill(0.0);
    by_window!(s, input_runs, input_runs_any, (dx, w_rows, errors, runs, s));
    runs.checked_sub(1).map_or(0, |r| errors.runs[r].end as usize) * s.kh * s.seg
}

/// Adds `sum` to window row `ky`'s vector `v` of the window at `dx[at]`
/// (the last vector of a row: only its `tail` numbers, unless the window is
/// `whole` and the lanes after them are `±0`).
///
/// # Safety
/// `at <= s.last_window()`, `whole == whole(at, s)`, `ky < kh`, `v < nv`,
/// `dx.len() == s.image`.
#[inline(always)]
unsafe fn add_to_window(dx: &mut [f32], (at, whole): (usize, bool), ky: usize, v: usize, sum: V, s: &Pooled) {
    // SAFETY: as in `window_vector`, for writing
    unsafe {
        let p = dx.as_mut_ptr().add(at + ky * s.row + v * LANES);
        if v + 1 < s.nv || whole {
            simd::store(p, simd::load(p) + sum);
        } else {
            let tail = s.tail();
            simd::store_partial(p, simd::load_partial(p, tail) + sum, tail);
        }
    }
}

/// [`pooled_input_gradient`] for `KH·NV`-vector windows: each run's sum
/// in registers, then added to its window of `dx`.
#[inline(always)]
fn input_runs<const KH: usize, const NV: usize>(
    dx: &mut [f32],
    w_rows: &[V],
    errors: &Errors,
    runs: usize,
    s: &Pooled,
) {
    debug_assert_eq!((KH, NV), (s.kh, s.nv));
    for (at, whole, filters, values) in checked(errors, runs, s) {
        let mut sums = [[V::ZERO; NV]; KH];
        for (&f, &g) in filters.iter().zip(values) {
            let w = &w_rows[f as usize * KH * NV..][..KH * NV];
            let g = V::splat(g);
            for (sums, w) in sums.iter_mut().zip(w.chunks_exact(NV)) {
                for (sum, &wv) in sums.iter_mut().zip(w) {
                    // backward: dx[y+ky, x.., ·] += g·W[ky,·,·,f]
                    *sum = simd::mul_add(g, wv, *sum);
                }
            }
        }
        for (ky, sums) in sums.iter().enumerate() {
            for (v, &sum) in sums.iter().enumerate() {
                // SAFETY: `checked`: at <= last_window, whole(at); ky < kh, v < nv; dx.len() == image
                unsafe { add_to_window(dx, (at, whole), ky, v, sum, s) };
            }
        }
    }
}

/// [`pooled_input_gradient`] for any window: one vector at a time.
fn input_runs_any(dx: &mut [f32], w_rows: &[V], errors: &Errors, runs: usize, s: &Pooled) {
    for (at, whole, filters, values) in checked(errors, runs, s) {
        for ky in 0..s.kh {
            for v in 0..s.nv {
                let mut sum = V::ZERO;
                for (&f, &g) in filters.iter().zip(values) {
                    let wv = w_rows[(f as usize * s.kh + ky) * s.nv + v];
                    // backward: dx[y+ky, x.., ·] += g·W[ky,·,·,f]
                    sum = simd::mul_add(V::splat(g), wv, sum);
                }
                // SAFETY: `checked`: at <= last_window, whole(at); ky < kh, v < nv; dx.len() == image
                unsafe { add_to_window(dx, (at, whole), ky, v, sum, s) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{ImageShape, Padding};
    use crate::kernels::pool::maxpool2d_forward_image;
    use crate::matrix::test_number;

    /// The three gradients by their definition, in f64, from the same
    /// errors `dz` (the pool's routing and the derivative written out).
    struct Reference {
        dw: Vec<f64>,
        db: Vec<f64>,
        dx: Vec<Vec<f64>>,
    }

    #[allow(clippy::too_many_arguments)]
    fn reference(
        (h, w, c_in, kh, kw, c_out): (usize, usize, usize, usize, usize, usize),
        x: &[Vec<f32>],
        wts: &[f32],
        da1: &[Vec<f32>],
        argmax: &[Vec<u32>],
        a0: &[Vec<f32>],
        act: Activation,
        mask: Option<&DropoutMask>,
    ) -> Reference {
        let (oh, ow) = (h - kh + 1, w - kw + 1);
        let mut r = Reference {
            dw: vec![0.0; kh * kw * c_in * c_out],
            db: vec![0.0; c_out],
            dx: Vec::new(),
        };
        for img in 0..x.len() {
            // dz: the pool's error at its argmax, times the derivative
            let mut dz = vec![0.0f32; oh * ow * c_out];
            for (o, &p) in argmax[img].iter().enumerate() {
                let m = mask.map_or(1.0, |m| m.factor(img, o));
                dz[p as usize] = da1[img][o] * m * act.df_from_output(a0[img][p as usize]);
            }
            let mut dx = vec![0.0f64; h * w * c_in];
            for y in 0..oh {
                for xo in 0..ow {
                    for f in 0..c_out {
                        let g = dz[(y * ow + xo) * c_out + f] as f64;
                        r.db[f] += g;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                for ci in 0..c_in {
                                    let i = ((y + ky) * w + xo + kx) * c_in + ci;
                                    let k = ((ky * kw + kx) * c_in + ci) * c_out + f;
                                    r.dw[k] += g * x[img][i] as f64;
                                    dx[i] += g * wts[k] as f64;
                                }
                            }
                        }
                    }
                }
            }
            r.dx.push(dx);
        }
        r
    }

    fn assert_near(what: &str, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}[{i}]: kernels {g}, definition {w}"
            );
        }
    }

    /// The errors are routed [`SUM_LANES`] filters at a time on every build:
    /// one run per window and group of 16 filters, its filters in order, so
    /// that `dx` adds the same numbers in the same order at 8 and 16 lanes.
    /// (Routed `LANES` at a time, an 8-lane build made up to twice the runs,
    /// and trained LeNet-5 to other bits than AVX-512.)
    #[test]
    fn errors_come_in_one_run_per_window_and_16_filters_at_every_width() {
        for c_out in [16, 40] {
            let (h, w, c_in, k) = (10, 10, 3, 3);
            let input = ImageShape::new(1, h, w, c_in).unwrap();
            let g = Conv2dGeometry::new(input, k, k, c_out, Padding::Valid).unwrap();
            let s = Pooled::new(&g).unwrap();
            let (oh, ow) = (h - k + 1, w - k + 1);
            // distinct outputs, so each tile's maximum is one of its four windows
            let a0: Vec<f32> = (0..oh * ow * c_out)
                .map(|i| test_number(i, 7) + i as f32 * 1e-4)
                .collect();
            let pooled = s.pooled();
            let (mut argmax, mut a1) = (vec![0; pooled], vec![0.0; pooled]);
            maxpool2d_forward_image(&mut a1, &mut argmax, &a0, 1.0, (oh, ow, c_out));
            let da1 = vec![0.5f32; pooled];
            let mut errors = Errors::new(&s);
            let mut db = vec![0.0; c_out];
            let runs = pooled_errors(
                &mut errors,
                &mut db,
                &da1,
                &argmax,
                &a0,
                Activation::Identity,
                None,
                &s,
            );
            // the runs each tile and group of 16 filters must make: one per window its maxima are in
            let window = |p: u32| {
                let (pos, ox) = (p as usize / c_out, p as usize / c_out % ow);
                (pos / ow % 2, ox % 2)
            };
            let mut want = Vec::new();
            for tile in 0..pooled / c_out {
                for f0 in (0..c_out).step_by(SUM_LANES) {
                    for quarter in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let filters: Vec<u32> = (f0..c_out.min(f0 + SUM_LANES))
                            .filter(|&f| window(argmax[tile * c_out + f]) == quarter)
                            .map(|f| f as u32)
                            .collect();
                        if !filters.is_empty() {
                            want.push(filters);
                        }
                    }
                }
            }
            let mut start = 0;
            let got: Vec<Vec<u32>> = errors.runs[..runs]
                .iter()
                .map(|run| {
                    let filters = errors.filters[start..run.end as usize].to_vec();
                    start = run.end as usize;
                    filters
                })
                .collect();
            assert_eq!(got, want, "{c_out} filters: the runs' filters");
        }
    }

    /// Every kernel of the file against the gradients by their definition,
    /// over several images: window rows of 1 to 6 vectors and the
    /// any-shape kernels (kh 2 and 4), filters in one vector, more, and a
    /// part of one, odd outputs (the pool drops a row or column), every
    /// activation, with and without the pool's dropout, errors with zeros.
    #[test]
    fn the_scattered_gradients_match_their_definition() {
        let acts = [
            Activation::Relu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Identity,
        ];
        // (h, w, c_in, kh, kw, c_out)
        let shapes = [
            (14, 14, 6, 5, 5, 16),
            (10, 10, 32, 3, 3, 64),
            (9, 7, 3, 3, 3, 5),
            (8, 9, 5, 4, 4, LANES + 4),
            (7, 6, 2, 2, 3, LANES + 3),
            (12, 11, 7, 5, 5, 33),
            (6, 6, 1, 3, 3, 1),
            (5, 8, 9, 3, 2, 2 * LANES),
        ];
        let mut taken = 0;
        for (k, &(h, w, c_in, kh, kw, c_out)) in shapes.iter().enumerate() {
            let input = ImageShape::new(1, h, w, c_in).unwrap();
            let g = Conv2dGeometry::new(input, kh, kw, c_out, Padding::Valid).unwrap();
            let Some(s) = Pooled::new(&g) else {
                // a window row of more than MAX_VECTORS vectors: only with few lanes
                assert!((kw * c_in).div_ceil(LANES) > MAX_VECTORS, "{k}: not taken");
                continue;
            };
            taken += 1;
            let (oh, ow) = (h - kh + 1, w - kw + 1);
            let act = acts[k % acts.len()];
            let images = 3;
            let wts: Vec<f32> = (0..kh * kw * c_in * c_out)
                .map(|i| test_number(i, 10 + k))
                .collect();
            let x: Vec<Vec<f32>> = (0..images)
                .map(|r| (0..h * w * c_in).map(|i| test_number(i, 100 * r + k)).collect())
                .collect();
            // a0 = f(something): values the activation can have, with ties for the pool
            let a0: Vec<Vec<f32>> = (0..images)
                .map(|r| {
                    (0..oh * ow * c_out)
                        .map(|i| {
                            let t = (test_number(i, 200 + 100 * r + k) * 4.0).round() / 4.0;
                            act.f(t)
                        })
                        .collect()
                })
                .collect();
            let pooled = s.pooled();
            let (mut argmax, mut a1) = (Vec::new(), vec![0.0; pooled]);
            for a0 in &a0 {
                let mut arg = vec![0; pooled];
                maxpool2d_forward_image(&mut a1, &mut arg, a0, 1.0, (oh, ow, c_out));
                argmax.push(arg);
            }
            // errors with zeros: every third one
            let da1: Vec<Vec<f32>> = (0..images)
                .map(|r| {
                    (0..pooled)
                        .map(|o| {
                            if o % 3 == 1 {
                                0.0
                            } else {
                                test_number(o, 300 + 100 * r + k)
                            }
                        })
                        .collect()
                })
                .collect();
            let mask = DropoutMask::new(0.25, 3, 1, 2);
            for dropout in [None, Some(&mask)] {
                let what = format!(
                    "{h}x{w}x{c_in} kernel {kh}x{kw}x{c_out} {act:?} dropout {}",
                    dropout.is_some()
                );
                let want = reference(
                    (h, w, c_in, kh, kw, c_out),
                    &x,
                    &wts,
                    &da1,
                    &argmax,
                    &a0,
                    act,
                    dropout,
                );
                let mut errors = Errors::new(&s);
                let (mut db, mut sums, mut w_rows) = (
                    vec![0.0; c_out],
                    vec![V::ZERO; s.rows_len()],
                    vec![V::ZERO; s.rows_len()],
                );
                pad_filters(&mut w_rows, &wts, &s);
                for r in 0..images {
                    let runs = pooled_errors(
                        &mut errors,
                        &mut db,
                        &da1[r],
                        &argmax[r],
                        &a0[r],
                        act,
                        dropout.map(|m| (m, r)),
                        &s,
                    );
                    let nonzero = errors.runs[..runs].last().map_or(0, |run| run.end as usize);
                    pooled_weight_gradient(&mut sums, &x[r], &errors, runs, &s);
                    let mut dx = vec![f32::NAN; h * w * c_in];
                    let madds = pooled_input_gradient(&mut dx, &w_rows, &errors, runs, &s);
                    assert_eq!(madds, nonzero * kh * kw * c_in, "{what}: multiply-adds");
                    assert_near(&format!("{what}: image {r} dx"), &dx, &want.dx[r]);
                }
                let mut dw = vec![f32::NAN; wts.len()];
                pooled_weight_sums(&mut dw, &sums, &s);
                assert_near(&format!("{what}: dW"), &dw, &want.dw);
                assert_near(&format!("{what}: db"), &db, &want.db);
            }
        }
        assert!(taken >= 6, "most shapes taken");
    }

    /// Which shapes the kernels take: windows inside the image only.
    #[test]
    fn only_windows_inside_the_image() {
        let input = ImageShape::new(1, 10, 10, 4).unwrap();
        let valid = Conv2dGeometry::new(input, 3, 3, 8, Padding::Valid).unwrap();
        let same = Conv2dGeometry::new(input, 3, 3, 8, Padding::Same).unwrap();
        assert!(Pooled::new(&valid).is_some());
        assert!(Pooled::new(&same).is_none());
        // a 1x1 output has no pool tile
        let tiny =
            Conv2dGeometry::new(ImageShape::new(1, 3, 3, 1).unwrap(), 3, 3, 2, Padding::Valid).unwrap();
        assert!(Pooled::new(&tiny).is_none());
    }

    /// An argmax outside its tile is refused, not followed.
    #[test]
    #[should_panic(expected = "is not in its 2x2 tile")]
    fn an_argmax_outside_its_tile_panics() {
        let input = ImageShape::new(1, 6, 6, 2).unwrap();
        let g = Conv2dGeometry::new(input, 3, 3, 3, Padding::Valid).unwrap();
        let s = Pooled::new(&g).unwrap();
        let mut errors = Errors::new(&s);
        let (mut db, pooled) = (vec![0.0; 3], s.pooled());
        let mut argmax = vec![0u32; pooled];
        // output 0 of tile (0, 0): its own position 0; all the others point there too
        argmax[pooled - 1] = 0;
        let (da1, a0) = (vec![1.0; pooled], vec![1.0; 4 * 4 * 3]);
        pooled_errors(
            &mut errors,
            &mut db,
            &da1,
            &argmax,
            &a0,
            Activation::Identity,
            None,
            &s,
        );
    }
}
