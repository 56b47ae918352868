//! `simdnet summary`: every layer of a network with its output shape and
//! parameters, like Keras' `model.summary()`, without training: a preset
//! (`--model lenet`), a spec (`--arch ...`), or a saved model (`--model FILE`).

use std::path::PathBuf;

use super::args::{Flag, Parsed, UsageError};
use super::CliError;
use crate::data::NUM_CLASSES;
use crate::geometry::ImageShape;
use crate::nn::spec::{self, Arch, InputShape};
use crate::nn::{model_file, Activation, Network};

pub const ABOUT: &str =
    "print a network's layers, output shapes and parameters (like Keras' model.summary()) without training";

pub const FLAGS: &[Flag] = &[
    Flag::value(
        "model",
        "NAME|FILE",
        Some("mlp"),
        "mlp (the workshop's 784-16-16-10), lenet, keras-cnn, or a model saved by `simdnet train --save FILE` (a file named like a preset: write ./lenet)",
    ),
    Flag::value(
        "arch",
        "SPEC",
        None,
        "a network as `simdnet train --arch` takes it, e.g. conv3x3x8,relu,pool2,flatten,dense10 (for MNIST's 28x28x1 images and 10 classes)",
    ),
];

/// The input of MNIST's images, which `--model NAME` and `--arch` are made for.
fn mnist_input() -> Result<InputShape, CliError> {
    Ok(InputShape::Image(ImageShape::new(1, 28, 28, 1)?))
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let name = p.raw("model").unwrap_or("mlp");
    if p.given("model") && p.given("arch") {
        return Err(UsageError(format!(
            "--model {name} and --arch both say which network to show: give one of them"
        ))
        .into());
    }
    let (title, net) = if let Some(text) = p.raw("arch") {
        let arch = Arch::parse(text).map_err(|e| UsageError(format!("--arch: {e}")))?;
        let net = arch
            .build(mnist_input()?, NUM_CLASSES, 1)
            .map_err(|e| UsageError(format!("--arch: {e}")))?;
        (arch.canonical(), net)
    } else if name == "mlp" {
        let net = Network::mlp(28 * 28, &[16, 16], NUM_CLASSES, Activation::Relu, 1)?;
        (format!("mlp ({})", net.describe()), net)
    } else if let Some(arch) = Arch::preset(name) {
        let net = arch
            .build(mnist_input()?, NUM_CLASSES, 1)
            .map_err(|e| UsageError(format!("--model {name}: {e}")))?;
        (format!("{name} ({})", arch.canonical()), net)
    } else {
        let path: PathBuf = p.required_path("model")?;
        if !path.exists() {
            return Err(UsageError(format!(
                "--model '{name}' is neither a network simdnet knows (mlp, {}) nor an existing model file: check the name or the path",
                spec::PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
        let net = model_file::load(&path)?;
        (format!("'{}' ({})", path.display(), net.describe()), net)
    };
    println!("Model: {title}");
    print!("{}", spec::summary(&net));
    Ok(())
}
