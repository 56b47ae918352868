//! The architecture spec of `--arch` (`nn::spec::Arch::parse`) on arbitrary
//! text, then its checks against an input shape: the first two bytes pick
//! the input (an image of up to 64x64 pixels with 1 or 3 channels, or a
//! flat row of up to 4,096 values), the third the classes (1-16), the rest
//! is the spec. A spec that fits is counted (parameters, multiply-adds,
//! training bytes) and, if small, built and run forward on one example.
//!
//! What must hold: `Ok` or `Err`, never a panic; a spec that fits builds a
//! network whose parameter count is the one counted beforehand.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::geometry::ImageShape;
use simdnet::matrix::MatRef;
use simdnet::nn::spec::{self, Arch, InputShape};

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b, c], text)) = data.split_first_chunk::<3>() else {
        return;
    };
    let input = if a & 0x80 == 0 {
        let side = |v: u8| 1 + usize::from(v % 64);
        match ImageShape::new(1, side(a), side(b), 1 + usize::from(a >> 6 & 1) * 2) {
            Ok(shape) => InputShape::Image(shape),
            Err(_) => return,
        }
    } else {
        InputShape::Flat(1 + usize::from(u16::from_le_bytes([b, a & 0x0f])))
    };
    let classes = 1 + usize::from(c % 16);
    let Ok(arch) = Arch::parse(&String::from_utf8_lossy(text)) else {
        return;
    };
    let _ = arch.canonical();
    let Ok(shapes) = arch.shapes(input, classes) else {
        return;
    };
    let params = spec::count_params(&arch, input, &shapes);
    let _ = spec::multiply_adds(&arch, input, &shapes);
    let _ = spec::training_bytes(&shapes, params, 128, 2);
    if params <= 200_000 {
        let net = arch
            .build(input, classes, 1)
            .expect("a spec whose shapes fit builds");
        assert_eq!(net.num_params(), params);
        let _ = spec::spec_of(&net);
        let _ = spec::summary(&net);
        let x = vec![0.5f32; input.len()];
        let out = net.predict_scaled(MatRef::from_slice(&x, 1, x.len()), 1.0);
        assert_eq!(out.map(|p| (p.rows(), p.cols())).ok(), Some((1, classes)));
    }
});
