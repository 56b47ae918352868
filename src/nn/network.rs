//! The network: a sequence of layers, trained with softmax cross-entropy.
//!
//! [`Network`] holds the parameters; a [`Workspace`] holds every buffer one
//! forward and backward pass over up to `capacity` examples needs, allocated
//! once and reused (no allocation inside a training step).
//!
//! One training pass, the same steps as [`crate::teach::network`]:
//!
//! ```text
//! forward   for each layer l:        a_l = layer_l(a_(l-1))            (a_0 = x; the last a are the logits)
//! loss      L = mean_r -ln softmax(a_last)[r, label_r],   da_last = (p - y) / rows
//! backward  for each layer l, last to first:
//!               from da_l: the layer's gradients, and da_(l-1) (none for l = 0)
//! ```

use rand::SeedableRng;
use rayon::prelude::*;

use crate::activation::Activation;
use crate::data::{Dataset, Input};
use crate::error::{Error, Result};
use crate::gemm::{AOperand, Parallelism};
use crate::kernels::conv::SingleChannel;
use crate::kernels::{self, DropoutMask};
use crate::matrix::{Element, MatMut, MatRef, Matrix};
use crate::nn::conv::Conv2d;
use crate::nn::dense::{dense_backward_dz, Dense};
use crate::nn::fused::{self, PooledScratch};
use crate::nn::init::glorot_uniform;
use crate::nn::layer::{Layer, LayerBuffers};
use crate::nn::loss::softmax_cross_entropy;
use crate::nn::per_thread::EvalBuffers;
use crate::nn::per_thread::PerThread;
use crate::nn::pool::MaxPool2d;
use crate::nn::split::SparseFirst;
use crate::trace;

/// Scale that turns raw `u8` pixels into inputs in 0..1.
pub const PIXEL_SCALE: f32 = 1.0 / 255.0;

/// The most parameters a network may have (weights, gradients and optimiser
/// state then take about 4 GiB).
pub const MAX_PARAMS: usize = 1 << 28;

/// Examples per task when evaluating or predicting.
const EVAL_ROWS: usize = 256;

/// A sequence of layers: `inputs -> layer -> ... -> logits`, with softmax in the loss.
///
/// Besides its layers a network knows the scale its raw inputs are read
/// with ([`Network::input_scale`]: `1/255` turns pixels into 0..1, `1.0`
/// trains on raw 0-255 values), so that evaluating or predicting with a
/// saved model reads its inputs the way it was trained.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    inputs: usize,
    layers: Vec<Layer>,
    input_scale: f32,
    /// L2 factor `λ` added to the weight matrices' gradients (`λ·w`) in training.
    weight_decay: f32,
    /// Per layer: the inverted-dropout rate applied to its output in
    /// training (0: none; the output layer's is always 0).
    dropout: Vec<f32>,
    /// Seeds the dropout masks (the seed the weights were drawn with).
    dropout_seed: u64,
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
    /// `hidden` lists the hidden layers' widths (may be empty: softmax regression);
    /// every hidden layer uses `activation` (see [`Network::mlp_with`] for one each).
    pub fn mlp(
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
        seed: u64,
    ) -> Result<Network> {
        Network::mlp_with(inputs, hidden, &vec![activation; hidden.len()], outputs, seed)
    }

    /// An MLP like [`Network::mlp`] whose hidden layer `l` uses `activations[l]`
    /// (one activation per hidden layer, as Keras' `Dense(.., activation=..)`
    /// lists them). The same seed gives the same weights as `mlp`.
    pub fn mlp_with(
        inputs: usize,
        hidden: &[usize],
        activations: &[Activation],
        outputs: usize,
        seed: u64,
    ) -> Result<Network> {
        if activations.len() != hidden.len() {
            return Err(Error::Invalid(format!(
                "{} activations for {} hidden layers: give one activation per hidden layer",
                activations.len(),
                hidden.len()
            )));
        }
        let mut widths = vec![inputs];
        widths.extend_from_slice(hidden);
        widths.push(outputs);
        Network::check_widths(&widths)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = widths.len() - 1;
        let layers = (0..n)
            .map(|l| {
                Layer::Dense(Dense {
                    w: glorot_uniform(widths[l], widths[l + 1], &mut rng),
                    b: vec![0.0; widths[l + 1]],
                    act: if l + 1 == n {
                        Activation::Identity
                    } else {
                        activations[l]
                    },
                })
            })
            .collect();
        Ok(Network {
            inputs,
            layers,
            input_scale: PIXEL_SCALE,
            weight_decay: 0.0,
            dropout: vec![0.0; n],
            dropout_seed: seed,
        })
    }

    /// Checks the layer widths `inputs, hidden.., outputs` of a dense
    /// network before anything is allocated: no empty layer, and at most
    /// [`MAX_PARAMS`] parameters.
    pub fn check_widths(widths: &[usize]) -> Result<()> {
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
        Ok(())
    }

    /// A network from explicit layers; checks that their shapes chain.
    pub fn from_layers(inputs: usize, layers: Vec<Layer>) -> Result<Network> {
        if layers.is_empty() {
            return Err(Error::Invalid("a network needs at least one layer".into()));
        }
        let mut width = inputs;
        for (i, layer) in layers.iter().enumerate() {
            match layer {
                Layer::Dense(l) => {
                    if l.inputs() != width || l.b.len() != l.outputs() || l.outputs() == 0 {
                        return Err(Error::Invalid(format!(
                            "layer {i} has weights {}x{} and {} biases, but its input has {width} values",
                            l.inputs(),
                            l.outputs(),
                            l.b.len()
                        )));
                    }
                }
                other => {
                    if other.inputs() != width {
                        return Err(Error::Invalid(format!(
                            "layer {i} ({}) reads {} values per example, but its input has {width}",
                            other.kind_name(),
                            other.inputs()
                        )));
                    }
                }
            }
            // an image layer after an image layer reads the same (h, w, c), not only as many numbers
            if let (Some(prev), Some(here)) = (
                i.checked_sub(1).and_then(|p| layers[p].output_image()),
                layer.input_image(),
            ) {
                if (prev.height(), prev.width(), prev.channels())
                    != (here.height(), here.width(), here.channels())
                {
                    return Err(Error::Invalid(format!(
                        "layer {i} ({}) reads {}x{}x{} images, but layer {} writes {}x{}x{}",
                        layer.kind_name(),
                        here.height(),
                        here.width(),
                        here.channels(),
                        i - 1,
                        prev.height(),
                        prev.width(),
                        prev.channels()
                    )));
                }
            }
            width = layer.outputs();
        }
        Ok(Network {
            inputs,
            dropout: vec![0.0; layers.len()],
            layers,
            input_scale: PIXEL_SCALE,
            weight_decay: 0.0,
            dropout_seed: 0,
        })
    }

    /// The factor raw inputs are multiplied by as they are read
    /// ([`PIXEL_SCALE`] unless set with [`Network::with_input_scale`]).
    pub fn input_scale(&self) -> f32 {
        self.input_scale
    }

    /// The same network reading its inputs scaled by `scale` (`1.0`: raw
    /// 0-255 pixels, the workshop's "unscaled inputs" trial). `scale` must
    /// be a positive finite number.
    pub fn with_input_scale(mut self, scale: f32) -> Result<Network> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::Invalid(format!(
                "the input scale must be a positive finite number, got {scale}"
            )));
        }
        self.input_scale = scale;
        Ok(self)
    }

    /// The first layer (0-based) whose weights or biases hold a NaN or an
    /// infinity, if any: such a network cannot be saved or loaded (training
    /// reports [`Error::WeightsNotFinite`] instead of ending with one).
    pub fn non_finite_layer(&self) -> Option<usize> {
        self.layers
            .iter()
            .position(|l| l.params().iter().any(|t| t.iter().any(|v| !v.is_finite())))
    }

    /// The L2 weight decay `λ` training applies (0: none).
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// The same network trained with L2 weight decay `l2` (Keras'
    /// `kernel_regularizer=l2(l2 / 2)`): every step adds `l2·w` to the
    /// gradient of each weight matrix (not the biases), inside the
    /// optimiser's update. `0` (the default) changes nothing, bit for bit.
    pub fn with_weight_decay(mut self, l2: f32) -> Result<Network> {
        if !(l2.is_finite() && l2 >= 0.0) {
            return Err(Error::Invalid(format!(
                "the weight decay must be a finite number >= 0, got {l2}"
            )));
        }
        self.weight_decay = l2;
        Ok(self)
    }

    /// Per layer, the inverted-dropout rate training applies to its output
    /// (the output layer's is 0).
    pub fn dropout(&self) -> &[f32] {
        &self.dropout
    }

    /// The seed of the dropout masks (by default the seed of [`Network::mlp`]).
    pub fn dropout_seed(&self) -> u64 {
        self.dropout_seed
    }

    /// The same network trained with inverted dropout of `rate` after every
    /// hidden layer's activation (Keras' `Dropout(rate)` after each hidden
    /// `Dense`): in training each hidden unit of each example is dropped
    /// with probability `rate` and the kept ones are scaled by
    /// `1 / (1 - rate)`; evaluation and prediction never drop anything.
    /// `0 <= rate < 1`; 0 (the default) changes nothing, bit for bit.
    pub fn with_dropout(self, rate: f32) -> Result<Network> {
        let rates = vec![rate; self.layers.len() - 1];
        self.with_dropout_rates(&rates)
    }

    /// Like [`with_dropout`](Self::with_dropout) with one rate per hidden layer.
    pub fn with_dropout_rates(mut self, rates: &[f32]) -> Result<Network> {
        let hidden = self.layers.len() - 1;
        if rates.len() != hidden {
            return Err(Error::Invalid(format!(
                "{} dropout rates for {hidden} hidden layers: give one per hidden layer",
                rates.len()
            )));
        }
        if let Some(bad) = rates.iter().find(|r| !(0.0..1.0).contains(*r)) {
            return Err(Error::Invalid(format!(
                "the dropout rate must be at least 0 and below 1, got {bad}"
            )));
        }
        self.dropout[..hidden].copy_from_slice(rates);
        Ok(self)
    }

    /// The same network with its dropout masks drawn from `seed`.
    pub fn with_dropout_seed(mut self, seed: u64) -> Network {
        self.dropout_seed = seed;
        self
    }

    /// Inputs per example (784 for MNIST).
    pub fn inputs(&self) -> usize {
        self.inputs
    }
    /// Number of classes.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs())
    }
    /// The layers, first (reading the inputs) to last (writing the logits).
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    /// The layers, to change their parameters in place.
    pub fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }
    /// `[inputs, hidden..., outputs]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.inputs)
            .chain(self.layers.iter().map(|l| l.outputs()))
            .collect()
    }
    /// Number of trainable parameters (weights and biases).
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(Layer::num_params).sum()
    }
    /// The sizes of the parameter tensors, layer by layer (dense: `W0, b0, W1, b1, ...`).
    pub fn param_sizes(&self) -> Vec<usize> {
        self.layers
            .iter()
            .flat_map(|l| l.params().into_iter().map(<[f32]>::len))
            .collect()
    }
    /// e.g. `784 -> 16 relu -> 16 tanh -> 10 softmax` (each layer's activation).
    pub fn describe(&self) -> String {
        let mut s = self.inputs.to_string();
        for (i, layer) in self.layers.iter().enumerate() {
            match layer {
                Layer::Dense(l) => {
                    let act = if i + 1 == self.layers.len() {
                        "softmax"
                    } else {
                        l.act.name()
                    };
                    s.push_str(&format!(" -> {} {act}", l.outputs()));
                }
                Layer::Conv2d(c) => {
                    let (g, o) = (&c.geometry, c.geometry.output());
                    s.push_str(&format!(
                        " -> conv {}x{}x{} {} {} {}x{}x{}",
                        g.kernel_h(),
                        g.kernel_w(),
                        g.filters(),
                        g.padding(),
                        c.act.name(),
                        o.height(),
                        o.width(),
                        o.channels()
                    ));
                }
                Layer::MaxPool2d(p) => {
                    let o = p.geometry.output();
                    s.push_str(&format!(
                        " -> pool 2x2 {}x{}x{}",
                        o.height(),
                        o.width(),
                        o.channels()
                    ));
                }
                Layer::Flatten(f) => s.push_str(&format!(" -> flatten {}", f.outputs())),
            }
            if self.dropout[i] > 0.0 {
                s.push_str(&format!(" (dropout {})", self.dropout[i]));
            }
        }
        if self.input_scale != PIXEL_SCALE {
            s.push_str(&format!(" (inputs scaled by {})", self.input_scale));
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
    /// a `(rows, outputs)` matrix whose rows sum to 1. [`predict`](Self::predict) picks the scale from the input's type.
    pub fn predict_scaled<T: Element>(&self, x: MatRef<T>, x_scale: f32) -> Result<Matrix> {
        self.check_input(&x)?;
        let mut probs = Matrix::zeros(x.rows(), self.outputs());
        let classes = self.outputs();
        let workspaces = PerThread::new(self, EVAL_ROWS.min(x.rows()).max(1));
        probs
            .as_mut_slice()
            .par_chunks_mut(EVAL_ROWS * classes.max(1))
            .enumerate()
            .for_each(|(c, out)| {
                workspaces.with(|ws| {
                    let r0 = c * EVAL_ROWS;
                    let rows = out.len() / classes;
                    let logits = ws.forward(
                        self,
                        x.rows_range(r0, r0 + rows),
                        x_scale,
                        Parallelism::Sequential,
                    );
                    out.copy_from_slice(&logits.data()[..rows * classes]);
                    kernels::softmax_rows(MatMut::from_slice(out, rows, classes));
                })
            });
        Ok(probs)
    }

    /// Mean loss and accuracy on a data set: pixels read with the network's
    /// own [`input_scale`](Self::input_scale), values as they are.
    pub fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        match data.input() {
            Input::Pixels(x) => self.evaluate_view(x, self.input_scale, data.labels()),
            Input::Values(x) => self.evaluate_view(x, 1.0, data.labels()),
        }
    }

    /// Mean loss and accuracy on `x` (scaled by `x_scale`) with `labels`.
    ///
    /// Work is split in fixed chunks and summed in chunk order, so the result
    /// does not depend on the thread count.
    pub fn evaluate_view<T: Element>(&self, x: MatRef<T>, x_scale: f32, labels: &[u8]) -> Result<Evaluation> {
        self.evaluate_in(x, x_scale, labels, None)
    }

    /// [`evaluate`](Self::evaluate), its buffers kept in `buffers` for the
    /// next call: for a loop that evaluates this network again and again
    /// (training's validation after each epoch). The same result as
    /// `evaluate`.
    ///
    /// ```
    /// use simdnet::data::Dataset;
    /// use simdnet::nn::{Activation, EvalBuffers, Network};
    /// let data = Dataset::from_values((0..40).map(|i| i as f32 / 40.0).collect(), vec![0, 1, 2, 0], 10)?;
    /// let mut net = Network::mlp(10, &[8], 3, Activation::Relu, 1)?;
    /// let mut kept = EvalBuffers::new();
    /// for _ in 0..3 {
    ///     assert_eq!(net.evaluate_reusing(&data, &mut kept)?, net.evaluate(&data)?);
    ///     net.layers_mut()[0].params_mut(0)[0] += 0.25; // the weights change, the buffers stay
    /// }
    /// # Ok::<(), simdnet::Error>(())
    /// ```
    pub fn evaluate_reusing(&self, data: &Dataset, buffers: &mut EvalBuffers) -> Result<Evaluation> {
        match data.input() {
            Input::Pixels(x) => self.evaluate_in(x, self.input_scale, data.labels(), Some(buffers)),
            Input::Values(x) => self.evaluate_in(x, 1.0, data.labels(), Some(buffers)),
        }
    }

    /// [`evaluate_view`](Self::evaluate_view), with the workspaces of
    /// `kept` if given.
    fn evaluate_in<T: Element>(
        &self,
        x: MatRef<T>,
        x_scale: f32,
        labels: &[u8],
        kept: Option<&mut EvalBuffers>,
    ) -> Result<Evaluation> {
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
        let workspaces = match kept {
            Some(kept) => PerThread::kept(self, EVAL_ROWS.min(n), kept),
            None => PerThread::new(self, EVAL_ROWS.min(n)),
        };
        let parts: Vec<(f64, usize)> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                workspaces.with(|ws| {
                    let (r0, r1) = (c * EVAL_ROWS, ((c + 1) * EVAL_ROWS).min(n));
                    ws.forward(self, x.rows_range(r0, r1), x_scale, Parallelism::Sequential);
                    ws.loss(&labels[r0..r1], 1.0)
                })
            })
            .collect();
        let (loss, correct) = parts.iter().fold((0.0, 0), |(l, c), &(pl, pc)| (l + pl, c + pc));
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: correct as f64 / n as f64,
        })
    }
}

/// Every buffer of one forward + backward pass over up to `capacity` rows:
/// one [`LayerBuffers`] per layer (its output `a`, the errors `da` and `dz`,
/// and the gradients of its parameters).
#[derive(Clone, Debug)]
pub struct Workspace {
    capacity: usize,
    /// Whether the gradient buffers exist ([`Workspace::new`], not [`Workspace::for_inference`]).
    backward: bool,
    /// Rows of the last forward pass.
    rows: usize,
    layers: Vec<LayerBuffers>,
    /// Per layer, the dropout mask of the last forward pass (training only).
    masks: Vec<Option<DropoutMask>>,
    /// Per layer, training only: for a convolution whose output a max-pool
    /// reads, the working space of their backward pass by scattering
    /// ([`fused::pooled_conv_backward`]).
    pooled: Vec<Option<PooledScratch>>,
    /// Inference only: a wide dense first layer's product from its
    /// inputs' non-zeros ([`SparseFirst`]).
    sparse_first: Option<SparseFirst>,
    /// Whether the last forward pass's first layer took [`SparseFirst`].
    first_sparse: bool,
}

impl Workspace {
    /// Buffers for training `net` (forward, loss and backward) on up to `capacity` rows.
    pub fn new(net: &Network, capacity: usize) -> Workspace {
        Workspace::with_buffers(net, capacity, true)
    }

    /// Buffers for the forward pass and the loss only (evaluation, prediction):
    /// no gradients, so [`backward`](Self::backward) must not be called on it.
    pub fn for_inference(net: &Network, capacity: usize) -> Workspace {
        Workspace::with_buffers(net, capacity, false)
    }

    fn with_buffers(net: &Network, capacity: usize, backward: bool) -> Workspace {
        Workspace {
            capacity,
            backward,
            rows: 0,
            layers: net
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let mut buffers = LayerBuffers::new(l, capacity, backward);
                    if i + 1 == net.layers.len() && buffers.da.rows() < capacity {
                        // the loss writes the last layer's da, also in inference
                        buffers.da = Matrix::zeros(capacity, l.outputs());
                    }
                    buffers
                })
                .collect(),
            masks: vec![None; net.layers.len()],
            pooled: (0..net.layers.len())
                .map(|l| backward.then(|| PooledScratch::new(&net.layers, l)).flatten())
                .collect(),
            sparse_first: if backward {
                None
            } else {
                SparseFirst::plan(net, capacity)
            },
            first_sparse: false,
        }
    }

    /// Rows of the last forward pass (0 before the first).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The row capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the last forward pass multiplied a wide dense first layer's
    /// non-zero inputs alone (an inference workspace, images mostly zero,
    /// finite weights; the bits are the GEMM's either way).
    pub fn first_layer_from_nonzeros(&self) -> bool {
        self.first_sparse
    }

    /// Forward pass over `x: (rows, inputs)` (`rows <= capacity`), keeping
    /// every layer's output. Returns the logits, `(rows, outputs)`.
    /// Never applies dropout (evaluation, prediction).
    pub fn forward<X: AOperand>(
        &mut self,
        net: &Network,
        x: X,
        x_scale: f32,
        par: Parallelism,
    ) -> MatRef<'_> {
        self.masks.fill(None);
        self.forward_masked(net, x, x_scale, par)
    }

    /// The training forward pass: like [`forward`](Self::forward), with the
    /// network's dropout applied for training step `step` (the optimiser
    /// state's step count), `x`'s first row being row `row0` of the
    /// mini-batch. [`backward`](Self::backward) then uses the same masks.
    pub fn forward_train<X: AOperand>(
        &mut self,
        net: &Network,
        x: X,
        x_scale: f32,
        step: u64,
        row0: usize,
        par: Parallelism,
    ) -> MatRef<'_> {
        for (l, (mask, &rate)) in self.masks.iter_mut().zip(&net.dropout).enumerate() {
            *mask = (rate > 0.0).then(|| DropoutMask::new(rate, net.dropout_seed, step, l).offset(row0, 0));
        }
        self.forward_masked(net, x, x_scale, par)
    }

    /// Layer `l`'s dropout mask in the last forward pass (`None`: no dropout),
    /// for the rows of that pass.
    pub fn dropout_mask(&self, l: usize) -> Option<DropoutMask> {
        self.masks[l]
    }

    fn forward_masked<X: AOperand>(
        &mut self,
        net: &Network,
        x: X,
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
        let mut first = 0;
        if let Some(block) = self.conv_pool(net) {
            // LeNet-5's first convolution and its pool, image by image (see nn::fused)
            let (conv, pool) = self.layers.split_at_mut(1);
            let (LayerBuffers { a: a0, .. }, LayerBuffers { a: a1, argmax, .. }) =
                (&mut conv[0], &mut pool[0]);
            let (a0, a1) = (
                a0.view_mut().rows_range(0, rows),
                a1.view_mut().rows_range(0, rows),
            );
            fused::conv_pool_forward(a0, a1, argmax, x, x_scale, (block.0, &block.1, block.2));
            first = 2;
        }
        if first == 0 {
            let _in = trace::layer(0);
            let LayerBuffers { a, argmax, .. } = &mut self.layers[0];
            let mut a = a.view_mut().rows_range(0, rows); // (rows, outputs_0)
            let sparse = match (&mut self.sparse_first, &net.layers[0], &self.masks[0]) {
                (Some(sparse), Layer::Dense(dense), None) => sparse.forward(a.rb_mut(), dense, x, x_scale),
                _ => false,
            };
            if !sparse {
                net.layers[0].forward(a, argmax, x, x_scale, self.masks[0].as_ref(), par);
            }
            self.first_sparse = sparse;
            first = 1;
        }
        self.forward_from(net, first, par)
    }

    /// The forward pass through layers `first..`, each reading the output of
    /// the layer below (rows of the current pass).
    fn forward_from(&mut self, net: &Network, first: usize, par: Parallelism) -> MatRef<'_> {
        let rows = self.rows;
        for (l, layer) in net.layers.iter().enumerate().skip(first.max(1)) {
            let _in = trace::layer(l);
            let (below, here) = self.layers.split_at_mut(l);
            let LayerBuffers { a, argmax, .. } = &mut here[0];
            let a = a.view_mut().rows_range(0, rows); // (rows, outputs_l)
            let x = below[l - 1].a.view().rows_range(0, rows); // (rows, outputs_l-1)
            layer.forward(a, argmax, x, 1.0, self.masks[l].as_ref(), par);
        }
        self.logits()
    }

    /// A training pass whose first layer's output is computed elsewhere
    /// (`crate::nn::split`), part 1: sets the pass to `rows` rows and the
    /// dropout masks of step `step`, rows from `row0` of the mini-batch (as
    /// [`forward_train`](Self::forward_train)), and returns the first
    /// layer's output `a: (rows, outputs_0)` to be written, with its mask.
    pub(crate) fn begin_split_pass(
        &mut self,
        net: &Network,
        rows: usize,
        step: u64,
        row0: usize,
    ) -> (MatMut<'_>, Option<DropoutMask>) {
        assert!(
            rows <= self.capacity,
            "workspace holds {} rows, got {rows}",
            self.capacity
        );
        self.rows = rows;
        for (l, (mask, &rate)) in self.masks.iter_mut().zip(&net.dropout).enumerate() {
            *mask = (rate > 0.0).then(|| DropoutMask::new(rate, net.dropout_seed, step, l).offset(row0, 0));
        }
        (self.layers[0].a.view_mut().rows_range(0, rows), self.masks[0])
    }

    /// Part 2, after the first layer's output is written: the forward pass
    /// through the other layers, the loss (as [`loss`](Self::loss)), and the
    /// backward pass down to the first layer's `dz` and `db`, but not its
    /// `dW` (computed elsewhere from [`dz`](Self::dz)`(0)`).
    pub(crate) fn finish_split_pass(
        &mut self,
        net: &Network,
        labels: &[u8],
        grad_scale: f32,
        par: Parallelism,
    ) -> (f64, usize) {
        self.forward_from(net, 1, par);
        let result = self.loss(labels, grad_scale);
        self.backward_layers(net, 1, None::<(MatRef<f32>, f32)>, par);
        let rows = self.rows;
        let Layer::Dense(first) = &net.layers[0] else {
            unreachable!("a split pass needs a dense first layer")
        };
        let _in = trace::layer(0);
        let LayerBuffers { a, da, dz, grads, .. } = &mut self.layers[0];
        dense_backward_dz(
            dz.view_mut().rows_range(0, rows),
            grads[1].as_mut_slice(),
            da.view().rows_range(0, rows),
            a.view().rows_range(0, rows),
            first,
            self.masks[0].as_ref(),
            par,
        );
        result
    }

    /// After [`forward`](Self::forward): the summed softmax cross-entropy of
    /// the rows, and the number classified correctly. Writes the output
    /// layer's `da = (p - y)·grad_scale`, where the backward pass starts.
    pub fn loss(&mut self, labels: &[u8], grad_scale: f32) -> (f64, usize) {
        let rows = self.rows;
        let out = self.layers.last_mut().expect("a network has layers");
        let logits = out.a.view().rows_range(0, rows); // (rows, classes)
        softmax_cross_entropy(out.da.view_mut().rows_range(0, rows), logits, labels, grad_scale)
    }

    /// Backward pass after [`forward`](Self::forward) and [`loss`](Self::loss):
    /// every layer's gradients, from the last layer to the first.
    pub fn backward<X: AOperand>(&mut self, net: &Network, x: X, x_scale: f32, par: Parallelism) {
        assert!(
            self.backward,
            "Workspace::backward on a workspace made by for_inference: make it with Workspace::new"
        );
        let block = self.conv_pool(net);
        let last = if block.is_some() { 2 } else { 0 };
        self.backward_layers(net, last, Some((x, x_scale)), par);
        let rows = self.rows;
        if let Some((conv, shape, pool)) = block {
            // LeNet-5's first convolution and its pool, image by image (see nn::fused)
            let (l0, l1) = self.layers.split_at_mut(1);
            let LayerBuffers { dz, grads, .. } = &mut l0[0];
            let (dw, db) = grads.split_at_mut(1);
            fused::conv_pool_backward(
                dz.view_mut().rows_range(0, rows),
                dw[0].view_mut(),
                db[0].as_mut_slice(),
                l1[0].da.view().rows_range(0, rows),
                &l1[0].argmax,
                l1[0].a.view().rows_range(0, rows),
                x,
                x_scale,
                (conv, &shape, pool),
            );
        }
    }

    /// The backward pass of layers `lowest..` (the last first), each from
    /// its `da`; the first layer (`lowest == 0`) reads the data `x`, given
    /// then, and sends no error down.
    fn backward_layers<X: AOperand>(
        &mut self,
        net: &Network,
        lowest: usize,
        x: Option<(X, f32)>,
        par: Parallelism,
    ) {
        let rows = self.rows;
        let mut skip = false;
        for (l, layer) in net.layers.iter().enumerate().skip(lowest).rev() {
            if std::mem::take(&mut skip) {
                continue;
            }
            if l > lowest && self.pooled_block(net, l - 1) {
                // a convolution and its max-pool at once, by scattering (see nn::fused)
                self.pooled_conv_backward(net, l - 1);
                skip = true;
                continue;
            }
            let _in = trace::layer(l);
            let (below, here) = self.layers.split_at_mut(l);
            match below.last_mut() {
                // the first layer: its input is the data, which needs no gradient
                None => {
                    let (x, x_scale) = x.expect("the first layer's backward pass needs the data");
                    layer.backward(None, &mut here[0], rows, x, x_scale, self.masks[l].as_ref(), par)
                }
                // any other: its input is the layer below's a, whose error da it writes
                Some(prev) => {
                    let dx = prev.da.view_mut().rows_range(0, rows);
                    let x_l = prev.a.view().rows_range(0, rows);
                    layer.backward(
                        Some(dx),
                        &mut here[0],
                        rows,
                        x_l,
                        1.0,
                        self.masks[l].as_ref(),
                        par,
                    );
                }
            }
        }
    }

    /// Whether layer `l`, a convolution, and the max-pool after it run
    /// their backward pass at once ([`fused::pooled_conv_backward`]): the
    /// convolution did not drop out.
    fn pooled_block(&self, net: &Network, l: usize) -> bool {
        let conv_drops = self.masks.get(l).is_some_and(|m| m.is_some());
        self.pooled.get(l).is_some_and(|p| p.is_some()) && !conv_drops && l > 0 && l < net.layers.len()
    }

    /// The backward pass of layers `l` (a convolution) and `l + 1` (its
    /// max-pool) after [`pooled_block`](Self::pooled_block): `dW`, `db` of
    /// layer `l` and the error `da` of layer `l - 1`.
    fn pooled_conv_backward(&mut self, net: &Network, l: usize) {
        let rows = self.rows;
        let Layer::Conv2d(conv) = &net.layers[l] else {
            unreachable!("pooled_block checked a convolution")
        };
        let pool_mask = self.masks[l + 1];
        let scratch = self.pooled[l].as_mut().expect("pooled_block checked the scratch");
        let (below, here) = self.layers.split_at_mut(l);
        let (conv_buffers, pool_buffers) = here.split_at_mut(1);
        let (input, conv_buffers, pool_buffers) = (&mut below[l - 1], &mut conv_buffers[0], &pool_buffers[0]);
        let (dw, db) = conv_buffers.grads.split_at_mut(1);
        fused::pooled_conv_backward(
            input.da.view_mut().rows_range(0, rows),
            dw[0].view_mut(),
            db[0].as_mut_slice(),
            pool_buffers.da.view().rows_range(0, rows),
            &pool_buffers.argmax,
            conv_buffers.a.view().rows_range(0, rows),
            input.a.view().rows_range(0, rows),
            (l, conv, pool_mask.as_ref()),
            scratch,
        );
    }

    /// The first two layers when they run image by image ([`fused::conv_pool`]).
    fn conv_pool<'n>(&self, net: &'n Network) -> Option<(&'n Conv2d, SingleChannel, &'n MaxPool2d)> {
        let dropout = |l: usize| self.masks.get(l).is_some_and(|m| m.is_some());
        fused::conv_pool(&net.layers, &[dropout(0), dropout(1)])
    }

    /// The logits of the last forward pass, `(rows, outputs)`.
    pub fn logits(&self) -> MatRef<'_> {
        self.output(self.layers.len() - 1)
    }

    /// Layer `l`'s output `a` of the last forward pass, `(rows, outputs_l)`.
    pub fn output(&self, l: usize) -> MatRef<'_> {
        self.layers[l].a.view().rows_range(0, self.rows)
    }

    /// Layer `l`'s `da = ∂L/∂a` of the last backward pass (the loss wrote the
    /// last layer's, the layer above every other one's), `(rows, outputs_l)`.
    ///
    /// Two exceptions, where a convolution and the max-pool after it run
    /// their backward pass together (see the source of `nn::fused`):
    /// - a first one-channel convolution followed by a max-pool without
    ///   dropout (LeNet-5's first block): the pool's error goes straight into
    ///   the convolution's `dz`, and the convolution's `da` is never written
    ///   (zeros in a new workspace). Its [`dz`](Self::dz) and gradients are exact;
    /// - any later convolution without dropout followed by a max-pool
    ///   (LeNet-5's and Keras' second convolutions): the pool's error goes
    ///   straight into the gradients and the error of the convolution's
    ///   input, and neither the convolution's `da` nor its `dz` is written.
    pub fn da(&self, l: usize) -> MatRef<'_> {
        self.layers[l].da.view().rows_range(0, self.rows)
    }

    /// Layer `l`'s `dz = ∂L/∂z` of the last backward pass, `(rows, outputs_l)`
    /// (dense and convolution layers: pooling and flatten have no `z`; not
    /// written for a convolution below a max-pool other than the first, see
    /// [`da`](Self::da)).
    pub fn dz(&self, l: usize) -> MatRef<'_> {
        self.layers[l].dz.view().rows_range(0, self.rows)
    }

    /// The gradient of layer `l`'s trainable tensor `k` (dense: 0 is `dW`, 1 is `db`),
    /// flat, in the order of [`Layer::params`].
    pub fn grad(&self, l: usize, k: usize) -> &[f32] {
        self.layers[l].grads[k].as_slice()
    }
}
