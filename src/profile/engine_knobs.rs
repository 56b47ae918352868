//! The one place the profiling tools touch the GEMM's tuning knobs.
//!
//! `bench` and `tune` read and set the block sizes and the micro-kernel
//! through these functions, which forward to [`crate::gemm`].

pub use crate::gemm::BlockSizes;
pub use crate::gemm::{
    available_kernels, block_sizes, micro_kernel_name, set_block_sizes, set_kernel, simd_width,
};

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
