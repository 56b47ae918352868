//! GEMM throughput: simdnet vs its reference, `matrixmultiply` and `gemm`.
//!
//! Run with `cargo bench --bench gemm` (a short default run) or
//! `SIMDNET_BENCH_FULL=1 cargo bench --bench gemm` (squares up to 2048 and
//! the reference on more sizes).
//!
//! Why no criterion: we want one table of GFLOP/s for a dozen libraries and
//! shapes side by side on the same machine in the same run, with a
//! predictable, short run time; its statistics (bootstrapped confidence
//! intervals, regression against saved baselines) add minutes and a large
//! dependency tree but nothing a ratio within one run needs. A median of
//! several timed samples is robust to the noise of a shared machine.
//!
//! Every implementation's result is checked against `gemm::reference` (on
//! a band of rows for the large shapes) before it is timed.
//!
//! Numbers: GFLOP/s = 2·m·n·k / seconds; the percentage is the share of
//! this machine's nominal fp32 FMA peak (2 x 256-bit FMA per cycle per core
//! at about 3.8 GHz: 122 GFLOP/s per core, times the threads;
//! `SIMDNET_PEAK_GFLOPS` overrides the one-core figure). For scale: the
//! 16x16 micro-kernel alone, on L1-resident panels, runs at about 113
//! GFLOP/s on one core of this Zen 4 (its sustained AVX-512 clock is lower
//! than 3.8 GHz), so ~93% of nominal is the practical ceiling.
//!
//! The machine is shared: when another process holds a core, the "2t"
//! columns collapse to 1-thread speed for every library alike. Compare
//! columns within one run, and run it a few times.

use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::gemm::{self, reference, Epilogue, Parallelism};
use simdnet::matrix::{Element, MatMut, MatRef};
use std::hint::black_box;
use std::time::{Duration, Instant};

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
    /// A holds u8 pixels in the network (`X`): also time simdnet with u8 A.
    u8_a: bool,
}

/// The median seconds of one call of `f`, over `SAMPLES` samples of enough
/// calls to last at least ~2 ms each.
fn time(mut f: impl FnMut()) -> f64 {
    const SAMPLES: usize = 9;
    f();
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_nanos(50));
    let reps = ((2e-3 / once.as_secs_f64()) as usize).clamp(1, 100_000);
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[SAMPLES / 2]
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

fn main() {
    let full = std::env::var("SIMDNET_BENCH_FULL").is_ok_and(|v| v != "0");
    // For tuning: only time simdnet (peers show as NaN).
    let ours_only = std::env::var("SIMDNET_BENCH_OURS_ONLY").is_ok_and(|v| v != "0");
    let peak: f64 = std::env::var("SIMDNET_PEAK_GFLOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(122.0);
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!(
        "simdnet gemm bench: kernel {} (+ narrow {}), {} lanes, blocks {:?}",
        gemm::micro_kernel_name(),
        gemm::kernel::narrow_kernel().name,
        gemm::simd_width(),
        gemm::block_sizes()
    );
    println!("GFLOP/s (and % of peak: {peak:.0} per core, x threads)\n");

    let mut shapes = vec![
        Shape {
            name: "X·W",
            m: 128,
            n: 16,
            k: 784,
            ta: false,
            tb: false,
            u8_a: true,
        },
        Shape {
            name: "Xᵀ·dZ",
            m: 784,
            n: 16,
            k: 128,
            ta: true,
            tb: false,
            u8_a: true,
        },
        Shape {
            name: "H·W",
            m: 128,
            n: 10,
            k: 16,
            ta: false,
            tb: false,
            u8_a: false,
        },
        Shape {
            name: "X·W",
            m: 128,
            n: 512,
            k: 784,
            ta: false,
            tb: false,
            u8_a: true,
        },
        Shape {
            name: "H·W",
            m: 128,
            n: 512,
            k: 512,
            ta: false,
            tb: false,
            u8_a: false,
        },
        Shape {
            name: "Xᵀ·dZ",
            m: 784,
            n: 512,
            k: 128,
            ta: true,
            tb: false,
            u8_a: true,
        },
        Shape {
            name: "dZ·Wᵀ",
            m: 128,
            n: 784,
            k: 512,
            ta: false,
            tb: true,
            u8_a: false,
        },
        Shape {
            name: "H·W",
            m: 128,
            n: 10,
            k: 512,
            ta: false,
            tb: false,
            u8_a: false,
        },
    ];
    let squares: &[usize] = if full {
        &[64, 128, 256, 512, 1024, 2048]
    } else {
        &[64, 256, 512, 1024]
    };
    for &s in squares {
        shapes.push(Shape {
            name: "square",
            m: s,
            n: s,
            k: s,
            ta: false,
            tb: false,
            u8_a: false,
        });
    }

    let pool2 = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    println!(
        "{:<8} {:>15} | {:>13} {:>13} | {:>13} {:>13} | {:>13} | {:>13} {:>13} | {:>9}",
        "shape",
        "m x n x k",
        "ours 1t",
        "ours 2t",
        "ours u8 1t",
        "ours u8 2t",
        "mm 1t",
        "gemm 1t",
        "gemm 2t",
        "ref 1t"
    );
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
        let mut c = vec![0.0f32; m * n];
        let cell = |secs: f64, threads: f64| {
            let g = flops / secs / 1e9;
            format!("{g:7.1} ({:3.0}%)", 100.0 * g / (peak * threads))
        };

        let ours = |par: Parallelism, c: &mut Vec<f32>| {
            gemm::gemm(1.0, a, b, 0.0, MatMut::from_slice(c, m, n), Epilogue::None, par)
        };
        ours(Parallelism::Sequential, &mut c);
        verify("simdnet", a, b, &c, n);
        let ours_1 = time(|| ours(Parallelism::Sequential, black_box(&mut c)));
        let ours_2 = pool2.install(|| time(|| ours(Parallelism::Rayon, black_box(&mut c))));

        let (u8_1, u8_2) = if shape.u8_a {
            let ours8 = |par: Parallelism, c: &mut Vec<f32>| {
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
            ours8(Parallelism::Rayon, &mut c);
            verify("simdnet u8", a, b, &c, n);
            let t1 = time(|| ours8(Parallelism::Sequential, black_box(&mut c)));
            let t2 = pool2.install(|| time(|| ours8(Parallelism::Rayon, black_box(&mut c))));
            (cell(t1, 1.0), cell(t2, 2.0))
        } else {
            ("-".to_string(), "-".to_string())
        };

        let mm = |c: &mut Vec<f32>| {
            // SAFETY: the strides describe the live vectors `ad`, `bd`, `c`.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    ad.as_ptr(),
                    ars as isize,
                    acs as isize,
                    bd.as_ptr(),
                    brs as isize,
                    bcs as isize,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        };
        c.fill(f32::NAN);
        mm(&mut c);
        verify("matrixmultiply", a, b, &c, n);
        let mm_1 = if ours_only {
            f64::NAN
        } else {
            time(|| mm(black_box(&mut c)))
        };

        let peer = |threads: usize, c: &mut Vec<f32>| {
            let par = if threads == 1 {
                ::gemm::Parallelism::None
            } else {
                ::gemm::Parallelism::Rayon(threads)
            };
            // SAFETY: as above. `gemm` computes dst = alpha·dst + beta·lhs·rhs
            // and does not read dst when `read_dst` is false.
            unsafe {
                ::gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    ad.as_ptr(),
                    acs as isize,
                    ars as isize,
                    bd.as_ptr(),
                    bcs as isize,
                    brs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            }
        };
        c.fill(f32::NAN);
        peer(1, &mut c);
        verify("gemm crate", a, b, &c, n);
        let (gemm_1, gemm_2) = if ours_only {
            (f64::NAN, f64::NAN)
        } else {
            (
                time(|| peer(1, black_box(&mut c))),
                pool2.install(|| time(|| peer(2, black_box(&mut c)))),
            )
        };

        let reference_cell =
            if !ours_only && m * n * k <= if full { 512 * 512 * 512 } else { 128 * 128 * 128 } {
                let t = time(|| {
                    reference::gemm(
                        1.0,
                        a,
                        b,
                        0.0,
                        MatMut::from_slice(black_box(&mut c), m, n),
                        Epilogue::None,
                    )
                });
                format!("{:9.2}", flops / t / 1e9)
            } else {
                format!("{:>9}", "-")
            };

        println!(
            "{:<8} {:>15} | {:>13} {:>13} | {:>13} {:>13} | {:>13} | {:>13} {:>13} | {}",
            shape.name,
            label,
            cell(ours_1, 1.0),
            cell(ours_2, 2.0),
            u8_1,
            u8_2,
            cell(mm_1, 1.0),
            cell(gemm_1, 1.0),
            cell(gemm_2, 2.0),
            reference_cell
        );
    }
}
