//! Products of rows kept as lists of their non-zeros: a first layer's
//! inputs when most pixels are zero.
//!
//! An MNIST image is 81% zeros (19.1% of the training set's pixels are
//! not). A first layer's GEMM multiplies every one of them, twice a step:
//! `z = x·W` and `dW = xᵀ·dz`. Here each row of `x` is read once into a
//! list of `(column, scale·value)` pairs for its non-zeros ([`SparseRows`]),
//! and both products add up only those:
//!
//! ```text
//! forward   z[r, :]  = Σ_(c, v) in row r   v · W[c, :]      columns in order, from zero
//! backward  dW[c, :] = Σ_r, (c, v) in row r  v · dz[r, :]   rows in order, from zero
//! ```
//!
//! The sums are the GEMM's, term for term: each element is one depth block
//! summed from zero, in the same order, with the same multiply-add
//! ([`simd::mul_add`]). A zero term `0·w` added to a sum leaves it as it is
//! when `w` is finite (the sum is never `-0`), so for a finite `W` (and a
//! finite `dz`) the bits are the GEMM's; the caller checks that
//! ([`all_finite`]) and otherwise uses the GEMM.
//!
//! The forward product runs four rows at once, so that four rows' sums,
//! not one, wait on each multiply-add's latency: over all the columns for
//! narrow outputs (up to two vectors: the workshop's 16 hidden units), over
//! chunks of columns one after the other for wider ones (784-512-512-10's
//! 512). A wide layer's weight gradient sums four adjacent columns at once
//! ([`ColumnGroups`], [`grouped_weight_gradient`]): each row of `dz` is
//! loaded once for the four, and their sums stay in registers.

use crate::gemm::pack::PREFETCH_AHEAD;
use crate::matrix::{as_f32, Element, MatMut, MatRef};
use crate::simd::{self, LANES, V};

/// The largest share of non-zeros for which the products here are used
/// instead of the GEMM (the caller's choice, per batch). The choice changes
/// no bits, only the time. Measured, 1 thread, in cache, a 128x392 slice
/// of MNIST's pixels times 392x16 and its weight gradient (two 64-row
/// shards), read + product + gradients against convert + the GEMMs, µs:
/// - Zen 3 (AMD EPYC family 25 model 1, AVX2, 8 lanes), pixels set at
///   random to raise the density: 0.18 non-zero 32 against 44, 0.24 42
///   against 45, 0.29 47 against 46, 0.34 51 against 44. Break-even 27-29%.
/// - Zen 4 (family 25 model 17, AVX-512, 16 lanes; medians of 3000 calls,
///   two runs, the left and the right half of the pixels): 0.10 16-17
///   against 32-33, 0.19 23.0-23.5 against 32.4-32.7, 0.24 28 against 32
///   (one run), 0.29 31.0-31.4 against 32.4-32.5, 0.34 34.6-34.9 against
///   32.3-32.5. Break-even about 30%.
///
/// And whole epochs (`train --json`, alternated rounds) where the GEMM does
/// 64 flops a cycle per core (full-width 512-bit FMAs):
/// - Intel Xeon (family 6 model 167 as its hypervisor reports it, AVX-512,
///   16 lanes): the workshop epoch took 1.17x as long on 1 thread and 1.19x
///   on 2 with the GEMM (a 12% threshold) as with the lists, 8 rounds of 8.
/// - Zen 5 (AMD EPYC family 26 model 2, AVX-512, 16 lanes, 2026-12-05):
///   the lists at every density against the GEMM at every density, pixels
///   set at random to raise it, the epoch's ratio (6 rounds): 0.22
///   non-zero 0.83 on 1 thread and 0.86 on 2, 0.25 0.88 and 0.89, 0.28
///   0.92 and 0.94, 0.32 0.99 and 1.00; 784-512-512-10 at 0.32 0.91 on
///   both (3 rounds). Break-even about 32%. (On 2026-12-02, before the
///   64-byte read and the aligned part buffers, the GEMM had won there
///   at MNIST's density, and this was 12% on AMD's full-width cores.)
///
/// MNIST's slices hold 18-20% (so they take the lists), Fashion-MNIST's
/// half (the GEMM).
pub const SPARSE_ROWS_ENOUGH: f32 = 0.25;

/// The widest output (`n`, columns of `W`) the products here serve.
/// Until 2026-12-03 it was 128, for a row of `W` to stay in cache for every
/// non-zero that selects it; the wide forward product now reads `W` a
/// chunk of columns at a time and the wide gradient sums in registers, and
/// 784-512-512-10 (the widest first layer a large network splits,
/// `nn::split::ONE_SHARD_MAX_OUTPUTS`) gained
/// the most: on Zen 4 (AMD EPYC family 25 model 17, AVX-512, 16 lanes, 2
/// threads, `train --profile`, 2 epochs) its first layer's two products
/// took 2.12-2.29 thread-s as GEMMs, 0.91-1.16 as these (and the same bits;
/// the AVX2 build: 2.45-2.54 and 1.44-1.47).
pub const SPARSE_ROWS_MAX_N: usize = 1024;

/// Rows interleaved by the narrow forward product.
const GROUP: usize = 4;

/// The non-zero entries of `rows` rows of `cols` columns, each scaled,
/// in order of row, then of column. The buffers are sized once
/// ([`SparseRows::with_capacity`]) and reused: reading rows allocates
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct SparseRows {
    rows: usize,
    cols: usize,
    /// Row `r`'s entries are `start[r]..start[r + 1]`.
    start: Vec<usize>,
    /// Column of each entry (`< cols`).
    col: Vec<u32>,
    /// `scale · value` of each entry.
    val: Vec<f32>,
    /// The rows by their count of entries (count in the high half, row in
    /// the low): rows taken four at a time in this order have about as
    /// many entries each, so few are left to sum one row at a time.
    by_count: Vec<u64>,
    /// Rows per count of entries, then where each count's rows go in
    /// `by_count` (`cols + 1` counts).
    per_count: Vec<u32>,
}

impl SparseRows {
    /// Room for up to `rows` rows of `cols` columns (every entry non-zero).
    pub fn with_capacity(rows: usize, cols: usize) -> SparseRows {
        SparseRows {
            rows: 0,
            cols,
            start: vec![0; rows + 1],
            col: vec![0; rows * cols],
            val: vec![0.0; rows * cols],
            by_count: vec![0; rows],
            per_count: vec![0; cols + 1],
        }
    }

    /// Rows read by the last [`read`](Self::read).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of each row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Non-zero entries kept.
    pub fn nonzeros(&self) -> usize {
        self.start[self.rows]
    }

    /// The share of entries that are non-zero (0 for no rows).
    pub fn density(&self) -> f32 {
        let all = self.rows * self.cols;
        if all == 0 {
            0.0
        } else {
            self.nonzeros() as f32 / all as f32
        }
    }

    /// Row `r`'s columns and scaled values.
    ///
    /// Inlined into the products' loops over rows (a call per row was about
    /// 1% of the workshop network's 1-thread epoch under `perf`); the
    /// message of a bad row stays out of line.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        if r >= self.rows {
            bad_row(r, self.rows);
        }
        let (s, e) = (self.start[r], self.start[r + 1]);
        (&self.col[s..e], &self.val[s..e])
    }

    /// Reads `row(r)[k0..k0 + cols]` of `rows` rows and keeps `scale · x`
    /// of the entries that are not zero (NaN is kept, as the GEMM would
    /// add it). The value is rounded once, as the GEMM's packing converts
    /// and scales (`scale · (x as f32)`).
    ///
    /// Panics if `rows` or the columns exceed the capacity, or a row is
    /// shorter than `k0 + cols`.
    pub fn read<'a, T: Element>(
        &mut self,
        rows: usize,
        row: impl Fn(usize) -> &'a [T],
        k0: usize,
        scale: f32,
    ) {
        assert!(
            rows < self.start.len(),
            "SparseRows: {rows} rows, room for {}",
            self.start.len() - 1
        );
        assert!(rows <= u32::MAX as usize, "SparseRows: {rows} rows");
        let cols = self.cols;
        let mut n = 0;
        // rows gathered from a data set are scattered over it: each is hinted
        // a few rows ahead, or waits a full memory latency
        for r in 0..PREFETCH_AHEAD.min(rows) {
            simd::prefetch(&row(r)[k0..k0 + cols]);
        }
        for r in 0..rows {
            if r + PREFETCH_AHEAD < rows {
                simd::prefetch(&row(r + PREFETCH_AHEAD)[k0..k0 + cols]);
            }
            self.start[r] = n;
            let x = &row(r)[k0..k0 + cols];
            // the rest of the buffers: a row has room for `cols` entries at least,
            // and the vector stores of `read_u8` use more when it is there
            let (col, val) = (&mut self.col[n..], &mut self.val[n..]);
            n += if let Some(bytes) = as_u8(x) {
                read_u8(bytes, scale, col, val)
            } else if let Some(floats) = as_f32(x) {
                read_f32(floats, scale, col, val)
            } else {
                read_any(x, scale, col, val)
            };
        }
        self.start[rows] = n;
        self.rows = rows;
        self.order_by_count();
    }

    /// Fills `by_count` with the rows in order of their count of entries
    /// (ties in row order): by counting when the counts are not many more
    /// than the rows (a 128-row batch of 392 columns), else by sorting.
    /// The same order either way. Measured on Zen 3 (AMD EPYC family 25
    /// model 1, AVX2, 8 lanes), the whole [`read`](Self::read) of 128
    /// MNIST half rows, medians of 400 batches, four alternated runs of
    /// both builds: counting 15.8-17.4 µs against sorting 17.4-18.2 in
    /// cache, 20.5-21.9 against 22.0-24.3 for rows drawn at random.
    fn order_by_count(&mut self) {
        let (rows, cols) = (self.rows, self.cols);
        let count = |r: usize| self.start[r + 1] - self.start[r];
        let key = |r: usize| (count(r) as u64) << 32 | r as u64;
        if cols > 4 * rows || self.per_count.len() <= cols {
            for (r, k) in self.by_count[..rows].iter_mut().enumerate() {
                *k = key(r);
            }
            // in place: no allocation
            self.by_count[..rows].sort_unstable();
            return;
        }
        let at = &mut self.per_count[..=cols];
        at.fill(0);
        for r in 0..rows {
            at[count(r)] += 1;
        }
        let mut first = 0;
        for a in at.iter_mut() {
            (*a, first) = (first, first + *a);
        }
        for r in 0..rows {
            let c = count(r);
            self.by_count[at[c] as usize] = key(r);
            at[c] += 1;
        }
    }

    /// The `i`-th row in order of entry count.
    fn row_by_count(&self, i: usize) -> usize {
        (self.by_count[i] & u32::MAX as u64) as usize
    }

    /// Writes the rows out in full into `dst` (`rows x cols`, row-major),
    /// zeros where no entry is kept: the operand the GEMM would have read.
    pub fn scatter(&self, dst: &mut [f32]) {
        let cols = self.cols;
        assert!(
            dst.len() >= self.rows * cols,
            "SparseRows::scatter: buffer too small"
        );
        for r in 0..self.rows {
            let out = &mut dst[r * cols..(r + 1) * cols];
            out.fill(0.0);
            let (col, val) = self.row(r);
            for (&c, &v) in col.iter().zip(val) {
                out[c as usize] = v;
            }
        }
    }
}

/// The panic of [`SparseRows::row`] for a row it does not hold.
#[cold]
#[inline(never)]
fn bad_row(r: usize, rows: usize) -> ! {
    panic!("SparseRows: row {r} of {rows}")
}

/// Whether the first `sample` rows of `rows` (all, if fewer) hold at most
/// [`SPARSE_ROWS_ENOUGH`] non-zeros: a cheap look before choosing the
/// products here (the choice changes no bits).
pub fn mostly_zero<T: Element>(rows: &crate::gemm::ImageRows<T>, sample: usize) -> bool {
    let n = sample.min(rows.rows());
    if n == 0 || rows.is_empty() {
        return false;
    }
    let nonzero: usize = (0..n)
        .map(|r| match as_u8(rows.row(r)) {
            Some(bytes) => nonzero_bytes(bytes),
            None => rows.row(r).iter().filter(|x| x.to_f32() != 0.0).count(),
        })
        .sum();
    nonzero as f32 <= SPARSE_ROWS_ENOUGH * (n * rows.len()) as f32
}

/// How many bytes of `x` are not zero, counted 64 at a time in bytes (a
/// count per byte lane, which the compiler keeps in vector registers;
/// counted straight into a `usize`, each byte was widened to 64 bits:
/// 0.9% of a 1-thread workshop training run under `perf`, Intel Xeon,
/// AVX-512, 16 lanes).
fn nonzero_bytes(x: &[u8]) -> usize {
    x.chunks(64)
        .map(|c| c.iter().fold(0u8, |n, &b| n + u8::from(b != 0)) as usize)
        .sum()
}

/// `x` as bytes if its elements are `u8` pixels.
pub(crate) fn as_u8<T: Element>(x: &[T]) -> Option<&[u8]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<u8>())
        // SAFETY: T is u8 (same TypeId): the same memory as `[u8]`.
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), x.len()) })
}

/// The non-zero bytes of `x`, 64 at a time with AVX-512's VBMI2
/// ([`pack_nonzero_64`]), sixteen at a time with AVX-512 without it (and
/// for the rest), 32 with AVX2 ([`pack_nonzero_32`]; the rest eight at a
/// time), with no branch per byte ([`pack_nonzero_bytes`]).
fn read_u8(x: &[u8], scale: f32, col: &mut [u32], val: &mut [f32]) -> usize {
    let mut n = 0;
    let mut q0 = 0;
    if let Some(step) = PACK_BYTES {
        let room = val.len().min(col.len());
        // 64 bytes at a time with VBMI2 (an all-zero block returns at once)
        while PACK_64 && q0 + 64 <= x.len() && n + 64 <= room {
            // SAFETY: 64 bytes at q0 <= x.len() - 64, room for 64 entries at n
            n += unsafe {
                pack_nonzero_64(
                    x[q0..].as_ptr(),
                    q0 as u32,
                    scale,
                    col[n..].as_mut_ptr(),
                    val[n..].as_mut_ptr(),
                )
            };
            q0 += 64;
        }
        // then 32 at a time: skipped at once when all zero (an image's
        // margins), else packed `step` by `step`
        while q0 + 32 <= x.len() && n + 32 <= room {
            if PACK_32 {
                // SAFETY: 32 bytes at q0 <= x.len() - 32, room for 32 entries at n
                n += unsafe {
                    pack_nonzero_32(
                        x[q0..].as_ptr(),
                        q0 as u32,
                        scale,
                        col[n..].as_mut_ptr(),
                        val[n..].as_mut_ptr(),
                    )
                };
                q0 += 32;
                continue;
            }
            let block = &x[q0..q0 + 32];
            let word = |i: usize| u64::from_le_bytes(block[8 * i..8 * i + 8].try_into().expect("8 bytes"));
            if word(0) | word(1) | word(2) | word(3) != 0 {
                for q in (q0..q0 + 32).step_by(step) {
                    // SAFETY: `step` bytes at q < x.len() - step, and room for `step` entries at n
                    n += unsafe {
                        pack_nonzero_bytes(
                            x[q..].as_ptr(),
                            (q as u32, 0),
                            scale,
                            col[n..].as_mut_ptr(),
                            val[n..].as_mut_ptr(),
                        )
                    };
                }
            }
            q0 += 32;
        }
        while q0 + step <= x.len() && n + step <= room {
            // SAFETY: as above
            n += unsafe {
                pack_nonzero_bytes(
                    x[q0..].as_ptr(),
                    (q0 as u32, 0),
                    scale,
                    col[n..].as_mut_ptr(),
                    val[n..].as_mut_ptr(),
                )
            };
            q0 += step;
        }
        // the last bytes (8 of a 392-pixel half row, often inside the digit)
        // packed too, not tested one by one: the last `step` bytes of the
        // row, those before q0 (packed already) left out
        let from = x.len().saturating_sub(step);
        if x.len() >= step && from < q0 && q0 < x.len() && n + step <= room {
            // SAFETY: `step` bytes at from, room for `step` entries at n
            n += unsafe {
                pack_nonzero_bytes(
                    x[from..].as_ptr(),
                    (from as u32, (q0 - from) as u32),
                    scale,
                    col[n..].as_mut_ptr(),
                    val[n..].as_mut_ptr(),
                )
            };
            q0 = x.len();
        }
    }
    for (c, &b) in x.iter().enumerate().skip(q0) {
        if b != 0 {
            col[n] = c as u32;
            val[n] = scale * b as f32;
            n += 1;
        }
    }
    n
}

/// Bytes [`pack_nonzero_bytes`] reads at once (`None`: no vector version).
const PACK_BYTES: Option<usize> = if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
    Some(16)
} else if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
    Some(8)
} else {
    None
};

/// Whether [`read_u8`] packs 64 bytes at a time with [`pack_nonzero_64`]
/// (AVX-512 with VBMI2's byte compress: Intel since Ice Lake, AMD since Zen 4).
const PACK_64: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vbmi2"
));

/// Whether inference (`nn::split::SparseFirst`) reads a narrow first
/// layer's inputs (under [`GROUPED_MIN_N`] outputs) as lists too: where
/// [`SparseRows::read`] takes a row's bytes 64 at a time (AVX-512 with VBMI2), reading the lists
/// costs less than the GEMM they spare. Measured on a Zen 5 (AMD EPYC
/// family 26 model 2, AVX-512, 16 lanes), the workshop network's
/// validation pass in `train --profile` (4 epochs, runs of the two builds
/// alternated), ms an epoch, GEMM against lists: 2 threads 1.35-1.43
/// against 1.25-1.32 (6 runs), 1 thread 2.53-2.63 against 1.95-2.06 (4).
/// Reading 16 at a time, Zen 4 (AVX-512, 16 lanes) had been level or slower in
/// training (2026-12-03, 2 threads, six runs: 0.0087-0.0108 s against
/// 0.0091-0.0125 s over 4 epochs), and an AVX2 build (32 at a time) was
/// level on 2 threads on the same Zen 5 (1.71-1.92 ms against 1.55-1.79,
/// three runs): builds without the 64-byte read keep the GEMM.
pub const NARROW_INFERENCE_FROM_LISTS: bool = PACK_64;

/// The places of 64 bytes, `0..64`, for [`pack_nonzero_64`] to compress.
#[allow(dead_code)]
const PLACES_64: [u8; 64] = {
    let mut places = [0; 64];
    let mut i = 0;
    while i < 64 {
        places[i] = i as u8;
        i += 1;
    }
    places
};

/// [`pack_nonzero_bytes`] for 64 bytes at once (AVX-512 with VBMI2): one
/// test finds the non-zero bytes of all 64 (and returns at once if none
/// is), one byte compress packs them to the front of a register and
/// another their places (0..63); then each sixteen are widened to `u32`,
/// the values converted and scaled, the places offset by `q0`, and both
/// stored whole (up to 64 slots written). The same values in the same
/// order as sixteen at a time, with one test and two compresses for 64
/// bytes instead of one test and two compresses for each sixteen.
///
/// The first two sixteens are stored whatever the count: whether a block
/// of an image drawn at random holds more than sixteen non-zeros is a
/// coin toss for the branch predictor, and a mispredicted branch costs
/// more than two stores. More than 32 is rare (a digit's stroke is a few
/// pixels wide), so that test stays.
///
/// Measured on an Intel Xeon (family 6 model 167 under KVM, AVX-512, 16
/// lanes), [`SparseRows::read`] of 128 MNIST half rows (392 pixels),
/// medians of 400 batches, three rounds. Sixteen at a time, then 64 with a
/// branch per sixteen, then as here: rows drawn at random and prefetched
/// (as in training) 7.4-7.7, 5.7-5.9 and 4.6-4.7 µs; the same rows over
/// and over (every branch learnt) 6.2-6.3, 3.1-3.5 and 3.6-3.7 µs. The
/// workshop network's epoch, each step against the one before (alternated
/// runs): 0.969x and 0.962x on 2 threads (faster in 9 of 10 runs each),
/// 0.968x and 0.962x on 1 (8 of 8 each). On a Zen 5 (AMD EPYC family 26
/// model 2, AVX-512, 16 lanes), a build without this against one with it
/// (2026-12-05, 8 alternated rounds, epochs 2-4 with validation): 1.055x
/// the epoch on 1 thread, 1.036x on 2. Not measured on Zen 4, which has
/// the instructions too.
///
/// # Safety
/// 64 bytes readable at `bytes`, 64 entries writable at `col` and `val`.
#[inline(always)]
#[allow(unused_variables)]
unsafe fn pack_nonzero_64(bytes: *const u8, q0: u32, scale: f32, col: *mut u32, val: *mut f32) -> usize {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vbmi2"
    ))]
    {
        use std::arch::x86_64::*;
        // SAFETY: the caller's; the intrinsics need AVX-512F, BW and VBMI2, which this build has
        unsafe {
            let block = _mm512_loadu_si512(bytes.cast());
            let keep = _mm512_test_epi8_mask(block, block);
            if keep == 0 {
                return 0;
            }
            let count = keep.count_ones() as usize;
            let values = _mm512_maskz_compress_epi8(keep, block);
            let places = _mm512_maskz_compress_epi8(keep, _mm512_loadu_si512(PLACES_64.as_ptr().cast()));
            let (scale, q0) = (_mm512_set1_ps(scale), _mm512_set1_epi32(q0 as i32));
            let store = |i: usize, v: __m128i, p: __m128i| {
                let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)), scale);
                let p = _mm512_add_epi32(_mm512_cvtepu8_epi32(p), q0);
                _mm512_storeu_ps(val.add(16 * i), v);
                _mm512_storeu_si512(col.add(16 * i).cast(), p);
            };
            store(0, _mm512_castsi512_si128(values), _mm512_castsi512_si128(places));
            store(
                1,
                _mm512_extracti32x4_epi32::<1>(values),
                _mm512_extracti32x4_epi32::<1>(places),
            );
            if count > 32 {
                store(
                    2,
                    _mm512_extracti32x4_epi32::<2>(values),
                    _mm512_extracti32x4_epi32::<2>(places),
                );
            }
            if count > 48 {
                store(
                    3,
                    _mm512_extracti32x4_epi32::<3>(values),
                    _mm512_extracti32x4_epi32::<3>(places),
                );
            }
            count
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vbmi2"
    )))]
    {
        unreachable!("pack_nonzero_64: AVX-512 VBMI2 builds only")
    }
}

/// Whether [`read_u8`] packs 32 bytes at a time with [`pack_nonzero_32`] (AVX2 without AVX-512).
const PACK_32: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    not(target_feature = "avx512f")
));

/// [`pack_nonzero_bytes`] for 32 bytes at once (AVX2): one compare finds
/// the zero bytes of all 32 (and returns at once if all are), then each
/// eight are packed through the table, their columns counted on in a
/// register. Eight bytes at a time, each eight were compared and their
/// mask and columns made on their own, after a test of the 32 as four
/// `u64`s. Measured on Zen 3 (AMD EPYC family 25 model 1, AVX2, 8 lanes),
/// [`SparseRows::read`] of 128 MNIST half rows (392 pixels), the median
/// of 5 rounds of 400 batches' medians, the two builds alternated four
/// times (the host changing speed between runs): 10.9-17.5 µs against
/// 19.0-25.4 with the rows in cache, 15.0-23.1 against 24.6-31.1 for rows
/// drawn at random from the training set; faster in each pair.
///
/// # Safety
/// 32 bytes readable at `bytes`, 32 entries writable at `col` and `val`.
#[inline(always)]
#[allow(unused_variables)]
unsafe fn pack_nonzero_32(bytes: *const u8, q0: u32, scale: f32, col: *mut u32, val: *mut f32) -> usize {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    ))]
    {
        use std::arch::x86_64::*;
        // SAFETY: the caller's; the intrinsics need AVX2, which this build has
        unsafe {
            let block = _mm256_loadu_si256(bytes.cast());
            let zero = _mm256_cmpeq_epi8(block, _mm256_setzero_si256());
            let keep = !(_mm256_movemask_epi8(zero) as u32);
            if keep == 0 {
                return 0;
            }
            let scale = _mm256_set1_ps(scale);
            let mut cols = _mm256_set1_epi32(q0 as i32);
            let mut n = 0;
            for c in 0..4 {
                let k = (keep >> (8 * c)) & 0xff;
                let ints = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.add(8 * c).cast()));
                let vals = _mm256_mul_ps(_mm256_cvtepi32_ps(ints), scale);
                let order = _mm256_loadu_si256(simd::COMPRESS_8[k as usize].as_ptr().cast());
                _mm256_storeu_ps(val.add(n), _mm256_permutevar8x32_ps(vals, order));
                _mm256_storeu_si256(col.add(n).cast(), _mm256_add_epi32(order, cols));
                cols = _mm256_add_epi32(cols, _mm256_set1_epi32(8));
                n += k.count_ones() as usize;
            }
            n
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    )))]
    {
        unreachable!("pack_nonzero_32: AVX2 builds only")
    }
}

/// Writes the non-zero bytes among the [`PACK_BYTES`] at `bytes` (sixteen
/// with AVX-512, eight with AVX2), but the first `skip`, to the front of
/// `val` (as `scale · b`, rounded once) and their columns (`q0 +` their
/// place) to the front of `col`; returns how many. All the slots may be
/// written. AVX-512 moves the
/// kept lanes with `vcompressps`/`vpcompressd` into a register, then stores
/// it whole (the forms that store to memory are slow on Zen 4); AVX2 with a
/// table of `vpermps` permutations. On Zen 5 (16 lanes) the sixteen-byte
/// version read a 128x392 slice of MNIST in 7.1-9.1 µs against 8.7-10.3
/// for the eight-byte one.
///
/// # Safety
/// [`PACK_BYTES`] bytes readable at `bytes`, as many slots writable at
/// `col` and `val`.
#[inline(always)]
#[allow(unused_variables)]
unsafe fn pack_nonzero_bytes(
    bytes: *const u8,
    (q0, skip): (u32, u32),
    scale: f32,
    col: *mut u32,
    val: *mut f32,
) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        use std::arch::x86_64::*;
        // SAFETY: the caller's; the intrinsics need AVX-512F, which this build has
        unsafe {
            let ints = _mm512_cvtepu8_epi32(_mm_loadu_si128(bytes.cast()));
            let keep = _mm512_test_epi32_mask(ints, ints) & (0xffffu16 << skip);
            let vals = _mm512_mul_ps(_mm512_cvtepi32_ps(ints), _mm512_set1_ps(scale));
            let cols = _mm512_add_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(q0 as i32),
            );
            _mm512_storeu_ps(val, _mm512_maskz_compress_ps(keep, vals));
            _mm512_storeu_si512(col.cast(), _mm512_maskz_compress_epi32(keep, cols));
            keep.count_ones() as usize
        }
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(target_feature = "avx512f")
    ))]
    {
        use std::arch::x86_64::*;
        // SAFETY: the caller's; the intrinsics need AVX2, which this build has;
        // the table row is eight readable u32s
        unsafe {
            let ints = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.cast()));
            let zero = _mm256_cmpeq_epi32(ints, _mm256_setzero_si256());
            let keep = !(_mm256_movemask_ps(_mm256_castsi256_ps(zero)) as u32) & (0xff << skip) & 0xff;
            let vals = _mm256_mul_ps(_mm256_cvtepi32_ps(ints), _mm256_set1_ps(scale));
            // the table row lists the kept lanes in order: their columns are q0 + it
            let order = _mm256_loadu_si256(simd::COMPRESS_8[keep as usize].as_ptr().cast());
            _mm256_storeu_ps(val, _mm256_permutevar8x32_ps(vals, order));
            _mm256_storeu_si256(col.cast(), _mm256_add_epi32(order, _mm256_set1_epi32(q0 as i32)));
            keep.count_ones() as usize
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    {
        unreachable!("pack_nonzero_bytes: no vector version in this build")
    }
}

/// The non-zero floats of `x` (NaN counts), a vector compare at a time.
fn read_f32(x: &[f32], scale: f32, col: &mut [u32], val: &mut [f32]) -> usize {
    let mut n = 0;
    for q0 in (0..x.len()).step_by(LANES) {
        let len = LANES.min(x.len() - q0);
        // SAFETY: q0 + len <= x.len()
        let v = unsafe { simd::load_partial(x.as_ptr().add(q0), len) };
        let mut nonzero = !v.simd_eq(V::ZERO).to_bitmask() & ((1u32 << len) - 1);
        while nonzero != 0 {
            let c = q0 + nonzero.trailing_zeros() as usize;
            nonzero &= nonzero - 1;
            col[n] = c as u32;
            val[n] = scale * x[c];
            n += 1;
        }
    }
    n
}

/// Any other element type, one at a time.
fn read_any<T: Element>(x: &[T], scale: f32, col: &mut [u32], val: &mut [f32]) -> usize {
    let mut n = 0;
    for (c, &e) in x.iter().enumerate() {
        let f = e.to_f32();
        if f != 0.0 {
            col[n] = c as u32;
            val[n] = scale * f;
            n += 1;
        }
    }
    n
}

/// Whether every number of `x` is finite (the condition for the products
/// here to have the GEMM's bits, see the module).
pub fn all_finite(x: &[f32]) -> bool {
    let mut bad = V::ZERO;
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        // SAFETY: a whole vector of `c`
        let v = unsafe { simd::load(c.as_ptr()) };
        // x·0 is ±0 for a finite x, NaN for ±inf and NaN (whose bits, or-ed
        // in, keep an exponent of all ones)
        bad |= v * V::ZERO;
    }
    bad.simd_eq(V::ZERO).to_bitmask() == (1u32 << LANES) - 1 && tail.iter().all(|x| x.is_finite())
}

/// `product_row::<NV>(args)` for the `NV` of a runtime count of vectors.
macro_rules! seq_vectors {
    ($count:expr, $args:expr, $($nv:literal)*) => {{
        let (row, a, r, w, cols) = $args;
        match $count {
            $($nv => product_row::<$nv>(row, a, r, w, cols),)*
            _ => unreachable!("a count of vectors not listed"),
        }
    }};
}

/// `z = a·w`: `z: (a.rows(), n)` overwritten, `w: (a.cols(), n)` with its
/// rows contiguous; each row summed over its entries in column order from
/// zero (one depth block of the GEMM). Returns the multiply-adds done.
pub fn sparse_rows_product(z: MatMut, a: &SparseRows, w: MatRef) -> usize {
    sparse_rows_product_hinting(z, a, w, (0, &mut |_, _| {}))
}

/// [`sparse_rows_product`], calling `hint(p, pieces)` for `p` in
/// `0..pieces`, in order, spread through the product: the caller's hints
/// (the next step's rows into L2) go out a few at a time between groups of
/// rows, not all at once before. The same sums.
///
/// Hinting a step's 128 half rows at once (about 900 cache lines) held the
/// thread for about 1.3 µs (`train --profile` on the Zen 5 below): the
/// requests in flight are limited, and the thread waits for room. Between groups of rows, the product's own work
/// covers them. Measured on a Zen 5 (AMD EPYC family 26 model 2, AVX-512,
/// 16 lanes), the workshop network's epoch (with validation), the two
/// builds alternated, 8 rounds each: hints spread by fours of rows against
/// all at once, 0.939x on 2 threads and 0.944x on 1 (faster in 8 of 8
/// each).
pub fn sparse_rows_product_hinting(
    mut z: MatMut,
    a: &SparseRows,
    w: MatRef,
    (pieces, hint): (usize, &mut dyn FnMut(usize, usize)),
) -> usize {
    let (m, n) = (a.rows(), w.cols());
    assert!(
        (z.rows(), z.cols()) == (m, n) && w.rows() == a.cols(),
        "sparse_rows_product: shapes"
    );
    assert!(
        w.col_stride() == 1 || n <= 1,
        "sparse_rows_product: W's rows must be contiguous"
    );
    let mut hints = Hints::new(pieces, hint);
    let mut hint_until = |done: usize, of: usize| hints.until(done, of);
    if m == 0 || n == 0 {
        hint_until(1, 1);
        return 0;
    }
    let (ldw, ldz) = (w.row_stride(), z.row_stride());
    let w = (w.data(), ldw);
    let z = z.data();
    let (vectors, full) = (n.div_ceil(LANES), n % LANES == 0);
    if vectors > 2 {
        hint_until(1, 1);
        wide_product(z, ldz, a, w, n);
        return a.nonzeros() * n;
    }
    // rows in order of entry count: four at a time, the rest one by one
    let mut i = 0;
    {
        while i + GROUP <= m {
            hint_until(i, m);
            let rows: [usize; GROUP] = std::array::from_fn(|g| a.row_by_count(i + g));
            match (vectors, full) {
                (1, true) => product_group::<GROUP, 1, true>(z, ldz, a, rows, w, n),
                (1, false) => product_group::<GROUP, 1, false>(z, ldz, a, rows, w, n),
                (_, true) => product_group::<GROUP, 2, true>(z, ldz, a, rows, w, n),
                (_, false) => product_group::<GROUP, 2, false>(z, ldz, a, rows, w, n),
            }
            i += GROUP;
        }
    }
    for i in i..m {
        let r = a.row_by_count(i);
        let row = &mut z[r * ldz..r * ldz + n];
        seq_vectors!(vectors, (row, a, r, w, (0, n)), 1 2);
    }
    hint_until(1, 1);
    a.nonzeros() * n
}

/// The next step's rows hinted a piece at a time as a product goes: `hint(p,
/// pieces)` for each of `pieces` pieces, once, in order.
pub(crate) struct Hints<'h> {
    pieces: usize,
    hinted: usize,
    hint: &'h mut dyn FnMut(usize, usize),
}

impl<'h> Hints<'h> {
    pub(crate) fn new(pieces: usize, hint: &'h mut dyn FnMut(usize, usize)) -> Hints<'h> {
        Hints {
            pieces,
            hinted: 0,
            hint,
        }
    }

    /// Hints the pieces `0..pieces·done/of` not hinted yet (`until(1, 1)`: all).
    pub(crate) fn until(&mut self, done: usize, of: usize) {
        while self.hinted < self.pieces && self.hinted * of <= done * self.pieces {
            (self.hint)(self.hinted, self.pieces);
            self.hinted += 1;
        }
    }
}

/// Rows the wide forward product sums at once, and vectors of columns per
/// row: as many sums as leave room in the registers for the loads (24
/// with AVX-512's 32 registers, 8 with AVX2's 16). Measured on Zen 4
/// (AMD EPYC family 25 model 17), 1 thread, one part's product (128
/// shuffled MNIST half rows times 392x512), medians of 100 batches, three
/// rounds, µs: AVX-512 (16 lanes), 1 row of 24 vectors 225-241, 2 rows of
/// 12 202-207, 4 rows of 6 220-221; the AVX2 build (8 lanes), 1 row of 8
/// vectors 259-318, 2 rows of 4 325-397, 4 rows of 2 517-631.
const WIDE_ROWS: usize = if crate::simd::VECTOR_REGISTERS >= 32 { 2 } else { 1 };
const WIDE_VECTORS: usize = if crate::simd::VECTOR_REGISTERS > 8 {
    (crate::simd::VECTOR_REGISTERS - 8) / WIDE_ROWS
} else {
    4
};

/// [`sparse_rows_product`] for outputs wider than two vectors: column
/// chunks of [`WIDE_VECTORS`] vectors, and in each, the rows
/// [`WIDE_ROWS`] at a time (their sums in flight at once, each chunk of
/// `W` read by all rows before the next).
fn wide_product(z: &mut [f32], ldz: usize, a: &SparseRows, (w, ldw): (&[f32], usize), n: usize) {
    const G: usize = WIDE_ROWS;
    const NV: usize = WIDE_VECTORS;
    let m = a.rows();
    let step = NV * LANES;
    for j0 in (0..n).step_by(step) {
        let cols = step.min(n - j0);
        let (wj, zj) = ((&w[j0..], ldw), &mut z[j0..]);
        let mut i = 0;
        while i + G <= m {
            let rows: [usize; G] = std::array::from_fn(|g| a.row_by_count(i + g));
            if cols == step {
                product_group::<G, NV, true>(zj, ldz, a, rows, wj, cols);
            } else {
                match cols.div_ceil(LANES) {
                    1 => product_group::<G, 1, false>(zj, ldz, a, rows, wj, cols),
                    2 => product_group::<G, 2, false>(zj, ldz, a, rows, wj, cols),
                    3 => product_group::<G, 3, false>(zj, ldz, a, rows, wj, cols),
                    4 => product_group::<G, 4, false>(zj, ldz, a, rows, wj, cols),
                    5 => product_group::<G, 5, false>(zj, ldz, a, rows, wj, cols),
                    6 => product_group::<G, 6, false>(zj, ldz, a, rows, wj, cols),
                    7 => product_group::<G, 7, false>(zj, ldz, a, rows, wj, cols),
                    8 => product_group::<G, 8, false>(zj, ldz, a, rows, wj, cols),
                    9 => product_group::<G, 9, false>(zj, ldz, a, rows, wj, cols),
                    10 => product_group::<G, 10, false>(zj, ldz, a, rows, wj, cols),
                    11 => product_group::<G, 11, false>(zj, ldz, a, rows, wj, cols),
                    v if v == NV => product_group::<G, NV, false>(zj, ldz, a, rows, wj, cols),
                    _ => unreachable!("at most WIDE_VECTORS vectors"),
                }
            }
            i += G;
        }
        for i in i..m {
            let r = a.row_by_count(i);
            let row = &mut z[r * ldz..r * ldz + n];
            seq_vectors!(cols.div_ceil(LANES), (row, a, r, (w, ldw), (j0, cols)), 1 2 3 4 5 6 7 8 9 10 11 12);
        }
    }
}

/// Loads vector `v` of `NV`, the last one holding `last` floats (all
/// `LANES` when `FULL`).
///
/// # Safety
/// `p + v·LANES` and the floats after it up to the chunk's end are readable.
#[inline(always)]
pub(crate) unsafe fn load_vector<const NV: usize, const FULL: bool>(
    p: *const f32,
    v: usize,
    last: usize,
) -> V {
    // SAFETY: the caller's
    unsafe {
        if FULL || v + 1 < NV {
            simd::load(p.add(v * LANES))
        } else {
            simd::load_partial(p.add(v * LANES), last)
        }
    }
}

/// Stores vector `v` of `NV`, as [`load_vector`] reads it (a partial last
/// vector with plain stores: AVX2's masked store is microcoded on Zen 3,
/// and the weight gradient stores one per entry).
///
/// # Safety
/// As [`load_vector`], writable.
#[inline(always)]
pub(crate) unsafe fn store_vector<const NV: usize, const FULL: bool>(
    p: *mut f32,
    v: usize,
    last: usize,
    x: V,
) {
    // SAFETY: the caller's
    unsafe {
        if FULL || v + 1 < NV {
            simd::store(p.add(v * LANES), x)
        } else {
            simd::store_partial_plain(p.add(v * LANES), x, last)
        }
    }
}

/// Checks that rows `0..rows` of a matrix with row stride `ld`, columns
/// `j0..j0 + cols`, lie inside `data`.
fn check_rows(data: &[f32], rows: usize, ld: usize, (j0, cols): (usize, usize)) {
    assert!(
        rows == 0 || (rows - 1) * ld + j0 + cols <= data.len(),
        "sparse rows: a matrix shorter than its shape"
    );
}

/// Rows `rs` (`G` of them) of `z` (all `n <= NV·LANES` columns), their sums interleaved
/// entry by entry while every row has one.
fn product_group<const G: usize, const NV: usize, const FULL: bool>(
    z: &mut [f32],
    ldz: usize,
    a: &SparseRows,
    rs: [usize; G],
    (w, ldw): (&[f32], usize),
    n: usize,
) {
    let last = n - (NV - 1) * LANES;
    check_rows(w, a.cols(), ldw, (0, n));
    check_rows(z, a.rows(), ldz, (0, n));
    let rows: [(&[u32], &[f32]); G] = std::array::from_fn(|g| a.row(rs[g]));
    let mut acc = [[V::ZERO; NV]; G];
    let common = rows.iter().map(|(c, _)| c.len()).min().unwrap_or(0);
    let w = w.as_ptr();
    // the entries all four rows have, as slices of exactly that length
    let cols: [&[u32]; G] = std::array::from_fn(|g| &rows[g].0[..common]);
    let vals: [&[f32]; G] = std::array::from_fn(|g| &rows[g].1[..common]);
    // SAFETY (every load of W below): a column kept by `SparseRows::read`
    // is below `a.cols()`, and rows 0..a.cols() of W, columns 0..n, are
    // inside `w` (checked above).
    for e in 0..common {
        for g in 0..G {
            let x = V::splat(vals[g][e]);
            let p = unsafe { w.add(cols[g][e] as usize * ldw) };
            for (v, acc) in acc[g].iter_mut().enumerate() {
                *acc = simd::mul_add(x, unsafe { load_vector::<NV, FULL>(p, v, last) }, *acc);
            }
        }
    }
    for (g, (col, val)) in rows.iter().enumerate() {
        for (&c, &x) in col[common..].iter().zip(&val[common..]) {
            let x = V::splat(x);
            let p = unsafe { w.add(c as usize * ldw) };
            for (v, acc) in acc[g].iter_mut().enumerate() {
                *acc = simd::mul_add(x, unsafe { load_vector::<NV, FULL>(p, v, last) }, *acc);
            }
        }
        let out = z[rs[g] * ldz..].as_mut_ptr();
        for (v, &x) in acc[g].iter().enumerate() {
            // SAFETY: columns 0..n of row rs[g] < a.rows() of z (checked above)
            unsafe { store_vector::<NV, FULL>(out, v, last, x) };
        }
    }
}

/// Columns `j0..j0 + cols` (`cols <= NV·LANES`) of row `r` of `z`.
#[inline(always)]
fn product_row<const NV: usize>(
    row: &mut [f32],
    a: &SparseRows,
    r: usize,
    (w, ldw): (&[f32], usize),
    (j0, cols): (usize, usize),
) {
    let last = cols - (NV - 1) * LANES;
    check_rows(w, a.cols(), ldw, (j0, cols));
    let (col, val) = a.row(r);
    let mut acc = [V::ZERO; NV];
    for (&c, &x) in col.iter().zip(val) {
        let x = V::splat(x);
        // SAFETY: row c < a.cols() of W, columns j0..j0 + cols (checked above)
        let p = unsafe { w.as_ptr().add(c as usize * ldw + j0) };
        for (v, acc) in acc.iter_mut().enumerate() {
            // SAFETY: as above
            *acc = simd::mul_add(x, unsafe { load_vector::<NV, false>(p, v, last) }, *acc);
        }
    }
    let out = &mut row[j0..j0 + cols];
    for (v, &x) in acc.iter().enumerate() {
        // SAFETY: columns j0..j0 + cols of the row
        unsafe { store_vector::<NV, false>(out.as_mut_ptr(), v, last, x) };
    }
}

/// `dw = a[r0..r1]ᵀ·dz`: `dw: (a.cols(), n)` overwritten, `dz: (r1 - r0, n)`
/// with its rows contiguous; each element summed over the rows in order
/// from zero (one depth block of the GEMM: the caller keeps `r1 - r0`
/// within one). Returns the multiply-adds done.
pub fn sparse_rows_weight_gradient(
    mut dw: MatMut,
    a: &SparseRows,
    (r0, r1): (usize, usize),
    dz: MatRef,
) -> usize {
    let n = dz.cols();
    assert!(
        r0 <= r1 && r1 <= a.rows() && dz.rows() == r1 - r0 && (dw.rows(), dw.cols()) == (a.cols(), n),
        "sparse_rows_weight_gradient: shapes"
    );
    assert!(
        dz.col_stride() == 1 || n <= 1,
        "sparse_rows_weight_gradient: dz's rows must be contiguous"
    );
    let ldw = dw.row_stride();
    let dw = dw.data();
    zero_rows(dw, (a.cols(), n), ldw);
    let dz = (dz.data(), dz.row_stride());
    let mut done = 0;
    // four vectors of columns at a time (two when they are all)
    let step = if n <= 2 * LANES { 2 * LANES } else { 4 * LANES };
    for j0 in (0..n).step_by(step) {
        let cols = step.min(n - j0);
        let args = (&mut *dw, ldw, a, (r0, r1), dz, (j0, cols));
        done += match (cols.div_ceil(LANES), cols % LANES == 0) {
            (1, true) => gradient_chunk::<1, true>(args),
            (1, false) => gradient_chunk::<1, false>(args),
            (2, true) => gradient_chunk::<2, true>(args),
            (2, false) => gradient_chunk::<2, false>(args),
            (3, true) => gradient_chunk::<3, true>(args),
            (3, false) => gradient_chunk::<3, false>(args),
            (_, true) => gradient_chunk::<4, true>(args),
            (_, false) => gradient_chunk::<4, false>(args),
        };
    }
    done
}

/// Zeroes columns `0..n` of rows `0..rows` of `m`, rows `ld` apart: one
/// fill when they are contiguous, not one call per row (392 of 64 bytes
/// for a part of the workshop network: 3% of its epoch under `perf`).
pub(crate) fn zero_rows(m: &mut [f32], (rows, n): (usize, usize), ld: usize) {
    if ld == n {
        m[..rows * n].fill(0.0);
    } else {
        for p in 0..rows {
            m[p * ld..p * ld + n].fill(0.0);
        }
    }
}

/// Columns `j0..j0 + cols` (`cols <= NV·LANES`) of `dw`: for each row of
/// `a` in order, its `dz` row added into the rows of `dw` its entries select.
#[allow(clippy::type_complexity)]
fn gradient_chunk<const NV: usize, const FULL: bool>(
    (dw, ldw, a, (r0, r1), (dz, ldz), (j0, cols)): (
        &mut [f32],
        usize,
        &SparseRows,
        (usize, usize),
        (&[f32], usize),
        (usize, usize),
    ),
) -> usize {
    let last = cols - (NV - 1) * LANES;
    check_rows(dz, r1 - r0, ldz, (j0, cols));
    check_rows(dw, a.cols(), ldw, (j0, cols));
    let out = dw.as_mut_ptr();
    let mut done = 0;
    for r in r0..r1 {
        // SAFETY: row r - r0 < r1 - r0 of dz, columns j0..j0 + cols (checked above)
        let p = unsafe { dz.as_ptr().add((r - r0) * ldz + j0) };
        // SAFETY: as above
        let d: [V; NV] = std::array::from_fn(|v| unsafe { load_vector::<NV, FULL>(p, v, last) });
        let (col, val) = a.row(r);
        done += col.len() * cols;
        for (&c, &x) in col.iter().zip(val) {
            let x = V::splat(x);
            // SAFETY: row c < a.cols() of dw, columns j0..j0 + cols (checked above)
            let q = unsafe { out.add(c as usize * ldw + j0) };
            for (v, &d) in d.iter().enumerate() {
                // SAFETY: as above
                unsafe {
                    let s = load_vector::<NV, FULL>(q, v, last);
                    store_vector::<NV, FULL>(q, v, last, simd::mul_add(x, d, s));
                }
            }
        }
    }
    done
}

/// The narrowest output (`n`) whose weight gradient is summed by groups of
/// columns ([`grouped_weight_gradient`]) rather than entry by entry
/// ([`sparse_rows_weight_gradient`]). Measured on Zen 4 (AVX-512, 16
/// lanes, 2 threads, `train --profile`, 2 epochs, the first layer's
/// weight gradient in thread-s, two runs each, entry by entry against
/// grouped): 784-64-64-10 0.062-0.080 against 0.141-0.145 (grouping costs
/// more than a single chunk of 64 columns saves), 784-128-128-10
/// 0.185-0.204 against 0.185-0.188, 784-256-256-10 0.338-0.362 against
/// 0.277-0.336; 784-512-512-10 0.79-0.82 against 0.58-0.60.
pub const GROUPED_MIN_N: usize = 256;

/// Adjacent columns of `x` (pixels of one image row) whose weight gradient
/// [`grouped_weight_gradient`] sums at once.
pub const COLUMN_GROUP: usize = 4;

/// Entries left unused after each group's in [`ColumnGroups`]: with room
/// for 128 rows a group's values would start 2 KiB apart and its rows 512
/// bytes apart, so that the entries one row adds to its groups (a few
/// dozen) would fall in a few of L1's sets; four more put them 33 lines
/// apart (8.25 for the rows), spread over all the sets. Measured with
/// [`ColumnGroups::group`] (Intel Xeon, AVX-512, 16 lanes, 128 MNIST half
/// rows drawn at random, medians of 400): 18.6-18.9 µs against 19.0-19.9.
const GROUP_PAD: usize = 4;

/// A [`SparseRows`]' entries regrouped by column, [`COLUMN_GROUP`] adjacent
/// columns at a time: for each group, the rows that have a non-zero in any
/// of its columns, in order, each with the group's values (zero for a
/// column that is zero in that row). Neighbouring pixels are mostly zero
/// or not together, so a group holds few more entries than its columns'
/// non-zeros; in exchange the weight gradient loads each row of `dz` once
/// per group, not once per column. Sized once, reused: grouping allocates
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct ColumnGroups {
    /// Rows of the last [`group`](Self::group), and the most it can hold.
    rows: usize,
    capacity: usize,
    cols: usize,
    /// Distance between the first entries of two groups: the capacity and
    /// [`GROUP_PAD`] more.
    stride: usize,
    /// Entries of each group: group `g`'s are `g·stride..g·stride + len[g]`.
    len: Vec<u32>,
    /// Row of each entry.
    row: Vec<u32>,
    /// [`COLUMN_GROUP`] values per entry.
    val: Vec<f32>,
    /// Per group, its entries in the rows the weight gradient sums.
    range: Vec<(u32, u32)>,
    /// Scratch for [`group`](Self::group), one row at a time: the row's
    /// groups in order, the entry each starts, and each entry's place
    /// among the row's groups.
    row_groups: Vec<u32>,
    row_entry: Vec<usize>,
    entry_group: Vec<u32>,
}

impl ColumnGroups {
    /// Room for up to `rows` rows of `cols` columns.
    pub fn with_capacity(rows: usize, cols: usize) -> ColumnGroups {
        let groups = cols.div_ceil(COLUMN_GROUP);
        ColumnGroups {
            rows: 0,
            capacity: rows,
            stride: rows + GROUP_PAD,
            cols,
            len: vec![0; groups],
            row: vec![0; groups * (rows + GROUP_PAD)],
            val: vec![0.0; groups * (rows + GROUP_PAD) * COLUMN_GROUP],
            range: vec![(0, 0); groups],
            row_groups: vec![0; groups],
            row_entry: vec![0; groups],
            entry_group: vec![0; cols],
        }
    }

    /// Regroups `a`'s entries (at most the capacity's rows, its columns).
    pub fn group(&mut self, a: &SparseRows) {
        assert!(
            a.rows() <= self.capacity && a.cols() == self.cols,
            "ColumnGroups: {}x{} rows for room of {}x{}",
            a.rows(),
            a.cols(),
            self.capacity,
            self.cols
        );
        const G: usize = COLUMN_GROUP;
        let stride = self.stride;
        self.rows = a.rows();
        let (lens, rows, vals) = (&mut self.len[..], &mut self.row[..], &mut self.val[..]);
        let (row_groups, row_entry) = (&mut self.row_groups[..], &mut self.row_entry[..]);
        let entry_group = &mut self.entry_group[..];
        lens.fill(0);
        // Three passes over each row, none with a branch on the data: whether
        // an entry starts a group is a coin toss for the branch predictor
        // on an image drawn at random. Measured (Intel Xeon, AVX-512, 16
        // lanes, 128 MNIST half rows, medians of 400): 18.6-18.9 µs for rows
        // drawn at random against 30.7-31.6 with a branch per entry (16.1-17.7
        // when the same rows came again and again, every branch learnt).
        for r in 0..a.rows() {
            let (col, val) = a.row(r);
            // 1. the row's groups, in order (its entries are in column order:
            //    a group's come one after the other), and each entry's place among them
            let (mut groups, mut last) = (0, usize::MAX);
            for (&c, g) in col.iter().zip(entry_group.iter_mut()) {
                let k = c as usize / G;
                groups += usize::from(k != last);
                last = k;
                row_groups[groups - 1] = k as u32;
                *g = (groups - 1) as u32;
            }
            // 2. an entry in each group (a different group each time), zeroed
            for (&k, e) in row_groups[..groups].iter().zip(row_entry.iter_mut()) {
                let k = k as usize;
                let at = k * stride + lens[k] as usize;
                lens[k] += 1;
                rows[at] = r as u32;
                vals[at * G..(at + 1) * G].fill(0.0);
                *e = at;
            }
            // 3. each value into its group's entry
            for ((&c, &x), &g) in col.iter().zip(val).zip(entry_group.iter()) {
                vals[row_entry[g as usize] * G + c as usize % G] = x;
            }
        }
    }

    /// Group `k`'s rows and values ([`COLUMN_GROUP`] per row).
    fn entries(&self, k: usize) -> (&[u32], &[f32]) {
        let (s, len) = (k * self.stride, self.len[k] as usize);
        (
            &self.row[s..s + len],
            &self.val[s * COLUMN_GROUP..(s + len) * COLUMN_GROUP],
        )
    }
}

/// Whether a wide layer's forward product is [`grouped_product`] (from the
/// groups its weight gradient reads anyway) rather than
/// [`sparse_rows_product`]: with 16 lanes. Measured on Zen 4 (1 thread,
/// one part's product, 128 MNIST half rows times 392x512, medians of 100
/// batches, three rounds, µs): AVX-512 (16 lanes) grouped 175-179 (plus
/// the grouping, 34-35) against 223-228 from the lists; times 392x256,
/// 68-69 against 93. The AVX2 build (8 lanes, two vectors a group: each
/// row of `z` loaded and stored for 16 multiply-adds) 372-393 against
/// 259-273, so it keeps the lists.
pub const GROUPED_PRODUCT: bool = LANES >= 16;

/// `z = a·w` from the grouped entries: the same sums as
/// [`sparse_rows_product`] (each row's over its columns in order, from
/// zero; a group's zeros leave a sum as it is when `w` is finite), with
/// each group's four rows of `w` held in registers over the group's rows
/// of `z`, which are loaded and stored once per group. `z: (a.rows, n)`
/// overwritten, `w: (a.cols, n)` with its rows contiguous. Returns the
/// multiply-adds done (with the groups' zeros).
pub fn grouped_product(mut z: MatMut, a: &ColumnGroups, w: MatRef) -> usize {
    let n = w.cols();
    assert!(
        (z.rows(), z.cols()) == (a.rows, n) && w.rows() == a.cols,
        "grouped_product: shapes"
    );
    assert!(
        w.col_stride() == 1 || n <= 1,
        "grouped_product: W's rows must be contiguous"
    );
    let (ldz, ldw) = (z.row_stride(), w.row_stride());
    let (z, w) = (z.data(), w.data());
    for r in 0..a.rows {
        z[r * ldz..r * ldz + n].fill(0.0);
    }
    let step = GROUPED_VECTORS * LANES;
    let mut done = 0;
    for j0 in (0..n).step_by(step) {
        let cols = step.min(n - j0);
        let args = (&mut *z, ldz, a, (w, ldw), (j0, cols));
        done += match (cols.div_ceil(LANES), cols == step) {
            (_, true) => grouped_product_chunk::<GROUPED_VECTORS, true>(args),
            (1, _) => grouped_product_chunk::<1, false>(args),
            (2, _) => grouped_product_chunk::<2, false>(args),
            (3, _) => grouped_product_chunk::<3, false>(args),
            (_, _) => grouped_product_chunk::<4, false>(args),
        };
    }
    done
}

/// Columns `j0..j0 + cols` (`cols <= NV·LANES`) of `z`, adding each group's terms.
#[allow(clippy::type_complexity)]
fn grouped_product_chunk<const NV: usize, const FULL: bool>(
    (z, ldz, a, (w, ldw), (j0, cols)): (&mut [f32], usize, &ColumnGroups, (&[f32], usize), (usize, usize)),
) -> usize {
    const G: usize = COLUMN_GROUP;
    let last = cols - (NV - 1) * LANES;
    check_rows(z, a.rows, ldz, (j0, cols));
    check_rows(w, a.cols, ldw, (j0, cols));
    let mut done = 0;
    for k in 0..a.len.len() {
        let (rows, vals) = a.entries(k);
        if rows.is_empty() {
            continue;
        }
        let c0 = k * G;
        let width = G.min(a.cols - c0);
        // the group's rows of W (zero past the last column of a)
        let wv: [[V; NV]; G] = std::array::from_fn(|i| {
            std::array::from_fn(|v| {
                if i < width {
                    // SAFETY: row c0 + i < a.cols of w, columns j0..j0 + cols (checked above)
                    unsafe { load_vector::<NV, FULL>(w.as_ptr().add((c0 + i) * ldw + j0), v, last) }
                } else {
                    V::ZERO
                }
            })
        });
        done += rows.len() * width * cols;
        for (&r, x) in rows.iter().zip(vals.chunks_exact(G)) {
            let x: &[f32; G] = x.try_into().expect("chunks of G");
            // SAFETY: r < a.rows: row r of z, columns j0..j0 + cols (checked above)
            let p = unsafe { z.as_mut_ptr().add(r as usize * ldz + j0) };
            // SAFETY: as above
            let mut acc: [V; NV] = std::array::from_fn(|v| unsafe { load_vector::<NV, FULL>(p, v, last) });
            for i in 0..G {
                let x = V::splat(x[i]);
                for v in 0..NV {
                    acc[v] = simd::mul_add(x, wv[i][v], acc[v]);
                }
            }
            for (v, &s) in acc.iter().enumerate() {
                // SAFETY: as above
                unsafe { store_vector::<NV, FULL>(p, v, last, s) };
            }
        }
    }
    done
}

/// Vectors of columns of `dz` that [`grouped_weight_gradient`] holds at
/// once, for each of the group's columns: four with AVX-512's 32 registers
/// (16 sums, 4 rows of `dz`), two with AVX2's 16, one with SSE2's 8.
const GROUPED_VECTORS: usize = if crate::simd::VECTOR_REGISTERS >= 32 {
    4
} else if crate::simd::VECTOR_REGISTERS >= 16 {
    2
} else {
    1
};

/// `dw = a[r0..r1]ᵀ·dz` from the grouped entries: the same sums as
/// [`sparse_rows_weight_gradient`] (each element over the rows in order,
/// from zero; the zeros a group adds leave a sum as it is when `dz` is
/// finite), for wide outputs: each group's sums stay in registers over its
/// rows instead of being loaded and stored once per entry. `dw: (a.cols,
/// n)` overwritten, `dz: (r1 - r0, n)` with its rows contiguous. Returns the
/// multiply-adds done (with the groups' zeros).
pub fn grouped_weight_gradient(dw: MatMut, a: &mut ColumnGroups, rows: (usize, usize), dz: MatRef) -> usize {
    let groups = a.len.len();
    grouped_weight_gradient_groups(dw, a, (0, groups), rows, dz)
}

/// [`grouped_weight_gradient`] for the groups `g0..g1` only: the rows
/// `g0·G..min(g1·G, a.cols)` of `a`'s `dw` (`G` = [`COLUMN_GROUP`]), written
/// to `dw` from its row 0, the same numbers as in the whole product. So
/// that the first layer's update can follow its gradient a block of rows
/// at a time, while the block is in cache.
pub fn grouped_weight_gradient_groups(
    mut dw: MatMut,
    a: &mut ColumnGroups,
    (g0, g1): (usize, usize),
    (r0, r1): (usize, usize),
    dz: MatRef,
) -> usize {
    let n = dz.cols();
    let block_rows = (g1 * COLUMN_GROUP).min(a.cols).saturating_sub(g0 * COLUMN_GROUP);
    assert!(
        g0 <= g1 && g1 <= a.len.len() && (dw.rows(), dw.cols()) == (block_rows, n),
        "grouped_weight_gradient: groups {g0}..{g1} of {} for a {}x{} dw",
        a.len.len(),
        dw.rows(),
        dw.cols()
    );
    assert!(
        r0 <= r1 && r1 <= a.rows && dz.rows() == r1 - r0,
        "grouped_weight_gradient: shapes"
    );
    assert!(
        dz.col_stride() == 1 || n <= 1,
        "grouped_weight_gradient: dz's rows must be contiguous"
    );
    let ldw = dw.row_stride();
    let (dw, dz) = (dw.data(), (dz.data(), dz.row_stride()));
    // each group's entries in rows r0..r1 (its rows are in order)
    let mut range = std::mem::take(&mut a.range);
    for (k, range) in range.iter_mut().enumerate().take(g1).skip(g0) {
        let (rows, _) = a.entries(k);
        let lo = rows.partition_point(|&r| (r as usize) < r0);
        let hi = lo + rows[lo..].partition_point(|&r| (r as usize) < r1);
        *range = (lo as u32, hi as u32);
    }
    let step = GROUPED_VECTORS * LANES;
    let mut done = 0;
    for j0 in (0..n).step_by(step) {
        let cols = step.min(n - j0);
        let args = (&mut *dw, ldw, &*a, (g0, &range[g0..g1]), (r0, r1), dz, (j0, cols));
        done += match (cols.div_ceil(LANES), cols == step) {
            (_, true) => grouped_chunk::<GROUPED_VECTORS, true>(args),
            (1, _) => grouped_chunk::<1, false>(args),
            (2, _) => grouped_chunk::<2, false>(args),
            (3, _) => grouped_chunk::<3, false>(args),
            (_, _) => grouped_chunk::<4, false>(args),
        };
    }
    a.range = range;
    done
}

/// Columns `j0..j0 + cols` (`cols <= NV·LANES`) of `dw`: for each group of
/// columns from `g0` (`range`: their entries in rows `r0..r1`; group `g0`'s
/// rows of `dw` from its row 0), its rows' `dz` times its values, summed
/// in registers.
#[allow(clippy::type_complexity)]
fn grouped_chunk<const NV: usize, const FULL: bool>(
    (dw, ldw, a, (g0, range), (r0, r1), (dz, ldz), (j0, cols)): (
        &mut [f32],
        usize,
        &ColumnGroups,
        (usize, &[(u32, u32)]),
        (usize, usize),
        (&[f32], usize),
        (usize, usize),
    ),
) -> usize {
    const G: usize = COLUMN_GROUP;
    let last = cols - (NV - 1) * LANES;
    let block_rows = ((g0 + range.len()) * G).min(a.cols) - g0 * G;
    check_rows(dz, r1 - r0, ldz, (j0, cols));
    check_rows(dw, block_rows, ldw, (j0, cols));
    let mut done = 0;
    for (k, &(lo, hi)) in (g0..).zip(range) {
        let (lo, hi) = (lo as usize, hi as usize);
        let (rows, vals) = a.entries(k);
        let (rows, vals) = (&rows[lo..hi], &vals[lo * G..hi * G]);
        let mut acc = [[V::ZERO; NV]; G];
        for (&r, x) in rows.iter().zip(vals.chunks_exact(G)) {
            let x: &[f32; G] = x.try_into().expect("chunks of G");
            // SAFETY: r0 <= r < r1: row r - r0 of dz, columns j0..j0 + cols (checked above)
            let p = unsafe { dz.as_ptr().add((r as usize - r0) * ldz + j0) };
            // SAFETY: as above
            let d: [V; NV] = std::array::from_fn(|v| unsafe { load_vector::<NV, FULL>(p, v, last) });
            for i in 0..G {
                let x = V::splat(x[i]);
                for v in 0..NV {
                    acc[i][v] = simd::mul_add(x, d[v], acc[i][v]);
                }
            }
        }
        let (c0, width) = ((k - g0) * G, G.min(a.cols - k * G));
        done += rows.len() * width * cols;
        for (i, acc) in acc.iter().enumerate().take(width) {
            for (v, &x) in acc.iter().enumerate() {
                // SAFETY: row c0 + i < block_rows of dw, columns j0..j0 + cols (checked above)
                unsafe { store_vector::<NV, FULL>(dw.as_mut_ptr().add((c0 + i) * ldw + j0), v, last, x) };
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{gemm, Epilogue, Parallelism};
    use crate::matrix::test_number as value;
    use crate::matrix::Matrix;

    /// Pixels of every density: empty rows, full rows, and between.
    fn pixels(m: usize, k: usize, salt: usize) -> Vec<u8> {
        (0..m * k)
            .map(|i| {
                let (r, c) = (i / k, i % k);
                let keep = match r % 4 {
                    0 => false,
                    1 => true,
                    _ => (c * 7 + r) % (2 + r % 5) == 0,
                };
                if keep {
                    ((i * 37 + salt) % 255 + 1) as u8
                } else {
                    0
                }
            })
            .collect()
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// `a·b` by the GEMM, one thread: the reference.
    fn product(a: MatRef, b: MatRef) -> Matrix {
        let mut c = Matrix::zeros(a.rows(), b.cols());
        gemm(
            1.0,
            a,
            b,
            0.0,
            c.view_mut(),
            Epilogue::None,
            Parallelism::Sequential,
        );
        c
    }

    /// The second grouping's pixels: the even columns of most rows zeroed
    /// (where the first grouping left values).
    fn regrouped(px: &mut [u8], k: usize) {
        for (i, p) in px.iter_mut().enumerate() {
            if !(i / k).is_multiple_of(3) && (i % k).is_multiple_of(2) {
                *p = 0;
            }
        }
    }

    /// Multiply-adds of the grouped kernels over `rows`: per group of
    /// columns, its rows with a non-zero in any of them, times the width and `n`.
    fn grouped_work(px: &[u8], k: usize, rows: std::ops::Range<usize>, n: usize) -> usize {
        let mut work = 0;
        for c0 in (0..k).step_by(COLUMN_GROUP) {
            let c1 = (c0 + COLUMN_GROUP).min(k);
            let with = rows
                .clone()
                .filter(|&r| px[r * k + c0..r * k + c1].iter().any(|&p| p != 0));
            work += with.count() * (c1 - c0) * n;
        }
        work
    }

    /// The forward product has the GEMM's bits on the converted rows: for
    /// widths within one vector, two, one row chunk and more; rows in whole
    /// groups of four and not; columns read from an offset.
    #[test]
    fn the_forward_product_has_the_gemm_bits() {
        for (m, k, n) in [
            (1, 1, 1),
            (5, 9, 3),
            (8, 40, 8),
            (13, 392, 16),
            (7, 33, 10),
            (9, 64, 17),
            (6, 50, 100),
            (11, 392, 512),
            (6, 40, 200),
            (5, 30, 3 * LANES + 1),
            // a last chunk of WIDE_VECTORS vectors, the last one partial
            (7, 25, 2 * WIDE_VECTORS * LANES - 3),
        ] {
            let k0 = 3;
            let px = pixels(m, k + k0, n);
            let scale = 1.0 / 255.0;
            let mut a = SparseRows::with_capacity(m, k);
            a.read(m, |r| &px[r * (k + k0)..(r + 1) * (k + k0)], k0, scale);
            let dense = Matrix::from_fn(m, k, |r, c| scale * px[r * (k + k0) + k0 + c] as f32);
            let w = Matrix::from_fn(k, n, |p, j| value(p * n + j, 5));
            let want = product(dense.view(), w.view());
            let mut got = Matrix::from_fn(m, n, |_, _| f32::NAN);
            let done = sparse_rows_product(got.view_mut(), &a, w.view());
            assert_eq!(bits(got.as_slice()), bits(want.as_slice()), "{m}x{n}x{k}");
            let nz = dense.as_slice().iter().filter(|&&x| x != 0.0).count();
            assert_eq!((done, a.nonzeros()), (nz * n, nz), "{m}x{n}x{k}");
            // the rows written out are the operand the GEMM read
            let mut out = vec![f32::NAN; m * k];
            a.scatter(&mut out);
            assert_eq!(bits(&out), bits(dense.as_slice()));
        }
    }

    /// The hinting product calls each piece once, in order, whatever the
    /// shape (no rows, a group and a rest, a wide output, more pieces than
    /// groups, none), with the plain product's bits.
    #[test]
    fn the_hinting_product_hints_each_piece_once_in_order_with_the_same_bits() {
        for (m, k, n, pieces) in [
            (128, 392, 16, 32),
            (0, 20, 16, 5),
            (9, 40, 10, 3),
            (6, 50, 100, 7),
            (13, 30, 16, 40),
            (12, 30, 16, 0),
        ] {
            let px = pixels(m, k, n);
            let mut a = SparseRows::with_capacity(m, k);
            a.read(m, |r| &px[r * k..(r + 1) * k], 0, 1.0 / 255.0);
            let w = Matrix::from_fn(k, n, |p, j| value(p * n + j, 5));
            let mut want = Matrix::from_fn(m, n, |_, _| f32::NAN);
            sparse_rows_product(want.view_mut(), &a, w.view());
            let mut got = Matrix::from_fn(m, n, |_, _| f32::NAN);
            let mut calls = Vec::new();
            let hint = &mut |p: usize, of: usize| calls.push((p, of));
            sparse_rows_product_hinting(got.view_mut(), &a, w.view(), (pieces, hint));
            assert_eq!(bits(got.as_slice()), bits(want.as_slice()), "{m}x{n}x{k}");
            let all: Vec<(usize, usize)> = (0..pieces).map(|p| (p, pieces)).collect();
            assert_eq!(calls, all, "{m}x{n}x{k}, {pieces} pieces");
        }
    }

    /// The weight gradient has the GEMM's bits (`xᵀ·dz` over a range of rows).
    #[test]
    fn the_weight_gradient_has_the_gemm_bits() {
        for (m, k, n) in [
            (1, 1, 1),
            (6, 9, 3),
            (64, 392, 16),
            (7, 33, 10),
            (9, 20, 40),
            (5, 12, 70),
        ] {
            let px = pixels(m + 4, k, n);
            let mut a = SparseRows::with_capacity(m + 4, k);
            a.read(m + 4, |r| &px[r * k..(r + 1) * k], 0, 0.5);
            let (r0, r1) = (2, m + 2);
            let x = Matrix::from_fn(m, k, |r, c| 0.5 * px[(r + r0) * k + c] as f32);
            let dz = Matrix::from_fn(m, n, |r, j| value(r * n + j, 6));
            let want = product(x.view().t(), dz.view());
            let mut got = Matrix::from_fn(k, n, |_, _| f32::NAN);
            sparse_rows_weight_gradient(got.view_mut(), &a, (r0, r1), dz.view());
            assert_eq!(bits(got.as_slice()), bits(want.as_slice()), "{m}x{n}x{k}");
        }
    }

    /// The grouped weight gradient has the GEMM's bits, for ranges of rows
    /// (shards) of one grouping and after regrouping other rows (values
    /// left from the last grouping must not leak into the new groups), and
    /// counts the multiply-adds of its groups' rows; so does each block of
    /// groups computed alone.
    #[test]
    fn the_grouped_weight_gradient_has_the_gemm_bits() {
        for (m, k, n) in [
            (1, 1, 1),
            (6, 9, 70),
            (64, 392, 512),
            (7, 33, 100),
            (20, 13, 300),
            (9, 20, 2 * LANES),
        ] {
            let mut groups = ColumnGroups::with_capacity(m + 4, k);
            for second in [false, true] {
                // the second grouping: other values, and the even columns of
                // most rows zeroed (where the first grouping left values)
                let salt = n + usize::from(second);
                let mut px = pixels(m + 4, k, salt);
                if second {
                    regrouped(&mut px, k);
                }
                let mut a = SparseRows::with_capacity(m + 4, k);
                a.read(m + 4, |r| &px[r * k..(r + 1) * k], 0, 0.5);
                groups.group(&a);
                for (r0, r1) in [(0, m + 4), (2, m + 2), (m / 2, m)] {
                    let x = Matrix::from_fn(r1 - r0, k, |r, c| 0.5 * px[(r + r0) * k + c] as f32);
                    let dz = Matrix::from_fn(r1 - r0, n, |r, j| value(r * n + j + salt, 6));
                    let want = product(x.view().t(), dz.view());
                    let mut got = Matrix::from_fn(k, n, |_, _| f32::NAN);
                    let done = grouped_weight_gradient(got.view_mut(), &mut groups, (r0, r1), dz.view());
                    let at = format!("{m}x{n}x{k}, rows {r0}..{r1}, salt {salt}");
                    assert_eq!(bits(got.as_slice()), bits(want.as_slice()), "{at}");
                    assert_eq!(done, grouped_work(&px, k, r0..r1, n), "{at}");
                    // the same rows of dw, a block of groups at a time (the last group may be short),
                    // after a product of no rows (each block must find its groups' rows itself)
                    let mut none = Matrix::zeros(k, n);
                    let rows0 = (r0, r0);
                    let empty = Matrix::zeros(0, n);
                    assert_eq!(
                        grouped_weight_gradient(none.view_mut(), &mut groups, rows0, empty.view()),
                        0
                    );
                    let groups_k = k.div_ceil(COLUMN_GROUP);
                    for per_block in [1, 3, groups_k] {
                        let mut sum = 0;
                        for g0 in (0..groups_k).step_by(per_block) {
                            let g1 = (g0 + per_block).min(groups_k);
                            let (i0, i1) = (g0 * COLUMN_GROUP, (g1 * COLUMN_GROUP).min(k));
                            let mut block = Matrix::from_fn(i1 - i0, n, |_, _| f32::NAN);
                            let rows = (r0, r1);
                            sum += grouped_weight_gradient_groups(
                                block.view_mut(),
                                &mut groups,
                                (g0, g1),
                                rows,
                                dz.view(),
                            );
                            let want_rows = &want.as_slice()[i0 * n..i1 * n];
                            assert_eq!(bits(block.as_slice()), bits(want_rows), "{at}, groups {g0}..{g1}");
                        }
                        assert_eq!(sum, done, "{at}, blocks of {per_block} groups");
                    }
                }
            }
        }
    }

    /// The grouped forward product has the GEMM's bits on the converted
    /// rows, overwrites `z` (NaN before), counts the multiply-adds of its
    /// groups' rows, and reads a regrouping of other rows right.
    #[test]
    fn the_grouped_product_has_the_gemm_bits() {
        for (m, k, n) in [
            (1, 1, 1),
            (6, 9, 70),
            (13, 392, 512),
            (7, 33, 100),
            (5, 13, 300),
            (9, 20, 2 * LANES),
        ] {
            let mut groups = ColumnGroups::with_capacity(m, k);
            for second in [false, true] {
                let mut px = pixels(m, k, n + usize::from(second));
                if second {
                    regrouped(&mut px, k);
                }
                let mut a = SparseRows::with_capacity(m, k);
                a.read(m, |r| &px[r * k..(r + 1) * k], 0, 0.25);
                groups.group(&a);
                let dense = Matrix::from_fn(m, k, |r, c| 0.25 * px[r * k + c] as f32);
                let w = Matrix::from_fn(k, n, |p, j| value(p * n + j + usize::from(second), 5));
                let want = product(dense.view(), w.view());
                let mut got = Matrix::from_fn(m, n, |_, _| f32::NAN);
                let done = grouped_product(got.view_mut(), &groups, w.view());
                let at = format!("{m}x{n}x{k}, second grouping {second}");
                assert_eq!(bits(got.as_slice()), bits(want.as_slice()), "{at}");
                assert_eq!(done, grouped_work(&px, k, 0..m, n), "{at}");
            }
        }
    }

    /// Floats: zeros and negative zeros dropped, NaN kept (as the GEMM adds
    /// it), the scale applied once.
    #[test]
    fn floats_keep_their_non_zeros_and_nan() {
        let x = [0.0, -0.0, 1.5, f32::NAN, 0.0, -2.0, 0.0, 0.0, 0.0, 3.0, 0.0];
        let mut a = SparseRows::with_capacity(1, x.len());
        a.read(1, |_| &x[..], 0, 2.0);
        let (col, val) = a.row(0);
        assert_eq!(col, [2, 3, 5, 9]);
        assert_eq!(val[0], 3.0);
        assert!(val[1].is_nan());
        assert_eq!((val[2], val[3]), (-4.0, 6.0));
        assert!((a.density() - 4.0 / 11.0).abs() < 1e-6);
    }

    /// Bytes: the vector readers (32 bytes at a time with AVX2, 16 with
    /// AVX-512, 64 at a time with VBMI2, then 8 or 16 more, then the overlapping last ones) keep
    /// exactly the entries, in the order and with the bits, of the
    /// one-at-a-time reader: on every length up to 100 bytes and a half
    /// row of MNIST, from several offsets, with zero blocks of 32 bytes,
    /// zero runs of 8 inside blocks that are not, lone non-zeros at every
    /// place, and full rows.
    #[test]
    fn bytes_keep_the_entries_of_the_reader_one_at_a_time() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let patterns: [&dyn Fn(usize, usize) -> bool; 6] = [
            &|_, _| true,
            &|_, _| false,
            &|c, salt| c == salt % 100,
            // non-zeros in the second and fourth eights of each 32 only
            &|c, _| matches!(c % 32, 8..=15 | 24..=31),
            &|c, salt| (c * 7 + salt) % 5 == 0 && c % 64 < 40,
            // 21-22 of each 64 (the second sixteen of a 64-byte block)
            &|c, _| c % 3 == 0,
        ];
        let lengths = (0..=100).chain([392, 784]);
        for (len, salt) in lengths.zip(0..) {
            for (pi, pattern) in patterns.iter().enumerate() {
                for k0 in [0, 1, 5] {
                    let px: Vec<u8> = (0..k0 + len)
                        .map(|c| {
                            if pattern(c, salt) || next() % 9 == 0 {
                                (next() % 255 + 1) as u8
                            } else {
                                0
                            }
                        })
                        .collect();
                    let scale = 1.0 / 255.0;
                    let mut a = SparseRows::with_capacity(2, len);
                    a.read(2, |_| &px[..], k0, scale);
                    let (mut col, mut val) = (vec![0u32; len], vec![0f32; len]);
                    let n = read_any(&px[k0..], scale, &mut col, &mut val);
                    for r in 0..2 {
                        let (got_col, got_val) = a.row(r);
                        assert_eq!(
                            got_col,
                            &col[..n],
                            "length {len}, pattern {pi}, offset {k0}, row {r}"
                        );
                        assert_eq!(
                            bits(got_val),
                            bits(&val[..n]),
                            "length {len}, pattern {pi}, offset {k0}"
                        );
                    }
                }
            }
        }
    }

    /// The rows in order of their count of entries, ties in row order,
    /// whether counted (a 128-row batch of 392 columns) or sorted (few rows
    /// of many columns): the order of sorting `(count, row)`.
    #[test]
    fn rows_are_ordered_by_count_then_row() {
        for (m, k) in [(128, 392), (7, 28), (5, 392), (1, 1), (64, 256), (3, 13)] {
            let px = pixels(m, k, m + k);
            let mut a = SparseRows::with_capacity(m, k);
            a.read(m, |r| &px[r * k..(r + 1) * k], 0, 1.0);
            let mut want: Vec<(usize, usize)> = (0..m).map(|r| (a.row(r).0.len(), r)).collect();
            want.sort();
            let got: Vec<(usize, usize)> = (0..m)
                .map(|i| (a.row(a.row_by_count(i)).0.len(), a.row_by_count(i)))
                .collect();
            assert_eq!(got, want, "{m}x{k}");
        }
    }

    /// A row past those read is refused with its number, not read from
    /// the buffers' older rows (they hold room for more).
    #[test]
    #[should_panic(expected = "SparseRows: row 2 of 2")]
    fn a_row_past_the_last_read_panics() {
        let x = [1.0f32, 0.0, 2.0];
        let mut a = SparseRows::with_capacity(4, x.len());
        a.read(2, |_| &x[..], 0, 1.0);
        assert_eq!(a.row(1).0, [0, 2]);
        let _ = a.row(2);
    }

    #[test]
    fn all_finite_finds_infinities_and_nan_anywhere() {
        for len in [0, 1, 7, LANES, 3 * LANES + 5] {
            let ok: Vec<f32> = (0..len).map(|i| value(i, 7)).collect();
            assert!(all_finite(&ok), "{len}");
            for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                for at in 0..len {
                    let mut x = ok.clone();
                    x[at] = bad;
                    assert!(!all_finite(&x), "{bad} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn nonzero_bytes_counts_as_one_at_a_time_does() {
        // all non-zero (a whole 64-byte block counts 64), none, and mixed,
        // on lengths around the 64-byte blocks and past 255
        for len in (0..=130).chain([255, 256, 257, 392, 784, 1000]) {
            for salt in 0..4usize {
                let x: Vec<u8> = (0..len)
                    .map(|i| match salt {
                        0 => 255,
                        1 => 0,
                        _ => ((i * 37 + salt) % 5 == 0) as u8 * (i % 251 + 1) as u8,
                    })
                    .collect();
                let naive = x.iter().filter(|&&b| b != 0).count();
                assert_eq!(nonzero_bytes(&x), naive, "length {len}, salt {salt}");
            }
        }
    }
}
