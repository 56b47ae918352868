//! Block sizes: how much of each operand one pass of a loop keeps in cache.
//!
//! In BLIS terms (see [`super::loops`]):
//! - `kc`: the largest depth of one rank-`kc` update. A packed micro-panel
//!   of B (`kc x NR` floats) should sit in L1 while the micro-kernel streams
//!   micro-panels of A past it. The loops balance it: `k` is cut into
//!   `ceil(k / kc)` blocks of equal depth (the last one shorter by the
//!   rounding), not full `kc` blocks and a thin remainder.
//! - `mc`: rows of the packed block A~ (`mc x kc` floats), which lives in L2
//!   (half of it; an eighth on an Intel core, see [`BlockSizes::for_cpu`]).
//! - `nc`: columns of the packed block B~ (`kc x nc` floats), which lives in L3.
//!   (For an A read in place the loops take fewer, to keep B~ within half
//!   of L2: reading A once per block of columns costs nothing there.)
//!
//! Defaults come from the cache sizes in `/sys/devices/system/cpu/cpu0/cache`,
//! can be overridden with the environment variables `SIMDNET_MC`,
//! `SIMDNET_KC`, `SIMDNET_NC` (read once) and at run time with
//! [`set_block_sizes`]. The loops round `mc` up to a multiple of the
//! micro-kernel's `MR` and `nc` up to a multiple of its `NR`.
//!
//! Every size must lie in its range ([`MC_RANGE`], [`KC_RANGE`],
//! [`NC_RANGE`]) and each packed block must fit in [`MAX_PACKED_BYTES`]
//! ([`BlockSizes::validate`]): the packing buffers are allocated per thread,
//! so an absurd size would exhaust memory. [`check_env`] reports a bad
//! environment value as an error (the CLI calls it first); the library
//! itself falls back to the defaults for such a value.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use crate::error::{Error, Result};

/// Allowed `mc` (rows of A~): the defaults are at most 960.
pub const MC_RANGE: RangeInclusive<usize> = 1..=4096;
/// Allowed `kc` (depth of a packed block): the defaults are at most 512.
pub const KC_RANGE: RangeInclusive<usize> = 1..=4096;
/// Allowed `nc` (columns of B~): the defaults are at most 4096.
pub const NC_RANGE: RangeInclusive<usize> = 1..=16384;
/// Largest packed block, A~ (`mc x kc`) or B~ (`kc x nc`), in bytes: 64 MiB.
pub const MAX_PACKED_BYTES: usize = 64 << 20;
/// The environment variables of the three sizes, in the order `mc`, `kc`, `nc`.
pub const ENV_VARS: [&str; 3] = ["SIMDNET_MC", "SIMDNET_KC", "SIMDNET_NC"];

/// The three cache block sizes of the BLIS loops (all in elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSizes {
    /// Rows of A~ per block (loop 3 step).
    pub mc: usize,
    /// Depth of one packed block (loop 4 step).
    pub kc: usize,
    /// Columns of B~ per block (loop 5 step).
    pub nc: usize,
}

/// Data cache sizes in bytes: `(L1d, L2, L3)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache of one core.
    pub l1d: usize,
    /// Level-2 cache of one core.
    pub l2: usize,
    /// Level-3 cache (shared).
    pub l3: usize,
}

/// Where the cache sizes come from: Linux's description of cpu0's caches.
/// The same on every architecture (x86-64, aarch64, ...) when the kernel
/// knows the caches; some ARM boards describe none, or no L3.
pub const CACHE_SOURCE: &str = "/sys/devices/system/cpu/cpu0/cache";

/// Cache sizes and which of them were guessed rather than read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheProbe {
    /// The sizes used for the default block sizes.
    pub sizes: CacheSizes,
    /// Whether L1d, L2, L3 (in that order) are guesses: [`CACHE_SOURCE`] had
    /// no readable entry for that level.
    pub guessed: [bool; 3],
}

impl CacheProbe {
    /// The names of the guessed levels (`"L1d"`, `"L2"`, `"L3"`).
    pub fn guessed_levels(&self) -> Vec<&'static str> {
        ["L1d", "L2", "L3"]
            .into_iter()
            .zip(self.guessed)
            .filter_map(|(name, g)| g.then_some(name))
            .collect()
    }
}

/// This machine's L1 data cache in bytes, read once ([`CacheSizes::detect`]).
pub(crate) fn l1d_bytes() -> usize {
    static L1D: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *L1D.get_or_init(|| CacheSizes::detect().l1d)
}

/// This machine's L2 cache (of one core) in bytes, read once ([`CacheSizes::detect`]).
pub(crate) fn l2_bytes() -> usize {
    static L2: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *L2.get_or_init(|| CacheSizes::detect().l2)
}

impl CacheSizes {
    /// The guesses used for a level Linux does not describe: typical modern
    /// values (32 KiB, 1 MiB, 32 MiB) on every architecture, which give the
    /// same `kc` as most real machines (see [`BlockSizes::for_caches`]).
    pub const GUESS: CacheSizes = CacheSizes {
        l1d: 32 << 10,
        l2: 1 << 20,
        l3: 32 << 20,
    };

    /// The sizes reported by Linux for cpu0, each falling back to
    /// [`CacheSizes::GUESS`] when not readable.
    pub fn detect() -> CacheSizes {
        CacheSizes::probe().sizes
    }

    /// The sizes reported by Linux for cpu0 ([`CACHE_SOURCE`]), with which
    /// of them were guessed.
    pub fn probe() -> CacheProbe {
        CacheSizes::probe_dir(std::path::Path::new(CACHE_SOURCE))
    }

    /// [`CacheSizes::probe`] on a directory laid out like [`CACHE_SOURCE`].
    pub fn probe_dir(base: &std::path::Path) -> CacheProbe {
        let mut sizes = CacheSizes::GUESS;
        let mut guessed = [true; 3];
        for index in 0..8 {
            let read = |f: &str| std::fs::read_to_string(base.join(format!("index{index}/{f}"))).ok();
            let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size")) else {
                continue;
            };
            let Some(bytes) = parse_size(size.trim()).filter(|&b| b > 0) else {
                continue;
            };
            let slot = match (level.trim(), kind.trim()) {
                ("1", "Data") => 0,
                ("2", "Unified" | "Data") => 1,
                ("3", "Unified" | "Data") => 2,
                _ => continue,
            };
            *[&mut sizes.l1d, &mut sizes.l2, &mut sizes.l3][slot] = bytes;
            guessed[slot] = false;
        }
        CacheProbe { sizes, guessed }
    }
}

/// Parses sysfs sizes such as `32K`, `1024K`, `32M`.
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let mult = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Defaults are multiples of these. The `MR` of the kernels chosen by shape
/// (16x16 on AVX-512; 6x16 and 12x8 on AVX2) and of most tuning kernels
/// divides 48 and their `NR` divides 64, so the default `mc` and `nc` are
/// whole micro-panels for them. Not for all: `simd-14x32` (14 does not
/// divide 48), `simd-8x48` and `simd-4x24` (48 and 24 do not divide 64).
/// For those the loops round `mc` and `nc` up to the next multiple of
/// `MR` and `NR`, as they do for any size set by hand.
const M_GRAIN: usize = 48;

/// The B micro-panel width the default `kc` is derived from: 16, the `NR`
/// of the Zen 4 and AVX2 default kernels, whatever kernel is the default
/// on this CPU (`simd-12x32` on Zen 5). `kc` sets where the sum over `k`
/// is cut, so the trained numbers: with 16 it is 512 on every machine
/// with an L1d of at least 32 KiB, as before (k = 784 runs two blocks of
/// 392; k = 512 and less, one).
pub const KC_PANEL_WIDTH: usize = 16;
const N_GRAIN: usize = 64;

impl BlockSizes {
    /// Block sizes derived from `caches` for a micro-kernel whose B
    /// micro-panel is `nr` floats wide:
    /// - `kc`: a `kc x nr` B micro-panel fills L1 (measured on Zen 4: with
    ///   `nr = 16`, `kc = 512` beats 256 by 1-5%, and with `nr = 32`, 256
    ///   beats 128: C is loaded and stored less often, and the A
    ///   micro-panel streams through from L2 well enough);
    /// - `mc`: the `mc x kc` A~ block fills half of L2 (an eighth on an
    ///   Intel core: [`for_cpu`](Self::for_cpu));
    /// - `nc`: the `kc x nc` B~ block takes at most a quarter of L3 (shared
    ///   by the cores), capped at 4096 columns.
    pub fn for_caches(caches: CacheSizes, nr: usize) -> BlockSizes {
        BlockSizes::with_a_share(caches, nr, 2)
    }

    /// [`for_caches`](Self::for_caches) on this CPU's vendor: on an Intel
    /// core the A~ block takes an eighth of L2, not half (`mc` 96 instead
    /// of 480 with a 2 MiB L2 and `kc` 512). `mc` does not change a sum
    /// (only `kc` cuts them), so the trained numbers are the same.
    ///
    /// Measured on an Intel Xeon (family 6 model 167 under KVM, AVX-512, 16
    /// lanes, L1d 48 KiB, L2 2 MiB, 2026-12-06), `cargo bench --bench gemm`
    /// with `SIMDNET_MC` 480, 240, 144, 96 and 48 in turn, three rounds,
    /// the medians of 1 thread (from the main thread and from the pool):
    /// square 512 125 and 124 GFLOP/s with 480, 136 and 140 with 96, 137
    /// and 146 with 48; square 1024 134 and 135, 145 and 145, 147 and 147;
    /// `Xᵀ·dZ` 784x512x128 125 and 122, 139 and 148, 139 and 144 (every
    /// round faster); the other shapes level (within the runs' 10%), 240
    /// and 144 in between. With `kc` 512 the default kernel's B
    /// micro-panel (`simd-12x32`: 64 KiB) does not fit this L1d, so both
    /// panels stream from L2; that a smaller A~ then leaves more of L2 to
    /// B~'s lines is a likely reason, not measured. Training was level
    /// (`train --json`, the two sizes alternated, 4 to 6 rounds: the
    /// workshop network 1.004x, 784-512-512-10 1.007x on 2 threads and
    /// 0.978x on 1, LeNet-5 1.000x, mnist_cnn 1.006x). Not measured on
    /// AMD's cores, which keep half.
    pub fn for_cpu(caches: CacheSizes, nr: usize, intel: bool) -> BlockSizes {
        BlockSizes::with_a_share(caches, nr, if intel { 8 } else { 2 })
    }

    /// The sizes of [`for_caches`](Self::for_caches) with the A~ block
    /// filling `1 / share` of L2.
    fn with_a_share(caches: CacheSizes, nr: usize, share: usize) -> BlockSizes {
        let f = std::mem::size_of::<f32>();
        let kc = (caches.l1d / (nr * f)).clamp(64, 512) / 16 * 16;
        let mc = (caches.l2 / share / (kc * f)).clamp(M_GRAIN, 960) / M_GRAIN * M_GRAIN;
        let nc = (caches.l3 / 4 / (kc * f)).clamp(N_GRAIN, 4096) / N_GRAIN * N_GRAIN;
        BlockSizes { mc, kc, nc }
    }

    /// This machine's defaults: [`for_cpu`](Self::for_cpu) on its caches,
    /// its vendor and [`KC_PANEL_WIDTH`].
    pub fn defaults() -> BlockSizes {
        BlockSizes::for_cpu(CacheSizes::detect(), KC_PANEL_WIDTH, crate::simd::intel())
    }

    /// The defaults for this machine and the default micro-kernel, with the
    /// `SIMDNET_MC` / `SIMDNET_KC` / `SIMDNET_NC` overrides applied; if any
    /// of them is invalid (see [`check_env`]), the defaults alone.
    pub fn from_env() -> BlockSizes {
        let defaults = BlockSizes::defaults();
        env_overrides(defaults).unwrap_or(defaults)
    }

    /// Checks every size against its range and each packed block against
    /// [`MAX_PACKED_BYTES`]; the error says which and the allowed range.
    pub fn validate(self) -> std::result::Result<(), String> {
        for (name, v, range) in [
            ("mc", self.mc, MC_RANGE),
            ("kc", self.kc, KC_RANGE),
            ("nc", self.nc, NC_RANGE),
        ] {
            if !range.contains(&v) {
                return Err(format!(
                    "{name} = {v} is out of range (allowed {}..={})",
                    range.start(),
                    range.end()
                ));
            }
        }
        for (what, rows, cols) in [
            ("A~ (mc x kc)", self.mc, self.kc),
            ("B~ (kc x nc)", self.kc, self.nc),
        ] {
            if rows * cols * 4 > MAX_PACKED_BYTES {
                return Err(format!(
                    "the packed block {what} = {rows} x {cols} floats is absurdly large for a packed block (at most {} MiB per thread)",
                    MAX_PACKED_BYTES >> 20
                ));
            }
        }
        Ok(())
    }

    /// Every size in its range, and the packed B~ block within
    /// [`MAX_PACKED_BYTES`] (by lowering `nc`).
    fn sanitised(self) -> BlockSizes {
        let clamp = |v: usize, r: RangeInclusive<usize>| v.clamp(*r.start(), *r.end());
        let (mc, kc) = (clamp(self.mc, MC_RANGE), clamp(self.kc, KC_RANGE));
        let most = |rows: usize| (MAX_PACKED_BYTES / 4 / rows).max(1);
        BlockSizes {
            mc: mc.min(most(kc)),
            kc,
            nc: clamp(self.nc, NC_RANGE).min(most(kc)),
        }
    }
}

/// `defaults` with the sizes set in the environment; an error names the
/// first variable that is not a whole number in its range.
fn env_overrides(defaults: BlockSizes) -> Result<BlockSizes> {
    let mut b = defaults;
    let ranges = [MC_RANGE, KC_RANGE, NC_RANGE];
    for (i, name) in ENV_VARS.into_iter().enumerate() {
        let Some(raw) = std::env::var_os(name) else {
            continue;
        };
        let range = &ranges[i];
        let allowed = format!("a whole number from {} to {}", range.start(), range.end());
        let text = raw.to_string_lossy();
        let v = text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{name}={} is not a valid block size: it must be {allowed} (or unset it to use this machine's default)",
                    text.escape_debug()
                ))
            })?;
        match i {
            0 => b.mc = v,
            1 => b.kc = v,
            _ => b.nc = v,
        }
    }
    b.validate().map_err(|e| {
        Error::Invalid(format!(
            "the block sizes set by {} give {e}: lower them (or unset them to use this machine's defaults)",
            ENV_VARS.join("/")
        ))
    })?;
    Ok(b)
}

/// Checks `SIMDNET_MC`, `SIMDNET_KC` and `SIMDNET_NC`: each, if set, must be
/// a whole number in its range, and the packed blocks they give must fit.
/// The CLI calls this before any command that multiplies matrices.
pub fn check_env() -> Result<()> {
    env_overrides(BlockSizes::defaults()).map(|_| ())
}

static MC: AtomicUsize = AtomicUsize::new(0);
static KC: AtomicUsize = AtomicUsize::new(0);
static NC: AtomicUsize = AtomicUsize::new(0);
static INIT: Once = Once::new();

fn ensure_init() {
    INIT.call_once(|| {
        let b = BlockSizes::from_env();
        MC.store(b.mc, Ordering::Relaxed);
        KC.store(b.kc, Ordering::Relaxed);
        NC.store(b.nc, Ordering::Relaxed);
    });
}

/// The depth of the blocks [`super::gemm`] sums a product of depth `k` in,
/// with the current block sizes ([`super::loops::balanced_depth`]): for
/// kernels that must give the GEMM's bits.
pub fn depth_block(k: usize) -> usize {
    super::loops::balanced_depth(k, block_sizes().kc)
}

/// The block sizes the next GEMM call will use.
pub fn block_sizes() -> BlockSizes {
    ensure_init();
    BlockSizes {
        mc: MC.load(Ordering::Relaxed),
        kc: KC.load(Ordering::Relaxed),
        nc: NC.load(Ordering::Relaxed),
    }
}

/// Sets the block sizes for all later GEMM calls (process-wide; zeros become
/// 1, and sizes beyond their ranges are clamped into them: validate first
/// with [`BlockSizes::validate`] to refuse them instead).
///
/// Results stay deterministic for fixed block sizes; changing `kc` changes
/// where the sum over `k` is split, so it may change the last bits.
pub fn set_block_sizes(b: BlockSizes) {
    ensure_init();
    let b = b.sanitised();
    MC.store(b.mc, Ordering::Relaxed);
    KC.store(b.kc, Ordering::Relaxed);
    NC.store(b.nc, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_sizes() {
        assert_eq!(parse_size("32K"), Some(32768));
        assert_eq!(parse_size("1024K"), Some(1 << 20));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn ranges_refuse_absurd_sizes() {
        let ok = BlockSizes {
            mc: 960,
            kc: 512,
            nc: 4096,
        };
        assert_eq!(ok.validate(), Ok(()));
        let e = BlockSizes {
            kc: 100_000_000,
            ..ok
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("kc = 100000000") && e.contains("1..=4096"), "{e}");
        let e = BlockSizes {
            mc: 16384,
            kc: 16384,
            nc: 16384,
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("mc = 16384"), "{e}");
        let e = BlockSizes {
            mc: 96,
            kc: 4096,
            nc: 16384,
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("B~") && e.contains("64 MiB"), "{e}");
        let s = BlockSizes {
            mc: 0,
            kc: 100_000_000,
            nc: 1 << 30,
        }
        .sanitised();
        assert_eq!(s.validate(), Ok(()), "{s:?}");
    }

    #[test]
    fn defaults_are_sane_multiples() {
        let b = BlockSizes::for_caches(
            CacheSizes {
                l1d: 32 << 10,
                l2: 1 << 20,
                l3: 32 << 20,
            },
            16,
        );
        assert_eq!(b.kc, 512);
        assert!(b.mc * b.kc * 4 <= 512 << 10);
        assert_eq!(b.mc % M_GRAIN, 0);
        assert_eq!(b.nc % N_GRAIN, 0);
        assert!(b.mc >= M_GRAIN && b.nc >= N_GRAIN);
    }

    /// An Intel core's A~ block takes an eighth of L2, any other half; the
    /// depth (which cuts the sums) and `nc` are the same.
    #[test]
    fn an_intel_core_keeps_a_smaller_a_block() {
        let xeon = CacheSizes {
            l1d: 48 << 10,
            l2: 2 << 20,
            l3: 480 << 20,
        };
        let (intel, other) = (
            BlockSizes::for_cpu(xeon, 16, true),
            BlockSizes::for_cpu(xeon, 16, false),
        );
        assert_eq!(
            intel,
            BlockSizes {
                mc: 96,
                kc: 512,
                nc: 4096
            }
        );
        assert_eq!(
            other,
            BlockSizes {
                mc: 480,
                kc: 512,
                nc: 4096
            }
        );
        assert_eq!(other, BlockSizes::for_caches(xeon, 16));
        for l2 in [256 << 10, 512 << 10, 1 << 20, 2 << 20, 8 << 20] {
            for l1d in [16 << 10, 32 << 10, 48 << 10] {
                let caches = CacheSizes {
                    l1d,
                    l2,
                    l3: 32 << 20,
                };
                let (i, o) = (
                    BlockSizes::for_cpu(caches, 16, true),
                    BlockSizes::for_cpu(caches, 16, false),
                );
                assert!(
                    i.mc <= o.mc && i.mc % M_GRAIN == 0 && i.mc >= M_GRAIN,
                    "{i:?} {o:?}"
                );
                assert!(i.mc * i.kc * 4 <= (l2 / 8).max(M_GRAIN * i.kc * 4), "{i:?}");
                assert_eq!((i.kc, i.nc), (o.kc, o.nc));
            }
        }
    }
}
