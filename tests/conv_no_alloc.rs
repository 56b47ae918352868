//! A convolutional network's training step allocates nothing once its
//! workspaces exist (the CNN case of tests/no_alloc.rs, in its own test
//! binary because the counting allocator counts every thread of the process).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use simdnet::data::Dataset;
use simdnet::geometry::{ImageShape, Padding};
use simdnet::matrix::Matrix;
use simdnet::nn::{Activation, Conv2d, Dense, Flatten, Layer, MaxPool2d, Network, Optimizer, Trainer};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// 12x12x1 -> conv 3x3x8 same relu -> conv 3x3x20 valid relu -> pool ->
/// flatten 500 -> dense 32 relu -> dense 10, dropout after the second
/// conv, the pool and the dense layer.
fn cnn() -> Network {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let img = |h, w, c| ImageShape::new(1, h, w, c).unwrap();
    let layers = vec![
        Layer::Conv2d(
            Conv2d::new(img(12, 12, 1), 3, 3, 8, Padding::Same, Activation::Relu, &mut rng).unwrap(),
        ),
        Layer::Conv2d(
            Conv2d::new(
                img(12, 12, 8),
                3,
                3,
                20,
                Padding::Valid,
                Activation::Relu,
                &mut rng,
            )
            .unwrap(),
        ),
        Layer::MaxPool2d(MaxPool2d::new(img(10, 10, 20)).unwrap()),
        Layer::Flatten(Flatten::new(img(5, 5, 20))),
        Layer::Dense(Dense {
            w: Matrix::from_fn(500, 32, |i, j| ((i * 7 + j * 3) % 11) as f32 / 110.0 - 0.05),
            b: vec![0.0; 32],
            act: Activation::Relu,
        }),
        Layer::Dense(Dense {
            w: Matrix::from_fn(32, 10, |i, j| ((i * 5 + j) % 7) as f32 / 35.0 - 0.1),
            b: vec![0.0; 10],
            act: Activation::Identity,
        }),
    ];
    Network::from_layers(144, layers)
        .unwrap()
        .with_dropout_rates(&[0.0, 0.1, 0.25, 0.0, 0.5])
        .unwrap()
}

fn steps_allocate(threads: usize) -> usize {
    let pixels = (0..256 * 144).map(|i| (i * 31 % 256) as u8).collect();
    let labels = (0..256).map(|i| (i % 10) as u8).collect();
    let d = Dataset::new(pixels, labels, 12, 12).unwrap();
    let mut net = cnn();
    let mut trainer = Trainer::new(&net, Optimizer::adam(0.001), 128).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    // Each worker's packing buffers grow once, the first time that thread packs.
    pool.broadcast(|_| {
        let (a, b) = ([1.0f32; 4], [1.0f32; 4]);
        let mut c = [0.0f32; 4];
        simdnet::gemm::gemm(
            1.0,
            simdnet::matrix::MatRef::from_slice(&a, 2, 2),
            simdnet::matrix::MatRef::from_slice(&b, 2, 2),
            0.0,
            simdnet::matrix::MatMut::from_slice(&mut c, 2, 2),
            simdnet::gemm::Epilogue::None,
            simdnet::gemm::Parallelism::Sequential,
        );
    });
    let order: Vec<usize> = (0..256).rev().collect();
    pool.install(|| {
        for _ in 0..10 {
            trainer.step_indices(&mut net, &d, &order[..128]).unwrap();
            trainer.step_indices(&mut net, &d, &order[128..228]).unwrap(); // a short last batch too
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..3 {
            trainer.step_indices(&mut net, &d, &order[..128]).unwrap();
            trainer.step_indices(&mut net, &d, &order[128..228]).unwrap();
        }
        ALLOCATIONS.load(Ordering::Relaxed) - before
    })
}

#[test]
fn cnn_training_steps_do_not_allocate() {
    for threads in [1, 2] {
        assert_eq!(steps_allocate(threads), 0, "CNN, {threads} threads");
    }
}
