//! The scalar micro-kernel: the register-tile idea in plain Rust.
//!
//! `ab` is the `MR x NR` block of C being accumulated. For each step `p` of
//! `k`, the packed A micro-panel supplies one column `A~[0..MR, p]` and the
//! packed B micro-panel one row `B~[p, 0..NR]`; their outer product is added
//! to `ab` (a rank-1 update). After `kc` steps `ab` holds the tile of
//! `A·B` for this block of `k`, and is merged into C once.
//!
//! It sums in exactly the order of the SIMD kernel, with the same
//! multiply-add ([`mul_add_f32`]: fused exactly when the SIMD kernel's is, on
//! every architecture, see [`crate::simd::FUSED_MULTIPLY_ADD`]), so it
//! produces the same bits for identity and ReLU epilogues; sigmoid and tanh
//! use the scalar `f32` functions instead of the vector approximations.

use super::TileOut;
use crate::simd::mul_add_f32;

/// The `MR x NR` scalar micro-kernel on a packed A micro-panel.
/// See [`super::KernelFn`] for the contract.
///
/// # Safety
/// As [`super::KernelFn`].
pub unsafe fn micro_kernel<const MR: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    out: &TileOut,
) {
    // SAFETY: a packed panel is the strided case with strides (1, MR).
    unsafe { micro_kernel_strided::<MR, NR>(kc, a, 1, MR, b, out) }
}

/// The same, reading `A[i, p]` in place at `a + i·ra + p·pa`.
///
/// # Safety
/// As [`super::StridedKernelFn`].
pub unsafe fn micro_kernel_strided<const MR: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    out: &TileOut,
) {
    // SAFETY: the caller guarantees element (i, p) of A is readable.
    let a_at = |i: usize, p: usize| unsafe { *a.add(i * ra + p * pa) };
    // SAFETY: forwarded from the caller.
    unsafe { tile::<MR, NR>(kc, a_at, b, out) }
}

/// The same, reading `A[i, p]` in place at `rows[i] + offs[p]`.
///
/// # Safety
/// As [`super::GatherKernelFn`].
pub unsafe fn micro_kernel_gather<const MR: usize, const NR: usize>(
    kc: usize,
    rows: *const *const f32,
    offs: *const usize,
    b: *const f32,
    out: &TileOut,
) {
    // SAFETY: the caller guarantees MR row pointers, kc offsets and element (i, p) readable.
    let a_at = |i: usize, p: usize| unsafe { *(*rows.add(i)).add(*offs.add(p)) };
    // SAFETY: forwarded from the caller.
    unsafe { tile::<MR, NR>(kc, a_at, b, out) }
}

/// The register tile: `kc` rank-1 updates with `A[i, p] = a_at(i, p)`, then the store.
///
/// # Safety
/// `b` readable for `NR · kc` floats; `out` as for [`super::KernelFn`].
#[inline(always)]
unsafe fn tile<const MR: usize, const NR: usize>(
    kc: usize,
    a_at: impl Fn(usize, usize) -> f32,
    b: *const f32,
    out: &TileOut,
) {
    // SAFETY: the caller guarantees `NR · kc` readable floats of B~.
    let b = unsafe { std::slice::from_raw_parts(b, NR * kc) };
    let mut ab = [[0.0f32; NR]; MR];
    for (p, b_row) in b.chunks_exact(NR).enumerate() {
        for (i, ab_row) in ab.iter_mut().enumerate() {
            let a_ip = a_at(i, p);
            for (ab_ij, &b_pj) in ab_row.iter_mut().zip(b_row) {
                *ab_ij = mul_add_f32(a_ip, b_pj, *ab_ij);
            }
        }
    }
    for (i, ab_row) in ab.iter().enumerate().take(out.rows) {
        for (j, &ab_ij) in ab_row.iter().enumerate().take(out.cols) {
            // SAFETY: (i, j) is inside the valid part of the tile.
            unsafe {
                let c = out.c.add(i * out.rs_c + j);
                let mut x = ab_ij;
                if out.beta != 0.0 {
                    x += out.beta * *c;
                }
                if let Some((bias, act)) = out.epilogue {
                    x = act.f(x + *bias.add(j));
                    if let Some(mask) = &out.dropout {
                        x *= mask.factor(i, j);
                    }
                }
                *c = x;
            }
        }
    }
}
