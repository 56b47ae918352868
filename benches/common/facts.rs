// Shared by the benches (included with `include!`): the machine facts printed beside the numbers.

/// One line of build and machine facts: SIMD hardware, fused multiply-add, GEMM, block sizes, cores.
#[allow(dead_code)]
fn machine_facts() -> String {
    use simdnet::profile::facts::{describe, BuildFacts};
    let facts = BuildFacts::current();
    format!(
        "machine: {} cores; build: SIMD {}; GEMM {} (kernel {}), block sizes {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        facts.simd.describe(),
        "BLIS-style",
        facts.micro_kernel,
        describe(facts.blocks)
    )
}

/// `--name value` from the bench's arguments (cargo passes `--bench` too; it is ignored).
#[allow(dead_code)]
fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[allow(dead_code)]
fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// Rayon pools of 1 and 2 threads, for timing one against the other.
#[allow(dead_code)]
fn pools_of_1_and_2() -> [rayon::ThreadPool; 2] {
    [1, 2].map(|t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("a thread pool")
    })
}
