//! `simdnet tune` (to be written).

use super::args::{Flag, Parsed};
use super::CliError;

pub const ABOUT: &str = "(not written yet)";

pub const FLAGS: &[Flag] = &[];

pub fn run(_p: &Parsed) -> Result<(), CliError> {
    Err(CliError::Run(crate::Error::Invalid(
        "tune is not written yet".into(),
    )))
}
