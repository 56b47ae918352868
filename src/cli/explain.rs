//! `simdnet explain`: one training step, every number with its formula (to be written).

use super::args::{Flag, Parsed};
use super::CliError;

pub const ABOUT: &str = "run one training step and print every number with the formula that made it";

pub const FLAGS: &[Flag] = &[];

pub fn run(_p: &Parsed) -> Result<(), CliError> {
    Err(CliError::Run(crate::Error::Invalid(
        "explain is not written yet".into(),
    )))
}
