//! The SIMD micro-kernel, generic over its register tile `MR x (NV · LANES)`.
//!
//! Register layout for the AVX-512 default `simd-16x16` (`MR = 16`,
//! `NV = 1`, one zmm = 16 floats), per step `p` of `k`:
//!
//! ```text
//!                 b = B~[p, 0..16]               (1 zmm, loaded)
//!   a0  = A~[0, p]  ─► acc[0][0]   += a0  · b     (a_i: broadcast, 1 zmm)
//!   a1  = A~[1, p]  ─► acc[1][0]   += a1  · b
//!        ...              ...
//!   a15 = A~[15, p] ─► acc[15][0]  += a15 · b     16 zmm accumulators
//! ```
//!
//! 16 + 1 + 1 = 18 of the 32 zmm registers (why not more: see
//! [`super::SIMD_KERNELS`]). The wider `simd-12x32` is the same picture
//! with two B vectors per row:
//!
//! ```text
//!                 b0 = B~[p, 0..16]   b1 = B~[p, 16..32]
//!   a0  ─►        acc[0][0]           acc[0][1]
//!   ...
//!   a11 ─►        acc[11][0]          acc[11][1]     24 + 2 + 1 = 27 zmm
//! ```
//!
//! The AVX2 default `simd-6x16` is that picture with 6 rows of 2 ymm:
//! 12 + 2 + 1 = 15 of 16.
//!
//! The accumulators are a `[[V; NV]; MR]` array indexed only by loop
//! counters with constant bounds, so LLVM unrolls every loop and keeps each
//! accumulator in a register. A full tile without an epilogue is stored
//! straight from them. An edge tile goes to `store_edge`, a separate,
//! non-inlined function that reads a copy of the accumulators written out
//! after the `k` loop, on that path only (`simd::spill`: the array itself
//! never leaves the kernel, or LLVM may keep it in memory through the
//! loop), and writes only the valid `rows x cols` part with partial loads
//! and stores (masked on AVX-512): nothing outside the tile is read or
//! written. A full tile with an epilogue goes to
//! `store_full_epilogue`, the same way.

use super::{NextLines, TileOut};
use crate::activation::Activation;
use crate::simd::{self, LANES, V};

/// The `MR x (NV · LANES)` SIMD micro-kernel on a packed A micro-panel.
/// See [`super::KernelFn`] for the contract.
///
/// # Safety
/// As [`super::KernelFn`]: `a` readable for `MR · kc` floats, `b` for
/// `NV · LANES · kc` floats, `out` a valid exclusive tile of C.
#[inline(never)]
pub unsafe fn micro_kernel<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    out: &TileOut,
) {
    // SAFETY: a packed panel is the strided case with strides (1, MR).
    unsafe { kernel_body::<MR, NV, false>(kc, a, 1, MR, b, NV * LANES, LANES, out) }
}

/// The same micro-kernel reading A in place: `A[i, p]` at `a + i·ra + p·pa`
/// (a row-major A has `(ra, pa) = (row stride, 1)`, a transposed one
/// `(1, column stride)`). Used when packing A would not pay (one B panel).
///
/// # Safety
/// As [`super::StridedKernelFn`].
#[inline(never)]
pub unsafe fn micro_kernel_strided<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    out: &TileOut,
) {
    // SAFETY: forwarded from the caller; a packed B~ panel steps NR floats.
    unsafe { any_a_body::<MR, NV>(kc, a, ra, pa, b, NV * LANES, out) }
}

/// The same micro-kernel reading B in place as well: step `p` of the B
/// micro-panel is the `NR` floats at `b + p·pb` (a full panel of a
/// row-major B, `pb` its row stride; `pb = NR` is a packed B~ panel). Same
/// arithmetic, same order, same bits as the packed kernel.
///
/// # Safety
/// As [`super::InPlaceBKernelFn`].
#[inline(never)]
pub unsafe fn micro_kernel_b_in_place<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    pb: usize,
    out: &TileOut,
) {
    // SAFETY: forwarded from the caller.
    unsafe { any_a_body::<MR, NV>(kc, a, ra, pa, b, pb, out) }
}

/// [`micro_kernel_b_in_place`] for a tile of `rows < MR` valid rows (the
/// last tile of a block whose height is not a multiple of `MR`): the same
/// body with 1, 2, 4 or 8 rows, the fewest that hold `rows`, so that the
/// rows past the edge are not computed (a full `MR`-row body when no
/// smaller one fits; [`super::short_body_rows`]: when the body has exactly
/// `rows` rows, no row past them is read, and the loops read A in place).
/// With the 6x16 kernel, `m = 128` ends in a tile of
/// 2 rows and a 64-row shard in one of 4. A packed A~ panel is
/// `(ra, pa) = (1, MR)`, a packed B~ panel `pb = NR`. Each element is the
/// same sum in the same order as in the full tile: same bits.
///
/// # Safety
/// As [`super::ShortKernelFn`].
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn micro_kernel_short<const MR: usize, const NV: usize>(
    rows: usize,
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    pb: usize,
    out: &TileOut,
) {
    debug_assert!(rows <= MR && out.rows == rows);
    // SAFETY: forwarded from the caller; each body reads rows < its own MR
    // <= this kernel's MR of A.
    unsafe {
        match super::short_body_rows(rows, MR) {
            1 if MR > 1 => any_a_body::<1, NV>(kc, a, ra, pa, b, pb, out),
            2 if MR > 2 => any_a_body::<2, NV>(kc, a, ra, pa, b, pb, out),
            4 if MR > 4 => any_a_body::<4, NV>(kc, a, ra, pa, b, pb, out),
            8 if MR > 8 => any_a_body::<8, NV>(kc, a, ra, pa, b, pb, out),
            _ => any_a_body::<MR, NV>(kc, a, ra, pa, b, pb, out),
        }
    }
}

/// The body for an A at `a + i·ra + p·pa`: [`kernel_body`] when A's
/// columns are contiguous (`ra == 1`: a transposed view or a packed A~
/// panel, constant offsets), [`strided_body`] otherwise.
///
/// # Safety
/// As [`super::InPlaceBKernelFn`].
#[inline(always)]
unsafe fn any_a_body<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    pb: usize,
    out: &TileOut,
) {
    // B in place (`pb != NR`) at an edge tile whose columns end inside B's
    // last vector (`last` valid lanes, see `super::InPlaceBKernelFn`): in
    // the last steps that vector is read for its valid lanes only (the
    // others zero, as in a zero-padded B~); before them whole, past the
    // step's valid columns into B's next floats (`masked_steps`). The lanes
    // past the valid columns are never stored.
    let last = out.cols.wrapping_sub((NV - 1) * LANES);
    let edge = pb != NV * LANES && (1..LANES).contains(&last);
    // SAFETY: forwarded from the caller.
    unsafe {
        match (ra == 1, edge) {
            (true, false) => kernel_body::<MR, NV, false>(kc, a, 1, pa, b, pb, LANES, out),
            (false, false) => strided_body::<MR, NV, false>(kc, a, ra, pa, b, pb, LANES, out),
            (true, true) => kernel_body::<MR, NV, true>(kc, a, 1, pa, b, pb, last, out),
            (false, true) => strided_body::<MR, NV, true>(kc, a, ra, pa, b, pb, last, out),
        }
    }
}

/// The same micro-kernel reading `A[i, p]` in place at `rows[i] + offs[p]`:
/// a convolution's unfolded input read from the images (see
/// [`super::GatherKernelFn`]). Each step loads one offset and adds it to
/// every row's pointer (an addressing mode, no dependent chain). Same
/// arithmetic, same order, same bits as the packed kernel.
///
/// # Safety
/// As [`super::GatherKernelFn`].
#[inline(never)]
pub unsafe fn micro_kernel_gather<const MR: usize, const NV: usize>(
    kc: usize,
    rows: *const *const f32,
    offs: *const usize,
    b: *const f32,
    out: &TileOut,
) {
    let nr = NV * LANES;
    let mut acc = [[V::ZERO; NV]; MR];
    let mut row = [std::ptr::null::<f32>(); MR];
    for (i, row) in row.iter_mut().enumerate() {
        // SAFETY: the caller guarantees MR row pointers.
        *row = unsafe { *rows.add(i) };
    }
    let mut b = b;
    for p in 0..kc {
        // SAFETY: the caller guarantees kc offsets.
        let o = unsafe { *offs.add(p) };
        let mut bv = [V::ZERO; NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: within this step's `nr` floats of the B micro-panel.
            *bv = unsafe { simd::load(b.add(v * LANES)) };
        }
        for (acc_row, &r) in acc.iter_mut().zip(&row) {
            // SAFETY: element (i, p) of A, readable by the caller's guarantee.
            let ai = V::splat(unsafe { *r.add(o) });
            for (acc, &bv) in acc_row.iter_mut().zip(&bv) {
                *acc = simd::mul_add(ai, bv, *acc);
            }
        }
        // SAFETY: as above, for the B micro-panel.
        b = unsafe { b.add(nr) };
    }
    // SAFETY: forwarded from the caller. (`acc` goes by value: its address
    // is never taken, so LLVM keeps it in registers; otherwise, since the
    // row pointers come from memory, it must assume they may point into
    // `acc` and store every accumulator at every step.)
    unsafe { store_tile::<MR, NV>(acc, out) }
}

/// Rows of A per base pointer in [`strided_body`]: row `4g + r` is read at
/// `base[g] + r·ra`, an addressing mode (`ra`, `2·ra` as a scaled index,
/// `3·ra`), so no row's address waits for another's.
const GROUP: usize = 4;

/// [`kernel_body`] for A in place with any row stride `ra`. Computing
/// `a + i·ra` row after row makes a chain of 16 dependent adds per step
/// (measured: the strided 16x16 kernel then runs at half the FMA rate);
/// here each group of [`GROUP`] rows has its own base pointer, advanced by
/// `pa` each step, independently of the others. Same arithmetic, same
/// order, same bits as the packed kernel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn strided_body<const MR: usize, const NV: usize, const EDGE: bool>(
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    pb: usize,
    last: usize,
    out: &TileOut,
) {
    let mut acc = [[V::ZERO; NV]; MR];
    let mut base = [a; 8];
    for (g, base) in base.iter_mut().enumerate().take(MR.div_ceil(GROUP)) {
        // SAFETY: row g·GROUP < MR of the A micro-panel (or one past it).
        *base = unsafe { a.add(g * GROUP * ra) };
    }
    let mut b = b;
    // every pointer one step on along k (or one past the end)
    let advance = |base: &mut [*const f32; 8], b: &mut *const f32| {
        for base in base.iter_mut().take(MR.div_ceil(GROUP)) {
            *base = base.wrapping_add(pa);
        }
        *b = b.wrapping_add(pb);
    };
    // the first steps each prefetch a line of the next tile, if any (see
    // `NextTile`)
    let mut next = NextLines::of(out);
    let prefetching = kc.min(next.left);
    // with EDGE, the steps from `whole` on read B's last vector masked
    let whole = if EDGE { kc - masked_steps(kc, last, pb) } else { kc };
    for p in 0..prefetching {
        // SAFETY: step p of both panels (elements of A at base + r·ra); B's
        // last vector whole before `whole` (see `masked_steps`).
        unsafe {
            if EDGE && p >= whole {
                rank_1::<MR, NV, true>(&mut acc, |i| base[i / GROUP].add((i % GROUP) * ra), b, last);
            } else {
                rank_1::<MR, NV, false>(&mut acc, |i| base[i / GROUP].add((i % GROUP) * ra), b, last);
            }
        }
        advance(&mut base, &mut b);
        next.issue();
    }
    for _ in prefetching..whole.max(prefetching) {
        // SAFETY: as above.
        unsafe { rank_1::<MR, NV, false>(&mut acc, |i| base[i / GROUP].add((i % GROUP) * ra), b, last) };
        advance(&mut base, &mut b);
    }
    for _ in whole.max(prefetching)..kc {
        // SAFETY: as above, B's last vector masked.
        unsafe { rank_1::<MR, NV, EDGE>(&mut acc, |i| base[i / GROUP].add((i % GROUP) * ra), b, last) };
        advance(&mut base, &mut b);
    }
    // SAFETY: forwarded from the caller.
    unsafe { store_tile::<MR, NV>(acc, out) }
}

/// The last steps of an edge tile of B in place (`last` valid lanes in
/// B's last vector, rows `pb` apart) that read that vector masked: those
/// whose whole vector would end past the last valid float of B's last
/// row, `(kc - 1)·pb + (NV - 1)·LANES + last` floats on. Step `p` reads
/// whole up to `p·pb + NV·LANES`, inside that when `(kc - 1 - p)·pb >=
/// LANES - last`: every step but the last one for the 10 logits (`pb =
/// 10`, `last = 2`). The floats a whole read takes past the step's valid
/// columns are B's own (the rest of its row, the next rows): they reach
/// only lanes that are never stored, and change no valid lane's sum.
///
/// Measured on Zen 2 (AMD EPYC family 23 model 49, AVX2, 8 lanes, 1
/// thread, medians of 3000 calls): `H·W` 128x10x512 with every step
/// masked 43.9-44.9 GFLOP/s, with only the last one 56.2-56.9, and with B
/// packed into B~ 52.8-53.5 (the `gemm` crate 54.2-54.7): `vmaskmovps`
/// holds the loop back there.
fn masked_steps(kc: usize, last: usize, pb: usize) -> usize {
    if pb == 0 {
        kc
    } else {
        LANES.saturating_sub(last).div_ceil(pb).min(kc)
    }
}

/// The micro-kernel: `kc` rank-1 updates of the register tile, then the
/// store (`pb`: floats from one step's B row to the next; `NR` when packed).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_body<const MR: usize, const NV: usize, const EDGE: bool>(
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    pb: usize,
    last: usize,
    out: &TileOut,
) {
    let mut acc = [[V::ZERO; NV]; MR];
    let (mut a, mut b) = (a, b);
    let mut next = NextLines::of(out);
    // the first steps each prefetch a line of the next tile, if any (see
    // `NextTile`); without one, the loop is a single one, as it always was
    let prefetching = kc.min(next.left);
    // with EDGE, the steps from `whole` on read B's last vector masked
    let whole = if EDGE { kc - masked_steps(kc, last, pb) } else { kc };
    for p in 0..prefetching {
        // SAFETY: step p of both panels; B's last vector whole before
        // `whole` (see `masked_steps`). The pointers then move one step on
        // with `wrapping_add`: after the last step, an operand read in place
        // (not packed) leaves them past its end, never to be read.
        unsafe {
            if EDGE && p >= whole {
                rank_1::<MR, NV, true>(&mut acc, |i| a.add(i * ra), b, last);
            } else {
                rank_1::<MR, NV, false>(&mut acc, |i| a.add(i * ra), b, last);
            }
            (a, b) = (a.wrapping_add(pa), b.wrapping_add(pb));
        }
        next.issue();
    }
    // Two steps per turn of the loop (the same steps in the same order, so
    // the same bits): measured on Zen 2 (AMD EPYC family 23 model 49, AVX2,
    // 8 lanes; `cargo bench --bench gemm` with `SIMDNET_BENCH_KERNELS=auto`,
    // 1 thread, thread CPU time, medians of 7 alternated runs of both
    // builds): `Xᵀ·dZ` 784x16x128 1.076x as fast (7 of 7 runs),
    // 784x512x128 1.016x (6 of 7), square 512 1.032x (7 of 7), the other
    // shapes within 1.5%. Four steps a turn was no better (784x16x128
    // 0.95x); the strided body two at a time was level, so it stays one.
    // Training 784-512-512-10 was level (one epoch of 12,800 images, 6
    // alternated pairs: 0.99x the time on 1 thread, 1.01x on 2); the
    // AVX-512 kernels and Zen 3 were not measured.
    let rest = whole.saturating_sub(prefetching);
    for _ in 0..rest / 2 {
        // SAFETY: as above, two steps.
        unsafe {
            rank_1::<MR, NV, false>(&mut acc, |i| a.add(i * ra), b, last);
            rank_1::<MR, NV, false>(&mut acc, |i| a.add(pa + i * ra), b.add(pb), last);
            (a, b) = (a.wrapping_add(2 * pa), b.wrapping_add(2 * pb));
        }
    }
    if rest % 2 == 1 {
        // SAFETY: as above.
        unsafe {
            rank_1::<MR, NV, false>(&mut acc, |i| a.add(i * ra), b, last);
            (a, b) = (a.wrapping_add(pa), b.wrapping_add(pb));
        }
    }
    for _ in whole.max(prefetching)..kc {
        // SAFETY: as above, B's last vector masked.
        unsafe {
            rank_1::<MR, NV, EDGE>(&mut acc, |i| a.add(i * ra), b, last);
            (a, b) = (a.wrapping_add(pa), b.wrapping_add(pb));
        }
    }

    // SAFETY: forwarded from the caller.
    unsafe { store_tile::<MR, NV>(acc, out) }
}

/// One step of `k`: `acc[i][v] += A[i, p] · B[p, v·LANES..]`, with the
/// step's element of row `i` of A at `a_row(i)` and its row of B at `b`.
/// With `EDGE`, B's last vector is read for its first `last` lanes only
/// (zero in the others).
///
/// # Safety
/// `a_row(i)` readable for `i < MR`, `b` for `NV · LANES` floats (with
/// `EDGE`, `(NV - 1) · LANES + last`).
#[inline(always)]
unsafe fn rank_1<const MR: usize, const NV: usize, const EDGE: bool>(
    acc: &mut [[V; NV]; MR],
    a_row: impl Fn(usize) -> *const f32,
    b: *const f32,
    last: usize,
) {
    let mut bv = [V::ZERO; NV];
    for (v, bv) in bv.iter_mut().enumerate() {
        // SAFETY: within this step's `nr` floats of the B micro-panel (with
        // `EDGE`, its valid ones).
        *bv = unsafe {
            if EDGE && v == NV - 1 {
                simd::load_partial(b.add(v * LANES), last)
            } else {
                simd::load(b.add(v * LANES))
            }
        };
    }
    for (i, acc_row) in acc.iter_mut().enumerate() {
        // SAFETY: element (i, p) of the A micro-panel.
        let ai = V::splat(unsafe { *a_row(i) });
        for (acc, &bv) in acc_row.iter_mut().zip(&bv) {
            *acc = simd::mul_add(ai, bv, *acc);
        }
    }
}

/// `acc + beta · c`, C read only if `read_c` (the tile's old values).
///
/// # Safety
/// With `read_c`, `c` readable for `LANES` floats.
#[inline(always)]
unsafe fn plus_old_c(acc: V, c: *const f32, read_c: bool, beta: V) -> V {
    let mut x = acc;
    if read_c {
        // SAFETY: forwarded from the caller.
        x += beta * unsafe { simd::load(c) };
    }
    x
}

/// Writes the register tile to C (the epilogue included): a full tile
/// without an epilogue straight from the registers, any other tile through
/// a function of its own ([`store_full_epilogue`], [`store_edge`]).
///
/// Only that plain path is inlined: its loop unrolls into one store per
/// accumulator, so the accumulators go from the `k` loop to C in registers.
/// With the other paths inlined as well (and the tile passed by reference),
/// LLVM kept the accumulators in a stack array, zeroed at entry and stored
/// whole after the `k` loop, 32 extra 64-byte stores per call. Measured on
/// Zen 4 (AMD EPYC family 25 model 17, AVX-512, 16 lanes), `simd-16x16`
/// alone on panels in L1, best of 5: 655 -> 586 cycles a call at `kc = 32`
/// (512 of them multiply-adds), 2177 -> 2133 at `kc = 128`.
///
/// The other paths get a copy of the accumulators ([`Spilled`]), never the
/// array itself. When the array went to them by value, whether it stayed in
/// registers depended on how the compiler split the crate: built as one
/// codegen unit, or with LTO, the kernels wrote every accumulator to the
/// stack after each multiply-add, and 784-512-512-10 trained 1.76-1.88x
/// (`codegen-units = 1`) and 1.89-1.91x (fat LTO) slower than the default build
/// (Zen 5, AVX-512, 16 lanes; docs/PERFORMANCE.md, "an eighth session").
///
/// # Safety
/// `out` a valid exclusive tile of C, as for [`super::KernelFn`].
#[inline(always)]
unsafe fn store_tile<const MR: usize, const NV: usize>(acc: [[V; NV]; MR], out: &TileOut) {
    let full = out.rows == MR && out.cols == NV * LANES;
    if full && out.epilogue.is_none() {
        // SAFETY: forwarded from the caller; the tile is full.
        return unsafe { store_full(acc, out, |_, _, x| x) };
    }
    let tile = Spilled(simd::spill(acc));
    if full {
        // SAFETY: forwarded from the caller; the tile is full.
        unsafe { store_full_epilogue(&tile, out) }
    } else {
        store_edge(&tile, out);
    }
}

/// The accumulators copied to memory after the `k` loop
/// ([`simd::spill`]), for the non-inlined stores: the array itself never
/// goes to another function, so each accumulator stays in its register
/// through the loop however the crate is split into codegen units.
struct Spilled<const MR: usize, const NV: usize>([[V; NV]; MR]);

/// Writes every vector of a full tile to C: `then(i, v, acc + beta · c)`
/// for row `i`, vector `v` of the row.
///
/// # Safety
/// As [`store_tile`], for a full tile (`rows == MR`, `cols == NV · LANES`).
#[inline(always)]
unsafe fn store_full<const MR: usize, const NV: usize>(
    acc: [[V; NV]; MR],
    out: &TileOut,
    then: impl Fn(usize, usize, V) -> V,
) {
    let beta = V::splat(out.beta);
    let read_c = out.beta != 0.0;
    for (i, acc_row) in acc.iter().enumerate() {
        for (v, &acc) in acc_row.iter().enumerate() {
            // SAFETY: (i, v·LANES..v·LANES+LANES) is inside the full tile.
            unsafe {
                let c = out.c.add(i * out.rs_c + v * LANES);
                simd::store(c, then(i, v, plus_old_c(acc, c, read_c, beta)));
            }
        }
    }
}

/// Writes a full tile with its epilogue, `act(acc + beta · c + bias)`,
/// times the dropout factors if any: the arithmetic of [`store_edge_with`], with
/// whole-vector loads and stores.
///
/// # Safety
/// As [`store_tile`], for a full tile (`rows == MR`, `cols == NV · LANES`).
#[inline(never)]
unsafe fn store_full_epilogue<const MR: usize, const NV: usize>(tile: &Spilled<MR, NV>, out: &TileOut) {
    let acc = tile.0;
    let Some((bias, act)) = out.epilogue else {
        // SAFETY: forwarded from the caller.
        return unsafe { store_full(acc, out, |_, _, x| x) };
    };
    // SAFETY: the bias holds the tile's `cols` = NV · LANES entries.
    let bias: [V; NV] = std::array::from_fn(|v| unsafe { simd::load(bias.add(v * LANES)) });
    // One store loop per activation, the activation chosen once per tile,
    // not once per vector (a jump per vector before: 64x16x16 with bias and
    // ReLU took 842-873 ns against 627-654 without the epilogue; now
    // 658-711; Zen 3, AVX2, 8 lanes, best of 6 runs).
    // SAFETY (each arm): forwarded from the caller.
    unsafe {
        match (act, &out.dropout) {
            (Activation::Identity, None) => store_full(acc, out, |_, v, x| x + bias[v]),
            (Activation::Relu, None) => {
                store_full(acc, out, |_, v, x| simd::activate(Activation::Relu, x + bias[v]))
            }
            (Activation::Sigmoid, None) => store_full(acc, out, |_, v, x| {
                simd::activate(Activation::Sigmoid, x + bias[v])
            }),
            (Activation::Tanh, None) => {
                store_full(acc, out, |_, v, x| simd::activate(Activation::Tanh, x + bias[v]))
            }
            (act, Some(mask)) => store_full(acc, out, |i, v, x| {
                simd::activate(act, x + bias[v]) * mask.factors(i, v * LANES)
            }),
        }
    }
}

/// Stores the valid `rows x cols` part of an edge tile.
///
/// The same vector arithmetic as a full tile runs on every element; C,
/// bias and the result are read and written with partial (masked on
/// AVX-512) loads and stores, so nothing outside the valid part is touched.
/// The accumulators arrive as a copy in memory, made after the `k` loop
/// ([`Spilled`]), so the loop still keeps them in registers. The activation
/// is chosen once per tile ([`store_edge_with`] for each), not once per vector: the
/// 10 logits' 64x10x16 with its bias 986 ns against 1161 (Zen 3, AVX2, 8
/// lanes, best of 6 runs; 800-807 without the epilogue).
#[inline(never)]
fn store_edge<const MR: usize, const NV: usize>(tile: &Spilled<MR, NV>, out: &TileOut) {
    let acc = tile.0;
    use Activation::*;
    match out.epilogue.map(|(_, act)| act) {
        None => store_edge_with(acc, out, None::<fn(V) -> V>),
        Some(Identity) => store_edge_with(acc, out, Some(|x| simd::activate(Identity, x))),
        Some(Relu) => store_edge_with(acc, out, Some(|x| simd::activate(Relu, x))),
        Some(Sigmoid) => store_edge_with(acc, out, Some(|x| simd::activate(Sigmoid, x))),
        Some(Tanh) => store_edge_with(acc, out, Some(|x| simd::activate(Tanh, x))),
    }
}

/// [`store_edge`] with the activation `act` (`None`: no epilogue), as
/// `act(acc + beta · c + bias)`, times the dropout factors if any.
#[inline(always)]
fn store_edge_with<const MR: usize, const NV: usize>(
    acc: [[V; NV]; MR],
    out: &TileOut,
    act: Option<impl Fn(V) -> V>,
) {
    let beta = V::splat(out.beta);
    let read_c = out.beta != 0.0;
    for (i, acc_row) in acc.iter().enumerate().take(out.rows) {
        for (v, &acc) in acc_row.iter().enumerate() {
            let col = v * LANES;
            if col >= out.cols {
                break;
            }
            let n = LANES.min(out.cols - col);
            // SAFETY: row i < rows and columns col..col + n < cols are inside
            // the valid tile; the bias is valid for `cols` entries.
            unsafe {
                let c = out.c.add(i * out.rs_c + col);
                let mut x = acc;
                if read_c {
                    x += beta * simd::load_partial(c, n);
                }
                if let (Some(act), Some((bias, _))) = (&act, out.epilogue) {
                    x = act(x + simd::load_partial(bias.add(col), n));
                    if let Some(mask) = &out.dropout {
                        x *= mask.factors(i, col);
                    }
                }
                simd::store_partial_plain(c, x, n);
            }
        }
    }
}

/// The micro-kernel with lanes along m: an `MR x NR` tile, `MR = MV · LANES`
/// rows as `MV` vectors per column of C, `NR` columns broadcast from B~.
///
/// Same packed panels as [`micro_kernel`] (A~: `MR` floats per step of
/// `k`, B~: `NR` floats per step), other register roles, per step `p`:
///
/// ```text
///   a_v = A~[p, v·LANES..(v+1)·LANES]   (MV vectors, loaded)
///   b_j = B~[p, j]                      (broadcast, one at a time)
///   acc[j][v] += a_v · b_j              (MV · NR accumulators: columns of C)
/// ```
///
/// For narrow products (the 10 logits: `n = 10` is two tiles of 5
/// columns, not one 16-wide tile of which 6 columns are thrown away) and
/// for AVX2, where a `24x4` tile reads its B~ panel (`4·kc` floats) from L1
/// while the A~ panel streams (the `6x16` tile keeps `16·kc` floats of B~,
/// 32 KiB at `kc = 512`, in a 32-48 KiB L1 shared with A).
///
/// The tile is written transposed: the accumulators go through a small
/// buffer into rows, then the same `store_edge` as the other SIMD kernels
/// (so beta, bias, activation and dropout give the same bits). Every
/// element is still `fma(a_ip, b_pj, acc)` for `p` ascending.
///
/// # Safety
/// As [`super::KernelFn`], with `MR == MV · LANES` and `NR <= LANES`.
#[inline(never)]
pub unsafe fn micro_kernel_m<const MR: usize, const MV: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    out: &TileOut,
) {
    // SAFETY: a packed panel: rows contiguous, steps MR apart.
    unsafe { m_body::<MR, MV, NR>(kc, a, MR, b, out) }
}

/// [`micro_kernel_m`] reading A in place (`A[i, p]` at `a + i·ra + p·pa`):
/// vector loads when `ra == 1` (a transposed view); otherwise (a row-major
/// A, read in place for a small product) the panel is copied into packed
/// order on the stack, `M_CHUNK` floats at a time, between runs of steps.
///
/// # Safety
/// As [`super::StridedKernelFn`], with `MR == MV · LANES` and `NR <= LANES`.
#[inline(never)]
pub unsafe fn micro_kernel_m_strided<const MR: usize, const MV: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    ra: usize,
    pa: usize,
    b: *const f32,
    out: &TileOut,
) {
    let mut acc = [[V::ZERO; MV]; NR];
    if ra == 1 {
        // SAFETY: forwarded from the caller.
        unsafe { m_steps::<MR, MV, NR>(kc, a, pa, b, &mut acc) };
    } else {
        let steps = (M_CHUNK / MR).max(1);
        let mut buf = [0.0f32; M_CHUNK];
        let mut p0 = 0;
        while p0 < kc {
            let len = steps.min(kc - p0);
            for p in 0..len {
                for i in 0..MR {
                    // SAFETY: element (i, p0 + p) of the A micro-panel; `buf`
                    // holds MR·steps <= M_CHUNK floats.
                    unsafe { *buf.get_unchecked_mut(p * MR + i) = *a.add(i * ra + (p0 + p) * pa) };
                }
            }
            // SAFETY: `buf` is a packed A panel of `len` steps; B from step p0.
            unsafe { m_steps::<MR, MV, NR>(len, buf.as_ptr(), MR, b.add(p0 * NR), &mut acc) };
            p0 += len;
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { m_store::<MR, MV, NR>(&acc, out) }
}

/// Floats of the stack buffer of [`micro_kernel_m_strided`] (16 KiB; at
/// least one step of the tallest `simd-m..` tile, 64 rows).
const M_CHUNK: usize = 4096;

/// The packed-panel path of [`micro_kernel_m`].
#[inline(always)]
unsafe fn m_body<const MR: usize, const MV: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    pa: usize,
    b: *const f32,
    out: &TileOut,
) {
    let mut acc = [[V::ZERO; MV]; NR];
    // SAFETY: forwarded from the caller (A rows contiguous, steps `pa` apart).
    unsafe {
        m_steps::<MR, MV, NR>(kc, a, pa, b, &mut acc);
        m_store::<MR, MV, NR>(&acc, out)
    }
}

/// `kc` steps of the lanes-along-m tile: A rows contiguous (`MR` floats
/// from `a`, steps `pa` apart), B~ `NR` floats per step.
#[inline(always)]
unsafe fn m_steps<const MR: usize, const MV: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    pa: usize,
    b: *const f32,
    acc_out: &mut [[V; MV]; NR],
) {
    const { assert!(MR == MV * LANES && NR <= LANES) };
    let mut acc = *acc_out;
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        let mut av = [V::ZERO; MV];
        for (v, av) in av.iter_mut().enumerate() {
            // SAFETY: rows v·LANES.. of this step, contiguous.
            *av = unsafe { simd::load(a.add(v * LANES)) };
        }
        for (j, acc_col) in acc.iter_mut().enumerate() {
            // SAFETY: element (p, j) of the B micro-panel.
            let bj = V::splat(unsafe { *b.add(j) });
            for (acc, &av) in acc_col.iter_mut().zip(&av) {
                *acc = simd::mul_add(av, bj, *acc);
            }
        }
        // one step along k (past the end after the last, never read)
        a = a.wrapping_add(pa);
        b = b.wrapping_add(NR);
    }
    *acc_out = acc;
}

/// Writes the lanes-along-m tile: columns of accumulators transposed into
/// one vector per row, then `store_edge` (beta, bias, activation, dropout).
///
/// # Safety
/// `out` a valid exclusive tile of C.
#[inline(always)]
unsafe fn m_store<const MR: usize, const MV: usize, const NR: usize>(acc: &[[V; MV]; NR], out: &TileOut) {
    let mut cols = [[0.0f32; MR]; NR];
    for (col, acc_col) in cols.iter_mut().zip(acc) {
        for (v, &x) in acc_col.iter().enumerate() {
            // SAFETY: rows v·LANES..(v+1)·LANES of a column of MR floats.
            unsafe { simd::store(col.as_mut_ptr().add(v * LANES), x) };
        }
    }
    let rows: [[V; 1]; MR] = std::array::from_fn(|i| {
        let mut row = [0.0f32; LANES];
        for (x, col) in row.iter_mut().zip(&cols) {
            *x = col[i];
        }
        [V::from(row)]
    });
    store_edge::<MR, 1>(&Spilled(rows), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `masked_steps` leaves whole reads only to steps whose vector ends
    /// by B's last valid float, and masks no more steps than that needs:
    /// step `p` reads whole up to `p·pb + NV·LANES` floats from the panel's
    /// start, and the last valid float is at `(kc - 1)·pb + (NV - 1)·LANES
    /// + last - 1` (here with `NV = 2`).
    #[test]
    fn masked_steps_keep_whole_reads_inside_b() {
        let nv = 2;
        for kc in 0..40 {
            for last in 1..LANES {
                for pb in 0..3 * LANES {
                    let masked = masked_steps(kc, last, pb);
                    assert!(masked <= kc);
                    let end = |p: usize| p * pb + nv * LANES;
                    let limit = (kc.max(1) - 1) * pb + (nv - 1) * LANES + last;
                    for p in 0..kc - masked {
                        assert!(
                            end(p) <= limit,
                            "kc {kc}, last {last}, pb {pb}: step {p} reads past B"
                        );
                    }
                    if masked > 0 && pb > 0 {
                        let p = kc - masked;
                        assert!(
                            end(p) > limit,
                            "kc {kc}, last {last}, pb {pb}: step {p} masked needlessly"
                        );
                    }
                }
            }
        }
    }
}
