//! Lesson 5: the whole network, and one full training step with every
//! intermediate number kept (what `simdnet explain` prints).
//!
//! A [`Network`] is a stack of dense layers: every hidden layer applies the
//! same activation, the output layer applies softmax, and the loss is the
//! categorical cross-entropy — the workshop's model
//! `Dense(16, relu) -> Dense(16, relu) -> Dense(10, softmax)` is
//! `Network::glorot_uniform(&[784, 16, 16, 10], Activation::Relu, &mut rng)`.
//!
//! One training step ([`train_step`]):
//!
//! ```text
//! forward   for each layer l:   z_l = a_(l-1)·W_l + b_l,  a_l = f(z_l)     (a_0 = x, last f = softmax)
//! error     L = mean_r -ln p[r, label_r],   dz_last = (p - y) / rows
//! backward  for each layer l, last to first:
//!               dW_l = a_(l-1)ᵀ·dz_l,  db_l = Σ_rows dz_l,  da_(l-1) = dz_l·W_lᵀ,
//!               dz_(l-1) = da_(l-1) ⊙ f'(z_(l-1))
//! update    every W_l and b_l by the optimizer; then the loss again, to compare
//! ```

use rand::Rng;

use crate::activation::Activation;

use super::backward::{activation_backward, dense_backward};
use super::forward::{activate, dense, softmax};
use super::loss::{accuracy, cross_entropy, one_hot, output_error};
use super::optimizers::{build, Optimizer, OptimizerKind};

/// One dense layer's parameters: `z = a_prev·W + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Number of inputs (neurons of the previous layer, or features).
    pub inputs: usize,
    /// Number of neurons of this layer.
    pub outputs: usize,
    /// Weights, (inputs, outputs), row-major: `w[i * outputs + j]` connects input i to neuron j.
    pub w: Vec<f64>,
    /// Biases, (outputs).
    pub b: Vec<f64>,
}

/// A multi-layer perceptron: hidden layers with `activation`, a softmax output layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// The layers, first (reading the inputs) to last (producing the logits).
    pub layers: Vec<Layer>,
    /// The activation of every hidden layer (the output layer uses softmax).
    pub activation: Activation,
}

/// Everything the forward pass computes for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// `z` of every layer, each (rows, outputs of that layer).
    pub z: Vec<Vec<f64>>,
    /// `a = f(z)` of every layer, each (rows, outputs); the last one is softmax: the probabilities.
    pub a: Vec<Vec<f64>>,
}

/// The gradients of the mean loss for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// `da = ∂L/∂a` of every layer's output, each (rows, outputs); the last is empty
    /// (the output layer's error is computed directly as `dz = (p - y)/rows`).
    pub da: Vec<Vec<f64>>,
    /// `dz = ∂L/∂z` of every layer, each (rows, outputs).
    pub dz: Vec<Vec<f64>>,
    /// `dW` of every layer, each (inputs, outputs).
    pub dw: Vec<Vec<f64>>,
    /// `db` of every layer, each (outputs).
    pub db: Vec<Vec<f64>>,
}

impl Network {
    /// A network with the given layer `sizes` (e.g. `[3, 4, 2]`) and every weight and bias 0.
    pub fn zeros(sizes: &[usize], activation: Activation) -> Network {
        assert!(
            sizes.len() >= 2,
            "a network needs at least an input and an output size"
        );
        let layers = sizes
            .windows(2)
            .map(|s| Layer {
                inputs: s[0],
                outputs: s[1],
                w: vec![0.0; s[0] * s[1]],
                b: vec![0.0; s[1]],
            })
            .collect();
        Network { layers, activation }
    }

    /// The lesson's network: 3 inputs, 4 hidden neurons, 2 classes, with fixed
    /// readable weights (not random, so every printed number can be checked by hand).
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
    pub fn tiny(activation: Activation) -> Network {
        Network {
            layers: vec![
                Layer {
                    inputs: 3,
                    outputs: 4,
                    #[rustfmt::skip]
                    w: vec![
                         0.1, -0.2,  0.3, 0.0,
                        -0.4,  0.5,  0.1, 0.2,
                         0.2,  0.1, -0.3, 0.4,
                    ],
                    b: vec![0.1, 0.0, -0.1, 0.0],
                },
                Layer {
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
                },
            ],
            activation,
        }
    }

    /// A network with Glorot-uniform weights (Keras' default initializer) and zero biases.
    ///
    /// Every weight of a layer with `fan_in` inputs and `fan_out` outputs is drawn
    /// uniformly from `(-limit, limit)`, `limit = sqrt(6 / (fan_in + fan_out))`, which
    /// keeps the spread of `z` about the same from layer to layer. Drawn in order:
    /// layer 1's W row by row, then layer 2's, and so on.
    pub fn glorot_uniform(sizes: &[usize], activation: Activation, rng: &mut impl Rng) -> Network {
        let mut net = Network::zeros(sizes, activation);
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
        let mut z = Vec::new();
        let mut a: Vec<Vec<f64>> = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let a_prev = if l == 0 { x } else { &a[l - 1] }; // (rows, inputs)
            let zl = dense(a_prev, rows, &layer.w, &layer.b); // (rows, outputs)
            let al = if l + 1 == self.layers.len() {
                softmax(&zl, rows)
            } else {
                activate(self.activation, &zl)
            };
            z.push(zl);
            a.push(al);
        }
        Forward { z, a }
    }

    /// The mean cross-entropy loss of a batch: `x` (rows, inputs), `labels` (rows).
    pub fn loss(&self, x: &[f64], labels: &[usize]) -> f64 {
        let rows = labels.len();
        let fwd = self.forward(x, rows);
        let classes = self.layers.last().map_or(0, |l| l.outputs);
        cross_entropy(fwd.a.last().unwrap(), &one_hot(labels, classes), rows)
    }

    /// The backward pass: the gradients of the mean loss for the batch `x`, `labels`,
    /// given its forward pass `fwd`.
    pub fn backward(&self, x: &[f64], labels: &[usize], fwd: &Forward) -> Gradients {
        let rows = labels.len();
        let n = self.layers.len();
        let classes = self.layers[n - 1].outputs;
        let y = one_hot(labels, classes); // (rows, classes)
        let mut grads = Gradients {
            da: vec![Vec::new(); n],
            dz: vec![Vec::new(); n],
            // gradients accumulate: start every buffer at zero
            dw: self.layers.iter().map(|l| vec![0.0; l.w.len()]).collect(),
            db: self.layers.iter().map(|l| vec![0.0; l.b.len()]).collect(),
        };
        // the output error: dz_last = (p - y) / rows
        let mut dz = output_error(&fwd.a[n - 1], &y, rows);
        for l in (0..n).rev() {
            let layer = &self.layers[l];
            let a_prev = if l == 0 { x } else { &fwd.a[l - 1] }; // (rows, inputs)
                                                                 // forward: z = a_prev·W + b  =>  dW = a_prevᵀ·dz, db = Σ dz, da_prev = dz·Wᵀ
            let da_prev = dense_backward(a_prev, &layer.w, &dz, rows, &mut grads.dw[l], &mut grads.db[l]);
            grads.dz[l] = dz;
            if l > 0 {
                // forward: a_prev = f(z_prev)  =>  dz_prev = da_prev ⊙ f'(z_prev)
                dz = activation_backward(self.activation, &fwd.z[l - 1], &da_prev);
                grads.da[l - 1] = da_prev;
            } else {
                dz = Vec::new();
            }
        }
        grads
    }
}

/// The lesson's batch for [`Network::tiny`]: two examples of 3 features (like
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
pub struct NetworkOptimizer {
    pub kind: OptimizerKind,
    pub lr: f64,
    /// The optimizer of each layer's W.
    pub w: Vec<Optimizer>,
    /// The optimizer of each layer's b.
    pub b: Vec<Optimizer>,
}

impl NetworkOptimizer {
    /// Fresh optimizer state (all zeros) for every buffer of `net`.
    pub fn new(kind: OptimizerKind, lr: f64, net: &Network) -> NetworkOptimizer {
        NetworkOptimizer {
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
    pub inputs: usize,
    pub outputs: usize,
    /// The activation, or `None` for the softmax output layer.
    pub activation: Option<Activation>,
    /// W before the step, (inputs, outputs).
    pub w: Vec<f64>,
    /// b before the step, (outputs).
    pub b: Vec<f64>,
    /// `z = a_prev·W + b`, (rows, outputs).
    pub z: Vec<f64>,
    /// `a = f(z)` (softmax for the output layer), (rows, outputs).
    pub a: Vec<f64>,
    /// `da = ∂L/∂a`, (rows, outputs); empty for the output layer.
    pub da: Vec<f64>,
    /// `dz = ∂L/∂z`, (rows, outputs).
    pub dz: Vec<f64>,
    /// `dW = a_prevᵀ·dz`, (inputs, outputs).
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
    /// Softmax of the last layer, (rows, classes) (the same as `layers.last().a`).
    pub probabilities: Vec<f64>,
    /// The mean cross-entropy before the step.
    pub loss: f64,
    /// The fraction of the batch classified right, before the step.
    pub accuracy: f64,
    /// `(p - y) / rows`, (rows, classes) (the same as `layers.last().dz`).
    pub output_error: Vec<f64>,
    /// The probabilities for the same batch after the step, (rows, classes).
    pub probabilities_after: Vec<f64>,
    /// The mean cross-entropy for the same batch after the step.
    pub loss_after: f64,
}

/// One full training step on the batch `x` (rows, inputs), `labels` (rows):
/// forward, loss, backward, update of every weight and bias by `opt`, and the
/// loss again. Updates `net` and `opt` in place and returns every intermediate.
pub fn train_step(net: &mut Network, opt: &mut NetworkOptimizer, x: &[f64], labels: &[usize]) -> StepTrace {
    let rows = labels.len();
    let n = net.layers.len();
    let classes = net.layers[n - 1].outputs;
    let y = one_hot(labels, classes);
    let before = net.clone();

    // forward and error
    let fwd = net.forward(x, rows);
    let probabilities = fwd.a[n - 1].clone();
    let loss = cross_entropy(&probabilities, &y, rows);
    let acc = accuracy(&probabilities, labels);

    // backward
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
    let probabilities_after = after.a[n - 1].clone();
    let loss_after = cross_entropy(&probabilities_after, &y, rows);

    let layers = (0..n)
        .map(|l| LayerTrace {
            inputs: before.layers[l].inputs,
            outputs: before.layers[l].outputs,
            activation: if l + 1 == n { None } else { Some(net.activation) },
            w: before.layers[l].w.clone(),
            b: before.layers[l].b.clone(),
            z: fwd.z[l].clone(),
            a: fwd.a[l].clone(),
            da: grads.da[l].clone(),
            dz: grads.dz[l].clone(),
            dw: grads.dw[l].clone(),
            db: grads.db[l].clone(),
            w_update: w_updates[l].clone(),
            b_update: b_updates[l].clone(),
            w_after: net.layers[l].w.clone(),
            b_after: net.layers[l].b.clone(),
        })
        .collect();
    StepTrace {
        rows,
        x: x.to_vec(),
        labels: labels.to_vec(),
        y,
        layers,
        output_error: grads.dz[n - 1].clone(),
        probabilities,
        loss,
        accuracy: acc,
        probabilities_after,
        loss_after,
    }
}
