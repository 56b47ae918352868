//! Block sizes: how much of each operand one pass of a loop keeps in cache.
//!
//! In BLIS terms (see [`super::loops`]):
//! - `kc`: the largest depth of one rank-`kc` update. A packed micro-panel
//!   of B (`kc x NR` floats) should sit in L1 while the micro-kernel streams
//!   micro-panels of A past it. The loops balance it: `k` is cut into
//!   `ceil(k / kc)` blocks of equal depth (the last one shorter by the
//!   rounding), not full `kc` blocks and a thin remainder.
//! - `mc`: rows of the packed block A~ (`mc x kc` floats), which lives in L2.
//! - `nc`: columns of the packed block B~ (`kc x nc` floats), which lives in L3.
//!
//! Defaults come from the cache sizes in `/sys/devices/system/cpu/cpu0/cache`,
//! can be overridden with the environment variables `SIMDNET_MC`,
//! `SIMDNET_KC`, `SIMDNET_NC` (read once) and at run time with
//! [`set_block_sizes`]. The loops round `mc` up to a multiple of the
//! micro-kernel's `MR` and `nc` up to a multiple of its `NR`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

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
    pub l1d: usize,
    pub l2: usize,
    pub l3: usize,
}

impl CacheSizes {
    /// The sizes reported by Linux for cpu0, each falling back to a typical
    /// modern x86 value (32 KiB, 1 MiB, 32 MiB) when not readable.
    pub fn detect() -> CacheSizes {
        let mut sizes = CacheSizes {
            l1d: 32 << 10,
            l2: 1 << 20,
            l3: 32 << 20,
        };
        let base = "/sys/devices/system/cpu/cpu0/cache";
        for index in 0..8 {
            let read = |f: &str| std::fs::read_to_string(format!("{base}/index{index}/{f}")).ok();
            let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size")) else {
                continue;
            };
            let Some(bytes) = parse_size(size.trim()) else {
                continue;
            };
            match (level.trim(), kind.trim()) {
                ("1", "Data") => sizes.l1d = bytes,
                ("2", "Unified" | "Data") => sizes.l2 = bytes,
                ("3", "Unified" | "Data") => sizes.l3 = bytes,
                _ => {}
            }
        }
        sizes
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
    Some(n * mult)
}

/// Defaults are multiples of these. The `MR` of the kernels chosen by shape
/// (16x16 on AVX-512; 6x16 and 12x8 on AVX2) and of most tuning kernels
/// divides 48 and their `NR` divides 64, so the default `mc` and `nc` are
/// whole micro-panels for them. Not for all: `simd-14x32` (14 does not
/// divide 48), `simd-8x48` and `simd-4x24` (48 and 24 do not divide 64).
/// For those the loops round `mc` and `nc` up to the next multiple of
/// `MR` and `NR`, as they do for any size set by hand.
const M_GRAIN: usize = 48;
const N_GRAIN: usize = 64;

impl BlockSizes {
    /// Block sizes derived from `caches` for a micro-kernel whose B
    /// micro-panel is `nr` floats wide:
    /// - `kc`: a `kc x nr` B micro-panel fills L1 (measured on Zen 4: with
    ///   `nr = 16`, `kc = 512` beats 256 by 1-5%, and with `nr = 32`, 256
    ///   beats 128: C is loaded and stored less often, and the A
    ///   micro-panel streams through from L2 well enough);
    /// - `mc`: the `mc x kc` A~ block fills half of L2;
    /// - `nc`: the `kc x nc` B~ block takes at most a quarter of L3 (shared
    ///   by the cores), capped at 4096 columns.
    pub fn for_caches(caches: CacheSizes, nr: usize) -> BlockSizes {
        let f = std::mem::size_of::<f32>();
        let kc = (caches.l1d / (nr * f)).clamp(64, 512) / 16 * 16;
        let mc = (caches.l2 / 2 / (kc * f)).clamp(M_GRAIN, 960) / M_GRAIN * M_GRAIN;
        let nc = (caches.l3 / 4 / (kc * f)).clamp(N_GRAIN, 4096) / N_GRAIN * N_GRAIN;
        BlockSizes { mc, kc, nc }
    }

    /// The defaults for this machine and the default micro-kernel, with the
    /// `SIMDNET_MC` / `SIMDNET_KC` / `SIMDNET_NC` overrides applied.
    pub fn from_env() -> BlockSizes {
        let mut b = BlockSizes::for_caches(CacheSizes::detect(), super::kernel::default_kernel().nr);
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        if let Some(v) = var("SIMDNET_MC") {
            b.mc = v;
        }
        if let Some(v) = var("SIMDNET_KC") {
            b.kc = v;
        }
        if let Some(v) = var("SIMDNET_NC") {
            b.nc = v;
        }
        b.sanitised()
    }

    /// Every size at least 1.
    fn sanitised(self) -> BlockSizes {
        BlockSizes {
            mc: self.mc.max(1),
            kc: self.kc.max(1),
            nc: self.nc.max(1),
        }
    }
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

/// The block sizes the next GEMM call will use.
pub fn block_sizes() -> BlockSizes {
    ensure_init();
    BlockSizes {
        mc: MC.load(Ordering::Relaxed),
        kc: KC.load(Ordering::Relaxed),
        nc: NC.load(Ordering::Relaxed),
    }
}

/// Sets the block sizes for all later GEMM calls (process-wide; zeros become 1).
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
}
