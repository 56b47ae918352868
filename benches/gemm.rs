//! GEMM throughput: simdnet against the `gemm` crate and `matrixmultiply`,
//! on the shapes of the network (issue 12's table), in one process.
//!
//! Run with `cargo bench --bench gemm` (about half a minute) or
//! `SIMDNET_BENCH_FULL=1 cargo bench --bench gemm` (more samples, square
//! 2048, the 10-wide output layer with k = 16, and simdnet with u8 A).
//! A word argument keeps only the shapes whose name or size contains it
//! (`cargo bench --bench gemm -- 784`). `SIMDNET_BENCH_OURS_ONLY=1` times
//! simdnet alone (for tuning; the peers show as NaN).
//! `SIMDNET_BENCH_KERNELS=auto,gemm,mm` times simdnet (and any kernels
//! named) against the peers on one thread, the best thread CPU time of
//! the rounds; `SIMDNET_BENCH_COLD=1` with it flushes the caches before
//! every call.
//!
//! How every library is timed, the same way:
//! - warm buffers, `f32` inputs, `C = A·B` (`beta = 0`), the same storage
//!   (transposed operands are the same strided views for every library);
//! - four modes: 1 thread and 2 threads, each called from the main thread
//!   and from inside the rayon pool (the training loop runs inside the pool).
//!   1 thread: simdnet `Parallelism::Sequential`, gemm `Parallelism::None`,
//!   matrixmultiply (built without its `threading` feature: always one
//!   thread, so its 1-thread time also stands in its 2-thread columns);
//!   2 threads: rayon's global pool of 2 threads, simdnet
//!   `Parallelism::Rayon`, gemm `Parallelism::Rayon(2)`;
//! - samples interleaved: each round times every (library, mode) once, so
//!   a burst of load from another process hits them all alike, and the
//!   libraries of a mode take turns going first (the first 2-thread call
//!   after the 1-thread modes wakes the pool's sleeping workers: with a
//!   fixed order simdnet always paid that, up to 10% on the 16-wide
//!   shapes from inside the pool); the cell is the median over the rounds
//!   of the time per call.
//!
//! The ratio columns are simdnet's GFLOP/s over the best peer's in that
//! mode (>= 0.97 counts as level). Which instruction set the peers use is
//! printed: they choose at run time (see `peer_isa`). To compare an AVX2
//! build with peers held to AVX2 (a Zen 3), build the bench as
//! `MMTEST_FEATURE=avx,avx2,fma RUSTFLAGS="-C target-cpu=znver3"
//! cargo bench --bench gemm --target-dir target-avx2`.
//!
//! Every library's result is checked against `gemm::reference` (on a band
//! of rows) before it is timed.

use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::gemm::{self, reference, Epilogue, Parallelism};
use simdnet::matrix::{Element, MatMut, MatRef};
use simdnet::profile::machine::calls_per_sample;
use std::hint::black_box;
use std::time::Instant;

include!("common/peers.rs");

/// One product to time: `C (m x n) = A (m x k) · B (k x n)`.
struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    /// A is a transposed view (`Xᵀ·dZ`).
    ta: bool,
    /// B is a transposed view (`dZ·Wᵀ`).
    tb: bool,
}

const fn shape(name: &'static str, m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Shape {
    Shape {
        name,
        m,
        n,
        k,
        ta,
        tb,
    }
}

/// Row-major storage of a `rows x cols` operand, or of its transpose when
/// `trans` (the view is then `.t()`). Returns `(data, rs, cs)`.
fn storage<T: Copy>(rows: usize, cols: usize, trans: bool, vals: &[T]) -> (Vec<T>, usize, usize) {
    if !trans {
        (vals.to_vec(), cols, 1)
    } else {
        let mut d = vals.to_vec();
        for i in 0..rows {
            for j in 0..cols {
                d[j * rows + i] = vals[i * cols + j];
            }
        }
        (d, 1, rows)
    }
}

/// Checks rows `0..8` and the last 8 rows of `c` against the reference.
fn verify<T: Element>(who: &str, a: MatRef<T>, b: MatRef<f32>, c: &[f32], n: usize) {
    let m = a.rows();
    let bands = [(0, m.min(8)), (m.saturating_sub(8), m)];
    for (r0, r1) in bands {
        let mut want = vec![0.0f32; (r1 - r0) * n];
        reference::gemm(
            1.0,
            a.rows_range(r0, r1),
            b,
            0.0,
            MatMut::from_slice(&mut want, r1 - r0, n),
            Epilogue::None,
        );
        let k = a.cols() as f32;
        for (x, y) in c[r0 * n..r1 * n].iter().zip(&want) {
            assert!(
                (x - y).abs() <= 1e-5 * k * (1.0 + y.abs()),
                "{who}: result differs from the reference ({x} vs {y})"
            );
        }
    }
}

/// Runs `f` on a worker of rayon's global pool (as `pool.install` does).
fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// One timed (library, mode): a call, and where it is made from.
struct Timer<'a> {
    call: Box<dyn FnMut() + Send + 'a>,
    pool: bool,
    reps: usize,
    samples: Vec<f64>,
}

impl<'a> Timer<'a> {
    fn new(pool: bool, call: impl FnMut() + Send + 'a) -> Self {
        Timer {
            call: Box::new(call),
            pool,
            reps: 1,
            samples: Vec::new(),
        }
    }

    /// Seconds per call over `reps` calls, from the main thread or the pool.
    fn run(&mut self, reps: usize) -> f64 {
        let call = &mut self.call;
        let mut body = move || {
            let t = Instant::now();
            for _ in 0..reps {
                call();
            }
            t.elapsed().as_secs_f64() / reps as f64
        };
        if self.pool {
            in_pool(body)
        } else {
            body()
        }
    }

    /// Warms up and picks the number of calls per sample (~`target` seconds)
    /// from the fastest of several runs, not one call
    /// ([`calls_per_sample`]: one call from inside the pool can take a
    /// thousand times the others).
    fn calibrate(&mut self, target: f64) {
        self.run(1);
        self.reps = calls_per_sample(target, |calls| self.run(calls));
    }

    fn sample(&mut self) {
        let t = self.run(self.reps);
        self.samples.push(t);
    }

    fn median(&mut self) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        self.samples.sort_by(|a, b| a.total_cmp(b));
        self.samples[self.samples.len() / 2]
    }
}

/// The instruction sets the peers' runtime dispatch picks on this CPU.
///
/// `gemm` 0.19 is built without its `x86-v4` feature: AVX2 + FMA at best.
/// `matrixmultiply` is built with its default `avx512` feature, so it runs
/// AVX-512 where the CPU has it, unless this bench was compiled with
/// `MMTEST_FEATURE=avx,avx2,fma` (matrixmultiply's own compile-time switch,
/// read by this bench too): the way to compare an AVX2 build of simdnet
/// with peers limited to AVX2, as on a Zen 3.
fn peer_isa() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let allowed = |f: &str| {
            option_env!("MMTEST_FEATURE").is_none_or(|v| v.is_empty() || v.split(',').any(|x| x == f))
        };
        let has = |f: &str| match f {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            _ => std::arch::is_x86_feature_detected!("fma"),
        };
        let v3 = has("avx2") && has("fma");
        let mm = if allowed("avx512f") && has("avx512f") {
            "AVX-512"
        } else if v3 && allowed("avx2") && allowed("fma") {
            "AVX2+FMA"
        } else {
            "SSE/AVX"
        };
        let gemm = if v3 { "AVX2+FMA" } else { "SSE/AVX" };
        return format!("gemm 0.19 {gemm}, matrixmultiply {mm}");
    }
    #[allow(unreachable_code)]
    "NEON or scalar".to_string()
}

/// Seconds of CPU time used by the calling thread (Linux
/// `CLOCK_THREAD_CPUTIME_ID`): unlike the wall clock, it does not count
/// the time another process holds this core, so one-thread comparisons
/// hold on a busy machine. NaN where unavailable.
fn thread_cpu_seconds() -> f64 {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut t = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `t` is a valid, writable timespec (two 64-bit fields on 64-bit Linux).
        if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return t.sec as f64 + t.nsec as f64 * 1e-9;
        }
    }
    #[allow(unreachable_code)]
    f64::NAN
}

/// `SIMDNET_BENCH_COLD=1` (with `SIMDNET_BENCH_KERNELS`): before each
/// timed call, read and write `COLD_FLOATS` other floats (64 MiB, twice
/// the 32 MiB L3 of the Zen 3 and Zen 4 machines), so that the call finds
/// A, B and C out of the caches, as a layer's GEMMs find the weights the
/// optimiser has just streamed. Only the call is timed.
fn cold_caches() -> bool {
    std::env::var("SIMDNET_BENCH_COLD").is_ok_and(|v| v != "0")
}

/// Floats [`evict`] walks through: 64 MiB.
const COLD_FLOATS: usize = 16 << 20;

/// At most this many calls per sample with `SIMDNET_BENCH_COLD` (each one
/// costs a pass over 64 MiB).
const COLD_REPS: usize = 8;

/// Reads one float per cache line of `other` and writes one, pushing the
/// operands of the last call out of the caches.
fn evict(other: &mut [f32]) {
    let sum: f32 = other.iter().step_by(16).sum();
    other[0] = black_box(sum) * 0.0 + 1.0;
}

/// `SIMDNET_BENCH_KERNELS=a,b,..`: simdnet alone on one thread, once per
/// micro-kernel named (`auto` for the choice by shape; `gemm` and `mm`
/// for the peers on one thread), interleaved; the
/// best of the rounds in thread CPU time (robust to a busy machine; for
/// tuning, not for the comparison with the peers).
/// One library's product into the given C.
type Product = dyn Fn(&mut [f32]) + Sync;

#[allow(clippy::too_many_arguments)]
fn compare_kernels(
    names: &[String],
    rounds: usize,
    target: f64,
    flops: f64,
    label: &str,
    name: &str,
    len: usize,
    call: impl Fn(&mut [f32]) + Send + Copy,
    peers: [&Product; 2],
) {
    let mut timers: Vec<Timer> = names
        .iter()
        .map(|k| {
            let mut c = vec![0.0f32; len];
            if let Some(i) = ["gemm", "mm"].iter().position(|p| p == k) {
                let peer = peers[i];
                return Timer::new(false, move || peer(black_box(&mut c)));
            }
            let k = (k != "auto").then(|| k.clone());
            gemm::set_kernel(k.as_deref()).expect("a kernel name from available_kernels()");
            Timer::new(false, move || {
                gemm::set_kernel(k.as_deref()).unwrap();
                call(black_box(&mut c))
            })
        })
        .collect();
    for t in &mut timers {
        t.calibrate(target);
    }
    let mut best = vec![f64::INFINITY; timers.len()];
    // SIMDNET_BENCH_COLD: each call finds its operands out of the caches
    let mut cold = cold_caches().then(|| vec![1.0f32; COLD_FLOATS]);
    for _ in 0..rounds {
        for (t, best) in timers.iter_mut().zip(&mut best) {
            let per_call = match &mut cold {
                None => {
                    let start = thread_cpu_seconds();
                    for _ in 0..t.reps {
                        (t.call)();
                    }
                    (thread_cpu_seconds() - start) / t.reps as f64
                }
                Some(other) => {
                    let (reps, mut sum) = (t.reps.min(COLD_REPS), 0.0);
                    for _ in 0..reps {
                        evict(other);
                        let start = thread_cpu_seconds();
                        (t.call)();
                        sum += thread_cpu_seconds() - start;
                    }
                    sum / reps as f64
                }
            };
            *best = best.min(per_call);
        }
    }
    print!("{name:<7} {label:>12}");
    for (k, t) in names.iter().zip(&best) {
        print!(" | {k} {:6.1}", flops / t / 1e9);
    }
    println!();
    gemm::set_kernel(None).unwrap();
}

fn main() {
    let full = std::env::var("SIMDNET_BENCH_FULL").is_ok_and(|v| v != "0");
    let ours_only = std::env::var("SIMDNET_BENCH_OURS_ONLY").is_ok_and(|v| v != "0");
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let kernels: Option<Vec<String>> = std::env::var("SIMDNET_BENCH_KERNELS")
        .ok()
        .map(|v| v.split(',').map(|k| k.trim().to_string()).collect());
    let rounds = if full { 21 } else { 9 };
    let target = if full { 3e-3 } else { 1.5e-3 };
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .expect("the global rayon pool is built once, before any parallel call");
    println!(
        "simdnet gemm bench: {} lanes, kernel {} (narrow {}), blocks {:?}, {}",
        gemm::simd_width(),
        gemm::micro_kernel_name(),
        gemm::kernel::narrow_kernel().name,
        gemm::block_sizes(),
        simdnet::profile::facts::describe_in_place(gemm::loops::reads_wide_in_place())
    );
    println!("peers: {}", peer_isa());
    println!(
        "GFLOP/s, median of {rounds} interleaved rounds; ratio = simdnet / best peer (>= 0.97 is level)\n"
    );

    let mut shapes = vec![
        shape("square", 64, 64, 64, false, false),
        shape("square", 128, 128, 128, false, false),
        shape("square", 256, 256, 256, false, false),
        shape("square", 512, 512, 512, false, false),
        shape("square", 1024, 1024, 1024, false, false),
        shape("X·W", 128, 16, 784, false, false),
        shape("X·W", 128, 512, 784, false, false),
        shape("H·W", 128, 512, 512, false, false),
        shape("H·W", 128, 10, 512, false, false),
        shape("Xᵀ·dZ", 784, 16, 128, true, false),
        shape("Xᵀ·dZ", 784, 512, 128, true, false),
        shape("dZ·Wᵀ", 128, 784, 512, false, true),
    ];
    if full {
        shapes.push(shape("H·W", 128, 10, 16, false, false));
        shapes.push(shape("square", 2048, 2048, 2048, false, false));
    }

    let modes = [
        ("1t main", false, 1),
        ("1t pool", true, 1),
        ("2t main", false, 2),
        ("2t pool", true, 2),
    ];
    print!("{:<7} {:>12}", "shape", "m x n x k");
    for (mode, _, _) in modes {
        print!(" | {:^27}", format!("{mode}: ours gemm mm ratio"));
    }
    println!();
    let mut behind = vec![0usize; modes.len()];
    let mut worst = vec![f64::INFINITY; modes.len()];
    for shape in &shapes {
        let label = format!("{}x{}x{}", shape.m, shape.n, shape.k);
        if filter
            .as_ref()
            .is_some_and(|f| !label.contains(f.as_str()) && !shape.name.contains(f.as_str()))
        {
            continue;
        }
        let Shape { m, n, k, ta, tb, .. } = *shape;
        let flops = 2.0 * (m * n * k) as f64;
        let mut rng = StdRng::seed_from_u64(1);
        let a_u8: Vec<u8> = (0..m * k).map(|_| rng.random()).collect();
        let a_f32: Vec<f32> = a_u8.iter().map(|&x| x as f32 / 255.0).collect();
        let b_vals: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let (ad, ars, acs) = storage(m, k, ta, &a_f32);
        let (au, _, _) = storage(m, k, ta, &a_u8);
        let (bd, brs, bcs) = storage(k, n, tb, &b_vals);
        let a = MatRef::with_strides(&ad, m, k, ars, acs);
        let a8 = MatRef::with_strides(&au, m, k, ars, acs);
        let b = MatRef::with_strides(&bd, k, n, brs, bcs);

        let ours = move |par: Parallelism, c: &mut [f32]| {
            gemm::gemm(1.0, a, b, 0.0, MatMut::from_slice(c, m, n), Epilogue::None, par)
        };
        let ours_u8 = move |par: Parallelism, c: &mut [f32]| {
            gemm::gemm(
                1.0 / 255.0,
                a8,
                b,
                0.0,
                MatMut::from_slice(c, m, n),
                Epilogue::None,
                par,
            )
        };
        let (ap, bp) = (ad.as_ptr() as usize, bd.as_ptr() as usize);
        let strides = Strides {
            m,
            n,
            k,
            ars,
            acs,
            brs,
            bcs,
        };
        // SAFETY (both): the strides describe the live vectors `ad` and `bd`.
        let mm =
            move |c: &mut [f32]| unsafe { matrixmultiply(strides, ap as *const f32, bp as *const f32, c) };
        let peer = move |threads: usize, c: &mut [f32]| unsafe {
            gemm_crate(strides, ap as *const f32, bp as *const f32, c, threads)
        };

        // Check every library once.
        let mut c = vec![f32::NAN; m * n];
        ours(Parallelism::Rayon, &mut c);
        verify("simdnet", a, b, &c, n);
        c.fill(f32::NAN);
        mm(&mut c);
        verify("matrixmultiply", a, b, &c, n);
        c.fill(f32::NAN);
        peer(2, &mut c);
        verify("gemm crate", a, b, &c, n);

        if let Some(names) = &kernels {
            let seq = move |c: &mut [f32]| ours(Parallelism::Sequential, c);
            let gemm1 = move |c: &mut [f32]| peer(1, c);
            let peers: [&Product; 2] = [&gemm1, &mm];
            compare_kernels(
                names,
                rounds,
                target,
                flops,
                &label,
                shape.name,
                m * n,
                seq,
                peers,
            );
            continue;
        }

        // Timers: per mode, [ours, gemm, mm] (+ ours u8 in the full run).
        let mut outs: Vec<Vec<f32>> = Vec::new();
        let per_mode = if full { 4 } else { 3 };
        for _ in 0..modes.len() * per_mode {
            outs.push(vec![0.0f32; m * n]);
        }
        let mut timers: Vec<Option<Timer>> = Vec::new();
        for ((_, pool, threads), outs) in modes.iter().zip(outs.chunks_mut(per_mode)) {
            let (pool, threads) = (*pool, *threads);
            let par = if threads == 1 {
                Parallelism::Sequential
            } else {
                Parallelism::Rayon
            };
            let mut it = outs.iter_mut();
            let (c0, c1, c2) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            timers.push(Some(Timer::new(pool, move || ours(par, black_box(c0)))));
            timers.push((!ours_only).then(|| Timer::new(pool, move || peer(threads, black_box(c1)))));
            // matrixmultiply runs on one thread whatever the mode: timed in the
            // 1-thread modes, its time reused in the 2-thread ones.
            timers.push((!ours_only && threads == 1).then(|| Timer::new(pool, move || mm(black_box(c2)))));
            if full {
                let c3 = it.next().unwrap();
                timers.push(Some(Timer::new(pool, move || ours_u8(par, black_box(c3)))));
            }
        }
        for t in timers.iter_mut().flatten() {
            t.calibrate(target);
        }
        // Each round times every (library, mode), mode by mode, with the
        // libraries of a mode in turn first. The first call of a mode finds
        // the pool as the previous mode left it (its workers asleep after
        // the 1-thread modes, and on some hosts the idle core slowed down):
        // an untimed call wakes it first, so that no library pays for that
        // (with 9 rounds, one of a 2-thread mode's two libraries would be
        // first 5 times, the other 4). On a Zen 2 host (AMD EPYC family 23
        // model 49, AVX2, 8 lanes) a 512³ product called after 10 ms of
        // idling took 4.1-4.4 ms on 1 or 2 threads, against 2.9 and 1.6 ms
        // back to back.
        for round in 0..rounds {
            for mode in timers.chunks_mut(per_mode) {
                let mut present: Vec<&mut Timer> = mode.iter_mut().flatten().collect();
                let first = round % present.len();
                present.rotate_left(first);
                if let Some(t) = present.first_mut() {
                    t.run(1);
                }
                for t in present {
                    t.sample();
                }
            }
        }
        let g = |t: &mut Option<Timer>| t.as_mut().map_or(f64::NAN, |t| flops / t.median() / 1e9);
        let gflops: Vec<f64> = timers.iter_mut().map(g).collect();
        print!("{:<7} {:>12}", shape.name, label);
        let mut u8_cells = Vec::new();
        for (mi, (_, _, threads)) in modes.iter().enumerate() {
            let row = &gflops[mi * per_mode..][..per_mode];
            let mm = if *threads == 1 {
                row[2]
            } else {
                gflops[(mi - 2) * per_mode + 2]
            };
            let best = row[1].max(mm);
            let ratio = row[0] / best;
            if ratio < 0.97 {
                behind[mi] += 1;
            }
            if ratio.is_finite() {
                worst[mi] = worst[mi].min(ratio);
            }
            print!(" | {:6.1} {:6.1} {:6.1} {:5.2}", row[0], row[1], mm, ratio);
            if full {
                u8_cells.push(format!("{:.1}", row[3]));
            }
        }
        println!();
        if full {
            println!("{:>20} simdnet with u8 A (x 1/255): {}", "", u8_cells.join(" / "));
        }
    }
    println!();
    for (mi, (mode, _, _)) in modes.iter().enumerate() {
        println!(
            "{mode}: simdnet behind the best peer (ratio < 0.97) on {} shapes; lowest ratio {:.2}",
            behind[mi], worst[mi]
        );
    }
}
