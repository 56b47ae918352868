//! The build facts printed beside every figure: the SIMD hardware the build
//! uses (on any architecture), the cache sizes the block sizes came from,
//! the GEMM's micro-kernel and block sizes; as text and as JSON.
//!
//! Two widths are reported because they differ: the kernels are written
//! against `wide`'s vector [`crate::simd::V`] (8 or 16 `f32`), and `wide`
//! maps one `V` onto one or more hardware registers (aarch64: `f32x8` is two
//! 4-lane NEON registers; baseline x86-64: two 4-lane SSE2 registers).
//!
//! The knobs themselves (setting block sizes and the kernel) belong to
//! [`crate::gemm`]; the tools call it directly.

use crate::gemm::blocking::{CacheProbe, CacheSizes, CACHE_SOURCE};
use crate::gemm::{self, BlockSizes};
use crate::profile::json::Json;
use crate::simd;

/// The SIMD hardware this build runs its kernels on.
#[derive(Clone, Debug, PartialEq)]
pub struct SimdFacts {
    /// The target architecture (`x86_64`, `aarch64`, `arm`, ...).
    pub arch: &'static str,
    /// The instruction set of the vector arithmetic (`AVX-512`, `AVX2`,
    /// `AVX`, `SSE2`, `NEON`, or `none` for scalar code).
    pub isa: &'static str,
    /// `f32` lanes of one hardware register (1 when `isa` is `none`).
    pub lanes: usize,
    /// `f32` lanes of the kernels' vector type (`wide::f32x8` or `f32x16`).
    pub vector_lanes: usize,
    /// Hardware registers per kernel vector (`vector_lanes / lanes`).
    pub registers_per_vector: usize,
    /// Whether multiply-add is fused (one rounding) in every kernel.
    pub fma: bool,
    /// The SIMD target features compiled in (`sse2`, `avx`, `avx2`, `fma`,
    /// `avx512f` on x86; `neon` on ARM).
    pub features: Vec<&'static str>,
}

impl SimdFacts {
    /// The facts of this build.
    pub fn current() -> SimdFacts {
        SimdFacts {
            arch: std::env::consts::ARCH,
            isa: simd::ISA,
            lanes: simd::REGISTER_LANES,
            vector_lanes: simd::LANES,
            registers_per_vector: simd::REGISTERS_PER_VECTOR,
            fma: simd::FUSED_MULTIPLY_ADD,
            features: simd::TARGET_FEATURES
                .iter()
                .filter(|&&(_, on)| on)
                .map(|&(name, _)| name)
                .collect(),
        }
    }

    /// One line, e.g. `NEON on aarch64: 4 f32 lanes per register, kernel
    /// vectors of 8 lanes (wide's f32x8 = 2 registers); fused multiply-add
    /// yes; features neon`.
    pub fn describe(&self) -> String {
        let hardware = if self.isa == "none" {
            format!(
                "no SIMD on {} (scalar code): kernel vectors of {} lanes (wide's f32x{} = {} scalar values)",
                self.arch, self.vector_lanes, self.vector_lanes, self.registers_per_vector
            )
        } else {
            format!(
                "{} on {}: {} f32 lanes per register, kernel vectors of {} lanes (wide's f32x{} = {} register{})",
                self.isa,
                self.arch,
                self.lanes,
                self.vector_lanes,
                self.vector_lanes,
                self.registers_per_vector,
                if self.registers_per_vector == 1 { "" } else { "s" }
            )
        };
        let features = if self.features.is_empty() {
            "none".to_string()
        } else {
            self.features.join(" ")
        };
        format!(
            "{hardware}; fused multiply-add {}; features {features}",
            if self.fma { "yes" } else { "no" }
        )
    }

    /// The `simd` object of the `bench --json` schema.
    pub fn to_json(&self) -> Json {
        Json::obj([
            ("arch", Json::str(self.arch)),
            ("isa", Json::str(self.isa)),
            ("lanes", Json::Int(self.lanes as i64)),
            ("vector_lanes", Json::Int(self.vector_lanes as i64)),
            (
                "registers_per_vector",
                Json::Int(self.registers_per_vector as i64),
            ),
            ("fma", Json::Bool(self.fma)),
            (
                "features",
                Json::Arr(self.features.iter().map(|&f| Json::str(f)).collect()),
            ),
        ])
    }
}

/// What this build runs the GEMM with, right now.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildFacts {
    /// The SIMD hardware the kernels use.
    pub simd: SimdFacts,
    /// The cache sizes the default block sizes were derived from.
    pub caches: CacheProbe,
    /// The micro-kernel used for wide products.
    pub micro_kernel: &'static str,
    /// The block sizes in use (after any tuning file was applied).
    pub blocks: BlockSizes,
    /// Whether a wide B and a large A are read where they are rather than
    /// packed ([`gemm::loops::reads_wide_in_place`]).
    pub wide_in_place: bool,
}

impl BuildFacts {
    /// The facts now (after any tuning file was applied).
    pub fn current() -> BuildFacts {
        BuildFacts {
            simd: SimdFacts::current(),
            caches: CacheSizes::probe(),
            micro_kernel: gemm::micro_kernel_name(),
            blocks: gemm::block_sizes(),
            wide_in_place: gemm::loops::reads_wide_in_place(),
        }
    }
}

/// `MC=.. KC=.. NC=..`, as the tools print block sizes.
pub fn describe(b: BlockSizes) -> String {
    format!("MC={} KC={} NC={}", b.mc, b.kc, b.nc)
}

/// How the tools print the micro-kernel: its name and, in AVX-512 builds,
/// what chose it, e.g. `simd-12x32 (512-bit FMAs at full width: 1.02x the
/// time of as many 256-bit ones)`; see [`crate::simd::fma_width`].
pub fn describe_micro_kernel(name: &str) -> String {
    match simd::fma_width::ratio_512_to_256() {
        Some(r) => format!(
            "{name} (512-bit FMAs at {} width: {r:.2}x the time of as many 256-bit ones)",
            if simd::fma_width::is_full_width(r) {
                "full"
            } else {
                "half"
            }
        ),
        None => name.to_string(),
    }
}

/// How the tools print [`BuildFacts::wide_in_place`], that a packed B~
/// beside an A read in place takes fewer columns than `NC`, to stay within
/// half of L2, and whether a B narrower than one panel is read in place
/// ([`gemm::loops::reads_narrow_b_in_place`]; see `gemm::loops`).
pub fn describe_in_place(on: bool) -> String {
    let operands = if on {
        "wide operands read in place".to_string()
    } else if simd::intel() {
        "wide operands packed (an Intel CPU)".to_string()
    } else {
        format!(
            "wide B and transposed A packed (L1d under {} KiB)",
            gemm::loops::WIDE_IN_PLACE_MIN_L1D >> 10
        )
    };
    let narrow = if gemm::loops::reads_narrow_b_in_place() {
        "; a B narrower than a panel read in place, its last vector masked"
    } else {
        ""
    };
    format!("{operands}; B~ within half of L2 when A is read in place{narrow}")
}

/// A size in bytes as `48 KiB` / `2 MiB` (whole units when exact).
fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// `L1d 48 KiB, L2 1 MiB, L3 32 MiB (from /sys/...)`, naming the guessed levels.
pub fn describe_caches(c: &CacheProbe) -> String {
    let s = c.sizes;
    let sizes = format!("L1d {}, L2 {}, L3 {}", bytes(s.l1d), bytes(s.l2), bytes(s.l3));
    let guessed = c.guessed_levels();
    if guessed.is_empty() {
        format!("{sizes} (from {CACHE_SOURCE})")
    } else if guessed.len() == 3 {
        format!("{sizes} (all GUESSED: {CACHE_SOURCE} describes no cache)")
    } else {
        format!("{sizes} ({} GUESSED, not in {CACHE_SOURCE})", guessed.join(", "))
    }
}

/// The `caches` object of the `bench --json` schema.
pub fn caches_json(c: &CacheProbe) -> Json {
    let s = c.sizes;
    Json::obj([
        ("l1d_bytes", Json::Int(s.l1d as i64)),
        ("l2_bytes", Json::Int(s.l2 as i64)),
        ("l3_bytes", Json::Int(s.l3 as i64)),
        ("source", Json::str(CACHE_SOURCE)),
        (
            "guessed",
            Json::Arr(c.guessed_levels().into_iter().map(Json::str).collect()),
        ),
    ])
}
