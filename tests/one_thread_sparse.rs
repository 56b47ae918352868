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

/// `n` images of 784 pixels, about `percent`% of them non-zero (at random).
fn data(n: usize, percent: u32) -> Dataset {
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
            if v % 100 >= percent {
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
    // The lists pay up to 25% non-zeros on every CPU measured (AVX2, Zen 4's
    // AVX-512 in halves, full-width AVX-512 on Zen 5 and an Intel Xeon):
    // MNIST's 19% takes them, one thread splitting the layer in two parts.
    let enough = simdnet::gemm::sparse_rows::SPARSE_ROWS_ENOUGH;
    for (percent, parts) in [(10, 2), (19, 2), (100, 0)] {
        let d = data(400, percent);
        let (reference, none) = train(&net, &d, false);
        assert_eq!(none, 0, "switched off, one thread does not split");
        let (got, sparse) = train(&net, &d, true);
        assert_eq!(
            sparse, parts,
            "{percent}% non-zero, threshold {enough}: parts that multiplied the non-zeros"
        );
        let bad = got.iter().zip(&reference).position(|(g, r)| g != r);
        assert!(bad.is_none(), "{percent}% non-zero: parameter {bad:?} differs");
    }
}
