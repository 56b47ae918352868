//! Probes of this machine's limits: peak fp32 FLOP/s and memory bandwidth.
//!
//! - **Peak**: each thread runs a loop of independent multiply-adds
//!   `x = x·a + b` ([`crate::simd::mul_add`], fused where the build fuses) on
//!   [`ACCUMULATORS`] vectors of the kernels' type [`crate::simd::V`]
//!   (`f32x16` with AVX-512F, else `f32x8`, which is two registers with SSE2
//!   or NEON). That many independent chains cover the FMA latency times the
//!   FMA ports (Zen 4: 4 cycles x 2 ports of 256 bits = 8 in flight). One
//!   multiply-add is 2 FLOPs per lane. The operands and the result go through
//!   `black_box`, so the loop cannot be removed or folded.
//! - **Bandwidth** (STREAM-like, arrays much larger than the last-level
//!   cache): *read* sums an array; *copy* `c = a`; *triad* `a = b + s·c`.
//!   Bytes are counted as STREAM does: read 4 per element, copy 8, triad 12
//!   (write-allocate traffic is not counted).
//!
//! Multi-threaded runs use one rayon `broadcast` (one loop per thread, each
//! on its own contiguous part of the arrays), timed together from the
//! calling thread. Each measurement is repeated; the best and the median are kept.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use crate::simd::{self, V};

/// `f32` lanes of the vectors the probes use (those of the kernels).
pub const LANES: usize = simd::LANES;
/// Independent accumulator registers in the FMA loop.
pub const ACCUMULATORS: usize = 12;

/// The best and the median of repeated measurements of a rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// The best of the runs.
    pub best: f64,
    /// The median of the runs.
    pub median: f64,
}

impl Rate {
    /// From rates measured in each run (higher is better).
    pub fn from_samples(samples: &[f64]) -> Rate {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        Rate {
            best: v.last().copied().unwrap_or(0.0),
            median: median_sorted(&v),
        }
    }
}

/// The median of a sorted slice (0 when empty).
fn median_sorted(v: &[f64]) -> f64 {
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// The median of unsorted values.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    median_sorted(&v)
}

/// Most calls a timing sample makes ([`calls_per_sample`]).
pub const MAX_CALLS_PER_SAMPLE: usize = 100_000;

/// How many back-to-back calls make a sample of about `seconds`, given
/// `time(calls)`, the seconds per call of a run of `calls` calls: from the
/// fastest time per call of runs of 1, 2, 4, ... calls, at least four runs,
/// until a run lasts a quarter of `seconds`. One call timed alone can take
/// a thousand times the others: from inside a rayon pool whose workers fell
/// asleep, the first call of a 6 µs product once took 5 ms (Zen 4). Sized
/// on that one call, every sample was one call on cold caches, and `cargo
/// bench --bench gemm` read the 64³ product at half its speed in 4 runs of
/// 14.
pub fn calls_per_sample(seconds: f64, mut time: impl FnMut(usize) -> f64) -> usize {
    let (mut calls, mut per_call) = (1usize, f64::INFINITY);
    for runs in 1.. {
        per_call = per_call.min(time(calls).max(1e-9));
        if (runs >= 4 && calls as f64 * per_call >= seconds / 4.0) || calls >= MAX_CALLS_PER_SAMPLE {
            break;
        }
        calls *= 2;
    }
    ((seconds / per_call).ceil() as usize).clamp(1, MAX_CALLS_PER_SAMPLE)
}

/// Runs `iters` rounds of [`ACCUMULATORS`] independent vector FMAs; returns a
/// value depending on every result (so nothing can be optimised away).
#[inline(never)]
fn fma_loop(iters: u64) -> f32 {
    let a = black_box(V::splat(0.999_999));
    let b = black_box(V::splat(1e-6));
    let mut acc = [V::splat(0.0); ACCUMULATORS];
    for (i, x) in acc.iter_mut().enumerate() {
        *x = black_box(V::splat(i as f32));
    }
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = simd::mul_add(*x, a, b);
        }
    }
    let mut sum = V::splat(0.0);
    for x in acc {
        sum += x;
    }
    black_box(sum.reduce_add())
}

/// FLOPs done by one `fma_loop(iters)`.
fn fma_loop_flops(iters: u64) -> f64 {
    iters as f64 * (ACCUMULATORS * LANES * 2) as f64
}

/// Peak fp32 GFLOP/s of `pool`'s threads, all running the FMA loop at once:
/// one sample per run, each run lasting about `seconds` (samples of runs made
/// at different times can then be merged into one [`Rate`]).
pub fn peak_samples(pool: &rayon::ThreadPool, seconds: f64, runs: usize) -> Vec<f64> {
    // Calibrate on one thread: iterations for about `seconds`.
    let mut iters = 1u64 << 16;
    loop {
        let t = Instant::now();
        fma_loop(iters);
        let dt = t.elapsed().as_secs_f64();
        if dt > 0.02 || iters > 1 << 40 {
            iters = ((iters as f64) * seconds / dt).max(1.0) as u64;
            break;
        }
        iters *= 4;
    }
    let threads = pool.current_num_threads();
    (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            pool.broadcast(|_| fma_loop(black_box(iters)));
            threads as f64 * fma_loop_flops(iters) / t.elapsed().as_secs_f64() * 1e-9
        })
        .collect()
}

/// Memory bandwidth in GB/s (1e9 bytes per second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth {
    /// Summing one array.
    pub read: Rate,
    /// `c = a`.
    pub copy: Rate,
    /// `a = b + s·c`.
    pub triad: Rate,
}

/// The three arrays of the bandwidth probe, equal in size, first touched when created.
pub struct StreamArrays {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl StreamArrays {
    /// Allocates and first-touches three arrays of `bytes_each` bytes.
    pub fn new(bytes_each: usize) -> StreamArrays {
        let n = (bytes_each / 4).max(LANES * 64);
        StreamArrays {
            a: vec![1.0; n],
            b: vec![2.0; n],
            c: vec![0.5; n],
        }
    }
    /// Bytes of one array.
    pub fn bytes_each(&self) -> usize {
        self.a.len() * 4
    }
}

/// Sums a slice with four independent vector accumulators.
#[inline(never)]
fn read_kernel(x: &[f32]) -> f32 {
    let mut acc = [V::splat(0.0); 4];
    let mut chunks = x.chunks_exact(4 * LANES);
    for c in &mut chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            let v: [f32; LANES] = c[j * LANES..(j + 1) * LANES].try_into().expect("lanes");
            *a += V::from(v);
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    (acc[0] + acc[1] + acc[2] + acc[3]).reduce_add() + tail
}

#[inline(never)]
fn copy_kernel(dst: &mut [f32], src: &[f32]) {
    dst.copy_from_slice(src);
}

#[inline(never)]
fn triad_kernel(a: &mut [f32], b: &[f32], c: &[f32], s: f32) {
    for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
        *a = b + s * c;
    }
}

/// Splits `0..n` into `parts` contiguous ranges.
fn ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    (0..parts).map(|i| i * n / parts..(i + 1) * n / parts).collect()
}

/// The GB/s of each run of read, copy and triad (to merge runs made at different times).
#[derive(Clone, Debug, Default)]
pub struct BandwidthSamples {
    /// GB/s of each *read* run.
    pub read: Vec<f64>,
    /// GB/s of each *copy* run.
    pub copy: Vec<f64>,
    /// GB/s of each *triad* run.
    pub triad: Vec<f64>,
}

impl BandwidthSamples {
    /// Adds the runs of `other`.
    pub fn merge(&mut self, other: BandwidthSamples) {
        self.read.extend(other.read);
        self.copy.extend(other.copy);
        self.triad.extend(other.triad);
    }
    /// The best and median of every run.
    pub fn rates(&self) -> Bandwidth {
        Bandwidth {
            read: Rate::from_samples(&self.read),
            copy: Rate::from_samples(&self.copy),
            triad: Rate::from_samples(&self.triad),
        }
    }
}

/// STREAM-like read, copy and triad bandwidth of `pool`'s threads, one
/// sample per run (see [`BandwidthSamples::rates`]).
pub fn bandwidth_samples(
    pool: &rayon::ThreadPool,
    arrays: &mut StreamArrays,
    runs: usize,
) -> BandwidthSamples {
    let threads = pool.current_num_threads();
    let n = arrays.a.len();
    let parts = ranges(n, threads);
    let bytes = n as f64 * 4.0;
    let (mut read, mut copy, mut triad) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        // read
        let a = &arrays.a;
        let t = Instant::now();
        pool.broadcast(|ctx| black_box(read_kernel(&a[parts[ctx.index()].clone()])));
        read.push(bytes / t.elapsed().as_secs_f64() * 1e-9);
        // copy: c = a
        {
            let c_parts: Vec<Mutex<&mut [f32]>> = split_mut(&mut arrays.c, &parts);
            let a = &arrays.a;
            let t = Instant::now();
            pool.broadcast(|ctx| {
                let mut c = c_parts[ctx.index()].lock().unwrap_or_else(|e| e.into_inner());
                copy_kernel(&mut c, &a[parts[ctx.index()].clone()]);
            });
            copy.push(2.0 * bytes / t.elapsed().as_secs_f64() * 1e-9);
        }
        // triad: a = b + s·c
        {
            let a_parts: Vec<Mutex<&mut [f32]>> = split_mut(&mut arrays.a, &parts);
            let (b, c) = (&arrays.b, &arrays.c);
            let s = black_box(0.5f32);
            let t = Instant::now();
            pool.broadcast(|ctx| {
                let r = parts[ctx.index()].clone();
                let mut a = a_parts[ctx.index()].lock().unwrap_or_else(|e| e.into_inner());
                triad_kernel(&mut a, &b[r.clone()], &c[r], s);
            });
            triad.push(3.0 * bytes / t.elapsed().as_secs_f64() * 1e-9);
        }
        black_box(&mut arrays.a);
    }
    BandwidthSamples { read, copy, triad }
}

/// The round trip of one cache line between two threads, in nanoseconds
/// (median of 3 runs of up to 20,000 ping-pongs through an atomic, each
/// stopped after 0.1 s), or `None` on a
/// single core. It is what every fork/join of a training step pays a few
/// times. Measured on a 2-vCPU Zen 5 VM: 40-130 ns most of the time, but for
/// long stretches 400-900 ns (the vCPUs placed far apart on the host), when
/// the workshop network's 2-thread epoch took twice as long.
pub fn core_round_trip_ns() -> Option<f64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    const TRIPS: u64 = 20_000;
    // With the cores oversubscribed a trip can wait for a time slice: each
    // run stops after this long, timed over the trips it made.
    const MOST_SECONDS: f64 = 0.1;
    const STOP: u64 = u64::MAX;
    let mut runs = Vec::new();
    for _ in 0..3 {
        let ball = AtomicU64::new(0);
        let per_trip = std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..TRIPS {
                    loop {
                        match ball.load(Ordering::Acquire) {
                            STOP => return,
                            v if v == 2 * i + 1 => break,
                            _ => std::hint::spin_loop(),
                        }
                    }
                    ball.store(2 * i + 2, Ordering::Release);
                }
            });
            let t = std::time::Instant::now();
            let mut trips = 0;
            while trips < TRIPS {
                ball.store(2 * trips + 1, Ordering::Release);
                while ball.load(Ordering::Acquire) != 2 * trips + 2 {
                    std::hint::spin_loop();
                }
                trips += 1;
                if trips % 256 == 0 && t.elapsed().as_secs_f64() > MOST_SECONDS {
                    ball.store(STOP, Ordering::Release);
                    break;
                }
            }
            t.elapsed().as_secs_f64() / trips as f64
        });
        runs.push(per_trip * 1e9);
    }
    Some(median(&runs))
}

/// The 1-minute load average (from `/proc/loadavg`), if readable: other work
/// on the machine lowers every measurement.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The CPU's model name, e.g. `AMD EPYC 9R45 ...`: the first `model name`
/// (x86) or `Model` (ARM boards) line of `/proc/cpuinfo`, read at most 256 KiB
/// deep, with runs of spaces collapsed; `unknown CPU` where there is none.
pub fn cpu_model() -> String {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open("/proc/cpuinfo").and_then(|f| f.take(256 << 10).read_to_string(&mut text));
    if read.is_err() {
        return "unknown CPU".into();
    }
    model_from_cpuinfo(&text).unwrap_or_else(|| "unknown CPU".into())
}

/// The model name in the text of `/proc/cpuinfo`, with the x86 family and
/// model numbers when given (`AMD EPYC (family 26, model 2)`: a Zen 5).
fn model_from_cpuinfo(text: &str) -> Option<String> {
    let field = |want: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == want)
                .then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|v| !v.is_empty() && v.chars().all(|c| !c.is_control()))
        })
    };
    let name = field("model name").or_else(|| field("Model"))?;
    Some(match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{name} (family {f}, model {m})"),
        _ => name,
    })
}

/// The machine line stated with measured figures: CPU model, its SIMD ISA and
/// lanes, the build's, the threads and the date (UTC), e.g. `AMD EPYC 9R45
/// (CPU AVX-512 (16 lanes); build AVX-512 (16 lanes)), 2 threads, 2026-11-30`.
pub fn machine_line(threads: usize) -> String {
    let cpu = simd::cpu_features();
    let cpu: Vec<&str> = cpu.iter().map(String::as_str).collect();
    let built: Vec<&str> = simd::TARGET_FEATURES
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect();
    format!(
        "{} (CPU {}; build {}), {threads} thread{}, {}",
        cpu_model(),
        simd::isa_of(&cpu),
        simd::isa_of(&built),
        if threads == 1 { "" } else { "s" },
        today_utc()
    )
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's days-to-civil conversion: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Disjoint mutable parts of `v` for the given contiguous ranges (which start at 0).
fn split_mut<'a>(mut v: &'a mut [f32], parts: &[std::ops::Range<usize>]) -> Vec<Mutex<&'a mut [f32]>> {
    let mut out = Vec::with_capacity(parts.len());
    for r in parts {
        let (head, tail) = v.split_at_mut(r.len());
        out.push(Mutex::new(head));
        v = tail;
    }
    out
}

/// A rayon pool of exactly `threads` threads.
pub fn pool(threads: usize) -> crate::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| crate::Error::Invalid(format!("cannot start {threads} threads: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_round_trip_is_a_plausible_time_on_two_cores() {
        match core_round_trip_ns() {
            // a cache line's round trip: more than a nanosecond, and finite.
            // With the cores oversubscribed (other tests running on both) a
            // trip can wait for a time slice of the scheduler, several
            // milliseconds: 1 ms as the bound failed one `cargo test --lib`
            // in three on a 2-core Zen 5 (portable build)
            Some(ns) => assert!((1.0..1e8).contains(&ns), "{ns} ns"),
            None => assert!(std::thread::available_parallelism().map_or(1, |n| n.get()) < 2),
        }
    }

    /// A slow first call does not size the samples; a steady time does.
    #[test]
    fn samples_are_sized_on_the_fastest_calls() {
        // 5 ms for the first call alone, then 6 µs a call
        let mut first = true;
        let calls = calls_per_sample(1.5e-3, |_| if std::mem::take(&mut first) { 5e-3 } else { 6e-6 });
        assert_eq!(calls, 250);
        assert_eq!(calls_per_sample(1e-3, |_| 1e-5), 100);
        // calls longer than a sample: one call each
        assert_eq!(calls_per_sample(1e-3, |_| 1.0), 1);
        // calls too short to time: capped
        assert_eq!(calls_per_sample(1.0, |_| 0.0), MAX_CALLS_PER_SAMPLE);
        // the runs grow until one lasts a quarter sample, at least four of them
        let mut runs = Vec::new();
        calls_per_sample(1e-3, |calls| {
            runs.push(calls);
            1e-6
        });
        assert_eq!(runs, [1, 2, 4, 8, 16, 32, 64, 128, 256]);
    }

    #[test]
    fn probes_do_their_arithmetic() {
        // x -> x·a + b converges, stays finite.
        assert!(fma_loop(1000).is_finite());
        let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(read_kernel(&x), 499500.0);
        let mut a = vec![0.0; 5];
        triad_kernel(&mut a, &[1.0; 5], &[2.0; 5], 0.5);
        assert_eq!(a, vec![2.0; 5]);
        assert_eq!(ranges(10, 3), vec![0..3, 3..6, 6..10]);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn dates_and_cpu_models() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_422), (2025, 11, 30));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let text =
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD  EPYC 7B13 64-Core Processor\n";
        assert_eq!(
            model_from_cpuinfo(text).as_deref(),
            Some("AMD EPYC 7B13 64-Core Processor")
        );
        let zen5 = "cpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n";
        assert_eq!(
            model_from_cpuinfo(zen5).as_deref(),
            Some("AMD EPYC (family 26, model 2)")
        );
        assert_eq!(model_from_cpuinfo("processor: 0\n"), None);
    }
}
