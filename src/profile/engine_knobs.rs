//! The one place the profiling tools touch the GEMM's tuning knobs.
//!
//! The fast BLIS-style GEMM (branch `gemm`) exposes `gemm::BlockSizes`,
//! `gemm::block_sizes()`, `gemm::set_block_sizes()`, `gemm::simd_width()`,
//! `gemm::micro_kernel_name()`, `gemm::available_kernels()` and
//! `gemm::set_kernel()`. Until it is merged, this module stands in for them
//! with local fallbacks (the reference GEMM has no block sizes and one
//! "kernel"), so that switching to the real API is a change to this file only.
//!
//! TODO(gemm-merge): replace the fallbacks below with
//! `pub use crate::gemm::BlockSizes;` and calls to the `crate::gemm` functions.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The three cache block sizes of the BLIS loops (in elements).
///
/// TODO(gemm-merge): `pub use crate::gemm::BlockSizes;`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSizes {
    /// Rows of the packed block of A (kept in L2).
    pub mc: usize,
    /// Depth of one packed block (a micro-panel of B, `kc x NR`, kept in L1).
    pub kc: usize,
    /// Columns of the packed block of B (kept in L3).
    pub nc: usize,
}

/// Whether the GEMM behind `crate::gemm::gemm` has real block sizes and kernels
/// (false while it is the reference triple loop).
///
/// TODO(gemm-merge): `true`.
pub const FAST_GEMM: bool = false;

/// Defaults typical of the BLIS analyses for AVX2/AVX-512 cores (used by the
/// fallback only; the real GEMM derives its defaults from the cache sizes).
const FALLBACK_DEFAULT: BlockSizes = BlockSizes {
    mc: 144,
    kc: 256,
    nc: 4080,
};

static MC: AtomicUsize = AtomicUsize::new(FALLBACK_DEFAULT.mc);
static KC: AtomicUsize = AtomicUsize::new(FALLBACK_DEFAULT.kc);
static NC: AtomicUsize = AtomicUsize::new(FALLBACK_DEFAULT.nc);

/// The block sizes the next GEMM will use.
///
/// TODO(gemm-merge): `crate::gemm::block_sizes()`.
pub fn block_sizes() -> BlockSizes {
    BlockSizes {
        mc: MC.load(Relaxed),
        kc: KC.load(Relaxed),
        nc: NC.load(Relaxed),
    }
}

/// Sets the block sizes for later GEMMs (process-wide). A no-op for the
/// reference GEMM beyond remembering them.
///
/// TODO(gemm-merge): `crate::gemm::set_block_sizes(b)`.
pub fn set_block_sizes(b: BlockSizes) {
    MC.store(b.mc.max(1), Relaxed);
    KC.store(b.kc.max(1), Relaxed);
    NC.store(b.nc.max(1), Relaxed);
}

/// `f32` lanes of the SIMD vectors compiled in: 16 with AVX-512F, else 8.
///
/// TODO(gemm-merge): `crate::gemm::simd_width()`.
pub fn simd_width() -> usize {
    if cfg!(target_feature = "avx512f") {
        16
    } else {
        8
    }
}

/// The micro-kernel used for wide products.
///
/// TODO(gemm-merge): `crate::gemm::micro_kernel_name()`.
pub fn micro_kernel_name() -> &'static str {
    "reference"
}

/// Every micro-kernel compiled in (the tuner tries each).
///
/// TODO(gemm-merge): `crate::gemm::available_kernels()`.
pub fn available_kernels() -> Vec<&'static str> {
    vec!["reference"]
}

/// Forces micro-kernel `name` (or, with `None`, goes back to the default choice).
///
/// TODO(gemm-merge): `crate::gemm::set_kernel(name)`.
pub fn set_kernel(name: Option<&str>) -> Result<(), String> {
    match name {
        None | Some("reference") => Ok(()),
        Some(other) => Err(format!(
            "unknown micro-kernel '{other}' (compiled in: {})",
            available_kernels().join(", ")
        )),
    }
}

/// `MC=.. KC=.. NC=..`, as the tools print block sizes.
pub fn describe(b: BlockSizes) -> String {
    format!("MC={} KC={} NC={}", b.mc, b.kc, b.nc)
}

/// The target features this build was compiled with, as `name=yes/no` facts.
pub fn target_features() -> Vec<(&'static str, bool)> {
    vec![
        ("avx2", cfg!(target_feature = "avx2")),
        ("fma", cfg!(target_feature = "fma")),
        ("avx512f", cfg!(target_feature = "avx512f")),
    ]
}
