//! Profiling and tuning (floor 4): everything `bench`, `tune` and
//! `train --profile` measure and conclude. The command line (floor 5) only
//! parses flags and renders what these return.
//!
//! Not covered by semver: public for the binary, the tests and the
//! benchmarks, hidden from the crate's documentation.
//!
//! - [`machine`]: probes of this machine's peak FLOP/s and memory bandwidth.
//! - [`bench`](mod@bench): the engine's GEMM and fused kernels, verified, then timed.
//! - [`conv_bench`]: the preset CNNs' convolution layers, each pass verified, then timed.
//! - [`kernel_bench`]: each SIMD micro-kernel alone on a tile in L1, verified, then timed.
//! - [`verdict`]: roofline verdicts and warnings, from the measured numbers.
//! - [`suite`]: the sequence `simdnet bench` runs, and its results.
//! - [`facts`]: the build facts printed beside every figure.
//! - [`json`]: a tiny JSON writer for `bench --json`.
//! - [`report`]: the `train --profile` table, from [`crate::trace`]'s timers.
//! - [`tuner`], [`tune_config`]: the block-size search and the file it writes.

pub mod bench;
pub mod conv_bench;
pub mod facts;
pub mod json;
pub mod kernel_bench;
pub mod machine;
pub mod report;
pub mod suite;
pub mod tune_config;
pub mod tuner;
pub mod verdict;
