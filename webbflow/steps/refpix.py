"""refpix: reference-pixel correction, 'median' algorithm (``jwst.refpix.reference_pixels``).

Covered: NIR full frame (4 amplifiers, clipped top/bottom means per odd/even column,
side running median), NIR subarrays with NOUTPUTS=4 (full-frame algorithm on the subarray
embedded in a full frame) and NOUTPUTS=1 (clipped means of the REFERENCE_PIXEL-flagged
pixels, incl. NIRSpec SUB32/SUB512/SUB512S edge columns), MIRI full frame (interleaved
amplifiers, odd/even rows). MIRI subarrays are skipped as official.
NIRSpec IRS2 is ``webbflow.steps.irs2``. Not covered: SIRS kernels, multistripe/superstripe readouts, ZEROFRAME.

Numerical note. The official code keeps one group buffer across the whole exposure; once a
group has had the side correction the buffer is float64, so from then on the clipped means
and medians are computed in float64 and the top/bottom-corrected group is not rounded to
float32 before the side correction. This is reproduced (the first group processed uses the
float32 path) so results match bit for bit.
"""

import hashlib

import numpy as np

from webbflow.kernels import refpix as _k
from webbflow.steps.subarray import is_subarray, to_detector_frame, to_dms_frame
from webbflow.steps._checks import check_dtypes

__all__ = ["correct_refpix"]


NIR_FULL = 2048
NIR_AMPLIFIERS = ((0, 512), (512, 1024), (1024, 1536), (1536, 2048))
NIR_TOP = (2044, 2048)
NIR_BOTTOM = (0, 4)
NIR_SIDES = ((0, 4), (2044, 2048))
MIRI_ROWS = 1024
MIRI_COLS = 1032
NRS_EDGELESS_SUBARRAYS = ("SUB512", "SUB512S", "SUB32")


def _clip(vals, siglimit):
    """Clipped mean as the numpy scalar type the official code ends up with, or None."""
    status, value = _k._clipped_mean(np.ascontiguousarray(vals), float(siglimit))
    if status == 0:
        return None
    if status == 2:
        return np.float64(value)
    return vals.dtype.type(value)


def _avg_with_none(a, b):
    if a is None and b is None:
        return None
    if a is None:
        return b
    if b is None:
        return a
    return 0.5 * (a + b)


def _good(values, dq, dnu):
    return values[(dq & dnu) == 0]


def _nir_top_bottom(det, pdq_det, dnu, odd_even_columns, siglimit, colsig, colmask, dtype=None):
    """Per-column top/bottom signal of each amplifier (official ``do_top_bottom_correction``).

    dtype: the group buffer dtype when ``det`` is a view of differing dtype (the reference
    values are converted, exactly, before the clipped means)."""
    if dtype is not None and det.dtype != dtype:
        good = lambda v, q, f: _good(v, q, f).astype(dtype)  # noqa: E731
    else:
        good = _good
    colmask[:] = False
    for c0, c1 in NIR_AMPLIFIERS:
        if odd_even_columns:
            sig = {}
            for parity, start in (("odd", c0), ("even", c0 + 1)):
                edge = []
                for r0, r1 in (NIR_TOP, NIR_BOTTOM):
                    ref = det[r0:r1, start:c1:2]
                    dq = pdq_det[r0:r1, start:c1:2]
                    edge.append(_clip(good(ref, dq, dnu), siglimit))
                sig[parity] = _avg_with_none(edge[0], edge[1])
            if sig["odd"] is not None and sig["even"] is not None:
                colsig[c0:c1:2] = np.float64(sig["odd"])
                colsig[c0 + 1 : c1 : 2] = np.float64(sig["even"])
                colmask[c0:c1] = True
        else:
            edge = []
            for r0, r1 in (NIR_TOP, NIR_BOTTOM):
                edge.append(_clip(good(det[r0:r1, c0:c1], pdq_det[r0:r1, c0:c1], dnu), siglimit))
            s = _avg_with_none(edge[0], edge[1])
            if s is not None:
                colsig[c0:c1] = np.float64(s)
                colmask[c0:c1] = True


def _combine_with_nans(a, b):
    out = np.zeros(len(a), dtype=np.float64)
    an, bn = np.isnan(a), np.isnan(b)
    out[an & ~bn] = b[an & ~bn]
    out[~an & bn] = a[~an & bn]
    both = ~an & ~bn
    out[both] = 0.5 * (a[both] + b[both])
    return out


def _border_strips(frame, plane, window):
    """Copy the part of a subarray ``plane`` that lies on the 4-pixel reference border of
    the full ``frame`` (DMS orientation; flips and transposes map border to border)."""
    r0, r1, c0, c1 = window
    n = NIR_FULL
    for (y0, y1, x0, x1) in ((0, 4, 0, n), (n - 4, n, 0, n), (0, n, 0, 4), (0, n, n - 4, n)):
        ya, yb, xa, xb = max(y0, r0), min(y1, r1), max(x0, c0), min(x1, c1)
        if ya < yb and xa < xb:
            frame[ya:yb, xa:xb] = plane[ya - r0:yb - r0, xa - c0:xb - c0]


def _nir_fullframe_fused(data, pdq_det, dnu, fastaxis, slowaxis, odd_even_columns,
                         side_smoothing_length, side_gain, siglimit, buf_dtype,
                         colsig, colmask, left, right, window=None):
    """Full frame (or a subarray embedded in one) with side correction, without
    whole-frame copies: the statistics are taken on detector-frame views of the few
    reference rows/columns (converted to the buffer dtype), then one pass per group applies
    column and side signals in place with the same per-pixel operations as the copy-based
    path (see ``_k._fused_correct``). For a subarray the official code embeds each group in
    a zero full frame whose border outside the subarray is DO_NOT_USE, so only the
    subarray's own border pixels can enter the statistics and only the subarray's pixels
    are corrected: the frame here holds just those border pixels, and the correction
    touches just the subarray."""
    nints, ngroups = data.shape[:2]
    (a0, a1), (b0, b1) = NIR_SIDES
    pdq_l = np.ascontiguousarray(pdq_det[:, a0:a1])
    pdq_r = np.ascontiguousarray(pdq_det[:, b0:b1])
    transposed = abs(fastaxis) != 1
    frame = None if window is None else np.zeros((NIR_FULL, NIR_FULL), np.float32)
    for i in range(nints):
        for g in range(ngroups):
            plane = data[i, g]
            if frame is None:
                det = to_detector_frame(plane, fastaxis, slowaxis)
            else:
                _border_strips(frame, plane, window)
                det = to_detector_frame(frame, fastaxis, slowaxis)
            _nir_top_bottom(det, pdq_det, dnu, odd_even_columns, siglimit, colsig, colmask,
                            dtype=buf_dtype)
            _k._side_stats(det[:, a0:a1].astype(buf_dtype), pdq_l, colsig[a0:a1], colmask[a0:a1],
                           det[:, b0:b1].astype(buf_dtype), pdq_r, colsig[b0:b1], colmask[b0:b1],
                           side_smoothing_length, dnu, left, right)
            side = _combine_with_nans(left, right)
            # detector row r / column c as DMS vectors (flip by the axis signs; swapped
            # when the fast axis is DMS y)
            col_d, mask_d, side_d = colsig, colmask, side
            if fastaxis < 0:
                col_d, mask_d = col_d[::-1], mask_d[::-1]
            if slowaxis < 0:
                side_d = side_d[::-1]
            if window is not None:
                r0, r1, c0, c1 = window
                rows, cols = slice(r0, r1), slice(c0, c1)
                col_d, mask_d = (col_d[rows], mask_d[rows]) if transposed else (col_d[cols], mask_d[cols])
                side_d = side_d[cols] if transposed else side_d[rows]
            _k._fused_correct(plane, np.ascontiguousarray(col_d), np.ascontiguousarray(mask_d),
                              np.ascontiguousarray(side_d), float(side_gain), transposed,
                              buf_dtype == np.float32)
            buf_dtype = np.float64  # the official group buffer is float64 from now on
    return buf_dtype


def _nir_fullframe(data, pdq_det, dnu, window, fastaxis, slowaxis, odd_even_columns,
                   use_side_ref_pixels, side_smoothing_length, side_gain, siglimit,
                   buf_dtype=np.float32):
    """Returns the dtype of the official group buffer after the last group."""
    nints, ngroups = data.shape[:2]
    full = (NIR_FULL, NIR_FULL)
    colsig = np.zeros(NIR_FULL, np.float64)
    colmask = np.zeros(NIR_FULL, np.bool_)
    left = np.empty(NIR_FULL, np.float64)
    right = np.empty(NIR_FULL, np.float64)
    out = np.empty(full, np.float32)
    if use_side_ref_pixels:
        return _nir_fullframe_fused(data, pdq_det, dnu, fastaxis, slowaxis, odd_even_columns,
                                    side_smoothing_length, side_gain, siglimit, buf_dtype,
                                    colsig, colmask, left, right, window)
    for i in range(nints):
        for g in range(ngroups):
            if window is None:
                buf = data[i, g].astype(buf_dtype)
            else:
                r0, r1, c0, c1 = window
                buf = np.zeros(full, buf_dtype)
                buf[r0:r1, c0:c1] = data[i, g]
            det = np.ascontiguousarray(to_detector_frame(buf, fastaxis, slowaxis))
            _nir_top_bottom(det, pdq_det, dnu, odd_even_columns, siglimit, colsig, colmask)
            _k._subtract_columns(det, colsig, colmask)
            if use_side_ref_pixels:
                (a0, a1), (b0, b1) = NIR_SIDES
                _k._side_medians(det, pdq_det, a0, a1, side_smoothing_length, dnu, left)
                _k._side_medians(det, pdq_det, b0, b1, side_smoothing_length, dnu, right)
                side = _combine_with_nans(left, right)
                _k._apply_side(det, side, float(side_gain), out)
                result = to_dms_frame(out, fastaxis, slowaxis)
                buf_dtype = np.float64  # the official group buffer is float64 from now on
            else:
                result = to_dms_frame(det, fastaxis, slowaxis)
            if window is None:
                data[i, g] = result
            else:
                data[i, g] = result[r0:r1, c0:c1]
    return buf_dtype


def _subarray_reference_pixels(pdq_det, dnu, refdq, window, fastaxis, slowaxis,
                               odd_even_columns):
    """Where the NOUTPUTS=1 subarray correction takes its reference pixels: the
    REFERENCE_PIXEL pixels (not DO_NOT_USE), even and odd detector columns apart, as DMS
    positions in the order the official code takes them (detector row-major: the
    clipped mean's sum depends on it), and the class of each DMS column (row when
    transposed). None when there are none. See :func:`_nir_subarray`."""
    ref = ((pdq_det & refdq) == refdq) & ((pdq_det & dnu) != dnu)
    rows, cols = np.nonzero(ref)
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = window
    flat = np.arange(NIR_FULL * NIR_FULL, dtype=np.int32).reshape(NIR_FULL, NIR_FULL)
    ys, xs = np.divmod(to_detector_frame(flat, fastaxis, slowaxis)[rows, cols], NIR_FULL)
    ys -= r0
    xs -= c0
    transposed = abs(fastaxis) != 1
    window_cols = slice(r0, r1) if transposed else slice(c0, c1)
    parity = np.arange(NIR_FULL, dtype=np.int64) % 2 if odd_even_columns \
        else np.zeros(NIR_FULL, np.int64)
    colpar = np.ascontiguousarray((parity[::-1] if fastaxis < 0 else parity)[window_cols])
    if odd_even_columns:
        even = cols % 2 == 0
        a, b = (ys[even], xs[even]), (ys[~even], xs[~even])
    else:
        a, b = (ys, xs), (ys[:0], xs[:0])
    return (*(np.ascontiguousarray(v, np.int64) for v in (*a, *b)), colpar, transposed)


# the last subarray's reference pixels, by what decides them: a chunked run (TSO, a few
# integrations at a time) asks again for every chunk, and finding them takes full-frame
# passes (the detector-frame DQ, its nonzero, the index map: ~40 % of that refpix)
_last_reference_pixels = [None, None]


def _nir_subarray(data, pdq, pdq_detector_frame, dnu, refdq, window, fastaxis, slowaxis,
                  odd_even_columns, siglimit, subarray_name):
    """NOUTPUTS=1 subarray: clipped means of its REFERENCE_PIXEL pixels (even and odd
    detector columns apart), subtracted column by column.

    The official code embeds each group in a full frame, turns it to detector orientation
    and takes the reference pixels in detector row-major order; here their DMS positions
    are found once, in that order (the clipped mean's sum depends on it), and only the
    subarray is read and corrected, in place. ``pdq_detector_frame()`` makes the full
    frame DQ the positions are found in (only when ``pdq`` and the geometry are new)."""
    key = (window, fastaxis, slowaxis, bool(odd_even_columns), int(dnu), int(refdq),
           subarray_name, pdq.shape, hashlib.blake2b(np.ascontiguousarray(pdq)).digest())
    if _last_reference_pixels[0] != key:
        _last_reference_pixels[:] = [key, _subarray_reference_pixels(
            pdq_detector_frame(), dnu, refdq, window, fastaxis, slowaxis, odd_even_columns)]
    positions = _last_reference_pixels[1]
    if positions is None:
        return
    _k._subarray_correct(data, *positions[:5], float(siglimit), positions[5])


def _miri_refvalue(grp, pdq, col, rows, dnu, siglimit):
    return _clip(_good(grp[rows, col], pdq[rows, col], dnu), siglimit)


def _miri_fullframe(data, pdq, dnu, odd_even_rows, siglimit):
    nints, ngroups = data.shape[:2]
    bad = False
    for i in range(nints):
        first = data[i, 0].copy()
        _k._shift_frame(data[i], first, -1.0)
        for g in range(1, ngroups):
            if bad:
                break
            grp = data[i, g]
            values = []
            for amp in range(4):
                cols = (amp, 1028 + amp)
                if odd_even_rows:
                    odd = [_miri_refvalue(grp, pdq, c, slice(0, MIRI_ROWS, 2), dnu, siglimit)
                           for c in cols]
                    even = [_miri_refvalue(grp, pdq, c, slice(1, MIRI_ROWS, 2), dnu, siglimit)
                            for c in cols]
                    if any(v is None for v in odd + even):
                        bad = True
                    values.append((odd, even))
                else:
                    both = [_miri_refvalue(grp, pdq, c, slice(0, MIRI_ROWS), dnu, siglimit)
                            for c in cols]
                    if any(v is None for v in both):
                        bad = True
                    values.append(both)
            if bad:
                break
            for amp in range(4):
                if odd_even_rows:
                    (ol, orr), (el, er) = values[amp]
                    _k._subtract_rows_cols(grp, 0, MIRI_ROWS, 2, amp, MIRI_COLS, 4,
                                           np.float64(0.5 * (ol + orr)))
                    _k._subtract_rows_cols(grp, 1, MIRI_ROWS, 2, amp, MIRI_COLS, 4,
                                           np.float64(0.5 * (el + er)))
                else:
                    lft, rgt = values[amp]
                    _k._subtract_rows_cols(grp, 0, MIRI_ROWS, 1, amp, MIRI_COLS, 4,
                                           np.float64(0.5 * (lft + rgt)))
        _k._shift_frame(data[i], first, 1.0)


def correct_refpix(
    data,
    pdq,
    dqflags,
    *,
    instrument,
    fastaxis,
    slowaxis,
    xstart=1,
    ystart=1,
    xsize=None,
    ysize=None,
    noutputs=4,
    subarray_name=None,
    odd_even_columns=True,
    use_side_ref_pixels=True,
    side_smoothing_length=11,
    side_gain=1.0,
    odd_even_rows=True,
    siglimit=3.0,
    zeroframe=None,
    continuing=False,
):
    """Subtract the reference-pixel signal from every group (in place).

    data float32 (nints, ngroups, ny, nx) and pdq uint32 (ny, nx) in DMS orientation, whole
    frames (not row blocks). fastaxis/slowaxis: FASTAXIS/SLOWAXIS keywords. xstart/ystart
    (1-based SUBSTRT1/2 in DMS pixels) and xsize/ysize locate a subarray; noutputs is
    NOUTPUTS; subarray_name (SUBARRAY keyword) only matters for NIRSpec SUB32/SUB512/SUB512S.
    Pass the whole exposure in one call: the official buffer dtype (float32 for the first
    group, float64 after it, near-IR) and MIRI's "no good reference pixels, stop" state
    carry across integrations, so splitting the cube would change the last bits.
    zeroframe: float32 (nints, ny, nx) or None; corrected after the groups as a 1-group
    ramp (values that were 0 stay 0), continuing the official buffer state. MIRI ZEROFRAMEs
    come out unchanged, as official (first-read subtraction of a 1-group ramp).
    continuing: ``data`` holds integrations after the first ones of the exposure, already
    corrected by an earlier call (near-IR only): the official buffer state carries over.
    Returns ``(data, status)``, status "COMPLETE" or "SKIPPED" (MIRI subarray, or a subarray
    that does not fit in the full frame), as the official step records it.
    """
    check_dtypes(data=(data, np.float32), pdq=(pdq, np.uint32))
    ny, nx = data.shape[-2:]
    xsize = nx if xsize is None else xsize
    ysize = ny if ysize is None else ysize
    dnu = np.uint32(dqflags["DO_NOT_USE"])
    refdq = np.uint32(dqflags["REFERENCE_PIXEL"])
    miri = str(instrument).upper() == "MIRI"
    sub = is_subarray(data.shape, "MIRI" if miri else "NIR")
    if miri and continuing:
        raise ValueError("correct_refpix: MIRI carries a stop state across integrations; "
                         "pass the whole exposure")
    if miri:
        if sub:
            return data, "SKIPPED"
        _miri_fullframe(data, pdq, dnu, odd_even_rows, siglimit)
        if zeroframe is not None:
            zero = zeroframe == 0.0
            with np.errstate(invalid="ignore"):
                zeroframe[...] = (zeroframe - zeroframe) + zeroframe   # official no-op path
            zeroframe[zero] = 0.0
        return data, "COMPLETE"

    window = None
    if sub:
        c0 = xstart - 1
        r0 = ystart - 1
        c1, r1 = c0 + xsize, r0 + ysize
        if r0 < 0 or c0 < 0 or r1 > NIR_FULL or c1 > NIR_FULL:
            return data, "SKIPPED"
        window = (r0, r1, c0, c1)

    def pdq_detector_frame():
        pdq_full = pdq
        if sub:
            pdq_full = np.zeros((NIR_FULL, NIR_FULL), np.uint32)
            border = dnu | refdq
            pdq_full[0:4, :] = border
            pdq_full[NIR_FULL - 4 :, :] = border
            pdq_full[4 : NIR_FULL - 4, 0:4] = border
            pdq_full[4 : NIR_FULL - 4, NIR_FULL - 4 :] = border
            pdq_full[r0:r1, c0:c1] = pdq
            if subarray_name in NRS_EDGELESS_SUBARRAYS:
                pdq_full[r0:r1, c0 : c0 + 4] |= refdq
                pdq_full[r0:r1, c1 - 4 : c1] |= refdq
        return np.ascontiguousarray(to_detector_frame(pdq_full, fastaxis, slowaxis))

    zcube = None
    if zeroframe is not None:
        zero = zeroframe == 0.0
        zcube = zeroframe[:, np.newaxis]
    if sub and noutputs != 4:
        for cube in (data, zcube):
            if cube is not None:
                _nir_subarray(cube, pdq, pdq_detector_frame, dnu, refdq, window, fastaxis,
                              slowaxis, odd_even_columns, siglimit, subarray_name)
    else:
        pdq_det = pdq_detector_frame()
        # after the first side-corrected group the official buffer is float64
        state = np.float64 if continuing and use_side_ref_pixels else np.float32
        for cube in (data, zcube):
            if cube is not None:
                state = _nir_fullframe(cube, pdq_det, dnu, window, fastaxis, slowaxis,
                                       odd_even_columns, use_side_ref_pixels,
                                       side_smoothing_length, side_gain, siglimit, state)
    if zeroframe is not None:
        zeroframe[zero] = 0.0
    return data, "COMPLETE"
