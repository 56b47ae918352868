//! The `bench`, `tune` and `train --profile` commands end to end, through the binary.
//! Quick modes only; no timing assertions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("simdnet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn data_dir() -> String {
    format!("{}/data", env!("CARGO_MANIFEST_DIR"))
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
    assert_eq!(get(&j, "schema"), &J::Str("simdnet-bench/2".into()));
    assert!(num(&j, "machine.threads") >= 1.0);
    let w = num(&j, "machine.simd_width");
    assert!(w == 8.0 || w == 16.0);
    for f in ["avx2", "fma", "avx512f"] {
        assert!(matches!(
            get(&j, &format!("machine.target_features.{f}")),
            J::Bool(_)
        ));
    }
    for b in ["mc", "kc", "nc"] {
        assert!(num(&j, &format!("machine.block_sizes.{b}")) >= 1.0);
    }
    assert!(matches!(get(&j, "machine.micro_kernel"), J::Str(_)));
    let J::Obj(machine) = get(&j, "machine") else {
        panic!("machine is not an object")
    };
    assert!(!machine.contains_key("fast_gemm"), "removed in schema 2");
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

#[test]
fn train_profile_prints_every_kind_and_the_accounted_share() {
    let dir = temp_dir("profile");
    let data = data_dir();
    let o = simdnet(
        &dir,
        &[
            "train",
            "--data",
            &data,
            "--limit",
            "2000",
            "--epochs",
            "1",
            "--profile",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    for label in [
        "forward GEMM + bias + act",
        "softmax + cross-entropy",
        "backward GEMM dW = xT.dz",
        "backward GEMM dx = dz.WT",
        "act backward + bias grad",
        "sum grads + optimizer",
        "gather mini-batch",
        "shuffle",
        "validation",
        "shards fork/join, no kernel",
    ] {
        assert!(out.contains(label), "'{label}' missing in\n{out}");
    }
    let line = out
        .lines()
        .find(|l| l.starts_with("Accounted: "))
        .unwrap_or_else(|| panic!("no accounted line in\n{out}"));
    let pct: f64 = line["Accounted: ".len()..]
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..=100.0).contains(&pct), "{line}");
    assert!(out.contains("waiting"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tune_writes_a_config_that_train_and_bench_then_use() {
    let dir = temp_dir("tune");
    let data = data_dir();
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
    // A broken file is a run error (exit 1) naming the problem, not a panic.
    std::fs::write(
        dir.join("simdnet-tune.cfg"),
        "version = 1\nmc = 0\nkc = 1\nnc = 1\n",
    )
    .unwrap();
    let o = train(&[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mc must be at least 1") && err.contains("simdnet tune"),
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
    std::fs::remove_dir_all(&dir).unwrap();
}
