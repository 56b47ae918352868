//! Lesson 5: the whole network, and one full training step with every
//! intermediate number kept (what `simdnet explain` prints).
//!
//! A [`NetworkF64`] is a stack of dense layers ([`DenseF64`]), each with its own
//! activation; the output layer's is the identity, so its output `a` are the
//! logits, and softmax is part of the loss (categorical cross-entropy). The
//! workshop's model `Dense(16, relu) -> Dense(16, relu) -> Dense(10, softmax)` is
//! `NetworkF64::glorot_uniform(&[784, 16, 16, 10], Activation::Relu, &mut rng)`.
//!
//! The `F64` in the names says what differs from the engine's `nn::Network` and
//! `nn::Dense` on purpose: plain `Vec<f64>` and loops, not the fast `f32` kernels.
//! The steps, their names and their argument order are the engine's.
//!
//! One training step ([`train_step`]):
//!
//! ```text
//! forward   for l in 0..n:         z_l = x_l·W_l + b_l,  a_l = f_l(z_l)       (x_0 = x, x_l = a_(l-1))
//! loss      p = softmax(a_(n-1)),  L = mean_r -ln p[r, label_r],  da_(n-1) = (p - y) / rows
//! backward  for l in (0..n).rev(): dz_l = da_l ⊙ f_l'(a_l)
//!                                  dW_l = x_lᵀ·dz_l,  db_l = Σ_rows dz_l,  da_(l-1) = dz_l·W_lᵀ
//! update    every W_l and b_l by the optimizer; then the loss again, to compare
//! ```

use rand::Rng;

use crate::activation::Activation;

use super::backward::dense_backward;
use super::forward::{dense_forward, df_from_output};
use super::loss::{argmax_rows, softmax_cross_entropy, SoftmaxCrossEntropy};
use super::optimizers::{build, OptimizerF64, OptimizerKind};

/// One dense layer's parameters and activation: `z = x·W + b`, `a = f(z)`.
/// (The lesson's `f64` twin of the engine's `nn::Dense`.)
#[derive(Clone, Debug, PartialEq)]
pub struct DenseF64 {
    /// Number of inputs (neurons of the previous layer, or features).
    pub inputs: usize,
    /// Number of neurons of this layer.
    pub outputs: usize,
    /// Weights, (inputs, outputs), row-major: `w[i * outputs + j]` connects input i to neuron j.
    pub w: Vec<f64>,
    /// Biases, (outputs).
    pub b: Vec<f64>,
    /// The activation `f` (the output layer's is `Identity`: softmax is in the loss).
    pub act: Activation,
}

/// A multi-layer perceptron: dense layers, each with its activation; the last one's
/// is the identity (its outputs are the logits). The `f64` twin of `nn::Network`.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkF64 {
    /// The layers, first (reading the inputs) to last (producing the logits).
    pub layers: Vec<DenseF64>,
}

/// Everything the forward pass computes for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// `z = x·W + b` of every layer, each (rows, outputs of that layer).
    pub z: Vec<Vec<f64>>,
    /// `a = f(z)` of every layer, each (rows, outputs); the last one: the logits.
    pub a: Vec<Vec<f64>>,
}

/// The loss and the gradients of the mean loss for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// The loss, where the backward pass starts (softmax, per-example and mean loss).
    pub loss: SoftmaxCrossEntropy,
    /// `da = ∂L/∂a` of every layer's output, each (rows, outputs); the last is `(p - y)/rows`.
    pub da: Vec<Vec<f64>>,
    /// `dz = ∂L/∂z` of every layer, each (rows, outputs).
    pub dz: Vec<Vec<f64>>,
    /// `dW` of every layer, each (inputs, outputs).
    pub dw: Vec<Vec<f64>>,
    /// `db` of every layer, each (outputs).
    pub db: Vec<Vec<f64>>,
}

impl NetworkF64 {
    /// A network with the given layer `sizes` (e.g. `[3, 4, 2]`), the activation `hidden`
    /// on every hidden layer, the identity on the output layer, and every weight and bias 0.
    pub fn zeros(sizes: &[usize], hidden: Activation) -> NetworkF64 {
        assert!(
            sizes.len() >= 2,
            "a network needs at least an input and an output size"
        );
        let n = sizes.len() - 1;
        let layers = (0..n)
            .map(|l| DenseF64 {
                inputs: sizes[l],
                outputs: sizes[l + 1],
                w: vec![0.0; sizes[l] * sizes[l + 1]],
                b: vec![0.0; sizes[l + 1]],
                act: if l + 1 == n { Activation::Identity } else { hidden },
            })
            .collect();
        NetworkF64 { layers }
    }

    /// The lesson's network: 3 inputs, 4 hidden neurons with the activation `hidden`,
    /// 2 classes (the identity: the logits), with fixed readable weights (not random,
    /// so every printed number can be checked by hand).
    ///
    /// ```text
    /// W1 (3, 4) =  0.1 -0.2  0.3  0.0      b1 (4) = 0.1  0.0 -0.1  0.0
    ///             -0.4  0.5  0.1  0.2
    ///              0.2  0.1 -0.3  0.4
    /// W2 (4, 2) =  0.3 -0.1                b2 (2) = 0.0  0.1
    ///             -0.2  0.4
    ///              0.5 -0.3
    ///              0.1  0.2
    /// ```
    pub fn tiny(hidden: Activation) -> NetworkF64 {
        NetworkF64 {
            layers: vec![
                DenseF64 {
                    inputs: 3,
                    outputs: 4,
                    #[rustfmt::skip]
                    w: vec![
                         0.1, -0.2,  0.3, 0.0,
                        -0.4,  0.5,  0.1, 0.2,
                         0.2,  0.1, -0.3, 0.4,
                    ],
                    b: vec![0.1, 0.0, -0.1, 0.0],
                    act: hidden,
                },
                DenseF64 {
                    inputs: 4,
                    outputs: 2,
                    #[rustfmt::skip]
                    w: vec![
                         0.3, -0.1,
                        -0.2,  0.4,
                         0.5, -0.3,
                         0.1,  0.2,
                    ],
                    b: vec![0.0, 0.1],
                    act: Activation::Identity,
                },
            ],
        }
    }

    /// A network with Glorot-uniform weights (Keras' default initializer) and zero biases.
    ///
    /// Every weight of a layer with `fan_in` inputs and `fan_out` outputs is drawn
    /// uniformly from `(-limit, limit)`, `limit = sqrt(6 / (fan_in + fan_out))`, which
    /// keeps the spread of `z` about the same from layer to layer. Drawn in order:
    /// layer 1's W row by row, then layer 2's, and so on.
    pub fn glorot_uniform(sizes: &[usize], hidden: Activation, rng: &mut impl Rng) -> NetworkF64 {
        let mut net = NetworkF64::zeros(sizes, hidden);
        for layer in &mut net.layers {
            let limit = (6.0 / (layer.inputs + layer.outputs) as f64).sqrt();
            for wi in layer.w.iter_mut() {
                *wi = rng.random_range(-limit..limit);
            }
        }
        net
    }

    /// The layer sizes, inputs first: e.g. `[3, 4, 2]`.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.layers[0].inputs];
        s.extend(self.layers.iter().map(|l| l.outputs));
        s
    }

    /// The number of weights and biases.
    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// The forward pass of a batch `x`: (rows, inputs).
    pub fn forward(&self, x: &[f64], rows: usize) -> Forward {
        let n = self.layers.len();
        let mut fwd = Forward {
            z: self.layers.iter().map(|l| vec![0.0; rows * l.outputs]).collect(),
            a: self.layers.iter().map(|l| vec![0.0; rows * l.outputs]).collect(),
        };
        for l in 0..n {
            // the a of layers 0..l (the last one is this layer's input), and of layers l..n
            let (a_below, a_here) = fwd.a.split_at_mut(l);
            // x: (rows, inputs), this layer's input: the data for the first layer
            let x_l: &[f64] = a_below.last().map_or(x, |a| &a[..]);
            // z = x·W + b,  a = f(z)
            dense_forward(&mut a_here[0], &mut fwd.z[l], x_l, &self.layers[l], rows);
        }
        fwd
    }

    /// The mean cross-entropy loss of a batch: `x` (rows, inputs), `labels` (rows).
    pub fn loss(&self, x: &[f64], labels: &[usize]) -> f64 {
        let rows = labels.len();
        let fwd = self.forward(x, rows);
        let logits = fwd.a.last().expect("a network has layers"); // (rows, classes)
        let mut da = vec![0.0; logits.len()]; // (rows, classes), not needed here
        softmax_cross_entropy(&mut da, logits, labels, rows).loss
    }

    /// The loss and the backward pass: the gradients of the mean loss for the batch
    /// `x` (rows, inputs), `labels` (rows), given its forward pass `fwd`.
    pub fn backward(&self, x: &[f64], labels: &[usize], fwd: &Forward) -> Gradients {
        let rows = labels.len();
        let n = self.layers.len();
        // gradients accumulate: every buffer starts at zero, once per step
        let zeros = |len: usize| vec![0.0; len];
        let mut da: Vec<Vec<f64>> = self.layers.iter().map(|l| zeros(rows * l.outputs)).collect();
        let mut dz: Vec<Vec<f64>> = self.layers.iter().map(|l| zeros(rows * l.outputs)).collect();
        let mut dw: Vec<Vec<f64>> = self.layers.iter().map(|l| zeros(l.w.len())).collect();
        let mut db: Vec<Vec<f64>> = self.layers.iter().map(|l| zeros(l.b.len())).collect();

        // loss: p = softmax(logits), L = mean -ln p[label];  da_last = dL/dlogits = (p - y) / rows
        let loss = softmax_cross_entropy(&mut da[n - 1], &fwd.a[n - 1], labels, rows);
        for l in (0..n).rev() {
            // the da of layers 0..l (the last one is this layer's dx), and of layers l..n
            let (da_below, da_here) = da.split_at_mut(l);
            // x: (rows, inputs), this layer's input; dx: its gradient, None for the first layer
            let x_l: &[f64] = if l == 0 { x } else { &fwd.a[l - 1] };
            let dx = da_below.last_mut().map(|d| &mut d[..]);
            // a = f(z)     ->  dz = da ⊙ f'(a)
            // z = x·W + b  ->  dW = xᵀ·dz,  db = Σ_rows dz,  dx = dz·Wᵀ
            dense_backward(
                dx,
                &mut dw[l],
                &mut db[l],
                &mut dz[l],
                &da_here[0],
                &fwd.a[l],
                x_l,
                &self.layers[l],
                rows,
            );
        }
        Gradients { loss, da, dz, dw, db }
    }
}

/// The lesson's batch for [`NetworkF64::tiny`]: two examples of 3 features (like
/// pixels, already in 0..1), labelled 1 and 0.
///
/// ```text
/// x (2, 3) = 0.5  1.0  0.0     label 1
///            1.0  0.0  0.5     label 0
/// ```
pub fn tiny_batch() -> (Vec<f64>, Vec<usize>) {
    (vec![0.5, 1.0, 0.0, 1.0, 0.0, 0.5], vec![1, 0])
}

/// One optimizer (with its state) per weight buffer and per bias buffer of a network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkOptimizerF64 {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// Its learning rate.
    pub lr: f64,
    /// The optimizer of each layer's W.
    pub w: Vec<OptimizerF64>,
    /// The optimizer of each layer's b.
    pub b: Vec<OptimizerF64>,
}

impl NetworkOptimizerF64 {
    /// Fresh optimizer state (all zeros) for every buffer of `net`.
    pub fn new(kind: OptimizerKind, lr: f64, net: &NetworkF64) -> NetworkOptimizerF64 {
        NetworkOptimizerF64 {
            kind,
            lr,
            w: net.layers.iter().map(|l| build(kind, lr, l.w.len())).collect(),
            b: net.layers.iter().map(|l| build(kind, lr, l.b.len())).collect(),
        }
    }
}

/// Every number of one layer during one training step.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTrace {
    /// Inputs of the layer (rows of W).
    pub inputs: usize,
    /// Outputs of the layer (columns of W).
    pub outputs: usize,
    /// The activation `f` (`Identity` for the output layer).
    pub act: Activation,
    /// W before the step, (inputs, outputs).
    pub w: Vec<f64>,
    /// b before the step, (outputs).
    pub b: Vec<f64>,
    /// `z = x·W + b`, (rows, outputs).
    pub z: Vec<f64>,
    /// `a = f(z)`, (rows, outputs) (the logits, for the output layer).
    pub a: Vec<f64>,
    /// `da = ∂L/∂a`, (rows, outputs) (from the loss, for the output layer).
    pub da: Vec<f64>,
    /// The slopes `f'(z)`, computed from `a`, that `dz = da ⊙ f'` used, (rows, outputs).
    pub slope: Vec<f64>,
    /// `dz = ∂L/∂z`, (rows, outputs).
    pub dz: Vec<f64>,
    /// `dW = xᵀ·dz`, (inputs, outputs).
    pub dw: Vec<f64>,
    /// `db = Σ_rows dz`, (outputs).
    pub db: Vec<f64>,
    /// What the optimizer added to each weight, (inputs, outputs).
    pub w_update: Vec<f64>,
    /// What the optimizer added to each bias, (outputs).
    pub b_update: Vec<f64>,
    /// W after the step, (inputs, outputs).
    pub w_after: Vec<f64>,
    /// b after the step, (outputs).
    pub b_after: Vec<f64>,
    /// The optimizer of W (hyper-parameters and state) before the step.
    pub w_opt_before: OptimizerF64,
    /// The optimizer of W after the step.
    pub w_opt_after: OptimizerF64,
    /// The optimizer of b before the step.
    pub b_opt_before: OptimizerF64,
    /// The optimizer of b after the step.
    pub b_opt_after: OptimizerF64,
}

/// Every number of one training step, in the order they were computed.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTrace {
    /// Examples in the batch.
    pub rows: usize,
    /// The inputs, (rows, inputs).
    pub x: Vec<f64>,
    /// The labels, (rows).
    pub labels: Vec<usize>,
    /// The labels one-hot, (rows, classes).
    pub y: Vec<f64>,
    /// One trace per layer, first to last.
    pub layers: Vec<LayerTrace>,
    /// Softmax, per example: the largest logit `m`, (rows).
    pub softmax_max: Vec<f64>,
    /// Softmax: the exponentials `e^(z - m)`, (rows, classes).
    pub softmax_exp: Vec<f64>,
    /// Softmax: their sum `Σ` per example, (rows).
    pub softmax_sum: Vec<f64>,
    /// Softmax of the logits, (rows, classes).
    pub probabilities: Vec<f64>,
    /// The loss of each example, `-ln p[r, label]`, (rows).
    pub losses: Vec<f64>,
    /// The mean cross-entropy before the step.
    pub loss: f64,
    /// The predicted class of each example (largest p), (rows).
    pub predicted: Vec<usize>,
    /// How many predictions are right.
    pub correct: usize,
    /// The fraction of the batch classified right, before the step.
    pub accuracy: f64,
    /// `da = (p - y) / rows`, (rows, classes) (the same as `layers.last().da`).
    pub output_error: Vec<f64>,
    /// The optimizer.
    pub kind: OptimizerKind,
    /// Its learning rate.
    pub lr: f64,
    /// The probabilities for the same batch after the step, (rows, classes).
    pub probabilities_after: Vec<f64>,
    /// The mean cross-entropy for the same batch after the step.
    pub loss_after: f64,
    /// `loss_after - loss` (negative: the step went downhill).
    pub loss_change: f64,
}

/// One full training step on the batch `x` (rows, inputs), `labels` (rows):
/// forward, loss, backward, update of every weight and bias by `opt`, and the
/// loss again. Updates `net` and `opt` in place and returns every intermediate.
pub fn train_step(
    net: &mut NetworkF64,
    opt: &mut NetworkOptimizerF64,
    x: &[f64],
    labels: &[usize],
) -> StepTrace {
    let rows = labels.len();
    let n = net.layers.len();
    let before = net.clone();
    let opt_before = opt.clone();

    // forward: for l in 0..n { dense_forward }
    let fwd = net.forward(x, rows);
    // loss, then backward: for l in (0..n).rev() { dense_backward }
    let grads = net.backward(x, labels, &fwd);

    // update
    let mut w_updates = Vec::new();
    let mut b_updates = Vec::new();
    for (l, layer) in net.layers.iter_mut().enumerate() {
        w_updates.push(opt.w[l].step(&mut layer.w, &grads.dw[l]));
        b_updates.push(opt.b[l].step(&mut layer.b, &grads.db[l]));
    }

    // the same batch again, with the new weights
    let after = net.forward(x, rows);
    let mut da_after = vec![0.0; after.a[n - 1].len()]; // (rows, classes), not needed
    let loss_after = softmax_cross_entropy(&mut da_after, &after.a[n - 1], labels, rows);

    let loss = grads.loss;
    let predicted = argmax_rows(&loss.p, rows);
    let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    let layers = (0..n)
        .map(|l| {
            let act = before.layers[l].act;
            LayerTrace {
                inputs: before.layers[l].inputs,
                outputs: before.layers[l].outputs,
                act,
                w: before.layers[l].w.clone(),
                b: before.layers[l].b.clone(),
                z: fwd.z[l].clone(),
                a: fwd.a[l].clone(),
                da: grads.da[l].clone(),
                // the same f'(a) that dense_backward multiplied da by
                slope: fwd.a[l].iter().map(|&a| df_from_output(act, a)).collect(),
                dz: grads.dz[l].clone(),
                dw: grads.dw[l].clone(),
                db: grads.db[l].clone(),
                w_update: w_updates[l].clone(),
                b_update: b_updates[l].clone(),
                w_after: net.layers[l].w.clone(),
                b_after: net.layers[l].b.clone(),
                w_opt_before: opt_before.w[l].clone(),
                w_opt_after: opt.w[l].clone(),
                b_opt_before: opt_before.b[l].clone(),
                b_opt_after: opt.b[l].clone(),
            }
        })
        .collect();
    StepTrace {
        rows,
        x: x.to_vec(),
        labels: labels.to_vec(),
        y: loss.y,
        layers,
        softmax_max: loss.m,
        softmax_exp: loss.e,
        softmax_sum: loss.sum,
        probabilities: loss.p,
        losses: loss.losses,
        loss: loss.loss,
        predicted,
        correct,
        accuracy: correct as f64 / rows as f64,
        output_error: grads.da[n - 1].clone(),
        kind: opt.kind,
        lr: opt.lr,
        probabilities_after: loss_after.p,
        loss_after: loss_after.loss,
        loss_change: loss_after.loss - loss.loss,
    }
}
