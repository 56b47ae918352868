//! Micro-kernels: the innermost computation of the BLIS loops.
//!
//! A micro-kernel multiplies one packed micro-panel of A (`MR x kc`, stored
//! column by column: `MR` floats per step of `k`) by one packed micro-panel of
//! B (`kc x NR`, stored row by row: `NR` floats per step of `k`), keeping the
//! `MR x NR` block of C in registers the whole time (a sequence of `kc`
//! rank-1 updates), and then writes it to C once:
//!
//! ```text
//! c_tile = acc + beta · c_tile          (C not read when beta == 0)
//! c_tile = act(c_tile + bias)           (only with an epilogue, last kc block)
//! c_tile = c_tile ⊙ dropout factors     (only with a dropout mask, training)
//! ```
//!
//! Every element of C is summed in the same order, `p = 0, 1, .., kc - 1`
//! with one multiply-add per step ([`crate::simd::mul_add`]: fused exactly
//! when [`crate::simd::FUSED_MULTIPLY_ADD`], in every kernel), whatever
//! the kernel shape and wherever the element sits in a tile. That is why the
//! result does not depend on the kernel, the tiling or the thread count; only
//! `kc` (where the sum over `k` is cut) matters. (One exception, in the
//! epilogue: the scalar kernels apply sigmoid and tanh with the scalar `f32`
//! functions, the SIMD kernels with the vector approximations.)
//!
//! - [`scalar`]: the teaching version and portable fallback.
//! - [`simd`]: `wide` vectors, one register row of C per row of the tile.

pub mod scalar;
pub mod simd;

use crate::activation::Activation;
use crate::simd::LANES;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where and how a micro-kernel writes its `MR x NR` tile of C.
#[derive(Clone, Copy, Debug)]
pub struct TileOut {
    /// Element `(0, 0)` of the tile in C.
    pub c: *mut f32,
    /// Distance between rows of C (elements); columns are contiguous.
    pub rs_c: usize,
    /// Valid rows (`<= MR`) and columns (`<= NR`) of the tile: edge tiles
    /// are computed from zero-padded panels (in full, except the rows a
    /// [`MicroKernel::run_short`] leaves out) but only this part is read or
    /// written.
    pub rows: usize,
    /// Valid columns of the tile (`<= NR`).
    pub cols: usize,
    /// `c = acc + beta · c`; with `beta == 0` C is not read.
    pub beta: f32,
    /// `Some((bias, act))`: `c = act(c + bias[j])`, `bias` pointing at the
    /// tile's first column and valid for `cols` entries.
    pub epilogue: Option<(*const f32, Activation)>,
    /// With an epilogue: the dropout mask, starting at the tile's element
    /// (0, 0); `c = act(c + bias[j]) · mask.factor(i, j)`.
    pub dropout: Option<crate::kernels::DropoutMask>,
    /// The tile of C the loops write next, for the kernels that
    /// [`MicroKernel::prefetches_next`] to prefetch, one line per step of
    /// `k` over the first [`NextTile::lines`] steps (`None`: nothing).
    pub next: Option<NextTile>,
}

/// A tile of C for a micro-kernel to prefetch while it computes its own
/// ([`TileOut::next`]): `rows x cols` floats at `c`, rows `rs_c` (the
/// current tile's) apart. A hint: it is never read or written through.
///
/// Prefetching the next tile one line per step, rather than all of its
/// lines at once before the call (`loops::prefetch_c`), keeps few misses
/// in flight, so a prefetch never waits for a free miss buffer (a burst
/// of 16-32 did, for longer than the store misses it saved when C was
/// warm). Measured on Zen 4 (AMD EPYC family 25 model 17, AVX-512, 16
/// lanes, `simd-16x16`, 1 thread, GFLOP/s, medians of 7 alternated runs
/// of 15 x 2 GFLOP, C = 1.6 MB warm in L3; before the call / in the
/// kernel / none): `Xᵀ·dZ` 784x512x128 93.9 / 97.4 / 97.7, 784x512x64
/// 84.3 / 92.1 / 100.2; with C cold, in a 784-512-512-10 training step
/// (`cargo bench --bench step`, 3 runs, ms), the same 784x512x128 product
/// 1.10-1.23 / 1.07-1.12 / 1.38-1.41 (a second set level: 1.02-1.06 /
/// 1.02-1.14). Deeper products keep the prefetch before the call
/// (`loops::PREFETCH_IN_KERNEL_BELOW`).
#[derive(Clone, Copy, Debug)]
pub struct NextTile {
    /// Element `(0, 0)` of the tile.
    pub c: *const f32,
    /// Rows of the tile.
    pub rows: usize,
    /// Columns of the tile.
    pub cols: usize,
}

/// Floats in a 64-byte cache line.
const LINE_FLOATS: usize = 16;

impl NextTile {
    /// The prefetches it takes, one per line a row may touch: its columns'
    /// lines, one more for a row that does not start on a line.
    pub fn lines(&self) -> usize {
        Self::lines_of(self.rows, self.cols)
    }

    /// The most prefetches a tile of an `mr x nr` kernel takes: the depth
    /// from which the kernel prefetches all of its next tile.
    pub fn most_lines(mr: usize, nr: usize) -> usize {
        Self::lines_of(mr, nr)
    }

    /// Prefetches of a `rows x cols` tile: per row, the floats
    /// `0, 16, 32, ..` and the last.
    fn lines_of(rows: usize, cols: usize) -> usize {
        rows * (Self::last_of(cols).div_ceil(LINE_FLOATS) + 1)
    }

    /// The last column of `cols` (0 for none).
    fn last_of(cols: usize) -> usize {
        cols.max(1) - 1
    }
}

/// The prefetches of a [`NextTile`] still to issue, in order: row by row,
/// in each the floats `0, 16, 32, ..` up to the last one.
pub(crate) struct NextLines {
    row: *const f32,
    rs: usize,
    col: usize,
    last: usize,
    /// Prefetches left.
    pub(crate) left: usize,
}

impl NextLines {
    /// The prefetches of `out`'s next tile (none without one).
    #[inline(always)]
    pub(crate) fn of(out: &TileOut) -> NextLines {
        match out.next {
            Some(t) => NextLines {
                row: t.c,
                rs: out.rs_c,
                col: 0,
                last: NextTile::last_of(t.cols),
                left: t.lines(),
            },
            None => NextLines {
                row: std::ptr::null(),
                rs: 0,
                col: 0,
                last: 0,
                left: 0,
            },
        }
    }

    /// Issues the next prefetch (call at most `left` times).
    #[inline(always)]
    pub(crate) fn issue(&mut self) {
        crate::simd::prefetch_line(self.advance());
    }

    /// The address of the next prefetch, and moves past it.
    #[inline(always)]
    fn advance(&mut self) -> *const f32 {
        let at = self.row.wrapping_add(self.col.min(self.last));
        if self.col >= self.last {
            self.row = self.row.wrapping_add(self.rs);
            self.col = 0;
        } else {
            self.col += LINE_FLOATS;
        }
        self.left -= 1;
        at
    }
}

/// `unsafe fn(kc, a_panel, b_panel, out)`.
///
/// # Safety (for every kernel)
/// `a` must be readable for `MR * kc` floats, `b` for `NR * kc` floats, and
/// `out` must describe a writable (and, if `beta != 0`, initialised) region
/// of `rows` rows of `cols` floats, rows `rs_c` apart, not aliased elsewhere.
pub type KernelFn = unsafe fn(kc: usize, a: *const f32, b: *const f32, out: &TileOut);

/// `unsafe fn(kc, a, ra, pa, b_panel, out)`: a [`KernelFn`] that reads
/// element `(i, p)` of its A micro-panel at `a + i·ra + p·pa` instead of a
/// packed panel (A in place, no packing).
///
/// # Safety
/// As [`KernelFn`], with `a + i·ra + p·pa` readable for `i < MR`, `p < kc`.
pub type StridedKernelFn =
    unsafe fn(kc: usize, a: *const f32, ra: usize, pa: usize, b: *const f32, out: &TileOut);

/// `unsafe fn(kc, rows, offs, b_panel, out)`: a [`KernelFn`] that reads
/// element `(i, p)` of its A micro-panel at `rows[i] + offs[p]`: A in place
/// where neither its rows nor its columns are evenly spaced (a convolution's
/// unfolded input, [`crate::gemm::Im2col`]: one pointer per output
/// position, one offset per filter tap, or the other way round).
///
/// # Safety
/// As [`KernelFn`], with `rows` readable for `MR` pointers, `offs` for `kc`
/// offsets, and `rows[i] + offs[p]` readable for `i < MR`, `p < kc`.
pub type GatherKernelFn =
    unsafe fn(kc: usize, rows: *const *const f32, offs: *const usize, b: *const f32, out: &TileOut);

/// `unsafe fn(kc, a, ra, pa, b, pb, out)`: a [`StridedKernelFn`] that also
/// reads B in place: step `p` of its B micro-panel is the `NR` floats at
/// `b + p·pb` (a full panel of a row-major B, `pb` its row stride; a packed
/// A~ panel is `(ra, pa) = (1, MR)`). With B in place (`pb != NR`) and a
/// tile whose `out.cols` end inside the panel's last vector
/// (`NR - LANES < cols < NR`: a last partial panel), the last steps read
/// only their valid columns (a masked load on x86-64), the others whole
/// vectors that run on into B's next floats, never past the last valid
/// one.
///
/// # Safety
/// As [`StridedKernelFn`], with `b + p·pb .. + NR` readable for `p < kc`
/// (for such an edge tile, every float from `b` to `b + (kc - 1)·pb +
/// out.cols`: B's rows in one allocation, as a `MatRef`'s are).
pub type InPlaceBKernelFn =
    unsafe fn(kc: usize, a: *const f32, ra: usize, pa: usize, b: *const f32, pb: usize, out: &TileOut);

/// `unsafe fn(rows, kc, a, ra, pa, b, pb, out)`: an [`InPlaceBKernelFn`]
/// for a tile whose `rows` (`== out.rows`, `<= MR`) valid rows are fewer
/// than `MR`: it computes no row past them.
///
/// # Safety
/// As [`InPlaceBKernelFn`], for the first `rows` rows of A only.
pub type ShortKernelFn = unsafe fn(
    rows: usize,
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    pb: usize,
    out: &TileOut,
);

/// The rows of A a [`ShortKernelFn`] of tile height `mr` reads for a tile
/// of `rows < mr` valid rows: the fewest of 1, 2, 4 and 8 that hold them,
/// else all `mr`. When it is `rows` itself, the kernel reads no row past
/// the tile's, so A may be read in place for it (the loops' last tile of a
/// block).
pub fn short_body_rows(rows: usize, mr: usize) -> usize {
    [1, 2, 4, 8]
        .into_iter()
        .find(|&body| rows <= body && body < mr)
        .unwrap_or(mr)
}

/// A micro-kernel and its register-tile shape.
#[derive(Clone, Copy, Debug)]
pub struct MicroKernel {
    /// The name `set_kernel`, `SIMDNET_KERNEL` and the tuning file use.
    pub name: &'static str,
    /// Rows of C per tile.
    pub mr: usize,
    /// Columns of C per tile.
    pub nr: usize,
    /// The kernel on packed A and B micro-panels.
    pub run: KernelFn,
    /// The same kernel reading A in place.
    pub run_strided: StridedKernelFn,
    /// The same kernel reading A in place through row pointers and depth
    /// offsets (`None`: the kernel has its lanes along m and needs rows of A
    /// evenly spaced).
    pub run_gather: Option<GatherKernelFn>,
    /// The same kernel reading B in place too (`None`: the scalar and the
    /// lanes-along-m kernels, which always read a packed B~).
    pub run_b_in_place: Option<InPlaceBKernelFn>,
    /// The same kernel for a tile of fewer than `mr` rows, computing only
    /// those (`None`: the scalar and the lanes-along-m kernels, which
    /// compute the whole tile and store its valid part).
    pub run_short: Option<ShortKernelFn>,
    /// Whether the kernel prefetches [`TileOut::next`] (every form but the
    /// gather one; the SIMD kernels that broadcast A). The others ignore it.
    pub prefetches_next: bool,
}

impl MicroKernel {
    /// Whether the kernel broadcasts elements of A (its lanes run along n),
    /// so that reading A in place costs the same at any row stride. The
    /// lanes-along-m kernels load A~ as vectors and have no gather form.
    pub fn broadcasts_a(&self) -> bool {
        self.run_gather.is_some()
    }
}

macro_rules! simd_kernel {
    ($name:literal, $mr:literal, $nv:literal) => {
        MicroKernel {
            name: $name,
            mr: $mr,
            nr: $nv * LANES,
            run: simd::micro_kernel::<$mr, $nv>,
            run_strided: simd::micro_kernel_strided::<$mr, $nv>,
            run_gather: Some(simd::micro_kernel_gather::<$mr, $nv>),
            run_b_in_place: Some(simd::micro_kernel_b_in_place::<$mr, $nv>),
            run_short: Some(simd::micro_kernel_short::<$mr, $nv>),
            prefetches_next: true,
        }
    };
}

macro_rules! simd_kernel_m {
    ($name:literal, $mv:literal, $nr:literal) => {
        MicroKernel {
            name: $name,
            mr: $mv * LANES,
            nr: $nr,
            run: simd::micro_kernel_m::<{ $mv * LANES }, $mv, $nr>,
            run_strided: simd::micro_kernel_m_strided::<{ $mv * LANES }, $mv, $nr>,
            run_gather: None,
            run_b_in_place: None,
            run_short: None,
            prefetches_next: false,
        }
    };
}

/// The SIMD kernels compiled in; [`default_kernel`] and [`choose`] pick
/// among them by shape and CPU, the others are there for tuning (`set_kernel`).
///
/// AVX-512 (32 zmm registers): on Zen 4 the default is 16x16, 16
/// accumulators + 1 B vector + 1 broadcast A value. Shapes that fill more
/// registers (12x32: 27 of 32, 14x32: 31, 24x16: 26) were measured slower
/// on Zen 4 (best of 30 runs, 1 thread, a sweep over kernels and kc with
/// `set_kernel` and `set_block_sizes`): 16x16 with kc = 512 gives 101-109
/// GFLOP/s on the network's 512-wide shapes and squares 256-1024, 12x32
/// with kc = 256 94-106, 24x16 87-104.
/// Zen 4 runs a zmm FMA as two 256-bit halves, one per cycle, with latency
/// 4: 16 independent accumulators already hide the latency, while the
/// narrower tile halves the B micro-panel (so kc can be 512 and C is
/// updated half as often), and m = 128 splits into whole 16-row panels.
/// Zen 5 runs zmm FMAs at full width on two pipes: there the wider 12x32
/// tile (fewer broadcast loads per FMA) wins on wide products (kc = 512,
/// thread CPU time, best of 9: 128x512x512 223 GFLOP/s against 213,
/// 784x512x128 229 / 218, 512³ 235 / 224), see [`default_kernel`]. So did
/// an Intel Xeon with two FMA units (1 thread, best thread CPU time,
/// medians of 3 runs, 16x16 -> 12x32: 128x512x512 128 -> 167 GFLOP/s,
/// 128x512x784 116 -> 158, 1024³ 135 -> 162; `docs/PERFORMANCE.md`).
///
/// AVX2 (16 ymm registers): 6x16 uses 12 accumulators + 2 B + 1 A = 15.
///
/// The `simd-m..` kernels have their lanes along m ([`simd::micro_kernel_m`]):
/// for 10 or 12 columns (two tiles of 5 or 6, not one of 16 with 6 or 4
/// columns wasted) on AVX2.
#[cfg(target_feature = "avx512f")]
pub const SIMD_KERNELS: &[MicroKernel] = &[
    simd_kernel!("simd-16x16", 16, 1),
    simd_kernel!("simd-12x32", 12, 2),
    simd_kernel!("simd-24x16", 24, 1),
    simd_kernel!("simd-8x48", 8, 3),
    simd_kernel!("simd-6x64", 6, 4),
    simd_kernel!("simd-14x32", 14, 2),
    simd_kernel_m!("simd-m32x10", 2, 10),
    simd_kernel_m!("simd-m64x5", 4, 5),
];
#[cfg(target_feature = "avx512f")]
const DEFAULT: usize = 0;
/// The default on CPUs with full-width 512-bit FMAs (Zen 5, Intel Xeons with
/// two FMA units): `simd-12x32`.
#[cfg(target_feature = "avx512f")]
const DEFAULT_FULL_WIDTH: usize = 1;
#[cfg(target_feature = "avx512f")]
const NARROW: usize = 0;
/// For `LANES < n <= 12` (none on AVX-512: the 16x16 in place wins there).
#[cfg(target_feature = "avx512f")]
const MID: Option<[usize; 2]> = None;
/// For `n` a multiple of 64 on full-width 512-bit FMAs (Zen 5, Intel Xeons):
/// `simd-6x64`.
/// A row of A~ feeds 64 columns at once, so for `n = 64` A~ streams from L2
/// once, not twice; same sums in the same order as `simd-12x32` (bit-identical).
/// Measured (1 thread, one 64-image shard, `cargo bench --bench cnn -- --layers`):
/// Keras conv2 (n = 64) forward 7.4 -> 6.6-6.8 ms, dW 8.7-9.0 -> 7.1-7.4 ms;
/// its dense 9216->128 forward 1.45 -> 1.1-1.2 ms, dx (n = 9216) 1.35 -> 1.0-1.1 ms;
/// the 512-wide dense shapes of `simdnet bench` unchanged (within 2%).
#[cfg(target_feature = "avx512f")]
const WIDE_64: Option<usize> = Some(4);
#[cfg(not(target_feature = "avx512f"))]
const WIDE_64: Option<usize> = None;

/// The SIMD kernels compiled in (AVX2, 8 lanes: 16 ymm registers; see the AVX-512 list above).
#[cfg(not(target_feature = "avx512f"))]
pub const SIMD_KERNELS: &[MicroKernel] = &[
    simd_kernel!("simd-6x16", 6, 2),
    simd_kernel!("simd-12x8", 12, 1),
    simd_kernel!("simd-8x8", 8, 1),
    simd_kernel!("simd-4x24", 4, 3),
    simd_kernel_m!("simd-m16x5", 2, 5),
    simd_kernel_m!("simd-m16x6", 2, 6),
    simd_kernel_m!("simd-m24x4", 3, 4),
];
#[cfg(not(target_feature = "avx512f"))]
const DEFAULT: usize = 0;
#[cfg(not(target_feature = "avx512f"))]
const DEFAULT_FULL_WIDTH: usize = 0;
#[cfg(not(target_feature = "avx512f"))]
const NARROW: usize = 1;
/// For `LANES < n <= 10` and `10 < n <= 12`: `simd-m16x5` and `simd-m16x6`
/// (AVX2, the 10 logits: 76 GFLOP/s against 59 for the 6x16 tile on
/// 128x10x512, Zen 5 running AVX2 code, thread CPU time), with an L1d of
/// at least [`MID_MIN_L1D`].
#[cfg(not(target_feature = "avx512f"))]
const MID: Option<[usize; 2]> = Some([4, 5]);

/// The plain-Rust kernels (teaching versions; `scalar-4x4` is the smallest
/// complete example of a register tile).
pub const SCALAR_KERNELS: &[MicroKernel] = &[
    MicroKernel {
        name: "scalar-4x4",
        mr: 4,
        nr: 4,
        run: scalar::micro_kernel::<4, 4>,
        run_strided: scalar::micro_kernel_strided::<4, 4>,
        run_gather: Some(scalar::micro_kernel_gather::<4, 4>),
        run_b_in_place: None,
        run_short: None,
        prefetches_next: false,
    },
    MicroKernel {
        name: "scalar-8x8",
        mr: 8,
        nr: 8,
        run: scalar::micro_kernel::<8, 8>,
        run_strided: scalar::micro_kernel_strided::<8, 8>,
        run_gather: Some(scalar::micro_kernel_gather::<8, 8>),
        run_b_in_place: None,
        run_short: None,
        prefetches_next: false,
    },
];

/// Every kernel, SIMD first.
pub fn all_kernels() -> impl Iterator<Item = &'static MicroKernel> {
    SIMD_KERNELS.iter().chain(SCALAR_KERNELS)
}

/// The kernel used for wide shapes (`n > LANES`, and past the `simd-m..`
/// range on AVX2): chosen once per process from the CPU, see
/// [`full_width_512`].
pub fn default_kernel() -> &'static MicroKernel {
    static CHOICE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    &SIMD_KERNELS[*CHOICE.get_or_init(|| {
        if full_width_512() {
            DEFAULT_FULL_WIDTH
        } else {
            DEFAULT
        }
    })]
}

/// Whether this CPU runs 512-bit FMAs at full width on two pipes (Zen 5
/// servers, Intel Xeons with two FMA units), where a wider register tile
/// pays; Zen 4 splits each into two 256-bit halves. Found by timing
/// ([`crate::simd::fma_width`]: `cpuid` does not tell), once per process.
/// Always false without AVX-512 in the build (the choice only exists there).
pub fn full_width_512() -> bool {
    crate::simd::fma_width::full_width_512()
}

/// The widest `n` that [`choose_for`] gives [`wide_64`]'s kernel.
const WIDE_64_MAX_N: usize = 128;

/// The kernel for `n` a multiple of 64, if this CPU has one (`simd-6x64`
/// on full-width 512-bit FMAs, see `WIDE_64` in the source); checked once per process.
pub fn wide_64() -> Option<&'static MicroKernel> {
    static CHOICE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    CHOICE
        .get_or_init(|| WIDE_64.filter(|_| full_width_512()))
        .map(|i| &SIMD_KERNELS[i])
}

/// The kernel used for `n <= LANES` (one vector per tile row).
pub fn narrow_kernel() -> &'static MicroKernel {
    &SIMD_KERNELS[NARROW]
}

/// For `n <= LANES` with A read by the gather kernel (a `valid`
/// convolution's input, [`GatherKernelFn`]): `simd-24x16` on AVX-512.
/// Measured (LeNet-5's second convolution, 5x5x16 on 14x14x6, one 64-image
/// shard, 1 thread, Zen 5): forward 0.19 -> 0.17 ms, weight gradient
/// 0.22 -> 0.20 ms against `simd-16x16`; same sums, same bits.
#[cfg(target_feature = "avx512f")]
const GATHER_NARROW: Option<usize> = Some(2);
#[cfg(not(target_feature = "avx512f"))]
const GATHER_NARROW: Option<usize> = None;

/// The kernel for a product with `n` columns whose A the gather kernel
/// reads (`simd-24x16` for `n <= LANES` on AVX-512, see `GATHER_NARROW` in
/// the source), given the one [`choose_for`] picked.
pub fn choose_for_gather(n: usize, chosen: &'static MicroKernel) -> &'static MicroKernel {
    match GATHER_NARROW {
        Some(i) if n <= LANES && forced().is_none() => &SIMD_KERNELS[i],
        _ => chosen,
    }
}

/// `usize::MAX`: choose by shape; otherwise an index into `all_kernels()`.
static FORCED: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Forces one kernel for every shape (`None`: choose by shape again).
pub fn force(kernel: Option<&str>) -> Result<(), String> {
    forced(); // read SIMDNET_KERNEL first, so that it cannot override this call later
    let index = match kernel {
        None => usize::MAX,
        Some(name) => all_kernels().position(|k| k.name == name).ok_or_else(|| {
            let names: Vec<_> = all_kernels().map(|k| k.name).collect();
            format!("unknown micro-kernel '{name}': available {}", names.join(", "))
        })?,
    };
    FORCED.store(index, Ordering::Relaxed);
    Ok(())
}

static ENV: std::sync::Once = std::sync::Once::new();

/// The forced kernel, if any: set by [`force`], or initially by the
/// environment variable `SIMDNET_KERNEL` (a name from [`all_kernels`];
/// unknown names are ignored).
pub fn forced() -> Option<&'static MicroKernel> {
    ENV.call_once(|| {
        if let Ok(name) = std::env::var("SIMDNET_KERNEL") {
            if let Some(index) = all_kernels().position(|k| k.name == name.trim()) {
                FORCED.store(index, Ordering::Relaxed);
            }
        }
    });
    all_kernels().nth(FORCED.load(Ordering::Relaxed))
}

/// The `simd-m..` kernels are chosen by shape only from this depth on: they
/// write their tile transposed, a fixed cost per tile that a short `k`
/// does not repay (AVX2 on Zen 5, thread CPU time: 128x10x512 77 GFLOP/s
/// with `simd-m16x5` against 60 with `simd-6x16`, but 128x10x16 12 against 39).
pub const MID_MIN_DEPTH: usize = 128;

/// The smallest L1 data cache with which [`choose_for`] gives the
/// `simd-m..` kernels their columns (`MID` in the source, AVX2 builds).
/// They need A transposed into A~ (lanes along m), a copy the 6x16 tile,
/// reading A in place with 10 of its 16 columns used, does not make.
/// That pays on Zen 5 (48 KiB L1d, see [`MID_MIN_DEPTH`]) but not on Zen 3
/// (32 KiB). Measured there (AMD EPYC family 25 model 1, AVX2, 8 lanes,
/// 2026-12-01, 1 thread, ratio to the `gemm` crate in the same process,
/// `simd-m16x5` -> `simd-6x16`): 128x10x512 alone, warm 0.82 -> 0.91 and
/// with the caches flushed to L3 before each call 0.86 -> 0.91 (medians of
/// 2000 calls); in a 784-512-512-10 training step's sequence of products
/// with an optimiser pass between steps (two runs of each build, medians
/// of 11 x 20 steps) `H·W` 128x10x512 0.55-0.60 -> 0.87-0.92 and `Hᵀ·dZ`
/// 512x10x128 0.71-0.73 -> 0.87. Zen 4 (32 KiB)
/// builds for AVX-512, where the choice does not exist.
pub const MID_MIN_L1D: usize = 48 << 10;

/// Whether this machine's L1d is at least [`MID_MIN_L1D`].
fn mid_pays() -> bool {
    super::blocking::l1d_bytes() >= MID_MIN_L1D
}

/// The kernel for a product with `n` columns and a large depth (see
/// [`choose_for`]).
pub fn choose(n: usize) -> &'static MicroKernel {
    choose_for(n, usize::MAX)
}

/// The kernel for a product with `n` columns and depth `k`.
pub fn choose_for(n: usize, k: usize) -> &'static MicroKernel {
    if let Some(kernel) = forced() {
        return kernel;
    }
    choose_by_shape(n, k, mid_pays())
}

/// [`choose_for`] without a forced kernel, `mid` saying whether the
/// `simd-m..` kernels may be chosen ([`MID_MIN_L1D`]).
fn choose_by_shape(n: usize, k: usize, mid: bool) -> &'static MicroKernel {
    match MID {
        _ if n <= LANES => narrow_kernel(),
        // n = 64 or 128 (a CNN's filters, Keras' dense 128): 6x64 measured faster; on
        // 128 x 512 x 784 it was slower (263-273 against 323-335 GFLOP/s, Zen 5, 2 threads)
        _ if n.is_multiple_of(64) && n <= WIDE_64_MAX_N && wide_64().is_some() => {
            wide_64().unwrap_or(default_kernel())
        }
        _ if k < MID_MIN_DEPTH => default_kernel(),
        Some([upto_10, _]) if n <= 10 && mid => &SIMD_KERNELS[upto_10],
        Some([_, upto_12]) if n <= 12 && mid => &SIMD_KERNELS[upto_12],
        _ => default_kernel(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short kernel's body for a tile of `rows` rows holds them, is one
    /// the kernel has (1, 2, 4, 8 or the full tile), and is the smallest
    /// such: a tail of 2 or 4 rows of the 6x16 tile is read exactly (A in
    /// place), one of 3 or 5 is not.
    #[test]
    fn short_bodies_hold_the_rows_and_no_more_than_needed() {
        for mr in [6, 8, 12, 16] {
            for rows in 1..mr {
                let body = short_body_rows(rows, mr);
                assert!(rows <= body && body <= mr, "{rows} rows of {mr}: {body}");
                assert!([1, 2, 4, 8, mr].contains(&body), "{rows} rows of {mr}: {body}");
                let smaller = [1, 2, 4, 8].into_iter().any(|b| rows <= b && b < body);
                assert!(!smaller, "{rows} rows of {mr}: {body} is not the smallest");
            }
        }
        let exact: Vec<usize> = (1..6).filter(|&r| short_body_rows(r, 6) == r).collect();
        assert_eq!(exact, [1, 2, 4]);
        assert_eq!(short_body_rows(5, 6), 6);
        assert_eq!(short_body_rows(12, 16), 16);
    }

    #[test]
    fn lanes_along_m_kernels_only_where_the_l1d_lets_them_pay() {
        for (n, k) in [(10, 512), (12, 512), (9, 128)] {
            // without them, the narrow kernel up to LANES columns (AVX-512:
            // 16), past it the wide one
            let plain = if n <= LANES {
                narrow_kernel().name
            } else {
                default_kernel().name
            };
            assert_eq!(choose_by_shape(n, k, false).name, plain, "n = {n}, k = {k}");
            let with_mid = choose_by_shape(n, k, true).name;
            match MID {
                Some(_) => assert!(with_mid.starts_with("simd-m"), "n = {n}: {with_mid}"),
                None => assert_eq!(with_mid, plain, "n = {n}"),
            }
        }
        // a short depth, a narrow or a wide product: never theirs
        for (n, k) in [(10, 16), (LANES, 512), (512, 512)] {
            assert!(
                !choose_by_shape(n, k, true).name.starts_with("simd-m"),
                "n = {n}, k = {k}"
            );
        }
    }

    /// The prefetches of a next tile touch every line its rows touch, and
    /// no other, in at most [`NextTile::lines`] steps, for any width and
    /// any start within a line; the kernels' register tiles fit their
    /// [`NextTile::most_lines`].
    #[test]
    fn the_next_tile_s_prefetches_cover_its_lines_and_no_other() {
        let buf = vec![0.0f32; 4096];
        let base = buf.as_ptr().wrapping_add(16 - buf.as_ptr() as usize % 64 / 4);
        for cols in [1, 2, 5, 10, 15, 16, 17, 31, 32, 33, 48, 64] {
            for start in [0, 1, 7, 15] {
                for rows in [1, 3, 16] {
                    let rs = 97;
                    let tile = NextTile {
                        c: base.wrapping_add(start),
                        rows,
                        cols,
                    };
                    let out = TileOut {
                        rs_c: rs,
                        next: Some(tile),
                        ..out_for_test()
                    };
                    let mut lines = NextLines::of(&out);
                    assert_eq!(lines.left, tile.lines());
                    let mut got = std::collections::BTreeSet::new();
                    while lines.left > 0 {
                        got.insert(lines.advance() as usize / 64);
                    }
                    let want: std::collections::BTreeSet<usize> = (0..rows)
                        .flat_map(|i| {
                            let row = tile.c.wrapping_add(i * rs) as usize;
                            row / 64..=(row + 4 * cols - 1) / 64
                        })
                        .collect();
                    assert_eq!(got, want, "{rows} x {cols} from float {start} of a line");
                }
            }
        }
        assert_eq!(NextLines::of(&out_for_test()).left, 0);
        for k in all_kernels() {
            let most = NextTile::most_lines(k.mr, k.nr);
            assert!(
                most >= k.mr && most <= k.mr * (k.nr.div_ceil(16) + 1),
                "{}",
                k.name
            );
        }
    }

    /// A tile of C with nothing to prefetch after it.
    fn out_for_test() -> TileOut {
        TileOut {
            c: std::ptr::null_mut(),
            rs_c: 1,
            rows: 1,
            cols: 1,
            beta: 0.0,
            epilogue: None,
            dropout: None,
            next: None,
        }
    }
}
