//! The `simdnet` command line.

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    0
}
