//! `simdnet predict`: practical 3, the ten probabilities for one image, and their argmax.

use std::path::PathBuf;

use super::args::{Flag, Parsed};
use super::common::{self, DATA, MODEL, SPLIT};
use super::CliError;
use crate::matrix::MatRef;
use crate::nn::{argmax, model_file, PIXEL_SCALE};
use crate::teach::loss::one_hot;

pub const ABOUT: &str = "predict one image with a saved model: probabilities, actual and predicted digit";

pub const FLAGS: &[Flag] = &[
    MODEL,
    Flag::value("index", "I", Some("0"), "which image"),
    SPLIT,
    Flag::switch("draw", "also draw the image"),
    DATA,
];

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let path: PathBuf = p.required_path("model")?;
    let which = common::split(p)?;
    let net = model_file::load(&path)?;
    let data = common::load_data(p, which)?;
    let i = common::index(p, &data, which)?;
    let name = if which == crate::data::Split::Train {
        "train"
    } else {
        "test"
    };
    let x = MatRef::from_slice(data.image(i), 1, data.features());
    let probs = net.predict(x, PIXEL_SCALE)?;
    let label = data.labels()[i];
    if p.switch("draw") {
        print!("{}", common::ascii_art(data.image(i), data.image_cols()));
    }
    if (label as usize) < net.outputs() {
        let y = one_hot(&[label as usize], net.outputs());
        println!("y_{name}[{i}] (one-hot): {y:?}");
    } else {
        println!(
            "y_{name}[{i}] = {label}: not one of this model's {} classes (0..={})",
            net.outputs(),
            net.outputs() - 1
        );
    }
    println!("Probabilities:");
    let best = argmax(probs.row(0));
    for (d, &pr) in probs.row(0).iter().enumerate() {
        let bar = "#".repeat((pr * 40.0).round() as usize);
        let mark = if d == best { "  <- argmax" } else { "" };
        println!("{}", format!("  {d}: {pr:.6} {bar}{mark}").trim_end());
    }
    println!("Actual value: {label}");
    println!("Predicted: {best}");
    Ok(())
}
