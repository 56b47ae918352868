//! On one thread, a batch that is mostly zero (MNIST's pixels) runs with
//! the first layer split, so that its parts multiply the non-zeros alone
//! (`gemm::sparse_rows`): the weights are those of the unsplit step, bit
//! for bit, and a dense batch is not split. (Its own test binary: the
//! switch it turns, `nn::split::set_one_thread_sparse`, is process-wide,
//! and `tests/split_first_layer.rs` keeps it off for its reference.)

mod common;

use common::bits;
use simdnet::data::Dataset;
use simdnet::nn::{Activation, Network, Optimizer, Trainer};

/// `n` images of 784 pixels; with `zeros`, nine pixels in ten are 0: the 10% non-zero are below
/// `sparse_rows_enough()` on every build and CPU (25%, or 12% on full-width AVX-512).
fn data(n: usize, zeros: bool) -> Dataset {
    let mut s = 0x9e37_79b9u32;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    let pixels: Vec<u8> = (0..n * 784)
        .map(|_| {
            let v = next();
            if zeros && v % 10 != 0 {
                0
            } else {
                (v >> 24) as u8 | 1
            }
        })
        .collect();
    let labels: Vec<u8> = (0..n).map(|_| (next() % 10) as u8).collect();
    Dataset::new(pixels, labels, 1, 784).unwrap()
}

/// The weights after six batches (128, 100 and 10 rows) on one thread, and
/// how many parts held the last one as its non-zeros.
fn train(net0: &Network, d: &Dataset, split: bool) -> (Vec<u32>, usize) {
    simdnet::nn::split::set_one_thread_sparse(split);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        let mut net = net0.clone();
        let mut trainer = Trainer::new(&net, Optimizer::rmsprop(0.001), 128).unwrap();
        for (b, &len) in [128, 100, 10, 128, 100, 128].iter().enumerate() {
            let batch: Vec<usize> = (0..len).map(|i| (i * 7919 + b * 131) % d.len()).collect();
            trainer.step_indices(&mut net, d, &batch).unwrap();
        }
        (bits(&net), trainer.first_layer_sparse_parts())
    })
}

#[test]
fn one_thread_splits_a_mostly_zero_batch_with_the_bits_of_the_unsplit_step() {
    let net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 3)
        .unwrap()
        .with_dropout(0.2)
        .unwrap();
    for zeros in [true, false] {
        let d = data(400, zeros);
        let (reference, none) = train(&net, &d, false);
        assert_eq!(none, 0, "switched off, one thread does not split");
        let (got, sparse) = train(&net, &d, true);
        assert_eq!(
            sparse,
            if zeros { 2 } else { 0 },
            "mostly zeros {zeros}: parts that multiplied the non-zeros"
        );
        let bad = got.iter().zip(&reference).position(|(g, r)| g != r);
        assert!(bad.is_none(), "mostly zeros {zeros}: parameter {bad:?} differs");
    }
}
