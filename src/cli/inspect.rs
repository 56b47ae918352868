//! `simdnet inspect`: practical 1, load and look at the data.

use super::args::{Flag, Parsed};
use super::common::{self, DATA};
use super::CliError;
use crate::data::{scale_pixels, Split, NUM_CLASSES};
use crate::teach::loss::one_hot;

pub const ABOUT: &str = "load MNIST and look at it: shapes, scaling, one image and the label counts";

pub const FLAGS: &[Flag] = &[
    Flag::value("index", "I", Some("0"), "which image to draw"),
    Flag::value("split", "SPLIT", Some("train"), "which images: train or test"),
    Flag::switch(
        "numbers",
        "also print the image as its pixel values (28x28 for MNIST), as x_train[i] in Python",
    ),
    DATA,
];

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let which = common::split(p)?;
    let train = common::load_data(p, Split::Train)?;
    let test = common::load_data(p, Split::Test)?;
    let data = if which == Split::Train { &train } else { &test };
    let name = if which == Split::Train { "train" } else { "test" };
    let i = common::index(p, data, which)?;
    // every size from the data set itself: MNIST's are 28x28, other IDX files need not be
    let (r, c) = (data.image_rows(), data.image_cols());

    println!("== Loading: shapes as stored ==");
    println!(
        "x_train: ({}, {}, {}) u8    y_train: ({},) u8",
        train.len(),
        train.image_rows(),
        train.image_cols(),
        train.len()
    );
    println!(
        "x_test:  ({}, {}, {}) u8    y_test:  ({},) u8",
        test.len(),
        test.image_rows(),
        test.image_cols(),
        test.len()
    );
    println!();
    println!("== x_{name}[{i}], drawn ({r}x{c}, one character per pixel) ==");
    print!("{}", common::ascii_art(data.image(i), c));
    let label = data.labels()[i];
    println!("y_{name}[{i}] = {label}");
    if p.switch("numbers") {
        println!();
        println!("== x_{name}[{i}] as numbers ==");
        for row in data.image(i).chunks(c) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:3}")).collect();
            println!("{}", cells.join(""));
        }
    }
    println!();
    println!(
        "== Reshape: each {r}x{c} image becomes one row of {} values ==",
        r * c
    );
    println!(
        "x_train: ({}, {})    x_test: ({}, {})",
        train.len(),
        train.features(),
        test.len(),
        test.features()
    );
    println!();
    let max_raw = data.image(i).iter().copied().max().unwrap_or(0);
    let scaled = scale_pixels(data.image(i));
    let max_scaled = scaled.iter().copied().fold(0.0f32, f32::max);
    let max_all = train.pixels().iter().copied().max().unwrap_or(0);
    println!("== Scale: x / 255 maps 0..255 to 0..1 ==");
    println!("max pixel of x_{name}[{i}]: {max_raw} before, {max_scaled} after");
    println!(
        "max pixel of x_train: {max_all} before, {} after",
        max_all as f32 / 255.0
    );
    println!();
    println!("== One-hot: the label becomes {NUM_CLASSES} numbers ==");
    println!(
        "y_{name}[{i}] = {label}  ->  {:?}",
        one_hot(&[label as usize], NUM_CLASSES)
    );
    println!();
    println!("== Label counts ==");
    for (d, set) in [("train", &train), ("test", &test)] {
        let mut counts = [0usize; NUM_CLASSES];
        set.labels().iter().for_each(|&l| counts[l as usize] += 1);
        let cells: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        println!("{d:<5}  {}", cells.join("  "));
    }
    Ok(())
}
