//! The `simdnet` binary: its commands live in the library's `cli` module
//! (`src/cli/`), which is not part of its documented API.
//!
//! SIGPIPE keeps the action Rust gives it (ignored): writing to a closed pipe
//! is then an error that `simdnet::cli::output` handles, so `simdnet train
//! --save m.bin | head -1` still saves the model, then ends quietly (exit
//! code 141, as a shell shows for SIGPIPE). Restoring SIGPIPE's default would
//! kill the process at its first write after `head` exits, before the save.

fn main() {
    std::process::exit(simdnet::cli::main());
}
