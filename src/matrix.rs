//! Row-major `f32` matrices and borrowed strided views.
//!
//! Conventions used everywhere in simdnet:
//! - A matrix of shape `(rows, cols)` stores element `(i, j)` at `i * cols + j`.
//! - [`Matrix`] owns its storage, aligned to 64 bytes (one cache line, one
//!   AVX-512 register): its first row, and every row when `cols` is a
//!   multiple of 16, starts on a cache line. The SIMD code only ever uses
//!   unaligned loads and stores, so alignment is a speed matter, never a
//!   condition for correctness.
//! - [`MatRef`] and [`MatMut`] borrow a matrix (or any slice) with explicit
//!   strides: element `(i, j)` of a view lives at `i * rs + j * cs`.
//!   Slicing a mini-batch ([`MatRef::rows_range`]) or transposing
//!   ([`MatRef::t`]) only changes those numbers: no element is copied.
//! - `MatRef` is generic over its element so that the training images can
//!   stay `u8` in memory and be converted while the GEMM packs them
//!   ([`Element`]).

use std::fmt;

/// An element type the GEMM can read: converted to `f32` as it is packed.
pub trait Element: Copy + Send + Sync + fmt::Debug + 'static {
    /// The value as an `f32` (exact for `u8`).
    fn to_f32(self) -> f32;
}

/// `s` as `f32` numbers if its elements are `f32` (`None` for pixels):
/// for the kernels that read only `f32` data in place.
pub fn as_f32<T: Element>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32 (same TypeId), so the slice is the same memory as `[f32]`.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// For the unit tests: where `got` first differs from `want` bit for bit
/// (`None`: the same bits, and the same length).
#[cfg(test)]
pub(crate) fn first_bit_difference(got: &[f32], want: &[f32]) -> Option<usize> {
    let differs = got.iter().zip(want).position(|(g, w)| g.to_bits() != w.to_bits());
    differs.or((got.len() != want.len()).then(|| got.len().min(want.len())))
}

/// For the unit tests: a number in `-1..=1` (thousandths) from a hash of
/// `i` and `salt`, so that no two tests draw the same data.
#[cfg(test)]
pub(crate) fn test_number(i: usize, salt: usize) -> f32 {
    let h = (i.wrapping_mul(2654435761) ^ salt.wrapping_mul(40503)).wrapping_mul(2246822519) >> 9;
    (h % 2001) as f32 / 1000.0 - 1.0
}

/// The index of the largest value of `v` (the first one on ties; 0 for an
/// empty slice). A network's prediction is the `argmax` of a row of its outputs.
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let Some(&first) = v.first() else {
        return 0;
    };
    // the best value kept beside its index (not re-read as v[best]), so the
    // compiler selects without a branch: a 10-class row's comparisons are
    // unpredictable (count_correct was 3.7% of a workshop training run,
    // 0.6% after; Zen 5, AVX-512 build, perf)
    let (mut best, mut value) = (0, first);
    for (i, &x) in v.iter().enumerate().skip(1) {
        let larger = x > value;
        best = if larger { i } else { best };
        value = if larger { x } else { value };
    }
    best
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for u8 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// 64 bytes of `f32`: the allocation unit that gives [`Matrix`] its alignment.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Align64([f32; 16]);

/// An owned, row-major `f32` matrix of shape `(rows, cols)`, 64-byte aligned.
///
/// ```
/// use simdnet::Matrix;
/// let mut m = Matrix::from_fn(2, 3, |i, j| (10 * i + j) as f32);
/// assert_eq!(m.shape(), (2, 3));
/// assert_eq!(m.row(1), &[10.0, 11.0, 12.0]);
/// m.set(0, 2, -1.0);
/// assert_eq!(m.at(0, 2), -1.0);
/// let v = m.view(); // a borrowed MatRef, as the GEMM takes
/// assert_eq!(v.t().at(2, 0), -1.0);
/// ```
#[derive(Clone)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    buf: Vec<Align64>,
}

impl Matrix {
    /// A `(rows, cols)` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        let len = rows.checked_mul(cols).expect("matrix size overflows usize");
        Matrix {
            rows,
            cols,
            buf: vec![Align64([0.0; 16]); len.div_ceil(16)],
        }
    }

    /// A `(rows, cols)` matrix whose element `(i, j)` is `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f32) -> Matrix {
        let mut m = Matrix::zeros(rows, cols);
        for i in 0..rows {
            for j in 0..cols {
                m.as_mut_slice()[i * cols + j] = f(i, j);
            }
        }
        m
    }

    /// A `(rows, cols)` matrix copied from row-major `data`.
    ///
    /// Panics if `data.len() != rows * cols` (a programming error, not user input).
    pub fn from_slice(rows: usize, cols: usize, data: &[f32]) -> Matrix {
        assert_eq!(data.len(), rows * cols, "Matrix::from_slice: wrong length");
        let mut m = Matrix::zeros(rows, cols);
        m.as_mut_slice().copy_from_slice(data);
        m
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `Align64` is `repr(C)` around `[f32; 16]`, so `buf` is a
        // contiguous, initialised run of `16 * buf.len()` f32 values, and
        // `rows * cols <= 16 * buf.len()` by construction in `zeros`.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<f32>(), self.rows * self.cols) }
    }

    /// The elements in row-major order, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`; the `&mut self` borrow makes it unique.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<f32>(), self.rows * self.cols) }
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.as_slice()[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i` as a mutable slice.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        let c = self.cols;
        &mut self.as_mut_slice()[i * c..(i + 1) * c]
    }

    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> f32 {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of {:?}",
            self.shape()
        );
        self.as_slice()[i * self.cols + j]
    }

    /// Sets element `(i, j)`.
    pub fn set(&mut self, i: usize, j: usize, v: f32) {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of {:?}",
            self.shape()
        );
        let c = self.cols;
        self.as_mut_slice()[i * c + j] = v;
    }

    /// A borrowed view of the whole matrix.
    pub fn view(&self) -> MatRef<'_, f32> {
        MatRef::from_slice(self.as_slice(), self.rows, self.cols)
    }

    /// A mutable borrowed view of the whole matrix.
    pub fn view_mut(&mut self) -> MatMut<'_> {
        let (r, c) = self.shape();
        MatMut::from_slice(self.as_mut_slice(), r, c)
    }
}

impl fmt::Debug for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Matrix {}x{} [", self.rows, self.cols)?;
        for i in 0..self.rows.min(8) {
            writeln!(f, "  {:?}", &self.row(i)[..self.cols.min(8)])?;
        }
        write!(f, "]")
    }
}

impl PartialEq for Matrix {
    fn eq(&self, other: &Matrix) -> bool {
        self.shape() == other.shape() && self.as_slice() == other.as_slice()
    }
}

/// Highest linear index touched by a `(rows, cols)` view with strides `(rs, cs)`, plus one.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// A borrowed, read-only `(rows, cols)` view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T: Element = f32> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T: Element> MatRef<'a, T> {
    /// A row-major `(rows, cols)` view of `data` (`data.len() >= rows * cols`).
    pub fn from_slice(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::with_strides(data, rows, cols, cols, 1)
    }

    /// A view with explicit strides. Panics if the view would reach past `data`.
    pub fn with_strides(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(
            extent(rows, cols, rs, cs) <= data.len(),
            "MatRef: a {rows}x{cols} view with strides ({rs}, {cs}) needs more than {} elements",
            data.len()
        );
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Distance between rows (elements).
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// Distance between columns (elements).
    pub fn col_stride(&self) -> usize {
        self.cs
    }
    /// The underlying slice; element `(i, j)` is at `i * row_stride + j * col_stride`.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// Element `(i, j)`.
    ///
    /// `i < rows` and `j < cols` are checked only in debug builds (this is
    /// the reference GEMM's inner loop). In release builds an index past the
    /// view's shape is caught only if it lands past the end of `data`;
    /// otherwise it reads whichever element sits there.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> T {
        debug_assert!(i < self.rows && j < self.cols);
        self.data[i * self.rs + j * self.cs]
    }

    /// The transpose, as a view: `(cols, rows)` with the strides swapped. No copy.
    ///
    /// ```
    /// use simdnet::Matrix;
    /// let m = Matrix::from_slice(2, 3, &[1., 2., 3., 4., 5., 6.]);
    /// let t = m.view().t(); // (3, 2)
    /// assert_eq!((t.rows(), t.cols()), (3, 2));
    /// assert_eq!(t.at(2, 1), 6.0);
    /// ```
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Rows `r0..r1` as a view. No copy.
    pub fn rows_range(self, r0: usize, r1: usize) -> Self {
        assert!(
            r0 <= r1 && r1 <= self.rows,
            "rows_range {r0}..{r1} of {} rows",
            self.rows
        );
        let start = (r0 * self.rs).min(self.data.len());
        MatRef {
            data: &self.data[start..],
            rows: r1 - r0,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// Columns `c0..c1` as a view. No copy.
    pub fn cols_range(self, c0: usize, c1: usize) -> Self {
        assert!(
            c0 <= c1 && c1 <= self.cols,
            "cols_range {c0}..{c1} of {} cols",
            self.cols
        );
        let start = (c0 * self.cs).min(self.data.len());
        MatRef {
            data: &self.data[start..],
            rows: self.rows,
            cols: c1 - c0,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// A row-major contiguous copy as an `f32` [`Matrix`].
    pub fn to_matrix(&self) -> Matrix {
        Matrix::from_fn(self.rows, self.cols, |i, j| self.at(i, j).to_f32())
    }
}

/// A borrowed, mutable `(rows, cols)` view with unit column stride:
/// element `(i, j)` is `data[i * rs + j]`. Output matrices are always of this form.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    rs: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `(rows, cols)` view of `data`.
    pub fn from_slice(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::with_row_stride(data, rows, cols, cols)
    }

    /// A view whose rows are `rs` elements apart (`rs >= cols`).
    pub fn with_row_stride(data: &'a mut [f32], rows: usize, cols: usize, rs: usize) -> Self {
        assert!(rs >= cols || rows <= 1, "MatMut: row stride {rs} < cols {cols}");
        assert!(
            extent(rows, cols, rs, 1) <= data.len(),
            "MatMut: a {rows}x{cols} view with row stride {rs} needs more than {} elements",
            data.len()
        );
        MatMut { data, rows, cols, rs }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Distance between rows (elements).
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// The underlying slice; element `(i, j)` is at `i * row_stride + j`.
    pub fn data(&mut self) -> &mut [f32] {
        self.data
    }

    /// Element `(i, j)`; indices checked as in [`MatRef::at`] (debug builds only).
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        debug_assert!(i < self.rows && j < self.cols);
        self.data[i * self.rs + j]
    }

    /// Sets element `(i, j)`; indices checked as in [`MatRef::at`] (debug builds only).
    #[inline]
    pub fn set(&mut self, i: usize, j: usize, v: f32) {
        debug_assert!(i < self.rows && j < self.cols);
        self.data[i * self.rs + j] = v;
    }

    /// Row `i` as a mutable slice of length `cols`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        let s = i * self.rs;
        &mut self.data[s..s + self.cols]
    }

    /// A shorter-lived mutable view of the same elements.
    pub fn rb_mut(&mut self) -> MatMut<'_> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
        }
    }

    /// A read-only view of the same elements.
    pub fn as_ref(&self) -> MatRef<'_, f32> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: 1,
        }
    }

    /// Rows `r0..r1` as a mutable view. No copy.
    pub fn rows_range(self, r0: usize, r1: usize) -> MatMut<'a> {
        assert!(
            r0 <= r1 && r1 <= self.rows,
            "rows_range {r0}..{r1} of {} rows",
            self.rows
        );
        let start = (r0 * self.rs).min(self.data.len());
        MatMut {
            data: &mut self.data[start..],
            rows: r1 - r0,
            cols: self.cols,
            rs: self.rs,
        }
    }

    /// Rows `..r` and `r..` as two views that can be written at once (by two
    /// threads): no element is in both.
    pub fn split_at_row(self, r: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(r <= self.rows, "split_at_row {r} of {} rows", self.rows);
        let (rows, cols, rs) = (self.rows, self.cols, self.rs);
        // the top's rows end where the bottom's begin (or with the data)
        let at = (r * rs).min(self.data.len());
        let (top, bottom) = self.data.split_at_mut(at);
        (
            MatMut {
                data: top,
                rows: r,
                cols,
                rs,
            },
            MatMut {
                data: bottom,
                rows: rows - r,
                cols,
                rs,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `split_at_row`: each side's row `i` is exactly its row of the whole
    /// (inside a wider row stride, the last row ending the data), for every
    /// split point, the empty sides included; writing through both leaves
    /// the floats past each row alone.
    #[test]
    fn split_at_row_gives_each_side_its_own_rows() {
        let (rows, cols, rs) = (5, 7, 9);
        let len = (rows - 1) * rs + cols;
        for r in 0..=rows {
            let mut data: Vec<f32> = (0..len).map(|v| v as f32).collect();
            let (mut top, mut bottom) = MatMut::with_row_stride(&mut data, rows, cols, rs).split_at_row(r);
            assert_eq!(
                (top.rows(), top.cols(), bottom.rows(), bottom.cols()),
                (r, cols, rows - r, cols)
            );
            let want = |i: usize| (0..cols).map(|j| (i * rs + j) as f32).collect::<Vec<_>>();
            for i in 0..r {
                assert_eq!(top.row_mut(i), &want(i)[..], "split {r}, row {i}: top");
                top.row_mut(i).fill(-1.0);
            }
            for i in r..rows {
                assert_eq!(bottom.row_mut(i - r), &want(i)[..], "split {r}, row {i}: bottom");
                bottom.row_mut(i - r).fill(-2.0);
            }
            for (k, &v) in data.iter().enumerate() {
                let (i, j) = (k / rs, k % rs);
                let want = match (j < cols, i < r) {
                    (false, _) => k as f32,
                    (true, true) => -1.0,
                    (true, false) => -2.0,
                };
                assert_eq!(v, want, "split {r}: element ({i}, {j})");
            }
        }
    }

    /// The first of ties, NaN never larger (nor beaten, when first), an
    /// empty slice 0, written out against the rule `x > best` in order.
    #[test]
    fn argmax_takes_the_first_of_the_largest() {
        assert_eq!(argmax::<f32>(&[]), 0);
        assert_eq!(argmax(&[3.0f32]), 0);
        assert_eq!(argmax(&[1.0f32, 5.0, 5.0, 2.0]), 1);
        assert_eq!(argmax(&[-4.0f32, -1.0, -1.0, -3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0, 2.0]), 0);
        assert_eq!(argmax(&[1.0f32, f32::NAN, 2.0, 2.0]), 2);
        assert_eq!(argmax(&[0u8, 7, 255, 255, 9]), 2);
        for seed in 0..200u32 {
            let v: Vec<f32> = (0..10u32).map(|i| ((seed * 31 + i * 17) % 7) as f32).collect();
            let mut want = 0;
            for i in 1..v.len() {
                if v[i] > v[want] {
                    want = i;
                }
            }
            assert_eq!(argmax(&v), want, "{v:?}");
        }
    }

    #[test]
    fn storage_is_64_byte_aligned_and_sized() {
        for (r, c) in [(0, 0), (1, 1), (3, 5), (17, 33), (128, 784)] {
            let m = Matrix::zeros(r, c);
            assert_eq!(m.as_slice().len(), r * c);
            assert_eq!(m.as_slice().as_ptr() as usize % 64, 0);
        }
    }

    #[test]
    fn transpose_and_ranges_are_views() {
        let m = Matrix::from_fn(3, 4, |i, j| (10 * i + j) as f32);
        let t = m.view().t();
        assert_eq!((t.rows(), t.cols()), (4, 3));
        assert_eq!(t.at(3, 2), 23.0);
        let mid = m.view().rows_range(1, 3).cols_range(1, 3);
        assert_eq!(mid.to_matrix().as_slice(), &[11.0, 12.0, 21.0, 22.0]);
        let tt = mid.t();
        assert_eq!(tt.at(1, 0), 12.0);
    }

    #[test]
    #[should_panic(expected = "needs more than")]
    fn views_past_the_end_are_rejected() {
        let d = [0.0f32; 5];
        let _ = MatRef::from_slice(&d, 2, 3);
    }
}
