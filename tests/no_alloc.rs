//! A training step allocates nothing once its workspaces exist: dense
//! networks (sharded and GEMM-threaded, with dropout and weight decay) and a
//! convolutional one (convolutions, max-pooling, flatten, dropout).
//!
//! A counting global allocator wraps the system one; after every worker has
//! reserved its packing buffers (`gemm::reserve_pack_buffers`; otherwise
//! each grows the first time that thread packs) and ten warm-up steps of
//! each batch size, the count must not move. One test function, because
//! the allocator counts every thread of the process: a second test running
//! beside it would count.
//!
//! Except the workers of a pool already dropped: rayon does not join them,
//! and a worker's thread-local destructors (crossbeam's epoch handle
//! allocates as it retires) may run while the next measurement does. Seen
//! in CI and with the test pinned to one core (`taskset -c 0`), about one
//! run in six. Each pool's workers carry its number, and a worker of an
//! older pool is not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use simdnet::data::Dataset;
use simdnet::geometry::{ImageShape, Padding};
use simdnet::matrix::Matrix;
use simdnet::nn::{Activation, Conv2d, Dense, Flatten, Layer, MaxPool2d, Network, Optimizer, Trainer};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// The number of the pool being measured (pools are numbered from 1).
static POOL: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The pool this thread works for; 0 for a thread outside our pools.
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Whether an allocation on this thread counts: not on a worker of a
/// pool dropped before this one.
fn counts() -> bool {
    WORKER_OF
        .try_with(|p| p.get() == 0 || p.get() == POOL.load(Ordering::Relaxed))
        .unwrap_or(true)
}

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counts() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counts() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn data(n: usize, rows: usize, cols: usize) -> Dataset {
    let pixels = (0..n * rows * cols).map(|i| (i * 31 % 256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::new(pixels, labels, rows, cols).unwrap()
}

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

fn steps_allocate(hidden: &[usize], threads: usize, opt: Optimizer) -> usize {
    steps_allocate_with(hidden, threads, opt, 0.0, 0.0)
}

fn steps_allocate_with(hidden: &[usize], threads: usize, opt: Optimizer, dropout: f32, decay: f32) -> usize {
    let net = Network::mlp(784, hidden, 10, Activation::Relu, 1)
        .unwrap()
        .with_dropout(dropout)
        .unwrap()
        .with_weight_decay(decay)
        .unwrap();
    net_steps_allocate(net, &data(256, 1, 784), threads, opt)
}

/// Allocations in six training steps of `net` on `d` after the warm-up.
fn net_steps_allocate(mut net: Network, d: &Dataset, threads: usize, opt: Optimizer) -> usize {
    let mut trainer = Trainer::new(&net, opt, 128).unwrap();
    let number = POOL.fetch_add(1, Ordering::Relaxed) + 1;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(move |_| WORKER_OF.with(|p| p.set(number)))
        .build()
        .unwrap();
    // Each worker's packing buffers grow once, the first time that thread
    // packs; work stealing may keep a worker away from every packing GEMM
    // through the warm-up (seen: 5 to 8 runs in 30 on one core), so every
    // worker reserves them here first.
    pool.broadcast(|_| simdnet::gemm::reserve_pack_buffers());
    let order: Vec<usize> = (0..256).rev().collect();
    pool.install(|| {
        for _ in 0..10 {
            trainer.step_indices(&mut net, d, &order[..128]).unwrap();
            trainer.step_indices(&mut net, d, &order[128..228]).unwrap(); // a short last batch too
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..3 {
            trainer.step_indices(&mut net, d, &order[..128]).unwrap();
            trainer.step_indices(&mut net, d, &order[128..228]).unwrap();
        }
        ALLOCATIONS.load(Ordering::Relaxed) - before
    })
}

#[test]
fn training_steps_do_not_allocate() {
    // Both threading strategies: sharded small networks and GEMM-threaded large ones.
    let big = Network::mlp(784, &[768, 64], 10, Activation::Relu, 1).unwrap();
    assert_eq!(
        Trainer::shard_rows_for(&big, 128),
        128,
        "768-64 must take the one-shard path"
    );
    let split = Network::mlp(784, &[512, 512], 10, Activation::Relu, 1).unwrap();
    assert_eq!(Trainer::shard_rows_for(&split, 128), 128, "512-512: one shard");
    assert_eq!(
        Trainer::new(&split, Optimizer::rmsprop(0.001), 128)
            .unwrap()
            .first_layer_parts(),
        2,
        "512-512: its first layer split in two"
    );
    for threads in [1, 2] {
        assert_eq!(
            steps_allocate(&[16, 16], threads, Optimizer::rmsprop(0.001)),
            0,
            "16-16, {threads} threads"
        );
        assert_eq!(
            steps_allocate(&[16], threads, Optimizer::adam(0.001)),
            0,
            "16, {threads} threads"
        );
        assert_eq!(
            steps_allocate(&[768, 64], threads, Optimizer::rmsprop(0.001)),
            0,
            "768-64, {threads} threads"
        );
        // One shard whose first layer is split along its inputs (nn::split).
        assert_eq!(
            steps_allocate(&[512, 512], threads, Optimizer::rmsprop(0.001)),
            0,
            "512-512, {threads} threads"
        );
        // Dropout (masks regenerated from a hash, never stored) and weight decay.
        assert_eq!(
            steps_allocate_with(&[16, 16], threads, Optimizer::rmsprop(0.001), 0.2, 1e-4),
            0,
            "16-16 with dropout, {threads} threads"
        );
        assert_eq!(
            steps_allocate_with(&[768, 64], threads, Optimizer::adam(0.001), 0.5, 1e-4),
            0,
            "768-64 with dropout, {threads} threads"
        );
        assert_eq!(
            net_steps_allocate(cnn(), &data(256, 12, 12), threads, Optimizer::adam(0.001)),
            0,
            "CNN with dropout, {threads} threads"
        );
    }
}
