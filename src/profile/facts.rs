//! The build facts printed beside every figure: SIMD width, target features,
//! the GEMM's micro-kernel and block sizes.
//!
//! The knobs themselves (setting block sizes and the kernel) belong to
//! [`crate::gemm`]; the tools call it directly.

use crate::gemm::{self, BlockSizes};

/// What this build runs the GEMM with, right now.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildFacts {
    /// `f32` lanes of the SIMD vectors compiled in.
    pub simd_width: usize,
    /// The target features this build was compiled with, as `(name, on)`.
    pub target_features: Vec<(&'static str, bool)>,
    pub micro_kernel: &'static str,
    pub blocks: BlockSizes,
}

impl BuildFacts {
    /// The facts now (after any tuning file was applied).
    pub fn current() -> BuildFacts {
        BuildFacts {
            simd_width: gemm::simd_width(),
            target_features: vec![
                ("avx2", cfg!(target_feature = "avx2")),
                ("fma", cfg!(target_feature = "fma")),
                ("avx512f", cfg!(target_feature = "avx512f")),
            ],
            micro_kernel: gemm::micro_kernel_name(),
            blocks: gemm::block_sizes(),
        }
    }
}

/// `MC=.. KC=.. NC=..`, as the tools print block sizes.
pub fn describe(b: BlockSizes) -> String {
    format!("MC={} KC={} NC={}", b.mc, b.kc, b.nc)
}
