//! Packing: copying a block of A or B into the order the micro-kernel reads.
//!
//! Packing is where strides and transposes disappear: whatever the view's
//! `(rs, cs)`, the packed buffer is contiguous and read with unit stride, so
//! `A·B`, `Aᵀ·B`, `A·Bᵀ` and `Aᵀ·Bᵀ` all run the same micro-kernel. Packing
//! A also converts its elements to `f32` (`u8` pixels) and multiplies by
//! `alpha` (the `1/255` pixel scale comes for free).
//!
//! Layouts (`mr`, `nr`: the micro-kernel's tile; edges are zero-padded):
//!
//! ```text
//! A~ (mc x kc): micro-panels of mr rows, each stored column by column
//!   A~[panel r][p][i] = alpha · A[i0 + r·mr + i, p0 + p]      (mr floats per p)
//! B~ (kc x nc): micro-panels of nr columns, each stored row by row
//!   B~[panel q][p][j] = B[p0 + p, j0 + q·nr + j]              (nr floats per p)
//! ```

use crate::matrix::{Element, MatRef};
use crate::simd::{self, LANES, V};
use std::any::TypeId;
use wide::f32x8;

/// How one axis of a packable source is addressed: the offset of index `i`
/// along it is `i·stride` ([`Axis::Stride`]) or `index[i]·stride`
/// ([`Axis::Index`]: rows picked from a data set by a mini-batch's indices).
#[derive(Clone, Copy, Debug)]
pub enum Axis<'a> {
    /// Offset `i·stride`.
    Stride(usize),
    /// Offset `index[i]·stride`.
    Index(&'a [usize], usize),
}

impl<'a> Axis<'a> {
    /// The offset of index `i`.
    #[inline(always)]
    pub fn at(&self, i: usize) -> usize {
        match *self {
            Axis::Stride(s) => i * s,
            Axis::Index(index, s) => index[i] * s,
        }
    }

    /// Whether consecutive indices are consecutive elements (`Stride(1)`).
    #[inline(always)]
    pub fn unit(&self) -> bool {
        matches!(*self, Axis::Stride(1))
    }

    /// The stride, if the axis is affine.
    #[inline(always)]
    pub fn stride(&self) -> Option<usize> {
        match *self {
            Axis::Stride(s) => Some(s),
            Axis::Index(..) => None,
        }
    }

    /// Indices `i0..i1` of this axis as an axis (and the offset the
    /// sub-range starts at, for an affine axis; 0 for an indexed one).
    pub fn range(self, i0: usize, i1: usize) -> (Axis<'a>, usize) {
        match self {
            Axis::Stride(s) => (Axis::Stride(s), i0 * s),
            Axis::Index(index, s) => (Axis::Index(&index[i0..i1], s), 0),
        }
    }
}

/// A source matrix as packing reads it: element `(i, p)` is
/// `data[row.at(i) + col.at(p)]`. A [`MatRef`] is two strided axes; a
/// mini-batch gathered from a data set by row index has an indexed row axis
/// (or, transposed, an indexed column axis).
///
/// Invariant (checked by [`Lines::new`]): every element `(i < rows, p < cols)`
/// is inside `data`.
#[derive(Clone, Copy, Debug)]
pub struct Lines<'a, T: Element> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row: Axis<'a>,
    col: Axis<'a>,
}

impl<'a, T: Element> Lines<'a, T> {
    /// The layout `data[row.at(i) + col.at(p)]`, `i < rows`, `p < cols`;
    /// `None` if an element would fall outside `data` (or an index list is
    /// shorter than its axis).
    pub fn new(
        data: &'a [T],
        (rows, row): (usize, Axis<'a>),
        (cols, col): (usize, Axis<'a>),
    ) -> Option<Self> {
        let last = |n: usize, axis: &Axis| -> Option<usize> {
            match *axis {
                Axis::Stride(s) => Some((n - 1) * s),
                Axis::Index(index, s) if index.len() >= n => Some(index[..n].iter().max()? * s),
                Axis::Index(..) => None,
            }
        };
        if rows > 0 && cols > 0 {
            let end = last(rows, &row)?.checked_add(last(cols, &col)?)?;
            if end >= data.len() {
                return None;
            }
        } else if matches!(row, Axis::Index(index, _) if index.len() < rows)
            || matches!(col, Axis::Index(index, _) if index.len() < cols)
        {
            return None;
        }
        Some(Lines {
            data,
            rows,
            cols,
            row,
            col,
        })
    }

    /// Rows of the source.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns of the source (the depth `k` of the product).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The underlying slice.
    pub fn data(&self) -> &'a [T] {
        self.data
    }
    /// The row axis.
    pub fn row(&self) -> Axis<'a> {
        self.row
    }
    /// The column axis.
    pub fn col(&self) -> Axis<'a> {
        self.col
    }
    /// The offset of element `(i, p)` in [`data`](Self::data).
    #[inline(always)]
    pub fn offset(&self, i: usize, p: usize) -> usize {
        self.row.at(i) + self.col.at(p)
    }
}

impl<'a, T: Element> From<&MatRef<'a, T>> for Lines<'a, T> {
    fn from(a: &MatRef<'a, T>) -> Self {
        // `MatRef` guarantees every element of the view is inside `data`.
        Lines {
            data: a.data(),
            rows: a.rows(),
            cols: a.cols(),
            row: Axis::Stride(a.row_stride()),
            col: Axis::Stride(a.col_stride()),
        }
    }
}

/// Rows (or columns) gathered by index are this many lines ahead of the
/// one being read when they are prefetched: a shuffled mini-batch's rows
/// are scattered over the whole data set (47 MB for MNIST), and without a
/// hint each one waits a full memory latency.
pub const PREFETCH_AHEAD: usize = 6;

impl<T: Element> Lines<'_, T> {
    /// For a gathered (indexed) row axis: prefetches row `i`'s columns
    /// `p0..p0+kc`, if `i` is a row. Nothing for an evenly strided axis
    /// (the hardware prefetcher follows those).
    #[inline(always)]
    pub fn prefetch_row(&self, i: usize, (p0, kc): (usize, usize)) {
        if matches!(self.row, Axis::Index(..)) && i < self.rows && self.col.unit() {
            let start = self.offset(i, p0);
            crate::simd::prefetch(&self.data[start..start + kc]);
        }
    }

    /// For a gathered (indexed) column axis: prefetches column `p`'s rows
    /// `i0..i0+rows`, if `p` is a column.
    #[inline(always)]
    pub fn prefetch_col(&self, p: usize, (i0, rows): (usize, usize)) {
        if matches!(self.col, Axis::Index(..)) && p < self.cols && self.row.unit() {
            let start = self.offset(i0, p);
            crate::simd::prefetch(&self.data[start..start + rows]);
        }
    }
}

/// `dst[p·ld_dst + i] = scale · row(i)[p]` for `i < rows`, `p < cols`:
/// a scaled transposing copy, by 8 x 8 blocks of `f32x8` (transposed in
/// registers), the ragged edges element by element. `row(i)` points at the
/// first element of source row `i` (rows need not be evenly spaced).
///
/// # Safety
/// `row(i) + p` readable and `dst + p·ld_dst + i` writable for all
/// `i < rows`, `p < cols`.
#[inline(always)]
pub(crate) unsafe fn transpose_scaled(
    row: impl Fn(usize) -> *const f32,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    ld_dst: usize,
    scale: f32,
) {
    let vscale = f32x8::splat(scale);
    let (rows8, cols8) = (rows / 8 * 8, cols / 8 * 8);
    // SAFETY (all accesses): indices stay within i < rows, p < cols.
    unsafe {
        for i in (0..rows8).step_by(8) {
            let src: [*const f32; 8] = std::array::from_fn(|r| row(i + r));
            for p in (0..cols8).step_by(8) {
                let block: [f32x8; 8] =
                    std::array::from_fn(|r| std::ptr::read_unaligned(src[r].add(p).cast::<f32x8>()));
                for (q, v) in f32x8::transpose(block).into_iter().enumerate() {
                    std::ptr::write_unaligned(dst.add((p + q) * ld_dst + i).cast::<f32x8>(), v * vscale);
                }
            }
            for p in cols8..cols {
                for (r, s) in src.iter().enumerate() {
                    *dst.add(p * ld_dst + i + r) = scale * *s.add(p);
                }
            }
        }
        for r in rows8..rows {
            let s = row(r);
            for p in 0..cols {
                *dst.add(p * ld_dst + r) = scale * *s.add(p);
            }
        }
    }
}

/// [`transpose_scaled`] into a micro-panel: `dst[p·ld + i] = scale ·
/// row(i)[p]` for `i < rows`, `p < cols`, and, where vectors run, zero for
/// the panel's padding rows `rows <= i < ld` (a partial panel's, which
/// must be zero). A group of fewer than eight rows (a 6-row kernel's whole
/// panel, a 12-row kernel's last four) is transposed by 8 x 8 blocks too,
/// its missing rows taken as zeros, each column stored as a whole vector:
/// the lanes past the column's `ld` floats write zeros into the next
/// columns' first rows, which the stores after it overwrite (the columns
/// go in order, and such a group goes before the full ones), and no store
/// ends past the panel's `cols · ld` floats. Element by element, a 6-row
/// panel cost a load and a store per float: 5% of `512³` under `perf` on
/// Zen 2 (AMD EPYC family 23 model 49, AVX2, 8 lanes).
///
/// # Safety
/// `row(i) + p` readable for `i < rows`, `p < cols`; `dst` writable for
/// `cols · ld` floats; `rows <= ld`.
#[inline(always)]
pub(crate) unsafe fn transpose_panel(
    row: impl Fn(usize) -> *const f32,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    ld: usize,
    scale: f32,
) {
    debug_assert!(rows <= ld, "transpose_panel: {rows} rows in columns of {ld}");
    let (rows8, end) = (rows / 8 * 8, cols * ld);
    if rows8 < rows {
        let (i0, rest) = (rows8, rows - rows8);
        let vscale = f32x8::splat(scale);
        let src: [*const f32; 8] =
            std::array::from_fn(|r| if r < rest { row(i0 + r) } else { std::ptr::null() });
        let mut p = 0;
        // SAFETY: rows i0 + r < rows hold p + 8 <= cols floats; the last
        // column's store, (p + 7)·ld + i0 + 8, ends inside the panel.
        unsafe {
            while p + 8 <= cols && (p + 7) * ld + i0 + 8 <= end {
                let block: [f32x8; 8] = std::array::from_fn(|r| {
                    if r < rest {
                        std::ptr::read_unaligned(src[r].add(p).cast::<f32x8>())
                    } else {
                        f32x8::ZERO
                    }
                });
                for (q, v) in f32x8::transpose(block).into_iter().enumerate() {
                    std::ptr::write_unaligned(dst.add((p + q) * ld + i0).cast::<f32x8>(), v * vscale);
                }
                p += 8;
            }
            for p in p..cols {
                for (r, s) in src.iter().take(rest).enumerate() {
                    *dst.add(p * ld + i0 + r) = scale * *s.add(p);
                }
            }
        }
    }
    if rows8 > 0 {
        // SAFETY: forwarded; the full groups' stores stay in their rows.
        unsafe { transpose_scaled(row, rows8, cols, dst, ld, scale) };
    }
}

/// The first `panels` A~ micro-panels from a source whose columns are
/// contiguous (`Xᵀ`): `dst[r·mr·kc + p·mr + i] = alpha · col(p)[r·mr + i]`
/// for `r < panels`, `p < kc`, `i < mr`.
///
/// Column by column: each step of `k` reads `panels · mr` contiguous
/// floats of the source once and deals them out to the panels, by
/// vectors. A panel's last vector may run past its `mr` floats (6 of 8 on
/// AVX2): it reads the next rows (the next panel's, or up to `LANES - 1`
/// of the `extra` source rows below the block, only if there are enough)
/// and writes into the panel's next steps, which they overwrite; a step
/// whose vector would end past the panel is copied exactly. Panel by panel, element by element,
/// each step read one line of the source 3 KiB from the last (a 784-wide
/// `X`): the 784x128 `Xᵀ` of a weight gradient took 64 µs to pack, now
/// 28-30 µs (Zen 3, AMD EPYC family 25 model 1, AVX2, 8 lanes, `mr = 6`,
/// warm, best of 7 x 500; the product 784x512x128 in `cargo bench --bench
/// gemm`, kernel mode, three runs of each build: 0.94-0.99 -> 0.96-0.97 of
/// the `gemm` crate).
///
/// # Safety
/// `col(p) + i` readable for `i < panels · mr + extra`, `p < kc`; `dst`
/// writable for `panels · mr · kc` floats.
#[inline(always)]
unsafe fn pack_columns(
    col: impl Fn(usize) -> *const f32,
    extra: usize,
    (kc, panels): (usize, usize),
    mr: usize,
    alpha: f32,
    dst: *mut f32,
) {
    let valpha = V::splat(alpha);
    let whole = mr / LANES * LANES;
    // whether a panel's last vector may read past its rows: the last panel's
    // needs `next_multiple_of(LANES) - mr` rows beyond the block
    let overrun = mr.next_multiple_of(LANES) - mr <= extra;
    // SAFETY (all accesses): reads col(p) + r·mr + i for i < mr, or up to
    // the next multiple of LANES when `overrun` (within panels·mr + extra);
    // writes dst + r·mr·kc + p·mr + i for i < mr, or with the vector tail up
    // to LANES - 1 floats more, still inside the panel (checked): into its
    // later steps, rewritten then.
    unsafe {
        for p in 0..kc {
            let s = col(p);
            let vector_tail = mr > whole && overrun && p * mr + whole + LANES <= kc * mr;
            for r in 0..panels {
                let (s, d) = (s.add(r * mr), dst.add(r * mr * kc + p * mr));
                for i in (0..whole).step_by(LANES) {
                    simd::store(d.add(i), simd::load(s.add(i)) * valpha);
                }
                if vector_tail {
                    simd::store(d.add(whole), simd::load(s.add(whole)) * valpha);
                } else {
                    for i in whole..mr {
                        *d.add(i) = alpha * *s.add(i);
                    }
                }
            }
        }
    }
}

/// Packs `alpha · A[i0..i0+mc, p0..p0+kc]` into `dst` as `ceil(mc/mr)`
/// micro-panels of `mr x kc` (rows past `mc` are zero), reading `A`
/// through its [`Lines`] (a strided view or rows gathered by index).
///
/// `dst.len() >= ceil(mc/mr) · mr · kc`.
pub fn pack_a<T: Element>(
    a: &Lines<T>,
    alpha: f32,
    (i0, mc): (usize, usize),
    (p0, kc): (usize, usize),
    mr: usize,
    dst: &mut [f32],
) {
    assert!(
        i0 + mc <= a.rows() && p0 + kc <= a.cols(),
        "pack_a: block outside A"
    );
    let panels = mc.div_ceil(mr);
    assert!(dst.len() >= panels * mr * kc, "pack_a: buffer too small");
    let (row, col) = (a.row(), a.col());
    let src = a.data().as_ptr();
    // Full panels of an f32 A with contiguous columns (`Xᵀ`): all at once,
    // column by column (see `pack_columns`); the rest panel by panel.
    let columns_done = if row.unit() && TypeId::of::<T>() == TypeId::of::<f32>() {
        mc / mr
    } else {
        0
    };
    if columns_done > 0 {
        // SAFETY: T is f32 (checked); rows i0..i0 + columns_done·mr <= i0 + mc
        // of columns p0..p0+kc are elements of A, `a.rows() - i0 - columns_done·mr`
        // more rows below them; `dst` holds `panels >= columns_done` panels.
        unsafe {
            let s = src.cast::<f32>().add(i0);
            let extra = a.rows() - (i0 + columns_done * mr);
            let col_ptr = |p| s.add(col.at(p0 + p));
            pack_columns(col_ptr, extra, (kc, columns_done), mr, alpha, dst.as_mut_ptr());
        }
    }
    for (r, panel) in dst.chunks_exact_mut(mr * kc).take(panels).enumerate() {
        let first = i0 + r * mr;
        let rows = mr.min(i0 + mc - first);
        // Bounds (for the SAFETY comments below): element (i, p) with first + i < i0 + mc <=
        // a.rows() and p0 + p < p0 + kc <= a.cols() is inside `data`
        // (the invariant of `Lines`), at `a.offset(i, p)`.
        if r < columns_done {
            continue;
        }
        if row.unit() && rows == mr {
            // Column-major-like source (a transposed row-major matrix, e.g.
            // Xᵀ, or Xᵀ gathered by column): each column of the micro-panel
            // is `mr` contiguous elements.
            for (p, dcol) in panel.chunks_exact_mut(mr).enumerate() {
                a.prefetch_col(p0 + p + PREFETCH_AHEAD, (first, mr));
                // SAFETY: element (first, p0 + p) is inside `data`.
                let s = unsafe { src.add(first + col.at(p0 + p)) };
                for (i, d) in dcol.iter_mut().enumerate() {
                    // SAFETY: element (first + i, p0 + p), i < mr = rows (unit row axis).
                    *d = alpha * unsafe { *s.add(i) }.to_f32();
                }
            }
        } else {
            // Row-major (or general) source: read each row along k, write it
            // as one "column" of the micro-panel, i.e. with stride mr.
            if rows < mr {
                // A partial micro-panel: zero it first in one sweep. Zeroing
                // only the padding rows, element by element `mr` apart, cost
                // more than the copy: a 4-row tail of depth 64 for a 12-row
                // kernel took 180 ns, now 90 (Zen 5; 6-row kernel 90 -> 62).
                panel.fill(0.0);
            }
            let d = panel.as_mut_ptr();
            if col.unit() && TypeId::of::<T>() == TypeId::of::<f32>() {
                // SAFETY: T is f32; rows first..first+rows, columns p0..p0+kc
                // are inside `data`, and the panel holds kc·mr floats.
                unsafe {
                    let s = src.cast::<f32>().add(p0);
                    transpose_panel(|i| s.add(row.at(first + i)), rows, kc, d, mr, alpha);
                }
            } else {
                for i in 0..rows {
                    a.prefetch_row(first + i + PREFETCH_AHEAD, (p0, kc));
                    // SAFETY: element (first + i, p0) is inside `data`.
                    let s = unsafe { src.add(row.at(first + i)) };
                    if col.unit() {
                        for p in 0..kc {
                            // SAFETY: reads element (first + i, p0 + p);
                            // writes p·mr + i < kc·mr = panel.len().
                            unsafe { *d.add(p * mr + i) = alpha * (*s.add(p0 + p)).to_f32() };
                        }
                    } else {
                        for p in 0..kc {
                            // SAFETY: as above, through the column axis.
                            unsafe { *d.add(p * mr + i) = alpha * (*s.add(col.at(p0 + p))).to_f32() };
                        }
                    }
                }
            }
        }
    }
}

/// Rows of B that [`pack_b_rows`] copies into every panel before moving on.
const B_ROWS_AT_ONCE: usize = 8;

/// Copies the `ceil(cols / nr)` micro-panels of a row-major B (`kc` rows
/// `rs` apart from `src`, `cols` columns) into `dst`, `B_ROWS_AT_ONCE` rows
/// at a time across all panels, as whole vectors (partial ones at the right
/// edge, zeros past it).
///
/// Panel by panel, each panel's `kc` rows are read one line each, a whole
/// row of B apart: for a 512-wide B (2 KiB rows, a power of two) all of
/// them fall in two of L1's sets and a few dozen of L2's, and are fetched
/// again and again. Across the panels a few rows at a time, the reads are
/// `B_ROWS_AT_ONCE` sequential streams and the writes `B_ROWS_AT_ONCE`
/// consecutive lines of each panel. Measured on Zen 3 (AMD EPYC family 25
/// model 1, AVX2, 8 lanes, 2026-12-01; warm B, best of 7 x 2000 calls):
/// 128x512 20-21 -> 10.5-11.3 µs, 512x512 88-92 -> 45-48 µs (4 rows at a
/// time: 14 and 57; 1 row: 21 and 86). In `cargo bench --bench gemm`
/// (kernel mode, 1 thread, ratio to the `gemm` crate in the same process,
/// two runs of each build): 128x512x784 0.92-0.94 -> 0.98-1.01,
/// 128x512x512 0.91-0.92 -> 0.97-0.99. Training
/// (`train --layers 512,512 --limit 12800`, 1 epoch, 10 alternated rounds)
/// was level: 0.663 against 0.654 s on 1 thread, without the software
/// prefetch 32 rows ahead that the panel-by-panel copy needed for a B
/// fresh from memory.
///
/// # Safety
/// `src + p·rs .. + cols` readable for `p < kc`; `dst` writable for
/// `ceil(cols / nr) · nr · kc` floats; `nr` a multiple of `LANES`.
#[inline(never)]
unsafe fn pack_b_rows(src: *const f32, rs: usize, kc: usize, cols: usize, nr: usize, dst: *mut f32) {
    let full = cols / nr;
    for p0 in (0..kc).step_by(B_ROWS_AT_ONCE) {
        let rows = B_ROWS_AT_ONCE.min(kc - p0);
        // Full panels: whole vectors, no test per vector.
        for q in 0..full {
            for p in p0..p0 + rows {
                for col in (0..nr).step_by(LANES) {
                    // SAFETY: row p < kc, columns q·nr + col .. + LANES <= cols;
                    // the destination is inside panel q.
                    unsafe {
                        let v = simd::load(src.add(p * rs + q * nr + col));
                        simd::store(dst.add(q * nr * kc + p * nr + col), v);
                    }
                }
            }
        }
        // The last panel, when it is partial: zeros past `cols`.
        for q in full..cols.div_ceil(nr) {
            let valid = cols - q * nr;
            for p in p0..p0 + rows {
                for col in (0..nr).step_by(LANES) {
                    let n = valid.saturating_sub(col).min(LANES);
                    // SAFETY: row p < kc, columns q·nr + col .. + n <= cols;
                    // the destination is inside panel q. (`s` may point past
                    // the end of B when n == 0, and is then never read: hence
                    // `wrapping_add`, as `add` must stay inside the allocation.)
                    unsafe {
                        let s = src.wrapping_add(p * rs + q * nr + col);
                        let v = match n {
                            LANES => simd::load(s),
                            0 => V::ZERO,
                            _ => simd::load_partial(s, n),
                        };
                        simd::store(dst.add(q * nr * kc + p * nr + col), v);
                    }
                }
            }
        }
    }
}

/// Packs `B[p0..p0+kc, j0..j0+nc]` into `dst` as `ceil(nc/nr)` micro-panels
/// of `kc x nr` (columns past `nc` are zero).
///
/// `dst.len() >= ceil(nc/nr) · nr · kc`.
pub fn pack_b(
    b: &MatRef<f32>,
    (p0, kc): (usize, usize),
    (j0, nc): (usize, usize),
    nr: usize,
    dst: &mut [f32],
) {
    assert!(
        p0 + kc <= b.rows() && j0 + nc <= b.cols(),
        "pack_b: block outside B"
    );
    let panels = nc.div_ceil(nr);
    assert!(dst.len() >= panels * nr * kc, "pack_b: buffer too small");
    let (rs, cs) = (b.row_stride(), b.col_stride());
    let src = b.data().as_ptr();
    if cs == 1 && nr.is_multiple_of(LANES) {
        // Row-major source, SIMD kernel: a few rows at a time across all panels.
        // SAFETY: rows p0..p0+kc and columns j0..j0+nc are inside the view
        // (asserted above); `dst` holds the `panels` panels of kc·nr floats.
        unsafe { pack_b_rows(src.add(p0 * rs + j0), rs, kc, nc, nr, dst.as_mut_ptr()) };
        return;
    }
    for (q, panel) in dst.chunks_exact_mut(nr * kc).take(panels).enumerate() {
        let first = j0 + q * nr;
        let cols = nr.min(j0 + nc - first);
        // Bounds (for the SAFETY comments below): element (p, j) with p0 + p < b.rows() and
        // first + j < j0 + nc <= b.cols() is inside the view, hence in `data`.
        if cs == 1 {
            // Row-major source: each row of the micro-panel is contiguous.
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                // SAFETY: elements (p0 + p, first .. first + cols) are inside
                // the view and contiguous (cs == 1).
                let s = unsafe { std::slice::from_raw_parts(src.add((p0 + p) * rs + first), cols) };
                let (valid, pad) = row.split_at_mut(cols);
                valid.copy_from_slice(s);
                pad.fill(0.0);
            }
        } else {
            // Transposed source (e.g. Wᵀ): each column is contiguous along k.
            if rs == 1 {
                // SAFETY: columns first..first+cols, rows p0..p0+kc are inside
                // the view; the panel holds kc·nr floats.
                unsafe {
                    let s = src.add(p0 + first * cs);
                    transpose_scaled(|j| s.add(j * cs), cols, kc, panel.as_mut_ptr(), nr, 1.0)
                };
            } else {
                for j in 0..cols {
                    // SAFETY: element (p0, first + j) is inside the view.
                    let s = unsafe { src.add(p0 * rs + (first + j) * cs) };
                    for (p, d) in panel.iter_mut().skip(j).step_by(nr).enumerate() {
                        // SAFETY: element (p0 + p, first + j), p < kc.
                        *d = unsafe { *s.add(p * rs) };
                    }
                }
            }
            for j in cols..nr {
                for d in panel.iter_mut().skip(j).step_by(nr) {
                    *d = 0.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data` as a row-major `rows x cols` matrix, or as the transpose of a
    /// row-major `cols x rows` one (`rows x cols` either way).
    fn view(data: &[f32], (rows, cols): (usize, usize), transposed: bool) -> MatRef<'_, f32> {
        if transposed {
            MatRef::from_slice(data, cols, rows).t()
        } else {
            MatRef::from_slice(data, rows, cols)
        }
    }

    /// `transpose_panel` against its definition, with the panel inside a
    /// larger buffer: every `rows x cols` element scaled and transposed, the
    /// padding rows `rows..ld` zero (they start as zero: a partial panel is
    /// zeroed first), and nothing written before or past the panel's
    /// `cols · ld` floats (NaN there, compared by bits), for groups of
    /// fewer than eight rows alone and after full ones.
    #[test]
    fn transpose_panel_writes_the_panel_and_nothing_past_it() {
        let (guard, scale) = (13, 0.5);
        // Under Miri (see the README) the edges only: every size would take hours there.
        let miri = cfg!(miri);
        for rows in (1..=17).filter(|r| !miri || [1, 7, 8, 9, 16, 17].contains(r)) {
            for ld in (rows..rows + 4).filter(|l| !miri || [rows, rows + 3].contains(l)) {
                for cols in (0..=33).filter(|c| !miri || [0, 1, 7, 8, 9, 33].contains(c)) {
                    let src: Vec<f32> = (0..rows * cols).map(|v| 1.0 + v as f32).collect();
                    let mut buf = vec![f32::NAN; guard + cols * ld + guard];
                    buf[guard..guard + cols * ld].fill(0.0);
                    // SAFETY: row i holds cols floats; the panel is cols·ld floats of buf.
                    unsafe {
                        let (s, d) = (src.as_ptr(), buf.as_mut_ptr().add(guard));
                        transpose_panel(|i| s.add(i * cols), rows, cols, d, ld, scale);
                    }
                    let at = format!("rows {rows}, ld {ld}, cols {cols}");
                    let outside = buf[..guard].iter().chain(&buf[guard + cols * ld..]);
                    assert!(
                        outside.clone().all(|x| x.is_nan()),
                        "{at}: wrote outside the panel"
                    );
                    for p in 0..cols {
                        for i in 0..ld {
                            let want = if i < rows { scale * src[i * cols + p] } else { 0.0 };
                            let got = buf[guard + p * ld + i];
                            assert_eq!(got.to_bits(), want.to_bits(), "{at}: ({i}, {p})");
                        }
                    }
                }
            }
        }
    }

    /// `pack_a` against its definition: element `(i, p)` of micro-panel `r`
    /// is `alpha · A[i0 + r·mr + i, p0 + p]`, zero past the block's rows;
    /// for every `mr` the kernels use (and odd ones), row-major and
    /// transposed sources, ragged edges in both directions. The buffer starts
    /// as NaN, so a slot left unwritten fails too.
    #[test]
    fn pack_a_lays_out_every_panel_as_defined() {
        let (rows, cols) = (41, 45);
        let data: Vec<f32> = (0..rows * cols).map(|v| (v as f32 * 0.37).sin()).collect();
        let alpha = 0.75;
        for transposed in [false, true] {
            let a = view(&data, (rows, cols), transposed);
            let (m, k) = (a.rows(), a.cols());
            for mr in [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 16] {
                for (i0, mc) in [(0, m), (3, 13), (m - 7, 7), (1, mr), (5, 1)] {
                    for (p0, kc) in [(0, k), (2, 17), (k - 9, 9), (4, 8), (6, 1)] {
                        let panels = mc.div_ceil(mr);
                        let mut dst = vec![f32::NAN; panels * mr * kc];
                        pack_a(&Lines::from(&a), alpha, (i0, mc), (p0, kc), mr, &mut dst);
                        for r in 0..panels {
                            for p in 0..kc {
                                for i in 0..mr {
                                    let row = r * mr + i;
                                    let want = if row < mc {
                                        alpha * a.at(i0 + row, p0 + p)
                                    } else {
                                        0.0
                                    };
                                    let got = dst[r * mr * kc + p * mr + i];
                                    assert_eq!(
                                        got.to_bits(),
                                        want.to_bits(),
                                        "transposed {transposed}, mr {mr}, rows {i0}+{mc}, depth {p0}+{kc}: panel {r} ({i}, {p})"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `pack_b` against its definition, the same way: element `(p, j)` of
    /// micro-panel `q` is `B[p0 + p, j0 + q·nr + j]`, zero past the block's
    /// columns; row-major and transposed (`Wᵀ`) sources.
    #[test]
    fn pack_b_lays_out_every_panel_as_defined() {
        let (rows, cols) = (43, 39);
        let data: Vec<f32> = (0..rows * cols).map(|v| (v as f32 * 0.53).cos()).collect();
        for transposed in [false, true] {
            let b = view(&data, (rows, cols), transposed);
            let (k, n) = (b.rows(), b.cols());
            for nr in [1, 3, 4, 6, 8, 10, 16, 24, 32] {
                for (j0, nc) in [(0, n), (3, 13), (n - 7, 7), (1, nr.min(n - 1)), (5, 1)] {
                    for (p0, kc) in [(0, k), (2, 17), (k - 9, 9), (6, 1)] {
                        let panels = nc.div_ceil(nr);
                        let mut dst = vec![f32::NAN; panels * nr * kc];
                        pack_b(&b, (p0, kc), (j0, nc), nr, &mut dst);
                        for q in 0..panels {
                            for p in 0..kc {
                                for j in 0..nr {
                                    let col = q * nr + j;
                                    let want = if col < nc { b.at(p0 + p, j0 + col) } else { 0.0 };
                                    let got = dst[q * nr * kc + p * nr + j];
                                    assert_eq!(
                                        got.to_bits(),
                                        want.to_bits(),
                                        "transposed {transposed}, nr {nr}, columns {j0}+{nc}, depth {p0}+{kc}: panel {q} ({p}, {j})"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
