// Shared by the GEMM benches (included with `include!`): the peer libraries, called the same way.

/// A product `C (m x n, row-major) = A·B` of strided views: element `(i, q)`
/// of A at `a + i·ars + q·acs`, element `(q, j)` of B at `b + q·brs + j·bcs`.
#[derive(Clone, Copy)]
struct Strides {
    m: usize,
    n: usize,
    k: usize,
    ars: usize,
    acs: usize,
    brs: usize,
    bcs: usize,
}

/// The `gemm` crate: `C = A·B` on `threads` threads (1: `Parallelism::None`,
/// else `Parallelism::Rayon(threads)`).
///
/// # Safety
/// `a` and `b` reach every element the strides describe; `c` holds `m·n` floats.
unsafe fn gemm_crate(s: Strides, a: *const f32, b: *const f32, c: &mut [f32], threads: usize) {
    assert!(c.len() >= s.m * s.n, "gemm_crate: C too small");
    let par = if threads == 1 {
        ::gemm::Parallelism::None
    } else {
        ::gemm::Parallelism::Rayon(threads)
    };
    // SAFETY: the caller vouches for `a` and `b`; `c` was checked. `gemm`
    // computes dst = alpha·dst + beta·lhs·rhs and does not read dst when
    // `read_dst` is false (its column stride first, then its row stride).
    unsafe {
        ::gemm::gemm(
            s.m,
            s.n,
            s.k,
            c.as_mut_ptr(),
            1,
            s.n as isize,
            false,
            a,
            s.acs as isize,
            s.ars as isize,
            b,
            s.bcs as isize,
            s.brs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `matrixmultiply`: `C = A·B` on one thread (it is built without its
/// `threading` feature).
///
/// # Safety
/// As [`gemm_crate`].
unsafe fn matrixmultiply(s: Strides, a: *const f32, b: *const f32, c: &mut [f32]) {
    assert!(c.len() >= s.m * s.n, "matrixmultiply: C too small");
    // SAFETY: as above; with beta = 0 C is only written.
    unsafe {
        matrixmultiply::sgemm(
            s.m,
            s.k,
            s.n,
            1.0,
            a,
            s.ars as isize,
            s.acs as isize,
            b,
            s.brs as isize,
            s.bcs as isize,
            0.0,
            c.as_mut_ptr(),
            s.n as isize,
            1,
        )
    }
}
