//! What `simdnet bench`'s measurements mean: each GEMM against the roofline,
//! each fused kernel against the bandwidth, and the warnings that the
//! measurements were disturbed.
//!
//! Pure arithmetic on numbers already measured (no timing here), so every
//! verdict can be tested with made-up numbers.
//!
//! Roofline: a GEMM of `f` FLOPs on `b` bytes of least traffic (read A and B,
//! write C once) has intensity `i = f / b`; it cannot run faster than
//! `roof = min(peak, i x bandwidth)`. It is *compute bound* when
//! `i x bandwidth >= peak`, else *memory bound*. The GEMM runs on the whole
//! pool, so it is compared with the all-threads peak and triad bandwidth.

use super::bench::{Fused, GemmShape};
use super::machine::{median, Bandwidth, Rate};

/// The machine's limits as measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Peak fp32 GFLOP/s on one thread.
    pub peak1: Rate,
    /// Peak fp32 GFLOP/s on all the pool's threads.
    pub peak_n: Rate,
    /// GB/s on one thread.
    pub bw1: Bandwidth,
    /// GB/s on all the pool's threads.
    pub bw_n: Bandwidth,
    /// Bytes of each of the three bandwidth arrays.
    pub array_bytes: usize,
    /// Bandwidth runs per pass (the machine is measured in two passes).
    pub bandwidth_runs: usize,
    /// The 1-minute load average before and after the run.
    pub load: [Option<f64>; 2],
}

/// A timed GEMM against the roofline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmStats {
    pub median_s: f64,
    pub best_s: f64,
    /// `2·m·n·k` over the median time.
    pub gflops: f64,
    /// Of the all-threads peak.
    pub percent_of_peak: f64,
    /// FLOPs per byte of the least traffic.
    pub intensity: f64,
    /// `min(peak, intensity x triad bandwidth)`, GFLOP/s.
    pub roof: f64,
    pub compute_bound: bool,
    pub percent_of_roof: f64,
}

impl GemmStats {
    /// The verdict on `shape` from its run times (`None` when it was not timed).
    pub fn new(shape: &GemmShape, times: &[f64], l: &Limits) -> Option<GemmStats> {
        GemmStats::from_work(shape.flops(), shape.min_bytes(), times, l)
    }

    /// The verdict on any work of `flops` FLOPs over `min_bytes` bytes of
    /// least traffic (a convolution pass) from its run times (`None` when it
    /// was not timed).
    pub fn from_work(flops: f64, min_bytes: f64, times: &[f64], l: &Limits) -> Option<GemmStats> {
        if times.is_empty() {
            return None;
        }
        let median_s = median(times);
        let best_s = times.iter().copied().fold(f64::INFINITY, f64::min);
        let gflops = flops / median_s * 1e-9;
        let intensity = flops / min_bytes;
        let (peak, bw) = (l.peak_n.best, l.bw_n.triad.best);
        let roof = peak.min(intensity * bw);
        Some(GemmStats {
            median_s,
            best_s,
            gflops,
            percent_of_peak: 100.0 * gflops / peak,
            intensity,
            roof,
            compute_bound: intensity * bw >= peak,
            percent_of_roof: 100.0 * gflops / roof,
        })
    }

    /// `"compute"` or `"memory"`.
    pub fn bound(&self) -> &'static str {
        if self.compute_bound {
            "compute"
        } else {
            "memory"
        }
    }
}

/// A timed fused kernel against the bandwidth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedStats {
    pub median_s: f64,
    /// Bytes counted like STREAM ([`Fused::bytes_per_element`]) over the median time.
    pub gbs: f64,
    /// Of the triad bandwidth of the threads the kernel runs on.
    pub percent_of_bandwidth: f64,
}

impl FusedStats {
    /// The verdict on `kind` run over `elements` values (`None` when it was not timed).
    pub fn new(kind: Fused, elements: usize, times: &[f64], l: &Limits) -> Option<FusedStats> {
        if times.is_empty() {
            return None;
        }
        let median_s = median(times);
        let gbs = (elements * kind.bytes_per_element()) as f64 / median_s * 1e-9;
        let roof = if kind.parallel() {
            l.bw_n.triad.best
        } else {
            l.bw1.triad.best
        };
        Some(FusedStats {
            median_s,
            gbs,
            percent_of_bandwidth: 100.0 * gbs / roof,
        })
    }
}

/// Signs that the measurements were disturbed (e.g. by other work on the
/// machine): a GEMM faster than the measured peak, an all-threads peak below
/// 75% of `min(threads, cores)` times the one-thread peak, or a load average
/// above half the cores. `gemms` are the timed GEMMs as `(name, verdict)`.
pub fn warnings(l: &Limits, gemms: &[(&str, GemmStats)], threads: usize, cores: usize) -> Vec<String> {
    let mut w = Vec::new();
    if let Some((name, _)) = gemms.iter().find(|(_, s)| s.percent_of_peak > 100.0) {
        w.push(format!(
            "the GEMM {name} ran faster than the measured peak: the peak measurement was disturbed by other load; rerun on a quiet machine"
        ));
    }
    if l.peak_n.best < 0.75 * l.peak1.best * threads.min(cores) as f64 {
        w.push(format!(
            "the all-threads peak ({:.1} GFLOP/s) scales poorly from one thread ({:.1}): other work is probably sharing the cores",
            l.peak_n.best, l.peak1.best
        ));
    }
    let busy: Vec<f64> = l.load.iter().flatten().copied().collect();
    if busy.iter().any(|&x| x > 0.5 * cores as f64) {
        w.push(format!(
            "the load average was {} on {cores} cores during the run: numbers are likely low",
            busy.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" -> ")
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(x: f64) -> Rate {
        Rate { best: x, median: x }
    }

    fn bw(x: f64) -> Bandwidth {
        Bandwidth {
            read: rate(x),
            copy: rate(x),
            triad: rate(x),
        }
    }

    /// 100 GFLOP/s on one thread, 200 on two; 10 GB/s on one thread, 20 on two.
    fn limits(load: f64) -> Limits {
        Limits {
            peak1: rate(100.0),
            peak_n: rate(200.0),
            bw1: bw(10.0),
            bw_n: bw(20.0),
            array_bytes: 1 << 20,
            bandwidth_runs: 3,
            load: [Some(load), None],
        }
    }

    #[test]
    fn the_roofline_decides_the_bound() {
        let l = limits(0.0);
        // square 512: intensity 2·512³ / (4·3·512²) = 85.3 flop/B; 85.3 x 20 GB/s > 200: compute bound.
        let sq = GemmShape::square(512);
        let s = GemmStats::new(&sq, &[2.0, 1.0, 3.0], &l).unwrap();
        assert_eq!((s.median_s, s.best_s), (2.0, 1.0));
        assert!((s.gflops - sq.flops() / 2.0 * 1e-9).abs() < 1e-12);
        assert!(s.compute_bound && s.roof == 200.0 && s.bound() == "compute");
        assert!((s.percent_of_peak - 100.0 * s.gflops / 200.0).abs() < 1e-9);
        // square 4: intensity 0.67 flop/B; 0.67 x 20 = 13.3 GFLOP/s < 200: memory bound.
        let tiny = GemmShape::square(4);
        let s = GemmStats::new(&tiny, &[1e-6], &l).unwrap();
        assert!(!s.compute_bound && s.bound() == "memory");
        assert!((s.roof - tiny.intensity() * 20.0).abs() < 1e-9);
        assert!((s.percent_of_roof - 100.0 * s.gflops / s.roof).abs() < 1e-9);
        assert_eq!(GemmStats::new(&tiny, &[], &l), None);
    }

    #[test]
    fn fused_kernels_are_compared_with_the_bandwidth_of_their_threads() {
        let l = limits(0.0);
        // 1e9 elements x 20 bytes in 2 s = 10 GB/s, against the two-thread 20 GB/s.
        let s = FusedStats::new(Fused::Optimizer, 1_000_000_000, &[2.0], &l).unwrap();
        assert!((s.gbs - 10.0).abs() < 1e-9 && (s.percent_of_bandwidth - 50.0).abs() < 1e-9);
        // A one-thread kernel: 1e9 x 8 bytes in 1 s = 8 GB/s, against the one-thread 10 GB/s.
        let s = FusedStats::new(Fused::SoftmaxCe, 1_000_000_000, &[1.0], &l).unwrap();
        assert!((s.percent_of_bandwidth - 80.0).abs() < 1e-9);
        assert_eq!(FusedStats::new(Fused::SoftmaxCe, 10, &[], &l), None);
    }

    #[test]
    fn warnings_only_when_something_is_off() {
        let l = limits(0.5);
        let fine = GemmStats::new(&GemmShape::square(512), &[1.0], &l).unwrap();
        assert!(warnings(&l, &[("square 512", fine)], 2, 2).is_empty());
        // Faster than the peak.
        let fast = GemmStats {
            percent_of_peak: 120.0,
            ..fine
        };
        let w = warnings(&l, &[("a", fine), ("b", fast)], 2, 2);
        assert!(w.len() == 1 && w[0].contains("GEMM b ran faster"), "{w:?}");
        // Two threads giving only 1.2x one thread (below 0.75 x 2).
        let poor = Limits {
            peak_n: rate(120.0),
            ..limits(0.5)
        };
        let w = warnings(&poor, &[], 2, 2);
        assert!(w.len() == 1 && w[0].contains("scales poorly"), "{w:?}");
        // ... but not on a one-core machine.
        assert!(warnings(&poor, &[], 2, 1).is_empty());
        // A busy machine: load 1.5 on 2 cores.
        let w = warnings(&limits(1.5), &[], 2, 2);
        assert!(
            w.len() == 1 && w[0].contains("load average was 1.50 on 2 cores"),
            "{w:?}"
        );
    }
}
