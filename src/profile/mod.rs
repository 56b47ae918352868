//! Profiling and tuning: kernel timers for `train --profile`, machine probes, the tuner.

pub mod bench;
pub mod engine_knobs;
pub mod json;
pub mod machine;
pub mod report;

pub mod tune_config;
pub mod tuner;
