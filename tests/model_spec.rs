//! Saying a network: the `--arch` spec's parser (exact messages for every
//! kind of bad spec), its shape checks (the shape trail in the message), the
//! presets' parameter counts against the formulas, the seeded builder, the
//! Keras-like summary (golden text), and the model file v3 (bit-exact round
//! trip, corrupt and truncated files refused, v1 and v2 still read).

mod common;

use std::path::Path;

use common::{bits, model_load_err, reseal};
use simdnet::geometry::ImageShape;
use simdnet::nn::spec::{self, Arch, InputShape};
use simdnet::nn::{model_file, Activation, Layer, Network};

fn mnist() -> InputShape {
    InputShape::Image(ImageShape::new(1, 28, 28, 1).unwrap())
}

fn parse_err(spec: &str) -> String {
    Arch::parse(spec).unwrap_err().to_string()
}

fn build_err(spec: &str, input: InputShape) -> String {
    Arch::parse(spec)
        .unwrap()
        .build(input, 10, 1)
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_specs_name_the_item_and_the_fix() {
    let cases: &[(&str, &str)] = &[
        ("", "the spec is empty: give layers separated by commas, e.g. conv3x3x8,relu,pool2,flatten,dense10"),
        ("conv3x3x8,relu,,dense10", "item 3 is empty (two commas in a row, or a comma at an end): remove it"),
        ("conv3x3x8,softplus,flatten,dense10", "item 2 (softplus) is unknown: expected convKHxKWxF[same], pool2, flatten, denseN, dropoutR or an activation (relu, sigmoid, tanh, identity)"),
        ("conv5x5,flatten,dense10", "item 1 (conv5x5) is not a convolution: a convolution is convKHxKWxFILTERS with an optional padding same or valid, e.g. conv5x5x6same or conv3x3x32"),
        ("conv0x3x8,flatten,dense10", "item 1 (conv0x3x8) has kernel height 0: it must be at least 1"),
        ("conv3x3x8full,flatten,dense10", "item 1 (conv3x3x8full) has an unknown padding 'full': a convolution is convKHxKWxFILTERS with an optional padding same or valid, e.g. conv5x5x6same or conv3x3x32"),
        ("conv5x5x6p1,flatten,dense10", "item 1 (conv5x5x6p1) pads 1 on each side: simdnet pads 0 (valid, p0) or (K-1)/2 (same, p2 for a 5x5 kernel); write conv5x5x6same or conv5x5x6"),
        ("conv4x4x6p2,flatten,dense10", "item 1 (conv4x4x6p2) pads 2 on each side, but a 4x4 kernel is not square and odd, so no symmetric padding keeps its size: write conv4x4x6same (the extra row and column go bottom and right, as in Keras) or conv4x4x6"),
        ("conv4x4x6p1,flatten,dense10", "item 1 (conv4x4x6p1) pads 1 on each side, but a 4x4 kernel is not square and odd, so no symmetric padding keeps its size: write conv4x4x6same (the extra row and column go bottom and right, as in Keras) or conv4x4x6"),
        ("conv99x3x8,flatten,dense10", "item 1 (conv99x3x8) has kernel height 99, more than simdnet allows (64)"),
        ("pool3,flatten,dense10", "item 1 (pool3) is not a pooling simdnet has: only 2x2 max-pooling with stride 2 (pool2)"),
        ("dense,dense10", "item 1 (dense) gives no units: write denseN, e.g. dense128"),
        ("flatten,dropout1.5,dense10", "item 2 (dropout1.5) is not a dropout rate: write dropoutR with 0 <= R < 1, e.g. dropout0.25"),
        ("relu,dense10", "item 1 (relu) comes before any layer: an activation applies to the conv or dense layer before it"),
        ("dropout0.2,dense10", "item 1 (dropout0.2) comes before any layer: a dropout applies to the output of the layer before it"),
        ("conv3x3x8,relu,tanh,flatten,dense10", "item 3 (tanh) is a second activation for conv3x3x8 (item 1): give one activation per layer"),
        ("conv3x3x8,pool2,relu,flatten,dense10", "item 3 (relu) follows pool2 (item 2), which has no activation: put activations right after a conv or dense layer"),
        ("conv3x3x8,dropout0.1,dropout0.2,flatten,dense10", "item 3 (dropout0.2) is a second dropout for conv3x3x8 (item 1): give one dropout per layer"),
        ("conv3x3x8,relu,pool2", "the last layer is pool2 (item 3): the spec must end with a dense layer of one unit per class, e.g. ...,flatten,dense10 for MNIST"),
        ("conv3x3x8,flatten,dense10,relu", "item 4 (relu) follows the output layer dense10: its activation is softmax, part of the loss; remove 'relu'"),
        ("conv3x3x8,flatten,dense10,dropout0.5", "item 4 (dropout0.5) follows the output layer dense10: nothing may change its outputs before the softmax; remove 'dropout0.5'"),
    ];
    for (spec, msg) in cases {
        assert_eq!(&parse_err(spec), msg, "spec {spec:?}");
    }
}

#[test]
fn shapes_that_do_not_fit_show_every_layer_up_to_the_failing_one() {
    assert_eq!(
        build_err("conv5x5x6,relu,pool2,conv5x5x16,relu,pool2,conv5x5x32,flatten,dense10", mnist()),
        "item 7 (conv5x5x32) does not fit: input 28x28x1 -> conv5x5x6 valid relu 24x24x6 -> pool2 12x12x6 \
         -> conv5x5x16 valid relu 8x8x16 -> pool2 4x4x16 -> conv5x5x32 (valid) needs an image of at least \
         5x5 but gets 4x4: use padding same (conv5x5x32same) or fewer poolings or valid convolutions before it"
    );
    assert_eq!(
        build_err("conv3x3x4,pool2,pool2,pool2,pool2,pool2,flatten,dense10", mnist()),
        "item 6 (pool2) does not fit: input 28x28x1 -> conv3x3x4 valid 26x26x4 -> pool2 13x13x4 -> pool2 6x6x4 \
         -> pool2 3x3x4 -> pool2 1x1x4 -> pool2 needs an image of at least 2x2 but gets 1x1: remove this pooling, \
         or use padding same in the convolutions before it"
    );
    // A dense layer straight after an image: flatten is never silent.
    assert_eq!(
        build_err("conv3x3x8,relu,pool2,dense10", mnist()),
        "item 4 (dense10) does not fit: input 28x28x1 -> conv3x3x8 valid relu 26x26x8 -> pool2 13x13x8 -> dense10 \
         reads a row of values, but gets a 13x13x8 image: add flatten before it (...,flatten,dense10,...); simdnet \
         does not flatten silently"
    );
    // A conv on a table of values (no image shape), and after flatten.
    assert_eq!(
        build_err("conv3x3x8,flatten,dense10", InputShape::Flat(2)),
        "item 1 (conv3x3x8) does not fit: input 2 -> conv3x3x8 needs an image, but the examples are rows of 2 \
         values with no image shape: use dense layers only for such data (e.g. dense64,relu,dense10)"
    );
    assert_eq!(
        build_err("flatten,conv3x3x8,dense10", mnist()),
        "item 2 (conv3x3x8) does not fit: input 28x28x1 -> flatten 784 -> conv3x3x8 needs an image, but gets a \
         row of 784 values: put convolutions, poolings and flatten before the first dense layer or flatten"
    );
    assert_eq!(
        build_err("flatten,dense12", mnist()),
        "the output layer dense12 (item 2) has 12 units but the data have 10 classes: end the spec with dense10"
    );
}

#[test]
fn p2_is_same_for_a_5x5_kernel_and_case_and_spaces_do_not_matter() {
    let a = Arch::parse("conv5x5x6p2, relu ,pool2,flatten,dense10").unwrap();
    let b = Arch::parse("CONV5x5x6same,ReLU,pool2,flatten,dense10").unwrap();
    assert_eq!(a.canonical(), "conv5x5x6same,relu,pool2,flatten,dense10");
    assert_eq!(a.canonical(), b.canonical());
    let valid = Arch::parse("conv3x3x4p0,flatten,dense10").unwrap();
    assert_eq!(
        valid.canonical(),
        Arch::parse("conv3x3x4valid,flatten,dense10").unwrap().canonical()
    );
    assert_eq!(valid.canonical(), "conv3x3x4,flatten,dense10");
}

/// The parameter counts from the formulas: conv `kh·kw·c_in·c_out + c_out`,
/// dense `in·out + out`, with the shapes worked out by hand.
#[test]
fn preset_parameter_counts_match_the_formulas() {
    let conv = |k: usize, cin: usize, cout: usize| k * k * cin * cout + cout;
    let dense = |i: usize, o: usize| i * o + o;
    // LeNet-5: 28 -same-> 28 -pool-> 14 -valid 5-> 10 -pool-> 5; 5·5·16 = 400.
    let lenet = conv(5, 1, 6) + conv(5, 6, 16) + dense(400, 120) + dense(120, 84) + dense(84, 10);
    assert_eq!(lenet, 61_706);
    // Keras mnist_cnn: 28 -> 26 -> 24 -pool-> 12; 12·12·64 = 9216.
    let keras = conv(3, 1, 32) + conv(3, 32, 64) + dense(9216, 128) + dense(128, 10);
    assert_eq!(keras, 1_199_882);
    for (name, want) in [("lenet", lenet), ("keras-cnn", keras)] {
        let net = Arch::preset(name).unwrap().build(mnist(), 10, 1).unwrap();
        assert_eq!(spec::spec_of(&net), spec::preset(name).unwrap());
        assert_eq!(net.num_params(), want, "{name}");
        let arch = Arch::preset(name).unwrap();
        let shapes = arch.shapes(mnist(), 10).unwrap();
        assert_eq!(spec::count_params(&arch, mnist(), &shapes), want, "{name}");
    }
}

#[test]
fn presets_build_the_layers_the_issue_names() {
    let net = Arch::preset("keras-cnn").unwrap().build(mnist(), 10, 1).unwrap();
    let kinds: Vec<&str> = net.layers().iter().map(Layer::kind_name).collect();
    assert_eq!(
        kinds,
        ["conv2d", "conv2d", "max_pooling2d", "flatten", "dense", "dense"]
    );
    assert_eq!(net.dropout(), &[0.0, 0.0, 0.25, 0.0, 0.5, 0.0]);
    let Layer::Conv2d(c) = &net.layers()[0] else {
        panic!()
    };
    assert_eq!(c.act, Activation::Relu);
    let lenet = Arch::preset("lenet").unwrap().build(mnist(), 10, 1).unwrap();
    let Layer::Conv2d(c) = &lenet.layers()[0] else {
        panic!()
    };
    assert_eq!(c.geometry.padding(), simdnet::geometry::Padding::Same);
    assert_eq!(c.geometry.output(), ImageShape::new(1, 28, 28, 6).unwrap());
    let Layer::Dense(out) = lenet.layers().last().unwrap() else {
        panic!()
    };
    assert_eq!(
        out.act,
        Activation::Identity,
        "the output's softmax is in the loss"
    );
}

#[test]
fn the_same_seed_builds_the_same_network_bit_for_bit() {
    let arch = Arch::preset("lenet").unwrap();
    let a = arch.build(mnist(), 10, 7).unwrap();
    let b = arch.build(mnist(), 10, 7).unwrap();
    let c = arch.build(mnist(), 10, 8).unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
    assert_eq!(a.dropout_seed(), 7);
    // A spec of dense layers is the MLP of `--layers`, weight for weight.
    let mlp = Arch::parse("dense16,relu,dense16,relu,dense10")
        .unwrap()
        .build(InputShape::Flat(784), 10, 3)
        .unwrap();
    assert_eq!(
        mlp,
        Network::mlp(784, &[16, 16], 10, Activation::Relu, 3).unwrap()
    );
}

const LENET_SUMMARY: &str = "\
Input shape: (28, 28, 1)
Layer (type)               Output shape  Param #
================================================
conv2d (5x5, same, relu)   (28, 28, 6)       156
max_pooling2d (2x2)        (14, 14, 6)         0
conv2d (5x5, valid, relu)  (10, 10, 16)    2,416
max_pooling2d (2x2)        (5, 5, 16)          0
flatten                    (400)               0
dense (relu)               (120)          48,120
dense (relu)               (84)           10,164
dense (softmax)            (10)              850
================================================
Total params: 61,706
Trainable params: 61,706
Non-trainable params: 0
";

const KERAS_SUMMARY: &str = "\
Input shape: (28, 28, 1)
Layer (type)               Output shape    Param #
==================================================
conv2d (3x3, valid, relu)  (26, 26, 32)        320
conv2d (3x3, valid, relu)  (24, 24, 64)     18,496
max_pooling2d (2x2)        (12, 12, 64)          0
dropout (0.25)             (12, 12, 64)          0
flatten                    (9216)                0
dense (relu)               (128)         1,179,776
dropout (0.5)              (128)                 0
dense (softmax)            (10)              1,290
==================================================
Total params: 1,199,882
Trainable params: 1,199,882
Non-trainable params: 0
";

#[test]
fn summaries_match_keras_layer_by_layer() {
    let lenet = Arch::preset("lenet").unwrap().build(mnist(), 10, 1).unwrap();
    assert_eq!(spec::summary(&lenet), LENET_SUMMARY);
    let keras = Arch::preset("keras-cnn").unwrap().build(mnist(), 10, 1).unwrap();
    assert_eq!(spec::summary(&keras), KERAS_SUMMARY);
}

fn keras_net() -> Network {
    Arch::preset("keras-cnn")
        .unwrap()
        .build(mnist(), 10, 5)
        .unwrap()
        .with_weight_decay(1e-4)
        .unwrap()
        .with_input_scale(1.0)
        .unwrap()
}

fn small_cnn() -> Network {
    let input = InputShape::Image(ImageShape::new(1, 7, 6, 2).unwrap());
    Arch::parse("conv3x3x4same,tanh,pool2,conv2x2x3,relu,dropout0.3,flatten,dense5,sigmoid,dense3")
        .unwrap()
        .build(input, 3, 11)
        .unwrap()
}

#[test]
fn v3_round_trips_bit_for_bit_and_dense_models_stay_v2() {
    for net in [keras_net(), small_cnn()] {
        let bytes = model_file::to_bytes(&net);
        assert_eq!(bytes[8..12], 3u32.to_le_bytes());
        let back = model_file::from_bytes(&bytes, Path::new("m")).unwrap();
        assert_eq!(back, net);
        assert_eq!(
            model_file::to_bytes(&back),
            bytes,
            "what loads saves to the same bytes"
        );
        assert_eq!(bits(&back), bits(&net));
        assert_eq!(back.dropout(), net.dropout());
        assert_eq!(back.dropout_seed(), net.dropout_seed());
        assert_eq!(spec::summary(&back), spec::summary(&net));
        // The spec read back from the network builds the same shapes.
        let again = Arch::parse(&spec::spec_of(&back)).unwrap();
        assert_eq!(spec::spec_of(&back), again.canonical());
    }
    let path = common::temp_file("model-spec", "cnn.simdnet");
    small_cnn().save(&path).unwrap();
    assert_eq!(Network::load(&path).unwrap(), small_cnn());
    // A network of dense layers is still written as version 2.
    let mlp = Network::mlp(12, &[7], 3, Activation::Tanh, 1).unwrap();
    let bytes = model_file::to_bytes(&mlp);
    assert_eq!(bytes[8..12], 2u32.to_le_bytes());
    assert_eq!(model_file::from_bytes(&bytes, Path::new("m")).unwrap(), mlp);
}

#[test]
fn corrupt_and_truncated_v3_files_are_refused_with_a_reason() {
    let good = model_file::to_bytes(&small_cnn());
    for cut in [good.len() - 1, good.len() - 9, good.len() / 2, 40, 30, 21] {
        let e = model_load_err(&good[..cut]);
        assert!(
            e.contains("checksum") || e.contains("truncated"),
            "cut {cut}: {e}"
        );
        // Resealed, the checksum passes and the bounded reads must say truncated.
        let mut cut_bytes = good[..cut].to_vec();
        cut_bytes.extend_from_slice(&[0; 8]);
        let e = model_load_err(&reseal(cut_bytes));
        assert!(
            e.contains("truncated") || e.contains("describes"),
            "resealed cut {cut}: {e}"
        );
    }
    // Layout: magic 8, version 4, inputs 4, layers 4; then layer 0 (conv): kind at 20,
    // input h, w, c at 21, 25, 29; kernel h, w, filters at 33, 37, 41; padding 45; act 46.
    assert_eq!(good[20], 1, "layer 0 is a conv");
    let edit = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        model_load_err(&reseal(b))
    };
    assert!(
        edit(20, &[9]).contains("layer 0 has unknown kind 9"),
        "{}",
        edit(20, &[9])
    );
    let e = edit(21, &8u32.to_le_bytes());
    assert!(
        e.contains("layer 0 reads 8x6x2 images, but its input has 84 values"),
        "{e}"
    );
    // A 9x3 kernel: with padding same it fits but the weights no longer match the header...
    let e = edit(33, &9u32.to_le_bytes());
    assert!(e.contains("the header describes"), "{e}");
    // ...and with padding valid it does not fit in the 7x6 images.
    let mut b = good.clone();
    b[33..37].copy_from_slice(&9u32.to_le_bytes());
    b[45] = 0;
    let e = model_load_err(&reseal(b));
    assert!(e.contains("layer 0: conv2d: a 9x3 kernel does not fit"), "{e}");
    let e = edit(33, &u32::MAX.to_le_bytes());
    assert!(e.contains("implausible"), "{e}");
    assert!(edit(45, &[7]).contains("unknown padding code 7"));
    assert!(edit(46, &[77]).contains("unknown activation code 77"));
    // Layer 1 (pool) must read what layer 0 writes: 7x6x4 (same), not 6x7x4.
    assert_eq!(good[47], 2, "layer 1 is a pool");
    let mut swapped = good.clone();
    swapped[48..52].copy_from_slice(&6u32.to_le_bytes());
    swapped[52..56].copy_from_slice(&7u32.to_le_bytes());
    let e = model_load_err(&reseal(swapped));
    assert!(
        e.contains("layer 1 reads 6x7x4 images, but the layer before it writes other images"),
        "{e}"
    );
    // The output layer must be a dense softmax layer.
    let net = Arch::parse("flatten,dense3").unwrap();
    let input = InputShape::Image(ImageShape::new(1, 2, 2, 1).unwrap());
    let mut b = model_file::to_bytes(&net.build(input, 3, 1).unwrap());
    assert_eq!(b[33], 0, "layer 1 is dense");
    b[33] = 3;
    let e = model_load_err(&reseal(b));
    assert!(e.contains("the output layer has kind 3"), "{e}");
    // A NaN weight in the conv filters.
    let mut nan = good.clone();
    let at = good.len() - 8 - 4 * small_cnn().num_params();
    nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(model_load_err(&reseal(nan)).contains("layer 0 holds a non-finite weight"));
    // Every message says how to get a good model.
    assert!(model_load_err(&good[..30]).contains("simdnet train --save"));
}

#[test]
fn version_1_and_2_files_still_load() {
    let net = Network::mlp(6, &[4], 3, Activation::Relu, 2).unwrap();
    let v2 = model_file::to_bytes(&net);
    assert_eq!(model_file::from_bytes(&v2, Path::new("v2")).unwrap(), net);
    // Version 1: the layer table, then straight to the weights.
    let table_end = 20 + 5 * 2;
    let fields = 4 + 4 + 8 + 4 * 2; // scale, decay, seed, two dropout rates
    let mut v1 = v2[..table_end].to_vec();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&v2[table_end + fields..v2.len() - 8]);
    v1.extend_from_slice(&[0; 8]);
    let back = model_file::from_bytes(&reseal(v1), Path::new("v1")).unwrap();
    assert_eq!(bits(&back), bits(&net));
    assert_eq!(back.dropout_seed(), 0);
}
