//! The training loop: shuffle, batch, forward, loss, backward, update.
//!
//! ## Threading and determinism
//! A mini-batch is cut into shards of [`SHARD_ROWS`] examples (a fixed
//! number, whatever the thread count). Shards run forward and backward in
//! parallel, each into its own [`Workspace`]; their weight gradients are then
//! added in shard order. Dense networks whose gradients are large
//! ([`SHARD_MAX_PARAMS`]) use one shard and let each GEMM split its output
//! tiles across the threads instead. Either way no float is ever summed in an
//! order that depends on the thread count, so a seed fixes the weights bit
//! for bit on 1, 2 or 64 threads.
//!
//! ## No gather
//! A shard never copies its examples into a batch: its GEMMs read them
//! straight from the data set by row index ([`crate::gemm::Gathered`], `X`
//! for the forward pass and `Xᵀ` for the weight gradient), converting and
//! scaling them while packing, exactly as they would a copied batch (same
//! bits). In a small network whose first layer is dense, each shard instead
//! reads its rows once into an `f32` buffer, converted and scaled the same
//! way, for both first-layer GEMMs (see `Shard::pass`), and prefetches the
//! next step's rows while it computes ([`Trainer::expect_next`]).
//!
//! ## The first layer split along its inputs
//! On two or more threads, the first dense layer's inputs are cut where
//! its GEMM cuts its depth (784 inputs: two blocks of 392) and each slice
//! is one task: it reads its slice of the batch once (converted and scaled
//! like the shards' buffers above), computes the first layer's products on
//! it and updates its rows of `W`; the shards run the rest of the forward
//! and backward pass (see [`crate::nn::split`]; large networks too, up to
//! [`crate::nn::split::ONE_SHARD_MAX_OUTPUTS`] first-layer outputs). The
//! same sums in the same order: the bits of the unsplit step.
//!
//! ## Workers kept awake
//! Through an epoch's steps the pool's other workers poll for work instead
//! of sleeping between the parallel sections ([`crate::nn::awake`]).

use std::ops::ControlFlow;
use std::time::Instant;

use rayon::prelude::*;

use crate::data::{Dataset, Input};
use crate::error::{Error, Result};
use crate::gemm::sparse_rows::mostly_zero;
use crate::gemm::threads::{join_spinning, join_spinning_then};
use crate::gemm::{AOperand, Gathered, Parallelism};
use crate::matrix::{Element, MatRef};
use crate::nn::awake::with_workers_awake;
use crate::nn::layer::Layer;
use crate::nn::network::{Evaluation, Network, Workspace};
use crate::nn::optim::{Optimizer, OptimizerState, TensorSlots};
use crate::nn::per_thread::EvalBuffers;
use crate::nn::pieces::LazyPieces;
use crate::nn::shuffle::Shuffle;
use crate::nn::split::{Part, Split};
use crate::nn::step_times::StepTimes;
use crate::trace::{self, scope, Kind};

/// Examples per shard of a mini-batch: each shard is one parallel task.
///
/// Measured on the workshop network (batch 128, 2 threads, Zen 4): 64 rows
/// ran an epoch in 38-41 ms, 32 rows in 45-49 ms (more GEMM calls of half the
/// size, more gradients to add), 128 rows (no sharding) in 52-56 ms. It must
/// not depend on the thread count, or results would.
pub const SHARD_ROWS: usize = 64;

/// Above this many parameters, a batch is one shard and the GEMMs are threaded
/// instead: adding per-shard gradients then costs more than it saves.
///
/// Measured (epoch on 2 threads, batch 128, Zen 4), sharded vs one shard:
/// 784-16-16-10 0.044 vs 0.050 s, 64-64 0.164 vs 0.166, 128-128 0.25 vs 0.26,
/// 256-256 (269k parameters) 0.49 vs 0.57, 512-512 (669k) even,
/// 1024-1024 (1.9M) 4.4 vs 4.1 s.
pub const SHARD_MAX_PARAMS: usize = 1 << 19;

/// The most epochs a run may plan: far more than any run needs, and small
/// enough that replaying the shuffles on resume stays quick.
pub const MAX_EPOCHS: usize = 1_000_000;

/// Training stops as diverged when an epoch's running mean loss, or the
/// validation loss at its end, exceeds this many times the run's first
/// mini-batch loss (or 1, if that was smaller), as it does when the loss
/// stops being finite.
///
/// A fresh 10-class network starts near ln 10 = 2.3; a healthy run only goes
/// down from there, while `--lr 100` climbs into the millions.
pub const DIVERGENCE_FACTOR: f64 = 100.0;

/// How to train.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TrainConfig {
    /// Epochs in total (at most [`MAX_EPOCHS`]).
    pub epochs: usize,
    /// Examples per mini-batch (the last one of an epoch may be smaller).
    pub batch_size: usize,
    /// Seeds the per-epoch shuffle.
    pub seed: u64,
    /// Shuffle the training set each epoch (Keras' default).
    pub shuffle: bool,
    /// Stop when the validation loss has not improved for this many epochs,
    /// and restore the best weights (Keras' `EarlyStopping(patience=...,
    /// restore_best_weights=True)`). Needs a validation set.
    pub early_stopping: Option<usize>,
}

impl Default for TrainConfig {
    /// The workshop's settings: 4 epochs of batch 128, seed 1.
    fn default() -> Self {
        TrainConfig {
            epochs: 4,
            batch_size: 128,
            seed: 1,
            shuffle: true,
            early_stopping: None,
        }
    }
}

/// What one epoch achieved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (as Keras reports it).
    pub loss: f64,
    /// Training accuracy over the epoch.
    pub accuracy: f64,
    /// Loss and accuracy on the validation set, if one was given.
    pub validation: Option<Evaluation>,
    /// Wall time of the training part of the epoch (without validation).
    pub train_seconds: f64,
    /// Wall time of the validation.
    pub validation_seconds: f64,
    /// How long the epoch's steps took, one by one (`None` for an epoch
    /// read back from a checkpoint, or one whose steps all ran before an
    /// interruption).
    pub steps: Option<StepTimes>,
}

/// Progress reported to the caller during [`fit`] and [`Session::next_epoch`].
/// The callback returns [`ControlFlow::Break`] to stop training at the end of
/// the current mini-batch (e.g. on Ctrl-C).
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// After each mini-batch: running mean loss and accuracy of this epoch.
    Step {
        /// The epoch under way (1-based).
        epoch: usize,
        /// Epochs in total.
        epochs: usize,
        /// Mini-batches done in this epoch.
        step: usize,
        /// Mini-batches in this epoch.
        steps: usize,
        /// Mean loss of this epoch's mini-batches so far.
        loss: f64,
        /// Accuracy of this epoch's mini-batches so far.
        accuracy: f64,
        /// Seconds since the epoch began.
        seconds: f64,
    },
    /// After each epoch.
    Epoch {
        /// Epochs in total.
        epochs: usize,
        /// The finished epoch's statistics.
        stats: &'a EpochStats,
    },
}

/// One shard of a mini-batch: its rows' labels and the buffers of its
/// forward and backward pass. (Its inputs are not gathered into a batch:
/// the GEMMs pack them straight from the data set, see
/// [`Trainer::step_rows`], or a small network reads them once into `x`.)
struct Shard {
    ws: Workspace,
    /// The shard's examples as `f32`, scaled, when the first layer is dense
    /// and the network small (see [`Shard::pass`]); empty otherwise.
    x: Vec<f32>,
    labels: Vec<u8>,
    /// Summed loss and number correct of the last pass.
    loss: f64,
    correct: usize,
}

impl Shard {
    /// Forward, loss and backward over `x` (this shard's rows, the first
    /// being row `row0` of the mini-batch; dropout masks for step `step`).
    ///
    /// With a conversion buffer (`self.x`) and examples that are not
    /// already scaled `f32`s, the rows are first read once into it,
    /// converted and scaled exactly as the GEMMs' packing would (`x_scale ·
    /// f32(x)`, rounded once): both first-layer GEMMs (`x·W` and `xᵀ·dz`)
    /// then read it in place instead of each converting the scattered rows
    /// again. The same values reach the same multiply-adds: the same bits.
    #[allow(clippy::too_many_arguments)]
    fn pass<X: AOperand>(
        &mut self,
        net: &Network,
        x: X,
        x_scale: f32,
        grad_scale: f32,
        (step, row0): (u64, usize),
        par: Parallelism,
        inputs_read: impl Fn(),
    ) {
        let _training = trace::training();
        let (rows, inputs) = (x.rows(), x.cols());
        if self.x.len() < rows * inputs || x.in_place(x_scale) {
            inputs_read();
            return self.run(net, x, x_scale, grad_scale, (step, row0), par);
        }
        // Taken out for the pass (no allocation: the Vec moves), put back after.
        let mut buf = std::mem::take(&mut self.x);
        let t = trace::kernel(Kind::InputConvert).bytes(rows * inputs * (std::mem::size_of::<X::Elem>() + 4));
        let (ptr, ra, pa) = x.direct(x_scale, (0, rows), (0, inputs), &mut buf[..rows * inputs]);
        drop(t);
        inputs_read();
        if std::ptr::eq(ptr, buf.as_ptr()) && ra == inputs && pa == 1 {
            let xf = MatRef::from_slice(&buf[..rows * inputs], rows, inputs);
            self.run(net, xf, 1.0, grad_scale, (step, row0), par);
        } else {
            self.run(net, x, x_scale, grad_scale, (step, row0), par);
        }
        self.x = buf;
    }

    /// Forward, loss and backward of [`pass`](Self::pass) on `x` as given.
    fn run<X: AOperand>(
        &mut self,
        net: &Network,
        x: X,
        x_scale: f32,
        grad_scale: f32,
        (step, row0): (u64, usize),
        par: Parallelism,
    ) {
        self.ws.forward_train(net, x, x_scale, step, row0, par);
        let rows = x.rows();
        (self.loss, self.correct) = self.ws.loss(&self.labels[..rows], grad_scale);
        self.ws.backward(net, x, x_scale, par);
    }
}

/// Everything a training step needs besides the network: the optimiser and
/// its state, and one workspace per shard, allocated once.
///
/// A loop of your own that calls [`step`](Self::step) again and again
/// runs it inside [`crate::nn::awake::with_workers_awake`],
/// as [`fit`] does each epoch: the pool's other workers then poll for the
/// steps' parallel halves instead of sleeping between steps (the same
/// bits either way; see `nn::awake` for what waking them costs).
pub struct Trainer {
    /// The update rule and its hyper-parameters.
    pub optimizer: Optimizer,
    /// Its state: step count and moment estimates.
    pub state: OptimizerState,
    batch_size: usize,
    shard_rows: usize,
    shards: Vec<Shard>,
    /// `inputs, outputs of each layer` of the network the shards were made for.
    widths: Vec<usize>,
    /// The examples of the next step, if known ([`Trainer::expect_next`]):
    /// each shard prefetches its part while it computes.
    next: Vec<usize>,
    /// The first layer split along its inputs, if it is ([`Split`]).
    split: Option<Split>,
    /// What the next step's first phase was run ahead for
    /// ([`Trainer::step_ahead`]).
    ahead: Ahead,
}

/// The examples, data set and scale the split first layer's first phase
/// was last run ahead for ([`Trainer::step_ahead`]); valid for the one step
/// that follows, on the weights that step starts from.
#[derive(Default)]
struct Ahead {
    valid: bool,
    indices: Vec<usize>,
    /// The data set's address, rows, columns and row stride, and the scale's bits.
    key: (usize, usize, usize, usize, u32),
}

/// The next steps' examples a step is told of (see [`Trainer::step_ahead`]).
struct Lookahead<'a> {
    /// The next step's examples: prefetched while this step computes.
    next: &'a [usize],
    /// The examples of the step after next: prefetched while the next
    /// step's first phase runs ahead.
    after: &'a [usize],
    /// Whether this step may run the next one's first phase at its end.
    pipelined: bool,
}

impl Ahead {
    fn key<T: Element>(features: &MatRef<T>, x_scale: f32) -> (usize, usize, usize, usize, u32) {
        (
            features.data().as_ptr() as usize,
            features.rows(),
            features.cols(),
            features.row_stride(),
            x_scale.to_bits(),
        )
    }
}

impl Trainer {
    /// A trainer for `net` with mini-batches of up to `batch_size` examples.
    pub fn new(net: &Network, optimizer: Optimizer, batch_size: usize) -> Result<Trainer> {
        if batch_size == 0 {
            return Err(Error::Invalid("the batch size must be at least 1".into()));
        }
        let shard_rows = Self::shard_rows_for(net, batch_size);
        let split = Split::plan(net, batch_size, shard_rows);
        let shards = (0..batch_size.div_ceil(shard_rows))
            .map(|_| Shard {
                ws: Workspace::new(net, shard_rows),
                x: vec![
                    0.0;
                    if converts_input(net) {
                        shard_rows * net.inputs()
                    } else {
                        0
                    }
                ],
                labels: vec![0; shard_rows],
                loss: 0.0,
                correct: 0,
            })
            .collect();
        Ok(Trainer {
            optimizer,
            batch_size,
            state: OptimizerState::new(&net.param_sizes()),
            shard_rows,
            shards,
            widths: net.widths(),
            next: Vec::with_capacity(batch_size),
            split,
            ahead: Ahead {
                indices: Vec::with_capacity(batch_size),
                ..Ahead::default()
            },
        })
    }

    /// Rows per shard: [`SHARD_ROWS`] for small networks and for every
    /// network with a convolution, the whole batch for large dense ones.
    ///
    /// A convolution does much work per example for few parameters (Keras'
    /// mnist_cnn: 72 MFLOP per example, 1.2 M parameters almost all in its
    /// dense layer): shards of examples keep every layer (pooling, flatten,
    /// the element-wise kernels, not only the GEMMs) on all threads, and
    /// adding the shards' gradients is small next to that.
    pub fn shard_rows_for(net: &Network, batch_size: usize) -> usize {
        let convolutional = net.layers().iter().any(|l| matches!(l, Layer::Conv2d(_)));
        if net.num_params() > SHARD_MAX_PARAMS && !convolutional {
            batch_size
        } else {
            SHARD_ROWS.min(batch_size)
        }
    }

    /// Tells the trainer which examples the next [`step_rows`](Self::step_rows)
    /// (or [`step_indices`](Self::step_indices)) will read, so that each shard
    /// prefetches them while it computes this step (rows scattered over a
    /// shuffled data set otherwise each wait on memory). Only a hint: at most
    /// the batch size is kept, indices out of range are ignored, and nothing
    /// computed changes.
    pub fn expect_next(&mut self, indices: &[usize]) {
        self.next.clear();
        self.next
            .extend_from_slice(&indices[..indices.len().min(self.batch_size)]);
    }

    /// For [`Session::next_epoch`]: [`step_indices`](Self::step_indices)
    /// with the next step's examples `next` (prefetched, as
    /// [`expect_next`](Self::expect_next)) and those of the step after,
    /// `after`, with the promise that nothing but that next step changes
    /// the network in between. This step then ends by running the next
    /// one's first phase of a split first layer (its slice of the inputs
    /// read and multiplied by its rows of `W`, just updated: see
    /// [`crate::nn::split`]), in the same parallel section as its update,
    /// and the next step skips it if its examples, data set and scale are
    /// the ones named here. The same numbers, one parallel section a step
    /// fewer.
    ///
    /// `between(loss, correct)` gets the step's summed loss and number
    /// correct, once, before the step returns them: on the calling thread,
    /// as soon as they are known and its share of the update is done,
    /// while another thread may still finish its share (the caller's
    /// bookkeeping then takes none of the step's serial time). It must not
    /// need the step to be over. Not called when the step fails.
    ///
    /// The examples are borrowed, not copied: on two threads the other
    /// one reads `next` and `after` during the step, and a copy into
    /// buffers it had read made this thread wait for their lines at every
    /// step (each line one round trip between the cores).
    pub(crate) fn step_ahead(
        &mut self,
        net: &mut Network,
        data: &Dataset,
        indices: &[usize],
        (next, after): (&[usize], &[usize]),
        between: &mut dyn FnMut(f64, usize),
    ) -> Result<(f64, usize)> {
        let keep = |rows: &[usize]| rows.len().min(self.batch_size);
        let (next, after) = (&next[..keep(next)], &after[..keep(after)]);
        let ahead = Lookahead {
            next,
            after,
            pipelined: true,
        };
        match data.input() {
            Input::Pixels(x) => {
                self.step_rows_in(net, x, net.input_scale(), data.labels(), indices, ahead, between)
            }
            Input::Values(x) => self.step_rows_in(net, x, 1.0, data.labels(), indices, ahead, between),
        }
    }

    /// Drops what [`step_ahead`](Self::step_ahead) ran ahead.
    pub(crate) fn forget_ahead(&mut self) {
        self.ahead.valid = false;
    }

    /// How many slices the first layer's inputs are split in, one task each
    /// ([`crate::nn::split`]: each thread keeps its slice of the
    /// examples, of `W` and of the optimiser state); 0 when they are not (a
    /// convolution first, a network above [`SHARD_MAX_PARAMS`], or inputs the
    /// GEMM sums in one depth block). A step splits them only on more than
    /// one thread; the bits are the same either way.
    pub fn first_layer_parts(&self) -> usize {
        self.split.as_ref().map_or(0, |s| s.parts.len())
    }

    /// How many of the first layer's parts held the last step's inputs as
    /// their non-zeros and multiplied only those ([`crate::gemm::sparse_rows`]:
    /// inputs mostly zero, such as MNIST's pixels, and finite weights): 0
    /// when none did (the inputs too dense, or the step not split). The
    /// bits are the same either way.
    pub fn first_layer_sparse_parts(&self) -> usize {
        self.split
            .as_ref()
            .map_or(0, |s| s.parts.iter().filter(|p| p.holds_sparse()).count())
    }

    /// The largest batch this trainer takes.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The shards a batch of `rows` uses, and whether each GEMM should thread
    /// itself; an error if the batch is empty, over capacity, or `net` is not
    /// shaped like the network this trainer was made for.
    fn plan(&self, net: &Network, rows: usize) -> Result<(usize, Parallelism)> {
        if rows == 0 {
            return Err(Error::Invalid(
                "a training step needs at least one example; the batch is empty".into(),
            ));
        }
        if rows > self.batch_size {
            return Err(Error::Invalid(format!(
                "a batch of {rows} examples is over this trainer's capacity of {}; make the trainer with a larger batch size",
                self.batch_size
            )));
        }
        let same_shape = net.inputs() == self.widths[0]
            && net.layers().len() + 1 == self.widths.len()
            && net
                .layers()
                .iter()
                .zip(&self.widths[1..])
                .all(|(l, &w)| l.outputs() == w);
        if !same_shape {
            return Err(Error::Invalid(format!(
                "the network ({}) is not the one this trainer was made for (widths {:?}); make a trainer for it",
                net.describe(),
                self.widths
            )));
        }
        let nshards = rows.div_ceil(self.shard_rows);
        Ok((
            nshards,
            if nshards == 1 {
                Parallelism::Rayon
            } else {
                Parallelism::Sequential
            },
        ))
    }

    /// One training step on `x: (rows, inputs)` scaled by `x_scale`, with
    /// `labels: (rows)`. Returns the summed loss and the number of rows
    /// classified correctly (before the update); an error, with nothing
    /// changed, if the shapes or labels do not fit the network.
    ///
    /// The network's dropout masks are keyed by the optimiser state's step
    /// count (`state.steps`, the updates made so far) and each example's
    /// row in the batch, so a run resumed with its optimiser state draws
    /// the same masks, on any thread count.
    pub fn step<T: Element>(
        &mut self,
        net: &mut Network,
        x: MatRef<T>,
        x_scale: f32,
        labels: &[u8],
    ) -> Result<(f64, usize)> {
        self.forget_ahead();
        let rows = x.rows();
        if labels.len() != rows {
            return Err(Error::Invalid(format!(
                "{} labels for a batch of {rows} examples; give one label per row",
                labels.len()
            )));
        }
        if x.cols() != net.inputs() {
            return Err(Error::Invalid(format!(
                "the batch has {} features per example but the network expects {} inputs",
                x.cols(),
                net.inputs()
            )));
        }
        check_labels(net, labels.iter().copied())?;
        let (nshards, par) = self.plan(net, rows)?;
        if self.splits(net, &x, x_scale) {
            let first_done = false;
            let then = None::<(MatRef<T>, fn((usize, usize), (usize, usize)))>;
            return Ok(self.step_split(
                net,
                (x, x_scale, first_done),
                |r| labels[r],
                |_, _| {},
                (nshards, par),
                then,
                &mut |_, _| {},
            ));
        }
        let sr = self.shard_rows;
        let shared: &Network = net;
        let grad_scale = 1.0 / rows as f32;
        let step = self.state.steps;
        let run = |(s, shard): (usize, &mut Shard)| {
            let (r0, r1) = (s * sr, ((s + 1) * sr).min(rows));
            shard.labels[..r1 - r0].copy_from_slice(&labels[r0..r1]);
            shard.pass(
                shared,
                x.rows_range(r0, r1),
                x_scale,
                grad_scale,
                (step, r0),
                par,
                || {},
            );
        };
        run_shards(&mut self.shards, nshards, run);
        Ok(self.finish_step(net, nshards))
    }

    /// One training step on the examples `indices` of `data` (pixels scaled
    /// by the network's [`Network::input_scale`], values as they are):
    /// [`step_rows`](Self::step_rows) on the data set's features and labels.
    /// An error, with nothing changed, if the examples do not fit the network.
    pub fn step_indices(
        &mut self,
        net: &mut Network,
        data: &Dataset,
        indices: &[usize],
    ) -> Result<(f64, usize)> {
        match data.input() {
            Input::Pixels(x) => self.step_rows(net, x, net.input_scale(), data.labels(), indices),
            Input::Values(x) => self.step_rows(net, x, 1.0, data.labels(), indices),
        }
    }

    /// One training step on the rows `indices` of `features: (examples,
    /// inputs)`, scaled by `x_scale` (pixels: the network's
    /// [`Network::input_scale`]; values: 1), with `labels: (examples)`. Nothing is gathered: each shard's GEMMs pack
    /// its rows straight from `features` by index ([`Gathered`]: `X` for
    /// the forward pass, `Xᵀ` for the weight gradient), bit for bit as if
    /// the rows had been copied first.
    /// An error, with nothing changed, if the examples do not fit the network.
    pub fn step_rows<T: Element>(
        &mut self,
        net: &mut Network,
        features: MatRef<T>,
        x_scale: f32,
        labels: &[u8],
        indices: &[usize],
    ) -> Result<(f64, usize)> {
        // Taken out for the step (no allocation: the Vec moves), put back after.
        let next = std::mem::take(&mut self.next);
        let ahead = Lookahead {
            next: &next,
            after: &[],
            pipelined: false,
        };
        let result = self.step_rows_in(net, features, x_scale, labels, indices, ahead, &mut |_, _| {});
        self.next = next;
        result
    }

    /// [`step_rows`](Self::step_rows) with the next steps' examples of
    /// `look` and `between` (see [`step_ahead`](Self::step_ahead)).
    #[allow(clippy::too_many_arguments)]
    fn step_rows_in<T: Element>(
        &mut self,
        net: &mut Network,
        features: MatRef<T>,
        x_scale: f32,
        labels: &[u8],
        indices: &[usize],
        look: Lookahead<'_>,
        between: &mut dyn FnMut(f64, usize),
    ) -> Result<(f64, usize)> {
        let Lookahead {
            next,
            after,
            pipelined,
        } = look;
        // What the step before ran ahead is for this step only.
        let ahead = self.ahead.valid;
        self.forget_ahead();
        let rows = indices.len();
        if features.cols() != net.inputs() {
            return Err(Error::Invalid(format!(
                "the examples have {} features but the network expects {} inputs",
                features.cols(),
                net.inputs()
            )));
        }
        if labels.len() != features.rows() {
            return Err(Error::Invalid(format!(
                "{} labels for {} examples; give one label per example",
                labels.len(),
                features.rows()
            )));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= features.rows()) {
            return Err(Error::Invalid(format!(
                "example {bad} is out of range: the data set has {} examples",
                features.rows()
            )));
        }
        check_labels(net, indices.iter().map(|&i| labels[i]))?;
        let (nshards, par) = self.plan(net, rows)?;
        let batch = Gathered::new(features, indices).expect("indices checked above");
        if self.splits(net, &batch, x_scale) {
            // While a part computes, bring its slice of the next step's rows
            // into its core's caches (a hint: never read here, no effect on values).
            let prefetch_next = |cols: (usize, usize), piece: (usize, usize)| {
                prefetch_columns(features, piece_of(next, piece), cols)
            };
            // The first phase was run ahead for exactly these examples?
            let key = Ahead::key(&features, x_scale);
            let first_done = ahead && self.ahead.key == key && self.ahead.indices == indices;
            // Run the next step's first phase ahead (step_ahead), if its examples are a batch of this data set.
            let fits = !next.is_empty() && next.len() <= self.batch_size;
            let next_batch = if pipelined && fits {
                Gathered::new(features, next).ok()
            } else {
                None
            };
            let prefetch_after = |cols: (usize, usize), piece: (usize, usize)| {
                prefetch_columns(features, piece_of(after, piece), cols)
            };
            let result = self.step_split(
                net,
                (batch, x_scale, first_done),
                |r| labels[indices[r]],
                prefetch_next,
                (nshards, par),
                next_batch.map(|b| (b, prefetch_after)),
                between,
            );
            if next_batch.is_some() {
                self.ahead.valid = true;
                self.ahead.key = key;
                self.ahead.indices.clear();
                self.ahead.indices.extend_from_slice(next);
            }
            return Ok(result);
        }
        let sr = self.shard_rows;
        let shared: &Network = net;
        let grad_scale = 1.0 / rows as f32;
        let step = self.state.steps;
        let run = |(s, shard): (usize, &mut Shard)| {
            let idx = &indices[s * sr..((s + 1) * sr).min(rows)];
            for (r, &i) in idx.iter().enumerate() {
                shard.labels[r] = labels[i];
            }
            // Every index was checked against `features` above.
            let x = Gathered::new(features, idx).expect("indices checked above");
            // While this shard computes, bring the rows it will read next step
            // into this core's caches (a hint: never read here, no effect on values).
            let prefetch_next = || {
                let next = next.get(s * sr..((s + 1) * sr).min(next.len())).unwrap_or(&[]);
                prefetch_columns(features, next, (0, features.cols()));
            };
            shard.pass(shared, x, x_scale, grad_scale, (step, s * sr), par, prefetch_next);
        };
        run_shards(&mut self.shards, nshards, run);
        let (loss, correct) = self.finish_step(net, nshards);
        between(loss, correct);
        Ok((loss, correct))
    }

    /// Rows of a batch [`splits`](Self::splits) looks at on one thread to
    /// tell whether it is mostly zero.
    const SPARSE_SAMPLE_ROWS: usize = 8;

    /// Whether this step on `x` runs with the first layer split along its
    /// inputs ([`Split`]): planned for this network, the GEMM still cuts
    /// its depth there, `x` is not an `f32` batch read in place, and there
    /// is more than one thread to run the parts, or one and the batch is
    /// mostly zero (its first rows, [`mostly_zero`]), so that the parts
    /// multiply its non-zeros alone. (On one thread with dense inputs the
    /// split only adds work: 24.3 -> 25.0 ms an epoch of the workshop
    /// network, Zen 5, AVX-512, 16 lanes.)
    /// Both ways give the same bits.
    fn splits<X: AOperand>(&self, net: &Network, x: &X, x_scale: f32) -> bool {
        match (&self.split, net.layers().first()) {
            (Some(split), Some(Layer::Dense(first))) => {
                let threads = rayon::current_num_threads() > 1
                    || (crate::nn::split::one_thread_sparse()
                        && split.narrow_enough()
                        && x.image_rows()
                            .is_some_and(|rows| mostly_zero(&rows, Self::SPARSE_SAMPLE_ROWS)));
                threads && split.fits(first) && !x.in_place(x_scale) && !x.is_transposed()
            }
            _ => false,
        }
    }

    /// One step with the first layer split along its inputs (see
    /// [`Split`]'s module for the three phases): `x` is the whole batch,
    /// `label(r)` the label of its row `r`, `prefetch_next((k0, k1), (p,
    /// pieces))` hints the next step's inputs `k0..k1`, piece `p` of
    /// `pieces` of its rows.
    ///
    /// `first_done`: the first phase already ran for `x` (at the end of the
    /// step before, see [`step_ahead`](Self::step_ahead)). `then`: the next
    /// step's batch, whose first phase this step runs at its end (each part
    /// right after updating its rows of `W`), with its prefetch hint.
    /// `between(loss, correct)`: see [`step_ahead`](Self::step_ahead).
    #[allow(clippy::too_many_arguments)]
    fn step_split<X: AOperand, P: Fn((usize, usize), (usize, usize)) + Sync>(
        &mut self,
        net: &mut Network,
        (x, x_scale, first_done): (X, f32, bool),
        label: impl Fn(usize) -> u8 + Sync,
        prefetch_next: impl Fn((usize, usize), (usize, usize)) + Sync,
        (nshards, par): (usize, Parallelism),
        then: Option<(X, P)>,
        between: &mut dyn FnMut(f64, usize),
    ) -> (f64, usize) {
        let (rows, sr) = (x.rows(), self.shard_rows);
        let grad_scale = 1.0 / rows as f32;
        let step = self.state.steps;
        let split = self.split.as_mut().expect("step_split needs a split");
        let Some(Layer::Dense(first)) = net.layers().first() else {
            unreachable!("a split first layer is dense")
        };
        // 1. Each part: its slice of the inputs, converted, times its rows of W.
        if !first_done {
            let _fork_join = scope(Kind::ParallelShards, 0);
            let go = |part: &mut Part| {
                let (_training, _in) = (trace::training(), trace::layer(0));
                part.forward(x, x_scale, first, &prefetch_next);
            };
            match &mut split.parts[..] {
                // two parts (two threads): the one done first spins, see `run_shards`;
                // the last part on this thread, as in step 3, so that each
                // part's data stays with one core
                [a, b] => join_spinning(|| go(b), || go(a)),
                parts => parts.par_iter_mut().with_max_len(1).for_each(go),
            }
        }
        // 2. Each shard: its rows of the first layer's output, then the rest
        //    of the forward pass, the loss, and the backward pass down to dz0.
        let (shared, parts): (&Network, &Split) = (net, split);
        run_shards(&mut self.shards, nshards, |(s, shard)| {
            let _training = trace::training();
            let (r0, r1) = (s * sr, ((s + 1) * sr).min(rows));
            for (r, l) in (r0..r1).zip(shard.labels.iter_mut()) {
                *l = label(r);
            }
            let (a0, mask) = shard.ws.begin_split_pass(shared, r1 - r0, step, r0);
            {
                let _in = trace::layer(0);
                parts.first_output(a0, (r0, r1), first, mask, par);
            }
            let labels = &shard.labels[..r1 - r0];
            (shard.loss, shard.correct) = shard.ws.finish_split_pass(shared, labels, grad_scale, par);
        });
        let (loss, correct) = self.shards[..nshards]
            .iter()
            .fold((0.0, 0), |(l, c), s| (l + s.loss, c + s.correct));
        // 3. Each part: its rows of dW (shard by shard), summed into the update
        //    of its rows of W; then, if asked, the next step's phase 1 on them.
        //    Then each part updates pieces of every other tensor until none
        //    is left (they are no part's: the same updates, run beside the
        //    slower part, see `nn::pieces`).
        self.state.begin_step();
        let decay = if net.layers()[0].decays(0) {
            net.weight_decay()
        } else {
            0.0
        };
        let l2 = net.weight_decay();
        let decay_of = |layer: &Layer, k: usize| if layer.decays(k) { l2 } else { 0.0 };
        let b_decay = decay_of(&net.layers()[0], 1);
        let rest_params = net.num_params() - net.inputs() * net.layers()[0].outputs();
        let shards = &self.shards[..nshards];
        let (head, tail) = net.layers_mut().split_at_mut(1);
        let Layer::Dense(first) = &mut head[0] else {
            unreachable!("a split first layer is dense")
        };
        let split = self.split.as_mut().expect("step_split needs a split");
        let (part_len, n) = (split.part_len(), first.outputs());
        let (w_slots, mut others) = self.state.split_first();
        let optimizer = &self.optimizer;
        // Every tensor but the first layer's W: its b, then the other layers'.
        let first_b = (first.b.as_mut_slice(), b_decay, (0, 1));
        let rest = std::iter::once(first_b).chain((1..).zip(tail.iter_mut()).flat_map(|(l, layer)| {
            let decays = [decay_of(layer, 0), decay_of(layer, 1)];
            (0..)
                .zip(layer.tensors_mut())
                .map(move |(k, w)| (w, decays[k], (l, k)))
        }));
        let rest = rest
            .zip(others.tensors())
            .map(|((w, decay, lk), slots)| (w, slots, decay, lk));
        // cut into pieces by the part done first, off this serial stretch
        let pieces = LazyPieces::new(rest_params, rest);
        let grad = |s: usize, l: usize, k: usize| shards[s].ws.grad(l, k);
        let run_piece = || pieces.run_one(optimizer, nshards, grad).is_some();
        {
            let _fork_join = scope(Kind::ParallelShards, 0);
            let go = |((part, w), slots): ((&mut Part, &mut [f32]), TensorSlots)| {
                let (_training, _in) = (trace::training(), trace::layer(0));
                let dz0 = |s: usize| shards[s].ws.dz(0);
                part.backward_update((rows, sr, nshards), dz0, w, slots, optimizer, decay);
                if let Some((next, prefetch_after)) = &then {
                    let w = MatRef::from_slice(w, w.len() / n, n);
                    part.forward_with(*next, x_scale, w, prefetch_after);
                }
                while run_piece() {}
            };
            if let [pa, pb] = &mut split.parts[..] {
                let (wa, wb) = first.w.as_mut_slice().split_at_mut(part_len);
                let (sa, sb) = w_slots.split_at(part_len);
                // this thread's bookkeeping as soon as its part is done
                let report = || between(loss, correct);
                // The last part on this thread, the first on the other. In
                // MNIST the last (the images' bottom halves) holds more ink,
                // so more work, and with it here the step was 1-2% faster
                // (docs/PERFORMANCE.md, "A Zen 5, an eleventh session").
                // Either way, the same bits.
                join_spinning_then(|| go(((pb, wb), sb)), || go(((pa, wa), sa)), report);
            } else {
                split
                    .parts
                    .par_iter_mut()
                    .zip(first.w.as_mut_slice().par_chunks_mut(part_len))
                    .zip(w_slots.par_chunks(part_len))
                    .with_max_len(1)
                    .for_each(go);
                between(loss, correct);
            }
        }
        // Every group of pieces was claimed, and run, by a part (each claims
        // until none is left, and a split has two parts or more): not checked
        // here, as that would read the counter the parts wrote last.
        (loss, correct)
    }

    /// Adds the shards' gradients in shard order, updates every parameter
    /// tensor, and returns the summed loss and number correct.
    fn finish_step(&mut self, net: &mut Network, nshards: usize) -> (f64, usize) {
        let _t = scope(Kind::Optimizer, 0).bytes((16 + 4 * nshards) * net.num_params());
        let shards = &self.shards[..nshards];
        self.state.begin_step();
        let (optimizer, state, l2) = (&self.optimizer, &mut self.state, net.weight_decay());
        for_each_tensor(net.layers_mut(), (0, 0), l2, |(l, k, tensor), params, decay| {
            state.update_summed_decayed(optimizer, tensor, params, decay, nshards, |s| {
                shards[s].ws.grad(l, k)
            });
        });
        shards
            .iter()
            .fold((0.0, 0), |(l, c), s| (l + s.loss, c + s.correct))
    }
}

/// Calls `update((l, k, tensor), params, decay)` for each trainable tensor
/// of `layers` in order: layer `l` (numbered from `l0`), its tensor `k`,
/// numbered `tensor` across the network (from `t0`), with its weight
/// decay (`l2` or 0).
fn for_each_tensor(
    layers: &mut [Layer],
    (l0, t0): (usize, usize),
    l2: f32,
    mut update: impl FnMut((usize, usize, usize), &mut [f32], f32),
) {
    let mut tensor = t0;
    for (l, layer) in (l0..).zip(layers.iter_mut()) {
        for k in 0..layer.num_tensors() {
            let decay = if layer.decays(k) { l2 } else { 0.0 };
            update((l, k, tensor), layer.params_mut(k), decay);
            tensor += 1;
        }
    }
}

/// Piece `p` of `pieces` of `rows` (in order; the pieces cover them all,
/// and some are empty when there are more pieces than rows).
fn piece_of(rows: &[usize], (p, pieces): (usize, usize)) -> &[usize] {
    let at = |q: usize| rows.len() * q / pieces.max(1);
    &rows[at(p.min(pieces))..at((p + 1).min(pieces))]
}

/// Brings columns `k0..k1` of the rows `rows` of `features` into this core's
/// L2 (a hint: nothing is read; rows out of range are skipped). Timed
/// as [`Kind::Prefetch`]: the requests stall the thread while the memory
/// system is busy with them.
fn prefetch_columns<T: Element>(features: MatRef<T>, rows: &[usize], (k0, k1): (usize, usize)) {
    if rows.is_empty() || k1 <= k0 {
        return;
    }
    let (data, stride) = (features.data(), features.row_stride());
    let mut t = trace::kernel(Kind::Prefetch);
    let mut lines = 0;
    for &i in rows.iter().filter(|&&i| i < features.rows()) {
        let row = &data[i * stride + k0..i * stride + k1];
        crate::simd::prefetch_l2(row);
        lines += crate::simd::lines_touched(row);
    }
    t.set_bytes(64 * lines);
}

/// Runs `run(s, shard)` for the first `nshards` shards, one rayon task
/// each; two through [`join_spinning`], where the shard done first waits
/// for the other awake (as do the two parts of a split first layer).
fn run_shards(shards: &mut [Shard], nshards: usize, run: impl Fn((usize, &mut Shard)) + Sync + Send) {
    let _fork_join = scope(Kind::ParallelShards, 0);
    match &mut shards[..nshards] {
        [a, b] => join_spinning(|| run((0, a)), || run((1, b))),
        shards => shards.par_iter_mut().enumerate().with_max_len(1).for_each(run),
    }
}

/// Whether each shard converts its examples to `f32` once (see
/// [`Shard::pass`]): when the first layer is dense (a convolution reads its
/// pixels through its own kernels). Measured on Zen 5 (AVX-512, 16 lanes),
/// one 64-row shard of 784-16-16-10 on one thread: `x·W` 9.5 µs and `xᵀ·dz`
/// 9.2 µs from the `u8` rows (in cache) against 7.5 and 7.3 µs from `f32`.
/// A large network's one shard (more than [`SHARD_MAX_PARAMS`]) converts
/// too: its first-layer products then read the `f32` rows in place instead
/// of converting them while packing, in every task of a threaded product.
/// Measured on the same machine, `train --json` (epochs after the first,
/// with validation) of the builds before and after, alternated: 784-512-512-10
/// on 1 thread paired ratio 0.917 and 0.957 (faster in 6 of 6 and 8 of 8),
/// 784-1024-1024-10 on 2 threads 0.968 (6 of 8), 784-2048-10 on 1 thread
/// 0.974 (4 of 6); the models byte-identical.
fn converts_input(net: &Network) -> bool {
    matches!(net.layers().first(), Some(Layer::Dense(_)))
}

/// Multiply-adds of one example's forward pass through `net`'s GEMMs
/// (`Σ inputs_l · outputs_l`).
fn gemm_macs_per_example(net: &Network) -> usize {
    net.layers().iter().map(Layer::forward_macs).sum()
}

/// An error if any label is not a class of `net` (at or above its outputs).
fn check_labels(net: &Network, labels: impl Iterator<Item = u8>) -> Result<()> {
    let classes = net.outputs();
    let mut labels = labels;
    match labels.find(|&y| y as usize >= classes) {
        Some(bad) => Err(Error::Invalid(format!(
            "label {bad} is out of range for a network with {classes} outputs (labels must be 0..{classes}); give the network at least {} outputs",
            bad as usize + 1
        ))),
        None => Ok(()),
    }
}

/// Where an interrupted epoch stopped: the mini-batches done and the running sums.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartialEpoch {
    /// Mini-batches of the epoch already trained.
    pub step: usize,
    /// Summed loss, number correct and number of examples of those mini-batches.
    pub loss_sum: f64,
    /// Examples predicted right in those mini-batches.
    pub correct: usize,
    /// Examples in those mini-batches.
    pub seen: usize,
    /// Training time spent on them.
    pub seconds: f64,
}

/// Early-stopping bookkeeping: the best validation loss so far and its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Best validation loss so far (`+inf` before the first epoch).
    pub best_loss: f64,
    /// The epoch that reached it (0: none yet).
    pub best_epoch: usize,
    /// Epochs since it improved.
    pub wait: usize,
    /// The weights after `best_epoch`.
    pub best: Option<Network>,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping {
            best_loss: f64::INFINITY,
            best_epoch: 0,
            wait: 0,
            best: None,
        }
    }
}

/// How a call to [`Session::next_epoch`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// One more epoch is done; call again for the next.
    Epoch,
    /// The progress callback asked to stop: the session holds the position
    /// (mid-epoch or between epochs), ready to be checkpointed and resumed.
    Interrupted,
    /// All planned epochs are done.
    /// Every epoch asked for has run.
    Finished,
    /// Early stopping ended training and restored the weights of `best_epoch`.
    EarlyStopped {
        /// The epoch whose weights were restored (1-based).
        best_epoch: usize,
    },
}

/// A training run that can stop and continue bit for bit: the optimiser and
/// its state, the position (epochs done, and inside an interrupted epoch the
/// mini-batches done with their running sums), the history, the
/// early-stopping state and the shuffle generator.
///
/// The shuffle generator (`StdRng`) cannot be saved; it is re-created from
/// the seed and the completed epochs' shuffles are replayed (cheap), so a
/// resumed run shuffles exactly as the uninterrupted one.
pub struct Session {
    /// The optimiser, its state, and the shards' buffers.
    pub trainer: Trainer,
    /// Epochs completed.
    pub epochs_done: usize,
    /// The position inside an interrupted epoch, if one was interrupted.
    pub partial: Option<PartialEpoch>,
    /// One entry per completed epoch.
    pub history: Vec<EpochStats>,
    /// Mean loss of the run's first mini-batch: the reference for [`DIVERGENCE_FACTOR`].
    pub start_loss: Option<f64>,
    /// Early-stopping state (used when [`TrainConfig::early_stopping`] is set).
    pub early: EarlyStopping,
    /// Set once early stopping has ended the run: the restored epoch.
    pub stopped_early: Option<usize>,
    /// The examples' order, shuffled each epoch.
    shuffle: Shuffle,
    /// Whether this session has run a step (its first also makes the
    /// workspaces, see [`StepTimes::first`]).
    stepped: bool,
    /// The validation pass's workspaces, kept from one epoch to the next.
    evaluation: EvalBuffers,
}

impl Session {
    /// A fresh run of `net` on `train` (checked against the network) with `optimizer`.
    pub fn new(net: &Network, optimizer: Optimizer, train: &Dataset, cfg: &TrainConfig) -> Result<Session> {
        check_run(net, train, cfg)?;
        Session::for_examples(net, optimizer, train.len(), cfg)
    }

    /// A fresh run of `net` on a training set of `examples` examples (the
    /// data itself is checked when [`next_epoch`](Self::next_epoch) gets it).
    pub fn for_examples(
        net: &Network,
        optimizer: Optimizer,
        examples: usize,
        cfg: &TrainConfig,
    ) -> Result<Session> {
        if examples == 0 {
            return Err(Error::Invalid("the training set is empty".into()));
        }
        check_plan(cfg)?;
        let batch = cfg.batch_size.min(examples).max(1);
        Ok(Session {
            trainer: Trainer::new(net, optimizer, batch)?,
            epochs_done: 0,
            partial: None,
            history: Vec::new(),
            start_loss: None,
            early: EarlyStopping::default(),
            stopped_early: None,
            shuffle: Shuffle::new(examples, cfg.seed),
            stepped: false,
            evaluation: EvalBuffers::new(),
        })
    }

    /// The size of the training set this run is for.
    pub fn examples(&self) -> usize {
        self.shuffle.order().len()
    }

    /// Trains the next epoch (or the rest of an interrupted one), evaluating
    /// on `validation` at its end; reports progress through `on_progress`.
    ///
    /// Fails with [`Error::Diverged`] when the loss stops being finite or
    /// grows past [`DIVERGENCE_FACTOR`] times its start, with
    /// [`Error::HeldOutDiverged`] when the validation loss at the epoch's
    /// end does, and with [`Error::WeightsNotFinite`] when the epoch, or the
    /// steps run before an interruption, leave a weight NaN or infinite.
    pub fn next_epoch(
        &mut self,
        net: &mut Network,
        train: &Dataset,
        validation: Option<&Dataset>,
        cfg: &TrainConfig,
        on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Outcome> {
        if let Some(best_epoch) = self.stopped_early {
            return Ok(Outcome::EarlyStopped { best_epoch });
        }
        if self.epochs_done >= cfg.epochs {
            return Ok(Outcome::Finished);
        }
        check_run(net, train, cfg)?;
        if train.len() != self.examples() {
            return Err(Error::Invalid(format!(
                "this run trains on {} examples but was given {}; resume it with the same data",
                self.examples(),
                train.len()
            )));
        }
        if cfg.early_stopping.is_some() && validation.is_none() {
            return Err(Error::Invalid(
                "early stopping needs a validation set to watch; give one (e.g. --validation-split 0.1)"
                    .into(),
            ));
        }
        let epoch = self.epochs_done + 1;
        // The epoch's wall time includes its shuffle (as the profile's timers
        // do), unless the last epoch prepared it beside its validation pass.
        let start = Instant::now();
        // Takes the prepared order, or shuffles; after a resume, replays the
        // shuffles of the epochs before this one.
        self.shuffle.for_epoch(epoch, cfg.shuffle);
        let resumed = self.partial.take().unwrap_or_default();
        let batch = self.trainer.batch_size();
        let steps = self.examples().div_ceil(batch);
        // The steps, with the pool's other workers polling for the shards and
        // GEMM tasks instead of sleeping between them (see `awake`).
        self.trainer.forget_ahead();
        // Each step's wall time (see `step_times`); the session's first apart.
        let mut times = Vec::with_capacity(steps - resumed.step.min(steps));
        let mut first = None;
        let steps_run = with_workers_awake(|| -> Result<ControlFlow<Outcome, (f64, usize, bool)>> {
            let (mut loss, mut correct, mut seen, mut step) =
                (resumed.loss_sum, resumed.correct, resumed.seen, resumed.step);
            let mut stop = false;
            let chunk = |i: usize| self.shuffle.order().chunks(batch).nth(i).unwrap_or(&[]);
            for i in resumed.step..steps {
                let idx = chunk(i);
                let began = Instant::now();
                // The step's bookkeeping: the running sums, the divergence
                // check and the progress report, given the step's loss while
                // the step ends (see `Trainer::step_ahead`).
                let (mut diverged, mut flow, mut seconds) = (None, ControlFlow::Continue(()), 0.0);
                let mut report = |l: f64, c: usize| {
                    step += 1;
                    loss += l;
                    correct += c;
                    seen += idx.len();
                    let mean = loss / seen as f64;
                    let reference = *self.start_loss.get_or_insert(l / idx.len() as f64);
                    if !mean.is_finite() || mean > DIVERGENCE_FACTOR * reference.max(1.0) {
                        diverged = Some(mean as f32);
                        return;
                    }
                    seconds = resumed.seconds + start.elapsed().as_secs_f64();
                    flow = on_progress(Progress::Step {
                        epoch,
                        epochs: cfg.epochs,
                        step,
                        steps,
                        loss: mean,
                        accuracy: correct as f64 / seen as f64,
                        seconds,
                    });
                };
                // Nothing but the next step touches the network in between.
                let ahead = (chunk(i + 1), chunk(i + 2));
                self.trainer.step_ahead(net, train, idx, ahead, &mut report)?;
                let took = began.elapsed().as_secs_f64();
                if std::mem::replace(&mut self.stepped, true) {
                    times.push(took);
                } else {
                    first = Some(took);
                }
                if let Some(mean) = diverged {
                    return Err(Error::Diverged {
                        epoch,
                        step,
                        loss: mean,
                    });
                }
                if flow.is_break() {
                    stop = true;
                    if step < steps {
                        // what a checkpoint of this state holds must load
                        if let Some(layer) = net.non_finite_layer() {
                            return Err(Error::WeightsNotFinite { epoch, step, layer });
                        }
                        self.partial = Some(PartialEpoch {
                            step,
                            loss_sum: loss,
                            correct,
                            seen,
                            seconds,
                        });
                        return Ok(ControlFlow::Break(Outcome::Interrupted));
                    }
                }
            }
            Ok(ControlFlow::Continue((loss, correct, stop)))
        });
        // Whatever ran ahead was for this loop's next step only.
        self.trainer.forget_ahead();
        let steps_run = steps_run?;
        let (loss, correct, mut stop) = match steps_run {
            ControlFlow::Break(outcome) => return Ok(outcome),
            ControlFlow::Continue(run) => run,
        };
        let train_seconds = resumed.seconds + start.elapsed().as_secs_f64();
        // A step's loss is computed before its update: the last update of an
        // epoch can overflow unseen. An epoch ends with weights that can be
        // evaluated, saved and checkpointed, or with this error.
        if let Some(layer) = net.non_finite_layer() {
            return Err(Error::WeightsNotFinite {
                epoch,
                step: steps,
                layer,
            });
        }
        // the profiler's own work, in neither the steps' time nor validation's
        crate::trace::settle_between_epochs();
        let vstart = Instant::now();
        let validation = {
            // The validation pass's GEMM work, for the profile's compute limit.
            let flops = validation.map_or(0, |v| 2 * v.len() * gemm_macs_per_example(net));
            let _t = scope(Kind::Evaluation, 0).flops(flops);
            let (net, kept, shuffle) = (&*net, &mut self.evaluation, &mut self.shuffle);
            let mut evaluate = || validation.map(|v| net.evaluate_reusing(v, kept)).transpose();
            if cfg.shuffle && epoch < cfg.epochs && validation.is_some() {
                // the next epoch's shuffle beside the pass (see nn::shuffle)
                rayon::join(evaluate, || shuffle.prepare()).0?
            } else {
                evaluate()?
            }
        };
        // The epoch's last updates can also leave weights finite but so
        // large that the outputs overflow; the validation loss shows it, by
        // the rule the steps' losses follow.
        if let (Some(v), Some(reference)) = (&validation, self.start_loss) {
            if !v.loss.is_finite() || v.loss > DIVERGENCE_FACTOR * reference.max(1.0) {
                return Err(Error::HeldOutDiverged {
                    epoch,
                    set: "validation",
                    loss: v.loss as f32,
                });
            }
        }
        let stats = EpochStats {
            epoch,
            loss: loss / train.len() as f64,
            accuracy: correct as f64 / train.len() as f64,
            validation,
            train_seconds,
            validation_seconds: vstart.elapsed().as_secs_f64(),
            steps: StepTimes::summarize(&mut times, first),
        };
        self.epochs_done = epoch;
        if let (Some(_), Some(v)) = (cfg.early_stopping, stats.validation) {
            let early = &mut self.early;
            if v.loss < early.best_loss {
                early.best_loss = v.loss;
                early.best_epoch = epoch;
                early.wait = 0;
                early.best = Some(net.clone());
            } else {
                early.wait += 1;
            }
        }
        stop |= on_progress(Progress::Epoch {
            epochs: cfg.epochs,
            stats: &stats,
        })
        .is_break();
        self.history.push(stats);
        if let Some(patience) = cfg.early_stopping {
            if self.early.wait >= patience {
                if let Some(best) = &self.early.best {
                    *net = best.clone();
                }
                self.stopped_early = Some(self.early.best_epoch);
                return Ok(Outcome::EarlyStopped {
                    best_epoch: self.early.best_epoch,
                });
            }
        }
        Ok(if self.epochs_done >= cfg.epochs {
            Outcome::Finished
        } else if stop {
            Outcome::Interrupted
        } else {
            Outcome::Epoch
        })
    }
}

/// The checks every run starts with: data present and shaped for `net`, a sane plan.
fn check_run(net: &Network, train: &Dataset, cfg: &TrainConfig) -> Result<()> {
    if train.is_empty() {
        return Err(Error::Invalid("the training set is empty".into()));
    }
    if train.features() != net.inputs() {
        return Err(Error::Invalid(format!(
            "the training images have {} pixels but the network expects {} inputs",
            train.features(),
            net.inputs()
        )));
    }
    check_plan(cfg)?;
    check_labels(net, train.labels().iter().copied())
}

/// An error if `cfg` asks for too many epochs or an empty batch.
fn check_plan(cfg: &TrainConfig) -> Result<()> {
    if cfg.epochs > MAX_EPOCHS {
        return Err(Error::Invalid(format!(
            "{} epochs is more than the {MAX_EPOCHS} a run may plan; ask for fewer",
            cfg.epochs
        )));
    }
    if cfg.batch_size == 0 {
        return Err(Error::Invalid("the batch size must be at least 1".into()));
    }
    Ok(())
}

/// Trains `net` on `train` for `cfg.epochs` epochs, evaluating on
/// `validation` after each; reports progress through `on_progress`, which
/// may return [`ControlFlow::Break`] to stop at the end of the current
/// mini-batch (the history then holds the epochs completed). For a run that
/// can be checkpointed and resumed, use [`Session`].
///
/// Fails with [`Error::Diverged`] as soon as the loss stops being finite or
/// grows past [`DIVERGENCE_FACTOR`] times its start, with
/// [`Error::HeldOutDiverged`] when an epoch's validation loss does, and
/// with [`Error::WeightsNotFinite`] when an epoch leaves a weight NaN or
/// infinite.
pub fn fit(
    net: &mut Network,
    optimizer: Optimizer,
    train: &Dataset,
    validation: Option<&Dataset>,
    cfg: &TrainConfig,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Vec<EpochStats>> {
    let mut session = Session::new(net, optimizer, train, cfg)?;
    while session.next_epoch(net, train, validation, cfg, on_progress)? == Outcome::Epoch {}
    Ok(session.history)
}

#[cfg(test)]
mod tests {
    /// The pieces of a list of rows cover it once, in order, for more
    /// pieces than rows, one piece, and as many as rows.
    #[test]
    fn pieces_cover_the_rows_once_in_order() {
        for (len, pieces) in [(128, 32), (10, 3), (3, 10), (7, 1), (5, 5), (0, 4)] {
            let rows: Vec<usize> = (100..100 + len).collect();
            let joined: Vec<usize> = (0..pieces)
                .flat_map(|p| super::piece_of(&rows, (p, pieces)).to_vec())
                .collect();
            assert_eq!(joined, rows, "{len} rows in {pieces} pieces");
        }
        assert!(super::piece_of(&[1, 2, 3], (5, 4)).is_empty());
    }

    use super::*;
    use crate::nn::Activation;

    /// What [`Trainer::step_ahead`] lets a step run ahead is used only by a
    /// step on exactly those examples: a step on others computes its own
    /// first phase, and the weights are those of steps that never ran ahead.
    #[test]
    fn a_step_on_other_examples_than_looked_ahead_computes_its_own_first_phase() {
        let n = 300;
        let pixels: Vec<u8> = (0..n * 784)
            .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
        let d = Dataset::new(pixels, labels, 1, 784).unwrap();
        let net0 = Network::mlp(784, &[16], 10, Activation::Relu, 1).unwrap();
        let (a, b, c): (Vec<usize>, Vec<usize>, Vec<usize>) =
            ((0..128).collect(), (100..228).collect(), (150..278).collect());
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            let opt = Optimizer::rmsprop(0.001);
            let mut plain = net0.clone();
            let mut trainer = Trainer::new(&plain, opt, 128).unwrap();
            for batch in [&a, &b, &c] {
                trainer.step_indices(&mut plain, &d, batch).unwrap();
            }
            let mut ahead = net0.clone();
            let mut trainer = Trainer::new(&ahead, opt, 128).unwrap();
            assert_eq!(trainer.first_layer_parts(), 2);
            trainer
                .step_ahead(&mut ahead, &d, &a, (&c, &[]), &mut |_, _| {})
                .unwrap();
            assert!(
                trainer.ahead.valid,
                "the step ran the next one's first phase ahead"
            );
            trainer.step_indices(&mut ahead, &d, &b).unwrap(); // not c: its own first phase
            assert!(!trainer.ahead.valid);
            trainer.step_indices(&mut ahead, &d, &c).unwrap();
            assert!(plain == ahead, "the weights differ");
        });
    }

    /// [`Trainer::step_ahead`]'s `between` gets the step's loss and number
    /// correct once, on the calling thread, whether the step splits its
    /// first layer on two threads (with the workers awake, where it runs
    /// beside the other thread's share, or not), runs on one, or does not
    /// split at all (20 inputs: one depth block).
    #[test]
    fn between_gets_each_steps_loss_once_on_the_calling_thread() {
        let n = 256;
        for inputs in [784, 20] {
            let pixels: Vec<u8> = (0..n * inputs)
                .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect();
            let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
            let d = Dataset::new(pixels, labels, 1, inputs).unwrap();
            let (a, b, c): (Vec<usize>, Vec<usize>, Vec<usize>) =
                ((0..128).collect(), (128..256).collect(), (50..178).collect());
            for (threads, awake) in [(2, true), (2, false), (1, false)] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let run = || {
                        let mut net = Network::mlp(inputs, &[16, 16], 10, Activation::Relu, 1).unwrap();
                        let mut trainer = Trainer::new(&net, Optimizer::rmsprop(0.001), 128).unwrap();
                        let here = std::thread::current().id();
                        for (batch, ahead) in [(&a, (&b, &c)), (&b, (&c, &a)), (&c, (&a, &b))] {
                            let mut got = Vec::new();
                            let mut between =
                                |l: f64, c: usize| got.push((l, c, std::thread::current().id()));
                            let stepped = trainer
                                .step_ahead(&mut net, &d, batch, (ahead.0, ahead.1), &mut between)
                                .unwrap();
                            let case = format!("{inputs} inputs, {threads} thread(s), awake {awake}");
                            assert_eq!(got, vec![(stepped.0, stepped.1, here)], "{case}");
                            assert!(stepped.0 > 0.0, "{case}: a loss was summed");
                        }
                        assert_eq!(trainer.first_layer_parts() > 0, inputs == 784);
                    };
                    if awake {
                        crate::nn::awake::with_workers_awake(run);
                    } else {
                        run();
                    }
                });
            }
        }
    }
}
