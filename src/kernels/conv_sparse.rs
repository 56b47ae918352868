//! A convolution's weight gradient `dW = im2col(x)ᵀ·dz` when `dz` is
//! mostly zeros: a layer followed by a 2x2 max-pool gets an error at one
//! position in four (fewer after a ReLU: 8% in Keras' mnist_cnn, 16% in
//! LeNet-5). The GEMM multiplies every zero.
//!
//! Here, filter by filter: `dWᵀ`'s row for filter `f` (`kh` window rows of
//! `kw·c` numbers) is summed in registers while the positions whose error
//! for `f` is not zero add their windows of `x`, times that error. To find
//! them, each block of positions' errors is first turned filter-major
//! (`dzᵀ`), so one vector compare covers `LANES` positions.
//!
//! The sums are the GEMM's: for each weight, the positions in order (images
//! in order, each row by row), in blocks of `kc` positions each summed from
//! zero and then added to the sum of the blocks before it. A zero term
//! leaves a sum as it is (never `-0`), so the bits are the same.
//!
//! Measured (one 64-image shard, 1 thread, Zen 5, AVX-512,
//! `cargo bench --bench cnn -- --layers`): Keras' second layer 6.3 -> 4.4
//! ms against the GEMM; LeNet-5's second 0.14 -> 0.13 ms against
//! [`super::conv_direct`]. Summing each filter's row in memory, position
//! by position, was slower: 3.7-5.5 ms and 0.27-0.45 ms (every non-zero a
//! read-modify-write of the same sums, a chain through store forwarding).
//!
//! In training, a convolution whose output a max-pool reads takes neither
//! this nor the GEMM in AVX-512 and AVX2 builds: its backward pass starts
//! from the pool's error ([`super::conv_pooled`]). This kernel serves the
//! layer's own backward pass (`nn::conv::conv2d_backward`), as for a
//! convolution that drops out.

use crate::gemm::transpose_into;
use crate::geometry::Conv2dGeometry;
use crate::matrix::{MatMut, MatRef};
use crate::simd::{self, LANES, V};

/// The most vectors a filter's row of sums may take: they stay in
/// registers, with room for the window's vectors (24 with AVX-512's 32
/// registers, 8 with AVX2's 16, 4 with SSE2's 8).
const MAX_SUMS: usize = if simd::VECTOR_REGISTERS > 12 {
    simd::VECTOR_REGISTERS - 8
} else {
    4
};

/// The floats [`sparse_weight_gradient`] needs in its working space for a
/// convolution `g` with depth blocks of `kc` positions: a block of `dzᵀ`
/// and the filters' sums (each window row padded to whole vectors).
pub fn sparse_work_len(g: &Conv2dGeometry, kc: usize) -> usize {
    g.filters() * (kc + g.kernel_h() * padded_run(g))
}

/// Whether [`sparse_weight_gradient`] takes `g`: windows inside the image
/// and a filter's sums fit in registers.
pub fn sparse_gradient_fits(g: &Conv2dGeometry) -> bool {
    let (input, output) = (g.input(), g.output());
    g.pad_top() == 0
        && g.pad_left() == 0
        && output.height() + g.kernel_h() - 1 <= input.height()
        && output.width() + g.kernel_w() - 1 <= input.width()
        && g.kernel_h() * padded_run(g) / LANES <= MAX_SUMS
}

/// A window row's numbers, `kw·c`, rounded up to whole vectors.
fn padded_run(g: &Conv2dGeometry) -> usize {
    (g.kernel_w() * g.input().channels()).div_ceil(LANES) * LANES
}

/// `dw = dW`, `(kh·kw·c, filters)` (overwritten):
/// `dW[(ky·kw + kx)·c + ci][f] = Σ_images Σ_positions x[(oy+ky)·w·c + (ox+kx)·c + ci]·dz[(oy·ow + ox)·filters + f]`,
/// for a convolution `g` that [`sparse_gradient_fits`], summed in blocks of
/// `kc` positions. `work` holds [`sparse_work_len`] floats. `image(r)`
/// gives image `r` (`h·w·c`); `dz: (rows·oh·ow, filters)`, the images'
/// errors one after the other. Returns the multiply-adds done.
///
/// # Panics
/// If `g` does not fit, `kc` is 0, or a size is wrong.
pub fn sparse_weight_gradient<'a>(
    dw: &mut [f32],
    work: &mut [f32],
    image: &dyn Fn(usize) -> &'a [f32],
    dz: MatRef,
    g: &Conv2dGeometry,
    kc: usize,
) -> usize {
    assert!(sparse_gradient_fits(g), "sparse_weight_gradient: shape");
    let vectors = g.kernel_h() * padded_run(g) / LANES;
    macro_rules! with_sums {
        ($($a:literal)*) => {
            match vectors {
                $($a => filter_major::<$a>(dw, work, image, dz, g, kc),)*
                _ => unreachable!("at most MAX_SUMS vectors"),
            }
        };
    }
    with_sums!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24)
}

/// [`sparse_weight_gradient`] with each filter's sums in `A` vectors.
fn filter_major<'a, const A: usize>(
    dw: &mut [f32],
    work: &mut [f32],
    image: &dyn Fn(usize) -> &'a [f32],
    dz: MatRef,
    g: &Conv2dGeometry,
    kc: usize,
) -> usize {
    let (input, output) = (g.input(), g.output());
    let (h, w, c) = (input.height(), input.width(), input.channels());
    let (kh, filters) = (g.kernel_h(), g.filters());
    let (oh, ow) = (output.height(), output.width());
    let (run, padded) = (g.kernel_w() * c, padded_run(g));
    let per_image = oh * ow;
    assert!(
        dw.len() == filters * kh * run
            && work.len() >= sparse_work_len(g, kc)
            && kc > 0
            && dz.cols() == filters
            && dz.rows().is_multiple_of(per_image),
        "sparse_weight_gradient: sizes"
    );
    // each sum vector a: where it reads in a window (from its top-left number), and how many floats
    let mut at = [0usize; A];
    let mut len = [0usize; A];
    for a in 0..A {
        let (ky, j) = (a / (padded / LANES), (a % (padded / LANES)) * LANES);
        at[a] = ky * w * c + j;
        len[a] = LANES.min(run - j);
    }
    let (dz_t, total) = work[..sparse_work_len(g, kc)].split_at_mut(filters * kc);
    let mut madds = 0;
    let total_positions = dz.rows();
    for (b, q0) in (0..total_positions).step_by(kc).enumerate() {
        let block = kc.min(total_positions - q0);
        // dzᵀ of the block, (filters, block): a vector compare then covers LANES positions
        let dz_t = &mut dz_t[..filters * block];
        transpose_into(
            MatMut::from_slice(dz_t, filters, block),
            dz.rows_range(q0, q0 + block),
        );
        for f in 0..filters {
            let column = &dz_t[f * block..][..block];
            let mut acc = [V::ZERO; A];
            // the block's positions image by image
            let mut q = q0;
            while q < q0 + block {
                let (r, p0) = (q / per_image, q % per_image);
                let p1 = per_image.min(p0 + q0 + block - q);
                let x = image(r);
                assert!(x.len() == h * w * c, "sparse_weight_gradient: image {r}: size");
                for i0 in (p0..p1).step_by(LANES) {
                    let n = LANES.min(p1 - i0);
                    // SAFETY: positions i0..i0 + n of image r are entries q - p0 + i0.. of the block
                    let values = unsafe { simd::load_partial(column.as_ptr().add(q - p0 + i0 - q0), n) };
                    // the non-zero errors (NaN counts as non-zero, as in the GEMM's sums)
                    let mut nonzero = !values.simd_eq(V::ZERO).to_bitmask() & ((1u32 << n) - 1);
                    madds += nonzero.count_ones() as usize * kh * run;
                    while nonzero != 0 {
                        let p = i0 + nonzero.trailing_zeros() as usize;
                        nonzero &= nonzero - 1;
                        let e = V::splat(column[q - p0 + p - q0]);
                        let (oy, ox) = (p / ow, p % ow);
                        let window = ((oy * w) + ox) * c;
                        // every read stays inside x: the window's last number is at
                        // window + (kh-1)·w·c + run - 1 < h·w·c (windows inside the image)
                        for a in 0..A {
                            // SAFETY: at[a] + len[a] <= (kh-1)·w·c + run
                            let xv = unsafe { simd::load_partial(x.as_ptr().add(window + at[a]), len[a]) };
                            acc[a] = simd::mul_add(xv, e, acc[a]);
                        }
                    }
                }
                q += p1 - p0;
            }
            let sums = &mut total[f * A * LANES..][..A * LANES];
            for (s, &a) in sums.chunks_exact_mut(LANES).zip(&acc) {
                let t = if b == 0 {
                    a
                } else {
                    a + V::from(<[f32; LANES]>::try_from(&*s).expect("LANES floats"))
                };
                s.copy_from_slice(&t.to_array());
            }
        }
    }
    // dW[(ky·kw·c + j)][f] from the padded rows of dWᵀ
    for f in 0..filters {
        for ky in 0..kh {
            for j in 0..run {
                dw[(ky * run + j) * filters + f] = total[f * A * LANES + ky * padded + j];
            }
        }
    }
    madds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{ImageShape, Padding};
    use crate::matrix::test_number as value;

    /// Against the GEMM's sums written out (every position, zeros
    /// included, blocks of kc): the same bits, on sparse and dense errors.
    #[test]
    fn sparse_weight_gradient_sums_as_the_gemm() {
        for (h, w, c, (kh, kw), filters) in [
            (14, 14, 6, (5, 5), 16),
            (8, 7, 3, (3, 2), 5),
            (6, 6, 32, (3, 3), 20),
        ] {
            let g = Conv2dGeometry::new(
                ImageShape::new(1, h, w, c).unwrap(),
                kh,
                kw,
                filters,
                Padding::Valid,
            )
            .unwrap();
            if !sparse_gradient_fits(&g) {
                // a filter's sums take more registers than this build has (AVX2: LeNet-5's)
                let wide_registers = simd::VECTOR_REGISTERS >= 32;
                assert!(!wide_registers, "{h}x{w}x{c} {kh}x{kw}: fits with 32 registers");
                continue;
            }
            let (oh, ow, taps, rows) = (h - kh + 1, w - kw + 1, kh * kw * c, 3);
            let x: Vec<f32> = (0..rows * h * w * c).map(|i| value(i, 1)).collect();
            for keep in [1, 4, 11] {
                let dz: Vec<f32> = (0..rows * oh * ow * filters)
                    .map(|i| if i % keep == 0 { value(i, 2) } else { 0.0 })
                    .collect();
                let image = |r: usize| {
                    (
                        &x[r * h * w * c..][..h * w * c],
                        &dz[r * oh * ow * filters..][..oh * ow * filters],
                    )
                };
                let pixels = |r: usize| image(r).0;
                let dz_view = MatRef::from_slice(&dz, rows * oh * ow, filters);
                for kc in [1, 7, 1000] {
                    let (mut got, mut work) = (
                        vec![f32::NAN; filters * taps],
                        vec![f32::NAN; sparse_work_len(&g, kc)],
                    );
                    let madds = sparse_weight_gradient(&mut got, &mut work, &pixels, dz_view, &g, kc);
                    assert_eq!(
                        madds,
                        dz.iter().filter(|&&e| e != 0.0).count() * taps,
                        "multiply-adds"
                    );
                    for f in 0..filters {
                        for t in 0..taps {
                            let (ky, j) = (t / (kw * c), t % (kw * c));
                            let (mut total, mut sum, mut count) = (0.0f32, 0.0f32, 0);
                            for r in 0..rows {
                                let (xr, dzr) = image(r);
                                for pos in 0..oh * ow {
                                    let (oy, ox) = (pos / ow, pos % ow);
                                    let x = xr[((oy + ky) * w + ox) * c + j];
                                    sum = crate::simd::mul_add_f32(x, dzr[pos * filters + f], sum);
                                    count += 1;
                                    if count % kc == 0 {
                                        total = if count == kc { sum } else { sum + total };
                                        sum = 0.0;
                                    }
                                }
                            }
                            if count % kc != 0 {
                                total = if count < kc { sum } else { sum + total };
                            }
                            let got = got[t * filters + f];
                            let name =
                                format!("{h}x{w}x{c} {kh}x{kw}x{filters} 1 in {keep} kc {kc}: dW[{t}][{f}]");
                            assert_eq!(got.to_bits(), total.to_bits(), "{name}: {got} vs {total}");
                        }
                    }
                }
            }
        }
    }
}
