//! The multi-layer perceptron: a stack of dense layers with a softmax output.
//!
//! `Network` holds the parameters; a [`Workspace`] holds every buffer one
//! forward and backward pass over up to `rows` examples needs, allocated once
//! and reused (no allocation inside a training step).

use rand::SeedableRng;
use rayon::prelude::*;

use crate::activation::Activation;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gemm::Parallelism;
use crate::kernels;
use crate::matrix::{argmax, Element, MatRef, Matrix};
use crate::nn::dense::{dense_backward_input, dense_backward_weights, dense_forward, Dense};
use crate::nn::init::glorot_uniform;
use crate::trace::{scope_when, Kind};

/// Scale that turns raw `u8` pixels into inputs in 0..1.
pub const PIXEL_SCALE: f32 = 1.0 / 255.0;

/// The most parameters a network may have (weights, gradients and optimiser
/// state then take about 4 GiB).
pub const MAX_PARAMS: usize = 1 << 28;

/// Examples per task when evaluating or predicting.
const EVAL_ROWS: usize = 256;

/// A sequential MLP: `inputs -> hidden... -> outputs (softmax)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    inputs: usize,
    layers: Vec<Dense>,
}

/// Loss and accuracy of a network on a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean categorical cross-entropy.
    pub loss: f64,
    /// Fraction of examples whose most probable class is the label.
    pub accuracy: f64,
}

impl Network {
    /// An MLP with Glorot-uniform weights and zero biases (the Keras defaults),
    /// drawn from a generator seeded with `seed`.
    ///
    /// `hidden` lists the hidden layers' widths (may be empty: softmax regression).
    pub fn mlp(
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
        seed: u64,
    ) -> Result<Network> {
        let mut widths = vec![inputs];
        widths.extend_from_slice(hidden);
        widths.push(outputs);
        if let Some(i) = widths.iter().position(|&w| w == 0) {
            return Err(Error::Invalid(format!(
                "layer {i} of {widths:?} has zero neurons: every layer needs at least one"
            )));
        }
        let params = widths.windows(2).fold(0usize, |n, p| {
            n.saturating_add(p[0].saturating_mul(p[1])).saturating_add(p[1])
        });
        if params > MAX_PARAMS {
            return Err(Error::Invalid(format!(
                "a {} network has {params} parameters, more than simdnet trains ({MAX_PARAMS}, \
                 about 1 GiB of weights before gradients and optimiser state): use narrower layers",
                widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-")
            )));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = widths.len() - 1;
        let layers = (0..n)
            .map(|l| Dense {
                w: glorot_uniform(widths[l], widths[l + 1], &mut rng),
                b: vec![0.0; widths[l + 1]],
                act: if l + 1 == n {
                    Activation::Identity
                } else {
                    activation
                },
            })
            .collect();
        Ok(Network { inputs, layers })
    }

    /// A network from explicit layers; checks that their shapes chain.
    pub fn from_layers(inputs: usize, layers: Vec<Dense>) -> Result<Network> {
        if layers.is_empty() {
            return Err(Error::Invalid("a network needs at least one layer".into()));
        }
        let mut width = inputs;
        for (i, l) in layers.iter().enumerate() {
            if l.inputs() != width || l.b.len() != l.outputs() || l.outputs() == 0 {
                return Err(Error::Invalid(format!(
                    "layer {i} has weights {}x{} and {} biases, but its input has {width} values",
                    l.inputs(),
                    l.outputs(),
                    l.b.len()
                )));
            }
            width = l.outputs();
        }
        Ok(Network { inputs, layers })
    }

    /// Inputs per example (784 for MNIST).
    pub fn inputs(&self) -> usize {
        self.inputs
    }
    /// Number of classes.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs())
    }
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }
    pub fn layers_mut(&mut self) -> &mut [Dense] {
        &mut self.layers
    }
    /// `[inputs, hidden..., outputs]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.inputs)
            .chain(self.layers.iter().map(|l| l.outputs()))
            .collect()
    }
    /// The hidden layers' activation (identity for a network without hidden layers).
    pub fn hidden_activation(&self) -> Activation {
        self.layers
            .first()
            .filter(|_| self.layers.len() > 1)
            .map_or(Activation::Identity, |l| l.act)
    }
    /// Number of trainable parameters (weights and biases).
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.as_slice().len() + l.b.len()).sum()
    }
    /// The sizes of the parameter tensors in order `W0, b0, W1, b1, ...`.
    pub fn param_sizes(&self) -> Vec<usize> {
        self.layers
            .iter()
            .flat_map(|l| [l.w.as_slice().len(), l.b.len()])
            .collect()
    }
    /// e.g. `784 -> 16 relu -> 16 relu -> 10 softmax`.
    pub fn describe(&self) -> String {
        let mut s = self.inputs.to_string();
        for (i, l) in self.layers.iter().enumerate() {
            let act = if i + 1 == self.layers.len() {
                "softmax"
            } else {
                l.act.name()
            };
            s.push_str(&format!(" -> {} {act}", l.outputs()));
        }
        s
    }

    /// Checks that `x` has one row of `inputs()` values per example.
    fn check_input<T: Element>(&self, x: &MatRef<T>) -> Result<()> {
        if x.cols() != self.inputs {
            return Err(Error::Invalid(format!(
                "the input has {} values per example but the network expects {}",
                x.cols(),
                self.inputs
            )));
        }
        Ok(())
    }

    /// Class probabilities for each row of `x` (scaled by `x_scale` first):
    /// a `(rows, outputs)` matrix whose rows sum to 1.
    pub fn predict<T: Element>(&self, x: MatRef<T>, x_scale: f32) -> Result<Matrix> {
        self.check_input(&x)?;
        let mut probs = Matrix::zeros(x.rows(), self.outputs());
        let classes = self.outputs();
        probs
            .as_mut_slice()
            .par_chunks_mut(EVAL_ROWS * classes.max(1))
            .enumerate()
            .for_each_init(
                || Workspace::new(self, EVAL_ROWS.min(x.rows()).max(1)),
                |ws, (c, out)| {
                    let r0 = c * EVAL_ROWS;
                    let rows = out.len() / classes;
                    let logits = ws.forward(
                        self,
                        x.rows_range(r0, r0 + rows),
                        x_scale,
                        Parallelism::Sequential,
                    );
                    out.copy_from_slice(&logits.data()[..rows * classes]);
                    kernels::softmax_rows(crate::matrix::MatMut::from_slice(out, rows, classes));
                },
            );
        Ok(probs)
    }

    /// Mean loss and accuracy on a data set of raw pixels.
    pub fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        self.evaluate_view(data.images(), PIXEL_SCALE, data.labels())
    }

    /// Mean loss and accuracy on `x` (scaled by `x_scale`) with `labels`.
    ///
    /// Work is split in fixed chunks and summed in chunk order, so the result
    /// does not depend on the thread count.
    pub fn evaluate_view<T: Element>(&self, x: MatRef<T>, x_scale: f32, labels: &[u8]) -> Result<Evaluation> {
        self.check_input(&x)?;
        if labels.len() != x.rows() {
            return Err(Error::Invalid(format!(
                "{} labels for {} examples",
                labels.len(),
                x.rows()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&y| y as usize >= self.outputs()) {
            return Err(Error::Invalid(format!(
                "label {bad} is out of range for a network with {} classes",
                self.outputs()
            )));
        }
        let n = x.rows();
        if n == 0 {
            return Err(Error::Invalid("cannot evaluate on an empty data set".into()));
        }
        let chunks = n.div_ceil(EVAL_ROWS);
        let parts: Vec<(f64, usize)> = (0..chunks)
            .into_par_iter()
            .map_init(
                || Workspace::new(self, EVAL_ROWS.min(n)),
                |ws, c| {
                    let (r0, r1) = (c * EVAL_ROWS, ((c + 1) * EVAL_ROWS).min(n));
                    ws.forward(self, x.rows_range(r0, r1), x_scale, Parallelism::Sequential);
                    ws.loss_and_correct(&labels[r0..r1], 1.0)
                },
            )
            .collect();
        let (loss, correct) = parts.iter().fold((0.0, 0), |(l, c), &(pl, pc)| (l + pl, c + pc));
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: correct as f64 / n as f64,
        })
    }
}

/// Every buffer of one forward + backward pass over up to `capacity` rows.
///
/// Per layer `l`: `acts[l]: (rows, outputs_l)` holds `a = f(z)` (the last
/// layer's holds the logits); `deltas[l]: (rows, outputs_l)` holds `dz`;
/// `dw[l]: (inputs_l, outputs_l)` and `db[l]: (outputs_l)` the gradients.
#[derive(Clone, Debug)]
pub struct Workspace {
    capacity: usize,
    rows: usize,
    /// Whether the profiler times this workspace's work (training, not evaluation).
    pub timed: bool,
    pub acts: Vec<Matrix>,
    pub deltas: Vec<Matrix>,
    pub dw: Vec<Matrix>,
    pub db: Vec<Vec<f32>>,
}

impl Workspace {
    /// Buffers for `net` and up to `capacity` rows.
    pub fn new(net: &Network, capacity: usize) -> Workspace {
        let per_layer = |f: &dyn Fn(&Dense) -> Matrix| net.layers.iter().map(f).collect::<Vec<_>>();
        Workspace {
            capacity,
            rows: 0,
            timed: false,
            acts: per_layer(&|l| Matrix::zeros(capacity, l.outputs())),
            deltas: per_layer(&|l| Matrix::zeros(capacity, l.outputs())),
            dw: per_layer(&|l| Matrix::zeros(l.inputs(), l.outputs())),
            db: net.layers.iter().map(|l| vec![0.0; l.outputs()]).collect(),
        }
    }

    /// The row capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forward pass over `x` (`rows <= capacity`), keeping every layer's output.
    /// Returns the logits, `(rows, outputs)`.
    pub fn forward<T: Element>(
        &mut self,
        net: &Network,
        x: MatRef<T>,
        x_scale: f32,
        par: Parallelism,
    ) -> MatRef<'_> {
        let rows = x.rows();
        assert!(
            rows <= self.capacity,
            "workspace holds {} rows, got {rows}",
            self.capacity
        );
        self.rows = rows;
        for (l, layer) in net.layers.iter().enumerate() {
            let _t = scope_when(self.timed, Kind::ForwardGemm, l)
                .flops(2 * rows * layer.inputs() * layer.outputs());
            let (before, after) = self.acts.split_at_mut(l);
            let a = after[0].view_mut().rows_range(0, rows);
            if l == 0 {
                dense_forward(a, x, x_scale, layer, par);
            } else {
                dense_forward(a, before[l - 1].view().rows_range(0, rows), 1.0, layer, par);
            }
        }
        self.acts
            .last()
            .expect("a network has layers")
            .view()
            .rows_range(0, rows)
    }

    /// After [`forward`](Self::forward): the summed cross-entropy of the rows and
    /// the number classified correctly; writes `dz = (p - y)·grad_scale` of the
    /// output layer into `deltas`.
    pub fn loss_and_correct(&mut self, labels: &[u8], grad_scale: f32) -> (f64, usize) {
        let rows = self.rows;
        let last = self.acts.len() - 1;
        let _t = scope_when(self.timed, Kind::SoftmaxCe, 0).bytes(8 * rows * self.acts[last].cols());
        let logits = self.acts[last].view().rows_range(0, rows);
        let correct = (0..rows)
            .filter(|&i| argmax(self.acts[last].row(i)) == labels[i] as usize)
            .count();
        let loss = kernels::softmax_cross_entropy(
            logits,
            labels,
            self.deltas[last].view_mut().rows_range(0, rows),
            grad_scale,
        );
        (loss, correct)
    }

    /// Backward pass after [`forward`](Self::forward) and
    /// [`loss_and_correct`](Self::loss_and_correct): fills `dw` and `db` for every layer.
    pub fn backward<T: Element>(&mut self, net: &Network, x: MatRef<T>, x_scale: f32, par: Parallelism) {
        let rows = self.rows;
        let n = net.layers.len();
        // The output layer's bias gradient; the hidden layers' come fused with their dz below.
        {
            let _t = scope_when(self.timed, Kind::ActivationBackward, n - 1).bytes(4 * rows * net.outputs());
            kernels::column_sums(self.deltas[n - 1].view().rows_range(0, rows), &mut self.db[n - 1]);
        }
        for l in (0..n).rev() {
            let layer = &net.layers[l];
            let (lower, upper) = self.deltas.split_at_mut(l);
            let dz = upper[0].view().rows_range(0, rows);
            let dw = self.dw[l].view_mut();
            let flops = 2 * rows * layer.inputs() * layer.outputs();
            if l == 0 {
                // forward was z = x·W + b: dW = xᵀ·dz (no dx: the input needs no gradient)
                let _t = scope_when(self.timed, Kind::BackwardGemmDw, l).flops(flops);
                dense_backward_weights(dw, dz, x, x_scale, par);
            } else {
                // forward was z = a_prev·W + b: dW = a_prevᵀ·dz, da_prev = dz·Wᵀ
                let a_prev = self.acts[l - 1].view().rows_range(0, rows);
                {
                    let _t = scope_when(self.timed, Kind::BackwardGemmDw, l).flops(flops);
                    dense_backward_weights(dw, dz, a_prev, 1.0, par);
                }
                {
                    let _t = scope_when(self.timed, Kind::BackwardGemmDx, l).flops(flops);
                    let da_prev = lower[l - 1].view_mut().rows_range(0, rows);
                    dense_backward_input(da_prev, dz, layer.w.view(), par);
                }
                // forward was a_prev = f(z_prev): dz_prev = da_prev ⊙ f'(a_prev), db_prev = Σ dz_prev
                let below = &net.layers[l - 1];
                let _t = scope_when(self.timed, Kind::ActivationBackward, l - 1)
                    .bytes(12 * rows * below.outputs());
                kernels::activation_backward(
                    lower[l - 1].view_mut().rows_range(0, rows),
                    a_prev,
                    below.act,
                    &mut self.db[l - 1],
                );
            }
        }
    }
}
