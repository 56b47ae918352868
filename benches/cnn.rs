//! Convolutional networks on MNIST, 1 thread against 2, and their distance
//! to the compute limit: `cargo bench --bench cnn [-- --steps N --runs N --epoch --only lenet|keras]`;
//! `-- --layers [--only lenet|keras] [--passes N]` times each layer of one shard (20 passes).
//!
//! Builds LeNet-5 (conv 5x5x6 same relu, pool, conv 5x5x16 valid relu, pool,
//! flatten, dense 120 relu, dense 84 relu, dense 10) and Keras' mnist_cnn
//! (conv 3x3x32 valid relu, conv 3x3x64 valid relu, pool, dropout 0.25,
//! flatten, dense 128 relu, dropout 0.5, dense 10) with `Network::from_layers`,
//! and times training steps of batch 128 with Adam (lr 0.001) on MNIST,
//! shuffled, after warm-up steps: the median over `--runs` (3) of `--steps`
//! steps (LeNet 120, Keras 24), extrapolated to an epoch of 60,000 images
//! (469 steps). `--epoch` times one whole epoch instead (training only, as
//! PyTorch's `torch_cnn.py` does). Prints GFLOP/s (forward, `dW` and `dx`
//! GEMM work, none for the first layer's `dx`) and the share of the FMA
//! peak measured in the same process (as `simdnet bench` measures it).

use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use simdnet::data::{mnist, Dataset};
use simdnet::geometry::{ImageShape, Padding};
use simdnet::nn::{Activation, Conv2d, Dense, Flatten, Layer, MaxPool2d, Network, Optimizer, Trainer};
use simdnet::profile::machine::{median, peak_samples};

include!("common/facts.rs");

fn img(h: usize, w: usize, c: usize) -> ImageShape {
    ImageShape::new(1, h, w, c).expect("shape")
}

fn dense(inputs: usize, outputs: usize, act: Activation, rng: &mut rand::rngs::StdRng) -> Layer {
    use rand::Rng;
    let limit = (6.0 / (inputs + outputs) as f32).sqrt();
    Layer::Dense(Dense {
        w: simdnet::Matrix::from_fn(inputs, outputs, |_, _| rng.random_range(-limit..limit)),
        b: vec![0.0; outputs],
        act,
    })
}

/// LeNet-5 as the issue and PyTorch's `torch_cnn.py` define it.
fn lenet(seed: u64) -> Network {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let relu = Activation::Relu;
    let layers = vec![
        Layer::Conv2d(Conv2d::new(img(28, 28, 1), 5, 5, 6, Padding::Same, relu, &mut rng).expect("conv")),
        Layer::MaxPool2d(MaxPool2d::new(img(28, 28, 6)).expect("pool")),
        Layer::Conv2d(Conv2d::new(img(14, 14, 6), 5, 5, 16, Padding::Valid, relu, &mut rng).expect("conv")),
        Layer::MaxPool2d(MaxPool2d::new(img(10, 10, 16)).expect("pool")),
        Layer::Flatten(Flatten::new(img(5, 5, 16))),
        dense(400, 120, relu, &mut rng),
        dense(120, 84, relu, &mut rng),
        dense(84, 10, Activation::Identity, &mut rng),
    ];
    Network::from_layers(784, layers).expect("LeNet-5")
}

/// Keras' mnist_cnn example, with its two dropouts.
fn keras_cnn(seed: u64) -> Network {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let relu = Activation::Relu;
    let layers = vec![
        Layer::Conv2d(Conv2d::new(img(28, 28, 1), 3, 3, 32, Padding::Valid, relu, &mut rng).expect("conv")),
        Layer::Conv2d(Conv2d::new(img(26, 26, 32), 3, 3, 64, Padding::Valid, relu, &mut rng).expect("conv")),
        Layer::MaxPool2d(MaxPool2d::new(img(24, 24, 64)).expect("pool")),
        Layer::Flatten(Flatten::new(img(12, 12, 64))),
        dense(9216, 128, relu, &mut rng),
        dense(128, 10, Activation::Identity, &mut rng),
    ];
    Network::from_layers(784, layers)
        .expect("mnist_cnn")
        .with_dropout_rates(&[0.0, 0.0, 0.25, 0.0, 0.5])
        .expect("dropout")
        .with_dropout_seed(seed)
}

/// GFLOP of training one example: forward, dW and dx GEMMs (no dx for the first layer).
fn train_gflop_per_example(net: &Network) -> f64 {
    let macs: Vec<f64> = net.layers().iter().map(|l| l.forward_macs() as f64).collect();
    2.0 * (3.0 * macs.iter().sum::<f64>() - macs[0]) * 1e-9
}

/// Seconds per training step (median of `runs` runs of `steps` steps, after warm-up).
fn step_seconds(make: &dyn Fn(u64) -> Network, data: &Dataset, steps: usize, runs: usize) -> f64 {
    let mut net = make(1);
    let mut trainer = Trainer::new(&net, Optimizer::adam(0.001), 128).expect("trainer");
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(1));
    let mut batches = order.chunks_exact(128).cycle();
    for _ in 0..3 {
        trainer
            .step_indices(&mut net, data, batches.next().expect("a batch"))
            .expect("step");
    }
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..steps {
                trainer
                    .step_indices(&mut net, data, batches.next().expect("a batch"))
                    .expect("step");
            }
            t.elapsed().as_secs_f64() / steps as f64
        })
        .collect();
    median(&times)
}

/// Seconds of one whole training epoch (no validation).
fn epoch_seconds(make: &dyn Fn(u64) -> Network, data: &Dataset) -> f64 {
    use simdnet::nn::{fit, TrainConfig};
    let mut net = make(1);
    let cfg = TrainConfig::default()
        .with_epochs(1)
        .with_batch_size(128)
        .with_seed(1);
    let history = fit(&mut net, Optimizer::adam(0.001), data, None, &cfg, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .expect("training");
    history[0].train_seconds
}

/// `--layers`: one shard of 64 MNIST images through forward, loss and
/// backward on one thread, 20 times: the profiler's time per kernel and layer.
fn layer_times(name: &str, net: &Network, data: &Dataset) {
    use simdnet::gemm::Parallelism::Sequential;
    use simdnet::nn::Workspace;
    let rows = 64;
    let pixels = match data.input() {
        simdnet::data::Input::Pixels(x) => x.rows_range(0, rows),
        _ => unreachable!("MNIST is pixels"),
    };
    let mut ws = Workspace::new(net, rows);
    let labels = &data.labels()[..rows];
    let passes: usize = arg("--passes").and_then(|p| p.parse().ok()).unwrap_or(20);
    let mut pass = || {
        let _training = simdnet::trace::training();
        ws.forward_train(net, pixels, 1.0 / 255.0, 0, 0, Sequential);
        ws.loss(labels, 1.0 / rows as f32);
        ws.backward(net, pixels, 1.0 / 255.0, Sequential);
    };
    pass();
    simdnet::trace::reset();
    simdnet::trace::enable(true);
    let (t, cpu0) = (Instant::now(), thread_cpu_seconds());
    for _ in 0..passes {
        pass();
    }
    let total = t.elapsed().as_secs_f64() / passes as f64;
    let cpu = (thread_cpu_seconds() - cpu0) / passes as f64;
    simdnet::trace::enable(false);
    println!(
        "{name}: one shard of {rows} images, 1 thread: {:.3} ms per pass, {:.3} ms of it on the CPU \
         (the kernels' times below are wall times)",
        total * 1e3,
        cpu * 1e3
    );
    for r in simdnet::trace::snapshot() {
        let ms = r.seconds / passes as f64 * 1e3;
        let gf = if r.flops > 0 {
            format!("{:>6.0} GFLOP/s", r.flops as f64 / r.seconds * 1e-9)
        } else {
            String::new()
        };
        println!("  layer {} {:<28} {:>8.3} ms {gf}", r.layer, r.kind.label(), ms);
    }
}

/// This thread's time on the CPU (Linux: /proc/thread-self/schedstat; 0 elsewhere).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns * 1e-9)
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let (train, _test) = mnist::load_both(&dir).expect("MNIST in data/");
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(3);
    let whole_epoch = flag("--epoch");
    let only = arg("--only");
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.starts_with(o));
    if flag("--layers") {
        if wanted("lenet") {
            layer_times("lenet", &lenet(1), &train);
        }
        if wanted("keras-cnn") {
            layer_times("keras-cnn", &keras_cnn(1), &train);
        }
        return;
    }
    println!("{}", machine_facts());
    let pools = pools_of_1_and_2();
    let peak1 = median(&peak_samples(&pools[0], 0.2, 5));
    let peak2 = median(&peak_samples(&pools[1], 0.2, 5));
    let steps_per_epoch = train.len().div_ceil(128);
    println!(
        "FMA peak: {peak1:.0} GFLOP/s on 1 thread, {peak2:.0} on 2; batch 128, Adam 0.001; {}",
        if whole_epoch {
            "one whole epoch (training only)".to_string()
        } else {
            format!("median of {runs} runs, extrapolated to {steps_per_epoch} steps")
        }
    );
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "network", "MFLOP/ex", "1t s/ep", "2t s/ep", "speedup", "1t GF/s", "2t GF/s", "2t peak", "2t/limit"
    );
    type Make = fn(u64) -> Network;
    let nets: [(&str, Make, usize); 2] = [("lenet", lenet, 120), ("keras-cnn", keras_cnn, 24)];
    for (name, make, default_steps) in nets {
        if !wanted(name) {
            continue;
        }
        let steps = arg("--steps")
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_steps);
        let gflop_epoch = train_gflop_per_example(&make(1)) * train.len() as f64;
        let time = |pool: &rayon::ThreadPool| {
            pool.install(|| {
                if whole_epoch {
                    epoch_seconds(&make, &train)
                } else {
                    step_seconds(&make, &train, steps, runs) * steps_per_epoch as f64
                }
            })
        };
        let (t1, t2) = (time(&pools[0]), time(&pools[1]));
        let limit = gflop_epoch / peak2;
        println!(
            "{:<10} {:>8.2} {:>9.3} {:>9.3} {:>7.2}x {:>8.0} {:>8.0} {:>7.0}% {:>8.2}x",
            name,
            gflop_epoch / train.len() as f64 * 1e3,
            t1,
            t2,
            t1 / t2,
            gflop_epoch / t1,
            gflop_epoch / t2,
            100.0 * gflop_epoch / t2 / peak2,
            t2 / limit
        );
    }
}
