"""Kernels for the reference-pixel correction ('median' algorithm).

The clipped means reproduce numpy/scipy bit for bit: numpy's pairwise summation (blocks
of 8, PW_BLOCKSIZE 128), mean/var divisions rounded to the array dtype, and
``scipy.stats.sigmaclip``'s loop, all in the dtype of the values (float32, or float64 when
the official code works on a float64 buffer).
"""

import numpy as np
from numba import prange

from webbflow.kernels._common import _pairwise_sum
from webbflow.kernels._options import njit


@njit
def _np_mean(c, n, tmp):
    """numpy ``c[:n].mean()`` in c's dtype (tmp: 1-element array of that dtype)."""
    tmp[0] = np.float64(_pairwise_sum(c, 0, n)) / n
    return tmp[0]


@njit
def _clipped_mean(vals, siglimit):
    """The official ``Dataset.sigma_clip`` on already-selected good values.

    Returns (status, value): status 0 = no value (None), 1 = value has vals' dtype,
    2 = float64 (zero-variance branch, ``mean(dtype=float64)``).
    """
    n = vals.shape[0]
    if n == 0:
        return 0, np.nan
    allfinite = True
    allequal = True
    v0 = vals[0]
    for k in range(n):
        v = vals[k]
        if not np.isfinite(v):
            allfinite = False
        if v != v0:
            allequal = False
    if allfinite and allequal:
        return 2, np.float64(v0)
    if not allfinite:
        return 1, np.nan
    tmp = np.empty(1, vals.dtype)
    tmp[0] = siglimit
    lim = tmp[0]
    c = vals.copy()
    x = np.empty_like(c)
    size = n
    while True:
        if size == 0:
            return 1, np.nan
        mean = _np_mean(c, size, tmp)
        for k in range(size):
            d = c[k] - mean
            x[k] = d * d
        var = _np_mean(x, size, tmp)
        std = np.sqrt(var)
        lo = mean - std * lim
        hi = mean + std * lim
        m = 0
        for k in range(size):
            v = c[k]
            if v >= lo and v <= hi:
                c[m] = v
                m += 1
        if m == size:
            break
        size = m
    if size == 0:
        return 1, np.nan
    return 1, np.float64(_np_mean(c, size, tmp))


@njit(parallel=True)
def _subtract_columns(group, colsig, colmask):
    """group[y, x] = dtype(float64(group[y, x]) - colsig[x]) where colmask[x]."""
    ny, nx = group.shape
    for y in prange(ny):
        for x in range(nx):
            if colmask[x]:
                group[y, x] = np.float64(group[y, x]) - colsig[x]


@njit
def _insertion_sort(w, n):
    """Sort w[:n] in place (small windows; cheaper to compile than np.sort)."""
    for k in range(1, n):
        v = w[k]
        j = k - 1
        while j >= 0 and w[j] > v:
            w[j + 1] = w[j]
            j -= 1
        w[j + 1] = v


@njit
def _median_sorted(w, n):
    """numpy median of w[:n] (w sorted, no NaN) in w's dtype, returned as float64."""
    h = n // 2
    if n % 2 == 1:
        return np.float64(w[h])
    s = w[h - 1] + w[h]
    return np.float64(s) / 2


@njit
def _side_median_row(group, dq, c0, c1, length, dnu, i, w):
    """Running-median value of row i (see :func:`_side_medians`); w: scratch."""
    ny = group.shape[0]
    L = length if length % 2 == 1 else length + 1
    buf = L // 2
    n = 0
    hasnan = False
    for j in range(i, i + length):
        r = j - buf
        if r < 0:
            r = -r
        elif r > ny - 1:
            r = 2 * (ny - 1) - r
        for cc in range(c0, c1):
            if (dq[r, cc] & dnu) == 0:
                v = group[r, cc]
                if np.isnan(v):
                    hasnan = True
                w[n] = v
                n += 1
    if n == 0 or hasnan:
        return np.nan
    _insertion_sort(w, n)
    return _median_sorted(w, n)


@njit(parallel=True)
def _side_medians(group, dq, c0, c1, length, dnu, out):
    """Running median (official ``median_filter``) over columns c0..c1-1 of ``group``.

    Rows are reflected about the edges (edge row not repeated); DO_NOT_USE pixels are
    excluded; windows without good pixels or containing NaN give NaN.
    """
    ny = group.shape[0]
    for i in prange(ny):
        w = np.empty(length * (c1 - c0), group.dtype)
        out[i] = _side_median_row(group, dq, c0, c1, length, dnu, i, w)


@njit(parallel=True)
def _side_stats(lcols, lpq, lsig, lmask, rcols, rpq, rsig, rmask, length, dnu, left, right):
    """Both sides at once on the side columns only (copies, modified): column signal
    subtracted as :func:`_subtract_columns` does, then the running medians of
    :func:`_side_medians` into left/right."""
    ny, nc = lcols.shape
    for y in range(ny):
        for x in range(nc):
            if lmask[x]:
                lcols[y, x] = np.float64(lcols[y, x]) - lsig[x]
            if rmask[x]:
                rcols[y, x] = np.float64(rcols[y, x]) - rsig[x]
    for i in prange(ny):
        w = np.empty(length * nc, lcols.dtype)
        left[i] = _side_median_row(lcols, lpq, 0, nc, length, dnu, i, w)
        right[i] = _side_median_row(rcols, rpq, 0, nc, length, dnu, i, w)


@njit(parallel=True)
def _apply_side(group, side, gain, out):
    """out[y, x] = float32(float64(group[y, x]) - gain * side[y])."""
    ny, nx = group.shape
    for y in prange(ny):
        s = gain * side[y]
        for x in range(nx):
            out[y, x] = np.float32(np.float64(group[y, x]) - s)


@njit
def _fused_value(v, cs, cm, s, gain, f32):
    t = np.float64(v)
    if cm:
        t = t - cs
        if f32:
            t = np.float64(np.float32(t))
    return np.float32(t - gain * s)


@njit(parallel=True)
def _fused_correct(plane, colsig, colmask, side, gain, transposed, f32):
    """In place on a DMS-frame group: v -> float32(t - gain * side), where
    t = buffer-dtype(float64(v) - colsig) on masked columns (float32 rounding when f32)
    else v; colsig/colmask are indexed by the DMS axis that is the detector column
    (x, or y when ``transposed``) and side by the other one (vectors already flipped)."""
    ny, nx = plane.shape
    for y in prange(ny):
        if transposed:
            cs = colsig[y]
            cm = colmask[y]
            for x in range(nx):
                plane[y, x] = _fused_value(plane[y, x], cs, cm, side[x], gain, f32)
        else:
            s = side[y]
            for x in range(nx):
                plane[y, x] = _fused_value(plane[y, x], colsig[x], colmask[x], s, gain, f32)


@njit(parallel=True)
def _shift_frame(dst, src, sign):
    """dst = float32(float64(dst) + sign * float64(src)) (MIRI first-read subtraction)."""
    ngroups, ny, nx = dst.shape
    for y in prange(ny):
        for g in range(ngroups):
            for x in range(nx):
                dst[g, y, x] = np.float32(np.float64(dst[g, y, x]) + sign * np.float64(src[y, x]))


@njit(parallel=True)
def _subtract_rows_cols(group, r0, r1, rstep, c0, c1, cstep, sig):
    for y in prange((r1 - r0 + rstep - 1) // rstep):
        yy = r0 + y * rstep
        for x in range(c0, c1, cstep):
            group[yy, x] = np.float32(np.float64(group[yy, x]) - sig)


@njit(parallel=True)
def _subarray_correct(data, ys_a, xs_a, ys_b, xs_b, colpar, siglimit, transposed):
    """The NOUTPUTS=1 subarray correction of every group, in place: per group the clipped
    means of the reference pixels at (ys_a, xs_a) and (ys_b, xs_b) (even and odd detector
    columns; b empty when they are not told apart), each subtracted from the DMS columns
    (rows when ``transposed``) whose class ``colpar`` is 0 or 1, rounded to float32 as
    :func:`_fused_correct` does. Groups are independent: one parallel loop over them."""
    nints, ngroups, ny, nx = data.shape
    for k in prange(nints * ngroups):
        plane = data[k // ngroups, k % ngroups]
        sig = np.zeros(2, np.float64)
        use = np.zeros(2, np.bool_)
        for c in range(2):
            ys = ys_a if c == 0 else ys_b
            xs = xs_a if c == 0 else xs_b
            vals = np.empty(ys.shape[0], plane.dtype)
            for j in range(ys.shape[0]):
                vals[j] = plane[ys[j], xs[j]]
            status, value = _clipped_mean(vals, siglimit)
            if status != 0:
                sig[c] = value
                use[c] = True
        for y in range(ny):
            for x in range(nx):
                c = colpar[y] if transposed else colpar[x]
                plane[y, x] = _fused_value(plane[y, x], sig[c], use[c], 0.0, 0.0, True)
