//! Training with Keras-like defaults: the [`Fit`] builder, and `with_*`
//! setters for [`TrainConfig`] (which is `#[non_exhaustive]`, so code outside
//! the crate builds one from [`TrainConfig::default`]).
//!
//! `Fit::new(&mut net, &train).epochs(4).validation(&test).run()` is
//! [`fit`](super::train::fit()) with every argument it does not name at its
//! default; [`Session`](super::train::Session) is the form that checkpoints
//! and resumes.

use std::ops::ControlFlow;

use crate::data::Dataset;
use crate::error::Result;
use crate::nn::network::Network;
use crate::nn::optim::Optimizer;
use crate::nn::train::{fit, EpochStats, Progress, TrainConfig};

impl TrainConfig {
    /// Epochs in total (default 4; at most [`MAX_EPOCHS`](super::train::MAX_EPOCHS)).
    pub fn with_epochs(mut self, epochs: usize) -> TrainConfig {
        self.epochs = epochs;
        self
    }
    /// Examples per mini-batch (default 128).
    pub fn with_batch_size(mut self, batch_size: usize) -> TrainConfig {
        self.batch_size = batch_size;
        self
    }
    /// The seed of the per-epoch shuffle (default 1).
    pub fn with_seed(mut self, seed: u64) -> TrainConfig {
        self.seed = seed;
        self
    }
    /// Whether to shuffle the training set each epoch (default: yes).
    pub fn with_shuffle(mut self, shuffle: bool) -> TrainConfig {
        self.shuffle = shuffle;
        self
    }
    /// Stop once the validation loss has not improved for `patience` epochs
    /// and restore the best weights (default: off; needs a validation set).
    pub fn with_early_stopping(mut self, patience: usize) -> TrainConfig {
        self.early_stopping = Some(patience);
        self
    }
}

/// The default optimiser of [`Fit`]: RMSprop with learning rate 0.001, as
/// Keras' `compile()` and `simdnet train` default to.
pub fn default_optimizer() -> Optimizer {
    Optimizer::rmsprop(0.001)
}

/// A progress callback, as [`fit`] takes it.
type OnProgress<'a> = Box<dyn FnMut(Progress) -> ControlFlow<()> + 'a>;

/// A training run to set up and [`run`](Fit::run): the network and the
/// training set are required; everything else has a default
/// ([`TrainConfig::default`]: 4 epochs of batches of 128, shuffled with seed
/// 1; [`default_optimizer`]; no validation set; no callback).
///
/// ```
/// use simdnet::data::Dataset;
/// use simdnet::nn::{Activation, Fit, Network, Optimizer};
/// // 200 points in the plane: class 1 above the line y = x, class 0 below.
/// let (mut values, mut labels) = (Vec::new(), Vec::new());
/// for i in 0..200 {
///     let (x, y) = ((i % 20) as f32 / 10.0 - 1.0, (i / 20) as f32 / 5.0 - 1.0);
///     values.extend([x, y]);
///     labels.push((y > x) as u8);
/// }
/// let train = Dataset::from_values(values, labels, 2)?;
/// let mut net = Network::mlp(2, &[16], 2, Activation::Tanh, 1)?;
/// let history = Fit::new(&mut net, &train)
///     .epochs(30)
///     .batch(20)
///     .optimizer(Optimizer::adam(0.01))
///     .run()?;
/// assert_eq!(history.len(), 30);
/// assert!(net.evaluate(&train)?.accuracy > 0.9);
/// # Ok::<(), simdnet::Error>(())
/// ```
pub struct Fit<'a> {
    net: &'a mut Network,
    train: &'a Dataset,
    validation: Option<&'a Dataset>,
    optimizer: Optimizer,
    cfg: TrainConfig,
    on_progress: Option<OnProgress<'a>>,
}

impl<'a> Fit<'a> {
    /// Trains `net` on `train`, with every setting at its default.
    pub fn new(net: &'a mut Network, train: &'a Dataset) -> Fit<'a> {
        Fit {
            net,
            train,
            validation: None,
            optimizer: default_optimizer(),
            cfg: TrainConfig::default(),
            on_progress: None,
        }
    }
    /// Epochs in total (default 4).
    pub fn epochs(mut self, epochs: usize) -> Fit<'a> {
        self.cfg.epochs = epochs;
        self
    }
    /// Examples per mini-batch (default 128).
    pub fn batch(mut self, batch_size: usize) -> Fit<'a> {
        self.cfg.batch_size = batch_size;
        self
    }
    /// The seed of the per-epoch shuffle (default 1; the weights' seed is the network's).
    pub fn seed(mut self, seed: u64) -> Fit<'a> {
        self.cfg.seed = seed;
        self
    }
    /// Whether to shuffle the training set each epoch (default: yes).
    pub fn shuffle(mut self, shuffle: bool) -> Fit<'a> {
        self.cfg.shuffle = shuffle;
        self
    }
    /// The optimiser (default: [`default_optimizer`], RMSprop at 0.001).
    pub fn optimizer(mut self, optimizer: Optimizer) -> Fit<'a> {
        self.optimizer = optimizer;
        self
    }
    /// A validation set, evaluated after each epoch (default: none).
    pub fn validation(mut self, validation: &'a Dataset) -> Fit<'a> {
        self.validation = Some(validation);
        self
    }
    /// Stop once the validation loss has not improved for `patience` epochs,
    /// restoring the best weights (Keras' `EarlyStopping(patience=..,
    /// restore_best_weights=True)`; needs [`validation`](Self::validation)).
    pub fn early_stopping(mut self, patience: usize) -> Fit<'a> {
        self.cfg.early_stopping = Some(patience);
        self
    }
    /// Every setting of a [`TrainConfig`] at once.
    pub fn config(mut self, cfg: TrainConfig) -> Fit<'a> {
        self.cfg = cfg;
        self
    }
    /// Calls `on_progress` after every mini-batch and every epoch; returning
    /// [`ControlFlow::Break`] stops training at the end of the current
    /// mini-batch (the history then holds the epochs completed).
    pub fn on_progress(mut self, on_progress: impl FnMut(Progress) -> ControlFlow<()> + 'a) -> Fit<'a> {
        self.on_progress = Some(Box::new(on_progress));
        self
    }
    /// Calls `on_epoch` with each epoch's statistics as it ends (replaces any
    /// [`on_progress`](Self::on_progress) callback).
    pub fn on_epoch(self, mut on_epoch: impl FnMut(&EpochStats) + 'a) -> Fit<'a> {
        self.on_progress(move |p| {
            if let Progress::Epoch { stats, .. } = p {
                on_epoch(stats);
            }
            ControlFlow::Continue(())
        })
    }
    /// Trains: one [`EpochStats`] per epoch completed. Fails, with a message
    /// naming the fix, if the data does not fit the network (width, labels),
    /// a setting is out of range, or the loss diverges.
    ///
    /// Runs on the current rayon pool: called from a thread of no pool,
    /// rayon's global one, with the calling thread computing as one of its
    /// workers (see [`crate::nn::awake`]); inside `pool.install(..)`, that
    /// pool's threads. The result is the same bits either way.
    pub fn run(self) -> Result<Vec<EpochStats>> {
        crate::simd::warn_once_if_not_native();
        let mut on_progress = self
            .on_progress
            .unwrap_or_else(|| Box::new(|_| ControlFlow::Continue(())));
        fit(
            self.net,
            self.optimizer,
            self.train,
            self.validation,
            &self.cfg,
            &mut *on_progress,
        )
    }
}

impl EpochStats {
    /// The statistics of epoch `epoch` (1-based) with its training `loss` and
    /// `accuracy`, no validation and no time (set the public fields for more).
    pub fn new(epoch: usize, loss: f64, accuracy: f64) -> EpochStats {
        EpochStats {
            epoch,
            loss,
            accuracy,
            validation: None,
            train_seconds: 0.0,
            validation_seconds: 0.0,
            steps: None,
        }
    }
}
