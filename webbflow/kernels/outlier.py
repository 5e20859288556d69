"""Array-level kernels of the imaging outlier_detection step.

These reproduce, bit for bit, what jwst 3.0 (``jwst/outlier_detection/imaging.py`` and
``utils.py``) does with stcal's ``outlier_detection.utils`` / ``median``:

* :func:`compute_weight_threshold` - ``maskpt`` x the sigma-clipped mean weight of one
  drizzled single (astropy ``sigma_clip(sigma=3, maxiters=5)`` of the finite non-zero
  weights, in the weights' dtype with numpy's rounding and summation order);
* :func:`median_of_singles` - the NaN-median across the drizzled singles, each one NaN
  where its weight is below its threshold, streamed over row blocks;
* :func:`abs_deriv`, :func:`flag_resampled_crs`, :func:`flag_crs` - the cosmic-ray masks
  comparing each input image with the blotted median (one fused pass over rows).

Arrays in, arrays out; nothing here reads or writes files or datamodels.
"""

from functools import lru_cache

import numpy as np

from webbflow.kernels._common import _pairwise_sum, _select_kth, run_row_blocks
from webbflow.kernels._options import njit

DEFAULT_SNR = (5.0, 4.0)      # step parameter snr = "5.0 4.0"
DEFAULT_SCALE = (1.2, 0.7)    # step parameter scale = "1.2 0.7"
DEFAULT_BACKG = 0.0
DEFAULT_MASKPT = 0.7

_CLIP_SIGMA = 3               # stcal: astropy sigma_clip(sigma=3, maxiters=5), median/std
_CLIP_MAXITERS = 5
_BLOCK_BYTES = 16 << 20       # row blocks of the streamed median (data + weights)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------------
# weight threshold
# --------------------------------------------------------------------------------------

@njit
def _gather_finite_nonzero(w, vals):
    """vals[:n] = the finite, non-zero entries of the 1-D w, in order; returns n."""
    n = 0
    for i in range(w.shape[0]):
        v = w[i]
        if np.isfinite(v) and v != 0:
            vals[n] = v
            n += 1
    return n


@njit
def _sigma_clip_inplace(vals, n, scratch, one, sigma, maxiters):
    """astropy ``sigma_clip(axis=None, masked=False)`` with cenfunc=median, stdfunc=std
    on the finite vals[:n]: keeps the survivors, in order, in vals[:m] and returns m.

    Each arithmetic step rounds to vals' dtype where numpy does (``one`` is a 1-element
    array of that dtype used for the casts):
    median = middle value / (lo + hi) / 2 of ``np.median``; mean = pairwise sum / n in
    float64 rounded to the dtype (``np.divide`` by the intp count); variance = pairwise
    sum of (v - mean)**2 / n in float64, rounded; std = sqrt; bounds = median -/+ std*sigma.
    """
    it = 0
    while it < maxiters and n > 0:
        it += 1
        # centre: np.median (a copy is partitioned)
        for i in range(n):
            scratch[i] = vals[i]
        h = n >> 1
        hi = _select_kth(scratch, n, h)
        if n & 1:
            cen = hi
        else:
            lo = scratch[0]
            for i in range(1, h):
                if scratch[i] > lo:
                    lo = scratch[i]
            one[0] = (lo + hi) / 2      # np.mean of the 2: sum in dtype, / intp, dtype
            cen = one[0]
        # std: np.nanstd
        one[0] = _pairwise_sum(vals, 0, n) / n
        avg = one[0]
        for i in range(n):
            d = vals[i] - avg
            scratch[i] = d * d
        one[0] = _pairwise_sum(scratch, 0, n) / n
        std = np.sqrt(one[0])
        one[0] = std * sigma
        dev = one[0]
        lower = cen - dev
        upper = cen + dev
        m = 0
        for i in range(n):
            v = vals[i]
            if v >= lower and v <= upper:
                vals[m] = v
                m += 1
        if m == n:
            break
        n = m
    return n


@njit
def _mean_f8(vals, n, chunk, buf):
    """``np.mean(vals[:n], dtype='f8')``: float64 pairwise sums of buffered chunks of
    ``chunk`` values (numpy's casting buffer), added in order, / n."""
    total = 0.0
    for c0 in range(0, n, chunk):
        m = min(chunk, n - c0)
        for i in range(m):
            buf[i] = vals[c0 + i]
        total += _pairwise_sum(buf, 0, m)
    return total / n


def compute_weight_threshold(weight, maskpt=DEFAULT_MASKPT):
    """Weight threshold of one drizzled single (or cube): ``maskpt`` x the mean of the
    sigma-clipped finite, non-zero weights, as ``stcal.outlier_detection.utils.
    compute_weight_threshold``.

    weight: float array of any shape (float32 from drizzle); the statistics run in its
    dtype exactly as numpy does them. Negative weights take part; NaN/inf and zeros do
    not. Returns a ``np.float64``; NaN when no weight is finite and non-zero (pixels are
    then never masked, since ``w < nan`` is false).
    """
    w = np.asarray(weight)
    if w.dtype not in _FLOATS:
        raise TypeError(f"weights must be float32 or float64, not {w.dtype}")
    flat = w.reshape(-1)                       # a view when contiguous
    vals = np.empty(flat.shape[0], w.dtype)
    n = _gather_finite_nonzero(flat, vals)
    if n == 0:
        return np.float64(np.nan) * maskpt
    scratch = np.empty(n, w.dtype)
    one = np.empty(1, w.dtype)
    n = _sigma_clip_inplace(vals, n, scratch, one, _CLIP_SIGMA, _CLIP_MAXITERS)
    del scratch
    if n == 0:      # everything clipped (only if the median overflows): mean of nothing
        return np.float64(np.nan) * maskpt
    # np.mean(dtype='f8'): float64 input is summed in one run, other dtypes are cast in
    # chunks of numpy's buffer size
    chunk = n if w.dtype == np.float64 else max(1, min(n, np.getbufsize()))
    mean = _mean_f8(vals, n, chunk, np.empty(chunk, np.float64))
    return np.float64(mean) * maskpt


# --------------------------------------------------------------------------------------
# median of the drizzled singles
# --------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _sorting_network(n):
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort for n values, as an
    (m, 2) int64 array. Built for the next power of two; comparators reaching past n are
    left out, which is exact when those positions hold +inf (they never move)."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    net = np.array(pairs, np.int64).reshape(-1, 2)
    net.setflags(write=False)
    return net


_XCHUNK = 512      # pixels of a row sorted together (N x 512 values stay in cache)


@njit
def _median_rows(y0, y1, data, wht, thr, net, inf, half, out):
    """out[y] = NaN-median over i of data[i, y] without the values where
    ``wht[i, y] < thr[i]`` (compared in float64, as numpy compares a float32 array with
    the float64 threshold; NaN weights or thresholds mask nothing) or the value is NaN.

    For a chunk of a row, dropped values become +inf, the N values of each pixel are
    sorted by the network ``net`` (compare-exchanges over the chunk, branch-free min/max)
    and the median of the k kept values is (v[(k-1)//2] + v[k//2]) * half, rounded in
    the dtype like ``np.ma.median`` (so also for odd k: x + x overflows only near the
    dtype's max, as in numpy). Kept +inf values tie with the fill, which is harmless:
    every +inf is the same value. NaN where k == 0.
    """
    nimg, ny, nx = data.shape
    chunk = min(nx, _XCHUNK)
    vals = np.empty((nimg, chunk), data.dtype)
    cnt = np.empty(chunk, np.int64)
    npairs = net.shape[0]
    for y in range(y0, y1):
        for x0 in range(0, nx, chunk):
            m = min(chunk, nx - x0)
            for x in range(m):
                cnt[x] = 0
            for i in range(nimg):
                t = thr[i]
                for x in range(m):
                    v = data[i, y, x0 + x]
                    keep = not (np.float64(wht[i, y, x0 + x]) < t) and not np.isnan(v)
                    vals[i, x] = v if keep else inf
                    cnt[x] += keep
            for p in range(npairs):
                a = net[p, 0]
                b = net[p, 1]
                for x in range(m):
                    u = vals[a, x]
                    w = vals[b, x]
                    vals[a, x] = min(u, w)
                    vals[b, x] = max(u, w)
            for x in range(m):
                k = cnt[x]
                if k == 0:
                    out[y, x0 + x] = np.nan
                else:
                    out[y, x0 + x] = (vals[(k - 1) >> 1, x] + vals[k >> 1, x]) * half


def _as_stack(arrays):
    """A plain 3-D ndarray is used in place; anything else is a sequence of 2-D singles
    (lists of arrays, np.memmap stacks, lazily loaded arrays) read one row block at a
    time."""
    if type(arrays) is np.ndarray and arrays.ndim == 3:
        return arrays, True
    return arrays, False


def median_of_singles(singles, weights=None, thresholds=None, *, out=None,
                      rows_per_block=None):
    """NaN-median across N drizzled singles, each masked (NaN) where its weight is below
    its threshold: what jwst's ``median_with_resampling`` / ``median_without_resampling``
    build with ``MedianComputer`` + ``nanmedian3D``, without materialising the stack.

    singles: 3-D array (N, ny, nx), or a sequence of N 2-D arrays (memmaps or anything
      sliceable by rows: these are read one row block at a time, so memory holds one
      block of the stack, about 16 MB unless ``rows_per_block`` is given).
    weights: same layout as singles, or None for a plain NaN-median (no masking).
    thresholds: N values, e.g. ``compute_weight_threshold(weights[i], maskpt)``; a NaN
      threshold masks nothing. Pixels are dropped where ``weight < threshold`` (compared
      in float64) or the value is NaN; NaN weights do not mask.
    Returns (ny, nx) in the singles' dtype (float32): median of the remaining values,
    mean of the two middle ones for even counts, NaN where none remain. Inputs are not
    modified.
    """
    stack, direct = _as_stack(singles)
    nimg = len(stack)
    if nimg == 0:
        raise ValueError("no singles")
    first = stack[0]
    ny, nx = first.shape
    dtype = np.asarray(first[:0]).dtype
    if dtype not in _FLOATS:
        raise TypeError(f"singles must be float32 or float64, not {dtype}")
    if weights is None:
        wstack, wdirect = stack, direct
        thr = np.full(nimg, np.nan)            # ``w < nan`` is false: nothing masked
    else:
        wstack, wdirect = _as_stack(weights)
        if len(wstack) != nimg:
            raise ValueError("one weight array per single is needed")
        thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if thr.shape[0] != nimg:
            raise ValueError("one threshold per single is needed")
    if out is None:
        out = np.empty((ny, nx), dtype)
    elif out.shape != (ny, nx):
        raise ValueError(f"out has shape {out.shape}, not {(ny, nx)}")

    net = _sorting_network(nimg)
    consts = (dtype.type(np.inf), dtype.type(0.5))
    if direct and wdirect:
        run_row_blocks(_median_rows, ny, stack, wstack, thr, net, *consts, out)
        return out

    wdtype = np.asarray(wstack[0][:0]).dtype
    if rows_per_block is None:
        per_row = nimg * nx * (dtype.itemsize + (0 if weights is None else wdtype.itemsize))
        rows_per_block = max(1, _BLOCK_BYTES // max(per_row, 1))
    rb = int(min(rows_per_block, ny))
    dblock = np.empty((nimg, rb, nx), dtype)
    wblock = dblock if weights is None else np.empty((nimg, rb, nx), wdtype)
    for y0 in range(0, ny, rb):
        y1 = min(ny, y0 + rb)
        m = y1 - y0
        d = dblock[:, :m]
        w = wblock[:, :m]
        for i in range(nimg):
            np.copyto(d[i], stack[i][y0:y1])
            if weights is not None:
                np.copyto(w[i], wstack[i][y0:y1])
        run_row_blocks(_median_rows, m, d, w, thr, net, *consts, out[y0:y1])
    return out


# --------------------------------------------------------------------------------------
# cosmic-ray flagging against the blotted median
# --------------------------------------------------------------------------------------

@njit
def _abs_deriv_row(a, r, zero, dv, cd):
    """dv[:] = stcal ``_abs_deriv`` of row r of a (cd: scratch of a row).

    Per pixel: NaN at NaN pixels; otherwise the largest absolute difference to the up to
    4 neighbours inside the image, where the one to the row above only counts when finite
    and the other three whenever they are larger (a NaN difference never counts, an inf
    one does except upwards - the order of stcal's putmask calls); 0 if none counts."""
    ny, nx = a.shape
    if r > 0:
        for x in range(nx):
            d = abs(a[r, x] - a[r - 1, x])
            dv[x] = d if np.isfinite(d) else zero
    else:
        for x in range(nx):
            dv[x] = zero
    if r < ny - 1:
        for x in range(nx):
            d = abs(a[r + 1, x] - a[r, x])
            o = dv[x]
            dv[x] = d if d > o else o
    for x in range(nx - 1):
        cd[x] = abs(a[r, x + 1] - a[r, x])
    for x in range(1, nx):          # left neighbour
        d = cd[x - 1]
        o = dv[x]
        dv[x] = d if d > o else o
    for x in range(nx - 1):         # right neighbour
        d = cd[x]
        o = dv[x]
        dv[x] = d if d > o else o
    for x in range(nx):
        v = a[r, x]
        dv[x] = v if np.isnan(v) else dv[x]


@njit
def _abs_deriv_rows(y0, y1, a, zero, out):
    cd = np.empty(a.shape[1], a.dtype)
    for y in range(y0, y1):
        _abs_deriv_row(a, y, zero, out[y], cd)


def abs_deriv(array):
    """stcal ``_abs_deriv`` of a 2-D float array: per pixel the maximum absolute
    difference to its up/down/left/right neighbours (fewer at the edges), NaN where the
    pixel is NaN, differences with a NaN neighbour ignored; same dtype as the input."""
    a = np.asarray(array)
    if a.ndim != 2 or a.dtype not in _FLOATS:
        raise ValueError("abs_deriv takes a 2-D float32 or float64 array")
    out = np.empty_like(a)
    run_row_blocks(_abs_deriv_rows, a.shape[0], a, a.dtype.type(0), out)
    return out


@njit
def _nan_to_num(e, zero, big):
    """np.nan_to_num of one value: NaN -> 0, +-inf -> +-big (the dtype's largest)."""
    e = zero if np.isnan(e) else e
    return min(max(e, -big), big)


@njit
def _resampled_masks_row(sci, err, blot, r, snr1, snr2, scale1, scale2, backg, big,
                         dv, cd, m1, m2):
    """mask1 (before smoothing) and mask2 of row r, all arithmetic in the data dtype:
    diff = |sci - blot - backg|, e = nan_to_num(err), deriv = _abs_deriv(blot),
    mask_k = diff > scale_k * deriv + snr_k * e."""
    nx = sci.shape[1]
    zero = big - big
    _abs_deriv_row(blot, r, zero, dv, cd)
    for x in range(nx):
        e = _nan_to_num(err[r, x], zero, big)
        diff = abs(sci[r, x] - blot[r, x] - backg)
        d = dv[x]
        m1[x] = diff > scale1 * d + snr1 * e
        m2[x] = diff > scale2 * d + snr2 * e


@njit
def _dilate_row(m1, hd):
    """hd[x] = m1[x-1] | m1[x] | m1[x+1] inside the row."""
    nx = m1.shape[0]
    if nx == 1:
        hd[0] = m1[0]
        return
    hd[0] = m1[0] | m1[1]
    for x in range(1, nx - 1):
        hd[x] = m1[x - 1] | m1[x] | m1[x + 1]
    hd[nx - 1] = m1[nx - 2] | m1[nx - 1]


@njit
def _finish_row(ring, y, ny, out):
    """out[y] &= the vertical OR of the dilated mask1 rows y-1, y, y+1 (inside the image)."""
    nx = out.shape[1]
    up = ring[(y + 2) % 3] if y > 0 else ring[y % 3]
    mid = ring[y % 3]
    down = ring[(y + 1) % 3] if y < ny - 1 else ring[y % 3]
    row = out[y]
    for x in range(nx):
        row[x] = row[x] & (up[x] | mid[x] | down[x])


@njit
def _flag_resampled_rows(y0, y1, sci, err, blot, snr1, snr2, scale1, scale2, backg, big,
                         out):
    """out[y] = (mask1 dilated by a 3x3 box clipped at the image edges) & mask2, rows
    y0..y1-1.

    One pass over rows: mask1 of each row (and of one halo row either side of the block)
    is made once and kept, dilated along the row, in a ring of three rows; mask2 of a row
    waits in out[y] until the row below is known."""
    ny, nx = sci.shape
    ring = np.zeros((3, nx), np.bool_)
    m1 = np.empty(nx, np.bool_)
    m2 = np.empty(nx, np.bool_)
    dv = np.empty(nx, sci.dtype)
    cd = np.empty(nx, sci.dtype)
    for r in range(max(0, y0 - 1), min(ny, y1 + 1)):
        target = out[r] if y0 <= r < y1 else m2
        _resampled_masks_row(sci, err, blot, r, snr1, snr2, scale1, scale2, backg, big,
                             dv, cd, m1, target)
        _dilate_row(m1, ring[r % 3])
        if y0 <= r - 1 < y1:        # row r - 1 has all its neighbour rows now
            _finish_row(ring, r - 1, ny, out)
    if y1 == ny and ny > 0:
        _finish_row(ring, ny - 1, ny, out)


def _common_float(*arrays):
    arrs = [np.asarray(a) for a in arrays]
    dt = np.result_type(*arrs)
    if dt not in _FLOATS:
        raise TypeError(f"sci, err and blot must be float32 or float64, not {dt}")
    # same-dtype inputs (the float32 of the datamodels) are used in place
    return [a if a.dtype == dt else a.astype(dt) for a in arrs], dt


def flag_resampled_crs(sci, err, blot, snr1=DEFAULT_SNR[0], snr2=DEFAULT_SNR[1],
                       scale1=DEFAULT_SCALE[0], scale2=DEFAULT_SCALE[1],
                       backg=DEFAULT_BACKG, *, out=None):
    """Outliers of one image against its blotted median, as stcal ``flag_resampled_crs``.

    diff = |sci - blot - backg|; deriv = :func:`abs_deriv` (blot);
    mask1 = diff > scale1 * deriv + snr1 * nan_to_num(err), dilated with a 3x3 box
    (``ndimage.convolve(..., mode='nearest')`` of a bool mask: any True in the clipped
    neighbourhood); mask2 likewise with scale2/snr2; returns bool (ny, nx) mask1_dilated &
    mask2. NaN in sci or blot (outside the median's footprint) never flags; NaN err
    counts as 0. The scalars are rounded to the arrays' dtype first and all arithmetic is
    in that dtype (float32), as numpy does with Python floats.
    """
    (sci, err, blot), dt = _common_float(sci, err, blot)
    if sci.ndim != 2 or sci.shape != err.shape or sci.shape != blot.shape:
        raise ValueError("sci, err and blot must be 2-D arrays of one shape")
    t = dt.type
    if out is None:
        out = np.empty(sci.shape, np.bool_)
    run_row_blocks(_flag_resampled_rows, sci.shape[0], sci, err, blot, t(snr1), t(snr2),
                   t(scale1), t(scale2), t(backg), t(np.finfo(dt).max), out)
    return out


@njit
def _flag_crs_rows(y0, y1, sci, err, blot, snr, big, out):
    nx = sci.shape[1]
    zero = big - big
    for y in range(y0, y1):
        for x in range(nx):
            e = _nan_to_num(err[y, x], zero, big)
            out[y, x] = abs(sci[y, x] - blot[y, x]) > snr * e


def flag_crs(sci, err, blot, snr=DEFAULT_SNR[0], *, out=None):
    """Outliers without resampling, as stcal ``flag_crs``: bool (ny, nx)
    |sci - blot| > snr * nan_to_num(err), in the arrays' dtype (``blot`` is the median,
    ``err`` the image's error or the median error)."""
    (sci, err, blot), dt = _common_float(sci, err, blot)
    if sci.shape != err.shape or sci.shape != blot.shape or sci.ndim != 2:
        raise ValueError("sci, err and blot must be 2-D arrays of one shape")
    if out is None:
        out = np.empty(sci.shape, np.bool_)
    run_row_blocks(_flag_crs_rows, sci.shape[0], sci, err, blot, dt.type(snr),
                   dt.type(np.finfo(dt).max), out)
    return out
