//! The `train --profile` table (to be written in full by the profiling work).

use crate::nn::EpochStats;

/// A table of where the training time went (placeholder: epoch times only).
pub fn training_table(history: &[EpochStats], threads: usize) -> String {
    let wall: f64 = history
        .iter()
        .map(|h| h.train_seconds + h.validation_seconds)
        .sum();
    format!(
        "Profile: {} epochs, {wall:.3}s wall on {threads} threads\n",
        history.len()
    )
}
