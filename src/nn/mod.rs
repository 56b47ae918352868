//! The network: activations, dense layers, the loss, optimisers, the MLP,
//! its training loop and its file format. Read in this order.

pub mod dense;
pub mod init;
pub mod loss;
pub mod model_file;
pub mod network;
pub mod optim;
pub mod train;

pub use crate::activation::Activation;
pub use crate::matrix::argmax;
pub use network::{Evaluation, Network, Workspace, PIXEL_SCALE};
pub use optim::{Optimizer, OptimizerState};
pub use train::{fit, EpochStats, Progress, TrainConfig, Trainer};
