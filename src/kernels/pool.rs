//! 2x2, stride-2 max-pooling over images stored as rows (one example's
//! `(height, width, channels)` image per row, NHWC): the forward pass keeps
//! each tile's largest number and where it was (its index in the row, as
//! `u32`), the backward pass routes each gradient to that place.
//!
//! Ties go to the first of the tile in row-major order (top-left,
//! top-right, bottom-left, bottom-right: a later number must be strictly
//! larger), exactly as [`crate::teach::pool`]. For an odd height or width
//! the last row or column is read by no tile and gets a zero gradient.

use crate::activation::Activation;
use crate::kernels::DropoutMask;
use crate::matrix::Element;
use crate::simd::{LANES, V};
use std::any::TypeId;

/// One image: `a[(py·(w/2) + px)·c + ci] = max` of the 2x2 tile at
/// `(2py, 2px)` of `x` (scaled by `x_scale`), `argmax[..]` its index in `x`.
///
/// Shapes: `x: h·w·c`, `a, argmax: (h/2)·(w/2)·c`.
pub fn maxpool2d_forward_image<T: Element>(
    a: &mut [f32],
    argmax: &mut [u32],
    x: &[T],
    x_scale: f32,
    (h, w, c): (usize, usize, usize),
) {
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(x.len(), h * w * c, "maxpool2d_forward_image: x");
    assert_eq!(a.len(), oh * ow * c, "maxpool2d_forward_image: a");
    assert_eq!(argmax.len(), a.len(), "maxpool2d_forward_image: argmax");
    assert!(
        x.len() <= u32::MAX as usize,
        "maxpool2d_forward_image: an image of more than 2^32 numbers"
    );
    // (the vector path carries indices in f32 lanes: exact below 2^24)
    if TypeId::of::<T>() == TypeId::of::<f32>() && x.len() < 1 << 24 {
        // SAFETY: T is f32 (same TypeId), so the slice is the same memory as `[f32]`.
        let x = unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()) };
        #[cfg(target_feature = "avx512f")]
        if c < LANES {
            return forward_image_f32_narrow(a, argmax, x, x_scale, (h, w, c));
        }
        return forward_image_f32_vectors(a, argmax, x, x_scale, (h, w, c));
    }
    for py in 0..oh {
        for px in 0..ow {
            let o = (py * ow + px) * c;
            let tl = ((2 * py) * w + 2 * px) * c;
            let corners = [tl, tl + c, tl + w * c, tl + w * c + c];
            let (a, argmax) = (&mut a[o..o + c], &mut argmax[o..o + c]);
            // whole vectors of channels: compare and select lane-wise (same rule:
            // a later corner replaces the best only if strictly larger)
            let vectors = if TypeId::of::<T>() == TypeId::of::<f32>() {
                c / LANES * LANES
            } else {
                0
            };
            for c0 in (0..vectors).step_by(LANES) {
                let load = |at: usize| {
                    let lanes: [f32; LANES] = std::array::from_fn(|l| x[at + l].to_f32());
                    V::from(lanes)
                };
                let mut value = load(corners[0] + c0);
                let mut best = V::splat(corners[0] as f32);
                for &corner in &corners[1..] {
                    let v = load(corner + c0);
                    let larger = v.simd_gt(value);
                    value = larger.select(v, value);
                    best = larger.select(V::splat(corner as f32), best);
                }
                let (value, best) = ((value * V::splat(x_scale)).to_array(), best.to_array());
                for l in 0..LANES {
                    a[c0 + l] = value[l];
                    argmax[c0 + l] = best[l] as u32 + (c0 + l) as u32;
                }
            }
            for ci in vectors..c {
                let mut best = corners[0] + ci;
                let mut value = x[best].to_f32();
                for &corner in &corners[1..] {
                    let v = x[corner + ci].to_f32();
                    if v > value {
                        (best, value) = (corner + ci, v);
                    }
                }
                a[ci] = x_scale * value;
                argmax[ci] = best as u32;
            }
        }
    }
}

/// Lane by lane, the largest of a tile's four corners (given in order as
/// `(values, indices as f32)`) and its index: a later corner wins only if
/// strictly larger, so ties go to the first.
#[inline(always)]
fn largest_corner(corners: [(V, V); 4]) -> (V, V) {
    let (mut value, mut best) = corners[0];
    for &(v, index) in &corners[1..] {
        let larger = v.simd_gt(value);
        value = larger.select(v, value);
        best = larger.select(index, best);
    }
    (value, best)
}

/// [`maxpool2d_forward_image`] for `f32` images: the same lane-wise
/// compare and select (a later corner wins only if strictly larger), a
/// vector of channels at a time, the last `c mod LANES` channels with
/// partial (masked) loads and stores. One 64-image shard, 1 thread, Zen 5:
/// Keras' pool (24x24x64) 1.66 -> 0.77 ms, LeNet-5's first (28x28x6)
/// 0.21 -> 0.10 ms.
fn forward_image_f32_vectors(
    a: &mut [f32],
    argmax: &mut [u32],
    x: &[f32],
    x_scale: f32,
    (h, w, c): (usize, usize, usize),
) {
    let (oh, ow) = (h / 2, w / 2);
    assert!(
        x.len() >= h * w * c && a.len() >= oh * ow * c && argmax.len() >= oh * ow * c,
        "forward_image_f32_vectors: sizes"
    );
    let lane: V = V::from(std::array::from_fn::<f32, LANES, _>(|l| l as f32));
    let scale = V::splat(x_scale);
    let (xs, out) = (x.as_ptr(), a.as_mut_ptr());
    for py in 0..oh {
        for px in 0..ow {
            let o = (py * ow + px) * c;
            let tl = ((2 * py) * w + 2 * px) * c;
            let corners = [tl, tl + c, tl + w * c, tl + w * c + c];
            for c0 in (0..c).step_by(LANES) {
                let n = LANES.min(c - c0);
                // SAFETY: every corner + c0 + n <= h·w·c <= x.len() (a tile of the image)
                let load = |at: usize| unsafe {
                    if n == LANES {
                        crate::simd::load(xs.add(at + c0))
                    } else {
                        crate::simd::load_partial(xs.add(at + c0), n)
                    }
                };
                let (value, best) = largest_corner(corners.map(|at| (load(at), V::splat(at as f32))));
                // SAFETY: o + c0 + n <= oh·ow·c <= a.len() (asserted above)
                unsafe {
                    if n == LANES {
                        crate::simd::store(out.add(o + c0), value * scale)
                    } else {
                        crate::simd::store_partial(out.add(o + c0), value * scale, n)
                    }
                };
                // indices below 2^24 (the caller's condition) are exact in f32
                let index = (best + lane + V::splat(c0 as f32)).fast_trunc_int().to_array();
                for (d, &i) in argmax[o + c0..o + c0 + n].iter_mut().zip(&index) {
                    *d = i as u32;
                }
            }
        }
    }
}

/// [`maxpool2d_forward_image`] for `f32` images of fewer channels than a
/// vector has lanes (LeNet-5's 6), along each output row as one run of
/// `(w/2)·c` floats: `S = c·⌊16/c⌋` outputs (whole positions) at a time.
/// Their corners lie in the next `2S <= 32` floats of the input rows, so
/// two loads per input row and one `vpermt2ps` per corner gather them
/// (top-left of output lane `l`: input float `l + ⌊l/c⌋·c`, top-right `+c`).
/// Then the same compare and select as the other paths, in the same corner
/// order. (The per-position path used 6 of 16 lanes: LeNet-5's first pool,
/// one 64-image shard, Zen 5 with AVX-512, 0.09-0.13 ms; now 0.033 ms.)
#[cfg(target_feature = "avx512f")]
fn forward_image_f32_narrow(
    a: &mut [f32],
    argmax: &mut [u32],
    x: &[f32],
    x_scale: f32,
    (h, w, c): (usize, usize, usize),
) {
    use crate::simd::{load_partial, permute2, store_partial};
    let (oh, ow) = (h / 2, w / 2);
    assert!(
        0 < c && c < LANES && x.len() >= h * w * c && a.len() >= oh * ow * c && argmax.len() >= oh * ow * c,
        "forward_image_f32_narrow: sizes"
    );
    let step = c * (LANES / c);
    let left: [u32; LANES] = std::array::from_fn(|l| (l + l / c * c).min(31) as u32);
    let right: [u32; LANES] = std::array::from_fn(|l| (l + l / c * c + c).min(31) as u32);
    let (left_f, right_f) = (left.map(|i| i as f32), right.map(|i| i as f32));
    let (left_f, right_f) = (V::from(left_f), V::from(right_f));
    let scale = V::splat(x_scale);
    let row_len = ow * c;
    for py in 0..oh {
        let (top, bottom) = (2 * py * w * c, (2 * py + 1) * w * c);
        for j0 in (0..row_len).step_by(step) {
            let n = step.min(row_len - j0);
            // the corners of outputs j0..j0+n: input floats 2·j0 .. 2·(j0+n) of each row
            let span = 2 * n;
            let pair = |row: usize| {
                let at = row + 2 * j0;
                // SAFETY: at + span <= row + 2·ow·c <= row + w·c <= h·w·c <= x.len()
                unsafe {
                    (
                        load_partial(x.as_ptr().add(at), span.min(LANES)),
                        load_partial(x.as_ptr().add(at + LANES.min(span)), span.saturating_sub(LANES)),
                    )
                }
            };
            let ((t0, t1), (b0, b1)) = (pair(top), pair(bottom));
            let base = |row: usize| V::splat((row + 2 * j0) as f32);
            let corners = [
                (permute2(t0, &left, t1), base(top) + left_f),
                (permute2(t0, &right, t1), base(top) + right_f),
                (permute2(b0, &left, b1), base(bottom) + left_f),
                (permute2(b0, &right, b1), base(bottom) + right_f),
            ];
            let (value, best) = largest_corner(corners);
            let o = py * row_len + j0;
            // indices below 2^24 (the caller's condition) are exact in f32
            let index: V = int_bits(best.fast_trunc_int());
            // SAFETY: o + n <= oh·ow·c <= a.len(), argmax.len() (asserted above)
            unsafe {
                store_partial(a.as_mut_ptr().add(o), value * scale, n);
                store_partial(argmax.as_mut_ptr().add(o).cast::<f32>(), index, n);
            }
        }
    }
}

/// The bits of 16 `i32` lanes as a [`V`] (to store them with a masked store).
#[cfg(target_feature = "avx512f")]
#[inline(always)]
fn int_bits(v: wide::i32x16) -> V {
    // SAFETY: i32x16 and f32x16 are both 64 bytes of plain data
    unsafe { core::mem::transmute::<wide::i32x16, V>(v) }
}

/// One image's backward pass: `dx[argmax[o]] = da[o] · m[o]` (the tiles do
/// not overlap; `m`: the dropout factors of row `row` of the layer's output,
/// if the forward pass dropped), every other element of `dx` 0.
///
/// Shapes: `dx: h·w·c`; `da, argmax: (h/2)·(w/2)·c`.
pub fn maxpool2d_backward_image(
    dx: &mut [f32],
    da: &[f32],
    argmax: &[u32],
    dropout: Option<(&DropoutMask, usize)>,
) {
    assert_eq!(da.len(), argmax.len(), "maxpool2d_backward_image: argmax");
    dx.fill(0.0);
    match dropout {
        None => {
            for (&g, &i) in da.iter().zip(argmax) {
                dx[i as usize] = g;
            }
        }
        Some((mask, row)) => {
            // the factors LANES at a time: the row's hash once per vector, not once per element
            for (c, (g, i)) in da.chunks(LANES).zip(argmax.chunks(LANES)).enumerate() {
                let f = mask.factors(row, c * LANES).to_array();
                for ((&g, &i), &f) in g.iter().zip(i).zip(&f) {
                    dx[i as usize] = g * f;
                }
            }
        }
    }
}

/// One image's backward pass through a max-pool and the activation of the
/// layer below it at once: `dz[argmax[o]] = da[o] · f'(a[o])`, every other
/// element of `dz` 0. The same numbers as [`maxpool2d_backward_image`]
/// followed by `dz = dx ⊙ f'(x)` on the pool's input `x` (the pool copies
/// each maximum, so `a[o] = x[argmax[o]]`; elsewhere `dx` is 0), without
/// reading `x` or writing `dx`.
///
/// Shapes: `dz: h·w·c`; `da, argmax, a: (h/2)·(w/2)·c`.
pub fn maxpool2d_activation_backward_image(
    dz: &mut [f32],
    da: &[f32],
    argmax: &[u32],
    a: &[f32],
    act: Activation,
) {
    assert!(
        da.len() == argmax.len() && a.len() == argmax.len(),
        "maxpool2d_activation_backward_image: da, argmax, a"
    );
    dz.fill(0.0);
    for ((&g, &i), &a) in da.iter().zip(argmax).zip(a) {
        dz[i as usize] = g * act.df_from_output(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector `f32` path against the rule written out per element, on
    /// channels that are whole vectors or not (masked tails: LeNet-5's 6),
    /// and values with many ties.
    #[test]
    fn vector_path_keeps_the_first_of_ties() {
        for (h, w, c) in [
            (5, 6, 2 * LANES),
            (4, 4, LANES),
            (7, 3, 4 * LANES),
            (6, 5, 6),
            (5, 4, LANES + 3),
            (3, 3, 1),
            // fewer channels than lanes (the AVX-512 run of whole positions), odd sizes
            (28, 28, 6),
            (7, 9, 2),
            (5, 11, 3),
            (9, 7, 5),
            (4, 6, 7),
            (6, 3, 8),
            (3, 5, LANES - 1),
            (2, 2, 1),
        ] {
            let x: Vec<f32> = (0..h * w * c).map(|k| ((k * 7 + k / 5) % 3) as f32).collect();
            let n = (h / 2) * (w / 2) * c;
            let (mut a, mut argmax) = (vec![f32::NAN; n], vec![u32::MAX; n]);
            maxpool2d_forward_image(&mut a, &mut argmax, &x, 0.5, (h, w, c));
            for py in 0..h / 2 {
                for px in 0..w / 2 {
                    for ci in 0..c {
                        let o = (py * (w / 2) + px) * c + ci;
                        let mut best = ((2 * py) * w + 2 * px) * c + ci;
                        for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                            let at = ((2 * py + dy) * w + 2 * px + dx) * c + ci;
                            if x[at] > x[best] {
                                best = at;
                            }
                        }
                        assert_eq!(argmax[o] as usize, best, "{h}x{w}x{c}: output {o}");
                        assert_eq!(a[o], 0.5 * x[best], "{h}x{w}x{c}: output {o}");
                    }
                }
            }
        }
    }

    /// The backward pass against its rule (`dx[argmax[o]] = da[o]·m[o]`,
    /// every other number 0), with and without dropout, on the shapes of
    /// the forward test: ties, odd sizes, narrow and wide channels; `dx`
    /// starts as garbage, so a number left unwritten fails.
    #[test]
    fn backward_routes_each_gradient_to_its_argmax() {
        for (h, w, c) in [
            (6, 5, 6),
            (28, 28, 6),
            (7, 9, 2),
            (5, 11, 3),
            (9, 7, 5),
            (4, 6, 7),
            (3, 5, LANES - 1),
            (2, 2, 1),
            (4, 4, LANES),
            (5, 4, LANES + 3),
        ] {
            let x: Vec<f32> = (0..h * w * c).map(|k| ((k * 7 + k / 5) % 3) as f32).collect();
            let n = (h / 2) * (w / 2) * c;
            let (mut a, mut argmax) = (vec![0.0; n], vec![0; n]);
            maxpool2d_forward_image(&mut a, &mut argmax, &x, 1.0, (h, w, c));
            let da: Vec<f32> = (0..n).map(|o| o as f32 * 0.25 - 3.0).collect();
            let mask = DropoutMask::new(0.5, 7, 3, 1);
            for dropout in [None, Some((&mask, 2))] {
                let mut dx = vec![f32::NAN; h * w * c];
                maxpool2d_backward_image(&mut dx, &da, &argmax, dropout);
                let mut want = vec![0.0f32; h * w * c];
                for o in 0..n {
                    let f = dropout.map_or(1.0, |(m, row)| m.factor(row, o));
                    want[argmax[o] as usize] = da[o] * f;
                }
                for (i, (&got, &want)) in dx.iter().zip(&want).enumerate() {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{h}x{w}x{c}, dropout {}: dx[{i}]",
                        dropout.is_some()
                    );
                }
            }
        }
    }
}
