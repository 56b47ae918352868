//! The SIMD vector type simdnet compiles in, what it maps to on this target,
//! the one definition of fused multiply-add, and vectorised activations.
//!
//! [`V`] is `wide::f32x16` when the build enables AVX-512F (one zmm register)
//! and `wide::f32x8` otherwise: one ymm register with AVX/AVX2, two xmm
//! registers on a baseline x86-64 build (SSE2), two 128-bit NEON registers on
//! aarch64, and plain scalar code where `wide` has no SIMD (32-bit ARM).
//! Both the GEMM micro-kernels and the fused element-wise kernels are written
//! against `V` and [`LANES`]; [`ISA`], [`REGISTER_LANES`] and
//! [`TARGET_FEATURES`] say what the hardware does with it.
//!
//! ## Fused multiply-add, and where results differ
//! [`FUSED_MULTIPLY_ADD`] says whether this build rounds `a·b + c` once
//! (x86/x86-64 with the `fma` feature; aarch64, whose NEON has `vfmaq_f32`
//! and whose scalar unit has `fmadd`) or twice (x86-64 without `fma`, e.g.
//! `-C target-cpu=x86-64`; 32-bit ARM; anything else). Every kernel, scalar
//! and SIMD, multiplies-and-adds through [`mul_add`] / [`mul_add_f32`], so all
//! kernels of one build agree bit for bit, and builds that fuse (x86-64 with
//! FMA, with AVX2 or AVX-512, and aarch64) train bit-identical models for a
//! seed. Builds without fused multiply-add give the same results up to
//! rounding, not the same bits.

use crate::activation::Activation;

pub mod fma_width;
pub mod interleave;

/// The kernels' vector: 16 `f32` lanes with AVX-512F, else 8 (see the module docs).
#[cfg(target_feature = "avx512f")]
pub type V = wide::f32x16;
/// The kernels' vector: 8 `f32` lanes without AVX-512F (see the module docs).
#[cfg(not(target_feature = "avx512f"))]
pub type V = wide::f32x8;

/// `f32` lanes in one [`V`].
pub const LANES: usize = core::mem::size_of::<V>() / core::mem::size_of::<f32>();

/// The width of the kernels' lane-wise partial sums on every build, so
/// that 8- and 16-lane builds add the same numbers in the same order and
/// train the same bits: a kernel that sums across positions or filters
/// keeps `SUM_LANES` partial sums (one vector with AVX-512, [`SUM_VECTORS`]
/// with 8 lanes) and combines them in lane order. (With only `LANES` sums,
/// an 8-lane build trained LeNet-5 to other bits than AVX-512.)
pub const SUM_LANES: usize = 16;
/// Vectors of [`SUM_LANES`] numbers: 1 with AVX-512, 2 with 8 lanes.
pub const SUM_VECTORS: usize = SUM_LANES / LANES;
const _: () = assert!(
    SUM_LANES.is_multiple_of(LANES),
    "SUM_LANES must be a multiple of LANES"
);

/// Whether `a·b + c` is fused (rounded once) in every kernel of this build:
/// x86/x86-64 with the `fma` target feature, or aarch64 (NEON, always on
/// there). Everywhere else it is rounded twice (see the module docs).
pub const FUSED_MULTIPLY_ADD: bool = cfg!(any(
    all(
        any(target_arch = "x86_64", target_arch = "x86"),
        target_feature = "fma"
    ),
    all(target_arch = "aarch64", target_feature = "neon")
));

/// A copy of a kernel's accumulators in memory, written one vector at a
/// time: for the code after the kernel's loop that reads them by reference
/// or by an index known only at run time. Handing over the array itself
/// that way may tie it to memory for the whole loop: depending on how the
/// compiler splits the crate into codegen units (one unit, or LTO), LLVM
/// then stores every accumulator after each multiply-add (measured on Zen
/// 5, AVX-512: 784-512-512-10 trained 1.76-1.88x and 1.89-1.91x slower,
/// LeNet-5 1.19x and 1.33x; see docs/PERFORMANCE.md, "an eighth session"). Written
/// from the registers into a tile of its own, the array never leaves them.
#[inline(always)]
pub fn spill<const R: usize, const C: usize>(acc: [[V; C]; R]) -> [[V; C]; R] {
    let mut tile = core::mem::MaybeUninit::<[[V; C]; R]>::uninit();
    let p = tile.as_mut_ptr().cast::<V>();
    for (i, row) in acc.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            // SAFETY: element (i, j) of the tile, written once
            unsafe { p.add(i * C + j).write(x) };
        }
    }
    // SAFETY: every element was written above
    unsafe { tile.assume_init() }
}

/// `a·b + c` per lane: fused when [`FUSED_MULTIPLY_ADD`], else a multiply
/// then an add (each rounded), exactly as [`mul_add_f32`] does per element.
#[inline(always)]
pub fn mul_add(a: V, b: V, c: V) -> V {
    if FUSED_MULTIPLY_ADD {
        // wide fuses here: `vfmadd` with FMA on x86, `vfmaq_f32` on aarch64.
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `a·b + c` for one `f32`, rounded exactly like one lane of [`mul_add`].
#[inline(always)]
pub fn mul_add_f32(a: f32, b: f32, c: f32) -> f32 {
    if FUSED_MULTIPLY_ADD {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The instruction set [`V`]'s arithmetic compiles to on this target:
/// `AVX-512`, `AVX2`, `AVX`, `SSE2`, `NEON`, or `none` (scalar code).
pub const ISA: &str = if cfg!(target_feature = "avx512f") {
    "AVX-512"
} else if cfg!(all(
    any(target_arch = "x86_64", target_arch = "x86"),
    target_feature = "avx2"
)) {
    "AVX2"
} else if cfg!(all(
    any(target_arch = "x86_64", target_arch = "x86"),
    target_feature = "avx"
)) {
    "AVX"
} else if cfg!(all(
    any(target_arch = "x86_64", target_arch = "x86"),
    target_feature = "sse"
)) {
    "SSE2"
} else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
    "NEON"
} else {
    "none"
};

/// `f32` lanes of one hardware vector register as [`V`] uses it: 16 (zmm),
/// 8 (ymm), 4 (xmm or NEON q register), or 1 when [`ISA`] is `none`.
pub const REGISTER_LANES: usize = match ISA.as_bytes() {
    b"AVX-512" => 16,
    b"AVX2" | b"AVX" => 8,
    b"SSE2" | b"NEON" => 4,
    _ => 1,
};

/// Hardware registers (or scalar values) that hold one [`V`].
pub const REGISTERS_PER_VECTOR: usize = LANES / REGISTER_LANES;

/// How many [`V`] values the vector register file holds at once: 32 with
/// AVX-512 (zmm); 16 with AVX/AVX2 (ymm) and on aarch64 (32 q registers,
/// two per `V`); 8 with SSE2 (16 xmm, two per `V`); 16 assumed elsewhere.
pub const VECTOR_REGISTERS: usize = match ISA.as_bytes() {
    b"AVX-512" => 32,
    b"AVX2" | b"AVX" => 16,
    b"SSE2" => 8,
    b"NEON" => 16,
    _ => 16,
};

/// The SIMD-related target features of this architecture, as `(name, on)`
/// in this build (x86: SSE2, AVX, AVX2, FMA, AVX-512F; ARM: NEON).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub const TARGET_FEATURES: &[(&str, bool)] = &[
    ("sse2", cfg!(target_feature = "sse2")),
    ("avx", cfg!(target_feature = "avx")),
    ("avx2", cfg!(target_feature = "avx2")),
    ("fma", cfg!(target_feature = "fma")),
    ("avx512f", cfg!(target_feature = "avx512f")),
];
/// The SIMD-related target features of this architecture, as `(name, on)`
/// in this build (x86: SSE2, AVX, AVX2, FMA, AVX-512F; ARM: NEON).
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
pub const TARGET_FEATURES: &[(&str, bool)] = &[("neon", cfg!(target_feature = "neon"))];
/// The SIMD-related target features of this architecture (none known here).
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
pub const TARGET_FEATURES: &[(&str, bool)] = &[];

/// Asks the CPU to bring `data` into L1 ahead of its use (one software
/// prefetch per 64-byte line it touches, [`lines_touched`] of them; a hint:
/// no fault, no effect on any value). x86-64 only; elsewhere it does
/// nothing. For data needed within a few rows' work; what is needed a
/// whole step later goes to L2 ([`prefetch_l2`]).
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<{ std::arch::x86_64::_MM_HINT_T0 }, T>(data);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Asks the CPU to bring `data` into L2 (and not L1) ahead of its use, as
/// [`prefetch`] does into L1: for data needed a step later. Rows gathered
/// from a shuffled data set are scattered over all of it (47 MB for MNIST):
/// without a hint each one waits a full memory latency; with it, several
/// are in flight. Hinted into L1 instead, a step's rows (57 KiB per core
/// for the workshop network's 128 x 392-pixel half, more than L1d's 32
/// KiB) mostly did not stay: converting 128 such rows hinted a step
/// before took 6.5-8.1 µs (medians of two runs) hinted into L1, 3.9-4.5
/// µs into L2, and 3.3 µs for rows just read (Zen 4, AVX-512, 16 lanes).
#[inline(always)]
pub fn prefetch_l2<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<{ std::arch::x86_64::_MM_HINT_T1 }, T>(data);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// One `prefetch` with hint `HINT` per line `data` touches.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_lines<const HINT: i32, T>(data: &[T]) {
    let p = data.as_ptr().cast::<i8>();
    // From the line holding the first byte: a slice that does not start
    // on a line touches one line more than its length in lines.
    let first = p.wrapping_sub(p as usize % 64);
    for line in 0..lines_touched(data) {
        // SAFETY: `_mm_prefetch` needs SSE, part of every x86-64 CPU; a
        // prefetch never faults, whatever the address, and changes no memory.
        unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(first.wrapping_add(64 * line)) };
    }
}

/// How many 64-byte lines `data` touches (0 for an empty slice).
#[inline(always)]
pub fn lines_touched<T>(data: &[T]) -> usize {
    let (start, bytes) = (data.as_ptr() as usize, std::mem::size_of_val(data));
    if bytes == 0 {
        return 0;
    }
    (start + bytes - 1) / 64 - start / 64 + 1
}

/// Asks the CPU to bring the line holding `p` into L1 (a hint: `p` may
/// point anywhere, it is never read; no effect on any value). x86-64 only.
#[inline(always)]
pub fn prefetch_line(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `_mm_prefetch` needs SSE, part of every x86-64 CPU; a
        // prefetch never faults, whatever the address, and changes no memory.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Loads `LANES` floats from `p` (any alignment).
///
/// # Safety
/// `p..p + LANES` must be readable `f32`s.
#[inline(always)]
pub unsafe fn load(p: *const f32) -> V {
    // SAFETY: the caller guarantees LANES readable floats; `V` is plain data
    // of exactly that size, and `read_unaligned` has no alignment demand.
    unsafe { core::ptr::read_unaligned(p.cast::<V>()) }
}

/// Stores `v` to `p..p + LANES` (any alignment).
///
/// # Safety
/// `p..p + LANES` must be writable `f32`s.
#[inline(always)]
pub unsafe fn store(p: *mut f32, v: V) {
    // SAFETY: as in `load`, for writing.
    unsafe { core::ptr::write_unaligned(p.cast::<V>(), v) }
}

/// With AVX2: the lane mask of the first `n <= 8` lanes (all ones in each
/// lane below `n`), for `vmaskmovps`.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    not(target_feature = "avx512f")
))]
#[inline(always)]
fn first_lanes_avx2(n: usize) -> core::arch::x86_64::__m256i {
    use core::arch::x86_64::{_mm256_cmpgt_epi32, _mm256_set1_epi32, _mm256_setr_epi32};
    // SAFETY: the intrinsics need only AVX2, which this build has
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// Loads the first `n <= LANES` floats from `p`, zero in the other lanes.
///
/// # Safety
/// `p..p + n` must be readable.
#[inline(always)]
pub unsafe fn load_partial(p: *const f32, n: usize) -> V {
    debug_assert!(n <= LANES);
    #[cfg(target_feature = "avx512f")]
    {
        use core::arch::x86_64::_mm512_maskz_loadu_ps;
        let mask = ((1u32 << n) - 1) as u16;
        // SAFETY: the masked load touches only the first `n` floats, which the
        // caller guarantees readable (masked-off lanes never fault); `V` is
        // `f32x16`, the same 64 bytes as `__m512`.
        unsafe { core::mem::transmute::<core::arch::x86_64::__m512, V>(_mm512_maskz_loadu_ps(mask, p)) }
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    ))]
    {
        use core::arch::x86_64::{__m256, _mm256_maskload_ps};
        // SAFETY: `vmaskmovps` reads only the first `n` floats, which the caller
        // guarantees readable (masked-off lanes never fault); `V` is `f32x8`,
        // the same 32 bytes as `__m256`.
        unsafe { core::mem::transmute::<__m256, V>(_mm256_maskload_ps(p, first_lanes_avx2(n))) }
    }
    #[cfg(not(any(
        target_feature = "avx512f",
        all(target_arch = "x86_64", target_feature = "avx2")
    )))]
    {
        let mut buf = [0.0f32; LANES];
        // SAFETY: the caller guarantees `n` readable floats; `buf` has LANES >= n.
        unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n) };
        V::from(buf)
    }
}

/// Loads the first `n <= LANES` floats from `p`, `fill` in the other lanes.
///
/// # Safety
/// `p..p + n` must be readable.
#[inline(always)]
pub unsafe fn load_partial_or(p: *const f32, n: usize, fill: f32) -> V {
    debug_assert!(n <= LANES);
    #[cfg(target_feature = "avx512f")]
    {
        use core::arch::x86_64::{_mm512_mask_loadu_ps, _mm512_set1_ps};
        let mask = ((1u32 << n) - 1) as u16;
        // SAFETY: as in `load_partial`: only the first `n` floats are read.
        unsafe {
            core::mem::transmute::<core::arch::x86_64::__m512, V>(_mm512_mask_loadu_ps(
                _mm512_set1_ps(fill),
                mask,
                p,
            ))
        }
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    ))]
    {
        use core::arch::x86_64::{
            __m256, _mm256_blendv_ps, _mm256_castsi256_ps, _mm256_maskload_ps, _mm256_set1_ps,
        };
        let mask = first_lanes_avx2(n);
        // SAFETY: as in `load_partial`: only the first `n` floats are read.
        unsafe {
            let loaded = _mm256_maskload_ps(p, mask);
            let v = _mm256_blendv_ps(_mm256_set1_ps(fill), loaded, _mm256_castsi256_ps(mask));
            core::mem::transmute::<__m256, V>(v)
        }
    }
    #[cfg(not(any(
        target_feature = "avx512f",
        all(target_arch = "x86_64", target_feature = "avx2")
    )))]
    {
        let mut buf = [fill; LANES];
        // SAFETY: the caller guarantees `n` readable floats; `buf` has LANES >= n.
        unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n) };
        V::from(buf)
    }
}

/// Stores the first `n <= LANES` lanes of `v` to `p`; memory past them is untouched.
///
/// # Safety
/// `p..p + n` must be writable.
#[inline(always)]
pub unsafe fn store_partial(p: *mut f32, v: V, n: usize) {
    debug_assert!(n <= LANES);
    #[cfg(target_feature = "avx512f")]
    {
        use core::arch::x86_64::_mm512_mask_storeu_ps;
        let mask = ((1u32 << n) - 1) as u16;
        // SAFETY: the masked store writes only the first `n` floats, which the
        // caller guarantees writable; `V` is `f32x16`, the same 64 bytes as `__m512`.
        unsafe { _mm512_mask_storeu_ps(p, mask, core::mem::transmute::<V, core::arch::x86_64::__m512>(v)) }
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    ))]
    {
        use core::arch::x86_64::{__m256, _mm256_maskstore_ps};
        // SAFETY: `vmaskmovps` writes only the first `n` floats, which the caller
        // guarantees writable; `V` is `f32x8`, the same 32 bytes as `__m256`.
        unsafe { _mm256_maskstore_ps(p, first_lanes_avx2(n), core::mem::transmute::<V, __m256>(v)) }
    }
    #[cfg(not(any(
        target_feature = "avx512f",
        all(target_arch = "x86_64", target_feature = "avx2")
    )))]
    {
        let buf = v.to_array();
        // SAFETY: the caller guarantees `n` writable floats; `buf` has LANES >= n.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p, n) };
    }
}

/// [`store_partial`] for results that are not read back at once (a GEMM's
/// edge tiles): with AVX2, a full vector is one plain store and a partial
/// one at most three (4, 2 and 1 floats) instead of `vmaskmovps`, whose
/// store form AMD's Zen 3 runs in microcode: 3.7 ns a store against 0.93
/// (docs/PERFORMANCE.md, "Partial stores on Zen 3"). Not for a sum kept in
/// memory and read back at once: the pooled convolution's input gradient,
/// which adds into its windows with a partial load and a partial store,
/// took twice as long on Zen 3 with these stores (probably because a load
/// of floats that several smaller stores are still writing must wait for
/// them). Elsewhere it is [`store_partial`].
///
/// # Safety
/// `p..p + n` must be writable.
#[inline(always)]
pub unsafe fn store_partial_plain(p: *mut f32, v: V, n: usize) {
    debug_assert!(n <= LANES);
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    ))]
    {
        use core::arch::x86_64::{
            __m256, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm_castps_si128, _mm_movehl_ps,
            _mm_store_ss, _mm_storel_epi64, _mm_storeu_ps,
        };
        // SAFETY: the caller guarantees `n` writable floats from `p`, and
        // each store below writes only floats `p + at .. p + at + w` with
        // `at + w <= n`; `V` is `f32x8`, the same 32 bytes as `__m256`.
        unsafe {
            let v = core::mem::transmute::<V, __m256>(v);
            if n == LANES {
                return store(p, core::mem::transmute::<__m256, V>(v));
            }
            let (mut x, mut at) = (_mm256_castps256_ps128(v), 0);
            if n >= 4 {
                _mm_storeu_ps(p, x);
                (x, at) = (_mm256_extractf128_ps::<1>(v), 4);
            }
            if n - at >= 2 {
                _mm_storel_epi64(p.add(at).cast(), _mm_castps_si128(x));
                (x, at) = (_mm_movehl_ps(x, x), at + 2);
            }
            if n > at {
                _mm_store_ss(p.add(at), x);
            }
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    )))]
    // SAFETY: the caller's guarantee, passed on.
    unsafe {
        store_partial(p, v, n)
    }
}

/// `out[l] = (a ++ b)[idx[l]]`: lanes picked from the 32 of two vectors
/// (`vpermt2ps`; `idx[l] < 32`).
#[cfg(target_feature = "avx512f")]
#[inline(always)]
pub fn permute2(a: V, idx: &[u32; 16], b: V) -> V {
    use core::arch::x86_64::{__m512, _mm512_loadu_si512, _mm512_permutex2var_ps};
    // SAFETY: V is f32x16 under AVX-512, the same 64 bytes as __m512; `idx`
    // is 16 readable u32s; the intrinsics need only AVX-512F, which this build has
    unsafe {
        let i = _mm512_loadu_si512(idx.as_ptr().cast());
        core::mem::transmute::<__m512, V>(_mm512_permutex2var_ps(
            core::mem::transmute::<V, __m512>(a),
            i,
            core::mem::transmute::<V, __m512>(b),
        ))
    }
}

/// For [`compress`] with AVX2, and `gemm::sparse_rows`' packing of
/// non-zero bytes (AVX-512 builds have `vcompressps` for both): for each
/// 8-bit mask, the lanes it selects in order, then lane 0 repeated (a
/// permutation for `vpermps`).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    not(target_feature = "avx512f")
))]
pub(crate) const COMPRESS_8: [[u32; 8]; 256] = {
    let mut table = [[0u32; 8]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut lane, mut n) = (0, 0);
        while lane < 8 {
            if mask >> lane & 1 != 0 {
                table[mask][n] = lane as u32;
                n += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// The lanes of `v` whose bit is set in `mask`, moved to the front in
/// order; the other lanes 0 (`vcompressps` into a register with AVX-512,
/// a table of `vpermps` permutations with AVX2).
#[inline(always)]
pub fn compress(v: V, mask: u32) -> V {
    #[cfg(all(target_feature = "avx2", not(target_feature = "avx512f")))]
    {
        use core::arch::x86_64::{__m256, _mm256_loadu_si256, _mm256_permutevar8x32_ps};
        let mask = mask & 0xff;
        let kept = V::from(core::array::from_fn::<f32, LANES, _>(|l| {
            if l < mask.count_ones() as usize {
                f32::from_bits(u32::MAX)
            } else {
                0.0
            }
        }));
        // SAFETY: V is f32x8 with AVX2, the same 32 bytes as __m256; the table
        // row is 8 readable u32s; the intrinsics need only AVX2, which this build has
        let moved = unsafe {
            let idx = _mm256_loadu_si256(COMPRESS_8[mask as usize].as_ptr().cast());
            core::mem::transmute::<__m256, V>(_mm256_permutevar8x32_ps(
                core::mem::transmute::<V, __m256>(v),
                idx,
            ))
        };
        moved & kept
    }
    #[cfg(target_feature = "avx512f")]
    {
        use core::arch::x86_64::{__m512, _mm512_maskz_compress_ps};
        // SAFETY: V is f32x16 under AVX-512, the same 64 bytes as __m512; the
        // intrinsic needs only AVX-512F, which this build has
        unsafe {
            core::mem::transmute::<__m512, V>(_mm512_maskz_compress_ps(
                mask as u16,
                core::mem::transmute::<V, __m512>(v),
            ))
        }
    }
    #[cfg(not(any(target_feature = "avx512f", target_feature = "avx2")))]
    {
        let (lanes, mut out, mut n) = (v.to_array(), [0.0f32; LANES], 0);
        for (l, &x) in lanes.iter().enumerate() {
            if mask >> l & 1 != 0 {
                out[n] = x;
                n += 1;
            }
        }
        V::from(out)
    }
}

/// `e^x` per lane: wide's range-reduced polynomial (about 1 ulp).
#[inline(always)]
pub fn exp(x: V) -> V {
    x.exp()
}

/// `act.f(z)` per lane.
///
/// Identity and ReLU are exact (bit-identical to [`Activation::f`]). Sigmoid
/// `1 / (1 + e^-z)` and tanh `sign(z) · (-m) / (2 + m)` with `m = e^(-2|z|) - 1`
/// use the polynomial `exp`/`exp_m1` and agree with the scalar versions to a
/// few ulp (`tests/kernels.rs`: `vector_activations_match_scalar`).
#[inline(always)]
pub fn activate(act: Activation, z: V) -> V {
    match act {
        Activation::Identity => z,
        // `fast_max` is `maxps(z, 0)`: returns 0 when z is NaN, like `f32::max`.
        Activation::Relu => z.fast_max(V::ZERO),
        Activation::Sigmoid => V::ONE / (V::ONE + (-z).exp()),
        Activation::Tanh => {
            let m = (z.abs() * V::splat(-2.0)).exp_m1();
            let t = -m / (V::splat(2.0) + m);
            // tanh is odd: give |tanh| the sign of z (sign bit of z, magnitude of t).
            let sign = V::splat(-0.0);
            (z & sign) | t
        }
    }
}

/// `act.df_from_output(a)` per lane, exact.
#[inline(always)]
pub fn derivative_from_output(act: Activation, a: V) -> V {
    match act {
        Activation::Identity => V::ONE,
        Activation::Relu => a.simd_gt(V::ZERO) & V::ONE,
        Activation::Sigmoid => a * (V::ONE - a),
        Activation::Tanh => V::ONE - a * a,
    }
}

/// Whether the CPU running this process is an Intel one (`GenuineIntel`);
/// false off x86-64. For the choices measured on one vendor's cores only
/// (`gemm::loops::reads_wide_in_place`).
pub fn intel() -> bool {
    vendor() == Some(*b"GenuineIntel")
}

/// The 12 bytes of the vendor string of `cpuid` leaf 0 (registers ebx, edx,
/// ecx in that order); `None` off x86-64. Read once per process: `cpuid`
/// is slow in a virtual machine (the hypervisor answers it), and the GEMM
/// asks on every call.
fn vendor() -> Option<[u8; 12]> {
    static VENDOR: std::sync::OnceLock<Option<[u8; 12]>> = std::sync::OnceLock::new();
    *VENDOR.get_or_init(read_vendor)
}

fn read_vendor() -> Option<[u8; 12]> {
    // (Miri, which checks the unsafe code, cannot run `cpuid`.)
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // cpuid exists on every x86-64 CPU, with leaf 0.
        let leaf = std::arch::x86_64::__cpuid(0);
        let mut v = [0u8; 12];
        v[0..4].copy_from_slice(&leaf.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&leaf.edx.to_le_bytes());
        v[8..12].copy_from_slice(&leaf.ecx.to_le_bytes());
        return Some(v);
    }
    #[allow(unreachable_code)]
    None
}

/// The environment variable that replaces the CPU's detected SIMD features in
/// [`build_vs_cpu_warning`]: a comma-separated list such as `avx2,fma` (x86:
/// `sse2`, `avx`, `avx2`, `fma`, `avx512f`; ARM: `neon`). For tests and for
/// checking what a user on another CPU would see.
pub const ASSUME_CPU_FEATURES_ENV: &str = "SIMDNET_ASSUME_CPU_FEATURES";

/// The SIMD features of [`TARGET_FEATURES`] that the CPU running this process
/// has (`std::arch::is_x86_feature_detected!`; on aarch64 NEON is always
/// there), or those named in [`ASSUME_CPU_FEATURES_ENV`] when it is set.
pub fn cpu_features() -> Vec<String> {
    if let Some(list) = std::env::var_os(ASSUME_CPU_FEATURES_ENV) {
        return list
            .to_string_lossy()
            .split(',')
            .map(|f| f.trim().to_ascii_lowercase())
            .filter(|f| !f.is_empty())
            .collect();
    }
    detected_features().into_iter().map(String::from).collect()
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn detected_features() -> Vec<&'static str> {
    let mut v = Vec::new();
    if std::arch::is_x86_feature_detected!("sse2") {
        v.push("sse2");
    }
    if std::arch::is_x86_feature_detected!("avx") {
        v.push("avx");
    }
    if std::arch::is_x86_feature_detected!("avx2") {
        v.push("avx2");
    }
    if std::arch::is_x86_feature_detected!("fma") {
        v.push("fma");
    }
    if std::arch::is_x86_feature_detected!("avx512f") {
        v.push("avx512f");
    }
    v
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
fn detected_features() -> Vec<&'static str> {
    // aarch64 always has NEON; elsewhere this build uses what it was built with.
    TARGET_FEATURES
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect()
}

/// The SIMD instruction set a feature set gives `wide`, with its `f32` lanes
/// per register: `AVX-512 (16 lanes)`, `AVX2 (8 lanes)`, `AVX (8 lanes)`,
/// `SSE2 (4 lanes)`, `NEON (4 lanes)`, or `no SIMD`.
pub fn isa_of(features: &[&str]) -> &'static str {
    let has = |f: &str| features.contains(&f);
    if has("avx512f") {
        "AVX-512 (16 lanes)"
    } else if has("avx2") {
        "AVX2 (8 lanes)"
    } else if has("avx") {
        "AVX (8 lanes)"
    } else if has("sse2") {
        "SSE2 (4 lanes)"
    } else if has("neon") {
        "NEON (4 lanes)"
    } else {
        "no SIMD"
    }
}

/// The fix [`build_vs_cpu_warning`] gives: build on (and for) the CPU that runs it.
pub const NATIVE_BUILD_FIX: &str = "rebuild for this CPU with RUSTFLAGS=\"-C target-cpu=native\" cargo build --release \
(the repository's .cargo/config.toml does this), or cargo install simdnet --config 'build.rustflags=[\"-C\",\"target-cpu=native\"]'; \
a crate using simdnet as a library: put rustflags = [\"-C\", \"target-cpu=native\"] under [build] in its .cargo/config.toml";

/// Compares the SIMD features a binary was built with (`built`, as in
/// [`TARGET_FEATURES`]) with those of the CPU (`cpu`): `None` when they agree,
/// else one line saying what differs and how to fix it. A CPU with features
/// the build leaves unused runs simdnet slower than it could (a portable build
/// or a dependent crate built without `target-cpu=native`); a build using
/// features the CPU lacks may stop with an illegal instruction.
pub fn build_vs_cpu_warning(built: &[(&str, bool)], cpu: &[&str]) -> Option<String> {
    let on: Vec<&str> = built.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    let unused: Vec<&str> = built
        .iter()
        .filter(|(f, on)| !on && cpu.contains(f))
        .map(|(f, _)| *f)
        .collect();
    let lacking: Vec<&str> = on.iter().copied().filter(|f| !cpu.contains(f)).collect();
    let (build, cpu_isa) = (isa_of(&on), isa_of(cpu));
    if !lacking.is_empty() {
        return Some(format!(
            "warning: this simdnet was built for {build} with {}, which this CPU ({cpu_isa}) lacks: it may stop with an illegal instruction; {NATIVE_BUILD_FIX}",
            lacking.join(", ")
        ));
    }
    if !unused.is_empty() {
        return Some(format!(
            "warning: this simdnet was built for {build} but this CPU also has {} ({cpu_isa}): it runs slower than it could; {NATIVE_BUILD_FIX}",
            unused.join(", ")
        ));
    }
    None
}

/// [`build_vs_cpu_warning`] for this binary on this CPU ([`cpu_features`]).
pub fn native_warning() -> Option<String> {
    let cpu = cpu_features();
    let cpu: Vec<&str> = cpu.iter().map(String::as_str).collect();
    build_vs_cpu_warning(TARGET_FEATURES, &cpu)
}

/// Prints [`native_warning`] to stderr, once per process: a program that
/// trains through the library ([`crate::nn::Fit::run`]) learns that it was
/// built without the SIMD its CPU has, and how to fix it, the way the
/// command line's `train` and `bench` tell their users.
pub fn warn_once_if_not_native() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(warning) = native_warning() {
            eprintln!("{warning}");
        }
    });
}

#[cfg(test)]
mod build_check_tests {
    use super::*;

    const AVX2_BUILD: &[(&str, bool)] = &[
        ("sse2", true),
        ("avx", true),
        ("avx2", true),
        ("fma", true),
        ("avx512f", false),
    ];
    const PORTABLE_BUILD: &[(&str, bool)] = &[
        ("sse2", true),
        ("avx", false),
        ("avx2", false),
        ("fma", false),
        ("avx512f", false),
    ];
    const ZEN3: &[&str] = &["sse2", "avx", "avx2", "fma"];
    const ZEN4: &[&str] = &["sse2", "avx", "avx2", "fma", "avx512f"];

    #[test]
    fn a_native_build_says_nothing() {
        assert_eq!(build_vs_cpu_warning(AVX2_BUILD, ZEN3), None);
        assert_eq!(build_vs_cpu_warning(&[("neon", true)], &["neon"]), None);
    }

    #[test]
    fn a_portable_build_on_zen3_names_what_it_leaves_unused_and_the_fix() {
        let w = build_vs_cpu_warning(PORTABLE_BUILD, ZEN3).unwrap();
        assert!(
            w.starts_with("warning: this simdnet was built for SSE2 (4 lanes) but this CPU also has avx, avx2, fma (AVX2 (8 lanes)): it runs slower than it could; rebuild for this CPU with RUSTFLAGS=\"-C target-cpu=native\""),
            "{w}"
        );
        assert!(w.contains("cargo install simdnet --config"), "{w}");
        assert!(w.contains(".cargo/config.toml"), "{w}");
        assert!(!w.contains('\n'), "one line");
    }

    #[test]
    fn an_avx2_build_on_zen4_misses_avx512() {
        let w = build_vs_cpu_warning(AVX2_BUILD, ZEN4).unwrap();
        assert!(
            w.contains("built for AVX2 (8 lanes) but this CPU also has avx512f (AVX-512 (16 lanes))"),
            "{w}"
        );
    }

    #[test]
    fn an_avx512_build_on_zen3_may_crash() {
        let built: Vec<(&str, bool)> = ZEN4.iter().map(|f| (*f, true)).collect();
        let w = build_vs_cpu_warning(&built, ZEN3).unwrap();
        assert!(
            w.contains("built for AVX-512 (16 lanes) with avx512f, which this CPU (AVX2 (8 lanes)) lacks"),
            "{w}"
        );
    }

    #[test]
    fn isa_names() {
        assert_eq!(isa_of(ZEN4), "AVX-512 (16 lanes)");
        assert_eq!(isa_of(ZEN3), "AVX2 (8 lanes)");
        assert_eq!(isa_of(&["neon"]), "NEON (4 lanes)");
        assert_eq!(isa_of(&[]), "no SIMD");
    }
}

#[cfg(test)]
mod compress_tests {
    use super::*;

    /// `compress` against its rule written out, for every mask of the
    /// lanes (and bits above them, which it ignores), on distinct lanes
    /// including the bits of small integers (as `conv_pooled` moves them).
    #[test]
    fn compress_moves_the_selected_lanes_to_the_front_in_order() {
        let lanes: [f32; LANES] = core::array::from_fn(|l| {
            if l % 2 == 0 {
                l as f32 + 0.5
            } else {
                f32::from_bits(l as u32 + 3)
            }
        });
        let v = V::from(lanes);
        let above = !((1u32 << LANES) - 1);
        for mask in 0..1u32 << LANES {
            let got = compress(v, mask | above).to_array();
            let want: Vec<f32> = (0..LANES)
                .filter(|l| mask >> l & 1 != 0)
                .map(|l| lanes[l])
                .collect();
            for (l, g) in got.iter().enumerate() {
                let w = want.get(l).copied().unwrap_or(0.0);
                assert_eq!(g.to_bits(), w.to_bits(), "mask {mask:#b}: lane {l}");
            }
        }
    }
}

#[cfg(test)]
mod partial_tests {
    use super::*;

    /// The partial loads and stores against their rule for every count:
    /// the first `n` lanes from memory, the rest zero or `fill`; a store
    /// writes the first `n` numbers and leaves the ones after them.
    #[test]
    fn partial_loads_and_stores_touch_the_first_n_numbers_only() {
        let source: Vec<f32> = (0..LANES).map(|l| l as f32 * 1.5 - 4.0).collect();
        for n in 0..=LANES {
            // SAFETY: `source` has LANES >= n readable floats
            let (zeros, filled) = unsafe {
                (
                    load_partial(source.as_ptr(), n),
                    load_partial_or(source.as_ptr(), n, -7.0),
                )
            };
            let (zeros, filled) = (zeros.to_array(), filled.to_array());
            for (l, &s) in source.iter().enumerate() {
                let want = if l < n { s } else { 0.0 };
                assert_eq!(zeros[l], want, "load_partial, n {n}: lane {l}");
                let want = if l < n { s } else { -7.0 };
                assert_eq!(filled[l], want, "load_partial_or, n {n}: lane {l}");
            }
            type Store = unsafe fn(*mut f32, V, usize);
            let stores: [(&str, Store); 2] = [
                ("store_partial", store_partial),
                ("store_partial_plain", store_partial_plain),
            ];
            for (name, store) in stores {
                let mut out = vec![f32::NAN; LANES + 1];
                // SAFETY: `out` has LANES + 1 >= n writable floats
                unsafe {
                    store(
                        out.as_mut_ptr(),
                        V::from(core::array::from_fn::<f32, LANES, _>(|l| source[l])),
                        n,
                    )
                };
                for (l, &o) in out.iter().enumerate() {
                    if l < n {
                        assert_eq!(o, source[l], "{name}, n {n}: number {l}");
                    } else {
                        assert!(o.is_nan(), "{name}, n {n}: number {l} was written");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod prefetch_tests {
    use super::*;

    /// The lines a slice touches, counted from its first byte's line: a
    /// row of a shuffled data set rarely starts on a line (MNIST's are 784
    /// bytes apart), and its last bytes are then on one line more.
    #[test]
    fn lines_touched_counts_from_the_line_of_the_first_byte() {
        #[repr(C, align(64))]
        struct Lines([u8; 512]);
        let buf = Lines([0; 512]);
        let b = &buf.0;
        assert_eq!(lines_touched(&b[..0]), 0);
        assert_eq!(lines_touched(&b[..1]), 1);
        assert_eq!(lines_touched(&b[..64]), 1);
        assert_eq!(lines_touched(&b[..65]), 2);
        assert_eq!(lines_touched(&b[63..65]), 2);
        assert_eq!(lines_touched(&b[64..128]), 1);
        // 392 bytes (half an MNIST row): 7 lines from a line's start, 8 from byte 60.
        assert_eq!(lines_touched(&b[..392]), 7);
        assert_eq!(lines_touched(&b[60..452]), 8);
        let floats = [0f32; 40];
        assert_eq!(
            lines_touched(&floats[..]),
            (floats.as_ptr() as usize % 64 + 160).div_ceil(64)
        );
        // Prefetching any of them is a hint: nothing changes.
        prefetch(&b[60..452]);
        prefetch(&b[..0]);
        assert!(b.iter().all(|&x| x == 0));
    }
}

#[cfg(test)]
mod vendor_tests {
    use super::*;

    /// The vendor string is read in the order the CPU spells it (ebx, edx,
    /// ecx): the same as the `vendor_id` Linux reads from `cpuid` into
    /// `/proc/cpuinfo`, where there is one.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot run cpuid")]
    fn the_vendor_is_the_one_linux_reports() {
        assert_eq!(
            vendor().is_some(),
            cfg!(target_arch = "x86_64"),
            "a vendor exactly on x86-64 (which always has cpuid)"
        );
        let Some(v) = vendor() else {
            return;
        };
        let ours = String::from_utf8_lossy(&v).to_string();
        assert_eq!(intel(), ours == "GenuineIntel");
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        if let Some(line) = info.lines().find(|l| l.starts_with("vendor_id")) {
            let linux = line.split(':').nth(1).unwrap_or("").trim();
            assert_eq!(ours, linux);
        }
    }
}

#[cfg(test)]
mod spill_tests {
    use super::*;

    /// Every vector lands in its own place, on tiles of the kernels' shapes
    /// (rows by vectors a row), including one row and one vector.
    #[test]
    fn a_spilled_tile_holds_every_accumulator_in_its_place() {
        fn tile<const R: usize, const C: usize>() -> [[V; C]; R] {
            std::array::from_fn(|i| std::array::from_fn(|j| V::splat((i * 100 + j) as f32) + V::ONE))
        }
        fn check<const R: usize, const C: usize>() {
            let acc = tile::<R, C>();
            let copy = spill(acc);
            for i in 0..R {
                for j in 0..C {
                    assert_eq!(copy[i][j].to_array(), acc[i][j].to_array(), "{R}x{C}: ({i}, {j})");
                }
            }
        }
        check::<1, 1>();
        check::<3, 7>();
        check::<12, 2>();
        check::<16, 1>();
    }
}
