//! One error type for everything a user can get wrong.
//!
//! Every message names the problem and the fix. The CLI prints it on one line
//! (after `error: `) and exits with a non-zero code; the library never panics
//! on user input.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The [`Error::Io`] action of opening a data file: only a missing data file
/// gets the hint about the bundled MNIST files.
pub const DATA_OPEN: &str = "open the data file";

/// What went wrong, with enough context to fix it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done: `"open"`, `"read"`, `"write"`, ...
        action: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// A data file (IDX) is malformed: `problem` says how.
    BadData {
        /// The data file.
        path: PathBuf,
        /// What is wrong with it, and the fix.
        problem: String,
    },
    /// A model file is malformed or does not fit: `problem` says how.
    BadModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it, and the fix.
        problem: String,
    },
    /// A configuration file (e.g. the tuning file) is malformed.
    BadConfig {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong with it, and the fix.
        problem: String,
    },
    /// An argument or setting is invalid (wrong shape, out-of-range value, ...).
    Invalid(String),
    /// A file could not be saved, or its destination is refused before any
    /// work starts: `problem` says why and what to do.
    Save {
        /// The destination.
        path: PathBuf,
        /// What was to be saved (`"model"`, `"checkpoint"`, ...).
        what: String,
        /// Why it cannot be saved there, and the fix.
        problem: String,
    },
    /// Training produced a non-finite loss (or one that grew past the
    /// divergence limit).
    Diverged {
        /// The epoch (1-based) where it happened.
        epoch: usize,
        /// The mini-batch of that epoch (1-based).
        step: usize,
        /// The running mean loss at that point.
        loss: f32,
    },
    /// The loss on a held-out set (validation or test) at the end of an
    /// epoch was not finite, or grew past the divergence limit: the epoch's
    /// last updates, which no step's loss measures, left weights that are
    /// finite but so large that the outputs overflow.
    HeldOutDiverged {
        /// The epoch (1-based) that ended so.
        epoch: usize,
        /// Which set: `"validation"` or `"test"`.
        set: &'static str,
        /// The mean loss on that set.
        loss: f32,
    },
    /// A step's update left a weight or bias NaN or infinite (the step's
    /// loss, computed before the update, was still finite). Such a network
    /// cannot be saved, checkpointed or loaded.
    WeightsNotFinite {
        /// The epoch (1-based) where it happened.
        epoch: usize,
        /// The mini-batch of that epoch (1-based), or the last one run
        /// before the check (the end of the epoch, or an interruption).
        step: usize,
        /// The first layer (0-based) that holds such a value.
        layer: usize,
    },
}

/// `Result` with simdnet's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, action, source } => {
                write!(f, "cannot {action} '{}': {source}", path.display())?;
                if source.kind() == io::ErrorKind::NotFound {
                    if *action == DATA_OPEN {
                        write!(f, " (check the path; the bundled MNIST files live in data/ at the root of the repository, pass another folder with --data DIR)")?;
                    } else {
                        write!(f, " (check the path)")?;
                    }
                }
                Ok(())
            }
            Error::BadData { path, problem } => write!(
                f,
                "'{}' is not a valid IDX data file: {problem} (restore it from the repository with `git checkout -- data/`, or point --data at a folder with the four MNIST files)",
                path.display()
            ),
            Error::BadModel { path, problem } => write!(
                f,
                "'{}' is not a usable simdnet model: {problem} (train and save one with `simdnet train --save FILE`)",
                path.display()
            ),
            Error::BadConfig { path, problem } => write!(
                f,
                "'{}' is not a valid configuration file: {problem} (delete it, or recreate it with `simdnet tune`)",
                path.display()
            ),
            Error::Save { path, what, problem } => {
                write!(f, "cannot save the {what} to '{}': {problem}", path.display())
            }
            Error::Invalid(msg) => f.write_str(msg),
            Error::Diverged { epoch, step, loss } => write!(
                f,
                "training diverged: the loss became {loss} at epoch {epoch}, step {step} (lower the learning rate with --lr, e.g. to a tenth)"
            ),
            Error::HeldOutDiverged { epoch, set, loss } => write!(
                f,
                "training diverged: the loss on the {set} set became {loss} at the end of epoch {epoch} (lower the learning rate with --lr, e.g. to a tenth)"
            ),
            Error::WeightsNotFinite { epoch, step, layer } => write!(
                f,
                "training diverged: a weight of layer {layer} became NaN or infinite by epoch {epoch}, step {step} (lower the learning rate with --lr, e.g. to a tenth)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Whether a message may show `c` as it is: not a control character (an
/// escape sequence from a file would act on the terminal), not a byte-order
/// mark, not a right-to-left override (which would reorder what follows).
pub fn printable(c: char) -> bool {
    !(c.is_control() || c == '\u{feff}' || c == '\u{202e}')
}

/// `text` for a message: every character that is not [`printable`] escaped
/// (`\u{1b}`, `\n`), the rest as it is.
pub fn escape_unprintable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if printable(c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}
