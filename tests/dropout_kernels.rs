//! The dropout epilogue in every micro-kernel (SIMD and scalar) and with
//! small cache blocks (so tiles sit at many offsets inside C), against the
//! reference GEMM. Its own test binary: it forces process-wide settings.

mod common;

use common::{engine_product, reference_product};
use rand::{rngs::StdRng, Rng, SeedableRng};
use simdnet::activation::Activation;
use simdnet::gemm::{self, BlockSizes, Epilogue, Parallelism};
use simdnet::kernels::DropoutMask;

#[test]
fn every_kernel_and_block_size_applies_the_same_mask() {
    let mut rng = StdRng::seed_from_u64(3);
    let saved = gemm::block_sizes();
    let blocks = [
        saved,
        BlockSizes {
            mc: 16,
            kc: 8,
            nc: 32,
        },
    ];
    for (m, n, k) in [(37, 45, 19), (130, 70, 64), (8, 200, 3)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        for act in [Activation::Relu, Activation::Identity, Activation::Tanh] {
            let mask = DropoutMask::new(0.4, 11, 3, 0).offset(64, 0);
            let epi = Epilogue::BiasActivationDropout {
                bias: &bias,
                act,
                mask,
            };
            let want = reference_product(1.0, &a, &b, (m, k, n), epi);
            for name in gemm::available_kernels() {
                gemm::set_kernel(Some(name)).unwrap();
                for &bs in &blocks {
                    gemm::set_block_sizes(bs);
                    for par in [Parallelism::Sequential, Parallelism::Rayon] {
                        let got = engine_product(1.0, &a, &b, (m, k, n), epi, par);
                        for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
                            let (i, j) = (idx / n, idx % n);
                            let what = format!("{name} {bs:?} {par:?} {m}x{n}x{k} {act}: ({i}, {j})");
                            if !mask.keeps(i, j) {
                                assert_eq!(g, 0.0, "{what} dropped");
                            }
                            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: {g} vs {w}");
                        }
                    }
                }
            }
        }
    }
    gemm::set_kernel(None).unwrap();
    gemm::set_block_sizes(saved);
}
