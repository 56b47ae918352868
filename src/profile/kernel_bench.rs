//! Each SIMD micro-kernel alone, on one register tile whose packed panels
//! sit in L1: the most the kernel's loop can give on this core, verified,
//! then timed on one thread.
//!
//! The GEMM rows of `simdnet bench` fall short of the FMA loop's peak for
//! two reasons this separates: the kernel's own loop (its loads of A and B
//! beside the multiply-adds), and everything around it (packing, edge
//! tiles, C's traffic, the caches). On a Sapphire Rapids-class Xeon, for
//! one, `simd-12x32` ran at 86-88% of the FMA loop in L1 (14 loads for 24
//! FMAs a step; the same loop hand-written in assembly gave the same 86%,
//! and without its loads 100%), and the GEMM's large shapes at 66-70%.

use crate::gemm::kernel::{self, MicroKernel, TileOut};
use crate::gemm::loops::Aligned;
use std::hint::black_box;
use std::time::Instant;

/// One micro-kernel's result.
#[derive(Clone, Debug)]
pub struct KernelResult {
    /// The kernel's name ([`MicroKernel::name`]).
    pub name: &'static str,
    /// Its register tile, rows x columns of C.
    pub mr: usize,
    pub nr: usize,
    /// The depth of each call: both panels fill at most 3/4 of the L1d.
    pub kc: usize,
    /// What this build's GEMM uses it for ([`role`]).
    pub role: String,
    /// Its tile checked against an `f64` sum of the same panels.
    pub verified: Result<(), String>,
    /// GFLOP/s of each timed run (empty when not verified).
    pub samples: Vec<f64>,
}

/// The columns `n` of the products ([`PROBED_N`], depth 512) for which this
/// build's GEMM picks `k` on this CPU ([`kernel::choose_for`]), as
/// "n = 64, 128"; "-" for none (a kernel for the convolutions' gathered
/// inputs, for other depths, or one only `SIMDNET_KERNEL` or a tuning file
/// would pick).
pub fn role(k: &MicroKernel) -> String {
    let ns: Vec<String> = PROBED_N
        .iter()
        .filter(|&&n| kernel::choose_for(n, 512).name == k.name)
        .map(|n| n.to_string())
        .collect();
    if ns.is_empty() {
        "-".to_string()
    } else {
        format!("n = {}", ns.join(", "))
    }
}

/// The product widths [`role`] asks about: the narrow and lanes-along-m
/// ranges, a CNN's filters, the networks' hidden and input widths.
pub const PROBED_N: [usize; 9] = [8, 10, 12, 16, 32, 64, 128, 512, 784];

/// The depth for an `mr x nr` tile with an L1d of `l1d` bytes: the packed
/// panels (`4 · (mr + nr) · kc` bytes) within 3/4 of it, a multiple of 8,
/// between 16 and 256.
pub fn depth_in_l1(mr: usize, nr: usize, l1d: usize) -> usize {
    let fits = l1d * 3 / 4 / (4 * (mr + nr));
    (fits / 8 * 8).clamp(16, 256)
}

/// The kernel's packed panels and its tile: A~ (`kc` steps of `mr`
/// values), B~ (`kc` steps of `nr`), both 64-byte aligned in the GEMM's own
/// packing buffers (a vector load across two lines costs more), and C
/// (`mr x nr`, rows `nr` apart).
struct Tile {
    kc: usize,
    a: Aligned,
    b: Aligned,
    c: Vec<f32>,
}

impl Tile {
    fn new(k: &MicroKernel, kc: usize) -> Tile {
        // small integers over 16: every product and partial sum exact in f32
        let mut t = Tile {
            kc,
            a: Aligned::default(),
            b: Aligned::default(),
            c: vec![f32::NAN; k.mr * k.nr],
        };
        for (i, x) in t.a.get(k.mr * kc, 0).iter_mut().enumerate() {
            *x = ((i * 7 + 3) % 13) as f32 / 16.0 - 0.375;
        }
        for (i, x) in t.b.get(k.nr * kc, 0).iter_mut().enumerate() {
            *x = ((i * 5 + 1) % 11) as f32 / 16.0 - 0.3125;
        }
        t
    }

    /// A~ and B~ (the buffers hold exactly these lengths from [`Tile::new`] on).
    fn panels(&mut self, k: &MicroKernel) -> (*const f32, *const f32) {
        let a = self.a.get(k.mr * self.kc, 0).as_ptr();
        (a, self.b.get(k.nr * self.kc, 0).as_ptr())
    }

    /// `C = A~ · B~` by the kernel (beta 0: C's old values are not read).
    fn run(&mut self, k: &MicroKernel) {
        let out = TileOut {
            c: self.c.as_mut_ptr(),
            rs_c: k.nr,
            rows: k.mr,
            cols: k.nr,
            beta: 0.0,
            epilogue: None,
            dropout: None,
            next: None,
        };
        // SAFETY: A~ holds mr · kc floats, B~ nr · kc, and C is an mr x nr
        // tile with rows nr apart, owned here and aliased nowhere else.
        let (a, b) = self.panels(k);
        unsafe { (k.run)(self.kc, a, b, &out) }
    }

    /// Every element of C against the `f64` sum of its products.
    fn check(&mut self, k: &MicroKernel) -> Result<(), String> {
        let (kc, c) = (self.kc, &self.c);
        let a = &*self.a.get(k.mr * kc, 0);
        let b = &*self.b.get(k.nr * kc, 0);
        for i in 0..k.mr {
            for j in 0..k.nr {
                let want: f64 = (0..kc)
                    .map(|p| a[p * k.mr + i] as f64 * b[p * k.nr + j] as f64)
                    .sum();
                let got = c[i * k.nr + j];
                if got as f64 != want {
                    return Err(format!(
                        "micro-kernel {}: C[{i}][{j}] = {got}, expected {want} (depth {kc})",
                        k.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Runs `k` once on a tile of depth `kc` and checks every element of C.
pub fn verify_kernel(k: &MicroKernel, kc: usize) -> Result<(), String> {
    let mut t = Tile::new(k, kc);
    t.run(k);
    t.check(k)
}

/// `runs` timings of `k` on one tile of depth `kc` in L1, on this thread,
/// each of about `seconds` (after a warm-up): GFLOP/s per run.
pub fn time_kernel(k: &MicroKernel, kc: usize, runs: usize, seconds: f64) -> Vec<f64> {
    let mut t = Tile::new(k, kc);
    let flops = 2.0 * (k.mr * k.nr * kc) as f64;
    // calibrate: calls for about `seconds`, the panels warm in L1
    let mut calls = 64usize;
    loop {
        let start = Instant::now();
        for _ in 0..calls {
            t.run(k);
        }
        let dt = start.elapsed().as_secs_f64();
        if dt > seconds / 4.0 || calls > 1 << 30 {
            calls = ((calls as f64) * seconds / dt.max(1e-9)).max(1.0) as usize;
            break;
        }
        calls *= 4;
    }
    (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                t.run(k);
                black_box(&mut t.c);
            }
            flops * calls as f64 / start.elapsed().as_secs_f64() * 1e-9
        })
        .collect()
}

/// Every SIMD micro-kernel of this build, verified, then timed `runs` times
/// for about `seconds` each on this thread; `say` gets a line before each.
pub fn run_all(runs: usize, seconds: f64, say: &(dyn Fn(&str) + Sync)) -> Vec<KernelResult> {
    let l1d = crate::gemm::blocking::l1d_bytes();
    kernel::SIMD_KERNELS
        .iter()
        .map(|k| {
            say(&format!("micro-kernel {} in L1...", k.name));
            let kc = depth_in_l1(k.mr, k.nr, l1d);
            let verified = verify_kernel(k, kc);
            let samples = match verified {
                Ok(()) => time_kernel(k, kc, runs, seconds),
                Err(_) => Vec::new(),
            };
            KernelResult {
                name: k.name,
                mr: k.mr,
                nr: k.nr,
                kc,
                role: role(k),
                verified,
                samples,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_keeps_both_panels_within_three_quarters_of_l1() {
        for (mr, nr) in [(12, 32), (6, 64), (16, 16), (6, 16), (32, 10)] {
            for l1d in [32 << 10, 48 << 10, 64 << 10] {
                let kc = depth_in_l1(mr, nr, l1d);
                assert!(
                    kc.is_multiple_of(8) && (16..=256).contains(&kc),
                    "{mr}x{nr}, {l1d}: {kc}"
                );
                assert!(4 * (mr + nr) * kc <= l1d * 3 / 4, "{mr}x{nr}, {l1d}: {kc}");
                assert!(
                    kc == 256 || 4 * (mr + nr) * (kc + 8) > l1d * 3 / 4,
                    "{mr}x{nr}, {l1d}: {kc} not the deepest"
                );
            }
        }
        // a tiny L1 still gets the smallest depth
        assert_eq!(depth_in_l1(12, 32, 1 << 10), 16);
    }

    #[test]
    fn every_kernel_computes_its_tile_and_is_timed() {
        for k in kernel::SIMD_KERNELS {
            for kc in [16, 24, depth_in_l1(k.mr, k.nr, 48 << 10)] {
                verify_kernel(k, kc).unwrap();
            }
            let rates = time_kernel(k, 16, 2, 0.001);
            assert_eq!(rates.len(), 2);
            assert!(
                rates.iter().all(|r| r.is_finite() && *r > 0.0),
                "{}: {rates:?}",
                k.name
            );
        }
    }

    #[test]
    fn a_wrong_tile_is_caught_and_named() {
        let k = kernel::default_kernel();
        let mut t = Tile::new(k, 32);
        t.run(k);
        t.check(k).unwrap();
        t.c[k.nr + 1] += 1.0 / 16.0;
        let err = t.check(k).unwrap_err();
        assert_eq!(
            err,
            format!(
                "micro-kernel {}: C[1][1] = {}, expected {} (depth 32)",
                k.name,
                t.c[k.nr + 1],
                t.c[k.nr + 1] as f64 - 1.0 / 16.0
            )
        );
        // every probed width is named by exactly one kernel, the default one 512
        let roles: Vec<String> = kernel::SIMD_KERNELS.iter().map(role).collect();
        for n in PROBED_N {
            let named = roles
                .iter()
                .filter(|r| {
                    r.trim_start_matches("n = ")
                        .split(", ")
                        .any(|x| x == n.to_string())
                })
                .count();
            assert_eq!(named, 1, "n = {n}: {roles:?}");
        }
        assert!(role(kernel::default_kernel())
            .split(", ")
            .any(|x| x.ends_with("512")));
    }
}
