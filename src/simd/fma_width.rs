//! Whether this CPU runs a 512-bit fused multiply-add at full width, found
//! by timing it.
//!
//! Two kinds of AVX-512 core exist, and the best register tile differs:
//! - **Full width**: two 512-bit FMA pipes, 64 `f32` flops a cycle per core
//!   (AMD Zen 5 desktop and server; Intel Xeons from Skylake-SP on, with two
//!   FMA units). A wider tile (`simd-12x32`) keeps both pipes fed.
//! - **Half width**: each 512-bit FMA takes both 256-bit pipes, or Intel's
//!   one 512-bit unit (AMD Zen 4 and the Zen 5 of some laptops; Intel's
//!   client cores and the Xeons with one FMA unit): 32 flops a cycle, as
//!   with AVX2, and `simd-16x16` was measured best (Zen 4).
//!
//! `cpuid` does not say which: the same family and model holds both kinds
//! (Intel sells Xeons of one die with one or two FMA units; Zen 5's family
//! covers both). So [`full_width_512`] times the same number of independent
//! 512-bit and 256-bit FMAs (12 accumulators, more than latency times pipes
//! on any of these cores): full width runs both at the same speed, half
//! width takes twice as long for the 512-bit ones. The ratio does not depend
//! on the clock; the fastest of several alternated rounds leaves out a round
//! that another process or an interrupt slowed down. It runs once per
//! process, in about 30 µs (29-32 on a 2-core Intel Xeon with two FMA
//! units, AVX-512, 16 lanes).
//!
//! The answer chooses a micro-kernel only, never a block size: the trained
//! numbers do not depend on it (see `gemm::kernel`).

use std::sync::OnceLock;

/// Above this ratio of the 512-bit loop's time to the 256-bit loop's, the
/// 512-bit FMA runs at half width (the ratio is near 1 or near 2).
pub const HALF_WIDTH_RATIO: f64 = 1.5;

/// The fastest 512-bit FMA loop over the fastest 256-bit loop of the same
/// FMA count ([`measure_ratio`]), measured once per process; `None` in
/// builds without AVX-512 (nothing to choose there).
pub fn ratio_512_to_256() -> Option<f64> {
    static RATIO: OnceLock<Option<f64>> = OnceLock::new();
    *RATIO.get_or_init(measure_ratio)
}

/// Whether 512-bit FMAs run at full width on this CPU ([`ratio_512_to_256`]
/// below [`HALF_WIDTH_RATIO`]); false in builds without AVX-512.
pub fn full_width_512() -> bool {
    ratio_512_to_256().is_some_and(is_full_width)
}

/// The decision on one measured ratio.
pub fn is_full_width(ratio: f64) -> bool {
    ratio < HALF_WIDTH_RATIO
}

/// Times the two loops now (no caching): alternated rounds after a warm-up,
/// the fastest of each. `None` without AVX-512 in the build.
pub fn measure_ratio() -> Option<f64> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        use std::time::Instant;
        // 12 FMAs an iteration: ~1.5 µs a loop at 2 FMAs a cycle and 4 GHz,
        // far above the clock's resolution.
        const ITERATIONS: usize = 512;
        const ROUNDS: usize = 9;
        // Intel powers the upper half of the vector unit up on the first
        // 512-bit instructions (tens of µs at reduced speed): run it first.
        for _ in 0..16 {
            std::hint::black_box(fma_loop_512(ITERATIONS));
        }
        let (mut best_512, mut best_256) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            std::hint::black_box(fma_loop_256(ITERATIONS));
            best_256 = best_256.min(start.elapsed().as_secs_f64());
            let start = Instant::now();
            std::hint::black_box(fma_loop_512(ITERATIONS));
            best_512 = best_512.min(start.elapsed().as_secs_f64());
        }
        if best_256 > 0.0 && best_512.is_finite() {
            return Some(best_512 / best_256);
        }
        // A clock that did not move: keep the measured default (half width).
        return Some(2.0);
    }
    #[allow(unreachable_code)]
    None
}

/// `fn $name(iterations) -> f32`: 12 independent chains of `iterations`
/// FMAs each on `$vector` (one definition for both widths: the same loop,
/// only the register differs).
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
macro_rules! fma_loop {
    ($name:ident, $vector:ty) => {
        #[inline(never)]
        fn $name(iterations: usize) -> f32 {
            let x = std::hint::black_box(<$vector>::splat(0.999));
            let y = std::hint::black_box(<$vector>::splat(1e-3));
            let mut acc = [<$vector>::splat(1.0); 12];
            for _ in 0..iterations {
                for a in acc.iter_mut() {
                    *a = a.mul_add(x, y);
                }
            }
            acc.iter().fold(0.0, |s, a| s + a.reduce_add())
        }
    };
}
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
fma_loop!(fma_loop_512, wide::f32x16);
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
fma_loop!(fma_loop_256, wide::f32x8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_near_one_is_full_width_and_near_two_is_not() {
        assert!(is_full_width(1.0));
        assert!(is_full_width(1.2));
        assert!(!is_full_width(1.9));
        assert!(!is_full_width(2.1));
    }

    /// The measurement lands near one of its two values on any AVX-512 CPU
    /// (a loop the compiler shortened or widened would give something else).
    #[test]
    fn the_measured_ratio_is_near_one_or_two() {
        let avx512 = cfg!(all(target_arch = "x86_64", target_feature = "avx512f"));
        let ratio = measure_ratio();
        assert_eq!(ratio.is_some(), avx512, "a ratio exactly in AVX-512 builds");
        if let Some(r) = ratio {
            assert!((0.75..2.6).contains(&r), "ratio {r}");
        }
    }
}
