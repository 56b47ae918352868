//! `simdnet predict`: practical 3, the probabilities of every class for one
//! image, and their argmax. The image is one of the data set (`--index`) or
//! your own picture (`--image FILE`, PNG or PGM), prepared as MNIST's digits were.

use std::path::{Path, PathBuf};

use super::args::{Flag, Parsed};
use super::common::{self, DATA, MODEL, SPLIT};
use super::CliError;
use crate::data::digitize::{self, Digit};
use crate::data::image;
use crate::error::{Error, Result};
use crate::matrix::MatRef;
use crate::nn::{argmax, model_file, Network};
use crate::teach::loss::one_hot;

pub const ABOUT: &str = "predict one image with a saved model: probabilities, actual and predicted digit";

pub const FLAGS: &[Flag] = &[
    MODEL,
    Flag::value("index", "I", Some("0"), "which image of the data set"),
    SPLIT,
    Flag::value(
        "image",
        "FILE",
        None,
        "predict your own digit instead: a PNG or PGM of any size, prepared as MNIST's were",
    ),
    Flag::switch(
        "draw",
        "also draw the image (--image always draws the prepared digit)",
    ),
    DATA,
];

/// The class probabilities of `pixels` (one raw image), refused if the model's outputs are not numbers.
pub fn probabilities(net: &Network, pixels: &[u8], model: &Path) -> Result<Vec<f32>> {
    let probs = net.predict(MatRef::from_slice(pixels, 1, pixels.len()))?;
    let row = probs.row(0).to_vec();
    check_finite(&row, model)?;
    Ok(row)
}

/// Refuses probabilities that are NaN or infinite, naming the model.
pub fn check_finite(probs: &[f32], model: &Path) -> Result<()> {
    if probs.iter().all(|p| p.is_finite()) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "the model '{}' outputs NaN instead of probabilities: its weights are so large that the \
         arithmetic overflows, so it cannot predict anything; train it again (with a lower --lr) and save it",
        model.display()
    )))
}

pub fn run(p: &Parsed) -> std::result::Result<(), CliError> {
    let path: PathBuf = p.required_path("model")?;
    if let Some(picture) = p.path("image")? {
        return predict_image(&path, &picture);
    }
    let which = common::split(p)?;
    let net = model_file::load(&path)?;
    let data = common::load_data(p, which)?;
    let i = common::index(p, &data, which)?;
    let name = if which == crate::data::Split::Train {
        "train"
    } else {
        "test"
    };
    if data.features() != net.inputs() {
        return Err(Error::Invalid(format!(
            "the model '{}' takes {} inputs per image, but the images in --data have {} pixels; \
             use a model trained on these images",
            path.display(),
            net.inputs(),
            data.features()
        ))
        .into());
    }
    let probs = probabilities(&net, data.image(i), &path)?;
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
    let best = print_probabilities(&probs);
    println!("Actual value: {label}");
    println!("Predicted: {best}");
    Ok(())
}

/// Prints every class's probability with a bar, marks the argmax and returns it.
fn print_probabilities(probs: &[f32]) -> usize {
    println!("Probabilities:");
    let best = argmax(probs);
    for (d, &pr) in probs.iter().enumerate() {
        let bar = "#".repeat((pr.clamp(0.0, 1.0) * 40.0).round() as usize);
        let mark = if d == best { "  <- argmax" } else { "" };
        println!("{}", format!("  {d}: {pr:.6} {bar}{mark}").trim_end());
    }
    best
}

/// `predict --image FILE`: reads the picture, prepares it as an MNIST digit, shows it and predicts it.
fn predict_image(model: &Path, picture: &Path) -> std::result::Result<(), CliError> {
    let net = model_file::load(model)?;
    let side = digitize::SIDE;
    if net.inputs() != side * side {
        return Err(Error::Invalid(format!(
            "the model '{}' takes {} inputs per image, but --image prepares a {side}x{side} digit ({} pixels) \
             as MNIST's; use a model trained on MNIST",
            model.display(),
            net.inputs(),
            side * side
        ))
        .into());
    }
    let img = image::load(picture)?;
    let digit = digitize::prepare(&img).map_err(|problem| {
        Error::Invalid(format!(
            "'{}' is not a usable image: {problem}",
            picture.display()
        ))
    })?;
    println!(
        "Image: '{}', {}x{} {}{}",
        picture.display(),
        img.width,
        img.height,
        img.channels.name(),
        if digit.inverted {
            ", light background (inverted to light ink on black, as MNIST)"
        } else {
            ", dark background"
        }
    );
    describe(&digit);
    print!("{}", common::ascii_art(&digit.pixels, side));
    let probs = probabilities(&net, &digit.pixels, model)?;
    let best = print_probabilities(&probs);
    println!("Predicted: {best}");
    Ok(())
}

/// One line on how the digit was cut out, scaled and placed.
fn describe(d: &Digit) {
    let (x, y, w, h) = d.ink;
    println!(
        "Ink: {w}x{h} pixels at ({x},{y}), scaled to {}x{} (inside {box}x{box}), placed at ({},{}) \
         in {side}x{side} by its centre of mass:",
        d.scaled.0,
        d.scaled.1,
        d.offset.0,
        d.offset.1,
        box = digitize::BOX,
        side = digitize::SIDE
    );
}
