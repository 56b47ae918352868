//! Lesson 8: the loop — the line-by-line network learns MNIST.
//!
//! One training step ([`super::network::train_step`]) is the whole algorithm;
//! training is that step again and again, on batch after batch:
//!
//! ```text
//! for epoch in 1..=epochs:
//!     shuffle the order of the 60,000 training images (seeded)
//!     for each batch of 128 images in that order:
//!         x = pixels / 255,  forward, loss, backward, update      (one step)
//! then the test set: forward only, the accuracy
//! ```
//!
//! This file runs that loop with the lesson's plain `f64` code ([`step`] is
//! `train_step` without the bookkeeping), starting from the engine's weights for
//! the same seed ([`from_engine`]) and visiting the images in the engine's order
//! ([`epoch_order`]). So `simdnet teach` and `simdnet train` with the same
//! seed and settings follow the same loss curve, up to the rounding of `f32`
//! against `f64` (`tests/teach_loop.rs` holds them together over 100 steps).

use rand::seq::SliceRandom;

use crate::data::{Dataset, Input};
use crate::nn::Network;

use super::loss::argmax_rows;
use super::network::{DenseF64, NetworkF64, NetworkOptimizerF64};

/// The engine's network, weights and biases converted to `f64` (exactly: every
/// `f32` is an `f64`). `Network::mlp(784, &[16, 16], 10, act, seed)` is the
/// network `simdnet train --seed SEED` starts from.
pub fn from_engine(net: &Network) -> NetworkF64 {
    NetworkF64 {
        layers: net
            .layers()
            .iter()
            .filter_map(|layer| layer.as_dense())
            .map(|d| DenseF64 {
                inputs: d.inputs(),
                outputs: d.outputs(),
                w: d.w.as_slice().iter().map(|&v| v as f64).collect(),
                b: d.b.iter().map(|&v| v as f64).collect(),
                act: d.act,
            })
            .collect(),
    }
}

/// The generator of the shuffles, the engine's own (`nn::shuffle`): one of
/// its own, so that changing the epochs does not change the weights.
pub fn shuffle_rng(seed: u64) -> rand::rngs::StdRng {
    crate::nn::shuffle::generator(seed)
}

/// The order of the images in the next epoch: `order` shuffled by `rng` (as the
/// engine does, once per epoch, continuing from the last epoch's order), or left
/// as it is with `shuffle = false`.
pub fn epoch_order(order: &mut [usize], rng: &mut rand::rngs::StdRng, shuffle: bool) {
    if shuffle {
        order.shuffle(rng);
    }
}

/// The batch of the images `indices` of `data`: `x` (rows, features) scaled to
/// 0..1 (`pixel / 255`, the workshop's preprocessing; a data set of f32
/// values is taken as it is) and the labels (rows).
pub fn batch(data: &Dataset, indices: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let mut x = Vec::with_capacity(indices.len() * data.features());
    let f = data.features();
    for &i in indices {
        match data.input() {
            Input::Pixels(all) => x.extend(all.data()[i * f..(i + 1) * f].iter().map(|&p| p as f64 / 255.0)),
            Input::Values(all) => x.extend(all.data()[i * f..(i + 1) * f].iter().map(|&v| v as f64)),
        }
    }
    let labels = indices.iter().map(|&i| data.labels()[i] as usize).collect();
    (x, labels)
}

/// One training step, as [`super::network::train_step`] without keeping every
/// number: forward, loss, backward, update. Returns the mean loss of the batch
/// and how many of its examples were classified right, both BEFORE the update.
pub fn step(
    net: &mut NetworkF64,
    opt: &mut NetworkOptimizerF64,
    x: &[f64],
    labels: &[usize],
) -> (f64, usize) {
    let rows = labels.len();
    let fwd = net.forward(x, rows); //                  forward
    let grads = net.backward(x, labels, &fwd); //       loss, backward (fresh zeroed gradients)
    for (l, layer) in net.layers.iter_mut().enumerate() {
        opt.w[l].step(&mut layer.w, &grads.dw[l]); //   update
        opt.b[l].step(&mut layer.b, &grads.db[l]);
    }
    let predicted = argmax_rows(&grads.loss.p, rows);
    let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    (grads.loss.loss, correct)
}

/// The mean loss and the accuracy of `net` on all of `data`, a batch of
/// `batch_size` images at a time (forward only).
pub fn evaluate(net: &NetworkF64, data: &Dataset, batch_size: usize) -> (f64, f64) {
    let (mut loss, mut correct) = (0.0, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(batch_size.max(1)) {
        let (x, labels) = batch(data, indices);
        let rows = labels.len();
        let fwd = net.forward(&x, rows);
        let logits = fwd.a.last().expect("a network has layers");
        let mut da = vec![0.0; logits.len()]; // not needed
        let l = super::loss::softmax_cross_entropy(&mut da, logits, &labels, rows);
        loss += l.loss * rows as f64;
        let predicted = argmax_rows(&l.p, rows);
        correct += predicted.iter().zip(&labels).filter(|(p, y)| p == y).count();
    }
    let n = data.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}
