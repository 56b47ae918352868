//! A narrow first layer's mostly-zero rows held by groups of eight: per
//! group, the union of its rows' non-zero columns and, per such column,
//! the eight rows' values (zeros included).
//!
//! The lists of [`SparseRows`](super::sparse_rows::SparseRows) give each
//! non-zero a multiply-add of its own: the forward product loads a row of
//! `W` per non-zero, the weight gradient loads and stores a row of `dW` per
//! non-zero. MNIST's digits share their strokes' pixels: the union of
//! eight rows' non-zero columns is about 0.30 of their non-zeros (2,771
//! union columns against 9,114 non-zeros in 128 half rows). By groups, the
//! forward product loads each `W` row once for eight rows and adds it into
//! eight sums (eight independent chains); the weight gradient loads and
//! stores each `dW` row once per group, adding the eight rows into it in
//! row order.
//!
//! Measured on a Zen 5 (AMD EPYC family 26 model 2, AVX-512, 16 lanes,
//! 2026-12-05), the workshop network against the lists (`train --json`,
//! the builds alternated, epochs 2-5 with validation): 1 thread 0.956 and
//! 0.934 (faster in 8 of 10 and 8 of 8 rounds); 2 threads 0.945 with the
//! host in its slow state (11 of 12), level in its fast state (0.996, 8 of
//! 14); `cargo bench --bench epoch` alternated three times, 2 threads
//! 0.0106-0.0107 s against 0.0108-0.0124. Under `perf` (1 thread, 30
//! epochs), samples in the read, the product and the gradient: 3,580,
//! 3,711 and 4,258 against 4,401, 4,012 and 5,438. A harness on 128 MNIST
//! half rows (lists cycled through L3) had shown more: the product 3.43-3.51
//! µs against 4.56-4.77, the gradient 3.97-4.07 against 7.3-7.6, the read
//! 4.2-5.4 against 3.2-3.7 (docs/PERFORMANCE.md, "A Zen 5, a fifth
//! session").
//!
//! **The same bits.** Each sum runs over the same columns in the same
//! order as from the lists, with `x = 0` terms between them. A sum starts
//! at `+0`, and a sum that is not `-0` stays itself when `±0` is added;
//! it becomes `-0` only by adding `-0` to `-0`, so it never is. So the zero
//! terms change nothing, as the GEMM's own multiplications by zero do not
//! (the products here need a finite `W`, or a finite `dz`, as the lists'
//! do).

use crate::gemm::sparse_rows::{as_u8, load_vector, store_vector, zero_rows, Hints};
use crate::matrix::{Element, MatMut, MatRef};
use crate::simd::{self, LANES, V};

/// Rows per group.
pub const GROUP_ROWS: usize = 8;

/// Whether training's parts hold a narrow first layer's rows by groups
/// (`nn::split`): where [`RowGroups::read`] takes eight rows' bytes 64 at a
/// time (AVX-512 with VBMI and VBMI2); elsewhere the lists stay.
pub const ROW_GROUPS: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vbmi",
    target_feature = "avx512vbmi2"
));

/// The widest output (`n`) the group products take: two vectors, sixteen
/// sums of eight rows in registers.
pub const ROW_GROUPS_MAX_N: usize = 2 * LANES;

/// Entries written past a group's last one (the read stores whole vectors).
const SLACK: usize = 64;

/// Rows of `cols` columns held by groups of [`GROUP_ROWS`]: group `g`
/// (rows `8g..8g + 8`, the last one possibly shorter) has the entries
/// `start[g]..start[g + 1]`, each a column (ascending within the group)
/// and the group's eight values in it (rows past the last are zero).
#[derive(Clone, Debug, Default)]
pub struct RowGroups {
    rows: usize,
    cols: usize,
    /// Non-zero values read (for the density).
    nonzeros: usize,
    start: Vec<usize>,
    col: Vec<u32>,
    val: Vec<f32>,
}

impl RowGroups {
    /// Room for up to `rows` rows of `cols` columns.
    pub fn with_capacity(rows: usize, cols: usize) -> RowGroups {
        let entries = rows.div_ceil(GROUP_ROWS) * cols + SLACK;
        RowGroups {
            rows: 0,
            cols,
            nonzeros: 0,
            start: vec![0; rows.div_ceil(GROUP_ROWS) + 1],
            col: vec![0; entries],
            val: vec![0.0; entries * GROUP_ROWS],
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

    /// Groups of the last read.
    pub fn groups(&self) -> usize {
        self.rows.div_ceil(GROUP_ROWS)
    }

    /// Entries (union columns) of all groups.
    pub fn entries(&self) -> usize {
        self.start[self.groups()]
    }

    /// The share of the values read that are non-zero (0 for no rows), as
    /// [`SparseRows::density`](super::sparse_rows::SparseRows::density).
    pub fn density(&self) -> f32 {
        let all = self.rows * self.cols;
        if all == 0 {
            0.0
        } else {
            self.nonzeros as f32 / all as f32
        }
    }

    /// Group `g`'s columns and values (eight per column).
    fn group(&self, g: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.start[g], self.start[g + 1]);
        (&self.col[s..e], &self.val[s * GROUP_ROWS..e * GROUP_ROWS])
    }

    /// Reads `row(r)[k0..k0 + cols]` of `rows` rows and keeps `scale · x`
    /// by groups (a value is kept if it is not zero, NaN included, as
    /// [`SparseRows::read`](super::sparse_rows::SparseRows::read) keeps it;
    /// each value rounded once, as there).
    ///
    /// Panics if `rows` exceeds the capacity or a row is shorter than
    /// `k0 + cols`.
    pub fn read<'a, T: Element>(
        &mut self,
        rows: usize,
        row: impl Fn(usize) -> &'a [T],
        k0: usize,
        scale: f32,
    ) {
        assert!(
            rows.div_ceil(GROUP_ROWS) < self.start.len(),
            "RowGroups: {rows} rows, room for {}",
            (self.start.len() - 1) * GROUP_ROWS
        );
        let cols = self.cols;
        let slice = |r: usize| &row(r)[k0..k0 + cols];
        let (mut n, mut nonzeros) = (0, 0);
        let groups = rows.div_ceil(GROUP_ROWS);
        for g in 0..groups {
            self.start[g] = n;
            let r0 = g * GROUP_ROWS;
            if g + 1 < groups {
                // the next group's rows, scattered over the data set
                for r in r0 + GROUP_ROWS..(r0 + 2 * GROUP_ROWS).min(rows) {
                    simd::prefetch(slice(r));
                }
            }
            let whole = r0 + GROUP_ROWS <= rows;
            let bytes: Option<[&[u8]; GROUP_ROWS]> = if whole && READ_BYTES {
                let rows: [Option<&[u8]>; GROUP_ROWS] = std::array::from_fn(|k| as_u8(slice(r0 + k)));
                rows.iter()
                    .all(Option::is_some)
                    .then(|| rows.map(|r| r.unwrap_or_default()))
            } else {
                None
            };
            let (added, nz) = match bytes {
                // SAFETY: eight rows of `cols` bytes; room for `cols + SLACK`
                // entries at `n` (each group at most `cols`, SLACK after the last)
                Some(rows) => unsafe {
                    read_group_bytes(
                        rows,
                        scale,
                        self.col[n..].as_mut_ptr(),
                        self.val[n * GROUP_ROWS..].as_mut_ptr(),
                    )
                },
                None => {
                    // the group's rows, none past the last (nothing allocated)
                    let group: [&[T]; GROUP_ROWS] =
                        std::array::from_fn(|k| if r0 + k < rows { slice(r0 + k) } else { &[] });
                    let present = (rows - r0).min(GROUP_ROWS);
                    read_group_any(
                        &group[..present],
                        scale,
                        &mut self.col[n..],
                        &mut self.val[n * GROUP_ROWS..],
                    )
                }
            };
            n += added;
            nonzeros += nz;
        }
        self.start[groups] = n;
        self.rows = rows;
        self.nonzeros = nonzeros;
    }

    /// Writes the rows in full into `dst: (rows, cols)` (zeros included).
    pub fn scatter(&self, dst: &mut [f32]) {
        let cols = self.cols;
        dst[..self.rows * cols].fill(0.0);
        for g in 0..self.groups() {
            let (col, val) = self.group(g);
            for (&c, v) in col.iter().zip(val.chunks_exact(GROUP_ROWS)) {
                for (k, &x) in v.iter().enumerate().take(self.rows - g * GROUP_ROWS) {
                    dst[(g * GROUP_ROWS + k) * cols + c as usize] = x;
                }
            }
        }
    }
}

/// One group, any element type, column by column: its entries written at
/// the front of `col` and `val`; returns (entries, non-zero values).
fn read_group_any<T: Element>(rows: &[&[T]], scale: f32, col: &mut [u32], val: &mut [f32]) -> (usize, usize) {
    let cols = rows.first().map_or(0, |r| r.len());
    let (mut n, mut nonzeros) = (0, 0);
    for c in 0..cols {
        let kept = rows.iter().filter(|r| r[c].to_f32() != 0.0).count();
        if kept == 0 {
            continue;
        }
        nonzeros += kept;
        col[n] = c as u32;
        let v = &mut val[n * GROUP_ROWS..(n + 1) * GROUP_ROWS];
        for (k, v) in v.iter_mut().enumerate() {
            *v = rows.get(k).map_or(0.0, |r| scale * r[c].to_f32());
        }
        n += 1;
    }
    (n, nonzeros)
}

/// Whether [`read_group_bytes`] has its vector version in this build.
const READ_BYTES: bool = ROW_GROUPS;

/// One whole group of `u8` rows, 64 columns at a time (AVX-512 with VBMI
/// and VBMI2): the eight rows' non-zero masks or-ed into the union's, the
/// union's places and each row's bytes compressed to the front of a
/// register, the 8 x 64 bytes transposed (three levels of two-source
/// permutes: bytes, then pairs, then fours) into eight values per union
/// column, converted and scaled sixteen at a time; returns (entries,
/// non-zero values). Writes up to [`SLACK`] entries past the last.
///
/// A slice's short last block (8 bytes of a 392-pixel half row) is read
/// as the slice's last 64 bytes, its new bytes then moved down to the
/// front (one `vpermb`), not by a masked load from the block's start: the
/// bytes a masked load leaves out are not read, but on an Intel Xeon the
/// cache lines they lie in are still fetched. For a half row those lines
/// are the next row's first (the bottom half, a row not in the batch and
/// hinted by nobody) or the other half's (the top half, hinted into the
/// other core's L2). Measured on an Intel Xeon (family 6 model 167 under
/// KVM, AVX-512, 16 lanes, 2026-12-06), the workshop network, one part's
/// read of 128 half rows a step (medians over 2,500 steps, the two ways
/// in one binary): the bottom halves 8.05 µs masked against 4.88 this way
/// on 1 thread, 7.85 against 4.99 on 2; the top halves 4.48 against 4.50
/// and 5.47 against 4.47. The step (`train --json`, alternated): in one
/// binary 0.931 on 2 threads (faster in 10 of 10 rounds), 0.958 on 1 (6
/// of 6); built, against the build before, 0.958-0.964 on 2 threads and
/// 0.964-0.983 on 1 under 1, 4 and 8 codegen units (docs/PERFORMANCE.md,
/// "An Intel Xeon, a sixth session"). The same values either way: the
/// bytes kept are the same.
///
/// # Safety
/// Every row has the same length; room for that many entries plus
/// [`SLACK`] at `col` and `val` (eight values an entry).
#[allow(unused_variables)]
unsafe fn read_group_bytes(
    rows: [&[u8]; GROUP_ROWS],
    scale: f32,
    col: *mut u32,
    val: *mut f32,
) -> (usize, usize) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vbmi",
        target_feature = "avx512vbmi2"
    ))]
    {
        use std::arch::x86_64::*;
        /// Lane `i` of a two-source permute: element `i / 2` of the first
        /// source (from `from`) for even `i`, of the second for odd.
        const fn interleave<const L: usize>(from: usize) -> [u32; L] {
            let mut idx = [0; L];
            let mut i = 0;
            while i < L {
                idx[i] = (from + i / 2 + L * (i % 2)) as u32;
                i += 1;
            }
            idx
        }
        const B_LO: [u32; 64] = interleave::<64>(0);
        const B_HI: [u32; 64] = interleave::<64>(32);
        const W_LO: [u32; 32] = interleave::<32>(0);
        const W_HI: [u32; 32] = interleave::<32>(16);
        const D_LO: [u32; 16] = interleave::<16>(0);
        const D_HI: [u32; 16] = interleave::<16>(8);
        // SAFETY: the caller's; the intrinsics need AVX-512F, BW, VBMI and
        // VBMI2, which this build has; every load lies within a row (a
        // masked one reads only the bytes its mask keeps, the last 64 bytes
        // of a row of 64 or more are the row's)
        unsafe {
            let bytes = |idx: &[u32; 64]| {
                let b: [u8; 64] = std::array::from_fn(|i| idx[i] as u8);
                _mm512_loadu_si512(b.as_ptr().cast())
            };
            let words = |idx: &[u32; 32]| {
                let w: [u16; 32] = std::array::from_fn(|i| idx[i] as u16);
                _mm512_loadu_si512(w.as_ptr().cast())
            };
            let places = bytes(&std::array::from_fn(|i| i as u32));
            let (b_lo, b_hi) = (bytes(&B_LO), bytes(&B_HI));
            let (w_lo, w_hi) = (words(&W_LO), words(&W_HI));
            let (d_lo, d_hi) = (
                _mm512_loadu_si512(D_LO.as_ptr().cast()),
                _mm512_loadu_si512(D_HI.as_ptr().cast()),
            );
            let scale = _mm512_set1_ps(scale);
            let cols = rows[0].len();
            let (mut n, mut nonzeros) = (0usize, 0usize);
            for q0 in (0..cols).step_by(64) {
                let len = 64.min(cols - q0);
                let mask: u64 = if len == 64 { !0 } else { (1u64 << len) - 1 };
                let v: [__m512i; GROUP_ROWS] = if len == 64 || cols < 64 {
                    std::array::from_fn(|k| _mm512_maskz_loadu_epi8(mask, rows[k].as_ptr().add(q0).cast()))
                } else {
                    // a short last block: the slice's last 64 bytes, its
                    // `len` new ones moved down to the front (see above)
                    let down = _mm512_add_epi8(places, _mm512_set1_epi8((64 - len) as i8));
                    std::array::from_fn(|k| {
                        let last = _mm512_loadu_si512(rows[k].as_ptr().add(cols - 64).cast());
                        _mm512_maskz_permutexvar_epi8(mask, down, last)
                    })
                };
                let mut union = 0u64;
                for v in &v {
                    let kept = _mm512_test_epi8_mask(*v, *v);
                    nonzeros += kept.count_ones() as usize;
                    union |= kept;
                }
                if union == 0 {
                    continue;
                }
                let count = union.count_ones() as usize;
                // the union's columns, sixteen at a time
                let at = _mm512_maskz_compress_epi8(union, places);
                let base = _mm512_set1_epi32(q0 as i32);
                for i in 0..count.div_ceil(16) {
                    let p = match i {
                        0 => _mm512_castsi512_si128(at),
                        1 => _mm512_extracti32x4_epi32::<1>(at),
                        2 => _mm512_extracti32x4_epi32::<2>(at),
                        _ => _mm512_extracti32x4_epi32::<3>(at),
                    };
                    _mm512_storeu_si512(
                        col.add(n + 16 * i).cast(),
                        _mm512_add_epi32(_mm512_cvtepu8_epi32(p), base),
                    );
                }
                // each row's values at the union's places, then transposed
                let c: [__m512i; GROUP_ROWS] =
                    std::array::from_fn(|k| _mm512_maskz_compress_epi8(union, v[k]));
                for (half, b_idx) in [(0, b_lo), (32, b_hi)] {
                    if half >= count {
                        break;
                    }
                    // rows 2p and 2p + 1 byte by byte: union columns half..half + 32
                    let pairs: [__m512i; 4] =
                        std::array::from_fn(|p| _mm512_permutex2var_epi8(c[2 * p], b_idx, c[2 * p + 1]));
                    for (quarter, w_idx) in [(0, w_lo), (16, w_hi)] {
                        if half + quarter >= count {
                            break;
                        }
                        // rows 0-3 and 4-7, four bytes a column: 16 columns
                        let fours = [
                            _mm512_permutex2var_epi16(pairs[0], w_idx, pairs[1]),
                            _mm512_permutex2var_epi16(pairs[2], w_idx, pairs[3]),
                        ];
                        for (eighth, d_idx) in [(0, d_lo), (8, d_hi)] {
                            let j = half + quarter + eighth;
                            if j >= count {
                                break;
                            }
                            // eight bytes a column, rows in order: 8 columns
                            let e = _mm512_permutex2var_epi32(fours[0], d_idx, fours[1]);
                            let quarters = [
                                _mm512_castsi512_si128(e),
                                _mm512_extracti32x4_epi32::<1>(e),
                                _mm512_extracti32x4_epi32::<2>(e),
                                _mm512_extracti32x4_epi32::<3>(e),
                            ];
                            for (t, q) in quarters.into_iter().enumerate() {
                                let x = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q)), scale);
                                _mm512_storeu_ps(val.add((n + j + 2 * t) * GROUP_ROWS), x);
                            }
                        }
                    }
                }
                n += count;
            }
            (n, nonzeros)
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vbmi",
        target_feature = "avx512vbmi2"
    )))]
    {
        unreachable!("read_group_bytes: AVX-512 VBMI2 builds only")
    }
}

/// `z = a·w`: `z: (a.rows(), n)` overwritten, `w: (a.cols(), n)` with its
/// rows contiguous, `n <= ROW_GROUPS_MAX_N`; each sum over its row's
/// columns in order from zero (the lists' bits). `hint(p, pieces)` is
/// called for pieces `0..pieces` in order as the groups progress (the next
/// step's rows brought in meanwhile). Returns the multiply-adds done.
pub fn row_groups_product_hinting(
    mut z: MatMut,
    a: &RowGroups,
    w: MatRef,
    (pieces, hint): (usize, &mut dyn FnMut(usize, usize)),
) -> usize {
    let (m, n) = (a.rows(), w.cols());
    assert!(
        (z.rows(), z.cols()) == (m, n) && w.rows() == a.cols() && n <= ROW_GROUPS_MAX_N,
        "row_groups_product: shapes"
    );
    assert!(
        w.col_stride() == 1 || n <= 1,
        "row_groups_product: W's rows must be contiguous"
    );
    let (ldw, ldz) = (w.row_stride(), z.row_stride());
    assert!(
        a.cols() == 0 || (a.cols() - 1) * ldw + n <= w.data().len(),
        "row_groups_product: W shorter than its shape"
    );
    assert!(
        m == 0 || (m - 1) * ldz + n <= z.data().len(),
        "row_groups_product: z shorter than its shape"
    );
    let (w, z) = (w.data(), z.data());
    let mut hints = Hints::new(pieces, hint);
    if n == 0 {
        hints.until(1, 1);
        return 0;
    }
    let groups = a.groups();
    for g in 0..groups {
        hints.until(g, groups);
        let rows = (m - g * GROUP_ROWS).min(GROUP_ROWS);
        let out = &mut z[g * GROUP_ROWS * ldz..];
        match (n.div_ceil(LANES), n.is_multiple_of(LANES)) {
            (1, true) => product_group::<1, true>(out, ldz, a, g, (w, ldw), (n, rows)),
            (1, false) => product_group::<1, false>(out, ldz, a, g, (w, ldw), (n, rows)),
            (_, true) => product_group::<2, true>(out, ldz, a, g, (w, ldw), (n, rows)),
            (_, false) => product_group::<2, false>(out, ldz, a, g, (w, ldw), (n, rows)),
        }
    }
    hints.until(1, 1);
    a.entries() * GROUP_ROWS * n
}

/// Group `g`'s `rows` rows of `z` (at the front of `z`, `ldz` apart), `n`
/// columns in `NV` vectors.
fn product_group<const NV: usize, const FULL: bool>(
    z: &mut [f32],
    ldz: usize,
    a: &RowGroups,
    g: usize,
    (w, ldw): (&[f32], usize),
    (n, rows): (usize, usize),
) {
    let last = n.saturating_sub((NV - 1) * LANES);
    let (col, val) = a.group(g);
    let mut acc = [[V::ZERO; NV]; GROUP_ROWS];
    for (&c, x) in col.iter().zip(val.chunks_exact(GROUP_ROWS)) {
        // SAFETY: a kept column is below a.cols(), and rows 0..a.cols() of
        // W, columns 0..n, lie in `w` (the caller checked)
        let p = unsafe { w.as_ptr().add(c as usize * ldw) };
        for v in 0..NV {
            // SAFETY: as above
            let wv = unsafe { load_vector::<NV, FULL>(p, v, last) };
            for (k, acc) in acc.iter_mut().enumerate() {
                acc[v] = simd::mul_add(V::splat(x[k]), wv, acc[v]);
            }
        }
    }
    for (k, acc) in acc.iter().enumerate().take(rows) {
        let out = z[k * ldz..].as_mut_ptr();
        for (v, &x) in acc.iter().enumerate() {
            // SAFETY: row g·8 + k < a.rows() of z, columns 0..n (the caller checked)
            unsafe { store_vector::<NV, FULL>(out, v, last, x) };
        }
    }
}

/// `dw = a[r0..r1]ᵀ·dz`: `dw: (a.cols(), n)` overwritten, `dz: (r1 - r0,
/// n)` with its rows contiguous, `n <= ROW_GROUPS_MAX_N`; each element
/// summed over the rows in order from zero (the lists' bits, see the
/// module: a group's rows outside `r0..r1` add `x·0`). Returns the
/// multiply-adds done.
pub fn row_groups_weight_gradient(
    mut dw: MatMut,
    a: &RowGroups,
    (r0, r1): (usize, usize),
    dz: MatRef,
) -> usize {
    let n = dz.cols();
    assert!(
        r0 <= r1
            && r1 <= a.rows()
            && dz.rows() == r1 - r0
            && (dw.rows(), dw.cols()) == (a.cols(), n)
            && n <= ROW_GROUPS_MAX_N,
        "row_groups_weight_gradient: shapes"
    );
    assert!(
        dz.col_stride() == 1 || n <= 1,
        "row_groups_weight_gradient: dz's rows must be contiguous"
    );
    let ldw = dw.row_stride();
    assert!(
        a.cols() == 0 || (a.cols() - 1) * ldw + n <= dw.data().len(),
        "row_groups_weight_gradient: dW shorter than its shape"
    );
    let ldz = dz.row_stride();
    assert!(
        r1 == r0 || (r1 - r0 - 1) * ldz + n <= dz.data().len(),
        "row_groups_weight_gradient: dz shorter than its shape"
    );
    let dw = dw.data();
    zero_rows(dw, (a.cols(), n), ldw);
    if r0 == r1 || n == 0 {
        return 0;
    }
    let dz = (dz.data(), ldz);
    let mut done = 0;
    for g in r0 / GROUP_ROWS..r1.div_ceil(GROUP_ROWS) {
        let args = (&mut *dw, ldw, a, g, (r0, r1), dz, n);
        done += match (n.div_ceil(LANES), n.is_multiple_of(LANES)) {
            (1, true) => gradient_group::<1, true>(args),
            (1, false) => gradient_group::<1, false>(args),
            (_, true) => gradient_group::<2, true>(args),
            (_, false) => gradient_group::<2, false>(args),
        };
    }
    done
}

/// Group `g`'s rows within `r0..r1` added into `dw`, column by column of
/// the group (its other rows with a zero `dz`).
#[allow(clippy::type_complexity)]
fn gradient_group<const NV: usize, const FULL: bool>(
    (dw, ldw, a, g, (r0, r1), (dz, ldz), n): (
        &mut [f32],
        usize,
        &RowGroups,
        usize,
        (usize, usize),
        (&[f32], usize),
        usize,
    ),
) -> usize {
    let last = n.saturating_sub((NV - 1) * LANES);
    let d: [[V; NV]; GROUP_ROWS] = std::array::from_fn(|k| {
        let r = g * GROUP_ROWS + k;
        std::array::from_fn(|v| {
            if (r0..r1).contains(&r) {
                // SAFETY: row r - r0 < r1 - r0 of dz, columns 0..n (the caller checked)
                unsafe { load_vector::<NV, FULL>(dz.as_ptr().add((r - r0) * ldz), v, last) }
            } else {
                V::ZERO
            }
        })
    });
    let (col, val) = a.group(g);
    let out = dw.as_mut_ptr();
    for (&c, x) in col.iter().zip(val.chunks_exact(GROUP_ROWS)) {
        // SAFETY: a kept column is below a.cols(): row c of dw, columns 0..n (the caller checked)
        let q = unsafe { out.add(c as usize * ldw) };
        for v in 0..NV {
            // SAFETY: as above
            unsafe {
                let mut s = load_vector::<NV, FULL>(q, v, last);
                for (k, d) in d.iter().enumerate() {
                    s = simd::mul_add(V::splat(x[k]), d[v], s);
                }
                store_vector::<NV, FULL>(q, v, last, s);
            }
        }
    }
    col.len() * GROUP_ROWS * n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::sparse_rows::{sparse_rows_product, sparse_rows_weight_gradient, SparseRows};
    use crate::matrix::first_bit_difference;
    use rand::{Rng, SeedableRng};

    /// `rows x cols` pixels, about a quarter non-zero (whole rows and
    /// columns of zeros among them), and the same as `f32`.
    fn pixels(rng: &mut rand::rngs::StdRng, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        let bytes: Vec<u8> = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                if r % 7 == 3 || c % 11 == 5 || rng.random_range(0..4) != 0 {
                    0
                } else {
                    rng.random_range(1..=255)
                }
            })
            .collect();
        let floats = bytes.iter().map(|&b| b as f32).collect();
        (bytes, floats)
    }

    /// The two ways of holding the same rows: lists and groups.
    fn both<T: Element>(x: &[T], rows: usize, cols: usize, scale: f32) -> (SparseRows, RowGroups) {
        let mut lists = SparseRows::with_capacity(rows, cols);
        lists.read(rows, |r| &x[r * cols..(r + 1) * cols], 0, scale);
        let mut groups = RowGroups::with_capacity(rows, cols);
        groups.read(rows, |r| &x[r * cols..(r + 1) * cols], 0, scale);
        (lists, groups)
    }

    #[test]
    fn products_by_groups_have_the_bits_of_the_lists() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(41);
        let mut checked = 0;
        // Under Miri, which runs this about 10,000 times slower, a subset
        // that keeps every kind of edge: one row, a group and a part of one,
        // a short last block alone and after a whole one, a partial vector.
        let (row_counts, col_counts, widths): (&[usize], &[usize], &[usize]) = if cfg!(miri) {
            (&[1, 13], &[1, 63, 65], &[1, LANES + 3])
        } else {
            (
                &[1, 5, 8, 13, 64, 128],
                &[1, 63, 64, 65, 200, 392],
                &[1, 7, LANES, LANES + 3, 2 * LANES],
            )
        };
        for &rows in row_counts {
            for &cols in col_counts {
                let (x, _) = pixels(&mut rng, rows, cols);
                let (lists, groups) = both(&x, rows, cols, 1.0 / 255.0);
                assert_eq!(groups.density(), lists.density(), "{rows}x{cols}");
                for &n in widths {
                    // W with its rows two floats further apart than n
                    let ldw = n + 2;
                    let w: Vec<f32> = (0..cols * ldw).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                    let w = MatRef::with_strides(&w, cols, n, ldw, 1);
                    let (mut want, mut got) = (vec![0.0; rows * n], vec![f32::NAN; rows * n]);
                    sparse_rows_product(MatMut::from_slice(&mut want, rows, n), &lists, w);
                    let mut hinted = Vec::new();
                    let hint = &mut |p, pieces| hinted.push((p, pieces));
                    row_groups_product_hinting(MatMut::from_slice(&mut got, rows, n), &groups, w, (3, hint));
                    assert_eq!(
                        first_bit_difference(&got, &want),
                        None,
                        "{rows}x{cols}x{n}: z differs from the lists'"
                    );
                    assert_eq!(
                        hinted,
                        [(0, 3), (1, 3), (2, 3)],
                        "every piece hinted once, in order"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, row_counts.len() * col_counts.len() * widths.len());
    }

    #[test]
    fn gradients_by_groups_have_the_bits_of_the_lists_on_any_rows() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(43);
        // Under Miri only the shapes with few rows (whole groups, a part of one).
        let shapes = [(128, 392), (96, 392), (13, 65), (8, 64), (3, 200)];
        let shapes = shapes.into_iter().filter(|&(rows, _)| !cfg!(miri) || rows < 64);
        for (rows, cols) in shapes {
            let (x, _) = pixels(&mut rng, rows, cols);
            let (lists, groups) = both(&x, rows, cols, 1.0 / 255.0);
            for n in [1, 10, LANES, 2 * LANES] {
                let dz: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                // whole groups, and ranges that cut groups
                for (r0, r1) in [
                    (0, rows),
                    (0, rows / 2),
                    (rows / 2, rows),
                    (rows / 3, rows - rows / 5),
                    (1, 1),
                ] {
                    let dz = MatRef::from_slice(&dz[r0 * n..r1 * n], r1 - r0, n);
                    let (mut want, mut got) = (vec![f32::NAN; cols * n], vec![f32::NAN; cols * n]);
                    sparse_rows_weight_gradient(MatMut::from_slice(&mut want, cols, n), &lists, (r0, r1), dz);
                    row_groups_weight_gradient(MatMut::from_slice(&mut got, cols, n), &groups, (r0, r1), dz);
                    assert_eq!(
                        first_bit_difference(&got, &want),
                        None,
                        "{rows}x{cols}, n {n}, rows {r0}..{r1}: dW differs from the lists'"
                    );
                }
            }
        }
    }

    #[test]
    fn a_slice_is_read_alone_whatever_lies_around_it() {
        // Rows whose bytes outside the slice are all non-zero: a read that
        // kept any of them, or kept a byte of the slice twice or in the
        // wrong column (a short last block is read from the slice's last
        // 64 bytes and moved down), writes out other values.
        let mut rng = rand::rngs::StdRng::seed_from_u64(53);
        let (rows, width) = (24, 784);
        for (k0, cols) in [
            (392, 392),
            (0, 392),
            (3, 130),
            (100, 64),
            (700, 84),
            (10, 40),
            (1, 127),
            (650, 65),
        ] {
            let (inside, _) = pixels(&mut rng, rows, cols);
            let x: Vec<u8> = (0..rows * width)
                .map(|i| {
                    let (r, c) = (i / width, i % width);
                    if (k0..k0 + cols).contains(&c) {
                        inside[r * cols + c - k0]
                    } else {
                        1 + (c % 255) as u8
                    }
                })
                .collect();
            let mut groups = RowGroups::with_capacity(rows, cols);
            groups.read(rows, |r| &x[r * width..(r + 1) * width], k0, 0.5);
            let mut full = vec![f32::NAN; rows * cols];
            groups.scatter(&mut full);
            let want: Vec<f32> = inside.iter().map(|&b| 0.5 * b as f32).collect();
            assert_eq!(
                first_bit_difference(&full, &want),
                None,
                "columns {k0}..{} of {rows} rows of {width}",
                k0 + cols
            );
            let kept = inside.iter().filter(|&&b| b != 0).count();
            assert_eq!(
                groups.nonzeros,
                kept,
                "columns {k0}..{}: non-zeros counted",
                k0 + cols
            );
        }
    }

    #[test]
    fn bytes_and_floats_read_into_the_same_groups() {
        // the bytes' vector read (where the build has it) against the read
        // of any type, and both written out in full against the pixels
        let mut rng = rand::rngs::StdRng::seed_from_u64(47);
        for (rows, cols) in [(128, 392), (19, 784), (8, 1), (16, 130)] {
            let (bytes, floats) = pixels(&mut rng, rows, cols);
            let (_, from_bytes) = both(&bytes, rows, cols, 0.5);
            let (_, from_floats) = both(&floats, rows, cols, 0.5);
            assert_eq!(
                from_bytes.start[..from_bytes.groups() + 1],
                from_floats.start[..from_floats.groups() + 1]
            );
            let n = from_bytes.entries();
            assert_eq!(
                from_bytes.col[..n],
                from_floats.col[..n],
                "{rows}x{cols}: columns"
            );
            assert_eq!(
                first_bit_difference(
                    &from_bytes.val[..n * GROUP_ROWS],
                    &from_floats.val[..n * GROUP_ROWS]
                ),
                None,
                "{rows}x{cols}: values"
            );
            let mut full = vec![f32::NAN; rows * cols];
            from_bytes.scatter(&mut full);
            let want: Vec<f32> = floats.iter().map(|&x| 0.5 * x).collect();
            assert_eq!(
                first_bit_difference(&full, &want),
                None,
                "{rows}x{cols}: written out"
            );
        }
    }
}
