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
        let (out, err) = check(args, &o, 0);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        let want = if built_avx512 {
            "with avx512f, which this CPU (AVX2 (8 lanes)) lacks: it may stop with an illegal instruction; rebuild for this CPU with RUSTFLAGS=\"-C target-cpu=native\""
        } else {
            "but this CPU also has avx512f (AVX-512 (16 lanes)): it runs slower than it could; rebuild for this CPU with RUSTFLAGS=\"-C target-cpu=native\""
        };
        assert!(lines[0].contains(want), "{args:?}: {}", lines[0]);
        if args == BENCH {
            assert!(out.contains("CPU: ") && out.contains(": AVX"), "{out}");
        }
        // The CPU as it is: a native build says nothing (a deliberately
        // portable build of the tests says what native_warning says).
        let o = run_env(args, &[]);
        let (_, err) = check(args, &o, 0);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(
            lines,
            simdnet::simd::native_warning().as_slice(),
            "{args:?}: {err}"
        );
    }
}
