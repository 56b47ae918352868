//! The teaching module: one training step of an MLP, line by line (to be written).
