//! `simdnet mistakes` and the panics `predict` had, through the real binary:
//! the mistakes are really wrong and sorted by confidence, the PNGs decode
//! (with the independent `png` crate) to the test images, the gallery
//! references every PNG; models with 1 or 2 outputs, or whose outputs are
//! NaN, get an answer or a clear error, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::{expect, s};
use simdnet::data::{mnist, Split};
use simdnet::matrix::MatRef;
use simdnet::nn::{argmax, model_file, Activation, Dense, Layer, Network};
use simdnet::Matrix;

fn temp(name: &str) -> PathBuf {
    common::temp_file("mistakes", name)
}

/// A model trained briefly on the bundled data: it makes a few hundred mistakes.
fn small_model(name: &str) -> PathBuf {
    let path = temp(name);
    expect(
        &[
            "train",
            "--limit",
            "3000",
            "--epochs",
            "1",
            "--threads",
            "2",
            "--quiet",
            "--save",
            s(&path),
        ],
        0,
    );
    path
}

/// One `#rank split[index] true T, predicted P (conf); top-3: ...` line.
#[derive(Debug)]
struct Listed {
    index: usize,
    label: u8,
    predicted: usize,
    confidence: f32,
}

fn parse_listed(out: &str) -> Vec<Listed> {
    out.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            let index = l[l.find("test[").unwrap() + 5..l.find(']').unwrap()]
                .parse()
                .unwrap();
            let label = l[l.find("true ").unwrap() + 5..l.find(',').unwrap()]
                .parse()
                .unwrap();
            let pred = &l[l.find("predicted ").unwrap() + 10..];
            let (predicted, rest) = pred.split_once(" (").unwrap();
            let confidence = rest[..rest.find(')').unwrap()].parse().unwrap();
            Listed {
                index,
                label,
                predicted: predicted.parse().unwrap(),
                confidence,
            }
        })
        .collect()
}

#[test]
fn mistakes_are_wrong_sorted_by_confidence_and_drawn_as_pngs_and_a_gallery() {
    let model = small_model("small.simdnet");
    let dir = temp("gallery");
    let (out, _) = expect(
        &["mistakes", "--model", s(&model), "--top", "15", "--out", s(&dir)],
        0,
    );

    // What the model really gets wrong, computed here with the library.
    let net = model_file::load(&model).unwrap();
    let test = mnist::load_split(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
        Split::Test,
    )
    .unwrap();
    let probs = net.predict(test.images()).unwrap();
    let wrong: Vec<usize> = (0..test.len())
        .filter(|&i| argmax(probs.row(i)) != test.labels()[i] as usize)
        .collect();
    let most_confident_wrong = wrong
        .iter()
        .map(|&i| probs.row(i)[argmax(probs.row(i))])
        .fold(0f32, f32::max);

    let listed = parse_listed(&out);
    assert_eq!(listed.len(), 15, "{out}");
    for (k, m) in listed.iter().enumerate() {
        let row = probs.row(m.index);
        assert_eq!(m.label, test.labels()[m.index], "#{}: true label", k + 1);
        assert_eq!(m.predicted, argmax(row), "#{}: prediction", k + 1);
        assert_ne!(
            m.predicted,
            m.label as usize,
            "#{} is listed but is not a mistake",
            k + 1
        );
        assert!(
            (m.confidence - row[m.predicted]).abs() < 1e-5,
            "#{}: confidence",
            k + 1
        );
        if k > 0 {
            assert!(
                listed[k - 1].confidence >= m.confidence,
                "not sorted by confidence at #{}:\n{out}",
                k + 1
            );
        }
    }
    assert!(
        (listed[0].confidence - most_confident_wrong).abs() < 1e-5,
        "the most confident mistake comes first"
    );
    let summary = format!("{} wrong of 10000 test images", wrong.len());
    assert!(out.contains(&summary), "'{summary}' missing from:\n{out}");
    // Each mistake is drawn as ASCII: 28 rows per image.
    assert_eq!(out.lines().filter(|l| l.starts_with("  |")).count(), 15 * 28);

    // The PNGs: 4x the image, decoded by the png crate.
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let mut pngs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".png"))
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), 15, "{pngs:?}");
    for (k, (name, m)) in pngs.iter().zip(&listed).enumerate() {
        assert_eq!(name, &format!("{:03}-test-{}.png", k + 1, m.index));
        let decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(dir.join(name)).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (112, 112));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        let image = test.image(m.index);
        for y in 0..112 {
            for x in 0..112 {
                assert_eq!(
                    buf[y * 112 + x],
                    image[(y / 4) * 28 + x / 4],
                    "{name} at ({x},{y})"
                );
            }
        }
        assert!(
            html.contains(&format!("src=\"{name}\"")),
            "index.html does not show {name}"
        );
        assert!(
            html.contains(&format!(
                "true <b>{}</b> &rarr; predicted <b class=\"wrong\">{}</b>",
                m.label, m.predicted
            )),
            "index.html lacks the labels of {name}"
        );
    }
    assert_eq!(html.matches("<img ").count(), 15);
    assert!(
        !html.contains("http") && !html.contains("<script"),
        "the gallery must be self-contained"
    );
}

#[test]
fn mistakes_refuses_a_bad_out_and_a_bad_top() {
    let model = small_model("for-bad-flags.simdnet");
    let file = temp("not-a-folder");
    std::fs::write(&file, b"keep me").unwrap();
    let (_, err) = expect(&["mistakes", "--model", s(&model), "--out", s(&file)], 1);
    assert!(
        err.contains(&format!(
            "cannot save the mistakes gallery to '{}': it exists and is not a folder",
            s(&file)
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let (_, err) = expect(&["mistakes", "--model", s(&model), "--top", "0"], 2);
    assert!(err.contains("--top must be at least 1"), "{err}");
    // A missing --out folder is created, nested too.
    let nested = temp("a/b/c");
    expect(
        &[
            "mistakes",
            "--model",
            s(&model),
            "--top",
            "2",
            "--out",
            s(&nested),
        ],
        0,
    );
    assert!(nested.join("index.html").is_file());
    let pngs = std::fs::read_dir(&nested)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"));
    assert_eq!(pngs.count(), 2);
}

/// A model with `outputs` classes and no hidden layer, saved.
fn tiny_model(name: &str, outputs: usize) -> PathBuf {
    let path = temp(name);
    let net = Network::mlp(784, &[], outputs, Activation::Relu, 1).unwrap();
    model_file::save(&net, &path).unwrap();
    path
}

/// A white ring on black, 60x60, as a PGM: a picture for `predict --image`.
fn ring_pgm(name: &str) -> PathBuf {
    let mut bytes = b"P5\n60 60\n255\n".to_vec();
    for y in 0..60 {
        for x in 0..60 {
            let r = ((x as f64 - 30.0).powi(2) + (y as f64 - 30.0).powi(2)).sqrt();
            bytes.push(if (14.0..22.0).contains(&r) { 255 } else { 0 });
        }
    }
    let path = temp(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn predict_and_mistakes_with_one_or_two_output_models_do_not_panic() {
    let ring = ring_pgm("ring.pgm");
    for outputs in [1, 2] {
        let model = tiny_model(&format!("outputs-{outputs}.bin"), outputs);
        let m = s(&model);
        // Test image 3 is a 0: a class of both models. Image 0 is a 7: in neither.
        let (out, _) = expect(&["predict", "--model", m, "--index", "3"], 0);
        assert!(
            out.contains("Actual value: 0") && out.contains("Predicted: "),
            "{out}"
        );
        let (out, _) = expect(&["predict", "--model", m, "--index", "0"], 0);
        assert!(
            out.contains(&format!(
                "y_test[0] = 7: not one of this model's {outputs} classes"
            )),
            "{out}"
        );
        let (out, _) = expect(&["predict", "--model", m, "--image", s(&ring)], 0);
        let probability_lines = out
            .lines()
            .filter(|l| {
                l.starts_with("  ") && l.trim_start().split(':').next().unwrap().parse::<usize>().is_ok()
            })
            .count();
        assert_eq!(probability_lines, outputs, "{out}");
        let (out, _) = expect(&["mistakes", "--model", m, "--top", "3"], 0);
        let listed = parse_listed(&out);
        assert_eq!(listed.len(), 3, "{out}");
        assert!(out.contains(&format!("top-{outputs}: ")), "{out}");
    }
}

#[test]
fn a_model_whose_outputs_are_nan_says_so() {
    // Finite but huge weights (3e37): the logits overflow to infinity, softmax gives NaN.
    let huge = Dense {
        w: Matrix::from_fn(784, 10, |_, _| 3e37),
        b: vec![0.0; 10],
        act: Activation::Identity,
    };
    let net = Network::from_layers(784, vec![Layer::Dense(huge)]).unwrap();
    let path = temp("huge.bin");
    model_file::save(&net, &path).unwrap();
    let x = MatRef::from_slice(&[255u8; 784][..], 1, 784);
    assert!(
        net.predict(x).unwrap().row(0)[0].is_nan(),
        "the model must really output NaN"
    );
    let expected = format!(
        "error: the model '{}' outputs NaN instead of probabilities",
        s(&path)
    );
    let (out, err) = expect(&["predict", "--model", s(&path), "--index", "0"], 1);
    assert!(err.contains(&expected), "{err}");
    assert!(!out.contains("Predicted"), "{out}");
    let (_, err) = expect(
        &[
            "predict",
            "--model",
            s(&path),
            "--image",
            s(&ring_pgm("ring2.pgm")),
        ],
        1,
    );
    assert!(err.contains(&expected), "{err}");
    let (_, err) = expect(&["mistakes", "--model", s(&path)], 1);
    assert!(err.contains(&expected), "{err}");
}
