//! Training on arbitrary small problems: the promise that a seed fixes the
//! result bit for bit whatever the thread count, and across a checkpoint
//! and resume, put to shapes no test chose. The first eight bytes pick the
//! data (1-48 examples of 1-800 `u8` pixels with a chosen share of zeros,
//! as MNIST's are, an image of up to 19x19 of them, scaled to 0..1 or
//! raw, or `f32` values of up to 2, 2e3, 2e15 or 2e30 in size), the
//! batch size, the optimiser, a weight decay, 1 or 2 epochs, the seed and a
//! step to stop at; the rest is an `--arch` spec. The training set is also
//! the validation set, so evaluation runs too.
//!
//! The run is trained three times: on 1 thread, on 2, and on 3 stopped
//! after the chosen step, checkpointed to bytes, read back and finished on
//! 2. What must hold: no panic; a checkpoint reads back; the three end
//! alike (the same error message, or the same weights, losses and
//! accuracies, bit for bit; an interrupted run that diverges may say so at
//! its interruption, a step before the others).
#![no_main]

use std::ops::ControlFlow;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use simdnet::data::Dataset;
use simdnet::nn::spec::{self, Arch, InputShape};
use simdnet::nn::{
    checkpoint, fit, EpochStats, Evaluation, Network, Optimizer, Progress, Session, TrainConfig,
};

/// Largest network trained (the engine's one-shard path starts at 2^19).
const MAX_PARAMS: usize = 1 << 20;

fn pools() -> &'static [rayon::ThreadPool; 3] {
    static POOLS: OnceLock<[rayon::ThreadPool; 3]> = OnceLock::new();
    POOLS.get_or_init(|| [1, 2, 3].map(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()))
}

/// A small generator for the examples (xorshift).
fn next(s: &mut u32) -> u32 {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    *s
}

/// The weights' bits, and each epoch's losses and accuracies (training and
/// validation) as bits.
type Outcome = (Vec<u32>, Vec<[u64; 4]>);

fn outcome(net: &Network, history: &[EpochStats]) -> Outcome {
    let weights = net
        .layers()
        .iter()
        .flat_map(|l| l.params().into_iter().flatten().map(|v| v.to_bits()))
        .collect();
    let epochs = history
        .iter()
        .map(|e| {
            let v = e.validation.as_ref().expect("a validation set was given");
            [e.loss, e.accuracy, v.loss, v.accuracy].map(bits)
        })
        .collect();
    (weights, epochs)
}

/// A number's bits, any NaN as one: a checkpoint keeps the history as
/// text, where NaN has no sign.
fn bits(x: f64) -> u64 {
    if x.is_nan() { f64::NAN } else { x }.to_bits()
}

/// The same evaluation, bit for bit (any NaN as one).
fn same(a: Option<Evaluation>, b: Option<Evaluation>) -> bool {
    let key = |e: Option<Evaluation>| e.map(|e| [e.loss, e.accuracy].map(bits));
    key(a) == key(b)
}

/// An outcome in a line: the error, or the weights' count and a hash of
/// their bits, and each epoch's numbers.
fn describe(r: &Result<Outcome, String>) -> String {
    match r {
        Err(e) => format!("error {e:?}"),
        Ok((w, epochs)) => format!(
            "{} weights (hash {:x}), epochs {:?}",
            w.len(),
            w.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b)),
            epochs.iter().map(|e| e.map(f64::from_bits)).collect::<Vec<_>>()
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[count, w0, w1, batch, flags, zeros, seed, stop], text)) = data.split_first_chunk::<8>()
    else {
        return;
    };
    let n = 1 + usize::from(count % 48);
    let image = w1 & 0x80 != 0;
    let (rows, cols) = if image {
        (4 + usize::from(w0 % 16), 4 + usize::from(w1 % 16))
    } else {
        (1, 1 + (usize::from(w0) | usize::from(w1 & 3) << 8) % 800)
    };
    let width = rows * cols;
    let values = flags & 0x20 != 0;
    let mut s = 0x9e37_79b9 ^ u32::from(seed) << 8 ^ u32::from(zeros);
    let labels: Vec<u8> = (0..n).map(|_| (next(&mut s) % 10) as u8).collect();
    // the two top bits: values up to 2, 2e3, 2e15 or 2e30; pixels scaled to 0..1 or raw
    let magnitude = [1.0, 1e3, 1e15, 1e30][usize::from(flags >> 6)];
    let input_scale = if flags & 0x40 != 0 { 1.0 } else { 1.0 / 255.0 };
    let set = if values {
        let v = (0..n * width)
            .map(|_| ((next(&mut s) % 401) as f32 / 100.0 - 2.0) * magnitude)
            .collect();
        Dataset::from_values(v, labels, width)
    } else {
        let p = (0..n * width)
            .map(|_| {
                let r = next(&mut s);
                if (r & 0xff) < u32::from(zeros) {
                    0
                } else {
                    (r >> 8) as u8
                }
            })
            .collect();
        if image {
            Dataset::new(p, labels, rows, cols)
        } else {
            Dataset::from_pixels(p, labels, width)
        }
    };
    let set = set.expect("the data set's sizes agree");
    let input = InputShape::of(&set);
    let Ok(arch) = Arch::parse(&String::from_utf8_lossy(text)) else {
        return;
    };
    let Ok(shapes) = arch.shapes(input, 10) else {
        return;
    };
    if spec::count_params(&arch, input, &shapes) > MAX_PARAMS {
        return;
    }
    let optimizer = match flags & 3 {
        0 => Optimizer::sgd(0.01),
        1 => Optimizer::momentum(0.01, 0.9),
        2 => Optimizer::rmsprop(0.001),
        _ => Optimizer::adam(0.001),
    };
    let decay = if flags & 4 != 0 { 0.01 } else { 0.0 };
    let cfg = TrainConfig::default()
        .with_epochs(1 + usize::from(flags >> 3 & 1))
        .with_batch_size(1 + usize::from(batch % 64))
        .with_seed(u64::from(seed));
    let build = || {
        arch.build(input, 10, u64::from(seed))
            .expect("a spec whose shapes fit builds")
            .with_weight_decay(decay)
            .and_then(|net| {
                if values {
                    Ok(net)
                } else {
                    net.with_input_scale(input_scale)
                }
            })
            .expect("a weight decay of 0.01 and a positive input scale are accepted")
    };
    let [one, two, three] = pools();
    let plain = |pool: &rayon::ThreadPool| {
        let mut net = build();
        pool.install(|| {
            fit(&mut net, optimizer, &set, Some(&set), &cfg, &mut |_| {
                ControlFlow::Continue(())
            })
        })
        .map(|history| {
            // `simdnet evaluate` of the trained network repeats the last epoch's validation
            let last = history.last().and_then(|e| e.validation);
            let again = pool.install(|| net.evaluate(&set)).ok();
            assert!(
                same(last, again),
                "evaluating the trained network gives {again:?}, its last epoch {last:?}"
            );
            outcome(&net, &history)
        })
        .map_err(|e| e.to_string())
    };
    // Stopped after step `stop_at` (counted over the epochs) on 3 threads,
    // checkpointed to bytes and read back, then finished on 2.
    let steps = cfg.epochs * n.div_ceil(cfg.batch_size.min(n));
    let stop_at = 1 + usize::from(stop) % steps;
    let resumed = || -> Result<Outcome, String> {
        let mut net = build();
        let mut session = Session::new(&net, optimizer, &set, &cfg).map_err(|e| e.to_string())?;
        let mut seen = 0;
        let mut on = |p: Progress| {
            if let Progress::Step { .. } = p {
                seen += 1;
                if seen == stop_at {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        };
        three.install(|| -> Result<(), String> {
            while session
                .next_epoch(&mut net, &set, Some(&set), &cfg, &mut on)
                .map_err(|e| e.to_string())?
                == simdnet::nn::Outcome::Epoch
            {}
            Ok(())
        })?;
        let bytes = checkpoint::to_bytes(&net, &session, &cfg, &[]);
        let ck = checkpoint::from_bytes(&bytes, "fuzz.ck".as_ref()).expect("a checkpoint reads back");
        assert!(ck.cfg == cfg, "the checkpoint's settings are the run's");
        let (mut net, mut session) = (ck.net, ck.session);
        two.install(|| -> Result<(), String> {
            while session
                .next_epoch(&mut net, &set, Some(&set), &cfg, &mut |_| {
                    ControlFlow::Continue(())
                })
                .map_err(|e| e.to_string())?
                == simdnet::nn::Outcome::Epoch
            {}
            Ok(())
        })?;
        Ok(outcome(&net, &session.history))
    };
    let reference = plain(one);
    assert!(plain(two) == reference, "2 threads differ from 1");
    let resumed = resumed();
    // An interruption right after an update that overflowed the weights is
    // reported there; the run that went on finds the next step's loss NaN.
    let diverged =
        |r: &Result<Outcome, String>| r.as_ref().is_err_and(|e| e.starts_with("training diverged: "));
    assert!(
        resumed == reference || diverged(&resumed) && diverged(&reference),
        "stopped after step {stop_at} of {steps} on 3 threads and resumed on 2, the run differs from 1 thread's: {} against {}",
        describe(&resumed),
        describe(&reference)
    );
});
