//! `simdnet mistakes`: the images a model gets wrong, most confident first,
//! drawn as ASCII; with `--out DIR`, each as a PNG and a gallery page
//! `index.html` that shows them in a grid with their labels.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::args::{Flag, Parsed, UsageError};
use super::common::{self, DATA, MODEL, SPLIT};
use super::predict::check_finite;
use super::CliError;
use crate::data::{png, Dataset, Split};
use crate::error::Error;
use crate::nn::{argmax, model_file};
use crate::safe_file::{check_destination, write_atomic};

pub const ABOUT: &str =
    "list the images a model gets wrong, most confident first; --out writes a PNG gallery";

pub const FLAGS: &[Flag] = &[
    MODEL,
    DATA,
    SPLIT,
    Flag::value(
        "top",
        "N",
        Some("20"),
        "how many mistakes to show, most confident first",
    ),
    Flag::value(
        "out",
        "DIR",
        None,
        "also write each mistake as a PNG and a gallery DIR/index.html (DIR is created if absent)",
    ),
];

/// Each pixel of an image becomes a `ZOOM x ZOOM` block in the gallery's PNGs.
pub const ZOOM: usize = 4;

/// One image the model gets wrong.
#[derive(Clone, Debug)]
struct Mistake {
    /// Index in the data set.
    index: usize,
    /// The true label.
    label: u8,
    /// The predicted class and its probability.
    predicted: usize,
    confidence: f32,
    /// The (up to) three most probable classes with their probabilities, most probable first.
    top: Vec<(usize, f32)>,
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let model: PathBuf = p.required_path("model")?;
    let which = common::split(p)?;
    let top: usize = p.get("top")?;
    if top == 0 {
        return Err(UsageError("--top must be at least 1".into()).into());
    }
    let out = p.path("out")?;
    if let Some(dir) = &out {
        make_folder(dir)?;
        check_destination(&dir.join("index.html"), "mistakes gallery")?;
    }
    let net = model_file::load(&model)?;
    let data = common::load_data(p, which)?;
    if data.features() != net.inputs() {
        return Err(Error::Invalid(format!(
            "the model '{}' takes {} inputs per image, but the images in --data have {} pixels; \
             use a model trained on these images",
            model.display(),
            net.inputs(),
            data.features()
        ))
        .into());
    }
    let probs = net.predict(&data)?;
    check_finite(probs.as_slice(), &model)?;
    let mut wrong: Vec<Mistake> = (0..data.len())
        .filter_map(|i| {
            let row = probs.row(i);
            let predicted = argmax(row);
            let label = data.labels()[i];
            (predicted != label as usize).then(|| {
                let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                ranked.truncate(3);
                Mistake {
                    index: i,
                    label,
                    predicted,
                    confidence: row[predicted],
                    top: ranked,
                }
            })
        })
        .collect();
    wrong.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.index.cmp(&b.index)));
    let shown = &wrong[..top.min(wrong.len())];
    let name = split_name(which);
    for (rank, m) in shown.iter().enumerate() {
        println!("{}", headline(rank, m, name));
        print!("{}", common::ascii_art(data.image(m.index), data.image_cols()));
    }
    let summary = format!(
        "{} wrong of {} {name} images (accuracy {:.4}); {}",
        wrong.len(),
        data.len(),
        1.0 - wrong.len() as f64 / data.len() as f64,
        if shown.is_empty() {
            "nothing to show".to_string()
        } else {
            format!("shown: the {} most confident", shown.len())
        }
    );
    println!("{summary}");
    if let Some(dir) = &out {
        write_gallery(dir, &model, &data, name, shown, &summary)?;
        println!(
            "Wrote {} PNGs and the gallery {}",
            shown.len(),
            dir.join("index.html").display()
        );
    }
    Ok(())
}

fn split_name(which: Split) -> &'static str {
    if which == Split::Train {
        "train"
    } else {
        "test"
    }
}

/// `#1 test[1234] true 4, predicted 9 (0.987100); top-3: 9 0.987100, 4 0.010000, 7 0.001200`
fn headline(rank: usize, m: &Mistake, split: &str) -> String {
    let top: Vec<String> = m.top.iter().map(|(c, p)| format!("{c} {p:.6}")).collect();
    format!(
        "#{} {split}[{}] true {}, predicted {} ({:.6}); top-{}: {}",
        rank + 1,
        m.index,
        m.label,
        m.predicted,
        m.confidence,
        m.top.len(),
        top.join(", ")
    )
}

/// Creates `dir` if absent; refuses a path that exists and is not a folder.
fn make_folder(dir: &Path) -> Result<(), Error> {
    let refuse = |problem: String| Error::Save {
        path: dir.to_path_buf(),
        what: "mistakes gallery".into(),
        problem,
    };
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(refuse(
            "it exists and is not a folder; give --out a folder, or a path that does not exist yet".into(),
        )),
        Err(_) => fs::create_dir_all(dir)
            .map_err(|e| refuse(format!("cannot create the folder ({e}); choose another --out"))),
    }
}

/// The PNG file name of the mistake ranked `rank` (from 0).
fn png_name(rank: usize, split: &str, index: usize) -> String {
    format!("{:03}-{split}-{index}.png", rank + 1)
}

/// Each pixel of `pixels` (`width` per row) as a `factor x factor` block (nearest neighbour).
fn upscale(pixels: &[u8], width: usize, factor: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels.len() * factor * factor);
    for row in pixels.chunks_exact(width) {
        let start = out.len();
        for &p in row {
            out.extend(std::iter::repeat_n(p, factor));
        }
        for _ in 1..factor {
            out.extend_from_within(start..start + width * factor);
        }
    }
    out
}

/// Text safe inside HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes one PNG per mistake and `index.html`, all through `write_atomic`.
fn write_gallery(
    dir: &Path,
    model: &Path,
    data: &Dataset,
    split: &str,
    shown: &[Mistake],
    summary: &str,
) -> Result<(), Error> {
    let (rows, cols) = (data.image_rows(), data.image_cols());
    let (w, h) = (cols * ZOOM, rows * ZOOM);
    let mut figures = String::new();
    for (rank, m) in shown.iter().enumerate() {
        let name = png_name(rank, split, m.index);
        let bytes = png::encode_grey(w, h, &upscale(data.image(m.index), cols, ZOOM))?;
        write_atomic(&dir.join(&name), &bytes, "mistake image")?;
        let top: Vec<String> = m
            .top
            .iter()
            .map(|(c, p)| format!("<span>{c}: {:.1}%</span>", p * 100.0))
            .collect();
        let _ = writeln!(
            figures,
            "<figure><img src=\"{name}\" width=\"{w}\" height=\"{h}\" alt=\"{split} image {i}: true {t}, predicted {pr}\">\
             <figcaption><span class=\"rank\">#{r}</span> {split}[{i}]<br>true <b>{t}</b> &rarr; predicted \
             <b class=\"wrong\">{pr}</b><br>confidence {c:.1}%<br><small>top-{n}: {top}</small></figcaption></figure>",
            r = rank + 1,
            i = m.index,
            t = m.label,
            pr = m.predicted,
            c = m.confidence * 100.0,
            n = m.top.len(),
            top = top.join(", "),
        );
    }
    let title = format!("Mistakes of {}", model.display());
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n\
         body {{ font-family: system-ui, sans-serif; margin: 24px; background: #f6f6f6; color: #222; }}\n\
         h1 {{ font-size: 20px; margin: 0 0 4px; }}\n\
         .grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; margin-top: 16px; }}\n\
         figure {{ margin: 0; padding: 8px; background: #fff; border: 1px solid #ddd; border-radius: 6px; text-align: center; }}\n\
         img {{ display: block; margin: 0 auto 6px; image-rendering: pixelated; background: #000; }}\n\
         figcaption {{ font-size: 13px; line-height: 1.4; }}\n\
         .rank {{ color: #777; }}\n\
         .wrong {{ color: #c0392b; }}\n\
         small {{ color: #555; }}\n\
         small span {{ white-space: nowrap; }}\n\
         </style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{summary}. Most confident mistakes first; \
         each image is the network's input, {rows}x{cols} pixels drawn {ZOOM}x.</p>\n\
         <div class=\"grid\">\n{figures}</div>\n</body>\n</html>\n",
        title = escape(&title),
        summary = escape(summary),
    );
    write_atomic(&dir.join("index.html"), html.as_bytes(), "mistakes gallery")
}
