//! Direct kernels for a convolution whose windows lie inside the image
//! (no padding read) and whose filters fill exactly one vector (16 on
//! AVX-512): LeNet-5's second layer, 5x5x6 -> 16 filters on 14x14 images.
//!
//! The general path multiplies the unfolded image by the filters with the
//! GEMM's gather micro-kernel: 24 rows of A (24 output positions, or 24
//! taps), each read through its own pointer. 24 pointers do not fit in
//! x86-64's general registers, so every step of `k` reloads most of them
//! from the stack, and the loads, not the multiply-adds, set the pace
//! (about 70% of the FMA peak). Here a tile's rows are neighbours in the
//! image, so all of them are read from one pointer at fixed distances:
//!
//! - **forward**: `P` consecutive positions of `R` output rows. Tap `j` of
//!   window row `ky` (`j = kx·c + ci`: a window row is one run of `kw·c`
//!   numbers) of position `ox` is at `x[(oy + ky)·w·c + ox·c + j]`, so one
//!   pointer per output row serves the `P` positions.
//! - **weight gradient**: `T` consecutive taps of one window row (a divisor
//!   of `kw·c`), over every position: tap `t` is at `window + t`.
//!
//! The sums are the GEMM's, in its order, so the bits are the same: the
//! forward pass sums the taps in order from zero, then `f(sum + bias)`; the
//! weight gradient sums the positions (images in order, then row by row)
//! in blocks of `kc` (the GEMM's depth blocks), each from zero and then
//! added to the last. Only on AVX-512 (32 vector registers hold the tiles).
//! (Measured, LeNet-5's second layer, one 64-image shard, 1 thread, Zen 5,
//! AVX-512: forward 0.164 -> 0.127 ms, weight gradient 0.192 -> 0.142 ms.)

use crate::activation::Activation;
use crate::geometry::Conv2dGeometry;
use crate::simd::{self, LANES, V};

/// The shapes of a convolution the direct kernels take, and their tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Direct {
    /// Input image rows, columns, channels.
    h: usize,
    w: usize,
    c: usize,
    /// Filter rows and columns.
    kh: usize,
    kw: usize,
    /// Output positions per forward tile row (a divisor of the output width), if any fits.
    positions: Option<usize>,
    /// Taps per weight-gradient tile (a divisor of `kw·c`), if any fits.
    taps: Option<usize>,
}

/// Positions per forward tile row that have a kernel, with the rows per tile (`P·R <= 24`).
const FORWARD_TILES: [(usize, usize); 9] = [
    (12, 2),
    (11, 2),
    (10, 2),
    (9, 2),
    (8, 3),
    (7, 3),
    (6, 4),
    (5, 4),
    (4, 6),
];
/// Taps per weight-gradient tile that have a kernel (at least 8 sums for the FMA latency).
const GRADIENT_TILES: [usize; 11] = [24, 21, 20, 18, 16, 15, 14, 12, 10, 9, 8];

impl Direct {
    /// The direct kernels' view of `g` (batch 1), if they take it: windows
    /// inside the image, `LANES` filters, at least two input channels (one
    /// channel: [`super::conv::SingleChannel`]), AVX-512, and a forward or
    /// a weight-gradient tile that divides the shape.
    pub fn new(g: &Conv2dGeometry) -> Option<Direct> {
        let (input, output) = (g.input(), g.output());
        let (h, w, c, kh, kw) = (
            input.height(),
            input.width(),
            input.channels(),
            g.kernel_h(),
            g.kernel_w(),
        );
        let inside = g.pad_top() == 0
            && g.pad_left() == 0
            && output.height() + kh - 1 <= h
            && output.width() + kw - 1 <= w;
        if !(inside && g.filters() == LANES && c >= 2 && simd::VECTOR_REGISTERS >= 32) {
            return None;
        }
        let ow = output.width();
        // the fewest runs of at most 12 positions that split each output row evenly
        let positions = (1..=ow)
            .map(|runs| ow / runs)
            .find(|&p| ow.is_multiple_of(p) && p <= 12)
            .filter(|&p| FORWARD_TILES.iter().any(|&(tp, _)| tp == p));
        let taps = GRADIENT_TILES.into_iter().find(|&t| (kw * c).is_multiple_of(t));
        let d = Direct {
            h,
            w,
            c,
            kh,
            kw,
            positions,
            taps,
        };
        (positions.is_some() || taps.is_some()).then_some(d)
    }

    /// Whether [`direct_forward`] takes this shape.
    pub fn forward(&self) -> bool {
        self.positions.is_some()
    }

    /// Whether [`direct_weight_gradient`] takes this shape.
    pub fn weight_gradient(&self) -> bool {
        self.taps.is_some()
    }

    fn out_h(&self) -> usize {
        self.h - self.kh + 1
    }
    fn out_w(&self) -> usize {
        self.w - self.kw + 1
    }
}

/// One image's forward pass: `z[(oy·ow + ox)·LANES + f] = act(Σ_ky Σ_j
/// x[(oy + ky)·w·c + ox·c + j]·W[(ky·kw·c + j)·LANES + f] + b[f])`, the sum
/// over the taps in order from zero, then the bias, as the GEMM's epilogue.
///
/// Shapes: `z: oh·ow·LANES`, `x: h·w·c`, `w: (kh·kw·c, LANES)`, `b: LANES`.
///
/// # Panics
/// If `d` has no forward tile ([`Direct::forward`]) or a size is wrong.
pub fn direct_forward(z: &mut [f32], x: &[f32], (w, b, act): (&[f32], &[f32], Activation), d: &Direct) {
    assert!(
        z.len() == d.out_h() * d.out_w() * LANES
            && x.len() == d.h * d.w * d.c
            && w.len() == d.kh * d.kw * d.c * LANES
            && b.len() == LANES,
        "direct_forward: sizes"
    );
    let p = d
        .positions
        .expect("direct_forward: no tile divides the output rows");
    let params = (w, b, act);
    match p {
        12 => forward_rows::<12, 2>(z, x, params, d),
        11 => forward_rows::<11, 2>(z, x, params, d),
        10 => forward_rows::<10, 2>(z, x, params, d),
        9 => forward_rows::<9, 2>(z, x, params, d),
        8 => forward_rows::<8, 3>(z, x, params, d),
        7 => forward_rows::<7, 3>(z, x, params, d),
        6 => forward_rows::<6, 4>(z, x, params, d),
        5 => forward_rows::<5, 4>(z, x, params, d),
        4 => forward_rows::<4, 6>(z, x, params, d),
        _ => unreachable!("FORWARD_TILES lists every tile"),
    }
}

/// [`direct_forward`] with tiles of `P` positions of `R` rows (and of one
/// row for the last `oh mod R` rows).
fn forward_rows<const P: usize, const R: usize>(
    z: &mut [f32],
    x: &[f32],
    (w, b, act): (&[f32], &[f32], Activation),
    d: &Direct,
) {
    let (oh, ow) = (d.out_h(), d.out_w());
    let bias = V::from(<[f32; LANES]>::try_from(b).expect("LANES biases"));
    let mut oy = 0;
    while oy < oh {
        let rows = if oy + R <= oh { R } else { 1 };
        for ox in (0..ow).step_by(P) {
            if rows == R {
                let sums = window_sums::<P, R>(x, w, (oy, ox), d);
                store_sums(z, &sums, (oy, ox), ow, (bias, act));
            } else {
                let sums = window_sums::<P, 1>(x, w, (oy, ox), d);
                store_sums(z, &sums, (oy, ox), ow, (bias, act));
            }
        }
        oy += rows;
    }
}

/// The sums of the windows at positions `ox..ox + P` of output rows
/// `oy..oy + R`, over every tap in order.
#[inline(always)]
fn window_sums<const P: usize, const R: usize>(
    x: &[f32],
    w: &[f32],
    (oy, ox): (usize, usize),
    d: &Direct,
) -> [[V; P]; R] {
    let (pitch, run) = (d.w * d.c, d.kw * d.c);
    // every read below stays inside x and w (checked once: the loop has no bounds checks)
    let last = (oy + R - 1 + d.kh - 1) * pitch + (ox + P - 1) * d.c + run - 1;
    assert!(
        last < x.len() && d.kh * run * LANES <= w.len(),
        "direct_forward: windows outside the image"
    );
    let mut acc = [[V::ZERO; P]; R];
    for ky in 0..d.kh {
        for j in 0..run {
            // SAFETY: (ky·run + j + 1)·LANES <= kh·run·LANES <= w.len() (asserted)
            let wv = unsafe { simd::load(w.as_ptr().add((ky * run + j) * LANES)) };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: the window numbers of row oy + r, positions ox..ox + P,
                // are at most `last` (asserted)
                let window = unsafe { x.as_ptr().add((oy + r + ky) * pitch + ox * d.c + j) };
                for (i, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: as above
                    let a = V::splat(unsafe { *window.add(i * d.c) });
                    *acc = simd::mul_add(a, wv, *acc);
                }
            }
        }
    }
    acc
}

/// `z = act(sum + bias)` for a tile of sums.
#[inline(always)]
fn store_sums<const P: usize, const R: usize>(
    z: &mut [f32],
    sums: &[[V; P]; R],
    (oy, ox): (usize, usize),
    ow: usize,
    (bias, act): (V, Activation),
) {
    for (r, row) in sums.iter().enumerate() {
        let out = &mut z[((oy + r) * ow + ox) * LANES..][..P * LANES];
        for (o, &sum) in out.chunks_exact_mut(LANES).zip(row) {
            o.copy_from_slice(&simd::activate(act, sum + bias).to_array());
        }
    }
}

/// The weight gradient over `rows` images: `dw[(ky·kw·c + j)·LANES + f] =
/// Σ_images Σ_positions x[(oy + ky)·w·c + ox·c + j]·dz[(oy·ow + ox)·LANES + f]`
/// (overwritten), the positions (images in order, each row by row) summed in
/// blocks of `kc`, each from zero and then added to the sum of the blocks
/// before it: the GEMM's order over its depth blocks of `kc`.
///
/// `image(r)` gives image `r` (`h·w·c`) and its `dz` (`oh·ow·LANES`);
/// `dw: (kh·kw·c, LANES)`.
///
/// # Panics
/// If `d` has no weight-gradient tile ([`Direct::weight_gradient`]), `kc` is 0, or a size is wrong.
pub fn direct_weight_gradient<'a>(
    dw: &mut [f32],
    image: &dyn Fn(usize) -> (&'a [f32], &'a [f32]),
    rows: usize,
    kc: usize,
    d: &Direct,
) {
    assert!(kc > 0, "direct_weight_gradient: kc = 0");
    assert_eq!(dw.len(), d.kh * d.kw * d.c * LANES, "direct_weight_gradient: dw");
    match d
        .taps
        .expect("direct_weight_gradient: no tile divides the window rows")
    {
        24 => gradient_taps::<24>(dw, image, rows, kc, d),
        21 => gradient_taps::<21>(dw, image, rows, kc, d),
        20 => gradient_taps::<20>(dw, image, rows, kc, d),
        18 => gradient_taps::<18>(dw, image, rows, kc, d),
        16 => gradient_taps::<16>(dw, image, rows, kc, d),
        15 => gradient_taps::<15>(dw, image, rows, kc, d),
        14 => gradient_taps::<14>(dw, image, rows, kc, d),
        12 => gradient_taps::<12>(dw, image, rows, kc, d),
        10 => gradient_taps::<10>(dw, image, rows, kc, d),
        9 => gradient_taps::<9>(dw, image, rows, kc, d),
        8 => gradient_taps::<8>(dw, image, rows, kc, d),
        _ => unreachable!("GRADIENT_TILES lists every tile"),
    }
}

/// [`direct_weight_gradient`] with tiles of `T` taps.
fn gradient_taps<'a, const T: usize>(
    dw: &mut [f32],
    image: &dyn Fn(usize) -> (&'a [f32], &'a [f32]),
    rows: usize,
    kc: usize,
    d: &Direct,
) {
    let (oh, ow, pitch, run) = (d.out_h(), d.out_w(), d.w * d.c, d.kw * d.c);
    for ky in 0..d.kh {
        for j0 in (0..run).step_by(T) {
            let out = &mut dw[(ky * run + j0) * LANES..][..T * LANES];
            let (mut acc, mut in_block, mut first) = ([V::ZERO; T], 0, true);
            for r in 0..rows {
                let (x, dz) = image(r);
                // every read below stays inside x and dz (checked once per image)
                assert!(
                    x.len() == d.h * pitch && dz.len() == oh * ow * LANES,
                    "direct_weight_gradient: image {r}: sizes"
                );
                for oy in 0..oh {
                    // SAFETY: row oy + ky < h; positions ox < ow read up to
                    // (ow - 1)·c + j0 + T - 1 < w·c within it; dz row oy is inside dz
                    let (window, dz_row) = unsafe {
                        (
                            x.as_ptr().add((oy + ky) * pitch + j0),
                            dz.as_ptr().add(oy * ow * LANES),
                        )
                    };
                    for ox in 0..ow {
                        // SAFETY: as above
                        let dv = unsafe { simd::load(dz_row.add(ox * LANES)) };
                        let taps = unsafe { window.add(ox * d.c) };
                        for (t, acc) in acc.iter_mut().enumerate() {
                            // SAFETY: as above
                            let a = V::splat(unsafe { *taps.add(t) });
                            *acc = simd::mul_add(a, dv, *acc);
                        }
                        in_block += 1;
                        if in_block == kc {
                            add_block(out, &acc, first);
                            (acc, in_block, first) = ([V::ZERO; T], 0, false);
                        }
                    }
                }
            }
            if in_block > 0 || first {
                add_block(out, &acc, first);
            }
        }
    }
}

/// `out = acc` for the first block, `out = acc + out` for the others.
fn add_block<const T: usize>(out: &mut [f32], acc: &[V; T], first: bool) {
    for (o, &a) in out.chunks_exact_mut(LANES).zip(acc) {
        let sum = if first {
            a
        } else {
            a + V::from(<[f32; LANES]>::try_from(&*o).expect("LANES floats"))
        };
        o.copy_from_slice(&sum.to_array());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{ImageShape, Padding};
    use crate::matrix::test_number as value;

    fn geometry(h: usize, w: usize, c: usize, (kh, kw): (usize, usize), padding: Padding) -> Conv2dGeometry {
        let input = ImageShape::new(1, h, w, c).unwrap();
        Conv2dGeometry::new(input, kh, kw, LANES, padding).unwrap()
    }

    /// Both kernels against scalar loops that sum in the GEMM's order, bit
    /// for bit, on `rows` images.
    fn check(h: usize, w: usize, c: usize, kernel: (usize, usize), kc: usize, act: Activation) {
        let g = geometry(h, w, c, kernel, Padding::Valid);
        let name = format!("{h}x{w}x{c} kernel {kernel:?} kc {kc} {act:?}");
        let direct = Direct::new(&g);
        let wide_registers = simd::VECTOR_REGISTERS >= 32;
        assert_eq!(
            direct.is_some(),
            wide_registers,
            "{name}: a direct tile with 32 vector registers"
        );
        let Some(d) = direct else {
            return;
        };
        let (kh, kw) = kernel;
        let (oh, ow, run, rows) = (h - kh + 1, w - kw + 1, kw * c, 3);
        let x: Vec<f32> = (0..rows * h * w * c).map(|i| value(i, h * w + c)).collect();
        let wt: Vec<f32> = (0..kh * run * LANES).map(|i| value(i, 7 * c + kh)).collect();
        let b: Vec<f32> = (0..LANES).map(|i| value(i, 3)).collect();
        let dz: Vec<f32> = (0..rows * oh * ow * LANES).map(|i| value(i, 11 + w)).collect();
        let image = |r: usize| &x[r * h * w * c..][..h * w * c];
        let window =
            |r: usize, oy: usize, ox: usize, ky: usize, j: usize| image(r)[(oy + ky) * w * c + ox * c + j];
        if d.forward() {
            for r in 0..rows {
                let mut z = vec![f32::NAN; oh * ow * LANES];
                direct_forward(&mut z, image(r), (&wt, &b, act), &d);
                for (pos, got) in z.chunks_exact(LANES).enumerate() {
                    let (oy, ox) = (pos / ow, pos % ow);
                    let mut sums = [0.0f32; LANES];
                    for (f, s) in sums.iter_mut().enumerate() {
                        for ky in 0..kh {
                            for j in 0..run {
                                let x = window(r, oy, ox, ky, j);
                                *s = crate::simd::mul_add_f32(x, wt[(ky * run + j) * LANES + f], *s);
                            }
                        }
                    }
                    let want = simd::activate(
                        act,
                        V::from(sums) + V::from(<[f32; LANES]>::try_from(&b[..]).unwrap()),
                    );
                    for (f, (g, w)) in got.iter().zip(want.to_array()).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{name}: image {r} position {pos} filter {f}: {g} vs {w}"
                        );
                    }
                }
            }
        }
        if d.weight_gradient() {
            let mut dw = vec![f32::NAN; kh * run * LANES];
            let pair = |r: usize| (image(r), &dz[r * oh * ow * LANES..][..oh * ow * LANES]);
            direct_weight_gradient(&mut dw, &pair, rows, kc, &d);
            for ky in 0..kh {
                for j in 0..run {
                    for f in 0..LANES {
                        let (mut total, mut block, mut count) = (None::<f32>, 0.0f32, 0);
                        for r in 0..rows {
                            for pos in 0..oh * ow {
                                let (oy, ox) = (pos / ow, pos % ow);
                                let x = window(r, oy, ox, ky, j);
                                block =
                                    crate::simd::mul_add_f32(x, dz[(r * oh * ow + pos) * LANES + f], block);
                                count += 1;
                                if count == kc {
                                    total = Some(total.map_or(block, |t| block + t));
                                    (block, count) = (0.0, 0);
                                }
                            }
                        }
                        if count > 0 {
                            total = Some(total.map_or(block, |t| block + t));
                        }
                        let (got, want) = (dw[(ky * run + j) * LANES + f], total.unwrap());
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{name}: dW tap ({ky}, {j}) filter {f}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn direct_kernels_sum_as_the_gemm_on_every_tile() {
        // LeNet-5's second layer, then every forward tile (output widths 4..12
        // and twice that), every taps tile, blocks of kc that end mid-image
        check(14, 14, 6, (5, 5), 493, Activation::Relu);
        check(14, 14, 6, (5, 5), 37, Activation::Identity);
        let acts = [
            Activation::Relu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Identity,
        ];
        for (k, &(p, _)) in FORWARD_TILES.iter().enumerate() {
            let act = acts[k % acts.len()];
            check(p + 2, p + 2, 2 + k % 7, (3, 3), 1 + 5 * k, act);
            check(p + 4, 2 * p + 1, 3, (5, 2), 1000, act);
        }
        for (k, &t) in GRADIENT_TILES.iter().enumerate() {
            // kw·c = t: one tile per window row
            let (kw, c) = if t % 3 == 0 { (3, t / 3) } else { (2, t / 2) };
            check(7, 9, c, (2, kw), 5 + k, acts[k % acts.len()]);
        }
    }

    #[test]
    fn direct_kernels_take_only_their_shapes() {
        let lenet = Direct::new(&geometry(14, 14, 6, (5, 5), Padding::Valid));
        if simd::VECTOR_REGISTERS >= 32 {
            let d = lenet.expect("LeNet-5's second layer");
            assert_eq!((d.positions, d.taps), (Some(10), Some(15)));
        } else {
            assert!(lenet.is_none(), "no direct kernels without 32 vector registers");
            return;
        }
        // padding read, one channel, an output width with no tile (13, a
        // prime above 12) and window rows with no taps tile (kw·c = 1·7; 2·7 has one)
        assert!(Direct::new(&geometry(14, 14, 6, (5, 5), Padding::Same)).is_none());
        assert!(Direct::new(&geometry(14, 14, 1, (5, 5), Padding::Valid)).is_none());
        let d = Direct::new(&geometry(15, 13, 7, (3, 1), Padding::Valid));
        assert!(d.is_none(), "13 output columns, 7 taps a row: {d:?}");
        let d = Direct::new(&geometry(15, 14, 7, (3, 2), Padding::Valid)).unwrap();
        assert_eq!((d.positions, d.taps), (None, Some(14)));
        let input = ImageShape::new(1, 10, 10, 4).unwrap();
        let eight = Conv2dGeometry::new(input, 3, 3, 8, Padding::Valid).unwrap();
        assert!(Direct::new(&eight).is_none(), "8 filters are half a vector");
    }
}
