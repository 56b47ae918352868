//! Asking Linux to back a large buffer with 2 MiB pages (one call, a hint).
//!
//! A shuffled mini-batch reads 128 rows scattered over the whole training
//! set (47 MB of pixels for MNIST). With 4 KiB pages almost every row sits
//! on a page the TLB does not map, so the prefetch hints that bring the next
//! step's rows in (`train --profile`, row "prefetch next examples") first
//! wait for a page walk each. Linux can back the set with 2 MiB pages
//! (transparent huge pages), 24 of them for MNIST, but where their mode is
//! `madvise` (the default of Debian and Ubuntu) only for memory that asks
//! with `madvise(MADV_HUGEPAGE)`. [`advise`] asks, for the whole 2 MiB
//! pages inside a buffer's allocation, before it is filled: the pages are
//! then made huge when first written.
//!
//! Measured on an AMD EPYC Zen 3 (AVX2, 8 lanes, 2 threads, mode
//! `madvise`), the workshop network, builds without and with the request
//! alternated: the prefetch row 0.035-0.045 -> 0.019-0.021 thread-s over
//! four epochs, the whole `simdnet train` process 0.312 -> 0.269 s (median
//! of 7); docs/PERFORMANCE.md has the table. [`describe`] names the mode
//! for `bench` and `train --profile`.
//!
//! It changes no byte. Elsewhere than Linux, in mode `never`, or if the
//! call fails, nothing happens.

/// The size of a huge page on x86-64 and on aarch64 with 4 KiB pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// Asks Linux to back the whole 2 MiB pages inside `buf`'s allocation (its
/// capacity, filled or not) with huge pages; `buf` is not changed. Worth
/// calling on an empty buffer reserved at its final size, before it is
/// filled. Returns the bytes the request covered (0 when the allocation
/// holds no whole huge page or the system has no such call).
pub fn advise<T>(buf: &Vec<T>) -> usize {
    let start = buf.as_ptr() as usize;
    let end = start + buf.capacity() * std::mem::size_of::<T>();
    let (first, last) = (start.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
    if last <= first {
        return 0;
    }
    if madvise_hugepage(first, last - first) {
        last - first
    } else {
        0
    }
}

/// Where Linux says which transparent-huge-page mode is in force.
pub const MODE_SOURCE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// The mode in force in the text of [`MODE_SOURCE`] (`always [madvise]
/// never` gives `madvise`): the word in brackets.
pub fn mode_of(setting: &str) -> Option<&str> {
    let start = setting.find('[')? + 1;
    let end = start + setting[start..].find(']')?;
    Some(&setting[start..end]).filter(|m| !m.is_empty())
}

/// One line for `bench` and `train --profile`: the mode, and what it means
/// for the data sets' pixels.
pub fn describe() -> String {
    let setting = std::fs::read_to_string(MODE_SOURCE).unwrap_or_default();
    describe_mode(mode_of(&setting))
}

fn describe_mode(mode: Option<&str>) -> String {
    match mode {
        Some("always") => "transparent, mode always (every large buffer may get them)".into(),
        Some("madvise") => "transparent, mode madvise (the data sets' pixels ask for them)".into(),
        Some("never") => "transparent, mode never: the data sets are on small pages (slower to fetch)".into(),
        Some(other) => format!("transparent, mode {other}"),
        None => format!("unknown ({MODE_SOURCE} not readable)"),
    }
}

#[cfg(target_os = "linux")]
fn madvise_hugepage(addr: usize, len: usize) -> bool {
    /// `MADV_HUGEPAGE` in Linux's `<asm-generic/mman-common.h>`, the same on every architecture.
    const MADV_HUGEPAGE: std::ffi::c_int = 14;
    extern "C" {
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: madvise(2) with MADV_HUGEPAGE only changes how the kernel backs
    // the pages, never their contents; `addr..addr + len` is page-aligned and
    // inside an allocation the caller owns.
    unsafe { madvise(addr as *mut std::ffi::c_void, len, MADV_HUGEPAGE) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn madvise_hugepage(_addr: usize, _len: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_the_word_in_brackets() {
        assert_eq!(mode_of("always [madvise] never\n"), Some("madvise"));
        assert_eq!(mode_of("[always] madvise never"), Some("always"));
        assert_eq!(mode_of("always madvise [never]"), Some("never"));
        assert_eq!(mode_of("always madvise never"), None);
        assert_eq!(mode_of("[]"), None);
        assert_eq!(mode_of(""), None);
        assert!(describe_mode(Some("madvise")).contains("the data sets' pixels ask for them"));
        assert!(describe_mode(Some("never")).contains("small pages"));
        assert!(describe_mode(None).starts_with("unknown ("));
        // This machine's line is one of them.
        let line = describe();
        assert!(
            line.starts_with("transparent, mode ") || line.starts_with("unknown ("),
            "{line}"
        );
    }

    #[test]
    fn a_buffer_without_a_whole_huge_page_is_left_alone() {
        assert_eq!(advise(&Vec::<u8>::new()), 0);
        assert_eq!(advise(&vec![7u8; 4096]), 0);
    }

    /// On Linux with transparent huge pages in mode `madvise` or `always`,
    /// the buffer's whole 2 MiB pages are asked for, its bytes stay as
    /// written, and the kernel backs at least one of them with a huge page
    /// (its mapping's `AnonHugePages` in `/proc/self/smaps`).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_buffer_gets_huge_pages_when_the_system_offers_them() {
        let mode = std::fs::read_to_string(MODE_SOURCE).unwrap_or_default();
        let len = 9 * HUGE_PAGE + 12345;
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        let covered = advise(&buf);
        assert!(covered >= 8 * HUGE_PAGE && covered <= len, "{covered}");
        buf.extend((0..len).map(|i| (i * 7 % 251) as u8));
        assert!(buf.iter().enumerate().all(|(i, &b)| b == (i * 7 % 251) as u8));
        if !(mode.contains("[madvise]") || mode.contains("[always]")) {
            return; // `never`, or no transparent huge pages: nothing to see
        }
        // Under a user-mode emulator (CI runs the aarch64 tests in qemu on
        // x86-64) the host kernel's architecture differs from this binary's,
        // and the emulator answers madvise(2) without passing it on.
        let kernel_arch = std::fs::read_to_string("/proc/sys/kernel/arch").unwrap_or_default();
        if !kernel_arch.trim().is_empty() && kernel_arch.trim() != std::env::consts::ARCH {
            return;
        }
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let at = buf.as_ptr() as usize + HUGE_PAGE * 4;
        let mut inside = false;
        let mut huge_kb = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                        inside = a <= at && at < b;
                        continue;
                    }
                }
            }
            if inside {
                if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                    huge_kb = kb.trim().trim_end_matches("kB").trim().parse::<usize>().ok();
                }
            }
        }
        let huge_kb = huge_kb.expect("the buffer's mapping in /proc/self/smaps");
        assert!(huge_kb >= 2048, "{huge_kb} kB of huge pages in mode {mode}");
    }
}
