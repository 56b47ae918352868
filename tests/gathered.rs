//! The GEMM's gathered A operand (`gemm::Gathered`: rows of a data set picked
//! by index, and their transpose) against the reference GEMM on the copied
//! rows, and bit for bit against the fast GEMM on the copy (training with
//! the gathered operand must give the weights the copying path gave).
//!
//! Inputs are small integers (u8 pixels up to 255 times |b| <= 3, or f32 in
//! -3..=3), so every partial sum is exact and any order agrees: fast and
//! reference must match exactly.

mod common;

use common::reference_product;
use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::gemm::{self, AOperand, BlockSizes, Epilogue, Gathered, Parallelism};
use simdnet::matrix::{Element, MatMut, MatRef};
use std::sync::Mutex;

/// The kernel and block sizes are process-wide: tests that change them or
/// compare bits hold this.
static GLOBALS: Mutex<()> = Mutex::new(());

/// `base: (rows, k)` row-major with a row stride of `k + pad`, and a batch
/// `index` of `m` rows of it (repeats allowed).
struct Case<T> {
    base: Vec<T>,
    rows: usize,
    k: usize,
    pad: usize,
    index: Vec<usize>,
}

impl<T: Element> Case<T> {
    fn new(rng: &mut StdRng, m: usize, k: usize, pad: usize, value: impl Fn(&mut StdRng) -> T) -> Self {
        let rows = m + 5;
        let base = (0..rows * (k + pad)).map(|_| value(rng)).collect();
        let index = (0..m).map(|_| rng.random_range(0..rows)).collect();
        Case {
            base,
            rows,
            k,
            pad,
            index,
        }
    }

    fn view(&self) -> MatRef<'_, T> {
        MatRef::with_strides(&self.base, self.rows, self.k, self.k + self.pad, 1)
    }

    fn gathered(&self) -> Gathered<'_, T> {
        Gathered::new(self.view(), &self.index).unwrap()
    }

    /// The picked rows, copied: `(m, k)` row-major.
    fn copy(&self) -> Vec<T> {
        let v = self.view();
        self.index
            .iter()
            .flat_map(|&r| (0..self.k).map(move |p| v.at(r, p)))
            .collect()
    }
}

fn small_b(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-3i32..=3) as f32).collect()
}

fn fast(alpha: f32, a: impl AOperand, b: MatRef<f32>, par: Parallelism) -> Vec<f32> {
    let (m, n) = (a.rows(), b.cols());
    let mut c = vec![f32::NAN; m * n];
    gemm::gemm(
        alpha,
        a,
        b,
        0.0,
        MatMut::from_slice(&mut c, m, n),
        Epilogue::None,
        par,
    );
    c
}

/// Transposes a row-major `(rows, cols)` slice.
fn transpose<T: Copy>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| x[i * cols + j]))
        .collect()
}

/// `X·W` and `Xᵀ·dZ` with X gathered, against the reference on the copy
/// and the fast GEMM on the copy (bits).
fn check_case<T: Element>(case: &Case<T>, n: usize, alpha: f32, rng: &mut StdRng, what: &str) {
    let (m, k) = (case.index.len(), case.k);
    let copy = case.copy();
    for par in [Parallelism::Sequential, Parallelism::Rayon] {
        // forward: (m, k)·(k, n)
        let w = small_b(rng, k * n);
        let got = fast(alpha, case.gathered(), MatRef::from_slice(&w, k, n), par);
        let want = reference_product(alpha, &copy, &w, (m, k, n), Epilogue::None);
        assert_eq!(got, want, "{what}: X·W {m}x{k}x{n} {par:?} against the reference");
        let copied = fast(
            alpha,
            MatRef::from_slice(&copy, m, k),
            MatRef::from_slice(&w, k, n),
            par,
        );
        assert_eq!(
            bits(&got),
            bits(&copied),
            "{what}: X·W {m}x{k}x{n} {par:?} against the copy"
        );
        // weight gradient: (k, m)·(m, n)
        let dz = small_b(rng, m * n);
        let got = fast(alpha, case.gathered().t(), MatRef::from_slice(&dz, m, n), par);
        let want = reference_product(alpha, &transpose(&copy, m, k), &dz, (k, m, n), Epilogue::None);
        assert_eq!(
            got, want,
            "{what}: Xᵀ·dZ {k}x{m}x{n} {par:?} against the reference"
        );
        let copied = fast(
            alpha,
            MatRef::from_slice(&copy, m, k).t(),
            MatRef::from_slice(&dz, m, n),
            par,
        );
        assert_eq!(
            bits(&got),
            bits(&copied),
            "{what}: Xᵀ·dZ {k}x{m}x{n} {par:?} against the copy"
        );
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

const M: [usize; 9] = [1, 3, 15, 16, 17, 33, 64, 100, 128];
const K: [usize; 5] = [1, 7, 64, 130, 784];
const N: [usize; 6] = [1, 10, 16, 17, 40, 130];

#[test]
fn gathered_u8_pixels_match_the_reference_on_many_shapes() {
    let _g = GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = StdRng::seed_from_u64(7);
    for (s, (&m, &k)) in M.iter().flat_map(|m| K.iter().map(move |k| (m, k))).enumerate() {
        let case = Case::new(&mut rng, m, k, s % 3, |r| r.random::<u8>());
        let n = N[s % N.len()];
        check_case(&case, n, 1.0, &mut rng, "u8");
        check_case(&case, N[(s + 3) % N.len()], 2.0, &mut rng, "u8 alpha 2");
    }
}

#[test]
fn gathered_f32_matches_the_reference_on_many_shapes() {
    let _g = GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = StdRng::seed_from_u64(8);
    for (s, (&m, &k)) in M.iter().flat_map(|m| K.iter().map(move |k| (m, k))).enumerate() {
        let case = Case::new(&mut rng, m, k, (s + 1) % 3, |r| r.random_range(-3i32..=3) as f32);
        check_case(&case, N[s % N.len()], 1.0, &mut rng, "f32");
        check_case(&case, N[(s + 2) % N.len()], 0.5, &mut rng, "f32 alpha 0.5");
    }
}

#[test]
fn gathered_edge_tiles_for_every_kernel_and_small_blocks() {
    let _g = GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
    let saved = gemm::block_sizes();
    let mut rng = StdRng::seed_from_u64(9);
    for name in gemm::available_kernels() {
        gemm::set_kernel(Some(name)).unwrap();
        for blocks in [
            saved,
            BlockSizes {
                mc: 24,
                kc: 16,
                nc: 48,
            },
        ] {
            gemm::set_block_sizes(blocks);
            for (m, k, n) in [(37, 45, 33), (70, 100, 17), (5, 300, 70), (64, 784, 16)] {
                let u8_case = Case::new(&mut rng, m, k, 1, |r| r.random::<u8>());
                check_case(&u8_case, n, 1.0, &mut rng, name);
                let f32_case = Case::new(&mut rng, m, k, 2, |r| r.random_range(-3i32..=3) as f32);
                check_case(&f32_case, n, 1.0, &mut rng, name);
            }
        }
    }
    gemm::set_block_sizes(saved);
    gemm::set_kernel(None).unwrap();
}

#[test]
fn the_pixel_scale_gives_the_bits_of_the_copied_batch() {
    // alpha = 1/255 rounds each scaled pixel: not exact, but the gathered
    // operand must round exactly as the copied batch does.
    let _g = GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = StdRng::seed_from_u64(10);
    for (m, k, n) in [(64, 784, 16), (128, 784, 512), (64, 64, 10), (50, 33, 40)] {
        let case = Case::new(&mut rng, m, k, 0, |r| r.random::<u8>());
        let copy = case.copy();
        let w: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x = MatRef::from_slice(&copy, m, k);
        let alpha = 1.0 / 255.0;
        let wv = MatRef::from_slice(&w, k, n);
        let got = fast(alpha, case.gathered(), wv, Parallelism::Rayon);
        assert_eq!(
            bits(&got),
            bits(&fast(alpha, x, wv, Parallelism::Rayon)),
            "X·W {m}x{k}x{n}"
        );
        let dz: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let dzv = MatRef::from_slice(&dz, m, n);
        let got = fast(alpha, case.gathered().t(), dzv, Parallelism::Rayon);
        assert_eq!(
            bits(&got),
            bits(&fast(alpha, x.t(), dzv, Parallelism::Rayon)),
            "Xᵀ·dZ {k}x{m}x{n}"
        );
    }
}

#[test]
fn an_index_past_the_base_is_an_error_not_a_panic() {
    let pixels = [0u8; 12];
    let x = MatRef::from_slice(&pixels, 4, 3);
    let err = Gathered::new(x, &[0, 4]).unwrap_err().to_string();
    assert!(
        err.contains("row 4 is out of range: the matrix has 4 rows"),
        "{err}"
    );
    let g = Gathered::new(x, &[3, 3, 0]).unwrap();
    assert_eq!((g.rows(), g.cols()), (3, 3));
    assert_eq!((g.t().rows(), g.t().cols(), g.t().at(2, 0)), (3, 3, x.at(3, 2)));
}
