//! The A operand of a GEMM: anything the loops can pack into A~ micro-panels.
//!
//! [`gemm`](super::gemm) multiplies `alpha·A·B`, where `A` is any
//! [`AOperand`]: a strided view ([`MatRef`], transposed or not) or rows
//! picked from a larger matrix by index ([`Gathered`]: a mini-batch read
//! straight from the data set, `X` for the forward pass and `Xᵀ` for the
//! weight gradient `Xᵀ·dZ`). The operand never exists as a copy: its
//! elements are converted to `f32`, scaled by `alpha` and laid out as
//! micro-panels while packing, from wherever they are.
//!
//! An operand answers two requests from the loops (see [`super::loops`]):
//! - [`AOperand::pack`]: the block `A[i0.., p0..]` as `mr`-row micro-panels (A~);
//! - [`AOperand::direct`]: the block in the source's own orientation, for the
//!   direct mode (read in place when possible, else a non-transposing copy).
//!
//! A convolution's input unfolded by `im2col` ([`super::Im2col`]) is one
//! more implementation: its element `(i, p)` (output position, filter tap)
//! is an input pixel or a padding zero, and packing writes the micro-panels
//! straight from the image, so the unfolded matrix is never stored. Its
//! images come from either of the others ([`AOperand::image_rows`]).
//!
//! The trait is sealed: the loops trust the pointers [`AOperand::direct`]
//! returns, so only this crate implements it.

use super::im2col::ImageRows;
use super::loops;
use super::pack::{pack_a, Axis, Lines};
use crate::error::{Error, Result};
use crate::matrix::{Element, MatRef};

pub(super) mod sealed {
    /// Only the crate's operands can be packed (their pointers are trusted).
    pub trait Sealed {}
}

/// The left operand `A (m, k)` of a GEMM, as the packing loops read it.
///
/// Implemented by [`MatRef<T>`] (any strides) and [`Gathered<T>`] (rows of a
/// matrix picked by index, or their transpose). Sealed.
pub trait AOperand: sealed::Sealed + Copy + Send + Sync {
    /// The stored element (`u8` pixels or `f32`), converted while packing.
    type Elem: Element;

    /// `m`: rows of A (and of C).
    fn rows(&self) -> usize;

    /// `k`: columns of A (the depth of the product).
    fn cols(&self) -> usize;

    /// Rows `r0..r1` of A, as an operand of the same kind (a thread's block of C).
    fn rows_range(self, r0: usize, r1: usize) -> Self;

    /// The transpose (`Xᵀ` for the weight gradient), no copy.
    fn t(self) -> Self;

    /// Whether A is a transposed view of row-major data (`Xᵀ`): the profile
    /// files such a product as a weight gradient.
    fn is_transposed(&self) -> bool;

    /// Whether [`direct`](Self::direct) reads A where it is, for this
    /// `alpha` (only `f32` elements, evenly strided, `alpha == 1`).
    fn in_place(&self, alpha: f32) -> bool;

    /// The operand's rows as images, for a convolution's packing
    /// ([`super::Im2col`]): `Some` for an untransposed operand whose rows
    /// are contiguous (a row-major view, rows gathered by index), `None`
    /// otherwise (a transposed view, an `Im2col` itself).
    fn image_rows(&self) -> Option<ImageRows<'_, Self::Elem>>;

    /// Packs `alpha · A[i0..i0+mc, p0..p0+kc]` into `dst` as `ceil(mc/mr)`
    /// micro-panels of `mr x kc` (see [`super::pack`]; rows past `mc` are zero).
    /// `dst.len() >= ceil(mc/mr)·mr·kc`.
    fn pack(&self, alpha: f32, rows: (usize, usize), depth: (usize, usize), mr: usize, dst: &mut [f32]);

    /// The block `alpha · A[i0..i0+rows, p0..p0+kc]` for the strided
    /// micro-kernel: `(ptr, ra, pa)` with element `(i, p)` at `ptr + i·ra + p·pa`,
    /// either A itself ([`in_place`](Self::in_place)) or a copy in `buf`
    /// (`buf.len() >= rows·kc`) keeping the source's orientation. The pointer
    /// is valid while `self`'s data and `buf` are.
    fn direct(
        &self,
        alpha: f32,
        rows: (usize, usize),
        depth: (usize, usize),
        buf: &mut [f32],
    ) -> (*const f32, usize, usize);

    /// Whether [`gather_depth`](Self::gather_depth) reads A in place for
    /// this `alpha` (the default: never).
    fn gathers(&self, _alpha: f32) -> bool {
        false
    }

    /// For the gather micro-kernel ([`super::kernel::GatherKernelFn`]):
    /// writes `offs[p]` for the depth `p0..p0+kc` so that element `(i, p)` of
    /// `alpha · A` is the `f32` at `ptrs[i] + offs[p]` ([`gather_rows`](Self::gather_rows)),
    /// and returns `true`; `false` (the default) when A cannot be read so
    /// for this `alpha` (then `gather_rows` is not called).
    /// `offs.len() >= kc`.
    fn gather_depth(&self, _alpha: f32, _depth: (usize, usize), _offs: &mut [usize]) -> bool {
        false
    }

    /// The row pointers for [`gather_depth`](Self::gather_depth): `ptrs[i]`
    /// for rows `i0..i0+rows` (`ptrs.len() >= rows`). Only called after
    /// `gather_depth` returned `true`; valid while `self`'s data is.
    fn gather_rows(&self, _rows: (usize, usize), _ptrs: &mut [*const f32]) {
        unreachable!("gather_rows on an operand whose gather_depth is false")
    }
}

impl<T: Element> sealed::Sealed for MatRef<'_, T> {}

impl<T: Element> AOperand for MatRef<'_, T> {
    type Elem = T;

    fn rows(&self) -> usize {
        MatRef::rows(self)
    }
    fn cols(&self) -> usize {
        MatRef::cols(self)
    }
    fn rows_range(self, r0: usize, r1: usize) -> Self {
        MatRef::rows_range(self, r0, r1)
    }
    fn t(self) -> Self {
        MatRef::t(self)
    }
    fn is_transposed(&self) -> bool {
        self.col_stride() != 1
    }
    fn in_place(&self, alpha: f32) -> bool {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && alpha == 1.0
    }
    fn image_rows(&self) -> Option<ImageRows<'_, T>> {
        ImageRows::from_view(self)
    }
    fn pack(&self, alpha: f32, rows: (usize, usize), depth: (usize, usize), mr: usize, dst: &mut [f32]) {
        pack_a(&Lines::from(self), alpha, rows, depth, mr, dst)
    }
    fn direct(
        &self,
        alpha: f32,
        rows: (usize, usize),
        depth: (usize, usize),
        buf: &mut [f32],
    ) -> (*const f32, usize, usize) {
        loops::direct_a(&Lines::from(self), alpha, rows, depth, buf)
    }
}

/// Rows `index[0], index[1], ..` of a matrix `base`, as a `(index.len(),
/// base.cols())` operand, or its transpose ([`AOperand::t`]): a mini-batch
/// read straight from the data set, no copy.
///
/// ```
/// use simdnet::gemm::{gemm, Epilogue, Gathered, Parallelism};
/// use simdnet::{MatRef, Matrix};
/// let pixels: Vec<u8> = (0..12).collect(); // 4 examples of 3 pixels
/// let x = MatRef::from_slice(&pixels, 4, 3);
/// let batch = [2, 0];
/// let xb = Gathered::new(x, &batch).unwrap(); // rows 2 and 0: (2, 3)
/// let w = Matrix::from_slice(3, 1, &[1.0, 1.0, 1.0]);
/// let mut out = Matrix::zeros(2, 1);
/// gemm(1.0, xb, w.view(), 0.0, out.view_mut(), Epilogue::None, Parallelism::Sequential);
/// assert_eq!(out.as_slice(), &[6.0 + 7.0 + 8.0, 0.0 + 1.0 + 2.0]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Gathered<'a, T: Element> {
    base: MatRef<'a, T>,
    index: &'a [usize],
    transposed: bool,
}

impl<'a, T: Element> Gathered<'a, T> {
    /// Rows `index` of `base` (in that order; repeats allowed); an error
    /// naming the first index past `base`'s rows.
    pub fn new(base: MatRef<'a, T>, index: &'a [usize]) -> Result<Self> {
        if let Some(&bad) = index.iter().find(|&&i| i >= base.rows()) {
            return Err(Error::Invalid(format!(
                "row {bad} is out of range: the matrix has {} rows",
                base.rows()
            )));
        }
        Ok(Gathered {
            base,
            index,
            transposed: false,
        })
    }

    /// The matrix the rows are picked from.
    pub fn base(&self) -> MatRef<'a, T> {
        self.base
    }

    /// The picked rows' indices in `base`.
    pub fn index(&self) -> &'a [usize] {
        self.index
    }

    /// The layout packing reads: the picked rows as an indexed row axis
    /// (transposed: an indexed column axis).
    fn lines(&self) -> Lines<'a, T> {
        let (rs, cs) = (self.base.row_stride(), self.base.col_stride());
        let (n, k) = (self.index.len(), self.base.cols());
        let lines = if self.transposed {
            Lines::new(
                self.base.data(),
                (k, Axis::Stride(cs)),
                (n, Axis::Index(self.index, rs)),
            )
        } else {
            Lines::new(
                self.base.data(),
                (n, Axis::Index(self.index, rs)),
                (k, Axis::Stride(cs)),
            )
        };
        // Every index is below base.rows() (checked by `new`, kept by
        // `rows_range`), so every element is an element of `base`.
        lines.expect("Gathered: every index is a row of the base matrix")
    }

    /// Rows: the picked rows (transposed: the base's columns).
    pub fn rows(&self) -> usize {
        if self.transposed {
            self.base.cols()
        } else {
            self.index.len()
        }
    }

    /// Columns: the base's columns (transposed: the picked rows).
    pub fn cols(&self) -> usize {
        if self.transposed {
            self.index.len()
        } else {
            self.base.cols()
        }
    }

    /// The transpose (`Xᵀ`, for the weight gradient `Xᵀ·dZ`), no copy.
    pub fn t(self) -> Self {
        Gathered {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Element `(i, j)` of the operand, as stored.
    pub fn at(&self, i: usize, j: usize) -> T {
        if self.transposed {
            self.base.at(self.index[j], i)
        } else {
            self.base.at(self.index[i], j)
        }
    }
}

impl<T: Element> sealed::Sealed for Gathered<'_, T> {}

impl<T: Element> AOperand for Gathered<'_, T> {
    type Elem = T;

    fn rows(&self) -> usize {
        Gathered::rows(self)
    }
    fn cols(&self) -> usize {
        Gathered::cols(self)
    }
    fn rows_range(self, r0: usize, r1: usize) -> Self {
        if self.transposed {
            Gathered {
                base: self.base.cols_range(r0, r1),
                ..self
            }
        } else {
            Gathered {
                index: &self.index[r0..r1],
                ..self
            }
        }
    }
    fn t(self) -> Self {
        Gathered::t(self)
    }
    fn is_transposed(&self) -> bool {
        self.transposed
    }
    fn in_place(&self, _alpha: f32) -> bool {
        false
    }
    fn image_rows(&self) -> Option<ImageRows<'_, T>> {
        if self.transposed {
            return None;
        }
        let (data, rs) = (self.base.data(), self.base.row_stride());
        if self.base.col_stride() != 1 && self.base.cols() > 1 {
            return None;
        }
        ImageRows::new(
            data,
            self.index.len(),
            self.base.cols(),
            Axis::Index(self.index, rs),
        )
    }
    fn pack(&self, alpha: f32, rows: (usize, usize), depth: (usize, usize), mr: usize, dst: &mut [f32]) {
        pack_a(&self.lines(), alpha, rows, depth, mr, dst)
    }
    fn direct(
        &self,
        alpha: f32,
        rows: (usize, usize),
        depth: (usize, usize),
        buf: &mut [f32],
    ) -> (*const f32, usize, usize) {
        loops::direct_a(&self.lines(), alpha, rows, depth, buf)
    }
}
