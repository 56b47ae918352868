//! The `bench`, `tune` and `train --profile` commands end to end, through the binary.
//! Quick modes only; no timing assertions.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{stdout, DATA};

fn simdnet(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(args)
        .current_dir(dir)
        .env_remove("SIMDNET_TUNE_CONFIG")
        .env_remove("SIMDNET_MC")
        .env_remove("SIMDNET_KC")
        .env_remove("SIMDNET_NC")
        .output()
        .expect("run simdnet")
}

fn temp_dir(name: &str) -> PathBuf {
    common::scratch("cli", name)
}

/// Just enough JSON to check a schema.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(BTreeMap<String, J>),
}

struct P<'a>(&'a [u8], usize);

impl P<'_> {
    fn ws(&mut self) {
        while self.1 < self.0.len() && self.0[self.1].is_ascii_whitespace() {
            self.1 += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.0.get(self.1),
            Some(&c),
            "expected '{}' at {}",
            c as char,
            self.1
        );
        self.1 += 1;
    }
    fn peek(&mut self) -> u8 {
        self.ws();
        self.0[self.1]
    }
    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut s = String::new();
        loop {
            let c = self.0[self.1];
            self.1 += 1;
            match c {
                b'"' => return s,
                b'\\' => {
                    let e = self.0[self.1];
                    self.1 += 1;
                    s.push(match e {
                        b'n' => '\n',
                        b'u' => {
                            let h = std::str::from_utf8(&self.0[self.1..self.1 + 4]).unwrap();
                            self.1 += 4;
                            char::from_u32(u32::from_str_radix(h, 16).unwrap()).unwrap()
                        }
                        c => c as char,
                    });
                }
                c => s.push(c as char),
            }
        }
    }
    fn value(&mut self) -> J {
        match self.peek() {
            b'{' => {
                self.eat(b'{');
                let mut m = BTreeMap::new();
                if self.peek() == b'}' {
                    self.eat(b'}');
                    return J::Obj(m);
                }
                loop {
                    let k = self.string();
                    self.eat(b':');
                    m.insert(k, self.value());
                    if self.peek() == b',' {
                        self.eat(b',');
                    } else {
                        self.eat(b'}');
                        return J::Obj(m);
                    }
                }
            }
            b'[' => {
                self.eat(b'[');
                let mut v = Vec::new();
                if self.peek() == b']' {
                    self.eat(b']');
                    return J::Arr(v);
                }
                loop {
                    v.push(self.value());
                    if self.peek() == b',' {
                        self.eat(b',');
                    } else {
                        self.eat(b']');
                        return J::Arr(v);
                    }
                }
            }
            b'"' => J::Str(self.string()),
            _ => {
                let start = self.1;
                while self.1 < self.0.len() && b"+-.0123456789eEtruefalsn".contains(&self.0[self.1]) {
                    self.1 += 1;
                }
                match std::str::from_utf8(&self.0[start..self.1]).unwrap() {
                    "null" => J::Null,
                    "true" => J::Bool(true),
                    "false" => J::Bool(false),
                    n => J::Num(n.parse().unwrap_or_else(|_| panic!("bad number '{n}'"))),
                }
            }
        }
    }
}

fn parse(s: &str) -> J {
    let mut p = P(s.as_bytes(), 0);
    let v = p.value();
    p.ws();
    assert_eq!(p.1, s.len(), "trailing text after the JSON value");
    v
}

fn get<'a>(j: &'a J, path: &str) -> &'a J {
    path.split('.').fold(j, |j, k| match j {
        J::Obj(m) => m
            .get(k)
            .unwrap_or_else(|| panic!("missing key '{k}' of '{path}'")),
        _ => panic!("'{path}': not an object at '{k}'"),
    })
}

fn num(j: &J, path: &str) -> f64 {
    match get(j, path) {
        J::Num(x) => *x,
        other => panic!("'{path}' is {other:?}, expected a number"),
    }
}

#[test]
fn bench_quick_json_follows_the_schema() {
    let dir = temp_dir("bench");
    let o = simdnet(&dir, &["bench", "--quick", "--json", "--sizes", "32"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = parse(&stdout(&o));
    assert_eq!(get(&j, "schema"), &J::Str("simdnet-bench/4".into()));
    assert!(num(&j, "machine.threads") >= 1.0);
    // The SIMD hardware, as the compiled target has it (tests/portability.rs
    // checks the same facts against `cfg!` inside the library).
    let simd = simdnet::profile::facts::SimdFacts::current();
    assert_eq!(
        get(&j, "machine.simd.arch"),
        &J::Str(std::env::consts::ARCH.into())
    );
    assert_eq!(get(&j, "machine.simd.isa"), &J::Str(simd.isa.into()));
    assert_eq!(num(&j, "machine.simd.lanes"), simd.lanes as f64);
    assert_eq!(
        num(&j, "machine.simd.vector_lanes"),
        simdnet::gemm::simd_width() as f64
    );
    assert_eq!(
        num(&j, "machine.simd.registers_per_vector"),
        simd.registers_per_vector as f64
    );
    assert_eq!(
        get(&j, "machine.simd.fma"),
        &J::Bool(simdnet::simd::FUSED_MULTIPLY_ADD)
    );
    let features: Vec<J> = simd.features.iter().map(|f| J::Str(f.to_string())).collect();
    assert_eq!(get(&j, "machine.simd.features"), &J::Arr(features));
    if cfg!(target_arch = "aarch64") {
        assert_eq!(get(&j, "machine.simd.isa"), &J::Str("NEON".into()));
        assert_eq!(num(&j, "machine.simd.lanes"), 4.0);
        assert_eq!(get(&j, "machine.simd.fma"), &J::Bool(true));
    }
    if cfg!(target_feature = "avx512f") {
        assert_eq!(get(&j, "machine.simd.isa"), &J::Str("AVX-512".into()));
        assert_eq!(num(&j, "machine.simd.lanes"), 16.0);
    }
    for c in ["l1d_bytes", "l2_bytes", "l3_bytes"] {
        assert!(num(&j, &format!("machine.caches.{c}")) > 0.0);
    }
    assert!(matches!(get(&j, "machine.caches.guessed"), J::Arr(_)));
    for b in ["mc", "kc", "nc"] {
        assert!(num(&j, &format!("machine.block_sizes.{b}")) >= 1.0);
    }
    assert!(matches!(get(&j, "machine.micro_kernel"), J::Str(_)));
    // 512-bit FMAs against 256-bit ones (`simd::fma_width`): near 1 or 2
    // in AVX-512 builds, null in the others.
    match get(&j, "machine.fma_512_ratio") {
        J::Num(r) => assert!(
            cfg!(target_feature = "avx512f") && (0.75..2.6).contains(r),
            "fma_512_ratio {r}"
        ),
        other => assert!(
            !cfg!(target_feature = "avx512f") && *other == J::Null,
            "fma_512_ratio {other:?}"
        ),
    }
    let J::Obj(machine) = get(&j, "machine") else {
        panic!("machine is not an object")
    };
    assert!(!machine.contains_key("fast_gemm"), "removed in schema 2");
    for old in ["simd_width", "target_features"] {
        assert!(
            !machine.contains_key(old),
            "{old}: replaced by machine.simd in schema 3"
        );
    }
    assert!(matches!(get(&j, "machine.load_average"), J::Arr(v) if v.len() == 2));
    assert!(matches!(get(&j, "warnings"), J::Arr(w) if w.iter().all(|w| matches!(w, J::Str(_)))));
    for t in ["one_thread", "all_threads"] {
        assert!(num(&j, &format!("peak_gflops.{t}.best")) > 0.0);
        assert!(num(&j, &format!("peak_gflops.{t}.median")) > 0.0);
        for k in ["read", "copy", "triad"] {
            assert!(num(&j, &format!("bandwidth_gbs.{t}.{k}.best")) > 0.0);
            assert!(num(&j, &format!("bandwidth_gbs.{t}.{k}.median")) > 0.0);
        }
    }
    let J::Arr(gemm) = get(&j, "gemm") else {
        panic!("gemm is not an array")
    };
    // square 32, then the quick network's 8 training shapes.
    assert_eq!(gemm.len(), 9);
    for g in gemm {
        assert_eq!(get(g, "verified"), &J::Bool(true));
        assert_eq!(get(g, "error"), &J::Null);
        for k in ["m", "n", "k", "median_s", "best_s", "gflops", "percent_of_peak"] {
            assert!(num(g, k) > 0.0, "{k}");
        }
        for k in ["intensity_flops_per_byte", "roof_gflops", "percent_of_roof"] {
            assert!(num(g, k) > 0.0, "{k}");
        }
        assert!(matches!(get(g, "bound"), J::Str(s) if s == "compute" || s == "memory"));
    }
    let J::Arr(kernels) = get(&j, "kernels") else {
        panic!("kernels is not an array")
    };
    let names: Vec<_> = kernels.iter().map(|k| get(k, "name").clone()).collect();
    for n in [
        "bias_activation_relu",
        "softmax_cross_entropy",
        "activation_backward_relu",
        "rmsprop_update",
    ] {
        assert!(names.contains(&J::Str(n.into())), "{n}");
    }
    for k in kernels {
        assert_eq!(get(k, "verified"), &J::Bool(true));
        for f in [
            "elements",
            "bytes_per_element",
            "threads",
            "median_s",
            "gbs",
            "percent_of_bandwidth",
        ] {
            assert!(num(k, f) > 0.0, "{f}");
        }
    }
    // --quick times LeNet-5's two convolutions: fwd and dW for the first, fwd, dW and dx for the second.
    let J::Arr(conv) = get(&j, "conv") else {
        panic!("conv is not an array")
    };
    let rows: Vec<(String, String)> = conv
        .iter()
        .map(|c| match (get(c, "name"), get(c, "pass")) {
            (J::Str(n), J::Str(p)) => (n.clone(), p.clone()),
            other => panic!("name and pass are not strings: {other:?}"),
        })
        .collect();
    let want = [
        ("lenet L0 5x5x6 same 28x28x1", "fwd"),
        ("lenet L0 5x5x6 same 28x28x1", "dW"),
        ("lenet L2 5x5x16 valid 14x14x6", "fwd"),
        ("lenet L2 5x5x16 valid 14x14x6", "dW"),
        ("lenet L2 5x5x16 valid 14x14x6", "dx"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(n, p)| (n.to_string(), p.to_string())).collect();
    assert_eq!(rows, want);
    for c in conv {
        assert_eq!(get(c, "model"), &J::Str("lenet".into()));
        assert_eq!(get(c, "verified"), &J::Bool(true));
        assert_eq!(get(c, "error"), &J::Null);
        assert_eq!(num(c, "images"), 64.0);
        assert!(num(c, "layer") >= 0.0);
        for k in [
            "flops",
            "median_s",
            "best_s",
            "gflops",
            "percent_of_peak",
            "intensity_flops_per_byte",
            "roof_gflops",
            "percent_of_roof",
        ] {
            let v = num(c, k);
            assert!(v.is_finite() && v > 0.0, "{k} = {v}");
        }
        assert!(matches!(get(c, "bound"), J::Str(s) if s == "compute" || s == "memory"));
        assert!(matches!(get(c, "input_hwc"), J::Arr(v) if v.len() == 3));
        assert!(matches!(get(c, "padding"), J::Str(s) if s == "same" || s == "valid"));
    }
    // LeNet-5's first layer: 64 images x 28·28·6 outputs x 25 taps x 2 FLOPs.
    assert_eq!(num(&conv[0], "flops"), 64.0 * 28.0 * 28.0 * 6.0 * 25.0 * 2.0);
    // Every SIMD micro-kernel of the build alone on a tile in L1, in order;
    // the GEMM's default one names the hidden widths' products it serves.
    let J::Arr(micro) = get(&j, "micro_kernels") else {
        panic!("micro_kernels is not an array")
    };
    let want: Vec<J> = simdnet::gemm::kernel::SIMD_KERNELS
        .iter()
        .map(|k| J::Str(k.name.into()))
        .collect();
    let got: Vec<J> = micro.iter().map(|k| get(k, "name").clone()).collect();
    assert_eq!(got, want);
    for k in micro {
        assert_eq!(get(k, "verified"), &J::Bool(true));
        assert_eq!(get(k, "error"), &J::Null);
        let (mr, nr, kc) = (num(k, "mr"), num(k, "nr"), num(k, "kc"));
        assert!(mr >= 1.0 && nr >= 1.0 && (16.0..=256.0).contains(&kc), "{k:?}");
        let median = num(k, "gflops.median");
        assert!(median > 0.0 && median <= num(k, "gflops.best"), "{k:?}");
        let peak = num(&j, "peak_gflops.one_thread.best");
        // (the JSON writer keeps 7 significant digits)
        assert!(
            (num(k, "percent_of_peak") / (100.0 * median / peak) - 1.0).abs() < 1e-5,
            "{k:?}"
        );
        assert!(matches!(get(k, "used_for"), J::Str(s) if s == "-" || s.starts_with("n = ")));
    }
    let default = simdnet::gemm::kernel::default_kernel().name;
    let used = micro
        .iter()
        .find(|k| get(k, "name") == &J::Str(default.into()))
        .map(|k| get(k, "used_for").clone());
    assert!(
        matches!(&used, Some(J::Str(s)) if s.contains("512")),
        "{default}: {used:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The text and Markdown reports list every convolution layer's passes with
/// finite, positive rates; `--models` picks the models, '' none, and an
/// unknown name is a usage error naming the known ones.
#[test]
fn bench_times_the_convolutions_of_the_cnn_models() {
    let dir = temp_dir("bench-conv");
    let o = simdnet(
        &dir,
        &[
            "bench",
            "--quick",
            "--sizes",
            "",
            "--layers",
            "4",
            "--models",
            "keras-cnn,lenet",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(
        out.contains("\nConvolutions on ") && out.contains("one 64-image training shard"),
        "{out}"
    );
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  keras-cnn L") || l.starts_with("  lenet L"))
        .collect();
    // keras-cnn: 2 + 3 passes, then lenet: 2 + 3, in the order given.
    assert_eq!(rows.len(), 10, "{out}");
    assert!(
        rows[0].starts_with("  keras-cnn L0 3x3x32 valid 28x28x1"),
        "{out}"
    );
    assert!(
        rows[2].starts_with("  keras-cnn L1 3x3x64 valid 26x26x32"),
        "{out}"
    );
    for row in &rows {
        let f: Vec<&str> = row.split_whitespace().collect();
        // name (5 words), pass, MFLOP, median ms, best ms, GFLOP/s, % peak, flop/B, bound, % roof
        assert_eq!(f.len(), 14, "{row}");
        assert!(["fwd", "dW", "dx"].contains(&f[5]), "{row}");
        for (i, v) in f.iter().enumerate().take(12).skip(6) {
            let v = v.trim_end_matches('%');
            let x: f64 = v.parse().unwrap_or_else(|_| panic!("'{v}' in '{row}'"));
            // (every pass is timed itself, dx too: it used to be the whole backward
            // pass minus the dW-only one, which a busy machine made zero)
            assert!(x.is_finite() && x > 0.0, "{i}: {row}");
        }
        let roof: f64 = f[13].trim_end_matches('%').parse().unwrap();
        assert!(roof.is_finite() && roof > 0.0, "{row}");
        assert!(f[12] == "compute" || f[12] == "memory", "{row}");
    }
    // The micro-kernels alone: one row per SIMD kernel, in order, before the
    // convolutions; tile, depth, two rates, % of peak and what it is used for.
    let start = out
        .find("\nMicro-kernels alone, on 1 thread")
        .expect("the micro-kernel table");
    assert!(start < out.find("\nConvolutions on ").unwrap(), "{out}");
    let kernels = simdnet::gemm::kernel::SIMD_KERNELS;
    let rows: Vec<&str> = out[start..].lines().skip(3).take(kernels.len()).collect();
    for (row, k) in rows.iter().zip(kernels) {
        let f: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(f[0], k.name, "{out}");
        assert_eq!(f[1], format!("{}x{}", k.mr, k.nr), "{row}");
        for v in &f[2..6] {
            let x: f64 = v
                .trim_end_matches('%')
                .parse()
                .unwrap_or_else(|_| panic!("'{v}' in '{row}'"));
            assert!(x.is_finite() && x > 0.0, "{row}");
        }
        assert!(f[6] == "-" || f[6] == "n", "{row}");
    }
    // Markdown: one table row per pass.
    let o = simdnet(
        &dir,
        &["bench", "--quick", "--sizes", "", "--layers", "4", "--markdown"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = stdout(&o);
    assert!(
        md.contains("-image shard per thread | pass | GFLOP/s | % of peak | bound, % of roof |\n|---|---|---|---|---|\n"),
        "{md}"
    );
    assert!(md.contains("\n| lenet L2 5x5x16 valid 14x14x6 | dx | "), "{md}");
    // No models: no table.
    let o = simdnet(
        &dir,
        &["bench", "--quick", "--sizes", "", "--layers", "4", "--models", ""],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout(&o).contains("Convolutions on"), "{}", stdout(&o));
    // An unknown model.
    let o = simdnet(&dir, &["bench", "--quick", "--models", "lenet,vgg"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "--models: unknown model 'vgg' (expected lenet, keras-cnn, separated by commas, or '' for none)"
        ),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_rejects_bad_flags_with_usage_errors() {
    let dir = temp_dir("bench-usage");
    for args in [
        &["bench", "--runs", "0"][..],
        &["bench", "--sizes", "x"],
        &["bench", "--layers", "16,0"],
        &["bench", "--threads", "0"],
    ] {
        let o = simdnet(&dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One row of the `train --profile` table.
#[derive(Debug)]
struct Row {
    label: String,
    layer: Option<usize>,
    calls: u64,
    /// `None` for the fork/join container (printed as `-`).
    thread_s: Option<f64>,
    wall_s: f64,
    /// The rate column: value and unit (`GFLOP/s` or `GB/s`), if any.
    rate: Option<(f64, String)>,
}

/// The rows of the table between its header and the `total in timers` line,
/// and the total's thread-s and wall-s.
fn profile_rows(out: &str) -> (Vec<Row>, f64, f64) {
    let mut lines = out.lines().skip_while(|l| !l.starts_with("kind "));
    lines
        .next()
        .unwrap_or_else(|| panic!("no table header in\n{out}"));
    let mut rows = Vec::new();
    for line in lines {
        // Labels are left-aligned in 27 columns and contain spaces; the rest splits on whitespace.
        let (label, rest) = line.split_at(27.min(line.len()));
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |s: &str| s.parse::<f64>().unwrap_or_else(|_| panic!("'{s}' in '{line}'"));
        if label.trim() == "total in timers" {
            return (rows, num(f[0]), num(f[1]));
        }
        let rate = match f.get(5..7) {
            Some([v, unit]) if unit.ends_with("/s") => Some((num(v), unit.to_string())),
            _ => None,
        };
        rows.push(Row {
            label: label.trim().to_string(),
            layer: f[0].parse().ok(),
            calls: f[1].parse().unwrap_or_else(|_| panic!("calls in '{line}'")),
            thread_s: (f[2] != "-").then(|| num(f[2])),
            wall_s: num(f[3]),
            rate,
        });
    }
    panic!("no 'total in timers' line in\n{out}")
}

/// The number after `prefix` in the first line that has it.
fn number_after(out: &str, prefix: &str) -> f64 {
    let at = out
        .find(prefix)
        .unwrap_or_else(|| panic!("no '{prefix}' in\n{out}"));
    let rest = &out[at + prefix.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number after '{prefix}' in\n{out}"))
}

/// The share of a `--profile` run's wall time its timers account for, plus
/// the time its slow steps spent beyond twice the median (the steps line's
/// "N of them took over 2 times the median, T beyond it"): a step far over
/// the median waited for a core the host had taken, in a timer or not, and
/// the profile says so on that line. A defect that leaves work untimed
/// slows every step alike and is not excused.
fn explained_coverage(out: &str) -> f64 {
    let accounted = number_after(out, "Accounted: ");
    let (_, _, total_wall) = profile_rows(out);
    if accounted <= 0.0 {
        return accounted;
    }
    let wall = total_wall / (accounted / 100.0);
    let prefix = "times the median, ";
    let excess = out
        .find(prefix)
        .map_or(0.0, |at| seconds_after(&out[at..], prefix));
    accounted + 100.0 * excess / wall
}

/// Runs `run` until its profile's explained coverage reaches `floor` percent
/// (three tries): a host that takes a core away outside a step (the first
/// step, the validation's fork) can still hide one run's time, but a real
/// gap in the timers shows in every run.
fn covered_profile(floor: f64, run: impl Fn() -> String) -> String {
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = run();
        let explained = explained_coverage(&out);
        if explained >= floor {
            return out;
        }
        seen.push(format!("explained {explained:.1}%:\n{out}"));
    }
    panic!("timers below {floor}% in three runs:\n{}", seen.join("\n"))
}

/// The time printed after `prefix` in `out`, in seconds: a number then
/// " µs", " ms" or " s", as the profile prints durations.
fn seconds_after(out: &str, prefix: &str) -> f64 {
    let v = number_after(out, prefix);
    let at = out.find(prefix).unwrap() + prefix.len();
    let rest = out[at..].trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let unit = [(" µs", 1e-6), (" ms", 1e-3), (" s", 1.0)]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))
        .unwrap_or_else(|| panic!("no unit after '{prefix}' in\n{out}"));
    v * unit.1
}

fn train_profile(dir: &Path, threads: &str) -> String {
    let data = DATA.to_string();
    let o = simdnet(
        dir,
        &[
            "train",
            "--data",
            &data,
            "--limit",
            "2048",
            "--epochs",
            "1",
            "--layers",
            "16,16",
            "--batch",
            "128",
            "--threads",
            threads,
            "--profile",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

/// Every kernel the workshop network (784-16-16-10) runs in training must show
/// up with calls, time and its rate; the table's totals must add up; the
/// timers must account for at least 90% of the wall time, but for the time
/// the profile's steps line names as spent waiting (`explained_coverage`).
#[test]
fn train_profile_times_every_kernel_of_the_workshop_network() {
    let dir = temp_dir("profile");
    let out = covered_profile(90.0, || train_profile(&dir, "2"));
    let (rows, total_thread, total_wall) = profile_rows(&out);
    let find = |label: &str, layer: Option<usize>| {
        rows.iter()
            .find(|r| r.label == label && r.calls > 0 && (layer.is_none() || r.layer == layer))
            .unwrap_or_else(|| panic!("no '{label}' row for layer {layer:?} with calls in\n{out}"))
    };
    let (fwd, dw, dx, act) = (
        "forward GEMM + bias + act",
        "backward GEMM dW = xT.dz",
        "backward GEMM dx = dz.WT",
        "act backward + bias grad",
    );
    // (label, layer, unit of the declared rate)
    let mut required = Vec::new();
    for l in 0..3 {
        required.push((fwd, Some(l), "GFLOP/s"));
        required.push((dw, Some(l), "GFLOP/s"));
        if l > 0 {
            required.push((dx, Some(l), "GFLOP/s"));
        }
    }
    for l in 0..2 {
        required.push((act, Some(l), "GB/s"));
    }
    // The next steps' rows hinted into the cache: GB/s of the lines requested.
    for label in [
        "softmax + cross-entropy",
        "sum grads + optimizer",
        "prefetch next examples",
    ] {
        required.push((label, None, "GB/s"));
    }
    for (label, layer, unit) in required {
        let r = find(label, layer);
        assert!(
            r.thread_s.unwrap_or(0.0) > 0.0,
            "{label} {layer:?}: no time in\n{out}"
        );
        match &r.rate {
            Some((v, u)) if u == unit && *v > 0.0 => {}
            other => panic!("{label} {layer:?}: rate {other:?}, expected {unit} in\n{out}"),
        }
    }
    // The input layer's dx is never needed, so never computed.
    assert!(!rows.iter().any(|r| r.label == dx && r.layer == Some(0)), "{out}");
    // Layers 1 and 2 run their forward and dW GEMMs once per shard of every
    // batch (2048 images: 16 batches of two 64-row shards). On two threads the
    // first layer is split along its inputs (nn::split) in as many parts as
    // its GEMM has depth blocks: its forward product runs once per part and
    // its parts are summed once per shard (both filed as its forward GEMM),
    // its dW once per part and shard when the parts hold their pixels as
    // lists of non-zeros (the profile then says "Zeros skipped"), else once
    // per part, the shards' products added tile by tile (gemm::summed).
    let (steps, shards) = (16, 2);
    let dw_per_part = if out.contains("Zeros skipped") { shards } else { 1 };
    let parts = 784usize.div_ceil(simdnet::gemm::depth_block(784)) as u64;
    for l in 1..3 {
        assert_eq!(find(fwd, Some(l)).calls, steps * shards, "layer {l}\n{out}");
        assert_eq!(find(dw, Some(l)).calls, steps * shards, "layer {l}\n{out}");
    }
    assert!(parts >= 2, "784 inputs in {parts} depth block(s)");
    assert_eq!(find(fwd, Some(0)).calls, steps * (parts + shards), "{out}");
    assert_eq!(find(dw, Some(0)).calls, steps * parts * dw_per_part, "{out}");
    // The totals are the sums of the rows (each printed to the microsecond).
    let sum_thread: f64 = rows.iter().filter_map(|r| r.thread_s).sum();
    let sum_wall: f64 = rows.iter().map(|r| r.wall_s).sum();
    let rounding = 1e-6 * (rows.len() + 1) as f64;
    assert!(
        (sum_thread - total_thread).abs() <= rounding,
        "{sum_thread} vs {total_thread}\n{out}"
    );
    assert!(
        (sum_wall - total_wall).abs() <= rounding,
        "{sum_wall} vs {total_wall}\n{out}"
    );
    let accounted = number_after(&out, "Accounted: ");
    assert!((0.0..=100.0).contains(&accounted), "{out}");
    // Two threads: the waiting line adds up, busy being the training rows' thread time.
    let line = out
        .lines()
        .find(|l| l.starts_with("Threads (training): "))
        .unwrap_or_else(|| panic!("no waiting line with 2 threads in\n{out}"));
    let train = number_after(line, "2 x ");
    let available = number_after(line, "s = ");
    let busy = number_after(line, "available, ");
    let waiting = number_after(line, "in timers, ");
    let busy_rows: f64 = rows
        .iter()
        .filter(|r| r.label != "validation")
        .filter_map(|r| r.thread_s)
        .sum();
    // Printed to the millisecond: a fast machine's run of 2,048 images may
    // show 0.000 busy (the rows, to the microsecond, were checked above).
    assert!(train >= 0.0 && (available - 2.0 * train).abs() <= 2e-3, "{line}");
    assert!(
        busy >= 0.0 && (busy - busy_rows).abs() <= 1e-3,
        "{line} vs rows {busy_rows}"
    );
    assert!((waiting - (available - busy).max(0.0)).abs() <= 2e-3, "{line}");
    // With two cores, the round trip the step's forks and joins pay, measured after the run.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        let ns = number_after(&out, "Core-to-core round trip, measured just now: ");
        assert!(ns > 0.0, "{out}");
    }
    steps_line_counts(&out, steps as usize);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The profile's line on the steps one by one (`nn::step_times`): every
/// step but the run's first timed, that one named apart, the median
/// between the fastest tenth and the slowest step.
fn steps_line_counts(out: &str, steps: usize) {
    let line = out
        .lines()
        .find(|l| l.starts_with("Steps (training): "))
        .unwrap_or_else(|| panic!("no steps line in\n{out}"));
    assert_eq!(
        number_after(line, "Steps (training): ") as usize,
        steps - 1,
        "{line}"
    );
    let (median, p10, slowest) = (
        seconds_after(line, "median "),
        seconds_after(line, "a tenth under "),
        seconds_after(line, "slowest "),
    );
    assert!(0.0 < p10 && p10 <= median && median <= slowest, "{line}");
    assert!(
        line.contains("The run's first step, which also made the workspaces, took "),
        "{line}"
    );
}

#[test]
fn train_profile_lists_every_kind_and_waits_only_with_threads() {
    let dir = temp_dir("profile-1");
    // A sanity bound, not the coverage check (tests/profile.rs bounds the
    // covered time by instants inside and outside the timers): this run
    // lasts about 20 ms, and a loaded CI machine left 3 ms of it outside
    // every timer once (85.7%), so the bound is 75%.
    let out = covered_profile(75.0, || train_profile(&dir, "1"));
    for label in [
        "prefetch next examples",
        "forward GEMM + bias + act",
        "softmax + cross-entropy",
        "backward GEMM dW = xT.dz",
        "backward GEMM dx = dz.WT",
        "act backward + bias grad",
        "sum grads + optimizer",
        "shuffle",
        "validation",
        "shards fork/join, no kernel",
    ] {
        assert!(out.contains(label), "'{label}' missing in\n{out}");
    }
    // One thread waits for nobody: its untimed time is on the Accounted line.
    assert!(!out.contains("Threads (training)"), "{out}");
    assert!(!out.contains("round trip"), "{out}");
    steps_line_counts(&out, 16);
    assert!(!out.contains("waiting"), "{out}");
    // The build facts the rates were measured with, as bench prints them.
    let simd = simdnet::profile::facts::SimdFacts::current().describe();
    assert!(out.contains(&format!("\nBuild: SIMD {simd}\n")), "{out}");
    assert!(out.contains("\nCaches: L1d "), "{out}");
    let huge = format!("\nHuge pages: {}\nGEMM: ", simdnet::huge_pages::describe());
    assert!(out.contains(&huge), "{out}");
    // and whether the wide operands were packed, which this machine's L1d decides
    let in_place = simdnet::gemm::loops::reads_wide_in_place();
    let line = simdnet::profile::facts::describe_in_place(in_place);
    assert!(out.contains(&format!(", {line}\n")), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tune_writes_a_config_that_train_and_bench_then_use() {
    let dir = temp_dir("tune");
    let data = DATA.to_string();
    let o = simdnet(&dir, &["tune", "--quick", "--runs", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("Saved MC="), "{}", stdout(&o));
    let text = std::fs::read_to_string(dir.join("simdnet-tune.cfg")).unwrap();
    assert!(text.contains("version = 1"), "{text}");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--data", &data, "--limit", "2000", "--epochs", "1"];
        args.extend_from_slice(extra);
        simdnet(&dir, &args)
    };
    let o = train(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(
        out.contains("Using block sizes MC=") && out.contains("from simdnet-tune.cfg"),
        "{out}"
    );
    let o = train(&["--no-tune-config"]);
    assert!(!stdout(&o).contains("Using block sizes"));
    // A malformed file is a run error (exit 1) naming the problem, not a panic
    // (block sizes out of range only make it ignored with a warning: tests/tune_file.rs).
    std::fs::write(
        dir.join("simdnet-tune.cfg"),
        "version = 1\nmc = zero\nkc = 1\nnc = 1\n",
    )
    .unwrap();
    let o = train(&[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mc must be a whole number") && err.contains("simdnet tune"),
        "{err}"
    );
    // --config writes elsewhere; SIMDNET_TUNE_CONFIG reads from there.
    let o = simdnet(&dir, &["tune", "--quick", "--runs", "1", "--config", "other.cfg"]);
    assert!(o.status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["bench", "--quick", "--sizes", "", "--layers", "4"])
        .current_dir(&dir)
        .env("SIMDNET_TUNE_CONFIG", dir.join("other.cfg"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("other.cfg"), "{}", stdout(&o));
    // The text report starts with the build facts.
    let simd = simdnet::profile::facts::SimdFacts::current().describe();
    assert!(
        stdout(&o).contains(&format!("Build: SIMD {simd}\nCaches: L1d ")),
        "{}",
        stdout(&o)
    );
    let line = simdnet::profile::facts::describe_in_place(simdnet::gemm::loops::reads_wide_in_place());
    assert!(stdout(&o).contains(&format!(", {line}; ")), "{}", stdout(&o));
    // and the huge-page mode the data sets are fetched under
    let huge = format!("\nHuge pages: {}\nGEMM: ", simdnet::huge_pages::describe());
    assert!(stdout(&o).contains(&huge), "{}", stdout(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// LeNet-5 under `train --profile`: the convolutions' rows are named as
/// such, max-pooling and flatten have their own rows with a GB/s rate, and
/// the timers still account for the run's wall time.
#[test]
fn train_profile_shows_the_convolution_and_pool_rows_of_lenet() {
    let dir = temp_dir("profile-lenet");
    let data = DATA.to_string();
    let run = || {
        let o = simdnet(
            &dir,
            &[
                "train",
                "--data",
                &data,
                "--model",
                "lenet",
                "--limit",
                "640",
                "--epochs",
                "1",
                "--threads",
                "2",
                "--profile",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    let out = covered_profile(95.0, run);
    let (rows, total_thread, _) = profile_rows(&out);
    let find = |label: &str, layer: usize| {
        rows.iter()
            .find(|r| r.label == label && r.layer == Some(layer))
            .unwrap_or_else(|| panic!("no '{label}' row for layer {layer} in\n{out}"))
    };
    // LeNet-5: conv 0, pool 1, conv 2, pool 3, flatten 4, dense 5, 6, 7.
    let mut required = vec![
        ("conv fwd im2col.W+bias+act", 0, "GFLOP/s"),
        ("conv fwd im2col.W+bias+act", 2, "GFLOP/s"),
        ("conv dW = im2col(x)T.dz", 0, "GFLOP/s"),
        ("conv dW = im2col(x)T.dz", 2, "GFLOP/s"),
        ("conv dx GEMM (dz with W)", 2, "GFLOP/s"),
        ("flatten copy (fwd + bwd)", 4, "GB/s"),
    ];
    for l in [1, 3] {
        required.push(("max-pool forward (argmax)", l, "GB/s"));
        required.push(("max-pool backward (route)", l, "GB/s"));
    }
    for l in 5..8 {
        required.push(("forward GEMM + bias + act", l, "GFLOP/s"));
    }
    for (label, layer, unit) in required {
        let r = find(label, layer);
        assert!(
            r.calls > 0 && r.thread_s.unwrap_or(0.0) > 0.0,
            "{label} {layer}: no time in\n{out}"
        );
        match &r.rate {
            Some((v, u)) if u == unit && v.is_finite() && *v > 0.0 => {}
            other => panic!("{label} {layer}: rate {other:?}, expected {unit} in\n{out}"),
        }
    }
    // The convolutions' products are not filed as dense GEMMs, nor the first layer's dx computed.
    for label in [
        "forward GEMM + bias + act",
        "backward GEMM dW = xT.dz",
        "backward GEMM dx = dz.WT",
    ] {
        assert!(
            !rows
                .iter()
                .any(|r| r.label == label && r.layer.is_some_and(|l| l < 5)),
            "{label}\n{out}"
        );
    }
    assert!(
        !rows
            .iter()
            .any(|r| r.label.starts_with("conv dx") && r.layer == Some(0)),
        "{out}"
    );
    // Forward and backward pool run once per shard, like the convolutions.
    assert_eq!(
        find("max-pool forward (argmax)", 1).calls,
        find("conv fwd im2col.W+bias+act", 0).calls
    );
    // Flatten's two directions share a row: twice the calls.
    assert_eq!(
        find("flatten copy (fwd + bwd)", 4).calls,
        2 * find("max-pool forward (argmax)", 3).calls
    );
    assert!(total_thread > 0.0, "{out}");
    let accounted = number_after(&out, "Accounted: ");
    assert!((0.0..=100.0).contains(&accounted), "{out}");
    assert!(
        out.contains("gradient sum + optimizer, shuffle, max-pool, flatten, col2im)"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
