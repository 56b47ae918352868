//! Training steps that read their mini-batch straight from the data set by
//! row index (`Trainer::step_indices`, `Trainer::step_rows`) give the
//! weights, bit for bit, of steps on the same rows copied into a contiguous
//! batch first (`Trainer::step`), for `u8` pixels and `f32` features, on
//! small (several shards) and large (one shard, threaded GEMMs) networks,
//! with or without a hint of the next rows (`Trainer::expect_next`);
//! and bad rows or labels are errors, with nothing changed.

mod common;

use common::{bits, synthetic};
use simdnet::matrix::MatRef;
use simdnet::nn::train::Trainer;
use simdnet::nn::{Activation, Network, Optimizer};

/// The batches: overlapping, shuffled, with repeats, one shorter than the rest.
fn batches(n: usize) -> Vec<Vec<usize>> {
    (0..5)
        .map(|b| {
            let len = if b == 4 { 37 } else { 130 };
            (0..len).map(|i| (i * 7919 + b * 131 + i * i) % n).collect()
        })
        .collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn indexed_steps_give_the_bits_of_copied_batches() {
    let data = synthetic(400);
    let features = data.features();
    // 64-16-10: several shards per batch; 64-800-700-10: over the sharding
    // limit, one shard whose GEMMs split across the threads.
    for hidden in [&[16usize][..], &[800, 700][..]] {
        for threads in [1, 2] {
            pool(threads).install(|| {
                let net0 = Network::mlp(features, hidden, 10, Activation::Relu, 3).unwrap();
                let (mut copied, mut indexed, mut floats) = (net0.clone(), net0.clone(), net0.clone());
                let mut t_copied = Trainer::new(&net0, Optimizer::adam(0.01), 130).unwrap();
                let mut t_indexed = Trainer::new(&net0, Optimizer::adam(0.01), 130).unwrap();
                let mut t_floats = Trainer::new(&net0, Optimizer::adam(0.01), 130).unwrap();
                // The same pixels as f32 values 0..255: scaled by 1/255 while
                // packing, they round exactly as the u8 pixels do.
                let as_f32: Vec<f32> = data.pixels().iter().map(|&p| p as f32).collect();
                let f32_view = MatRef::from_slice(&as_f32, data.len(), features);
                for batch in batches(data.len()) {
                    let pixels: Vec<u8> = batch.iter().flat_map(|&i| data.image(i).to_vec()).collect();
                    let labels: Vec<u8> = batch.iter().map(|&i| data.labels()[i]).collect();
                    let x = MatRef::from_slice(&pixels, batch.len(), features);
                    let scale = copied.input_scale();
                    let a = t_copied.step(&mut copied, x, scale, &labels).unwrap();
                    // A hint of the next rows (here some out of range, and
                    // more than a batch) only prefetches: the same bits.
                    let hint: Vec<usize> = (0..200)
                        .map(|i| if i % 3 == 0 { usize::MAX - i } else { i * 5 })
                        .collect();
                    t_indexed.expect_next(&hint);
                    let b = t_indexed.step_indices(&mut indexed, &data, &batch).unwrap();
                    let c = t_floats
                        .step_rows(&mut floats, f32_view, scale, data.labels(), &batch)
                        .unwrap();
                    assert_eq!(a.0.to_bits(), b.0.to_bits(), "{hidden:?} {threads}t: loss");
                    assert_eq!((a.1, c.1), (b.1, b.1), "{hidden:?} {threads}t: correct");
                    assert_eq!(a.0.to_bits(), c.0.to_bits(), "{hidden:?} {threads}t: f32 loss");
                }
                assert_eq!(
                    bits(&copied),
                    bits(&indexed),
                    "{hidden:?} {threads}t: u8 rows by index"
                );
                assert_eq!(
                    bits(&copied),
                    bits(&floats),
                    "{hidden:?} {threads}t: f32 rows by index"
                );
            });
        }
    }
}

#[test]
fn bad_rows_and_labels_are_errors_and_change_nothing() {
    let data = synthetic(50);
    let mut net = Network::mlp(data.features(), &[8], 10, Activation::Relu, 1).unwrap();
    let before = bits(&net);
    let mut trainer = Trainer::new(&net, Optimizer::sgd(0.1), 16).unwrap();
    let err = |r: simdnet::Result<(f64, usize)>| r.unwrap_err().to_string();
    let e = err(trainer.step_rows(&mut net, data.images(), 1.0, data.labels(), &[1, 50]));
    assert!(
        e.contains("example 50 is out of range: the data set has 50 examples"),
        "{e}"
    );
    let e = err(trainer.step_rows(&mut net, data.images(), 1.0, &data.labels()[..49], &[1]));
    assert!(
        e.contains("49 labels for 50 examples; give one label per example"),
        "{e}"
    );
    let narrow = MatRef::from_slice(&data.pixels()[..50 * 10], 50, 10);
    let e = err(trainer.step_rows(&mut net, narrow, 1.0, data.labels(), &[1]));
    assert!(
        e.contains("the examples have 10 features but the network expects 64 inputs"),
        "{e}"
    );
    let mut labels = data.labels().to_vec();
    labels[3] = 12;
    let e = err(trainer.step_rows(&mut net, data.images(), 1.0, &labels, &[2, 3]));
    assert!(e.contains("label 12 is out of range"), "{e}");
    let e = err(trainer.step_rows(&mut net, data.images(), 1.0, data.labels(), &[0; 17]));
    assert!(e.contains("over this trainer's capacity of 16"), "{e}");
    assert_eq!(bits(&net), before, "a refused step changes nothing");
    assert_eq!(trainer.state.steps, 0);
}
