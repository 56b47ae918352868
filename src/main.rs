//! The `simdnet` binary: see [`simdnet::cli`].

fn main() {
    restore_default_sigpipe();
    std::process::exit(simdnet::cli::main());
}

/// Lets `simdnet inspect | head` end quietly, as other command-line tools do.
///
/// Rust ignores SIGPIPE, so writing to a closed pipe makes `println!` panic;
/// restoring the default action ends the process silently instead.
#[cfg(unix)]
fn restore_default_sigpipe() {
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    // SAFETY: `signal` is the C library's; setting SIGPIPE to its default
    // action, before any other thread exists, has no memory-safety
    // preconditions. (SIGPIPE is 13 on Linux, macOS and the BSDs.)
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_default_sigpipe() {}
