//! One training step's products in sequence: simdnet against the `gemm`
//! crate and `matrixmultiply`, in one process.
//!
//! Run with `cargo bench --bench step` (about ten seconds). A word argument
//! keeps only the networks whose name contains it (`cargo bench --bench
//! step -- 512`).
//!
//! `cargo bench --bench gemm` times each product again and again on its
//! own buffers, so its operands and its output stay in cache. In training
//! they do not: a step runs a layer's products one after the other, each
//! reading what the previous one wrote, and the optimiser streams every
//! weight between two steps. Here each library runs the products of a
//! dense network's step in the trainer's order, on the same buffers:
//!
//! ```text
//! forward,  layer l:  H_l = H_{l-1}·W_l               (H_0 = X, the batch)
//! backward, layer l:  dW_l = H_{l-1}ᵀ·dZ_l            (last layer first)
//!                     dZ_{l-1} = dZ_l·W_lᵀ             (not for the first layer)
//! then an RMSprop-like pass over every W, dW and a state slot (the same
//! plain loop for every library)
//! ```
//!
//! How every library is timed, the same way:
//! - `f32` inputs (the trainer reads `u8` pixels for the first layer, which
//!   the peers cannot), `C = A·B` (`beta = 0`), the same strided views;
//! - 1 thread: simdnet `Parallelism::Sequential`, gemm `Parallelism::None`;
//!   2 threads: rayon's global pool, simdnet `Parallelism::Rayon`, gemm
//!   `Parallelism::Rayon(2)` (matrixmultiply always runs one thread: it is
//!   built without its `threading` feature, so it is left out there);
//! - rounds: in each, every library runs `STEPS` whole steps, the libraries
//!   taking turns going first; each product's cell is the median over the
//!   rounds of its time per step, and so is the whole step's (optimiser
//!   pass included).
//!
//! Every product of every library is checked against `gemm::reference`
//! before anything is timed.

use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::gemm::{self, reference, Epilogue, Parallelism};
use simdnet::matrix::{MatMut, MatRef};
use std::time::Instant;

include!("common/peers.rs");

/// Examples per mini-batch (the workshop's).
const BATCH: usize = 128;
/// Whole steps each library runs per round.
const STEPS: usize = 10;
/// Rounds (medians over them).
const ROUNDS: usize = 9;

/// The libraries, in the order of the columns.
const LIBS: [&str; 3] = ["ours", "gemm", "mm"];

/// A row-major matrix.
struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Mat {
    fn random(rows: usize, cols: usize, scale: f32, rng: &mut StdRng) -> Mat {
        let data = (0..rows * cols)
            .map(|_| scale * rng.random_range(-1.0f32..1.0))
            .collect();
        Mat { rows, cols, data }
    }
}

/// One product of the step: `C = op(A)·op(B)` on the network's buffers,
/// named by index into [`Net::mats`].
#[derive(Clone, Copy)]
struct Product {
    label: &'static str,
    layer: usize,
    a: usize,
    a_t: bool,
    b: usize,
    b_t: bool,
    c: usize,
}

/// A dense network's buffers and the products of its step.
struct Net {
    name: String,
    mats: Vec<Mat>,
    products: Vec<Product>,
    /// `(W, dW, state)` indices into `mats`, per layer.
    params: Vec<(usize, usize, usize)>,
}

impl Net {
    fn new(widths: &[usize], rng: &mut StdRng) -> Net {
        let name = widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-");
        let mut mats = vec![];
        let mut push = |m: Mat| {
            mats.push(m);
            mats.len() - 1
        };
        let layers = widths.len() - 1;
        // activations H_0..H_L and gradients dZ_1..dZ_L (dZ_l: BATCH x widths[l])
        let h: Vec<usize> = widths
            .iter()
            .map(|&w| push(Mat::random(BATCH, w, 1.0, rng)))
            .collect();
        let dz: Vec<usize> = widths
            .iter()
            .map(|&w| push(Mat::random(BATCH, w, 0.1, rng)))
            .collect();
        let mut params = vec![];
        for l in 0..layers {
            let (fan_in, fan_out) = (widths[l], widths[l + 1]);
            let w = push(Mat::random(fan_in, fan_out, 1.0 / (fan_in as f32).sqrt(), rng));
            let dw = push(Mat::random(fan_in, fan_out, 0.0, rng));
            let s = push(Mat::random(fan_in, fan_out, 0.0, rng));
            params.push((w, dw, s));
        }
        let mut products = vec![];
        for (l, &(w, _, _)) in params.iter().enumerate() {
            products.push(Product {
                label: "H·W",
                layer: l + 1,
                a: h[l],
                a_t: false,
                b: w,
                b_t: false,
                c: h[l + 1],
            });
        }
        for (l, &(w, dw, _)) in params.iter().enumerate().rev() {
            products.push(Product {
                label: "Hᵀ·dZ",
                layer: l + 1,
                a: h[l],
                a_t: true,
                b: dz[l + 1],
                b_t: false,
                c: dw,
            });
            if l > 0 {
                products.push(Product {
                    label: "dZ·Wᵀ",
                    layer: l + 1,
                    a: dz[l + 1],
                    a_t: false,
                    b: w,
                    b_t: true,
                    c: dz[l],
                });
            }
        }
        Net {
            name,
            mats,
            products,
            params,
        }
    }

    /// `(m, n, k)` of a product.
    fn shape(&self, p: &Product) -> (usize, usize, usize) {
        let (a, b) = (&self.mats[p.a], &self.mats[p.b]);
        let (m, k) = if p.a_t { (a.cols, a.rows) } else { (a.rows, a.cols) };
        let n = if p.b_t { b.rows } else { b.cols };
        (m, n, k)
    }

    /// Runs product `p` with library `lib` on `threads` threads.
    fn run(&mut self, p: &Product, lib: &str, threads: usize) {
        let (m, n, k) = self.shape(p);
        let mut c = std::mem::take(&mut self.mats[p.c].data);
        let (a, b) = (&self.mats[p.a], &self.mats[p.b]);
        // element (i, q) of op(A) at i·ars + q·acs; (q, j) of op(B) at q·brs + j·bcs
        let (ars, acs) = if p.a_t { (1, a.cols) } else { (a.cols, 1) };
        let (brs, bcs) = if p.b_t { (1, b.cols) } else { (b.cols, 1) };
        let strides = Strides {
            m,
            n,
            k,
            ars,
            acs,
            brs,
            bcs,
        };
        match lib {
            "ours" => {
                let av = MatRef::with_strides(&a.data, m, k, ars, acs);
                let bv = MatRef::with_strides(&b.data, k, n, brs, bcs);
                let par = if threads == 1 {
                    Parallelism::Sequential
                } else {
                    Parallelism::Rayon
                };
                gemm::gemm(
                    1.0,
                    av,
                    bv,
                    0.0,
                    MatMut::from_slice(&mut c, m, n),
                    Epilogue::None,
                    par,
                );
            }
            // SAFETY (both): the strides describe the live buffers `a` and `b`.
            "gemm" => unsafe { gemm_crate(strides, a.data.as_ptr(), b.data.as_ptr(), &mut c, threads) },
            _ => unsafe { matrixmultiply(strides, a.data.as_ptr(), b.data.as_ptr(), &mut c) },
        }
        self.mats[p.c].data = c;
    }

    /// The optimiser's pass: RMSprop on every weight (a tiny rate: the
    /// values stay where they are, the memory traffic is the point).
    fn update(&mut self) {
        for &(w, dw, st) in &self.params {
            let grad = std::mem::take(&mut self.mats[dw].data);
            let mut state = std::mem::take(&mut self.mats[st].data);
            for ((w, &g), s) in self.mats[w].data.iter_mut().zip(&grad).zip(state.iter_mut()) {
                *s = 0.9 * *s + 0.1 * g * g;
                *w -= 1e-9 * g / (s.sqrt() + 1e-7);
            }
            self.mats[dw].data = grad;
            self.mats[st].data = state;
        }
    }

    /// Checks every product of every library against the reference.
    fn verify(&mut self) {
        for p in self.products.clone() {
            let (m, n, k) = self.shape(&p);
            for lib in LIBS {
                self.run(&p, lib, 1);
                let (a, b) = (&self.mats[p.a], &self.mats[p.b]);
                let (ars, acs) = if p.a_t { (1, a.cols) } else { (a.cols, 1) };
                let (brs, bcs) = if p.b_t { (1, b.cols) } else { (b.cols, 1) };
                let av = MatRef::with_strides(&a.data, m, k, ars, acs);
                let bv = MatRef::with_strides(&b.data, k, n, brs, bcs);
                let mut want = vec![0.0f32; m * n];
                reference::gemm(
                    1.0,
                    av,
                    bv,
                    0.0,
                    MatMut::from_slice(&mut want, m, n),
                    Epilogue::None,
                );
                let got = &self.mats[p.c].data;
                let scale = want.iter().fold(1.0f32, |s, x| s.max(x.abs()));
                let worst = got
                    .iter()
                    .zip(&want)
                    .fold(0.0f32, |e, (g, w)| e.max((g - w).abs()));
                assert!(
                    worst <= 1e-3 * scale,
                    "{lib} {} layer {} {m}x{n}x{k}: off the reference by {worst}",
                    p.label,
                    p.layer
                );
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .expect("the global rayon pool is built once, before any parallel call");
    println!(
        "simdnet step bench: {} lanes, kernel {}, blocks {:?}, {}",
        gemm::simd_width(),
        gemm::micro_kernel_name(),
        gemm::block_sizes(),
        simdnet::profile::facts::describe_in_place(gemm::loops::reads_wide_in_place())
    );
    println!("ms per step, median of {ROUNDS} rounds of {STEPS} steps; ratio = best peer's time / simdnet's (>= 0.97 is level)\n");
    let mut rng = StdRng::seed_from_u64(1);
    for widths in [[784, 512, 512, 10], [784, 16, 16, 10]] {
        let mut net = Net::new(&widths, &mut rng);
        if filter.as_ref().is_some_and(|f| !net.name.contains(f.as_str())) {
            continue;
        }
        net.verify();
        for threads in [1, 2] {
            let libs: &[&str] = if threads == 1 { &LIBS } else { &LIBS[..2] };
            let np = net.products.len();
            // [lib][product or np for the whole step] -> per-round ms per step
            let mut times = vec![vec![vec![]; np + 1]; libs.len()];
            for round in 0..ROUNDS {
                for turn in 0..libs.len() {
                    let li = (turn + round) % libs.len();
                    let mut per = vec![0.0f64; np];
                    let start = Instant::now();
                    for _ in 0..STEPS {
                        for (pi, spent) in per.iter_mut().enumerate() {
                            let p = net.products[pi];
                            let t = Instant::now();
                            net.run(&p, libs[li], threads);
                            *spent += t.elapsed().as_secs_f64();
                        }
                        net.update();
                    }
                    let total = start.elapsed().as_secs_f64();
                    for (pi, t) in per.iter().enumerate() {
                        times[li][pi].push(t * 1e3 / STEPS as f64);
                    }
                    times[li][np].push(total * 1e3 / STEPS as f64);
                }
            }
            println!("network {}, batch {BATCH}, {threads} thread(s)", net.name);
            print!("{:<30}", "product");
            for lib in libs {
                print!(" {lib:>8}");
            }
            println!("    ratio");
            for row in 0..=np {
                let label = if row < np {
                    let p = net.products[row];
                    let (m, n, k) = net.shape(&p);
                    format!("{:<6} layer {} {m}x{n}x{k}", p.label, p.layer)
                } else {
                    "whole step, optimiser included".to_string()
                };
                let cells: Vec<f64> = times.iter_mut().map(|lib| median(&mut lib[row])).collect();
                let best_peer = cells[1..].iter().copied().fold(f64::INFINITY, f64::min);
                print!("{label:<30}");
                for c in &cells {
                    print!(" {c:>8.3}");
                }
                println!(" {:>8.2}", best_peer / cells[0]);
            }
            println!();
        }
    }
}
