//! `simdnet evaluate`: practical 3, loss and accuracy of a saved model.

use std::path::PathBuf;

use super::args::{Flag, Parsed};
use super::common::{self, DATA, MODEL, SPLIT, THREADS};
use super::CliError;
use crate::nn::model_file;

pub const ABOUT: &str = "loss and accuracy of a saved model on the test (or training) set";

pub const FLAGS: &[Flag] = &[MODEL, SPLIT, THREADS, DATA];

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let path: PathBuf = p.required_path("model")?;
    let which = common::split(p)?;
    let net = model_file::load(&path)?;
    let data = common::load_data(p, which)?;
    let eval = common::with_threads(p, || net.evaluate(&data))??;
    println!("Model: {}", net.describe());
    println!("Examples: {}", data.len());
    println!("Loss: {:.4}", eval.loss);
    println!("Accuracy: {:.4}", eval.accuracy);
    Ok(())
}
