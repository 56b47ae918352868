//! The training loop: shuffle, batch, forward, loss, backward, update.
//!
//! ## Threading and determinism
//! A mini-batch is cut into shards of [`SHARD_ROWS`] examples (a fixed
//! number, whatever the thread count). Shards run forward and backward in
//! parallel, each into its own [`Workspace`]; their weight gradients are then
//! added in shard order. Networks whose gradients are large
//! ([`SHARD_MAX_PARAMS`]) use one shard and let each GEMM split its output
//! tiles across the threads instead. Either way no float is ever summed in an
//! order that depends on the thread count, so a seed fixes the weights bit
//! for bit on 1, 2 or 64 threads.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gemm::Parallelism;
use crate::matrix::{Element, MatRef};
use crate::nn::network::{Evaluation, Network, Workspace};
use crate::nn::optim::{Optimizer, OptimizerState};
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

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Seeds the per-epoch shuffle.
    pub seed: u64,
    /// Shuffle the training set each epoch (Keras' default).
    pub shuffle: bool,
}

impl Default for TrainConfig {
    /// The workshop's settings: 4 epochs of batch 128, seed 1.
    fn default() -> Self {
        TrainConfig {
            epochs: 4,
            batch_size: 128,
            seed: 1,
            shuffle: true,
        }
    }
}

/// What one epoch achieved.
#[derive(Clone, Debug, PartialEq)]
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
}

/// Progress reported to the caller during [`fit`].
#[derive(Debug)]
pub enum Progress<'a> {
    /// After each mini-batch: running mean loss and accuracy of this epoch.
    Step {
        epoch: usize,
        epochs: usize,
        step: usize,
        steps: usize,
        loss: f64,
        accuracy: f64,
        seconds: f64,
    },
    /// After each epoch.
    Epoch { epochs: usize, stats: &'a EpochStats },
}

/// One shard of a mini-batch: its rows' pixels and labels, gathered from the
/// data set, and the buffers of its forward and backward pass.
struct Shard {
    ws: Workspace,
    pixels: Vec<u8>,
    labels: Vec<u8>,
    /// Summed loss and number correct of the last pass.
    loss: f64,
    correct: usize,
}

impl Shard {
    /// Forward, loss and backward over `x` (this shard's rows, the first
    /// being row `row0` of the mini-batch; dropout masks for step `step`).
    #[allow(clippy::too_many_arguments)]
    fn pass<T: Element>(
        &mut self,
        net: &Network,
        x: MatRef<T>,
        x_scale: f32,
        grad_scale: f32,
        (step, row0): (u64, usize),
        par: Parallelism,
    ) {
        let _training = trace::training();
        self.ws.forward_train(net, x, x_scale, step, row0, par);
        let rows = x.rows();
        (self.loss, self.correct) = self.ws.loss(&self.labels[..rows], grad_scale);
        self.ws.backward(net, x, x_scale, par);
    }
}

/// Everything a training step needs besides the network: the optimiser and
/// its state, and one workspace per shard, allocated once.
pub struct Trainer {
    pub optimizer: Optimizer,
    pub state: OptimizerState,
    batch_size: usize,
    shard_rows: usize,
    shards: Vec<Shard>,
}

impl Trainer {
    /// A trainer for `net` with mini-batches of up to `batch_size` examples.
    pub fn new(net: &Network, optimizer: Optimizer, batch_size: usize) -> Result<Trainer> {
        if batch_size == 0 {
            return Err(Error::Invalid("the batch size must be at least 1".into()));
        }
        let shard_rows = Self::shard_rows_for(net, batch_size);
        let shards = (0..batch_size.div_ceil(shard_rows))
            .map(|_| Shard {
                ws: Workspace::new(net, shard_rows),
                pixels: vec![0; shard_rows * net.inputs()],
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
        })
    }

    /// Rows per shard: [`SHARD_ROWS`] for small networks, the whole batch for large ones.
    pub fn shard_rows_for(net: &Network, batch_size: usize) -> usize {
        if net.num_params() > SHARD_MAX_PARAMS {
            batch_size
        } else {
            SHARD_ROWS.min(batch_size)
        }
    }

    /// The shards a batch of `rows` uses, and whether each GEMM should thread itself.
    fn plan(&self, rows: usize) -> (usize, Parallelism) {
        assert!(
            rows > 0 && rows <= self.batch_size,
            "a batch of {rows} rows (capacity {})",
            self.batch_size
        );
        let nshards = rows.div_ceil(self.shard_rows);
        (
            nshards,
            if nshards == 1 {
                Parallelism::Rayon
            } else {
                Parallelism::Sequential
            },
        )
    }

    /// One training step on `x: (rows, inputs)` scaled by `x_scale`, with
    /// `labels: (rows)`. Returns the summed loss and the number of rows
    /// classified correctly (before the update).
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
    ) -> (f64, usize) {
        let rows = x.rows();
        assert_eq!(labels.len(), rows, "one label per row");
        let (nshards, par) = self.plan(rows);
        let sr = self.shard_rows;
        let shared: &Network = net;
        let grad_scale = 1.0 / rows as f32;
        let step = self.state.steps;
        let run = |(s, shard): (usize, &mut Shard)| {
            let (r0, r1) = (s * sr, ((s + 1) * sr).min(rows));
            shard.labels[..r1 - r0].copy_from_slice(&labels[r0..r1]);
            shard.pass(shared, x.rows_range(r0, r1), x_scale, grad_scale, (step, r0), par);
        };
        self.run_shards(nshards, run);
        self.finish_step(net, nshards)
    }

    /// One training step on the examples `indices` of `data` (raw pixels, scaled
    /// by the network's [`Network::input_scale`]). Each shard gathers its own rows, in parallel, straight into
    /// its buffer: the batch is never copied twice.
    pub fn step_indices(&mut self, net: &mut Network, data: &Dataset, indices: &[usize]) -> (f64, usize) {
        let rows = indices.len();
        let (nshards, par) = self.plan(rows);
        let (sr, features) = (self.shard_rows, data.features());
        let shared: &Network = net;
        let x_scale = net.input_scale();
        let grad_scale = 1.0 / rows as f32;
        let step = self.state.steps;
        let run = |(s, shard): (usize, &mut Shard)| {
            let idx = &indices[s * sr..((s + 1) * sr).min(rows)];
            {
                let _t = scope(Kind::Batching, 0).bytes(2 * idx.len() * features);
                const AHEAD: usize = 8;
                idx.iter()
                    .take(AHEAD)
                    .for_each(|&i| crate::data::prefetch(data.image(i)));
                for (r, &i) in idx.iter().enumerate() {
                    if let Some(&next) = idx.get(r + AHEAD) {
                        crate::data::prefetch(data.image(next));
                    }
                    shard.pixels[r * features..(r + 1) * features].copy_from_slice(data.image(i));
                    shard.labels[r] = data.labels()[i];
                }
            }
            let pixels = std::mem::take(&mut shard.pixels);
            shard.pass(
                shared,
                MatRef::from_slice(&pixels[..idx.len() * features], idx.len(), features),
                x_scale,
                grad_scale,
                (step, s * sr),
                par,
            );
            shard.pixels = pixels;
        };
        self.run_shards(nshards, run);
        self.finish_step(net, nshards)
    }

    /// Runs `run(s, shard)` for the first `nshards` shards, one rayon task each.
    fn run_shards(&mut self, nshards: usize, run: impl Fn((usize, &mut Shard)) + Sync + Send) {
        let _fork_join = scope(Kind::ParallelShards, 0);
        self.shards[..nshards]
            .par_iter_mut()
            .enumerate()
            .with_max_len(1)
            .for_each(run);
    }

    /// Adds the shards' gradients in shard order, updates the parameters, and
    /// returns the summed loss and number correct.
    fn finish_step(&mut self, net: &mut Network, nshards: usize) -> (f64, usize) {
        // Update every parameter tensor (W0, b0, W1, b1, ...) from the sum of
        // the shards' gradients, added in shard order as it is consumed.
        let _t = scope(Kind::Optimizer, 0).bytes((16 + 4 * nshards) * net.num_params());
        let shards = &self.shards[..nshards];
        self.state.begin_step();
        let l2 = net.weight_decay();
        let mut tensor = 0;
        for (l, layer) in net.layers_mut().iter_mut().enumerate() {
            for k in 0..layer.num_tensors() {
                let decay = if layer.decays(k) { l2 } else { 0.0 };
                let params = layer.params_mut(k);
                self.state
                    .update_summed_decayed(&self.optimizer, tensor, params, decay, nshards, |s| {
                        shards[s].ws.grad(l, k)
                    });
                tensor += 1;
            }
        }
        shards
            .iter()
            .fold((0.0, 0), |(l, c), s| (l + s.loss, c + s.correct))
    }

    /// One epoch over `data` in the order `order` (indices of examples).
    /// Calls `on_step(step, steps, loss_sum, correct, seen)` after each batch.
    pub fn epoch(
        &mut self,
        net: &mut Network,
        data: &Dataset,
        order: &[usize],
        mut on_step: impl FnMut(usize, usize, f64, usize, usize) -> Result<()>,
    ) -> Result<(f64, usize)> {
        let steps = order.len().div_ceil(self.batch_size);
        let (mut loss, mut correct, mut seen) = (0.0, 0, 0);
        for (step, idx) in order.chunks(self.batch_size).enumerate() {
            let (l, c) = self.step_indices(net, data, idx);
            loss += l;
            correct += c;
            seen += idx.len();
            on_step(step + 1, steps, loss, correct, seen)?;
        }
        Ok((loss, correct))
    }
}

/// Trains `net` on `train` for `cfg.epochs` epochs, evaluating on
/// `validation` after each; reports progress through `on_progress`.
///
/// Fails with [`Error::Diverged`] as soon as the loss stops being finite.
pub fn fit(
    net: &mut Network,
    optimizer: Optimizer,
    train: &Dataset,
    validation: Option<&Dataset>,
    cfg: &TrainConfig,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Vec<EpochStats>> {
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
    let batch = cfg.batch_size.min(train.len()).max(1);
    let mut trainer = Trainer::new(net, optimizer, batch)?;
    // A generator for the shuffles only, so that changing the epochs does not change the initial weights.
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x5eed_5eed_5eed_5eed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut history = Vec::with_capacity(cfg.epochs);
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        if cfg.shuffle {
            let _t = scope(Kind::Shuffle, 0);
            order.shuffle(&mut rng);
        }
        let (loss, correct) = trainer.epoch(net, train, &order, |step, steps, loss, correct, seen| {
            let mean = loss / seen as f64;
            if !mean.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step,
                    loss: mean as f32,
                });
            }
            on_progress(Progress::Step {
                epoch,
                epochs: cfg.epochs,
                step,
                steps,
                loss: mean,
                accuracy: correct as f64 / seen as f64,
                seconds: start.elapsed().as_secs_f64(),
            });
            Ok(())
        })?;
        let train_seconds = start.elapsed().as_secs_f64();
        let vstart = Instant::now();
        let validation = {
            let _t = scope(Kind::Evaluation, 0);
            validation.map(|v| net.evaluate(v)).transpose()?
        };
        let stats = EpochStats {
            epoch,
            loss: loss / train.len() as f64,
            accuracy: correct as f64 / train.len() as f64,
            validation,
            train_seconds,
            validation_seconds: vstart.elapsed().as_secs_f64(),
        };
        on_progress(Progress::Epoch {
            epochs: cfg.epochs,
            stats: &stats,
        });
        history.push(stats);
    }
    Ok(history)
}
