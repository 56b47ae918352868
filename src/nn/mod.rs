//! The engine's network: layers as forward/backward pairs, the loss,
//! optimisers, the network and its training loop, and the model file.
//!
//! Read in this order: [`dense`] (one layer's forward and backward),
//! [`layer`] (what every kind of layer provides), [`loss`], [`network`] (the
//! forward, loss and backward loops over the layers), [`optim`], [`train`]
//! (shards, threads and epochs; [`split`]: the first layer cut along its
//! inputs across threads), then [`init`] and [`model_file`]; [`spec`]
//! says a network in one line (`train --arch`, the presets, the summary).
//! [`crate::teach`] has the same steps with the same names in plain `f64`.

pub mod awake;
pub mod checkpoint;
pub mod confusion;
pub mod conv;
pub mod dense;
pub mod fit;
pub(crate) mod fused;
pub mod init;
pub mod layer;
pub mod loss;
pub mod memory;
pub mod model_file;
pub mod network;
pub mod optim;
pub(crate) mod per_thread;
pub mod pieces;
pub mod pool;
pub mod predict;
pub(crate) mod shuffle;
pub mod spec;
pub mod split;
pub mod step_times;
pub mod train;

pub use crate::activation::Activation;
pub use crate::matrix::argmax;
pub use conv::Conv2d;
pub use dense::Dense;
pub use fit::Fit;
pub use layer::Layer;
pub use network::{Evaluation, Network, Workspace, PIXEL_SCALE};
pub use optim::{Optimizer, OptimizerKind, OptimizerState};
pub use per_thread::EvalBuffers;
pub use pool::{Flatten, MaxPool2d};
pub use spec::Arch;
pub use step_times::StepTimes;
pub use train::{
    fit, EarlyStopping, EpochStats, Outcome, PartialEpoch, Progress, Session, TrainConfig, Trainer,
};
