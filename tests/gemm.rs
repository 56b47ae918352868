//! The fast GEMM against `gemm::reference`.
//!
//! Two kinds of inputs:
//! - small integers (|a|, |b| <= 3, or u8 pixels): every product and partial
//!   sum is an exactly representable integer, so any summation order gives
//!   the same result and fast and reference must agree exactly (`==`)
//!   for identity and ReLU epilogues;
//! - random floats in [-1, 1): compared with the rounding-error bound
//!   `|c - c_exact| <= 4·k·eps·Σ_p |alpha·a_ip·b_pj| + beta-term`, with
//!   `c_exact` computed in f64.
//!
//! Sigmoid and tanh are vectorised approximations: compared with
//! `ACT_TOL` (absolute, their outputs lie in [-1, 1]).
//!
//! `Parallelism::Rayon` only splits products above a few MFLOP (see
//! `gemm::threads`): on the small shapes below it runs as one task. The
//! threaded path proper is tested by `rayon_splits_match_sequential_and_reference`
//! and `bit_identical_across_thread_counts`, whose shapes are asserted to split.
//!
//! Tests that change the process-wide block sizes or kernel, or that check
//! bit-identity across thread pools, hold `common::Globals`.

mod common;

use common::Globals;
use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::activation::Activation;
use simdnet::gemm::{self, reference, BlockSizes, Epilogue, Parallelism};
use simdnet::matrix::{Element, MatMut, MatRef};
use simdnet::simd::LANES;
/// Absolute tolerance for the vectorised sigmoid and tanh epilogues.
const ACT_TOL: f32 = 2e-6;

/// Row-major storage of a `rows x cols` operand, possibly stored transposed
/// (`trans`: the view is `.t()` of a `cols x rows` matrix) and with `pad`
/// extra elements per stored row. Returns `(data, rs, cs)`.
fn storage<T: Copy + Default>(
    rows: usize,
    cols: usize,
    trans: bool,
    pad: usize,
    mut f: impl FnMut(usize, usize) -> T,
) -> (Vec<T>, usize, usize) {
    if !trans {
        let ld = cols + pad;
        let mut d = vec![T::default(); rows * ld + 1];
        for i in 0..rows {
            for j in 0..cols {
                d[i * ld + j] = f(i, j);
            }
        }
        (d, ld, 1)
    } else {
        let ld = rows + pad;
        let mut d = vec![T::default(); cols * ld + 1];
        for i in 0..rows {
            for j in 0..cols {
                d[j * ld + i] = f(i, j);
            }
        }
        (d, 1, ld)
    }
}

#[derive(Clone, Copy, Debug)]
enum Values {
    SmallInts,
    Floats,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    u8_a: bool,
    alpha: f32,
    beta: f32,
    act: Option<Activation>,
    par: Parallelism,
    values: Values,
}

impl Case {
    fn new(m: usize, n: usize, k: usize) -> Case {
        Case {
            m,
            n,
            k,
            ta: false,
            tb: false,
            u8_a: false,
            alpha: 1.0,
            beta: 0.0,
            act: None,
            par: Parallelism::Sequential,
            values: Values::SmallInts,
        }
    }
}

const C_GUARD: f32 = -7777.0;

/// Runs `case` through the fast and the reference GEMM and compares.
fn check(case: Case, seed: u64) {
    let Case { m, n, k, .. } = case;
    let mut rng = StdRng::seed_from_u64(seed ^ ((m * 1_000_000 + n * 1000 + k) as u64));
    let pad = (seed % 3) as usize;
    let small = matches!(case.values, Values::SmallInts);
    let mut val = |lo: i32, hi: i32| -> f32 {
        if small {
            rng.random_range(lo..=hi) as f32
        } else {
            rng.random_range(-1.0f32..1.0)
        }
    };
    let b_vals: Vec<f32> = (0..k * n).map(|_| val(-3, 3)).collect();
    let (b_data, brs, bcs) = storage(k, n, case.tb, pad, |i, j| b_vals[i * n + j]);
    let b = MatRef::with_strides(&b_data, k, n, brs, bcs);
    let bias: Vec<f32> = (0..n).map(|_| val(-8, 8)).collect();
    let c0: Vec<f32> = (0..m * n).map(|_| val(-5, 5)).collect();
    let epilogue = match case.act {
        None => Epilogue::None,
        Some(act) => Epilogue::BiasActivation { bias: &bias, act },
    };
    if case.u8_a {
        let mut rng_a = StdRng::seed_from_u64(seed.wrapping_mul(7) + 1);
        let a_vals: Vec<u8> = (0..m * k).map(|_| rng_a.random::<u8>()).collect();
        let (a_data, ars, acs) = storage(m, k, case.ta, pad, |i, j| a_vals[i * k + j]);
        let a = MatRef::with_strides(&a_data, m, k, ars, acs);
        compare(case, a, b, &c0, epilogue);
    } else {
        let a_vals: Vec<f32> = (0..m * k).map(|_| val(-3, 3)).collect();
        let (a_data, ars, acs) = storage(m, k, case.ta, pad, |i, j| a_vals[i * k + j]);
        let a = MatRef::with_strides(&a_data, m, k, ars, acs);
        compare(case, a, b, &c0, epilogue);
    }
}

fn compare<T: Element>(case: Case, a: MatRef<T>, b: MatRef<f32>, c0: &[f32], epilogue: Epilogue) {
    let Case { m, n, .. } = case;
    // C is an interior view (row 1, column 2) of a larger buffer with a guard
    // region around it; with beta == 0 it starts as NaN.
    let ldc = n + 3;
    let mut buf = vec![C_GUARD; (m + 2) * ldc + 2];
    for i in 0..m {
        for j in 0..n {
            buf[(i + 1) * ldc + 2 + j] = if case.beta == 0.0 { f32::NAN } else { c0[i * n + j] };
        }
    }
    let mut expect = c0.to_vec();
    reference::gemm(
        case.alpha,
        a,
        b,
        case.beta,
        MatMut::from_slice(&mut expect, m, n),
        epilogue,
    );
    let len = buf.len();
    gemm::gemm(
        case.alpha,
        a,
        b,
        case.beta,
        MatMut::with_row_stride(&mut buf[ldc + 2..len], m, n, ldc),
        epilogue,
        case.par,
    );
    for (idx, &v) in buf.iter().enumerate() {
        let (r, col) = (idx / ldc, idx % ldc);
        let inside = r >= 1 && r <= m && (2..n + 2).contains(&col) && idx < (m + 2) * ldc;
        if !inside {
            assert!(v == C_GUARD, "{case:?}: guard element {idx} overwritten with {v}");
            continue;
        }
        let (i, j) = (r - 1, col - 2);
        let want = expect[i * n + j];
        let exact_act = !matches!(case.act, Some(Activation::Sigmoid | Activation::Tanh));
        let ok = match case.values {
            Values::SmallInts if exact_act && (case.alpha == 1.0 || !case.u8_a) => v == want,
            _ => {
                let bound = error_bound(case, a, b, i, j) + if exact_act { 0.0 } else { ACT_TOL };
                (v - want).abs() <= bound
            }
        };
        assert!(ok, "{case:?}: C[{i},{j}] = {v}, reference {want}");
    }
}

/// A bound on |fast - reference| for element (i, j): both are within
/// `2·k·eps·Σ|terms|` (+ the rounding of alpha) of the exact value.
fn error_bound<T: Element>(case: Case, a: MatRef<T>, b: MatRef<f32>, i: usize, j: usize) -> f32 {
    let abs_sum: f64 = (0..case.k)
        .map(|p| (case.alpha as f64 * a.at(i, p).to_f32() as f64 * b.at(p, j) as f64).abs())
        .sum();
    let eps = f32::EPSILON as f64;
    (4.0 * (case.k as f64 + 2.0) * eps * abs_sum + 1e-30) as f32 * 1.01 + 8.0 * f32::EPSILON * 5.0
}

const ACTS: [Option<Activation>; 5] = [
    None,
    Some(Activation::Identity),
    Some(Activation::Relu),
    Some(Activation::Sigmoid),
    Some(Activation::Tanh),
];

/// A (deterministic) variant of the call for shape number `index`: the same
/// on every target (the hash is 64-bit even where `usize` is 32-bit).
fn variant(mut case: Case, index: usize) -> Case {
    let index = index as u64;
    let mut h = index.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 >> 1) ^ (index >> 3);
    let mut pick = |n: usize| {
        let r = h % n as u64;
        h /= n as u64;
        r as usize
    };
    case.ta = pick(2) == 1;
    case.tb = pick(2) == 1;
    case.u8_a = pick(3) == 0;
    case.beta = [0.0, 1.0, 0.5][pick(3)];
    case.alpha = if case.u8_a {
        [1.0, 1.0 / 255.0][pick(2)]
    } else {
        [1.0, 2.0][pick(2)]
    };
    case.act = ACTS[pick(5)];
    case.par = if pick(2) == 0 {
        Parallelism::Sequential
    } else {
        Parallelism::Rayon
    };
    case
}

#[test]
fn plain_product_every_small_shape_exactly() {
    for m in 0..=20 {
        for n in 0..=20 {
            for k in 0..=20 {
                for beta in [0.0, 1.0] {
                    let mut case = Case::new(m, n, k);
                    case.beta = beta;
                    check(case, 1);
                }
            }
        }
    }
}

#[test]
fn every_variant_on_small_shapes() {
    let mut index = 0;
    for m in 0..=20 {
        for n in 0..=20 {
            for k in 0..=20 {
                index += 1;
                check(variant(Case::new(m, n, k), index), index as u64);
            }
        }
    }
}

#[test]
fn every_variant_combination_on_a_few_shapes() {
    for &(m, n, k) in &[(13, 35, 19), (17, 9, 300), (40, 70, 33)] {
        for ta in [false, true] {
            for tb in [false, true] {
                for u8_a in [false, true] {
                    for beta in [0.0, 1.0] {
                        for act in ACTS {
                            for par in [Parallelism::Sequential, Parallelism::Rayon] {
                                let case = Case {
                                    ta,
                                    tb,
                                    u8_a,
                                    beta,
                                    act,
                                    par,
                                    ..Case::new(m, n, k)
                                };
                                check(case, 3);
                                check(
                                    Case {
                                        values: Values::Floats,
                                        ..case
                                    },
                                    4,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn random_larger_shapes_with_floats() {
    let mut rng = StdRng::seed_from_u64(99);
    for index in 0..40 {
        let (m, n, k) = (
            rng.random_range(1..300),
            rng.random_range(1..300),
            rng.random_range(1..600),
        );
        let mut case = variant(Case::new(m, n, k), index);
        case.values = Values::Floats;
        check(case, index as u64);
    }
}

#[test]
fn network_shapes() {
    // (m, n, k, A transposed, B transposed): X·W, Xᵀ·dZ, H·W, dZ·Wᵀ.
    let shapes = [
        (128, 16, 784, false, false),
        (784, 16, 128, true, false),
        (128, 10, 16, false, false),
        (128, 16, 10, false, true),
        (128, 512, 784, false, false),
        (784, 512, 128, true, false),
        (128, 784, 512, false, true),
        (128, 10, 512, false, false),
    ];
    for (index, &(m, n, k, ta, tb)) in shapes.iter().enumerate() {
        for u8_a in [false, true] {
            let case = Case {
                ta,
                tb,
                u8_a,
                par: Parallelism::Rayon,
                act: Some(Activation::Relu),
                ..Case::new(m, n, k)
            };
            check(case, index as u64);
        }
    }
}

/// Shapes at multiples and neighbours of `MR`, `NR`, `mc`, `kc`, `nc`, with
/// small block sizes so that every loop runs several times, for every kernel.
#[test]
fn block_and_tile_edges_for_every_kernel() {
    let _g = Globals::lock();
    for (_, mr, nr) in common::forced_kernels() {
        let blocks = BlockSizes {
            mc: 2 * mr,
            kc: 7,
            nc: 2 * nr,
        };
        gemm::set_block_sizes(blocks);
        let around = |x: usize| [x - 1, x, x + 1];
        let ms: Vec<usize> = [around(mr), around(blocks.mc), around(2 * blocks.mc)].concat();
        let ns: Vec<usize> = [around(nr), around(blocks.nc), around(2 * blocks.nc)].concat();
        let ks: Vec<usize> = [around(blocks.kc), around(2 * blocks.kc)].concat();
        let mut index = 0;
        for &m in &ms {
            for &n in &ns {
                for &k in &ks {
                    index += 1;
                    check(variant(Case::new(m, n, k), index), index as u64);
                }
            }
        }
    }
}

#[test]
fn default_block_edges() {
    let _g = Globals::lock();
    let b = gemm::block_sizes();
    for (m, n, k) in [
        (b.mc + 1, 33, 20),
        (b.mc - 1, 17, b.kc + 1),
        (13, 40, b.kc),
        (7, 20, 2 * b.kc + 1),
        (5, b.nc + 3, 9),
    ] {
        for par in [Parallelism::Sequential, Parallelism::Rayon] {
            let case = Case {
                par,
                beta: 1.0,
                act: Some(Activation::Identity),
                ..Case::new(m, n, k)
            };
            check(case, 5);
        }
    }
}

/// Bit-identical results on pools of 1, 2, 3 and 8 threads, sequential,
/// and on repeated calls.
#[test]
fn bit_identical_across_thread_counts() {
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(7);
    for &(m, n, k, ta, tb) in &[
        (300, 200, 700, false, false),
        (784, 16, 128, true, false),
        (128, 784, 512, false, true),
        (513, 67, 300, true, true),
    ] {
        let (ad, ars, acs) = storage(m, k, ta, 1, |_, _| rng.random_range(-1.0f32..1.0));
        let (bd, brs, bcs) = storage(k, n, tb, 2, |_, _| rng.random_range(-1.0f32..1.0));
        let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let run = |par: Parallelism| {
            let a = MatRef::with_strides(&ad, m, k, ars, acs);
            let b = MatRef::with_strides(&bd, k, n, brs, bcs);
            let mut c = c0.clone();
            let epilogue = Epilogue::BiasActivation {
                bias: &bias,
                act: Activation::Tanh,
            };
            gemm::gemm(0.7, a, b, 0.3, MatMut::from_slice(&mut c, m, n), epilogue, par);
            c
        };
        let kernel = simdnet::gemm::kernel::choose(n);
        let tasks = simdnet::gemm::threads::plan(m, n, k, kernel.mr, kernel.nr, true).tasks(m, n);
        assert!(tasks > 1, "{m}x{n}x{k} must split to test anything");
        let sequential = run(Parallelism::Sequential);
        assert_eq!(sequential, run(Parallelism::Sequential));
        for threads in [1, 2, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let parallel = pool.install(|| run(Parallelism::Rayon));
            assert!(
                parallel
                    .iter()
                    .zip(&sequential)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{n}x{k} on {threads} threads differs from sequential"
            );
        }
    }
}

/// A product large enough to be handed whole to the global pool when called
/// from outside it (`threads::hands_whole_to_pool`), and one just below,
/// which runs a half on the caller: both give the bits of `Sequential`,
/// call after call.
#[test]
fn products_called_from_outside_the_pool_have_the_bits_of_sequential() {
    use simdnet::gemm::threads::{hands_whole_to_pool, INJECT_MIN_FLOPS};
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(23);
    // 2·m·n·k just above and just below INJECT_MIN_FLOPS, off the tile grids
    let (m, n) = (301, 250);
    let k_above = INJECT_MIN_FLOPS.div_ceil(2 * m * n);
    for (k, whole) in [(k_above, true), (k_above - 1, false)] {
        assert_eq!(hands_whole_to_pool(2 * m * n * k), whole, "{m}x{n}x{k}");
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let run = |par: Parallelism| {
            let mut c = vec![f32::NAN; m * n];
            let (a, b) = (MatRef::from_slice(&a, m, k), MatRef::from_slice(&b, k, n));
            gemm::gemm(
                1.0,
                a,
                b,
                0.0,
                MatMut::from_slice(&mut c, m, n),
                Epilogue::None,
                par,
            );
            c.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        let sequential = run(Parallelism::Sequential);
        if rayon::current_thread_index().is_none() && rayon::current_num_threads() >= 2 {
            // two tasks on a global pool of two threads (CI's): the path tested
            use simdnet::gemm::threads::{max_tasks, min_flops_per_task, plan_with};
            let kernel = simdnet::gemm::kernel::choose(n);
            let (min_task, most) = (min_flops_per_task(), max_tasks());
            let plan = plan_with(m, n, k, (kernel.mr, kernel.nr), min_task, most);
            assert!(plan.tasks(m, n) >= 2, "{m}x{n}x{k} must split to test anything");
        }
        for round in 0..3 {
            let outside = run(Parallelism::Rayon);
            let bad = outside.iter().zip(&sequential).position(|(x, y)| x != y);
            assert!(
                bad.is_none(),
                "{m}x{n}x{k} from outside the pool (handed whole: {whole}), round {round}: element {bad:?} differs"
            );
        }
    }
}

/// Shapes that split into several rayon tasks for every kernel, with `m`
/// and `n` off the tile and task grids (edge tiles and a short last task),
/// and `k` above every default `kc` (several loop-4 blocks per task).
/// `mr x nr` is the default kernel's tile: the last shape is cut from it so
/// that its grid is 2 x 2 (both m and n split, both last blocks ragged).
fn split_shapes(mr: usize, nr: usize) -> Vec<Case> {
    let s = |m, n, k, ta, tb, u8_a, beta, act| Case {
        ta,
        tb,
        u8_a,
        beta,
        act: Some(act),
        par: Parallelism::Rayon,
        values: Values::Floats,
        ..Case::new(m, n, k)
    };
    let (m2, n2) = (10 * mr - 3, 6 * nr - 5);
    // 4 tasks need 16 MiFLOP each: 2·m·n·k >= 4 · MIN_FLOPS_PER_EXTRA_TASK, with a margin.
    let k2 = (4 * simdnet::gemm::threads::MIN_FLOPS_PER_EXTRA_TASK * 11 / 10).div_ceil(2 * m2 * n2);
    vec![
        // 2 tasks (11 MFLOP: too little for 4), split in m.
        s(130, 70, 600, false, false, false, 0.0, Activation::Relu),
        // Tall: 4 tasks in m; Aᵀ, as in the weight gradient Xᵀ·dZ.
        s(1001, 75, 700, true, false, false, 0.5, Activation::Identity),
        // Short and wide: 4 tasks in n (the bias is sliced per task); Bᵀ, as in dZ·Wᵀ.
        s(40, 1500, 600, false, true, false, 0.0, Activation::Tanh),
        // Tall and narrow, u8 pixels: m splits, and n <= NR runs the direct mode in each task.
        s(2000, 13, 900, true, false, true, 0.0, Activation::Relu),
        // 2 x 2 grid for the default kernel.
        s(m2, n2, k2, false, false, false, 1.0, Activation::Sigmoid),
    ]
}

/// `Parallelism::Rayon` on pools of 2 and 3 threads, for shapes the planner
/// really splits (asserted with `threads::plan`, so this test fails if they
/// stop splitting): bit-identical to `Sequential`, within rounding of
/// `reference::gemm`, and nothing written outside C. For every kernel with
/// the default block sizes, and for the default kernel with small blocks
/// (loops 3 and 5 also run several times inside each task).
#[test]
fn rayon_splits_match_sequential_and_reference() {
    let _g = Globals::lock();
    let default = simdnet::gemm::kernel::default_kernel();
    let shapes = split_shapes(default.mr, default.nr);

    // The 2 x 2 shape really splits both ways, with a short last block in each.
    let last = shapes[shapes.len() - 1];
    let p = simdnet::gemm::threads::plan(last.m, last.n, last.k, default.mr, default.nr, true);
    assert!(
        p.m_chunk < last.m && p.n_chunk < last.n,
        "{last:?}: {p:?} should split m and n"
    );
    assert!(
        !last.m.is_multiple_of(p.m_chunk) && !last.n.is_multiple_of(p.n_chunk),
        "{last:?}: {p:?}"
    );

    // Called from this thread (outside any pool), every shape splits when
    // the global pool has two threads or more (into two tasks on two
    // threads: the case `join_here_or_there` runs).
    if rayon::current_thread_index().is_none() && rayon::current_num_threads() >= 2 {
        use simdnet::gemm::threads::{max_tasks, min_flops_per_task, plan_with};
        let first = shapes[0];
        let p = plan_with(
            first.m,
            first.n,
            first.k,
            (default.mr, default.nr),
            min_flops_per_task(),
            max_tasks(),
        );
        assert!(
            p.tasks(first.m, first.n) >= 2,
            "{first:?} from outside the pool: {p:?}"
        );
    }

    let pools: Vec<rayon::ThreadPool> = [2, 3]
        .iter()
        .map(|&t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap())
        .collect();
    let mut rng = StdRng::seed_from_u64(17);
    for (index, &shape) in shapes.iter().enumerate() {
        let Case { m, n, k, ta, tb, .. } = shape;
        let (bd, brs, bcs) = storage(k, n, tb, 1, |_, _| rng.random_range(-1.0f32..1.0));
        let b = MatRef::with_strides(&bd, k, n, brs, bcs);
        if shape.u8_a {
            let (ad, ars, acs) = storage(m, k, ta, 2, |_, _| rng.random::<u8>());
            let a = MatRef::with_strides(&ad, m, k, ars, acs);
            split_case(shape, index, a, b, &pools);
        } else {
            let (ad, ars, acs) = storage(m, k, ta, 2, |_, _| rng.random_range(-1.0f32..1.0));
            let a = MatRef::with_strides(&ad, m, k, ars, acs);
            split_case(shape, index, a, b, &pools);
        }
    }
}

fn split_case<T: Element>(
    shape: Case,
    index: usize,
    a: MatRef<T>,
    b: MatRef<f32>,
    pools: &[rayon::ThreadPool],
) {
    let Case {
        m, n, k, beta, act, ..
    } = shape;
    let act = act.expect("every split case has a bias-activation epilogue");
    let alpha = if shape.u8_a { 1.0 / 255.0 } else { 0.7 };
    let mut rng = StdRng::seed_from_u64(index as u64);
    let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let c0: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let epilogue = Epilogue::BiasActivation { bias: &bias, act };

    let mut expect = c0.clone();
    reference::gemm(alpha, a, b, beta, MatMut::from_slice(&mut expect, m, n), epilogue);
    let case = Case {
        alpha,
        ..Case::new(m, n, k)
    };
    let act_tol = if matches!(act, Activation::Sigmoid | Activation::Tanh) {
        ACT_TOL
    } else {
        0.0
    };
    let bound: Vec<f32> = (0..m * n)
        .map(|e| error_bound(case, a, b, e / n, e % n) + act_tol)
        .collect();

    // C is a view with row stride n + 3 inside a guarded buffer; NaN when beta == 0.
    let ldc = n + 3;
    let run = |par: Parallelism| -> Vec<f32> {
        let mut buf = vec![C_GUARD; m * ldc + 4];
        for i in 0..m {
            for j in 0..n {
                buf[2 + i * ldc + j] = if beta == 0.0 { f32::NAN } else { c0[i * n + j] };
            }
        }
        let len = buf.len();
        let c = MatMut::with_row_stride(&mut buf[2..len], m, n, ldc);
        gemm::gemm(alpha, a, b, beta, c, epilogue, par);
        buf
    };
    let inside = |idx: usize| idx >= 2 && idx - 2 < m * ldc && (idx - 2) % ldc < n;

    let kernels: Vec<_> = simdnet::gemm::kernel::all_kernels().collect();
    let default = simdnet::gemm::kernel::default_kernel();
    let mut configs: Vec<(&simdnet::gemm::kernel::MicroKernel, Option<BlockSizes>)> =
        kernels.iter().map(|&kn| (kn, None)).collect();
    configs.push((
        default,
        Some(BlockSizes {
            mc: 3 * default.mr,
            kc: 160,
            nc: 3 * default.nr,
        }),
    ));
    let saved = gemm::block_sizes();
    for (kernel, blocks) in configs {
        gemm::set_kernel(Some(kernel.name)).unwrap();
        gemm::set_block_sizes(blocks.unwrap_or(saved));
        let what = format!("{shape:?}, kernel {}, {:?}", kernel.name, gemm::block_sizes());
        assert!(
            k > gemm::block_sizes().kc,
            "{what}: k must span several kc blocks"
        );
        let tasks = simdnet::gemm::threads::plan(m, n, k, kernel.mr, kernel.nr, true).tasks(m, n);
        assert!(
            tasks > 1,
            "{what}: plan gives {tasks} task, the test needs a split"
        );

        let sequential = run(Parallelism::Sequential);
        for (idx, &v) in sequential.iter().enumerate() {
            if inside(idx) {
                let (i, j) = ((idx - 2) / ldc, (idx - 2) % ldc);
                let (want, tol) = (expect[i * n + j], bound[i * n + j]);
                assert!(
                    (v - want).abs() <= tol,
                    "{what}: C[{i},{j}] = {v}, reference {want}"
                );
            } else {
                assert!(v == C_GUARD, "{what}: guard element {idx} overwritten with {v}");
            }
        }
        for pool in pools {
            let parallel = pool.install(|| run(Parallelism::Rayon));
            if let Some(idx) = (0..parallel.len()).find(|&e| parallel[e].to_bits() != sequential[e].to_bits())
            {
                panic!(
                    "{what}, {tasks} tasks on {} threads: element {idx} (row {}, column {}) is {}, sequential {}",
                    pool.current_num_threads(),
                    idx.wrapping_sub(2) / ldc,
                    idx.wrapping_sub(2) % ldc,
                    parallel[idx],
                    sequential[idx]
                );
            }
        }
        // From this thread, outside any pool: on a global pool of two or more
        // threads, two tasks, one run here and the other on a worker if one
        // takes it in time, else here too (`threads::join_here_or_there`).
        for round in 0..3 {
            let outside = run(Parallelism::Rayon);
            if let Some(idx) = (0..outside.len()).find(|&e| outside[e].to_bits() != sequential[e].to_bits()) {
                panic!(
                    "{what}, called from outside the pool (round {round}): element {idx} is {}, sequential {}",
                    outside[idx], sequential[idx]
                );
            }
        }
    }
    gemm::set_block_sizes(saved);
    gemm::set_kernel(None).unwrap();
}

/// The scalar teaching kernels give the same bits as the SIMD ones
/// (identity/ReLU; sigmoid/tanh within `ACT_TOL`).
#[test]
fn scalar_kernel_matches_simd_kernel() {
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(11);
    let (m, n, k) = (37, 45, 300);
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    for act in [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ] {
        let mut results = Vec::new();
        for name in gemm::available_kernels() {
            gemm::set_kernel(Some(name)).unwrap();
            let mut c = vec![f32::NAN; m * n];
            gemm::gemm(
                1.0,
                MatRef::from_slice(&a, m, k),
                MatRef::from_slice(&b, k, n),
                0.0,
                MatMut::from_slice(&mut c, m, n),
                Epilogue::BiasActivation { bias: &bias, act },
                Parallelism::Sequential,
            );
            results.push((name, c));
        }
        let (first, simd) = &results[0];
        for (name, c) in &results[1..] {
            let exact = matches!(act, Activation::Identity | Activation::Relu) || name.starts_with("simd");
            for (x, y) in c.iter().zip(simd) {
                if exact {
                    assert_eq!(x.to_bits(), y.to_bits(), "{name} vs {first}, {act}");
                } else {
                    assert!((x - y).abs() <= ACT_TOL, "{name} vs {first}, {act}: {x} vs {y}");
                }
            }
        }
    }
}

#[test]
fn kernel_and_block_size_settings() {
    let _g = Globals::lock();
    assert!(gemm::simd_width() == 8 || gemm::simd_width() == 16);
    let names = gemm::available_kernels();
    assert!(names.contains(&gemm::micro_kernel_name()));
    assert!(names.iter().any(|n| n.starts_with("scalar")));
    assert!(gemm::set_kernel(Some("no-such-kernel")).is_err());
    gemm::set_kernel(Some(names[names.len() - 1])).unwrap();
    assert_eq!(gemm::micro_kernel_name(), names[names.len() - 1]);
    let b = BlockSizes {
        mc: 24,
        kc: 16,
        nc: 64,
    };
    gemm::set_block_sizes(b);
    assert_eq!(gemm::block_sizes(), b);
}

#[test]
#[should_panic(expected = "gemm: A is")]
fn mismatched_shapes_panic() {
    let a = [0.0f32; 6];
    let b = [0.0f32; 6];
    let mut c = [0.0f32; 4];
    gemm::gemm(
        1.0,
        MatRef::from_slice(&a, 2, 3),
        MatRef::from_slice(&b, 2, 3),
        0.0,
        MatMut::from_slice(&mut c, 2, 2),
        Epilogue::None,
        Parallelism::Sequential,
    );
}

/// Counts heap allocations made by the current thread.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a thread-local `Cell` (no allocation, `try_with` never panics).
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// After a warm-up call of each shape, a training step's GEMMs allocate nothing.
#[test]
fn no_allocation_after_warm_up() {
    // The other tests of this binary change the block sizes and kernels
    // (which size the packing buffers) while they hold the lock: a warm-up
    // under theirs and a measure under the defaults would grow the buffers.
    let _g = Globals::lock();
    let shapes = [
        (128, 16, 784, false),
        (784, 16, 128, true),
        (128, 10, 16, false),
        (128, 512, 784, false),
        (16, 10, 128, true),
    ];
    let x: Vec<u8> = (0..784 * 128).map(|i| (i % 251) as u8).collect();
    let w = vec![0.5f32; 784 * 512];
    let bias = vec![0.1f32; 512];
    let mut c = vec![0.0f32; 784 * 512];
    let mut step = || {
        for &(m, n, k, ta) in &shapes {
            let a = if ta {
                MatRef::from_slice(&x[..m * k], k, m).t()
            } else {
                MatRef::from_slice(&x[..m * k], m, k)
            };
            let epilogue = Epilogue::BiasActivation {
                bias: &bias[..n],
                act: Activation::Relu,
            };
            let b = MatRef::from_slice(&w[..k * n], k, n);
            let c = MatMut::from_slice(&mut c[..m * n], m, n);
            gemm::gemm(1.0 / 255.0, a, b, 0.0, c, epilogue, Parallelism::Sequential);
        }
        // the first layer's weight gradient over two shards, tile by tile
        let xf = &w[..128 * 392];
        let shard = |s: usize| {
            let x = MatRef::from_slice(&xf[s * 64 * 392..(s + 1) * 64 * 392], 64, 392).t();
            (x, MatRef::from_slice(&w[..64 * 512], 64, 512))
        };
        gemm::sum_of_products(2, shard, MatMut::from_slice(&mut c[..392 * 512], 392, 512));
    };
    let fresh = ALLOCATIONS.with(|c| c.get());
    step();
    let before = ALLOCATIONS.with(|c| c.get());
    assert!(
        before > fresh,
        "the counter sees the packing buffers' first allocation"
    );
    step();
    step();
    assert_eq!(
        ALLOCATIONS.with(|c| c.get()),
        before,
        "gemm allocated after warm-up"
    );
}

/// The dropout epilogue on every kernel (the lanes-along-m kernels write
/// their tile transposed): edge tiles around each kernel's `MR x NR`, a
/// transposed A and B, both thread modes; bit-identical to the reference.
#[test]
fn dropout_epilogue_on_every_kernel() {
    use simdnet::kernels::DropoutMask;
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(21);
    for (name, mr, nr) in common::forced_kernels() {
        for (index, &(m, n, k)) in [(mr + 1, nr - 1, 37), (2 * mr - 1, 2 * nr + 1, 5), (mr, nr, 64)]
            .iter()
            .enumerate()
        {
            let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-3i32..=3) as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-3i32..=3) as f32).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-8i32..=8) as f32).collect();
            let mask = DropoutMask::new(0.5, 7, index as u64, 1).offset(3, 0);
            let epi = Epilogue::BiasActivationDropout {
                bias: &bias,
                act: Activation::Relu,
                mask,
            };
            // Aᵀ and Bᵀ stored, passed as transposed views.
            let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
            let mut want = vec![0.0f32; m * n];
            reference::gemm(
                1.0,
                MatRef::from_slice(&a, m, k),
                MatRef::from_slice(&b, k, n),
                0.0,
                MatMut::from_slice(&mut want, m, n),
                epi,
            );
            for par in [Parallelism::Sequential, Parallelism::Rayon] {
                for transposed in [false, true] {
                    let (av, bv) = if transposed {
                        (
                            MatRef::from_slice(&at, k, m).t(),
                            MatRef::from_slice(&bt, n, k).t(),
                        )
                    } else {
                        (MatRef::from_slice(&a, m, k), MatRef::from_slice(&b, k, n))
                    };
                    let mut c = vec![f32::NAN; m * n];
                    gemm::gemm(1.0, av, bv, 0.0, MatMut::from_slice(&mut c, m, n), epi, par);
                    for (e, (x, y)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            x.to_bits() == y.to_bits(),
                            "{name}, {m}x{n}x{k}, transposed {transposed}, {par:?}: C[{}, {}] = {x}, reference {y}",
                            e / n,
                            e % n
                        );
                    }
                }
            }
        }
    }
    gemm::set_kernel(None).unwrap();
}

/// The default `kc` (where every sum over `k` is cut, hence the trained
/// numbers) does not follow the default kernel's width: 512 on this
/// machine's caches whatever kernel the CPU gets by default (`simd-12x32`
/// on Zen 5 would give 384).
#[test]
fn default_kc_does_not_depend_on_the_default_kernel() {
    let _g = Globals::lock();
    let caches = gemm::blocking::CacheSizes::detect();
    let expected = BlockSizes::for_caches(caches, gemm::blocking::KC_PANEL_WIDTH).kc;
    assert_eq!(BlockSizes::from_env().kc, expected);
    if caches.l1d >= 32 << 10 && std::env::var_os("SIMDNET_KC").is_none() {
        assert_eq!(
            BlockSizes::from_env().kc,
            512,
            "default kernel {}",
            gemm::micro_kernel_name()
        );
    }
}

/// An `f32` A read in place with several B~ panels (up to 128·1024
/// elements, for the kernels that broadcast A) gives the bits of the same A
/// packed into A~ (here: the same rows through `gemm::Gathered`, which is
/// always packed), for every kernel, both orientations of A, a bias and
/// activation epilogue, row blocks past `mc` and a partial last
/// micro-panel; and it matches the reference.
#[test]
fn in_place_a_with_several_b_panels_has_the_bits_of_packed_a_on_every_kernel() {
    let _g = Globals::lock();
    // on every machine, whatever its L1d (`Globals` lets it decide again)
    gemm::loops::set_wide_in_place(Some(true));
    let mut rng = StdRng::seed_from_u64(17);
    on_every_kernel(|index, kernel| {
        let name = kernel.name;
        let (mr, nr) = (kernel.mr, kernel.nr);
        for (m, n, k) in [
            (2 * mr + 1, 2 * nr + 3, 300),
            (250, 3 * nr, 129),
            (128, 2 * nr, 1024),
        ] {
            check_both_orientations_of_a(m, n, k, index as u64);
            let (a, b, bias) = (
                uniform(&mut rng, m * k),
                uniform(&mut rng, k * n),
                uniform(&mut rng, n),
            );
            let at = transpose(&a, m, k);
            let rows: Vec<usize> = (0..m).collect();
            let cols: Vec<usize> = (0..k).collect();
            let bv = MatRef::from_slice(&b, k, n);
            let run = |x: &dyn Fn(MatMut)| product_bits(m, n, x);
            let epi = || Epilogue::BiasActivation {
                bias: &bias,
                act: Activation::Tanh,
            };
            let seq = Parallelism::Sequential;
            let in_place = run(&|c| gemm::gemm(1.0, MatRef::from_slice(&a, m, k), bv, 0.0, c, epi(), seq));
            let packed = run(&|c| {
                let g = gemm::Gathered::new(MatRef::from_slice(&a, m, k), &rows).unwrap();
                gemm::gemm(1.0, g, bv, 0.0, c, epi(), seq)
            });
            assert_eq!(in_place, packed, "{name}: {m}x{n}x{k}, row-major A");
            let in_place_t =
                run(&|c| gemm::gemm(1.0, MatRef::from_slice(&at, k, m).t(), bv, 0.0, c, epi(), seq));
            let packed_t = run(&|c| {
                let g = gemm::Gathered::new(MatRef::from_slice(&at, k, m), &cols).unwrap();
                gemm::gemm(1.0, g.t(), bv, 0.0, c, epi(), seq)
            });
            assert_eq!(in_place_t, packed_t, "{name}: {m}x{n}x{k}, transposed A");
        }
    });
}

/// A row-major B read in place (its full panels, for at most 256 rows of A
/// and at least two panels, or one panel whose rows are contiguous) gives
/// the bits of the same B packed into B~ (here: the same numbers as a
/// column-major view, which is always packed), for every kernel, with A
/// read in place, transposed, or packed (gathered rows), a partial last
/// panel, two depth blocks (k > kc), a padded row stride and a bias and
/// activation epilogue; and it matches the reference.
#[test]
fn in_place_b_has_the_bits_of_packed_b_on_every_kernel() {
    let _g = Globals::lock();
    gemm::loops::set_wide_in_place(Some(true));
    let mut rng = StdRng::seed_from_u64(23);
    on_every_kernel(|index, kernel| {
        let name = kernel.name;
        let (mr, nr) = (kernel.mr, kernel.nr);
        let shapes = [
            (2 * mr + 1, 2 * nr + 3, 300, 5),
            (256, 3 * nr, 700, 5),
            (mr, 2 * nr, 1, 5),
            // one panel whose rows are contiguous, as in B~
            (2 * mr + 1, nr, 300, 0),
            // narrower than a panel, its last vector partial (the 10
            // logits with a 16-wide tile): contiguous rows, then padded
            (2 * mr + 1, nr.saturating_sub(LANES) + 1, 300, 0),
            (mr + 3, (nr - 1).max(1), 600, 2),
        ];
        for (m, n, k, pad) in shapes {
            check_both_orientations_of_a(m, n, k, index as u64);
            let (a, b, bias) = (
                uniform(&mut rng, m * k),
                uniform(&mut rng, k * (n + pad)),
                uniform(&mut rng, n),
            );
            let at = transpose(&a, m, k);
            let b_rows = MatRef::with_strides(&b, k, n, n + pad, 1);
            let b_copy: Vec<f32> = (0..k).flat_map(|p| b[p * (n + pad)..][..n].to_vec()).collect();
            let bt = transpose(&b_copy, k, n);
            let b_cols = MatRef::from_slice(&bt, n, k).t();
            let rows: Vec<usize> = (0..m).collect();
            let run = |x: &dyn Fn(MatMut)| product_bits(m, n, x);
            let epi = || Epilogue::BiasActivation {
                bias: &bias,
                act: Activation::Tanh,
            };
            let seq = Parallelism::Sequential;
            let a_rows = MatRef::from_slice(&a, m, k);
            let a_cols = MatRef::from_slice(&at, k, m).t();
            for (what, a_view) in [("row-major A", a_rows), ("transposed A", a_cols)] {
                let in_place = run(&|c| gemm::gemm(1.0, a_view, b_rows, 0.0, c, epi(), seq));
                let packed = run(&|c| gemm::gemm(1.0, a_view, b_cols, 0.0, c, epi(), seq));
                assert_eq!(in_place, packed, "{name}: {m}x{n}x{k}, {what}");
            }
            let gathered = |b_view| {
                run(&|c| {
                    let g = gemm::Gathered::new(a_rows, &rows).unwrap();
                    gemm::gemm(1.0, g, b_view, 0.0, c, epi(), seq)
                })
            };
            assert_eq!(
                gathered(b_rows),
                gathered(b_cols),
                "{name}: {m}x{n}x{k}, packed A"
            );
        }
    });
}

/// A B read in place whose last panel ends inside a vector (the 10
/// logits) is read a whole vector at a time in every step but the last
/// few, on into the floats after the step's valid columns: here B's
/// padding columns, all NaN. None of them may reach C: every product,
/// by default and with the in-place reads forced on, has the bits of the
/// same product from a NaN-free copy of B, packed (a column-major view),
/// and no NaN. Shapes: one and two depth blocks, `k` from 1 (only masked
/// steps) up, row strides from `n + 1` (a whole read runs into the next
/// row) to `n + 8`, tiles short and full.
#[test]
fn edge_panels_read_whole_leak_nothing_from_past_the_columns() {
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(29);
    for forced in [None, Some(true)] {
        gemm::loops::set_wide_in_place(forced);
        // Depths of 64 or less take the small path; 100 and more (one and
        // two depth blocks) the five loops, where B's last vector is partial
        // and its row stride runs past the panel's width: the edge reads this
        // test is about (2x13x1000's stride, 16, is a whole panel on 4 and
        // 16 lanes). Under Miri only the shapes of fewer than 128 rows.
        let shapes = [
            (128, 10, 512, 1),
            (128, 10, 700, 6),
            (7, 10, 1, 1),
            (13, 9, 3, 8),
            (6, 15, 2, 1),
            (64, 11, 37, 2),
            (2, 13, 1000, 3),
            (7, 10, 100, 1),
            (20, 10, 100, 2),
            (9, 10, 700, 6),
        ];
        let shapes = shapes.into_iter().filter(|&(m, ..)| !cfg!(miri) || m < 128);
        for (m, n, k, pad) in shapes {
            let (a, bias) = (uniform(&mut rng, m * k), uniform(&mut rng, n));
            let mut b = vec![f32::NAN; k * (n + pad)];
            let mut b_copy = vec![0.0; k * n];
            for p in 0..k {
                for j in 0..n {
                    let v: f32 = rng.random_range(-1.0..1.0);
                    b[p * (n + pad) + j] = v;
                    b_copy[j * k + p] = v; // column-major: always packed
                }
            }
            let b_rows = MatRef::with_strides(&b, k, n, n + pad, 1);
            let b_cols = MatRef::from_slice(&b_copy, n, k).t();
            let a = MatRef::from_slice(&a, m, k);
            let epi = || Epilogue::BiasActivation {
                bias: &bias,
                act: Activation::Tanh,
            };
            let seq = Parallelism::Sequential;
            let in_place = product_bits(m, n, |c| gemm::gemm(1.0, a, b_rows, 0.0, c, epi(), seq));
            let packed = product_bits(m, n, |c| gemm::gemm(1.0, a, b_cols, 0.0, c, epi(), seq));
            let case = format!("{m}x{n}x{k}, row stride {}, in-place reads {forced:?}", n + pad);
            assert!(
                in_place.iter().all(|&v| !f32::from_bits(v).is_nan()),
                "{case}: a NaN reached C"
            );
            assert_eq!(in_place, packed, "{case}: not the bits of packed B");
        }
    }
    gemm::loops::set_wide_in_place(None);
}

/// `len` values in -1..1.
fn uniform(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The bits of the `m x n` product that `gemm_into` writes into a C of NaNs.
fn product_bits(m: usize, n: usize, gemm_into: impl Fn(MatMut)) -> Vec<u32> {
    let mut c = vec![f32::NAN; m * n];
    gemm_into(MatMut::from_slice(&mut c, m, n));
    c.iter().map(|v| v.to_bits()).collect()
}

/// `check` with A row-major and transposed, the rest as `Case::new`.
fn check_both_orientations_of_a(m: usize, n: usize, k: usize, seed: u64) {
    for ta in [false, true] {
        check(
            Case {
                ta,
                ..Case::new(m, n, k)
            },
            seed,
        );
    }
}

/// Transposes a row-major `(rows, cols)` slice.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| x[i * cols + j]))
        .collect()
}

/// Runs `f(index, kernel)` with each available micro-kernel forced in turn
/// (`gemm::set_kernel`), then lets the shape choose again.
fn on_every_kernel(mut f: impl FnMut(usize, &gemm::kernel::MicroKernel)) {
    // each kernel runs every product, the small ones too
    gemm::set_small_products(false);
    for (index, name) in gemm::available_kernels().into_iter().enumerate() {
        gemm::set_kernel(Some(name)).unwrap();
        let kernel = gemm::kernel::all_kernels().find(|k| k.name == name).unwrap();
        f(index, kernel);
    }
    gemm::set_kernel(None).unwrap();
}

/// A read in place ("direct": one B~ panel) over a long `k`, for every
/// kernel and both orientations of A: the lanes-along-m kernels copy a
/// row-major A panel through a stack buffer in runs of steps, and the
/// others address rows from grouped base pointers; both must cover every
/// step in order.
#[test]
fn in_place_a_with_long_k_on_every_kernel() {
    let _g = Globals::lock();
    on_every_kernel(|index, kernel| {
        for (m, n, k) in [
            (kernel.mr, kernel.nr, 300),
            (2 * kernel.mr + 1, kernel.nr - 1, 517),
        ] {
            check_both_orientations_of_a(m, n, k, index as u64);
        }
    });
}

/// `sum_of_products` against the products computed apart (`gemm`, beta 0)
/// and added in order, bit for bit: every kernel; A as the weight
/// gradient's transposed view, row-major, and a strided window; B with a
/// padded row; tile edges in m and n around every kernel's `MR x NR`;
/// one to ten terms of unequal depths (a last shard of fewer rows, an
/// empty one).
#[test]
fn sum_of_products_has_the_bits_of_the_products_added_in_order() {
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(41);
    on_every_kernel(|_, kernel| {
        let (mr, nr) = (kernel.mr, kernel.nr);
        let ms = [1, mr - 1, mr + 1, 2 * mr + 3, 50];
        let ns = [1, nr - 1, nr, nr + 3, 2 * nr + 5];
        // More than 8 products run in groups of 8; products whose depths
        // add up to more than kc in smaller groups (here 3).
        let kc = gemm::block_sizes().kc;
        let deep = [kc - 5, 7, kc / 2, kc / 2 + 1, 3];
        let depth_sets: [&[usize]; 7] = [
            &[64, 64],
            &[64, 32],
            &[9],
            &[1, 4, 7],
            &[0, 4],
            &[3, 1, 4, 1, 5, 9, 2, 6, 5, 3],
            &deep,
        ];
        for (t, depths) in depth_sets.iter().enumerate() {
            let (m, n) = (ms[t % ms.len()], ns[(t + 1) % ns.len()]);
            for &(m, n) in &[(m, n), (ms[(t + 2) % ms.len()], ns[t % ns.len()])] {
                for layout in 0..3 {
                    check_sum_of_products(&mut rng, m, n, depths, layout, kernel.name);
                }
            }
        }
    });
}

/// One case of `sum_of_products_has_the_bits_of_the_products_added_in_order`:
/// `layout` 0 stores each A transposed (`x_sᵀ`, as the weight gradient
/// reads the shards), 1 row-major, 2 a window of a wider matrix.
fn check_sum_of_products(
    rng: &mut StdRng,
    m: usize,
    n: usize,
    depths: &[usize],
    layout: usize,
    kernel: &str,
) {
    let pad = 3;
    let a_data: Vec<Vec<f32>> = depths
        .iter()
        .map(|&k| uniform(rng, (m + pad) * (k + pad)))
        .collect();
    let b_data: Vec<Vec<f32>> = depths.iter().map(|&k| uniform(rng, k * (n + pad))).collect();
    let a = |s: usize| {
        let (k, d) = (depths[s], &a_data[s]);
        match layout {
            0 => MatRef::from_slice(&d[..k * m], k, m).t(),
            1 => MatRef::from_slice(&d[..m * k], m, k),
            // rows m of length k + pad, the first k columns: row stride k + pad
            _ => MatRef::from_slice(&d[..m * (k + pad)], m, k + pad).cols_range(0, k),
        }
    };
    let b = |s: usize| MatRef::from_slice(&b_data[s], depths[s], n + pad).cols_range(0, n);
    // apart: each product into its own buffer, then added in order
    let mut apart = vec![0.0f32; m * n];
    for s in 0..depths.len() {
        let mut p = vec![f32::NAN; m * n];
        gemm::gemm(
            1.0,
            a(s),
            b(s),
            0.0,
            MatMut::from_slice(&mut p, m, n),
            Epilogue::None,
            Parallelism::Sequential,
        );
        for (c, p) in apart.iter_mut().zip(&p) {
            *c = if s == 0 { *p } else { *c + *p };
        }
    }
    let summed = product_bits(m, n, |c| gemm::sum_of_products(depths.len(), |s| (a(s), b(s)), c));
    let apart: Vec<u32> = apart.iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        summed, apart,
        "kernel {kernel}, {m}x{n}, depths {depths:?}, layout {layout}"
    );
}

/// No term gives zeros; a term deeper than one depth block, or a term of
/// the wrong shape, is refused with a message naming it.
#[test]
fn sum_of_products_edges_and_refusals() {
    let _g = Globals::lock();
    let mut c = vec![f32::NAN; 6];
    gemm::sum_of_products(0, |_| unreachable!(), MatMut::from_slice(&mut c, 2, 3));
    assert_eq!(c, vec![0.0; 6]);
    let deep = gemm::block_sizes().kc + 1;
    assert!(!gemm::one_block_each([64, deep]));
    assert!(gemm::one_block_each([64, 64, 1]));
    let a = vec![1.0f32; 2 * deep];
    let b = vec![1.0f32; deep * 3];
    let refused = |term: &(dyn Fn(usize) -> (MatRef<'static, f32>, MatRef<'static, f32>) + Sync)| {
        let mut c = vec![0.0f32; 6];
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gemm::sum_of_products(1, term, MatMut::from_slice(&mut c, 2, 3))
        }))
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())
    };
    let a: &'static [f32] = a.leak();
    let b: &'static [f32] = b.leak();
    let too_deep =
        refused(&|_| (MatRef::from_slice(a, 2, deep), MatRef::from_slice(b, deep, 3))).unwrap_err();
    assert!(
        too_deep.contains("term 0 has depth") && too_deep.contains("more than one block"),
        "{too_deep}"
    );
    let misfit = refused(&|_| {
        (
            MatRef::from_slice(&a[..4], 2, 2),
            MatRef::from_slice(&b[..6], 3, 2),
        )
    })
    .unwrap_err();
    assert!(misfit.contains("term 0 is 2x2 times 3x2, C is 2x3"), "{misfit}");
    // A term that itself calls sum_of_products (re-entered on this thread:
    // its own buffers, no panic), and both results right.
    let (a1, b1) = (&a[..4], &b[..6]);
    let term = || (MatRef::from_slice(a1, 2, 2), MatRef::from_slice(b1, 2, 3));
    let mut outer = vec![0.0f32; 6];
    gemm::sum_of_products(
        2,
        |_| {
            let mut inner = vec![0.0f32; 6];
            gemm::sum_of_products(1, |_| term(), MatMut::from_slice(&mut inner, 2, 3));
            assert_eq!(inner, vec![2.0; 6]);
            term()
        },
        MatMut::from_slice(&mut outer, 2, 3),
    );
    assert_eq!(outer, vec![4.0; 6]);
}

/// The small-product path (`gemm::small`: at most `MAX_M` rows, two
/// vectors of columns and a depth of `MAX_K`, A read in place, no dropout)
/// gives the bits of the five loops, for row-major and transposed A and B,
/// padded row strides, a bias with every activation and no epilogue,
/// partial last vectors, tails of rows, and NaN and infinities in A; and,
/// on small integers, exactly the reference.
#[test]
fn small_products_have_the_bits_of_the_five_loops() {
    use gemm::small::{fits, products_on_this_thread, MAX_K, MAX_M, MAX_N};
    let _g = Globals::lock();
    let mut rng = StdRng::seed_from_u64(29);
    let acts = [
        None,
        Some(Activation::Identity),
        Some(Activation::Relu),
        Some(Activation::Sigmoid),
        Some(Activation::Tanh),
    ];
    // Under Miri (see the README) a sixth of the shapes, each kind of edge kept:
    // all of them would take hours there.
    let (ms, ns, ks): (&[usize], &[usize], &[usize]) = if cfg!(miri) {
        (&[1, 5, 9, 65], &[1, LANES - 1, LANES + 1, MAX_N], &[1, 7, MAX_K])
    } else {
        (
            &[1, 3, 4, 5, 8, 9, 16, 64, 65, MAX_M],
            &[1, 10, LANES - 1, LANES, LANES + 1, MAX_N - 1, MAX_N],
            &[1, 7, 16, MAX_K],
        )
    };
    let mut case = 0usize;
    for &m in ms {
        for &n in ns {
            for &k in ks {
                assert!(fits(m, n, k), "{m}x{n}x{k} should fit the small path");
                for (a_trans, b_trans) in [(false, false), (true, false), (false, true), (true, true)] {
                    case += 1;
                    let act = acts[case % acts.len()];
                    let integers = case.is_multiple_of(3);
                    let mut draw = |len: usize| -> Vec<f32> {
                        (0..len)
                            .map(|_| {
                                if integers {
                                    rng.random_range(-3i32..=3) as f32
                                } else {
                                    rng.random_range(-1.0f32..1.0)
                                }
                            })
                            .collect()
                    };
                    let (mut a, b, bias) = (draw(m * k), draw(k * n), draw(n));
                    if case.is_multiple_of(7) {
                        a[0] = f32::NAN;
                        a[m * k / 2] = f32::INFINITY;
                        a[m * k - 1] = f32::NEG_INFINITY;
                    }
                    // A and B with padded rows, each stored as it is or transposed
                    let (a_store, ars, acs) = storage(m, k, a_trans, 3, |i, p| a[i * k + p]);
                    let a_view = MatRef::with_strides(&a_store, m, k, ars, acs);
                    let (b_store, brs, bcs) = storage(k, n, b_trans, 2, |p, j| b[p * n + j]);
                    let b_view = MatRef::with_strides(&b_store, k, n, brs, bcs);
                    let epi = || match act {
                        None => Epilogue::None,
                        Some(act) => Epilogue::BiasActivation { bias: &bias, act },
                    };
                    let seq = Parallelism::Sequential;
                    let what =
                        format!("{m}x{n}x{k}, A transposed {a_trans}, B transposed {b_trans}, {act:?}");
                    let before = products_on_this_thread();
                    let small = product_bits(m, n, |c| gemm::gemm(1.0, a_view, b_view, 0.0, c, epi(), seq));
                    assert_eq!(
                        products_on_this_thread(),
                        before + 1,
                        "{what}: not run on the small path"
                    );
                    gemm::set_small_products(false);
                    let loops = product_bits(m, n, |c| gemm::gemm(1.0, a_view, b_view, 0.0, c, epi(), seq));
                    gemm::set_small_products(true);
                    assert_eq!(
                        products_on_this_thread(),
                        before + 1,
                        "{what}: the loops ran on the small path"
                    );
                    // Miri gives each NaN a payload of its choosing, as the
                    // language allows, so there a NaN matches any NaN.
                    let same = |x: u32, y: u32| {
                        x == y || (cfg!(miri) && f32::from_bits(x).is_nan() && f32::from_bits(y).is_nan())
                    };
                    if let Some(i) = (0..m * n).find(|&i| !same(small[i], loops[i])) {
                        panic!(
                            "{what}: C[{}, {}] is {} on the small path, {} in the loops",
                            i / n,
                            i % n,
                            f32::from_bits(small[i]),
                            f32::from_bits(loops[i])
                        );
                    }
                    if integers
                        && matches!(act, None | Some(Activation::Identity | Activation::Relu))
                        && !case.is_multiple_of(7)
                    {
                        let mut want = vec![0.0f32; m * n];
                        reference::gemm(
                            1.0,
                            a_view,
                            b_view,
                            0.0,
                            MatMut::from_slice(&mut want, m, n),
                            epi(),
                        );
                        let got: Vec<f32> = small.iter().map(|&x| f32::from_bits(x)).collect();
                        assert_eq!(got, want, "{what}: against the reference");
                    }
                }
            }
        }
    }
}
