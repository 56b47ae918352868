//! A convolution's input as a GEMM operand, never unfolded in memory ("im2col").
//!
//! A stride-1 convolution over images kept as rows of a matrix (one example's
//! `(height, width, channels)` image per row, NHWC) is one product
//! `z = im2col(x)·W`, where `im2col(x)` has one row per output position of
//! every image and one column per filter tap:
//!
//! ```text
//! im2col(x): (images·out_h·out_w, kh·kw·c)
//!   element (q, t), q = (n·out_h + oy)·out_w + ox,  t = (ky·kw + kx)·c + ci:
//!   x[n, oy + ky - pad_top, ox + kx - pad_left, ci], or 0 outside the image (padding)
//! ```
//!
//! [`Im2col`] is that matrix as an [`AOperand`]: packing reads each element
//! from the image where it is (converting `u8` pixels and applying `alpha`),
//! so the unfolded matrix (`kh·kw` times the image) is never stored. Its
//! transpose ([`AOperand::t`]) is the operand of the weight gradient
//! `dW = im2col(x)ᵀ·dz`. The [`Window`] is general (any padding on the top
//! and left, any output size; everything outside the image reads as 0), so
//! the same operand serves the input gradient as a "full" convolution of
//! `dz` ([`Window::input_gradient`]).
//!
//! Speed: along a row of `im2col`, the taps of one window row (`kx, ci`)
//! are `kw·c` consecutive numbers of the image, so packing copies runs, not
//! single elements: a row-major block (the direct mode, and the transposed
//! operand's micro-panels) is filled run by run; the untransposed
//! micro-panels are filled through a small on-stack block, transposed in
//! registers by 8x8 tiles. When every window lies inside its image (no
//! padding: a `valid` layer) and the images are `f32` with no scale, nothing
//! is copied: the GEMM's gather micro-kernel reads element `(q, t)` at
//! `pointer[q] + offset[t]` (one pointer per output position, one offset per
//! tap; or, transposed, the other way round), see [`AOperand::gather_depth`].

use super::operand::{sealed, AOperand};
use super::pack::{transpose_panel, Axis};
use crate::geometry::{input_position, Conv2dGeometry};
use crate::matrix::{as_f32, Element, MatRef};
#[cfg(target_feature = "avx512f")]
use crate::simd::{LANES, V};

/// Images stored as rows of a matrix: row `r`'s `len` numbers are
/// contiguous from `data[row.at(r)]` (a row-major view, or rows picked by
/// index from a data set).
#[derive(Clone, Copy, Debug)]
pub struct ImageRows<'a, T: Element> {
    data: &'a [T],
    rows: usize,
    len: usize,
    row: Axis<'a>,
}

impl<'a, T: Element> ImageRows<'a, T> {
    /// Rows of `len` contiguous numbers at `row.at(r)` in `data`, `r < rows`;
    /// `None` if one would reach past `data`.
    pub fn new(data: &'a [T], rows: usize, len: usize, row: Axis<'a>) -> Option<Self> {
        if rows > 0 && len > 0 {
            let last = match row {
                Axis::Stride(s) => (rows - 1).checked_mul(s)?,
                Axis::Index(index, s) => index.get(..rows)?.iter().max()?.checked_mul(s)?,
            };
            if last.checked_add(len)? > data.len() {
                return None;
            }
        } else if matches!(row, Axis::Index(index, _) if index.len() < rows) {
            return None;
        }
        Some(ImageRows { data, rows, len, row })
    }

    /// The rows of a view whose columns are contiguous (`None` otherwise).
    pub fn from_view(x: &MatRef<'a, T>) -> Option<Self> {
        if x.col_stride() != 1 && x.cols() > 1 {
            return None;
        }
        ImageRows::new(x.data(), x.rows(), x.cols(), Axis::Stride(x.row_stride()))
    }

    /// Rows (images).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Numbers per row.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no numbers at all.
    pub fn is_empty(&self) -> bool {
        self.rows == 0 || self.len == 0
    }

    /// Row `r` (`r < rows`).
    #[inline]
    pub fn row(&self, r: usize) -> &'a [T] {
        assert!(r < self.rows, "ImageRows: row {r} of {}", self.rows);
        &self.data[self.row.at(r)..][..self.len]
    }
}

/// The geometry of a convolution's windows, as packing reads them: input
/// images `height x width x channels`, a `kernel_h x kernel_w` window, its
/// top-left corner at `(oy - pad_top, ox - pad_left)` for output position
/// `(oy, ox)`, `out_h x out_w` positions. Anything outside the image is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Input image rows.
    pub height: usize,
    /// Input image columns.
    pub width: usize,
    /// Input channels.
    pub channels: usize,
    /// Window rows `kh`.
    pub kernel_h: usize,
    /// Window columns `kw`.
    pub kernel_w: usize,
    /// Rows of zeros above the image.
    pub pad_top: usize,
    /// Columns of zeros left of the image.
    pub pad_left: usize,
    /// Output positions per column.
    pub out_h: usize,
    /// Output positions per row.
    pub out_w: usize,
}

impl Window {
    /// The windows of a convolution's forward pass (and of its weight
    /// gradient): over `x`, as [`Conv2dGeometry`] says.
    pub fn forward(g: &Conv2dGeometry) -> Window {
        let (input, output) = (g.input(), g.output());
        Window {
            height: input.height(),
            width: input.width(),
            channels: input.channels(),
            kernel_h: g.kernel_h(),
            kernel_w: g.kernel_w(),
            pad_top: g.pad_top(),
            pad_left: g.pad_left(),
            out_h: output.height(),
            out_w: output.width(),
        }
    }

    /// The windows of the input gradient as a "full" convolution over `dz`
    /// (`out_h x out_w x c_out` images): padding `kh - 1 - pad_top` on top and
    /// `kw - 1 - pad_left` on the left, one position per input pixel:
    /// `dx = im2col_full(dz)·W_flipped`, with
    /// `W_flipped[(ky, kx, co), ci] = W[(kh-1-ky, kw-1-kx, ci), co]`.
    pub fn input_gradient(g: &Conv2dGeometry) -> Window {
        let (input, output) = (g.input(), g.output());
        Window {
            height: output.height(),
            width: output.width(),
            channels: output.channels(),
            kernel_h: g.kernel_h(),
            kernel_w: g.kernel_w(),
            pad_top: g.kernel_h() - 1 - g.pad_top(),
            pad_left: g.kernel_w() - 1 - g.pad_left(),
            out_h: input.height(),
            out_w: input.width(),
        }
    }

    /// Where in its image the window of output position `(oy, ox)` starts
    /// (its top-left number), if it and the next `count - 1` windows of
    /// the output row lie wholly inside the image (no padding read); `None`
    /// otherwise, or for no window.
    fn inside_from(&self, (oy, ox): (usize, usize), count: usize) -> Option<usize> {
        // (`ox + count <= out_w`, one output row, is implied by the last
        // window's right edge as the stride is 1; kept as the condition
        // that side-by-side windows rely on)
        let inside = count > 0
            && ox + count <= self.out_w
            && oy >= self.pad_top
            && oy - self.pad_top + self.kernel_h <= self.height
            && ox >= self.pad_left
            && ox + count - 1 - self.pad_left + self.kernel_w <= self.width;
        inside.then(|| ((oy - self.pad_top) * self.width + ox - self.pad_left) * self.channels)
    }

    /// The elements `e_lo..e_hi` of a window row (`e = kx·channels + ci`)
    /// that read inside the image at output column `ox`; the others are padding.
    fn inside_elements(&self, ox: usize) -> (usize, usize) {
        let kx_lo = self.pad_left.saturating_sub(ox).min(self.kernel_w);
        let kx_hi = (self.width + self.pad_left)
            .saturating_sub(ox)
            .min(self.kernel_w)
            .max(kx_lo);
        (kx_lo * self.channels, kx_hi * self.channels)
    }

    /// Numbers per input image: `height·width·channels`.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Output positions per image: `out_h·out_w`.
    pub fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Taps per window (columns of `im2col`): `kh·kw·channels`.
    pub fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w * self.channels
    }
}

/// `im2col(x)` (or its transpose) for images `x` stored as rows: a
/// `(rows·out_h·out_w, kh·kw·c)` GEMM operand read straight from the images
/// (see the module doc).
///
/// ```
/// use simdnet::gemm::{gemm, Epilogue, Im2col, Parallelism, Window};
/// use simdnet::{MatRef, Matrix};
/// // one 3x3 image, one channel; a 2x2 window, no padding: 2x2 positions
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let win = Window { height: 3, width: 3, channels: 1, kernel_h: 2, kernel_w: 2,
///                    pad_top: 0, pad_left: 0, out_h: 2, out_w: 2 };
/// let a = Im2col::new(MatRef::from_slice(&x, 1, 9), win).unwrap(); // (4, 4)
/// assert_eq!(a.at(1, 0..4), vec![2.0, 3.0, 5.0, 6.0]); // the window at (0, 1)
/// let w = Matrix::from_slice(4, 1, &[1.0, 2.0, -1.0, 0.0]);
/// let mut z = Matrix::zeros(4, 1);
/// gemm(1.0, a, w.view(), 0.0, z.view_mut(), Epilogue::None, Parallelism::Sequential);
/// assert_eq!(z.as_slice(), &[1.0, 3.0, 7.0, 9.0]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Im2col<'a, T: Element> {
    src: ImageRows<'a, T>,
    win: Window,
    /// Rows `m0..m1` (output positions) of the untransposed matrix.
    m: (usize, usize),
    /// Columns `k0..k1` (taps) of the untransposed matrix.
    k: (usize, usize),
    transposed: bool,
}

/// Window rows shorter than this many numbers (`kw·c`) are copied tap by
/// tap from a table of offsets rather than run by run (fill_block).
const SHORT_RUN: usize = 16;
/// The most taps copied tap by tap from the table.
const MAX_GATHER: usize = 64;
/// Floats of the on-stack block when packing untransposed micro-panels (16 KiB).
const BLOCK: usize = 4096;
/// The largest micro-kernel `mr` the on-stack block holds.
const MAX_MR: usize = 64;
/// Floats of the on-stack block when packing transposed micro-panels (32 KiB).
const TRANSPOSED_BLOCK: usize = 8192;

impl<'a, T: Element> Im2col<'a, T> {
    /// `im2col` of the images in the rows of `x` (`(images, h·w·c)`,
    /// contiguous columns); `None` if the rows are not `win.image_len()`
    /// long or not contiguous.
    pub fn new(x: MatRef<'a, T>, win: Window) -> Option<Self> {
        Im2col::from_rows(ImageRows::from_view(&x)?, win)
    }

    /// `im2col` of the images `rows` (a view, or rows gathered by index:
    /// [`AOperand::image_rows`]); `None` if the rows are not `win.image_len()` long.
    pub fn from_rows(rows: ImageRows<'a, T>, win: Window) -> Option<Self> {
        if rows.len() != win.image_len() {
            return None;
        }
        Some(Im2col {
            m: (0, rows.rows() * win.positions()),
            k: (0, win.taps()),
            src: rows,
            win,
            transposed: false,
        })
    }

    /// The window geometry.
    pub fn window(&self) -> Window {
        self.win
    }

    /// Row `i` of the operand (as seen, transposed or not), columns `cols`, as `f32`.
    pub fn at(&self, i: usize, cols: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = vec![0.0; cols.len()];
        if self.transposed {
            for (j, o) in cols.zip(&mut out) {
                self.fill(self.m.0 + j, self.k.0 + i, 1, 1.0, std::slice::from_mut(o));
            }
        } else {
            self.fill(self.m.0 + i, self.k.0 + cols.start, cols.len(), 1.0, &mut out);
        }
        out
    }

    /// `dst[j] = alpha · im2col[q, t0 + j]` for `j < dst.len()` (absolute
    /// row `q`, absolute taps), copying runs of the image.
    #[inline]
    fn fill(&self, q: usize, t0: usize, len: usize, alpha: f32, dst: &mut [f32]) {
        let w = &self.win;
        let positions = w.positions();
        let (n, pos) = (q / positions, q % positions);
        let (oy, ox) = (pos / w.out_w, pos % w.out_w);
        let image = self.src.row(n);
        let run_len = w.kernel_w * w.channels;
        let inside = w.inside_elements(ox);
        let dst = &mut dst[..len];
        let (mut t, end, mut j) = (t0, t0 + len, 0);
        while t < end {
            let ky = t / run_len;
            let r = t - ky * run_len;
            let run = (run_len - r).min(end - t);
            fill_run(&mut dst[j..j + run], image, w, (oy, ox), (ky, r), inside, alpha);
            j += run;
            t += run;
        }
    }
}

impl<T: Element> Im2col<'_, T> {
    /// Rows `q0..q0 + count` (absolute positions) of [`fill`](Self::fill)
    /// at once, row `j` at `dst[j·ld..][..len]`: the runs of the taps are
    /// found once, and the position advances without a division.
    #[allow(clippy::too_many_arguments)]
    fn fill_block(
        &self,
        q0: usize,
        count: usize,
        t0: usize,
        len: usize,
        alpha: f32,
        dst: &mut [f32],
        ld: usize,
    ) {
        if count == 0 || len == 0 {
            return;
        }
        assert!(
            dst.len() >= (count - 1) * ld + len,
            "Im2col: block buffer too small"
        );
        let w = &self.win;
        let c = w.channels;
        let run_len = w.kernel_w * c;
        // The taps t0..t0+len as runs inside one window row: (offset in the row, ky, first element, length).
        const MAX_RUNS: usize = 64;
        let mut runs = [(0usize, 0usize, 0usize, 0usize); MAX_RUNS];
        let (mut nruns, mut t, end) = (0, t0, t0 + len);
        while t < end {
            if nruns == MAX_RUNS {
                // (a window taller than MAX_RUNS rows: one position at a time)
                for j in 0..count {
                    self.fill(q0 + j, t0, len, alpha, &mut dst[j * ld..]);
                }
                return;
            }
            let ky = t / run_len;
            let r = t - ky * run_len;
            let run = (run_len - r).min(end - t);
            runs[nruns] = (t - t0, ky, r, run);
            nruns += 1;
            t += run;
        }
        let runs = &runs[..nruns];
        // A window wholly inside the image (every position of a `valid`
        // convolution) needs no clipping: each run starts at a fixed offset
        // from the window's top-left number, and short runs (one channel:
        // runs of kw numbers) are read tap by tap from a table of offsets.
        let mut run_src = [0usize; MAX_RUNS];
        for (s, &(_, ky, r, _)) in run_src.iter_mut().zip(runs) {
            *s = ky * w.width * c + r;
        }
        let gather = run_len < SHORT_RUN && len <= MAX_GATHER;
        let mut tap_src = [0usize; MAX_GATHER];
        if gather {
            for (j, s) in tap_src.iter_mut().take(len).enumerate() {
                let t = t0 + j;
                *s = (t / run_len) * w.width * c + t % run_len;
            }
        }
        let positions = w.positions();
        let (mut n, pos) = (q0 / positions, q0 % positions);
        let (mut oy, mut ox) = (pos / w.out_w, pos % w.out_w);
        let mut image = self.src.row(n);
        for j in 0..count {
            let row = &mut dst[j * ld..j * ld + len];
            if let Some(top_left) = w.inside_from((oy, ox), 1) {
                let src = &image[top_left..];
                if gather {
                    for (d, &o) in row.iter_mut().zip(&tap_src[..len]) {
                        *d = alpha * src[o].to_f32();
                    }
                } else {
                    for (&(off, _, _, run), &o) in runs.iter().zip(&run_src) {
                        convert(&src[o..o + run], alpha, &mut row[off..off + run]);
                    }
                }
                if next_position(w, (&mut n, &mut oy, &mut ox)) && j + 1 < count {
                    image = self.src.row(n);
                }
                continue;
            }
            let inside = w.inside_elements(ox);
            for &(off, ky, r, run) in runs {
                fill_run(
                    &mut row[off..off + run],
                    image,
                    w,
                    (oy, ox),
                    (ky, r),
                    inside,
                    alpha,
                );
            }
            if next_position(w, (&mut n, &mut oy, &mut ox)) && j + 1 < count {
                image = self.src.row(n);
            }
        }
    }

    /// [`AOperand::pack`]'s panel of `rows` positions from absolute row `q`
    /// (taps `t0..t0 + len`, absolute) straight from an `f32` image, when the
    /// positions are side by side in one output row and every window lies
    /// inside the image: then each window row's taps are one run of the
    /// image, and the next position's run starts `channels` floats later,
    /// so the runs are rows of a strided matrix that [`transpose_panel`]
    /// reads where they are (`alpha · x`, rounded once, as the copy through
    /// the block). Returns whether it packed; a `u8` image, a panel crossing
    /// an output row or a window reaching into the padding take the block.
    fn pack_from_image(
        &self,
        q: usize,
        rows: usize,
        (t0, len): (usize, usize),
        alpha: f32,
        panel: &mut [f32],
        mr: usize,
    ) -> bool {
        let w = &self.win;
        let Some(image) = as_f32(self.src.row(q / w.positions())) else {
            return false;
        };
        let pos = q % w.positions();
        let (oy, ox) = (pos / w.out_w, pos % w.out_w);
        let Some(top_left) = w.inside_from((oy, ox), rows) else {
            return false;
        };
        if rows > mr || panel.len() < len * mr {
            return false;
        }
        let (c, row_elems) = (w.channels, w.width * w.channels);
        let run_len = w.kernel_w * c;
        let (mut t, end) = (t0, t0 + len);
        while t < end {
            let ky = t / run_len;
            let r = t - ky * run_len;
            let run = (run_len - r).min(end - t);
            let src = top_left + ky * row_elems + r;
            assert!(
                src + (rows - 1) * c + run <= image.len(),
                "Im2col::pack: a window outside its image"
            );
            // SAFETY: position i's run is image[src + i·c..][..run], inside
            // the image (asserted for the last); the panel holds len·mr
            // floats, of which this run's columns are (t - t0)·mr.. + run·mr,
            // and rows <= mr.
            unsafe {
                let from = image.as_ptr().add(src);
                let to = panel.as_mut_ptr().add((t - t0) * mr);
                transpose_panel(|i| from.add(i * c), rows, run, to, mr, alpha);
            }
            t += run;
        }
        true
    }
}

/// `out = alpha ·` elements `r..r + out.len()` of window row `ky` at output
/// position `(oy, ox)` of `image`: its numbers where the window is inside the
/// image (elements `inside`, see [`Window::inside_elements`]), zeros elsewhere.
#[inline(always)]
fn fill_run<T: Element>(
    out: &mut [f32],
    image: &[T],
    w: &Window,
    (oy, ox): (usize, usize),
    (ky, r): (usize, usize),
    (e_lo, e_hi): (usize, usize),
    alpha: f32,
) {
    let Some(iy) = input_position(oy, ky, w.pad_top, w.height) else {
        out.fill(0.0);
        return;
    };
    let run = out.len();
    let lo = e_lo.clamp(r, r + run) - r;
    let hi = e_hi.clamp(r, r + run) - r;
    out[..lo].fill(0.0);
    out[hi..].fill(0.0);
    if hi > lo {
        // element e of the window row is image[(iy·width + ox - pad_left)·c + e]
        let c = w.channels;
        let start = (iy * w.width + ox) * c + r + lo - w.pad_left * c;
        convert(&image[start..start + (hi - lo)], alpha, &mut out[lo..hi]);
    }
}

/// Steps the output position `(n, oy, ox)` (image, row, column) to the next
/// one in row-major order; `true` when it moves on to the next image.
#[inline(always)]
fn next_position(w: &Window, (n, oy, ox): (&mut usize, &mut usize, &mut usize)) -> bool {
    *ox += 1;
    if *ox < w.out_w {
        return false;
    }
    *ox = 0;
    *oy += 1;
    if *oy < w.out_h {
        return false;
    }
    *oy = 0;
    *n += 1;
    true
}

/// Copies the first `N` floats of each `from` slice to each `cols` slice (of `N` floats).
#[inline(always)]
fn copy_columns<'a, const N: usize>(
    cols: impl Iterator<Item = &'a mut [f32]>,
    from: impl Iterator<Item = &'a [f32]>,
) {
    for (d, s) in cols.zip(from) {
        let d: &mut [f32; N] = d.try_into().expect("N floats");
        *d = *<&[f32; N]>::try_from(&s[..N]).expect("N floats");
    }
}

/// `dst[i] = alpha · src[i]` as `f32` (vectorised by the compiler).
#[inline(always)]
fn convert<T: Element>(src: &[T], alpha: f32, dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = alpha * s.to_f32();
    }
}

/// The adjoint of unfolding ("col2im"): adds each element of `cols`, one
/// image's `(out_h·out_w, kh·kw·c)` unfolded matrix, to the image pixel it
/// was read from (`image += fold(cols)`); elements of the padding are dropped.
/// Positions and taps are visited in order, so the sums are always made in
/// the same order.
///
/// Shapes: `image: height·width·channels`, `cols: out_h·out_w·kh·kw·channels`.
pub fn col2im_add(image: &mut [f32], cols: &[f32], w: &Window) {
    assert_eq!(image.len(), w.image_len(), "col2im_add: image");
    assert_eq!(cols.len(), w.positions() * w.taps(), "col2im_add: cols");
    #[cfg(target_feature = "avx512f")]
    if w.width * w.channels <= NARROW_ROW && w.out_w <= NARROW_POSITIONS {
        // the row's vectors as a constant, so that they stay in registers
        return match (w.width * w.channels).div_ceil(LANES) {
            0 | 1 => col2im_add_narrow_rows::<1>(image, cols, w),
            2 => col2im_add_narrow_rows::<2>(image, cols, w),
            3 => col2im_add_narrow_rows::<3>(image, cols, w),
            4 => col2im_add_narrow_rows::<4>(image, cols, w),
            5 => col2im_add_narrow_rows::<5>(image, cols, w),
            6 => col2im_add_narrow_rows::<6>(image, cols, w),
            7 => col2im_add_narrow_rows::<7>(image, cols, w),
            _ => col2im_add_narrow_rows::<8>(image, cols, w),
        };
    }
    col2im_add_in_memory(image, cols, w);
}

/// [`col2im_add`] position by position: each window row's `kw·c` numbers
/// added to the image row they came from.
fn col2im_add_in_memory(image: &mut [f32], cols: &[f32], w: &Window) {
    let (c, taps) = (w.channels, w.taps());
    let run_len = w.kernel_w * c;
    for oy in 0..w.out_h {
        for ox in 0..w.out_w {
            let row = &cols[(oy * w.out_w + ox) * taps..][..taps];
            let (e_lo, e_hi) = w.inside_elements(ox);
            if e_hi == e_lo {
                continue;
            }
            for ky in 0..w.kernel_h {
                let Some(iy) = input_position(oy, ky, w.pad_top, w.height) else {
                    continue;
                };
                let start = (iy * w.width + ox) * c + e_lo - w.pad_left * c;
                let dst = &mut image[start..start + (e_hi - e_lo)];
                for (d, &v) in dst.iter_mut().zip(&row[ky * run_len + e_lo..ky * run_len + e_hi]) {
                    *d += v;
                }
            }
        }
    }
}

/// The widest image row (`width·channels` numbers) [`col2im_add_narrow_rows`]
/// keeps in registers: 8 vectors.
#[cfg(target_feature = "avx512f")]
const NARROW_ROW: usize = 8 * LANES;
/// The most output positions per row [`col2im_add_narrow_rows`] plans for.
#[cfg(target_feature = "avx512f")]
const NARROW_POSITIONS: usize = 64;

/// [`col2im_add`] for images whose rows fit in `ROW_VECTORS <= 8` vectors
/// (LeNet-5's second convolution: 14x6 = 84 numbers, 6 vectors), one image
/// row at a time, the row held in registers. Row `iy` receives, for each
/// output row `oy` whose windows cover it (ascending) and each position
/// `ox` (ascending), the window row `ky = iy + pad_top - oy` of `(oy, ox)`:
/// a run of `kw·c` numbers starting at flat offset `(ox - pad_left)·c`,
/// added to the 2-3 row vectors it meets by a masked load and a masked add
/// (lanes the run misses add nothing, not `+0`). Each number gets the same
/// additions in the same order as [`col2im_add_in_memory`]: the same bits.
/// That loop adds each run to memory that the next run overlaps at another
/// offset, so every load waits for the stores before it. LeNet-5's second
/// convolution, one 64-image shard, Zen 5 (AVX-512, 16 lanes): 0.143-0.153 ms in memory,
/// 0.083 ms here.
#[cfg(target_feature = "avx512f")]
fn col2im_add_narrow_rows<const ROW_VECTORS: usize>(image: &mut [f32], cols: &[f32], w: &Window) {
    use core::arch::x86_64::{__m512, _mm512_mask_add_ps, _mm512_maskz_loadu_ps};
    let (c, taps) = (w.channels, w.taps());
    let (row_len, run_len) = (w.width * c, w.kernel_w * c);
    assert!(
        row_len <= ROW_VECTORS * LANES && w.out_w <= NARROW_POSITIONS,
        "col2im_add_narrow_rows: row too wide"
    );
    // for each position ox and row vector v: the lanes its run covers, and the
    // offset into the run of lane 0 (flat 16·v - start, possibly negative)
    let mut masks = [[0u16; ROW_VECTORS]; NARROW_POSITIONS];
    let mut shift = [[0isize; ROW_VECTORS]; NARROW_POSITIONS];
    for ox in 0..w.out_w {
        let start = (ox as isize - w.pad_left as isize) * c as isize;
        let (lo, hi) = (start.max(0), (start + run_len as isize).min(row_len as isize));
        for v in 0..ROW_VECTORS {
            let (v0, v1) = ((v * LANES) as isize, ((v + 1) * LANES) as isize);
            let (a, b) = (lo.max(v0), hi.min(v1));
            if a < b {
                masks[ox][v] = ((((1u32 << (b - v0)) - 1) & !((1u32 << (a - v0)) - 1)) & 0xffff) as u16;
            }
            shift[ox][v] = v0 - start;
        }
    }
    let reg = |x: V| -> __m512 {
        // SAFETY: V is f32x16 under AVX-512, the same 64 bytes as __m512
        unsafe { core::mem::transmute::<V, __m512>(x) }
    };
    for iy in 0..w.height {
        let row = &mut image[iy * row_len..][..row_len];
        let mut r = [reg(V::ZERO); ROW_VECTORS];
        for (v, r) in r.iter_mut().enumerate() {
            let n = LANES.min(row_len.saturating_sub(v * LANES));
            if n > 0 {
                // SAFETY: v·LANES + n <= row_len
                *r = reg(unsafe { crate::simd::load_partial(row.as_ptr().add(v * LANES), n) });
            }
        }
        // output rows whose windows read image row iy: oy + ky - pad_top = iy
        let oy_lo = (iy + w.pad_top + 1).saturating_sub(w.kernel_h);
        let oy_hi = (iy + w.pad_top + 1).min(w.out_h);
        for oy in oy_lo..oy_hi {
            let ky = iy + w.pad_top - oy;
            for ox in 0..w.out_w {
                let run = (oy * w.out_w + ox) * taps + ky * run_len;
                assert!(run + run_len <= cols.len(), "col2im: run inside cols");
                for v in 0..ROW_VECTORS {
                    // (skipping empty masks: issuing them anyway, with their
                    // addresses outside the run, was 1.6x slower)
                    let mask = masks[ox][v];
                    if mask == 0 {
                        continue;
                    }
                    // lane l reads run element shift + l; only the lanes of
                    // `mask` are read, and those elements lie in 0..run_len
                    let p = cols.as_ptr().wrapping_add(run).wrapping_offset(shift[ox][v]);
                    // SAFETY: the masked load touches only the lanes of `mask`,
                    // inside the run (checked above); AVX-512F is in this build
                    unsafe {
                        let x = _mm512_maskz_loadu_ps(mask, p);
                        r[v] = _mm512_mask_add_ps(r[v], mask, r[v], x);
                    }
                }
            }
        }
        for (v, &r) in r.iter().enumerate() {
            let n = LANES.min(row_len.saturating_sub(v * LANES));
            if n > 0 {
                // SAFETY: v·LANES + n <= row_len; V is __m512's 64 bytes
                unsafe {
                    crate::simd::store_partial(
                        row.as_mut_ptr().add(v * LANES),
                        core::mem::transmute::<__m512, V>(r),
                        n,
                    )
                };
            }
        }
    }
}

impl<T: Element> sealed::Sealed for Im2col<'_, T> {}

impl<T: Element> AOperand for Im2col<'_, T> {
    type Elem = T;

    fn rows(&self) -> usize {
        if self.transposed {
            self.k.1 - self.k.0
        } else {
            self.m.1 - self.m.0
        }
    }
    fn cols(&self) -> usize {
        if self.transposed {
            self.m.1 - self.m.0
        } else {
            self.k.1 - self.k.0
        }
    }
    fn rows_range(self, r0: usize, r1: usize) -> Self {
        assert!(
            r0 <= r1 && r1 <= self.rows(),
            "Im2col: rows {r0}..{r1} of {}",
            self.rows()
        );
        if self.transposed {
            Im2col {
                k: (self.k.0 + r0, self.k.0 + r1),
                ..self
            }
        } else {
            Im2col {
                m: (self.m.0 + r0, self.m.0 + r1),
                ..self
            }
        }
    }
    fn t(self) -> Self {
        Im2col {
            transposed: !self.transposed,
            ..self
        }
    }
    fn is_transposed(&self) -> bool {
        self.transposed
    }
    fn in_place(&self, _alpha: f32) -> bool {
        false
    }
    fn image_rows(&self) -> Option<ImageRows<'_, T>> {
        None
    }
    fn pack(
        &self,
        alpha: f32,
        (i0, mc): (usize, usize),
        (p0, kc): (usize, usize),
        mr: usize,
        dst: &mut [f32],
    ) {
        assert!(
            i0 + mc <= self.rows() && p0 + kc <= self.cols(),
            "Im2col::pack: block outside A"
        );
        let panels = mc.div_ceil(mr);
        assert!(dst.len() >= panels * mr * kc, "Im2col::pack: buffer too small");
        if self.transposed && mc <= TRANSPOSED_BLOCK {
            // A = im2colᵀ: rows are taps, the depth is positions. Each
            // position's taps i0..i0 + mc are filled once into a block on the
            // stack (a few positions at a time), then cut into the panels'
            // mr-wide columns: one pass over the image per position, not one per panel.
            let mut block = [0.0f32; TRANSPOSED_BLOCK];
            let chunk = TRANSPOSED_BLOCK / mc;
            for pc in (0..kc).step_by(chunk) {
                let np = chunk.min(kc - pc);
                self.fill_block(self.m.0 + p0 + pc, np, self.k.0 + i0, mc, alpha, &mut block, mc);
                for (r, panel) in dst.chunks_exact_mut(mr * kc).take(panels).enumerate() {
                    let rows = mr.min(mc - r * mr);
                    let cols = panel[pc * mr..(pc + np) * mr].chunks_exact_mut(mr);
                    let from = block[r * mr..].chunks(mc);
                    match (rows == mr, mr) {
                        // whole columns of the kernels' usual heights: fixed-size copies, inlined
                        (true, 12) => copy_columns::<12>(cols, from),
                        (true, 16) => copy_columns::<16>(cols, from),
                        (true, 6) => copy_columns::<6>(cols, from),
                        (true, 8) => copy_columns::<8>(cols, from),
                        _ => {
                            for (d, s) in cols.zip(from) {
                                d[..rows].copy_from_slice(&s[..rows]);
                                d[rows..].fill(0.0);
                            }
                        }
                    }
                }
            }
            return;
        }
        let mut block = [0.0f32; BLOCK];
        for (r, panel) in dst.chunks_exact_mut(mr * kc).take(panels).enumerate() {
            let first = i0 + r * mr;
            let rows = mr.min(i0 + mc - first);
            if self.transposed {
                // A = im2colᵀ: column p of the panel is position p0 + p, taps
                // first..first + rows: one run-copy per column.
                self.fill_block(self.m.0 + p0, kc, self.k.0 + first, rows, alpha, panel, mr);
                if rows < mr {
                    for col in panel.chunks_exact_mut(mr) {
                        col[rows..].fill(0.0);
                    }
                }
            } else {
                assert!(mr <= MAX_MR, "Im2col::pack: mr {mr} above {MAX_MR}");
                // Rows are positions: fill up to `width` taps of each row into
                // a row-major block on the stack (the whole depth when it
                // fits: the runs are found once per panel), then transpose it
                // into the panel; or, for f32 windows wholly inside the image
                // side by side, transpose the image itself (`pack_from_image`).
                let width_max = if kc * mr <= BLOCK {
                    kc
                } else {
                    (BLOCK / mr / 8 * 8).max(8)
                };
                let from_image =
                    self.pack_from_image(self.m.0 + first, rows, (self.k.0 + p0, kc), alpha, panel, mr);
                for pc in (0..kc).step_by(width_max).filter(|_| !from_image) {
                    let width = width_max.min(kc - pc);
                    let q = self.m.0 + first;
                    self.fill_block(q, rows, self.k.0 + p0 + pc, width, alpha, &mut block, width_max);
                    let base = block.as_ptr();
                    // SAFETY: rows i < rows <= MAX_MR of the block hold `width`
                    // floats each, width_max apart (rows·width_max <= BLOCK);
                    // the panel holds kc·mr floats and (pc + p)·mr + i < kc·mr
                    // for p < width, i < rows <= mr.
                    unsafe {
                        transpose_panel(
                            |i| base.add(i * width_max),
                            rows,
                            width,
                            panel.as_mut_ptr().add(pc * mr),
                            mr,
                            1.0,
                        )
                    };
                }
                for i in rows..mr {
                    for p in 0..kc {
                        panel[p * mr + i] = 0.0;
                    }
                }
            }
        }
    }
    fn direct(
        &self,
        alpha: f32,
        (i0, rows): (usize, usize),
        (p0, kc): (usize, usize),
        buf: &mut [f32],
    ) -> (*const f32, usize, usize) {
        assert!(
            i0 + rows <= self.rows() && p0 + kc <= self.cols(),
            "Im2col::direct: block outside A"
        );
        assert!(buf.len() >= rows * kc, "Im2col::direct: buffer too small");
        if self.transposed {
            // element (i, p) = im2col[p0 + p, i0 + i]: one run-copy per position p
            self.fill_block(self.m.0 + p0, kc, self.k.0 + i0, rows, alpha, buf, rows);
            (buf.as_ptr(), 1, rows)
        } else {
            self.fill_block(self.m.0 + i0, rows, self.k.0 + p0, kc, alpha, buf, kc);
            (buf.as_ptr(), kc, 1)
        }
    }
    fn gathers(&self, alpha: f32) -> bool {
        // In place: f32 numbers, no scale, no padding to read as zeros.
        let f32_data = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
        f32_data && alpha == 1.0 && self.windows_inside()
    }
    fn gather_depth(&self, alpha: f32, (p0, kc): (usize, usize), offs: &mut [usize]) -> bool {
        if !self.gathers(alpha) {
            return false;
        }
        assert!(
            p0 + kc <= self.cols() && offs.len() >= kc,
            "Im2col::gather_depth: block outside A"
        );
        let offs = &mut offs[..kc];
        if self.transposed {
            // depth = output positions: the windows' top-left numbers
            self.position_offsets(self.m.0 + p0, offs);
        } else {
            // depth = taps: their offsets inside a window
            for (p, o) in offs.iter_mut().enumerate() {
                *o = self.tap_offset(self.k.0 + p0 + p);
            }
        }
        true
    }
    fn gather_rows(&self, (i0, rows): (usize, usize), ptrs: &mut [*const f32]) {
        assert!(
            i0 + rows <= self.rows() && ptrs.len() >= rows,
            "Im2col::gather_rows: rows outside A"
        );
        // T is f32 (gather_depth checked it before this is called); every
        // pointer + offset below is a number of an image (`windows_inside`).
        let base = self.src.data.as_ptr().cast::<f32>();
        let ptrs = &mut ptrs[..rows];
        if self.transposed {
            for (i, ptr) in ptrs.iter_mut().enumerate() {
                *ptr = base.wrapping_add(self.tap_offset(self.k.0 + i0 + i));
            }
        } else {
            let mut offs = [0usize; 64];
            for (chunk, ptrs) in ptrs.chunks_mut(64).enumerate() {
                let offs = &mut offs[..ptrs.len()];
                self.position_offsets(self.m.0 + i0 + 64 * chunk, offs);
                for (ptr, &o) in ptrs.iter_mut().zip(offs.iter()) {
                    *ptr = base.wrapping_add(o);
                }
            }
        }
    }
}

impl<T: Element> Im2col<'_, T> {
    /// Whether every window lies inside its image (no padding read: a
    /// `valid` convolution, or a full one over padded images), so that
    /// every element is a number of the image.
    fn windows_inside(&self) -> bool {
        let w = &self.win;
        w.pad_top == 0
            && w.pad_left == 0
            && w.out_h + w.kernel_h - 1 <= w.height
            && w.out_w + w.kernel_w - 1 <= w.width
    }

    /// The offset in the images' data of tap `t` from its window's
    /// top-left number: `ky·width·c + (kx·c + ci)` (a window row is one run).
    fn tap_offset(&self, t: usize) -> usize {
        let w = &self.win;
        let run_len = w.kernel_w * w.channels;
        (t / run_len) * w.width * w.channels + t % run_len
    }

    /// The offsets in the images' data of the top-left numbers of the
    /// windows of positions `q0..q0 + dst.len()` (absolute), one by one.
    fn position_offsets(&self, q0: usize, dst: &mut [usize]) {
        let w = &self.win;
        let positions = w.positions();
        let (mut n, pos) = (q0 / positions, q0 % positions);
        let (mut oy, mut ox) = (pos / w.out_w, pos % w.out_w);
        let mut row = self.src.row.at(n);
        for d in dst {
            *d = row + (oy * w.width + ox) * w.channels;
            if next_position(w, (&mut n, &mut oy, &mut ox)) && n < self.src.rows {
                row = self.src.row.at(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fold with the image row in registers against the fold position by
    /// position, bit for bit (the same additions in the same order), on
    /// narrow rows with and without padding, odd sizes and 1..=7 vectors
    /// per row; `cols` and the image hold values whose sums round.
    #[cfg(target_feature = "avx512f")]
    #[test]
    fn narrow_rows_fold_with_the_same_bits() {
        let value = |i: usize| ((i * 2654435761) % 1000) as f32 * 0.0137 - 6.1;
        for (height, width, channels, kh, kw, pad) in [
            (14, 14, 6, 5, 5, 0),
            (14, 14, 6, 5, 5, 2),
            (5, 7, 3, 3, 3, 1),
            (9, 4, 1, 2, 3, 0),
            (3, 9, 11, 3, 2, 1),
            (6, 5, 16, 5, 5, 2),
            (4, 20, 5, 3, 5, 2),
            (2, 1, 2, 1, 1, 0),
        ] {
            let (out_h, out_w) = (height + 2 * pad + 1 - kh, width + 2 * pad + 1 - kw);
            let w = Window {
                height,
                width,
                channels,
                kernel_h: kh,
                kernel_w: kw,
                pad_top: pad,
                pad_left: pad,
                out_h,
                out_w,
            };
            assert!(width * channels <= NARROW_ROW, "a narrow case");
            let cols: Vec<f32> = (0..w.positions() * w.taps()).map(value).collect();
            let start: Vec<f32> = (0..w.image_len()).map(|i| value(i + 7)).collect();
            let (mut fast, mut slow) = (start.clone(), start);
            col2im_add(&mut fast, &cols, &w);
            col2im_add_in_memory(&mut slow, &cols, &w);
            for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
                assert_eq!(f.to_bits(), s.to_bits(), "{w:?}: image[{i}]: {f} against {s}");
            }
        }
    }

    fn naive(x: &[f32], images: usize, w: &Window) -> Vec<Vec<f32>> {
        let mut rows = Vec::new();
        for n in 0..images {
            for oy in 0..w.out_h {
                for ox in 0..w.out_w {
                    let mut row = Vec::new();
                    for ky in 0..w.kernel_h {
                        for kx in 0..w.kernel_w {
                            for ci in 0..w.channels {
                                let (py, px) = (oy + ky, ox + kx);
                                let inside = py >= w.pad_top
                                    && py - w.pad_top < w.height
                                    && px >= w.pad_left
                                    && px - w.pad_left < w.width;
                                row.push(if inside {
                                    let (iy, ix) = (py - w.pad_top, px - w.pad_left);
                                    x[n * w.image_len() + (iy * w.width + ix) * w.channels + ci]
                                } else {
                                    0.0
                                });
                            }
                        }
                    }
                    rows.push(row);
                }
            }
        }
        rows
    }

    #[test]
    fn deep_blocks_pack_in_pieces() {
        // 3·3·40 = 360 taps: a 16-row panel of all of them is more than the on-stack block
        let win = Window {
            height: 5,
            width: 4,
            channels: 40,
            kernel_h: 3,
            kernel_w: 3,
            pad_top: 1,
            pad_left: 1,
            out_h: 5,
            out_w: 4,
        };
        let x: Vec<f32> = (0..win.image_len()).map(|i| i as f32 * 0.5).collect();
        let want = naive(&x, 1, &win);
        let a = Im2col::new(MatRef::from_slice(&x, 1, win.image_len()), win).unwrap();
        let (m, k) = (a.rows(), a.cols());
        let mut dst = vec![f32::NAN; m.div_ceil(16) * 16 * k];
        a.pack(1.0, (0, m), (0, k), 16, &mut dst);
        for i in 0..m {
            for p in 0..k {
                assert_eq!(dst[(i / 16) * 16 * k + p * 16 + i % 16], want[i][p], "({i}, {p})");
            }
        }
    }

    /// Panels whose windows lie side by side inside the image are
    /// transposed from the image itself (`pack_from_image`); the others go
    /// through the block. Both must give the unfolded matrix, bit for bit,
    /// for every kernel height, blocks starting anywhere (so panels cross
    /// output rows and images), depth ranges cutting runs, with and without
    /// padding (a `valid` and a `same` window), scaled.
    #[test]
    fn panels_from_the_image_pack_the_unfolded_matrix() {
        for (pad, out) in [(0, 9), (1, 11)] {
            let win = Window {
                height: 11,
                width: 11,
                channels: 3,
                kernel_h: 3,
                kernel_w: 3,
                pad_top: pad,
                pad_left: pad,
                out_h: out,
                out_w: out,
            };
            let images = 2;
            let x: Vec<f32> = (0..images * win.image_len())
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let want = naive(&x, images, &win);
            let a = Im2col::new(MatRef::from_slice(&x, images, win.image_len()), win).unwrap();
            let (m, k) = (a.rows(), a.cols());
            for mr in [4, 6, 8, 12, 16] {
                for (i0, mc, p0, kc) in [
                    (0, m, 0, k),
                    (5, 40, 4, 20),
                    (out * out - 3, 30, 9, 18),
                    (7, 13, 0, 1),
                ] {
                    let mut dst = vec![f32::NAN; mc.div_ceil(mr) * mr * kc];
                    a.pack(0.5, (i0, mc), (p0, kc), mr, &mut dst);
                    for i in 0..mc.div_ceil(mr) * mr {
                        for p in 0..kc {
                            let got = dst[(i / mr) * mr * kc + p * mr + i % mr];
                            let expect = if i < mc { 0.5 * want[i0 + i][p0 + p] } else { 0.0 };
                            assert_eq!(
                                got.to_bits(),
                                expect.to_bits(),
                                "pad {pad}, mr {mr}, block {i0}+{mc}, {p0}+{kc}: ({i}, {p})"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_block_packs_the_unfolded_matrix() {
        let win = Window {
            height: 4,
            width: 5,
            channels: 2,
            kernel_h: 3,
            kernel_w: 2,
            pad_top: 2,
            pad_left: 1,
            out_h: 5,
            out_w: 6,
        };
        let images = 2;
        let x: Vec<f32> = (0..images * win.image_len()).map(|i| i as f32 + 1.0).collect();
        let want = naive(&x, images, &win);
        let a = Im2col::new(MatRef::from_slice(&x, images, win.image_len()), win).unwrap();
        let (m, k) = (a.rows(), a.cols());
        assert_eq!((m, k), (images * 30, 12));
        for mr in [4, 12, 16] {
            for (i0, mc, p0, kc) in [(0, m, 0, k), (3, 17, 1, 9), (50, 10, 5, 7)] {
                let mut dst = vec![f32::NAN; mc.div_ceil(mr) * mr * kc];
                a.pack(2.0, (i0, mc), (p0, kc), mr, &mut dst);
                for i in 0..mc.div_ceil(mr) * mr {
                    for p in 0..kc {
                        let got = dst[(i / mr) * mr * kc + p * mr + i % mr];
                        let expect = if i < mc { 2.0 * want[i0 + i][p0 + p] } else { 0.0 };
                        assert_eq!(got, expect, "mr {mr} block {i0},{p0}: ({i}, {p})");
                    }
                }
                // the transpose
                let t = a.t();
                let (tm, tk) = (mc.min(k - p0), kc);
                if i0 + tk <= m {
                    let mut dst = vec![f32::NAN; tm.div_ceil(mr) * mr * tk];
                    t.pack(1.0, (p0, tm), (i0, tk), mr, &mut dst);
                    for i in 0..tm {
                        for p in 0..tk {
                            let got = dst[(i / mr) * mr * tk + p * mr + i % mr];
                            assert_eq!(got, want[i0 + p][p0 + i]);
                        }
                    }
                }
            }
        }
        let mut buf = vec![0.0; m * k];
        let (ptr, ra, pa) = a.rows_range(7, 20).direct(1.0, (1, 5), (2, 6), &mut buf);
        for i in 0..5 {
            for p in 0..6 {
                // SAFETY: inside the block just written.
                assert_eq!(unsafe { *ptr.add(i * ra + p * pa) }, want[8 + i][2 + p]);
            }
        }
        let (ptr, ra, pa) = a.t().direct(1.0, (3, 4), (10, 9), &mut buf);
        for i in 0..4 {
            for p in 0..9 {
                // SAFETY: inside the block just written.
                assert_eq!(unsafe { *ptr.add(i * ra + p * pa) }, want[10 + p][3 + i]);
            }
        }
    }
}
