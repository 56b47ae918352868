//! The network: activations, dense layers, the loss, optimisers, the MLP and its training loop.

pub mod activation;
