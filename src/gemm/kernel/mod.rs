//! Micro-kernels: the innermost computation of the BLIS loops.
//!
//! A micro-kernel multiplies one packed micro-panel of A (`MR x kc`, stored
//! column by column: `MR` floats per step of `k`) by one packed micro-panel of
//! B (`kc x NR`, stored row by row: `NR` floats per step of `k`), keeping the
//! `MR x NR` block of C in registers the whole time (a sequence of `kc`
//! rank-1 updates), and then writes it to C once:
//!
//! ```text
//! c_tile = acc + beta · c_tile          (C not read when beta == 0)
//! c_tile = act(c_tile + bias)           (only with an epilogue, last kc block)
//! c_tile = c_tile ⊙ dropout factors     (only with a dropout mask, training)
//! ```
//!
//! Every element of C is summed in the same order, `p = 0, 1, .., kc - 1`
//! with one multiply-add per step ([`crate::simd::mul_add`]: fused exactly
//! when [`crate::simd::FUSED_MULTIPLY_ADD`], in every kernel), whatever
//! the kernel shape and wherever the element sits in a tile. That is why the
//! result does not depend on the kernel, the tiling or the thread count; only
//! `kc` (where the sum over `k` is cut) matters. (One exception, in the
//! epilogue: the scalar kernels apply sigmoid and tanh with the scalar `f32`
//! functions, the SIMD kernels with the vector approximations.)
//!
//! - [`scalar`]: the teaching version and portable fallback.
//! - [`simd`]: `wide` vectors, one register row of C per row of the tile.

pub mod scalar;
pub mod simd;

use crate::activation::Activation;
use crate::simd::LANES;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where and how a micro-kernel writes its `MR x NR` tile of C.
#[derive(Clone, Copy, Debug)]
pub struct TileOut {
    /// Element `(0, 0)` of the tile in C.
    pub c: *mut f32,
    /// Distance between rows of C (elements); columns are contiguous.
    pub rs_c: usize,
    /// Valid rows (`<= MR`) and columns (`<= NR`) of the tile: edge tiles
    /// are computed in full from zero-padded panels but only this part is
    /// read or written.
    pub rows: usize,
    pub cols: usize,
    /// `c = acc + beta · c`; with `beta == 0` C is not read.
    pub beta: f32,
    /// `Some((bias, act))`: `c = act(c + bias[j])`, `bias` pointing at the
    /// tile's first column and valid for `cols` entries.
    pub epilogue: Option<(*const f32, Activation)>,
    /// With an epilogue: the dropout mask, starting at the tile's element
    /// (0, 0); `c = act(c + bias[j]) · mask.factor(i, j)`.
    pub dropout: Option<crate::kernels::DropoutMask>,
}

/// `unsafe fn(kc, a_panel, b_panel, out)`.
///
/// # Safety (for every kernel)
/// `a` must be readable for `MR * kc` floats, `b` for `NR * kc` floats, and
/// `out` must describe a writable (and, if `beta != 0`, initialised) region
/// of `rows` rows of `cols` floats, rows `rs_c` apart, not aliased elsewhere.
pub type KernelFn = unsafe fn(kc: usize, a: *const f32, b: *const f32, out: &TileOut);

/// `unsafe fn(kc, a, ra, pa, b_panel, out)`: a [`KernelFn`] that reads
/// element `(i, p)` of its A micro-panel at `a + i·ra + p·pa` instead of a
/// packed panel (A in place, no packing).
///
/// # Safety
/// As [`KernelFn`], with `a + i·ra + p·pa` readable for `i < MR`, `p < kc`.
pub type StridedKernelFn =
    unsafe fn(kc: usize, a: *const f32, ra: usize, pa: usize, b: *const f32, out: &TileOut);

/// A micro-kernel and its register-tile shape.
#[derive(Clone, Copy, Debug)]
pub struct MicroKernel {
    pub name: &'static str,
    /// Rows of C per tile.
    pub mr: usize,
    /// Columns of C per tile.
    pub nr: usize,
    pub run: KernelFn,
    /// The same kernel reading A in place.
    pub run_strided: StridedKernelFn,
}

macro_rules! simd_kernel {
    ($name:literal, $mr:literal, $nv:literal) => {
        MicroKernel {
            name: $name,
            mr: $mr,
            nr: $nv * LANES,
            run: simd::micro_kernel::<$mr, $nv>,
            run_strided: simd::micro_kernel_strided::<$mr, $nv>,
        }
    };
}

/// The SIMD kernels compiled in; [`DEFAULT`] and [`NARROW`] index the ones
/// chosen by shape, the others are there for tuning (`set_kernel`).
///
/// AVX-512 (32 zmm registers): the default is 16x16, 16 accumulators + 1 B
/// vector + 1 broadcast A value. Shapes that fill more registers (12x32:
/// 27 of 32, 14x32: 31, 24x16: 26) were measured slower on Zen 4 (best of
/// 30 runs, 1 thread, a sweep over kernels and kc with `set_kernel` and
/// `set_block_sizes`): 16x16 with kc = 512 gives 101-109 GFLOP/s on the
/// network's 512-wide shapes and squares 256-1024, 12x32 with kc = 256
/// 94-106, 24x16 87-104.
/// Zen 4 runs a zmm FMA as two 256-bit halves, one per cycle, with latency
/// 4: 16 independent accumulators already hide the latency, while the
/// narrower tile halves the B micro-panel (so kc can be 512 and C is
/// updated half as often), and m = 128 splits into whole 16-row panels.
///
/// AVX2 (16 ymm registers): 6x16 uses 12 accumulators + 2 B + 1 A = 15.
#[cfg(target_feature = "avx512f")]
pub const SIMD_KERNELS: &[MicroKernel] = &[
    simd_kernel!("simd-16x16", 16, 1),
    simd_kernel!("simd-12x32", 12, 2),
    simd_kernel!("simd-24x16", 24, 1),
    simd_kernel!("simd-8x48", 8, 3),
    simd_kernel!("simd-6x64", 6, 4),
    simd_kernel!("simd-14x32", 14, 2),
];
#[cfg(target_feature = "avx512f")]
const DEFAULT: usize = 0;
#[cfg(target_feature = "avx512f")]
const NARROW: usize = 0;

#[cfg(not(target_feature = "avx512f"))]
pub const SIMD_KERNELS: &[MicroKernel] = &[
    simd_kernel!("simd-6x16", 6, 2),
    simd_kernel!("simd-12x8", 12, 1),
    simd_kernel!("simd-8x8", 8, 1),
    simd_kernel!("simd-4x24", 4, 3),
];
#[cfg(not(target_feature = "avx512f"))]
const DEFAULT: usize = 0;
#[cfg(not(target_feature = "avx512f"))]
const NARROW: usize = 1;

/// The plain-Rust kernels (teaching versions; `scalar-4x4` is the smallest
/// complete example of a register tile).
pub const SCALAR_KERNELS: &[MicroKernel] = &[
    MicroKernel {
        name: "scalar-4x4",
        mr: 4,
        nr: 4,
        run: scalar::micro_kernel::<4, 4>,
        run_strided: scalar::micro_kernel_strided::<4, 4>,
    },
    MicroKernel {
        name: "scalar-8x8",
        mr: 8,
        nr: 8,
        run: scalar::micro_kernel::<8, 8>,
        run_strided: scalar::micro_kernel_strided::<8, 8>,
    },
];

/// Every kernel, SIMD first.
pub fn all_kernels() -> impl Iterator<Item = &'static MicroKernel> {
    SIMD_KERNELS.iter().chain(SCALAR_KERNELS)
}

/// The kernel used for shapes with `n > LANES`.
pub fn default_kernel() -> &'static MicroKernel {
    &SIMD_KERNELS[DEFAULT]
}

/// The kernel used for `n <= LANES` (one vector per tile row).
pub fn narrow_kernel() -> &'static MicroKernel {
    &SIMD_KERNELS[NARROW]
}

/// `usize::MAX`: choose by shape; otherwise an index into `all_kernels()`.
static FORCED: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Forces one kernel for every shape (`None`: choose by shape again).
pub fn force(kernel: Option<&str>) -> Result<(), String> {
    forced(); // read SIMDNET_KERNEL first, so that it cannot override this call later
    let index = match kernel {
        None => usize::MAX,
        Some(name) => all_kernels().position(|k| k.name == name).ok_or_else(|| {
            let names: Vec<_> = all_kernels().map(|k| k.name).collect();
            format!("unknown micro-kernel '{name}': available {}", names.join(", "))
        })?,
    };
    FORCED.store(index, Ordering::Relaxed);
    Ok(())
}

static ENV: std::sync::Once = std::sync::Once::new();

/// The forced kernel, if any: set by [`force`], or initially by the
/// environment variable `SIMDNET_KERNEL` (a name from [`all_kernels`];
/// unknown names are ignored).
pub fn forced() -> Option<&'static MicroKernel> {
    ENV.call_once(|| {
        if let Ok(name) = std::env::var("SIMDNET_KERNEL") {
            if let Some(index) = all_kernels().position(|k| k.name == name.trim()) {
                FORCED.store(index, Ordering::Relaxed);
            }
        }
    });
    all_kernels().nth(FORCED.load(Ordering::Relaxed))
}

/// The kernel for a product with `n` columns.
pub fn choose(n: usize) -> &'static MicroKernel {
    if let Some(k) = forced() {
        return k;
    }
    if n <= LANES {
        narrow_kernel()
    } else {
        default_kernel()
    }
}
