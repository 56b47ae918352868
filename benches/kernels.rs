//! The fused kernels in GB/s: `cargo bench --bench kernels [-- --runs N --quick]`.
//!
//! Each kernel is verified against plain loops first, then timed `runs`
//! times (median reported) at two sizes: one that fits in L2 (a 128 x 512
//! batch, what training sees with a 512-wide layer) and one far larger than
//! L3 (16M elements, which compares with the DRAM bandwidth `simdnet bench`
//! measures). Bytes are counted like STREAM (no write-allocate traffic).

use simdnet::profile::bench::{time_fused, verify_fused, Fused};
use simdnet::profile::machine::median;

include!("common/facts.rs");

fn main() {
    let quick = flag("--quick");
    let runs: usize = arg("--runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 3 } else { 21 });
    println!("{}", machine_facts());
    let big = if quick { 1 << 20 } else { 1 << 24 };
    println!(
        "{:<26} {:>10} {:>9} {:>10} {:>8}   (median of {runs} runs)",
        "kernel", "elements", "threads", "median ms", "GB/s"
    );
    let pool = rayon::ThreadPoolBuilder::new().build().expect("thread pool");
    pool.install(|| {
        for kind in Fused::ALL {
            if let Err(e) = verify_fused(kind) {
                println!("{:<26} FAILED VERIFICATION, not timed: {e}", kind.name());
                continue;
            }
            for elements in [128 * 512, big] {
                let (n, times) = time_fused(kind, elements, runs);
                let m = median(&times);
                println!(
                    "{:<26} {:>10} {:>9} {:>10.4} {:>8.2}",
                    kind.name(),
                    n,
                    if kind.parallel() {
                        rayon::current_num_threads()
                    } else {
                        1
                    },
                    m * 1e3,
                    (n * kind.bytes_per_element()) as f64 / m * 1e-9
                );
            }
        }
    });
}
