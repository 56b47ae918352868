//! A tuning file from another machine or build is ignored with one warning,
//! never fatal; the build-versus-CPU SIMD warning of `train` and `bench`.

mod common;

use std::path::Path;
use std::process::Output;

use common::{check, s, scratch, DATA};
use simdnet::gemm::kernel::all_kernels;

/// Runs `simdnet args...` in the crate's folder with `env` set and the
/// tuning, block-size and CPU-feature variables otherwise removed.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::bin();
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for v in [
        "SIMDNET_TUNE_CONFIG",
        "SIMDNET_MC",
        "SIMDNET_KC",
        "SIMDNET_NC",
        "SIMDNET_KERNEL",
        "SIMDNET_ASSUME_CPU_FEATURES",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run simdnet")
}

const TRAIN: &[&str] = &["train", "--data", DATA, "--limit", "500", "--epochs", "1"];
const BENCH: &[&str] = &["bench", "--quick"];

/// Runs `train` and `bench` with the tuning file `cfg`: both succeed, print
/// `warning` exactly once on standard error, and do not say they use the file.
fn both_warn_once(cfg: &Path, warning: &str) {
    for args in [TRAIN, BENCH] {
        let (out, err) = check(args, &run_env(args, &[("SIMDNET_TUNE_CONFIG", s(cfg))]), 0);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(lines, [warning], "{args:?}: stderr:\n{err}");
        assert!(!out.contains("Using block sizes"), "{args:?}: {out}");
    }
}

fn warning(cfg: &Path, why: &str) -> String {
    format!(
        "warning: ignoring the tuning file '{}': {why}; run `simdnet tune` again on this machine, or delete the file",
        cfg.display()
    )
}

/// A micro-kernel of the other SIMD width, which this build does not have.
fn foreign_kernel() -> &'static str {
    ["simd-16x16", "simd-6x16"]
        .into_iter()
        .find(|name| all_kernels().all(|k| k.name != *name))
        .expect("one of the two widths is absent")
}

#[test]
fn a_file_naming_a_kernel_this_build_lacks_is_ignored_with_a_warning() {
    let dir = scratch("tunefile", "kernel");
    let cfg = dir.join("foreign.cfg");
    let kernel = foreign_kernel();
    std::fs::write(
        &cfg,
        format!("version = 1\nmc = 96\nkc = 256\nnc = 4096\nkernel = {kernel}\n"),
    )
    .unwrap();
    let names: Vec<&str> = all_kernels().map(|k| k.name).collect();
    let isa = simdnet::simd::isa_of(
        &simdnet::simd::TARGET_FEATURES
            .iter()
            .filter(|f| f.1)
            .map(|f| f.0)
            .collect::<Vec<_>>(),
    );
    both_warn_once(
        &cfg,
        &warning(
            &cfg,
            &format!(
                "it names the micro-kernel '{kernel}', which this build ({isa}) does not have (it has {})",
                names.join(", ")
            ),
        ),
    );
}

#[test]
fn a_file_for_another_cpu_or_isa_is_ignored_with_a_warning() {
    let dir = scratch("tunefile", "cpu");
    let cfg = dir.join("other-cpu.cfg");
    std::fs::write(
        &cfg,
        "version = 1\ncpu = Imaginary CPU 9000\nmc = 96\nkc = 256\nnc = 4096\n",
    )
    .unwrap();
    let here = simdnet::profile::machine::cpu_model();
    both_warn_once(
        &cfg,
        &warning(
            &cfg,
            &format!("it was measured on the CPU 'Imaginary CPU 9000', but this one is '{here}'"),
        ),
    );
    let cfg = dir.join("other-isa.cfg");
    std::fs::write(
        &cfg,
        "version = 1\ncpu = Imaginary CPU 9000\nisa = NEON (4 lanes)\nmc = 96\nkc = 256\nnc = 4096\n",
    )
    .unwrap();
    let (_, err) = check(TRAIN, &run_env(TRAIN, &[("SIMDNET_TUNE_CONFIG", s(&cfg))]), 0);
    assert!(
        err.contains(
            "it was measured with NEON (4 lanes) on the CPU 'Imaginary CPU 9000', but this build uses "
        ),
        "{err}"
    );
}

#[test]
fn block_sizes_out_of_range_in_a_file_are_a_warning_in_the_environment_an_error() {
    let dir = scratch("tunefile", "range");
    let cfg = dir.join("range.cfg");
    std::fs::write(&cfg, "version = 1\nmc = 0\nkc = 256\nnc = 4096\n").unwrap();
    both_warn_once(
        &cfg,
        &warning(
            &cfg,
            "its block sizes do not fit this build: mc = 0 is out of range (allowed 1..=4096)",
        ),
    );
    let o = run_env(TRAIN, &[("SIMDNET_MC", "0")]);
    let (_, err) = check(TRAIN, &o, 1);
    assert!(err.contains("SIMDNET_MC"), "{err}");
}

#[test]
fn a_file_written_here_and_an_old_file_without_origin_lines_are_used() {
    let dir = scratch("tunefile", "here");
    let cfg = dir.join("here.cfg");
    let args = ["tune", "--quick", "--config", s(&cfg)];
    check(&args, &run_env(&args, &[]), 0);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cpu = simdnet::profile::machine::cpu_model();
    assert!(text.contains(&format!("\ncpu = {cpu}\n")), "{text}");
    assert!(
        text.contains("\nisa = ") && text.contains("\nmeasured_kernel = "),
        "{text}"
    );
    let old = dir.join("old.cfg");
    std::fs::write(&old, "version = 1\nmc = 96\nkc = 256\nnc = 4096\n").unwrap();
    for path in [&cfg, &old] {
        let (out, err) = check(TRAIN, &run_env(TRAIN, &[("SIMDNET_TUNE_CONFIG", s(path))]), 0);
        assert!(out.contains("Using block sizes MC="), "{out}");
        assert!(!err.contains("warning"), "{err}");
    }
}

#[test]
fn train_and_bench_warn_once_when_the_build_and_the_cpu_differ() {
    // Claim a CPU that differs from this build: with AVX-512 built in, one
    // without it (the build may not run there); otherwise one with AVX-512
    // (the build leaves it unused).
    let built_avx512 = cfg!(target_feature = "avx512f");
    let cpu = if built_avx512 {
        "sse2,avx,avx2,fma"
    } else {
        "sse2,avx,avx2,fma,avx512f"
    };
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    for args in [TRAIN, BENCH] {
        let o = run_env(args, &[("SIMDNET_ASSUME_CPU_FEATURES", cpu)]);
        let (out, _) = check(args, &o, 0);
        // as printed: `check` leaves out a line equal to this process's own
        // native_warning, which the claimed CPU gives when it is this one (an
        // AVX2 build of the tests on an AVX-512 machine)
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        // (a portable build also names avx, avx2 and fma before avx512f)
        let want = if built_avx512 {
            "with avx512f, which this CPU (AVX2 (8 lanes)) lacks: it may stop with an illegal instruction; rebuild for this CPU with RUSTFLAGS=\"-C target-cpu=native\""
        } else {
            "avx512f (AVX-512 (16 lanes)): it runs slower than it could; rebuild for this CPU with RUSTFLAGS=\"-C target-cpu=native\""
        };
        assert!(lines[0].contains(want), "{args:?}: {}", lines[0]);
        assert!(
            built_avx512 || lines[0].contains("but this CPU also has "),
            "{}",
            lines[0]
        );
        if args == BENCH {
            assert!(out.contains("CPU: ") && out.contains(": AVX"), "{out}");
        }
        // The CPU as it is: a native build says nothing (a deliberately
        // portable build of the tests says what native_warning says).
        let o = run_env(args, &[]);
        check(args, &o, 0);
        let err = String::from_utf8_lossy(&o.stderr); // as printed: `check` leaves that line out
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(
            lines,
            simdnet::simd::native_warning().as_slice(),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_tuning_file_example_in_the_performance_doc_parses_as_it_is() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PERFORMANCE.md")).unwrap();
    let marker = "<!-- tuning-file example: tests/tune_file.rs parses the next block -->";
    let after = &doc[doc.find(marker).expect("the example's marker") + marker.len()..];
    let start = after.find("```\n").expect("a code block") + 4;
    let block = &after[start..start + after[start..].find("```").expect("its end")];
    let cfg = simdnet::profile::tune_config::parse(block, Path::new("PERFORMANCE.md"))
        .unwrap_or_else(|e| panic!("the example does not load: {e}\n{block}"));
    assert_eq!(cfg.kernel.as_deref(), Some("simd-6x16"));
    assert!(
        block.contains("\ncpu = ") && block.contains("\nisa = "),
        "{block}"
    );
}

#[test]
fn bench_markdown_prints_the_marker_the_machine_and_the_tables() {
    let args = ["bench", "--quick", "--markdown"];
    let (out, _) = check(&args, &run_env(&args, &[]), 0);
    let lines: Vec<&str> = out.lines().collect();
    let cpu = simdnet::profile::machine::cpu_model();
    let facts = simdnet::profile::facts::SimdFacts::current();
    assert_eq!(
        lines[0],
        format!(
            "<!-- measured: {cpu}, {}, {} lanes; command: simdnet bench --quick --markdown -->",
            facts.isa, facts.lanes
        )
    );
    assert!(
        lines[1].starts_with(&format!("Measured on {cpu} (CPU ")),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("Regenerate with `simdnet bench --quick --markdown`."),
        "{}",
        lines[1]
    );
    for header in [
        "| machine limit | 1 thread | 2 threads |",
        "| GEMM on 2 threads (m x n x k) | GFLOP/s | % of peak | bound, % of roof |",
        "| fused kernel | threads | GB/s | % of triad |",
    ] {
        let header = header.replace("2 threads", &threads_label());
        assert!(lines.contains(&header.as_str()), "{header} missing:\n{out}");
    }
    assert!(out.contains("| square 64 (64 x 64 x 64) | "), "{out}");
    let args = ["bench", "--quick", "--markdown", "--json"];
    let (_, err) = check(&args, &run_env(&args, &[]), 2);
    assert!(err.contains("--json and --markdown cannot be combined"), "{err}");
}

fn threads_label() -> String {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => "1 thread".into(),
        n => format!("{n} threads"),
    }
}

#[test]
fn the_readme_performance_tables_are_what_bench_markdown_prints() {
    // The README's block starts with the marker `bench --markdown` prints and
    // has the same rows (the figures differ from run to run, not the rows).
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- measured: ")
        .and_then(|_| readme.find("; command: simdnet bench --markdown -->"))
        .expect("the README has a `simdnet bench --markdown` block");
    let start = readme[..start].rfind("<!-- measured: ").unwrap();
    let block: Vec<&str> = readme[start..]
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .collect();
    assert!(
        block[1].starts_with("Measured on ")
            && block[1].ends_with("Regenerate with `simdnet bench --markdown`."),
        "{}",
        block[1]
    );
    let label = |l: &&str| {
        l.starts_with('|')
            .then(|| l.split(" | ").next().unwrap().to_string())
    };
    let readme_rows: Vec<String> = block.iter().filter_map(label).collect();
    let args = ["bench", "--markdown", "--runs", "1", "--threads", "2"];
    let (out, _) = check(&args, &run_env(&args, &[]), 0);
    let rows: Vec<String> = out.lines().collect::<Vec<_>>().iter().filter_map(label).collect();
    assert_eq!(
        readme_rows, rows,
        "regenerate the README's block with `simdnet bench --markdown`"
    );
}
