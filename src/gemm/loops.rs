//! The five BLIS loops around the micro-kernel, for one (sub-)problem on one thread.
//!
//! ```text
//! loop 5 (jc, step nc): columns of C and B            B block: k x nc
//!  loop 4 (pc, step kc): depth; pack B[pc.., jc..] -> B~  (kc x nc, in L3)
//!   loop 3 (ic, step mc): rows of C and A; pack A[ic.., pc..] -> A~ (mc x kc, in L2)
//!    loop 2 (jr, step NR): micro-panel of B~               (kc x NR, in L1)
//!     loop 1 (ir, step MR): micro-panel of A~               (MR x kc, streamed)
//!      micro-kernel: C[ic+ir.., jc+jr..] (MR x NR) += A~ panel · B~ panel
//! ```
//!
//! Loop 4 is never split across threads: every element of C is the sum of
//! its `k / kc` blocks added in order `pc = 0, kc, 2kc, ..` by one thread.
//! The first block merges `beta · C`; the epilogue runs with the last.
//!
//! Direct mode (`n <= NR`, a single B~ micro-panel: the network's layers
//! with 16 or 10 units): each A element is used by exactly one micro-kernel
//! call, so transposing it into A~ would cost as much as the multiply. (A
//! small `f32` A with `alpha = 1` is also read in place, whatever `n`: it
//! stays in L1 or L2 between B~ panels, see `small_a_in_place`.)
//! Instead the strided micro-kernel reads A where it is (`f32`, `alpha = 1`),
//! or from a block converted to `f32` in A's own orientation (`u8` pixels or
//! a scale: a contiguous, vectorised copy, no transpose); a last partial
//! micro-panel is read the same way when the short kernel reads exactly
//! its rows (`kernel::short_body_rows`), else packed (zero-padded). Each element is still
//! computed as `fma(alpha·a, b, acc)` in the same order, so both modes give
//! the same bits. An A whose rows and depth are not evenly spaced but can be
//! read in place (a `valid` convolution's unfolded `f32` input,
//! [`super::Im2col`]) is read by the gather micro-kernel instead, through a
//! pointer per row and an offset per step of `k` ([`AOperand::gather_depth`]):
//! no copy at all, the same bits again.
//!
//! B in place: for a row-major B and few rows of A (a mini-batch's
//! products, see `reads_b_in_place`; two or more panels only on machines
//! whose L1d is large enough, see [`reads_wide_in_place`]), B~ is skipped
//! too and the kernel reads
//! each full `NR`-column panel of B where it is, one row of B per step of
//! `k`; only a last partial panel is packed. The same numbers in the same
//! order: the same bits. On AVX2 a B narrower than one panel whose columns
//! end inside its last vector (the 10 logits with the 6x16 tile) is read
//! in place as well, that vector through a masked load (see
//! `reads_b_edge_in_place`).

use super::blocking::{l1d_bytes, l2_bytes, BlockSizes};
use super::kernel::{short_body_rows, MicroKernel, NextTile, TileOut};
use super::operand::AOperand;
use super::pack::{pack_b, Lines, PREFETCH_AHEAD};
use super::Fused;
use crate::matrix::{Element, MatRef};
use crate::simd::LANES;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};

/// A run of 64-byte-aligned `f32`s that only grows (packing buffers).
///
/// Allocated zeroed by the system (`vec![0.0; n]`), not filled: a page is
/// touched only when packing first reaches it. The bound a buffer grows to
/// (B~: `nc · kc`, 8 MiB with the AVX2 blocks) is far more than a small
/// network's products use; filled at once, it cost each thread about 2,000
/// page faults and an 8 MiB `memset` in its first packing GEMM (70% of the
/// page faults of a 1-epoch `simdnet train`, Zen 3, AVX2, 8 lanes).
#[derive(Default)]
pub(crate) struct Aligned {
    buf: Vec<f32>,
    /// Floats before the first 64-byte boundary in `buf`.
    start: usize,
}

impl Aligned {
    /// At least `len` floats. When it must grow, it grows to `bound` (at
    /// least `len`): the most any shape needs under the current block sizes,
    /// so that a thread allocates once, not once per new shape it meets.
    pub(crate) fn get(&mut self, len: usize, bound: usize) -> &mut [f32] {
        if self.buf.len() < self.start + len {
            // the old buffer freed first: at most one is held
            self.buf = Vec::new();
            self.buf = vec![0.0; len.max(bound) + 15];
            // an f32 allocation is 4-byte aligned: 0 to 15 floats to a line
            self.start = (64 - self.buf.as_ptr() as usize % 64) % 64 / 4;
        }
        &mut self.buf[self.start..self.start + len]
    }
}

/// One thread's packing buffers: A~ and B~, and for an A read in place by
/// the gather kernel (a convolution's unfolded input) its depth offsets and
/// row pointers.
#[derive(Default)]
struct PackBuffers {
    a: Aligned,
    b: Aligned,
    offs: Vec<usize>,
    rows: Vec<*const f32>,
}

thread_local! {
    /// Reused by every GEMM call on this thread: after the first call of a
    /// given size, packing allocates nothing.
    static BUFFERS: RefCell<PackBuffers> = RefCell::new(PackBuffers::default());
}

/// The most floats A~ and B~ hold for any shape under `blocks` with an
/// `mr x nr` kernel, which each buffer grows to the first time it grows:
/// `kc_max <= kc`, `mc_max <= mc` rounded up to `mr` (plus one `mr x kc`
/// tile), `nc_max <= nc` rounded up to `nr`.
pub(crate) fn buffer_bounds(blocks: BlockSizes, mr: usize, nr: usize) -> (usize, usize) {
    let kc_bound = blocks.kc.max(1);
    let a_bound = (blocks.mc.div_ceil(mr).max(1) * mr + mr) * kc_bound;
    let b_bound = blocks.nc.div_ceil(nr).max(1) * nr * kc_bound;
    (a_bound, b_bound)
}

/// The most depth offsets and row pointers the gather kernel needs for any
/// shape under `blocks` with an `mr`-row kernel, which each list grows to
/// the first time it grows: `kc_max <= kc`, `mc_max + mr <= mc` rounded up
/// to `mr`, plus `mr`.
fn gather_bounds(blocks: BlockSizes, mr: usize) -> (usize, usize) {
    (blocks.kc.max(1), blocks.mc.div_ceil(mr).max(1) * mr + mr)
}

/// Grows this thread's packing buffers (A~ and B~) to the most any product
/// needs under the current block sizes with any of this build's
/// micro-kernels, so that no later GEMM on this thread allocates (until
/// the block sizes grow). The memory is allocated zeroed by the system,
/// so its pages are touched only when packing reaches them.
///
/// Otherwise each thread's buffers grow the first time it packs, which may
/// be late: a rayon worker that work stealing kept away from every packing
/// GEMM so far. (Small products never pack, see [`super::small`].)
pub fn reserve_pack_buffers() {
    let blocks = super::block_sizes();
    let (mut a_most, mut b_most, mut depth_most, mut rows_most) = (0, 0, 0, 0);
    for k in super::kernel::all_kernels() {
        let ((a, b), (depth, rows)) = (buffer_bounds(blocks, k.mr, k.nr), gather_bounds(blocks, k.mr));
        (a_most, b_most) = (a_most.max(a), b_most.max(b));
        (depth_most, rows_most) = (depth_most.max(depth), rows_most.max(rows));
    }
    BUFFERS.with(|cell| {
        // Re-entered (inside a GEMM on this thread): those buffers are in use.
        if let Ok(mut buffers) = cell.try_borrow_mut() {
            buffers.a.get(a_most, a_most);
            buffers.b.get(b_most, b_most);
            if buffers.offs.len() < depth_most {
                buffers.offs.resize(depth_most, 0);
            }
            if buffers.rows.len() < rows_most {
                buffers.rows.resize(rows_most, std::ptr::null());
            }
        }
    });
}

/// Runs `f` with this thread's A~ and B~ buffers, the ones `gemm` packs
/// into (fresh ones when re-entered on this thread), for another driver of
/// the micro-kernels ([`super::summed`]): a worker that packed once has
/// grown them to [`buffer_bounds`] and allocates nothing more.
pub(crate) fn with_pack_buffers<R>(f: impl FnOnce(&mut Aligned, &mut Aligned) -> R) -> R {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => {
            let PackBuffers { a, b, .. } = &mut *buffers;
            f(a, b)
        }
        Err(_) => f(&mut Aligned::default(), &mut Aligned::default()),
    })
}

/// An `f32` A of at most this many elements is read in place even with
/// several B~ panels: it stays in L1 between them, and packing it would be
/// pure overhead (measured: 64³ goes from ~87 to ~91 GFLOP/s).
const SMALL_A_IN_PLACE: usize = 64 * 64;

/// With a kernel whose lanes run along n (it broadcasts A, so it reads any
/// row stride at the same cost) and at least two B~ panels, an `f32` A of
/// up to this many elements (512 KiB: the network's 128-row activations
/// and errors, up to 1024 wide) is read in place too: its block sits in L2
/// either way, and the copy into A~ was a whole extra pass over it. Measured
/// on Zen 5 (`cargo bench --bench gemm`, simdnet alone, two builds
/// alternated, medians of 5 runs, 1 thread): AVX-512 (16 lanes, 12x32)
/// 128³ 203 -> 228 GFLOP/s, 256³ 225 -> 235, the others level; AVX2
/// (8 lanes, 6x16) 128³ 111 -> 119, 128x512x512 112 -> 117. The lanes-along-m
/// kernels need A~ (their strided form loads A one float at a time), and
/// with a single full B~ panel plus a sliver (n = 10 with 8-wide panels)
/// the copy still paid (AVX2 128x10x512: 79 -> 77 in place).
const LANES_N_A_IN_PLACE: usize = 128 * 1024;

/// The largest `f32` A (in elements) that `kernel` reads in place for an
/// `n`-column product ([`SMALL_A_IN_PLACE`]; [`LANES_N_A_IN_PLACE`] when
/// [`reads_wide_in_place`], or for an A whose rows are contiguous
/// (`rows_contiguous`) unless the wide reads are forced off or the CPU is
/// an Intel one).
///
/// A with contiguous rows is read in place on every machine but Intel's, B
/// still packed where the L1d is small: each of the kernel's rows then streams
/// along its own row of A. Measured on Zen 3 (AMD EPYC family 25 model 1,
/// AVX2, 8 lanes, 32 KiB L1d; `cargo bench --bench gemm` kernel mode, 1
/// thread, ratio to the `gemm` crate in the same process, two runs of
/// each build, packed -> in place): 128³ 0.89 -> 0.96 (both runs), 256³
/// 0.93-0.94 -> 0.95-1.00, the 512-wide network products level (64³,
/// 4096 elements, was read in place already). A transposed A (`Xᵀ·dZ` 784x512x128, each step
/// a column of A, rows of A 3 KiB apart) was slower in place: 0.94-1.00 ->
/// 0.80-0.82; it stays packed. On Intel CPUs even contiguous rows are
/// packed, as every wide operand is there (see [`wide_in_place_pays`]): on
/// a Xeon (as there; 6 fresh allocations, A read in place faster in none)
/// 128x512x512 took 152-165 GFLOP/s with only A in place against 158-171
/// with A packed too, 128x512x784 151-163 against 159-167, 128x784x512
/// 141-149 against 148-158.
fn small_a_in_place(kernel: &MicroKernel, n: usize, rows_contiguous: bool) -> usize {
    let rows_in_place = rows_contiguous && forced_wide_in_place().is_none() && !crate::simd::intel();
    let wide = reads_wide_in_place() || rows_in_place;
    if kernel.broadcasts_a() && n >= 2 * kernel.nr && wide {
        LANES_N_A_IN_PLACE
    } else {
        SMALL_A_IN_PLACE
    }
}

/// Whether the loops read `a` where it is, with no copy, in a product (or
/// a task of one) of `n` columns: an `f32` A with `alpha = 1`, of at most
/// [`small_a_in_place`] elements. (With `n <= NR` every A is read directly,
/// in place or through a non-transposing copy.)
pub(crate) fn reads_a_in_place<A: AOperand>(a: &A, alpha: f32, kernel: &MicroKernel, n: usize) -> bool {
    a.in_place(alpha) && a.rows() * a.cols() <= small_a_in_place(kernel, n, !a.is_transposed())
}

/// The smallest L1 data cache with which the wide in-place reads are on by
/// default: an A of up to `LANES_N_A_IN_PLACE` elements and a B of two or
/// more panels (see `reads_b_in_place`) read where they are rather than
/// packed. (Below it an A with contiguous rows is still read in place, see
/// `small_a_in_place`; a transposed A and a wide B are packed.) They were
/// measured to pay on Zen 5 (48 KiB L1d, 12-way), not on an Intel Xeon
/// with the same L1d ([`wide_in_place_pays`]). On
/// Zen 3 (32 KiB, 8-way) they cost 10-25%: there a B~ micro-panel of
/// depth 512 (32 KiB) already fills L1, and B's rows read in place, a
/// power of two apart, fold onto a few of its sets. Measured there
/// (2026-12-01, AMD EPYC family 25 model 1, AVX2, 8 lanes; `cargo bench
/// --bench gemm` kernel mode, 1 thread, ratio to the `gemm` crate in the
/// same process, medians of 10 rounds, in place -> packed): 128x512x784
/// 0.74 -> 0.94, 128x512x512 0.71 -> 0.95, 256³ 0.81 -> 0.92, 784x512x128
/// 0.80 -> 0.91. Zen 4 (32 KiB) was not measured: it gets the packed
/// layout, BLIS's own.
pub const WIDE_IN_PLACE_MIN_L1D: usize = 48 << 10;

/// [`set_wide_in_place`]'s choice: 0 by L1d size, 1 on, 2 off.
static WIDE_IN_PLACE: AtomicU8 = AtomicU8::new(0);

/// Whether the wide in-place reads are on by default with an L1 data cache
/// of `l1d` bytes ([`WIDE_IN_PLACE_MIN_L1D`]), on an Intel CPU or not.
///
/// Intel's cores are left out: on a Xeon with the same 48 KiB 12-way L1d
/// as Zen 5 (family 6 model 167 as its hypervisor reports it, AVX-512, 16
/// lanes, `simd-12x32`; 2026-12-04, 1 thread, `C = A·B` with row-major
/// operands, medians of 15 samples of 20 calls, 12 fresh allocations, in
/// place -> packed, GFLOP/s): 128x512x512 147-167 -> 163-184 (12 of 12),
/// 128x512x784 143-158 -> 176-186, 784x512x128 136-144 -> 159-173, 256³
/// 164-186 -> 179-200; 64³ and 512³ the same either way. Its AVX2 build
/// (`-C target-cpu=x86-64-v3`, 8 lanes, `simd-6x16`) too: 128x512x512
/// 92-102 -> 105-109, 256³ 101-113 -> 116-119, the others 93-108 -> 106-112.
pub fn wide_in_place_pays(l1d: usize, intel: bool) -> bool {
    l1d >= WIDE_IN_PLACE_MIN_L1D && !intel
}

/// [`wide_in_place_pays`] on this machine.
fn wide_in_place_here() -> bool {
    wide_in_place_pays(l1d_bytes(), crate::simd::intel())
}

/// Whether the next GEMM reads a wide B, and an A of more than
/// `SMALL_A_IN_PLACE` elements, in place (forced by
/// [`set_wide_in_place`], else [`wide_in_place_pays`] for this machine's
/// L1d). Either way the bits are the same.
pub fn reads_wide_in_place() -> bool {
    forced_wide_in_place().unwrap_or_else(wide_in_place_here)
}

/// The choice [`set_wide_in_place`] forced, if any.
fn forced_wide_in_place() -> Option<bool> {
    match WIDE_IN_PLACE.load(Ordering::Relaxed) {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    }
}

/// Forces the wide in-place reads on or off for every later GEMM
/// (process-wide), or with `None` lets this machine's L1d decide: for
/// tests, which must cover both layouts on every machine, and for timing.
pub fn set_wide_in_place(on: Option<bool>) {
    WIDE_IN_PLACE.store(
        match on {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::Relaxed,
    );
}

/// Rows of A (of one task's block) up to which B's full micro-panels are
/// read in place, see [`reads_b_in_place`].
const B_IN_PLACE_MAX_M: usize = 256;

/// Whether the micro-kernel reads B's full `NR`-column panels where they are
/// (rows `row_stride` apart) instead of from a packed B~: for a row-major B
/// (`col_stride == 1`) and at most [`B_IN_PLACE_MAX_M`] rows of A, so that
/// each panel serves few enough micro-tiles that the copy into B~ costs more
/// than the strided reads; and B at least two panels wide, or one panel
/// whose rows are contiguous (`n = NR = row_stride`: B is already laid out
/// as B~; AVX2 128x16x784 113 -> 117 GFLOP/s).
/// A last partial panel is still packed (zero-padded), and the numbers and
/// their order are those of B~: the same bits. Measured on Zen 5
/// (`cargo bench --bench gemm`, simdnet alone, in place against packed,
/// alternated, medians of 5 runs, 1 thread, GFLOP/s):
///
/// | shape (m x n x k) | AVX-512 (16 lanes, 12x32) | AVX2 (8 lanes, 6x16) |
/// |---|---|---|
/// | 64³ | 198 -> 214 | 103 -> 111 |
/// | 256³ | 232 -> 245 | 116 -> 121 |
/// | 128x512x784 | 216 -> 235 | 109 -> 114 |
/// | 128x512x512 | 224 -> 240 | 111 -> 119 |
/// | 512³ (not taken) | 225 -> 238 | 119 -> 116 |
/// | 1024³ (not taken) | 206 -> 211 | 109 -> 74 |
/// | 784x512x128 (not taken) | 241 -> 234 | 121 -> 112 |
///
/// With many rows of A each panel is re-read by many micro-tiles, and rows
/// of B a multiple of 4 KiB apart all fall in the same L1 set (1024³ with
/// AVX2). With an L1d under [`WIDE_IN_PLACE_MIN_L1D`] only the single
/// contiguous panel and a B within half of L1 are read in place
/// ([`reads_wide_b_in_place`]).
fn reads_b_in_place(b: &MatRef<f32>, m: usize, n: usize, nr: usize) -> bool {
    b.col_stride() == 1
        && m <= B_IN_PLACE_MAX_M
        && ((n >= 2 * nr && reads_wide_b_in_place(b)) || (n == nr && b.row_stride() == nr))
}

/// Whether the micro-kernel reads a B narrower than one panel (`n < NR`,
/// the 10 logits with the 6x16 tile) where it is, its last vector through
/// a masked load, instead of packing it zero-padded into B~ (see
/// [`super::kernel::InPlaceBKernelFn`]): a row-major B whose row stride is
/// not `NR` (the kernel tells an in-place B by its step), at most
/// [`B_IN_PLACE_MAX_M`] rows of A, and columns ending inside the panel's
/// last vector (`n > NR - LANES`). By default only on x86-64 with AVX2 and
/// not AVX-512 ([`EDGE_B_IN_PLACE_DEFAULT`]); [`set_wide_in_place`] forces
/// it as it forces the wide reads. The same numbers in the same order: the
/// same bits.
fn reads_b_edge_in_place(b: &MatRef<f32>, m: usize, n: usize, nr: usize) -> bool {
    b.col_stride() == 1
        && b.row_stride() != nr
        && m <= B_IN_PLACE_MAX_M
        && n < nr
        && n + LANES > nr
        && reads_narrow_b_in_place()
}

/// Whether the next GEMM reads a B narrower than one panel in place (see
/// `reads_b_edge_in_place`): forced by [`set_wide_in_place`], else
/// [`EDGE_B_IN_PLACE_DEFAULT`]. Either way the bits are the same.
pub fn reads_narrow_b_in_place() -> bool {
    forced_wide_in_place().unwrap_or(EDGE_B_IN_PLACE_DEFAULT)
}

/// Whether `reads_b_edge_in_place` is on unless forced: the AVX2 build
/// (8 lanes), where a masked load is one instruction and it was measured
/// to pay. (Since 2026-12-04 the kernel masks only the last step or two
/// and reads B's last vector whole before them, see `masked_steps` in
/// `kernel::simd`: on Zen 2 a masked load in every step left `H·W`
/// 128x10x512 at 0.82 of the `gemm` crate.) On Zen 3 (AMD EPYC family 25
/// model 1, AVX2, 8 lanes, 2 cores,
/// 2026-12-03; the two ways alternated in one build, ratio to the best of
/// the `gemm` crate and `matrixmultiply`, packed -> in place):
/// - `cargo bench --bench gemm`, `H·W` 128x10x512, three runs: 1 thread
///   0.93-1.05 -> 0.99-1.14, 2 threads from inside the pool 1.02-1.05 ->
///   1.20-1.39 (each of the two tasks packed B); kernel mode, four runs,
///   0.81-0.99 -> 0.99-1.15.
/// - `cargo bench --bench step`, three runs, 1 thread: the workshop
///   network's `Hᵀ·dZ` 16x10x128 0.63-0.70 -> 1.13-1.17 and `H·W`
///   128x10x16 0.95-1.01 -> 1.20-1.28 (products of 1-3 µs, where packing
///   the 10 columns cost as much as the product).
/// - With more than `B_IN_PLACE_MAX_M` rows (`Hᵀ·dZ` 512x10x128, B 5 KiB)
///   in place on 2 threads, four runs: 1.47-1.67 -> 1.16-1.64; not taken.
///
/// AVX-512 and ARM were not measured (on aarch64 the partial load is a
/// copy): they keep B~.
pub const EDGE_B_IN_PLACE_DEFAULT: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    not(target_feature = "avx512f")
));

/// [`reads_wide_in_place`] for this B, and with an L1d under
/// [`WIDE_IN_PLACE_MIN_L1D`] (unless forced) also a B whose rows span at
/// most half of it: its lines are contiguous or nearly so, none folds onto
/// another's set, and packing it costs about as much as the product
/// (measured on Zen 3, 32 KiB L1d, AVX2, 8 lanes: 64³ with B packed 0.82-0.85
/// of the `gemm` crate, in place 0.90-0.94).
fn reads_wide_b_in_place(b: &MatRef<f32>) -> bool {
    forced_wide_in_place()
        .unwrap_or_else(|| wide_in_place_here() || b.rows() * b.row_stride() * 4 <= l1d_bytes() / 2)
}

/// The columns of one B~ block (`nc`, at most the `nc` given) when A is
/// read where it is: as many whole `nr`-wide panels as keep the `kc x nc`
/// block within half of an L2 of `l2` bytes, at least one panel.
///
/// The block sizes' `nc` lets B~ grow to a quarter of L3 (BLIS' layout,
/// where A~ is packed and packing it again for every block of columns
/// would cost). An A read in place costs nothing more to read once per
/// block, and a B~ block that fits in L2 is packed and then read from L2
/// rather than L3. The products this decides are the network's `H·W` and
/// `dZ·Wᵀ` (`A`: 128 rows of activations or errors); a packed A, or a B
/// read in place, keeps `nc`. The same sums in the same order: the same bits.
///
/// Measured on Zen 3 (AMD EPYC family 25 model 1, AVX2, 8 lanes, 512 KiB
/// L2, `kc = 512`: 128 columns here against 512 or 784), see
/// `docs/PERFORMANCE.md`.
fn nc_within_l2(nc: usize, kc: usize, nr: usize, l2: usize) -> usize {
    let panels = (l2 / 2 / (kc.max(1) * std::mem::size_of::<f32>() * nr.max(1))).max(1);
    nc.min(panels * nr.max(1))
}

/// The output of one (sub-)problem: element `(i, j)` at `ptr + i·rs + j`.
#[derive(Clone, Copy, Debug)]
pub struct COut {
    /// Element `(0, 0)`.
    pub ptr: *mut f32,
    /// Distance between rows, in elements.
    pub rs: usize,
}

/// `C = alpha·A·B + beta·C` then the epilogue, on the calling thread.
///
/// The epilogue's bias, if given, holds the `n` biases of this sub-problem's
/// columns, and its dropout mask starts at this sub-problem's element (0, 0).
///
/// # Safety
/// `c` must be valid for writing (and for reading if `beta != 0`) the
/// `a.rows() x b.cols()` elements `ptr + i·rs + j`, and not be accessed by
/// anyone else during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_on_thread<A: AOperand>(
    alpha: f32,
    a: &A,
    b: &MatRef<f32>,
    beta: f32,
    c: COut,
    epilogue: Fused,
    kernel: &MicroKernel,
    blocks: BlockSizes,
) {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        // SAFETY: forwarded from the caller.
        Ok(mut buffers) => unsafe {
            five_loops(alpha, a, b, beta, c, epilogue, kernel, blocks, &mut buffers)
        },
        // Re-entered on this thread (a GEMM inside a GEMM's rayon task):
        // use fresh buffers rather than panic.
        Err(_) => {
            let mut fresh = PackBuffers::default();
            // SAFETY: forwarded from the caller.
            unsafe { five_loops(alpha, a, b, beta, c, epilogue, kernel, blocks, &mut fresh) }
        }
    })
}

/// The depth of the blocks a product of depth `k` is summed in, given the
/// block size `kc`: balanced, so `k = 784` with `kc = 256` runs 4 blocks of
/// 196, not 256 + 256 + 256 + 16 (a thin last block pays the C update for
/// little work). Each block is summed from zero, then added to C.
pub fn balanced_depth(k: usize, kc: usize) -> usize {
    k.div_ceil(k.div_ceil(kc.max(1)).max(1)).max(1)
}

#[allow(clippy::too_many_arguments)]
unsafe fn five_loops<A: AOperand>(
    alpha: f32,
    a: &A,
    b: &MatRef<f32>,
    beta: f32,
    c: COut,
    epilogue: Fused,
    kernel: &MicroKernel,
    blocks: BlockSizes,
    buffers: &mut PackBuffers,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (mr, nr) = (kernel.mr, kernel.nr);
    let kc_max = balanced_depth(k, blocks.kc);
    let mc_max = blocks.mc.div_ceil(mr).max(1) * mr;
    let mc_max = mc_max.min(m.div_ceil(mr) * mr);
    // A is read in place or copied without transposing ("direct") when
    // there is a single B~ micro-panel: each A element is then used by one
    // micro-kernel call only, and packing it would cost as much as the
    // multiply (the narrow shapes `n <= NR`: X·W and Xᵀ·dZ with 16 hidden
    // units, the 10 logits); and for a small f32 A, see `small_a_in_place`.
    let a_in_place = reads_a_in_place(a, alpha, kernel, n);
    let direct = n <= nr || a_in_place;
    // The gather kernel reads A in place through row pointers and depth
    // offsets (see `AOperand::gather_depth`): in direct mode, where each A
    // element is used once, it replaces the copy. Same sums, same bits.
    let gather_kernel = kernel.run_gather.filter(|_| direct && a.gathers(alpha));
    let b_edge_in_place = reads_b_edge_in_place(b, m, n, nr);
    let b_in_place = kernel
        .run_b_in_place
        .filter(|_| gather_kernel.is_none() && (reads_b_in_place(b, m, n, nr) || b_edge_in_place));
    let nc_max = blocks.nc.div_ceil(nr).max(1) * nr;
    let nc_max = nc_max.min(n.div_ceil(nr) * nr);
    // An A read where it is costs nothing to read again for the next block
    // of columns: there B~ is kept within L2 (see `nc_within_l2`).
    let nc_max = if a_in_place && b_in_place.is_none() {
        nc_within_l2(nc_max, kc_max, nr, l2_bytes())
    } else {
        nc_max
    };
    let (a_bound, b_bound) = buffer_bounds(blocks, mr, nr);
    let a_buffer = buffers.a.get(mc_max * kc_max + mr * kc_max, a_bound);
    let (a_packed, a_tail) = a_buffer.split_at_mut(mc_max * kc_max);
    let b_packed = buffers.b.get(nc_max * kc_max, b_bound);
    if gather_kernel.is_some() {
        // grown once to the most any shape needs
        let (kc_bound, rows_bound) = gather_bounds(blocks, mr);
        if buffers.offs.len() < kc_max {
            buffers.offs.resize(kc_bound, 0);
        }
        if buffers.rows.len() < mc_max + mr {
            buffers.rows.resize(rows_bound, std::ptr::null());
        }
    }
    let (offs, row_ptrs) = (&mut buffers.offs, &mut buffers.rows);
    // C's rows crowd a page's lines: an overwritten tile skips the C
    // prefetch at the kernel's depths (see `rows_spread_over_page`)
    let crowded_rows = crate::simd::intel() && !rows_spread_over_page(c.rs, mr.min(m));

    // Loop 5 (BLIS "jc loop"): blocks of nc columns of B and C.
    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        // Loop 4 ("pc loop"): rank-kc updates; pack B~ once per block.
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            // B~: every panel, or with B in place only a last partial one
            // (into the first slot).
            let b_full = match b_in_place {
                Some(_) if b_edge_in_place => nc,
                Some(_) => nc / nr * nr,
                None => 0,
            };
            if b_full < nc {
                pack_b(b, (pc, kc), (jc + b_full, nc - b_full), nr, b_packed);
            }
            let beta_here = if pc == 0 { beta } else { 1.0 };
            let in_kernel_depth = (NextTile::most_lines(mr, nr)..PREFETCH_IN_KERNEL_BELOW).contains(&kc);
            let crowded = in_kernel_depth && crowded_rows;
            // (prefetching is x86-64 only: elsewhere skip the addresses too)
            let prefetch = cfg!(target_arch = "x86_64")
                && (beta_here != 0.0
                    || (m * n * std::mem::size_of::<f32>() >= PREFETCH_C_MIN_BYTES && !crowded));
            let ahead = PREFETCH_C_DEPTH.div_ceil(kc).min(PREFETCH_C_TILES);
            let last = pc + kc == k;
            let gather = gather_kernel.filter(|_| a.gather_depth(alpha, (pc, kc), offs));
            // At a depth between the two bounds, the kernel prefetches the
            // next tile itself, a line per step (see `NextTile`); the loop
            // then prefetches only a block's first tile.
            let in_kernel = prefetch && kernel.prefetches_next && gather.is_none() && in_kernel_depth;
            // Loop 3 ("ic loop"): blocks of mc rows of A and C; pack A~.
            for ic in (0..m).step_by(mc_max) {
                let mc = mc_max.min(m - ic);
                // Direct mode: full micro-panels are read in place (or through a
                // small non-transposing f32 copy, see `direct_a`); so is a last
                // partial micro-panel when the short kernel reads exactly its
                // rows (`tail_direct`, see `short_body_rows`), else it is
                // packed. Otherwise pack the whole A~ block.
                let full = if direct { mc / mr * mr } else { 0 };
                let tail_direct = direct
                    && full < mc
                    && gather.is_none()
                    && kernel.run_short.is_some()
                    && short_body_rows(mc - full, mr) == mc - full;
                let mut a_direct = (a_packed.as_ptr(), 1, mr);
                if gather.is_some() {
                    // every panel in place; a last partial one repeats its last
                    // row (computed, never stored: the tile is clipped to mc rows)
                    a.gather_rows((ic, mc), row_ptrs);
                    let last_row = row_ptrs[mc - 1];
                    row_ptrs[mc..mc.div_ceil(mr) * mr].fill(last_row);
                } else if !direct {
                    a.pack(alpha, (ic, mc), (pc, kc), mr, a_packed);
                } else {
                    let direct_rows = if tail_direct { mc } else { full };
                    if direct_rows > 0 {
                        a_direct = a.direct(alpha, (ic, direct_rows), (pc, kc), a_packed);
                    }
                    if direct_rows < mc {
                        a.pack(alpha, (ic + full, mc - full), (pc, kc), mr, a_tail);
                    }
                }
                let tiles_m = mc.div_ceil(mr);
                // For `prefetch_c`: the tile `ahead` tiles after the current one
                // in loop order (down each panel, then the next panel), as
                // (row tile, column tile); stepped, not divided out, per tile.
                let mut ahead_tile = (ahead % tiles_m, ahead / tiles_m);
                // Loop 2 ("jr loop"): one B~ micro-panel, kept in L1.
                for jr in (0..nc).step_by(nr) {
                    // (pointer, step between rows) of this B micro-panel
                    let (b_ptr, pb) = if jr < b_full {
                        // SAFETY: element (pc, jc + jr) is inside B: pc < k,
                        // jc + jr + nr <= jc + b_full <= n, or for a B narrower
                        // than a panel jc + jr = 0 (the kernel reads its n columns).
                        (
                            unsafe { b.data().as_ptr().add(pc * b.row_stride() + jc + jr) },
                            b.row_stride(),
                        )
                    } else {
                        let slot = (jr - b_full) / nr;
                        (b_packed[slot * nr * kc..][..nr * kc].as_ptr(), nr)
                    };
                    let cols = nr.min(nc - jr);
                    let (epi, mask) = match epilogue {
                        Some((bias, act, mask)) if last => (Some((bias[jc + jr..].as_ptr(), act)), mask),
                        _ => (None, None),
                    };
                    // Loop 1 ("ir loop"): A~ micro-panels past the same B~ panel.
                    for ir in (0..mc).step_by(mr) {
                        let out = TileOut {
                            // SAFETY: (ic + ir, jc + jr) is inside the m x n
                            // output the caller vouches for.
                            c: unsafe { c.ptr.add((ic + ir) * c.rs + jc + jr) },
                            rs_c: c.rs,
                            rows: mr.min(mc - ir),
                            cols,
                            beta: beta_here,
                            epilogue: epi,
                            dropout: mask.map(|m| m.offset(ic + ir, jc + jr)),
                            next: if in_kernel {
                                next_tile(c, (ic, mc), (jc + jr, jc + nc), ir, (mr, nr))
                            } else {
                                None
                            },
                        };
                        if in_kernel && ir == 0 && jr == 0 {
                            prefetch_c(out.c, c.rs, (out.rows, out.cols));
                        } else if prefetch && !in_kernel {
                            // C's lines `ahead` tiles ahead (at a block's first
                            // tile, those of the tiles up to there as well)
                            let prefetch_tile = |(ti, tj): (usize, usize)| {
                                let (ni, nj) = (ti * mr, tj * nr);
                                if nj < nc {
                                    let tile = c.ptr.wrapping_add((ic + ni) * c.rs + jc + nj);
                                    prefetch_c(tile, c.rs, (mr.min(mc - ni), nr.min(nc - nj)));
                                }
                            };
                            if ir == 0 && jr == 0 {
                                (0..ahead).for_each(|u| prefetch_tile((u % tiles_m, u / tiles_m)));
                            }
                            prefetch_tile(ahead_tile);
                        }
                        ahead_tile = tile_after(ahead_tile, tiles_m);
                        // The packed A~ panel of rows ir..: a direct block's
                        // packed tail, or a panel of the packed block.
                        let packed = || {
                            if direct {
                                a_tail.as_ptr()
                            } else {
                                a_packed[(ir / mr) * mr * kc..][..mr * kc].as_ptr()
                            }
                        };
                        // SAFETY: B: nr·kc packed floats (slice above), or a
                        // full panel of B in place: rows pc..pc+kc <= k, columns
                        // jc+jr..+nr <= n, `pb` apart.
                        // A: in direct mode rows ir..ir+mr <= full of the block
                        // returned by `direct_a`, with its strides (with
                        // `tail_direct` also the tail's rows ir..mc, which the
                        // short kernel reads exactly),
                        // else a packed mr·kc panel of `a_packed` / `a_tail`.
                        // `out` is a valid exclusive tile of C, clipped to m x n.
                        unsafe {
                            let short = kernel.run_short.filter(|_| out.rows < mr && gather.is_none());
                            if let Some(run) = short {
                                // A block's last tile, of fewer than MR rows
                                // (computing only those): read where the block's
                                // full panels are read (`tail_direct`), or packed.
                                let (a_ptr, ra, pa) = if tail_direct {
                                    let (ptr, ra, pa) = a_direct;
                                    (ptr.add(ir * ra), ra, pa)
                                } else {
                                    (packed(), 1, mr)
                                };
                                run(out.rows, kc, a_ptr, ra, pa, b_ptr, pb, &out)
                            } else if let (Some(run), true) = (b_in_place, jr < b_full) {
                                let (a_ptr, ra, pa) = if ir < full {
                                    let (ptr, ra, pa) = a_direct;
                                    (ptr.add(ir * ra), ra, pa)
                                } else {
                                    (packed(), 1, mr)
                                };
                                run(kc, a_ptr, ra, pa, b_ptr, pb, &out)
                            } else if let Some(run_gather) = gather {
                                // rows ir..ir+mr of the block, each read at ptr + offs[p]
                                (run_gather)(kc, row_ptrs.as_ptr().add(ir), offs.as_ptr(), b_ptr, &out)
                            } else if ir < full {
                                let (ptr, ra, pa) = a_direct;
                                (kernel.run_strided)(kc, ptr.add(ir * ra), ra, pa, b_ptr, &out)
                            } else {
                                (kernel.run)(kc, packed(), b_ptr, &out)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The tile after `(row tile, column tile)` in the loops' order, with
/// `tiles_m` row tiles per panel: the one below it, or the top of the next
/// panel. Tile `u` of a block is `(u % tiles_m, u / tiles_m)`; stepping
/// it along spares the loops the integer divisions that found it, per tile.
fn tile_after((ti, tj): (usize, usize), tiles_m: usize) -> (usize, usize) {
    if ti + 1 < tiles_m {
        (ti + 1, tj)
    } else {
        (0, tj + 1)
    }
}

/// The tile after the one at row `ir` of the block of rows `ic..ic + mc`
/// and columns `col..col + nr`, in the loops' order: the one below it, or
/// at the top of the next panel of columns; `None` past `end`, the block
/// of columns' end.
fn next_tile(
    c: COut,
    (ic, mc): (usize, usize),
    (col, end): (usize, usize),
    ir: usize,
    (mr, nr): (usize, usize),
) -> Option<NextTile> {
    let (row, col) = if ir + mr < mc {
        (ic + ir + mr, col)
    } else {
        (ic, col + nr)
    };
    (col < end).then(|| NextTile {
        c: c.ptr.wrapping_add(row * c.rs + col),
        rows: mr.min(ic + mc - row),
        cols: nr.min(end - col),
    })
}

/// Whether `rows` rows `rs` floats apart all start at different 64-byte
/// lines of a 4 KiB page (offsets taken from the first row's start).
///
/// Both an L1 set and the core's check of a load against earlier stores
/// (4K aliasing) look only at an address's low 12 bits, so rows 2 KiB or
/// 4 KiB apart crowd onto the same few lines of a page. A tile of such
/// rows that overwrites C (`beta == 0`) at a depth where the kernel would
/// prefetch its next tile (the tile below, on the same crowded lines) runs
/// faster on an Intel core with no prefetch of C at all. Measured on an
/// Intel Xeon (family 6 model 167, AVX-512, 16 f32 lanes, `simd-12x32`,
/// 1 thread, warm, medians of 5 x 9 x 20 calls alternated in one process,
/// GFLOP/s, prefetch in the kernel / from the loop / none):
/// - `Xᵀ·dZ` 784x512x128 with C's rows 512 floats apart (2 KiB) 161 / 174 /
///   182, and 1024x1024x128 (4 KiB) 160 / 166 / 176;
/// - the same with rows 528 and 1040 floats apart (spread) 183 / 176 / 173
///   and 184 / 179 / 178: there the prefetch pays, and it is kept;
/// - 640 floats apart (rows cycle over 8 lines: not spread) 172 / 171 /
///   170, level;
/// - adding to C (`beta == 1`), 784x512x128 at 2 KiB: 166 / 168 / 164,
///   level, so a tile that adds keeps its prefetch; so does a depth of 256
///   or more (`H·W` 128x512x512 164 with or without, 512³ 181 / 177).
///
/// In training, where a weight gradient's C comes back from L3 each step,
/// it is level: 784-512-512-10 (its `dW` 512x512x128, rows 2 KiB apart),
/// 1 thread, 9 alternated runs of 2 epochs, 1.011x the epoch without the
/// prefetch, 1.004x with it from the loop.
///
/// AMD cores were not measured with and without: on Zen 4 the in-kernel
/// prefetch beat the loop's on this same shape (see
/// [`PREFETCH_IN_KERNEL_BELOW`]), so they keep it. Rows less than a line
/// apart are one stretch of memory, not crowded.
fn rows_spread_over_page(rs: usize, rows: usize) -> bool {
    if rs * std::mem::size_of::<f32>() < 64 {
        return true;
    }
    let mut seen = 0u64; // one bit per line of a page
    (0..rows).all(|i| {
        let line = (i * rs * std::mem::size_of::<f32>()) % 4096 / 64;
        let fresh = seen & (1 << line) == 0;
        seen |= 1 << line;
        fresh
    })
}

/// The smallest output (`m x n` floats of one call, in bytes) whose tiles
/// prefetch C when they overwrite it (`beta == 0`; a tile that adds to C
/// always prefetches; on Intel, rows that crowd a page do not, at the
/// depths of the kernel's own prefetch: see [`rows_spread_over_page`]). Below it C is most likely still in cache, and the
/// prefetches cost more than they save: on Zen 3 (AMD EPYC family 25
/// model 1, AVX2, 8 lanes, warm, medians of 20000-100000 calls, ratio to
/// the `gemm` crate) 64³ (16 KiB) ran 0.90-0.93 without, 0.84-0.87 with;
/// 128³ (64 KiB) 0.93-0.94 and 0.90-0.91. From 256 KiB (a 128x512 layer
/// output) the gain below outweighs a warm cost of 1-3% (256³ 0.98-0.99 ->
/// 0.96, 128x512x512 0.99-1.00 -> 0.97-0.98).
const PREFETCH_C_MIN_BYTES: usize = 128 << 10;

/// How far ahead [`prefetch_c`] runs (for depths outside the range where the
/// kernel prefetches the next tile itself, see [`PREFETCH_IN_KERNEL_BELOW`]),
/// in steps of depth: C's lines are
/// prefetched `ceil(PREFETCH_C_DEPTH / kc)` tiles ahead (one tile from
/// `kc = 128` on, at most [`PREFETCH_C_TILES`]), so a short product still
/// gives them a few hundred cycles to arrive. Measured on Zen 3 (AMD EPYC
/// family 25 model 1, AVX2, 8 lanes, 1 thread; `cargo bench --bench step`,
/// two runs, ratio to the best peer): `dZ·Wᵀ` 128x512x10 (depth 10)
/// 0.64-0.73 one tile ahead, 0.71-0.78 with 40 steps (4 tiles), 0.81-0.83
/// with 100 (10 tiles), 0.80-0.84 with 200 (16 tiles); with 128 (13 tiles)
/// 0.71-1.02 over twelve later runs: a 50 µs product, it swings that much
/// between runs of the same build.
const PREFETCH_C_DEPTH: usize = 128;

/// The depth from which the loop prefetches C before each micro-kernel
/// call ([`prefetch_c`]) rather than the kernel in its first steps
/// ([`NextTile`]). Measured on Zen 4 (AMD EPYC family 25 model 17,
/// AVX-512, 16 lanes, `simd-16x16`, 1 thread, warm operands, medians of 7
/// alternated runs, GFLOP/s, before the call / in the kernel): depth 64
/// (`Xᵀ·dZ` 784x512x64) 84.3-84.6 / 92.1-93.2; 128 (784x512x128)
/// 93.9-94.0 / 97.4-100.2; but 512 (`H·W` 128x512x512) 97.1-98.6 /
/// 92.2-95.6 and 784 (128x512x784) 92.7-94.5 / 88.3-94.5. (The in-kernel
/// build ran first in every round; two builds with the same path at depth
/// 512, alternated in both orders, came out level, so the loss there may
/// be smaller than these figures, and the gains above larger.)
const PREFETCH_IN_KERNEL_BELOW: usize = 256;

/// The most tiles ahead [`prefetch_c`] runs (see [`PREFETCH_C_DEPTH`]).
const PREFETCH_C_TILES: usize = 16;

/// Prefetches every line of the `rows x cols` tile of C at `c` (rows `rs`
/// apart): the loop calls it ahead of the micro-kernel (one tile, more for
/// a short depth: [`PREFETCH_C_DEPTH`]). A hint:
/// nothing is read, no value changes.
///
/// A tile that overwrites C (`beta == 0`, the first depth block) still has
/// to fetch each line before its stores can complete: an output buffer
/// used again a step later (a layer's activations, a weight gradient) is
/// in L3 or memory by then, and its tiles' stores waited for it one line
/// at a time. Only the tiles that add to C (`beta != 0`, a depth block
/// after the first) prefetched, their own lines, before (measured on Zen 5,
/// 1 thread: 1024³ 207-211 -> 212-220 GFLOP/s with AVX-512, 111-113 ->
/// 114-116 with AVX2). Measured on Zen 3 (AMD EPYC family 25 model 1, AVX2,
/// 8 lanes, 1 thread, 2026-12-01, alternated builds, 4 runs each in a slow
/// and a fast state of the host):
/// - one 784-512-512-10 training step's eight products in sequence (f32,
///   medians of 11 x 20 steps), ratio to the `gemm` crate run the same way
///   in the same process: `X·W` 128x512x784 0.89-0.95 -> 0.95-1.04,
///   `H·W` 128x512x512 0.91-0.96 -> 0.97-1.05, `dZ·Wᵀ` 128x512x512
///   0.83-0.97 -> 1.00-1.04, `Hᵀ·dZ` 512x512x128 0.82-0.90 -> 0.98-1.23,
///   `Xᵀ·dZ` 784x512x128 0.81-0.90 -> 0.97-1.20, `dZ·Wᵀ` 128x512x10
///   0.42-0.65 -> 0.72-0.90 (prefetching the tile's own lines instead of
///   the next tile's: 0.68-0.72); the whole step 1.08-1.17x the `gemm`
///   crate's time -> 0.92-1.03x;
/// - `128x512x512` alone with C flushed to memory before each call: 0.91-0.95
///   -> 0.98-1.06;
/// - `train --layers 512,512 --epochs 1 --limit 20000`, 8 alternated
///   rounds: 1 thread 1.18 -> 1.05 s, 2 threads 0.75 -> 0.67 s; the
///   workshop network level (0.054 / 0.056 s: its outputs stay in cache).
#[inline(never)]
fn prefetch_c(c: *const f32, rs: usize, (rows, cols): (usize, usize)) {
    // each line the row's `cols` floats touch, once
    let bytes = cols.max(1) * std::mem::size_of::<f32>();
    for i in 0..rows {
        let row = c.wrapping_add(i * rs);
        let (start, end) = (row.addr() / 64, (row.addr() + bytes - 1) / 64);
        // the row's first line, made from `c` (not from an integer), so that
        // Miri can follow it
        let first = row.wrapping_byte_sub(row.addr() % 64);
        for line in 0..=end - start {
            // an address to prefetch, never dereferenced
            crate::simd::prefetch_line(first.wrapping_byte_add(line * 64));
        }
    }
}

/// The block `alpha · A[i0..i0+rows, p0..p0+kc]` for the in-place kernels
/// (converted a whole block at a time: long contiguous runs convert fastest):
/// returns `(ptr, ra, pa)` with element `(i, p)` at `ptr + i·ra + p·pa`.
///
/// An evenly strided `f32` A with `alpha == 1` is used where it is.
/// Otherwise (u8 pixels, a scale, or rows gathered by index) the block is
/// converted into `buf` keeping the source's orientation, so both reads and
/// writes are contiguous (a cheap, vectorised copy, unlike packing's transpose).
pub(crate) fn direct_a<T: Element>(
    a: &Lines<T>,
    alpha: f32,
    (i0, rows): (usize, usize),
    (p0, kc): (usize, usize),
    buf: &mut [f32],
) -> (*const f32, usize, usize) {
    assert!(
        i0 + rows <= a.rows() && p0 + kc <= a.cols(),
        "direct_a: block outside A"
    );
    let (row, col) = (a.row(), a.col());
    if let (true, Some(rs), Some(cs)) = (
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && alpha == 1.0,
        row.stride(),
        col.stride(),
    ) {
        // SAFETY: T is f32 (same type, checked above), and element (i0, p0)
        // is inside `data` (the invariant of `Lines`).
        return (
            unsafe { a.data().as_ptr().cast::<f32>().add(a.offset(i0, p0)) },
            rs,
            cs,
        );
    }
    assert!(buf.len() >= rows * kc, "direct_a: buffer too small");
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<u8>() {
        // SAFETY: T is u8 (checked), so the slice reinterprets as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(a.data().as_ptr().cast::<u8>(), a.data().len()) };
        let pixels =
            Lines::new(bytes, (a.rows(), row), (a.cols(), col)).expect("the same layout over the same bytes");
        return direct_a_u8(&pixels, alpha, (i0, rows), (p0, kc), buf);
    }
    let src = a.data();
    // Element (i, p) of the block is src[a.offset(i0 + i, p0 + p)], inside `data`.
    if row.unit() && !col.unit() {
        // Columns contiguous (a transposed view such as Xᵀ): copy column by column.
        for (p, dcol) in buf.chunks_exact_mut(rows).take(kc).enumerate() {
            a.prefetch_col(p0 + p + PREFETCH_AHEAD, (i0, rows));
            let s = &src[a.offset(i0, p0 + p)..][..rows];
            for (d, &x) in dcol.iter_mut().zip(s) {
                *d = alpha * x.to_f32();
            }
        }
        (buf.as_ptr(), 1, rows)
    } else {
        for (i, drow) in buf.chunks_exact_mut(kc).take(rows).enumerate() {
            a.prefetch_row(i0 + i + PREFETCH_AHEAD, (p0, kc));
            let start = a.offset(i0 + i, p0);
            if col.unit() {
                for (d, &x) in drow.iter_mut().zip(&src[start..start + kc]) {
                    *d = alpha * x.to_f32();
                }
            } else {
                for (p, d) in drow.iter_mut().enumerate() {
                    *d = alpha * src[a.offset(i0 + i, p0 + p)].to_f32();
                }
            }
        }
        (buf.as_ptr(), kc, 1)
    }
}

/// [`direct_a`] for `u8` pixels: the same layouts, converted 16 at a time
/// with `wide` (`u8x16 -> i16x16 -> i32x16 -> f32x16`, then `· alpha`).
fn direct_a_u8(
    a: &Lines<u8>,
    alpha: f32,
    (i0, rows): (usize, usize),
    (p0, kc): (usize, usize),
    buf: &mut [f32],
) -> (*const f32, usize, usize) {
    let (row, col) = (a.row(), a.col());
    let src = a.data();
    if row.unit() && !col.unit() {
        for (p, dcol) in buf.chunks_exact_mut(rows).take(kc).enumerate() {
            a.prefetch_col(p0 + p + PREFETCH_AHEAD, (i0, rows));
            convert_u8(&src[a.offset(i0, p0 + p)..][..rows], alpha, dcol);
        }
        (buf.as_ptr(), 1, rows)
    } else if col.unit() {
        for i in 0..PREFETCH_AHEAD.min(rows) {
            a.prefetch_row(i0 + i, (p0, kc));
        }
        for (i, drow) in buf.chunks_exact_mut(kc).take(rows).enumerate() {
            a.prefetch_row(i0 + i + PREFETCH_AHEAD, (p0, kc));
            convert_u8(&src[a.offset(i0 + i, p0)..][..kc], alpha, drow);
        }
        (buf.as_ptr(), kc, 1)
    } else {
        for (i, drow) in buf.chunks_exact_mut(kc).take(rows).enumerate() {
            for (p, d) in drow.iter_mut().enumerate() {
                *d = alpha * src[a.offset(i0 + i, p0 + p)] as f32;
            }
        }
        (buf.as_ptr(), kc, 1)
    }
}

/// `dst[i] = alpha · src[i]` (`dst.len() == src.len()`), 16 lanes at a time.
#[inline(always)]
fn convert_u8(src: &[u8], alpha: f32, dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    let chunks = src.len() / 16;
    for c in 0..chunks {
        // SAFETY: bytes and floats 16·c .. 16·c + 16 are inside both slices.
        unsafe { convert_16(src.as_ptr().add(16 * c), alpha, dst.as_mut_ptr().add(16 * c)) };
    }
    for (x, y) in src[16 * chunks..].iter().zip(&mut dst[16 * chunks..]) {
        *y = alpha * *x as f32;
    }
}

/// Converts 16 bytes at `s` to `alpha · f32` at `d`: with AVX-512, one
/// `vpmovzxbd` (u8 -> i32), `vcvtdq2ps`, `vmulps`; with AVX2, two of each
/// (8 bytes each: 3.9 µs for 64 rows of 784 in cache, against 4.6-5.5 µs
/// through `wide`, on a Zen 3); otherwise through `wide`
/// (`u8x16 -> i16x16 -> i32x16 -> f32x16`).
///
/// # Safety
/// `s..s+16` readable, `d..d+16` writable.
#[inline(always)]
unsafe fn convert_16(s: *const u8, alpha: f32, d: *mut f32) {
    #[cfg(target_feature = "avx512f")]
    {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees the 16 bytes and 16 floats; the
        // unaligned load and store have no alignment demand.
        unsafe {
            let bytes = _mm_loadu_si128(s.cast::<__m128i>());
            let floats = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
            _mm512_storeu_ps(d, _mm512_mul_ps(floats, _mm512_set1_ps(alpha)));
        }
    }
    #[cfg(all(target_feature = "avx2", not(target_feature = "avx512f")))]
    {
        use std::arch::x86_64::*;
        // SAFETY: as above; each 8-byte load reads one half of the 16 bytes.
        unsafe {
            let alpha = _mm256_set1_ps(alpha);
            let lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(s.cast::<__m128i>()));
            let hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(s.add(8).cast::<__m128i>()));
            _mm256_storeu_ps(d, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), alpha));
            _mm256_storeu_ps(d.add(8), _mm256_mul_ps(_mm256_cvtepi32_ps(hi), alpha));
        }
    }
    #[cfg(not(target_feature = "avx2"))]
    {
        use wide::{f32x16, i16x16, i32x16, u8x16};
        // SAFETY: as above.
        let bytes: [u8; 16] = unsafe { std::ptr::read_unaligned(s.cast::<[u8; 16]>()) };
        let wide = f32x16::from_i32x16(i32x16::from(i16x16::from(u8x16::from(bytes))));
        // SAFETY: as above.
        unsafe { std::ptr::write_unaligned(d.cast::<f32x16>(), wide * f32x16::splat(alpha)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows 2 KiB, 3 KiB or 4 KiB apart crowd a page's lines (no C prefetch
    /// for a tile that overwrites them, on Intel); rows a line more apart
    /// spread over it; 640 floats (2.5 KiB) cycle over 8 lines.
    #[test]
    fn rows_crowding_a_page_are_told_from_spread_ones() {
        for (rs, rows, spread) in [
            (512, 12, false),
            (768, 12, false),
            (1024, 16, false),
            (1280, 12, false),
            (640, 12, false),
            (640, 8, true),
            (528, 12, true),
            (1040, 16, true),
            (512, 1, true),
            (10, 12, true), // narrow rows share lines, but not a page's offsets
            (16, 12, true),
        ] {
            assert_eq!(
                rows_spread_over_page(rs, rows),
                spread,
                "{rows} rows {rs} floats apart"
            );
        }
    }

    /// A packing buffer is 64-byte aligned and as long as asked, grows to
    /// its bound once, and keeps what was packed while it does not grow.
    #[test]
    fn packing_buffers_are_aligned_and_grow_once() {
        let mut buf = Aligned::default();
        for (len, bound) in [
            (1, 0),
            (17, 100),
            (100, 100),
            (5, 100),
            (1000, 2000),
            (3000, 3001),
            (7, 0),
        ] {
            let got = buf.get(len, bound);
            assert_eq!(got.len(), len);
            assert_eq!(got.as_ptr() as usize % 64, 0, "len {len}, bound {bound}");
        }
        let first = buf.get(10, 10).as_ptr();
        buf.get(3001, 0)[3000] = 2.5;
        assert_eq!(buf.get(3001, 0).as_ptr(), first, "no growth within the bound");
        assert_eq!(buf.get(3001, 0)[3000], 2.5);
    }

    /// After `reserve_pack_buffers`, no GEMM on the thread moves its
    /// packing buffers: wide and narrow products, A plain, transposed and
    /// `u8`, packed and read in place.
    #[test]
    fn reserved_pack_buffers_never_grow_again() {
        use crate::gemm::{gemm, Epilogue, Parallelism};
        use crate::matrix::{MatMut, MatRef};
        fn where_they_are() -> [usize; 6] {
            BUFFERS.with(|cell| {
                let b = cell.borrow();
                [
                    b.a.buf.as_ptr() as usize,
                    b.a.buf.len(),
                    b.b.buf.as_ptr() as usize,
                    b.b.buf.len(),
                    b.offs.as_ptr() as usize,
                    b.rows.as_ptr() as usize,
                ]
            })
        }
        fn run<A: crate::gemm::AOperand>(alpha: f32, a: A, b: MatRef<f32>, c: &mut MatMut) {
            gemm(
                alpha,
                a,
                b,
                0.0,
                c.rb_mut(),
                Epilogue::None,
                Parallelism::Sequential,
            );
        }
        // a fresh thread: its buffers are empty until reserved
        std::thread::spawn(|| {
            assert_eq!(where_they_are()[1], 0);
            reserve_pack_buffers();
            let reserved = where_they_are();
            assert!(reserved[1] > 0 && reserved[3] > 0);
            let f: Vec<f32> = (0..1000 * 1000).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
            let x: Vec<u8> = (0..1000 * 1000).map(|i| (i * 31 % 256) as u8).collect();
            let mut c = vec![0.0f32; 1000 * 1000];
            for (m, k, n) in [
                (300, 700, 300),
                (128, 784, 16),
                (128, 512, 10),
                (1000, 1000, 1000),
                (128, 512, 512),
            ] {
                let b = MatRef::from_slice(&f[..k * n], k, n);
                let mut c = MatMut::from_slice(&mut c[..m * n], m, n);
                run(1.0, MatRef::from_slice(&f[..m * k], m, k), b, &mut c);
                run(1.0, MatRef::from_slice(&f[..m * k], k, m).t(), b, &mut c);
                run(0.5, MatRef::from_slice(&x[..m * k], m, k), b, &mut c);
                assert_eq!(where_they_are(), reserved, "{m}x{k}x{n}");
            }
        })
        .join()
        .unwrap();
    }

    /// `next_tile` names the tile the loops run next within a block of
    /// rows and columns (down a panel of columns, then the next panel's
    /// top), with its clipped size, and none after the last.
    #[test]
    fn the_next_tile_is_the_one_the_loops_run_next() {
        let rs = 1000;
        let c = COut {
            ptr: std::ptr::null_mut(),
            rs,
        };
        for (ic, mc, jc, nc, mr, nr) in [
            (0, 128, 0, 512, 16, 16),
            (240, 100, 4096, 37, 12, 32),
            (0, 5, 0, 10, 6, 16),
        ] {
            let mut order = Vec::new();
            for jr in (0..nc).step_by(nr) {
                for ir in (0..mc).step_by(mr) {
                    order.push((ir, jr));
                }
            }
            for (t, &(ir, jr)) in order.iter().enumerate() {
                let got = next_tile(c, (ic, mc), (jc + jr, jc + nc), ir, (mr, nr));
                let want = order
                    .get(t + 1)
                    .map(|&(i, j)| ((ic + i) * rs + jc + j, mr.min(mc - i), nr.min(nc - j)));
                let got = got.map(|n| (n.c as usize / 4, n.rows, n.cols));
                assert_eq!(got, want, "tile {t} of {mc} x {nc} in {mr} x {nr} tiles");
            }
        }
    }

    /// Stepping through the tiles gives tile `u` at `(u % tiles_m, u / tiles_m)`,
    /// as the divisions it replaces do.
    #[test]
    fn tiles_stepped_in_loop_order() {
        for tiles_m in [1, 2, 3, 22] {
            for start in [0, 1, 5, 13] {
                let mut tile = (start % tiles_m, start / tiles_m);
                for u in start..start + 100 {
                    assert_eq!(tile, (u % tiles_m, u / tiles_m), "tiles_m {tiles_m}, u {u}");
                    tile = tile_after(tile, tiles_m);
                }
            }
        }
    }

    /// With A read in place, B~ blocks stay within half of L2: whole
    /// panels, at least one, never more columns than the block sizes give.
    #[test]
    fn b_blocks_stay_within_half_of_l2() {
        let kib = 1 << 10;
        // Zen 3: 512 KiB L2, depth 512, 16-wide panels: 128 columns (256 KiB).
        assert_eq!(nc_within_l2(4096, 512, 16, 512 * kib), 128);
        // k = 784 in two blocks of 392: 10 panels (245 KiB).
        assert_eq!(nc_within_l2(4096, 392, 16, 512 * kib), 160);
        // Zen 5: 1 MiB L2, 32-wide panels.
        assert_eq!(nc_within_l2(4096, 512, 32, 1024 * kib), 256);
        assert_eq!(nc_within_l2(4096, 4096, 16, 64 * kib), 16, "at least one panel");
        assert_eq!(nc_within_l2(64, 512, 16, 512 * kib), 64, "at most the nc given");
        assert_eq!(
            nc_within_l2(4096, 0, 0, 0),
            1,
            "degenerate sizes do not divide by zero"
        );
    }

    /// The wide in-place reads follow the L1d size unless forced, and the
    /// single contiguous B panel is read in place either way.
    #[test]
    fn wide_in_place_reads_follow_the_l1d_unless_forced() {
        assert!(!wide_in_place_pays(32 << 10, false), "Zen 3's 32 KiB L1d");
        assert!(wide_in_place_pays(48 << 10, false), "Zen 5's 48 KiB L1d");
        assert!(!wide_in_place_pays(48 << 10, true), "an Intel Xeon's 48 KiB L1d");
        let data = vec![0.0f32; 300 * 64];
        let wide = MatRef::from_slice(&data, 300, 64);
        let one_panel = MatRef::from_slice(&data[..300 * 16], 300, 16);
        for forced in [Some(false), Some(true), None] {
            set_wide_in_place(forced);
            let on = forced.unwrap_or_else(wide_in_place_here);
            assert_eq!(reads_wide_in_place(), on, "{forced:?}");
            assert_eq!(reads_b_in_place(&wide, 128, 64, 16), on, "{forced:?}");
            assert!(reads_b_in_place(&one_panel, 128, 16, 16), "{forced:?}");
            assert!(
                !reads_b_in_place(&wide, 257, 64, 16),
                "more rows than B_IN_PLACE_MAX_M"
            );
            // B narrower than a panel, ending inside its last vector: the
            // AVX2 default unless forced
            let narrow = MatRef::from_slice(&data[..300 * 15], 300, 15);
            let edge = forced.unwrap_or(EDGE_B_IN_PLACE_DEFAULT);
            assert_eq!(reads_b_edge_in_place(&narrow, 128, 15, 16), edge, "{forced:?}");
            let (n_short, nr) = (16 - LANES, 16);
            let short = MatRef::from_slice(&data[..300 * n_short], 300, n_short);
            assert!(
                !reads_b_edge_in_place(&short, 128, n_short, nr),
                "columns ending before the last vector"
            );
            let strided = MatRef::with_strides(&data[..300 * 16], 300, 15, 16, 1);
            assert!(
                !reads_b_edge_in_place(&strided, 128, 15, 16),
                "a row stride of NR reads as packed"
            );
            assert!(
                !reads_b_edge_in_place(&narrow, 257, 15, 16),
                "more rows than B_IN_PLACE_MAX_M"
            );
            assert!(!reads_b_edge_in_place(&narrow.t(), 15, 300, 16), "not row-major");
            // A with contiguous rows: in place unless forced off (or, by
            // default, on Intel); a transposed A only with the wide reads on.
            let kernel = super::super::kernel::default_kernel();
            let n = 2 * kernel.nr;
            let rows_in_place = match forced {
                None => !crate::simd::intel(),
                Some(on) => on,
            };
            for (rows_contiguous, want) in [(true, rows_in_place), (false, on)] {
                let limit = if want {
                    LANES_N_A_IN_PLACE
                } else {
                    SMALL_A_IN_PLACE
                };
                assert_eq!(
                    small_a_in_place(kernel, n, rows_contiguous),
                    limit,
                    "{forced:?}, rows contiguous {rows_contiguous}"
                );
            }
            assert_eq!(
                small_a_in_place(kernel, kernel.nr, true),
                SMALL_A_IN_PLACE,
                "one B panel"
            );
        }
        set_wide_in_place(None);
    }
}
