//! What the build reports about its SIMD hardware and fused multiply-add,
//! checked against the target it was compiled for; and the cache probe's
//! guesses. Library-only (no binary is spawned), so it runs under qemu in the
//! ARM stage of CI (`.ci/arm`) as well as natively.

mod common;

use simdnet::gemm::blocking::CacheSizes;
use simdnet::profile::facts::{caches_json, describe_caches, SimdFacts};
use simdnet::profile::json::Json;
use simdnet::simd::{self, FUSED_MULTIPLY_ADD, V};

/// Whether the compiled target fuses multiply-add, from its `cfg` alone.
fn target_fuses() -> bool {
    let arch = std::env::consts::ARCH;
    let x86 = arch == "x86_64" || arch == "x86";
    arch == "aarch64" || (x86 && cfg!(target_feature = "fma"))
}

#[test]
fn fused_multiply_add_is_what_the_target_has() {
    assert_eq!(FUSED_MULTIPLY_ADD, target_fuses());
}

/// `(1 + e)·(1 + e) - (1 + 2e)` is `e²` rounded once, 0 rounded twice.
#[test]
fn scalar_and_vector_multiply_add_round_alike_and_fuse_exactly_when_promised() {
    let a = 1.0 + f32::EPSILON;
    let c = -(1.0 + 2.0 * f32::EPSILON);
    let scalar = simd::mul_add_f32(a, a, c);
    assert_eq!(
        scalar,
        if FUSED_MULTIPLY_ADD {
            f32::EPSILON * f32::EPSILON
        } else {
            0.0
        },
        "fused multiply-add: {FUSED_MULTIPLY_ADD}"
    );
    let vector = simd::mul_add(V::splat(a), V::splat(a), V::splat(c)).to_array();
    for lane in vector {
        assert_eq!(lane.to_bits(), scalar.to_bits(), "vector lane vs scalar");
    }
}

#[test]
fn reported_simd_matches_the_compiled_target() {
    let f = SimdFacts::current();
    assert_eq!(f.arch, std::env::consts::ARCH);
    assert_eq!(f.vector_lanes, simdnet::gemm::simd_width());
    assert_eq!(f.vector_lanes, core::mem::size_of::<V>() / 4);
    assert_eq!(f.lanes * f.registers_per_vector, f.vector_lanes);
    assert_eq!(f.fma, target_fuses());
    // (isa, lanes per register, kernel vector lanes)
    let expected = if cfg!(target_arch = "aarch64") {
        ("NEON", 4, 8)
    } else if cfg!(target_feature = "avx512f") {
        ("AVX-512", 16, 16)
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
        ("AVX2", 8, 8)
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx")) {
        ("AVX", 8, 8)
    } else if cfg!(target_arch = "x86_64") {
        ("SSE2", 4, 8)
    } else {
        ("none", 1, 8)
    };
    assert_eq!((f.isa, f.lanes, f.vector_lanes), expected, "{}", f.describe());
    if cfg!(target_arch = "aarch64") {
        assert_eq!(f.features, ["neon"]);
        assert!(
            f.describe().starts_with(
                "NEON on aarch64: 4 f32 lanes per register, kernel vectors of 8 lanes \
                 (wide's f32x8 = 2 registers); fused multiply-add yes"
            ),
            "{}",
            f.describe()
        );
    }
    if cfg!(target_arch = "x86_64") {
        for (name, on) in [
            ("sse2", cfg!(target_feature = "sse2")),
            ("avx2", cfg!(target_feature = "avx2")),
            ("fma", cfg!(target_feature = "fma")),
            ("avx512f", cfg!(target_feature = "avx512f")),
        ] {
            assert_eq!(f.features.contains(&name), on, "{name} in {:?}", f.features);
        }
    }
    let Json::Obj(j) = f.to_json() else {
        panic!("simd is not an object")
    };
    let get = |k: &str| j.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get("isa"), Some(Json::str(expected.0)));
    assert_eq!(get("lanes"), Some(Json::Int(expected.1 as i64)));
    assert_eq!(get("fma"), Some(Json::Bool(target_fuses())));
}

/// A fake `/sys/devices/system/cpu/cpu0/cache` with the given
/// `(level, type, size)` entries.
fn fake_sysfs(name: &str, entries: &[(&str, &str, &str)]) -> std::path::PathBuf {
    let dir = common::scratch_root().join(format!("simdnet-caches-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (i, (level, kind, size)) in entries.iter().enumerate() {
        let d = dir.join(format!("index{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
        std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
        std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn cache_sizes_come_from_sysfs_or_are_marked_as_guesses() {
    let full = fake_sysfs(
        "full",
        &[
            ("1", "Data", "64K"),
            ("1", "Instruction", "64K"),
            ("2", "Unified", "2048K"),
            ("3", "Unified", "16M"),
        ],
    );
    let p = CacheSizes::probe_dir(&full);
    assert_eq!(
        (p.sizes.l1d, p.sizes.l2, p.sizes.l3),
        (64 << 10, 2 << 20, 16 << 20)
    );
    assert!(p.guessed_levels().is_empty());
    let text = describe_caches(&p);
    assert!(
        text.starts_with("L1d 64 KiB, L2 2 MiB, L3 16 MiB (from /sys/"),
        "{text}"
    );

    // A board that describes L1 and L2 only, one of them unreadable.
    let partial = fake_sysfs("partial", &[("1", "Data", "32K"), ("2", "Unified", "lots")]);
    let p = CacheSizes::probe_dir(&partial);
    assert_eq!(p.sizes.l1d, 32 << 10);
    assert_eq!(
        (p.sizes.l2, p.sizes.l3),
        (CacheSizes::GUESS.l2, CacheSizes::GUESS.l3)
    );
    assert_eq!(p.guessed_levels(), ["L2", "L3"]);
    let text = describe_caches(&p);
    assert!(text.contains("(L2, L3 GUESSED, not in /sys/"), "{text}");
    assert!(caches_json(&p)
        .render()
        .contains("\"guessed\": [\n    \"L2\",\n    \"L3\"\n  ]"));

    let none = fake_sysfs("none", &[]);
    let p = CacheSizes::probe_dir(&none);
    assert_eq!(p.sizes, CacheSizes::GUESS);
    assert_eq!(p.guessed, [true; 3]);
    assert!(describe_caches(&p).contains("all GUESSED"));
    for d in [full, partial, none] {
        let _ = std::fs::remove_dir_all(d);
    }
    // The real probe never fails, whatever this machine describes.
    let _ = CacheSizes::probe();
}

/// The text and JSON of aarch64's facts, checked on every host (the
/// registers-per-vector distinction is invisible on AVX-512, where both
/// widths are 16).
#[test]
fn neon_facts_read_as_four_lanes_in_two_registers() {
    let neon = SimdFacts {
        arch: "aarch64",
        isa: "NEON",
        lanes: 4,
        vector_lanes: 8,
        registers_per_vector: 2,
        fma: true,
        features: vec!["neon"],
    };
    assert_eq!(
        neon.describe(),
        "NEON on aarch64: 4 f32 lanes per register, kernel vectors of 8 lanes \
         (wide's f32x8 = 2 registers); fused multiply-add yes; features neon"
    );
    let compact: String = neon.to_json().render().split_whitespace().collect();
    assert_eq!(
        compact,
        r#"{"arch":"aarch64","isa":"NEON","lanes":4,"vector_lanes":8,"registers_per_vector":2,"fma":true,"features":["neon"]}"#
    );
    let scalar = SimdFacts {
        arch: "arm",
        isa: "none",
        lanes: 1,
        vector_lanes: 8,
        registers_per_vector: 8,
        fma: false,
        features: vec![],
    };
    assert_eq!(
        scalar.describe(),
        "no SIMD on arm (scalar code): kernel vectors of 8 lanes (wide's f32x8 = 8 scalar values); \
         fused multiply-add no; features none"
    );
}
