//! Standard output and standard error for the commands, without panics.
//!
//! `std`'s `print!`/`println!` panic when standard output fails (a full disk,
//! `> /dev/full`, a reader that went away): a training run would then die
//! before saving its model. The `cli` module shadows `print!`, `println!`,
//! `eprint!` and `eprintln!` with macros (in `cli/mod.rs`) that call the
//! functions here instead: the first failure on standard output is
//! remembered, later output is dropped, and the command carries on (its files
//! are still saved). [`crate::cli::run`] then calls [`finish`] and reports it.
//!
//! SIGPIPE stays ignored (Rust's default), so a closed pipe is one more write
//! error, `BrokenPipe`, that `run` turns into a quiet exit with code 141 (what
//! a shell shows for a process ended by SIGPIPE) after the command has
//! finished its work. A failure on standard error is ignored: there is nowhere
//! left to report it.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// The first error standard output gave since the last [`reset`].
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

fn first_error() -> std::sync::MutexGuard<'static, Option<io::Error>> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `args` (then a newline if `newline`) to standard output; after the
/// first failure, writes nothing more and remembers that failure.
pub fn print(args: fmt::Arguments<'_>, newline: bool) {
    let mut failed = first_error();
    if failed.is_some() {
        return;
    }
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = written {
        *failed = Some(e);
    }
}

/// Writes `args` (then a newline if `newline`) to standard error, ignoring failure.
pub fn eprint(args: fmt::Arguments<'_>, newline: bool) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args);
    if newline {
        let _ = err.write_all(b"\n");
    }
}

/// Forgets any earlier failure: called when a command line starts.
pub fn reset() {
    *first_error() = None;
}

/// Flushes standard output; returns the first failure since [`reset`], if any.
pub fn finish() -> Option<io::Error> {
    let mut failed = first_error();
    if failed.is_none() {
        if let Err(e) = io::stdout().lock().flush() {
            *failed = Some(e);
        }
    }
    failed.take()
}

/// The exit code and message once a command returned `code` and standard output
/// gave `error`: a closed pipe ends quietly with 141, any other failure is
/// reported and makes a successful command exit with 1.
pub fn outcome(code: i32, error: Option<io::Error>) -> (i32, Option<String>) {
    match error {
        None => (code, None),
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => (if code == 0 { 141 } else { code }, None),
        Some(e) if code == 0 => (
            1,
            Some(format!(
                "error: cannot write to standard output: {e} (the command itself finished, and \
                 saved what it was asked to save; send its output to a disk with free space)"
            )),
        ),
        Some(e) => (code, Some(format!("error: cannot write to standard output: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_ends_quietly_and_other_failures_are_reported() {
        assert_eq!(outcome(0, None), (0, None));
        assert_eq!(outcome(2, None), (2, None));
        let pipe = || Some(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(outcome(0, pipe()), (141, None));
        assert_eq!(
            outcome(1, pipe()),
            (1, None),
            "a failed command keeps its own code"
        );
        let full = || Some(io::Error::from_raw_os_error(28));
        let (code, msg) = outcome(0, full());
        assert_eq!(code, 1);
        assert!(msg
            .unwrap()
            .starts_with("error: cannot write to standard output: "));
        assert_eq!(outcome(2, full()).0, 2);
    }
}
