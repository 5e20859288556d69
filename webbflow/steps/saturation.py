"""saturation: flag saturated groups, A/D floor groups and charge spill.

Same science as ``stcal.saturation.flag_saturated_pixels`` (stcal 1.20) as called by
``jwst.saturation.saturation.flag_saturation``: 2-D thresholds only (no superstripe
4-D inputs). The IRS2 variant is ``webbflow.steps.irs2.flag_saturated_irs2``.
"""

import numpy as np

from webbflow.kernels import saturation as _k
from webbflow.kernels._common import _any_flag
from webbflow.steps._checks import check_dtypes

__all__ = ["flag_saturated", "make_read_pattern"]


ATOD_LIMIT = 65535


def make_read_pattern(ngroups, nframes):
    """Frame numbers composing each group, as jwst builds it when ``use_readpatt`` is set."""
    return [[x + 1 + g * nframes for x in range(nframes)] for g in range(ngroups)]


def _grow_or(plane, flag, n, rowhas, snap):
    """plane |= flag on the (2n+1)^2 box dilation of ``plane & flag``."""
    _k._snap_flag(plane, flag, snap, rowhas)
    _k._grow_from(plane, snap, n, rowhas, flag)


def flag_saturated(
    data,
    gdq,
    pdq,
    sat_thresh,
    sat_dq,
    dqflags,
    *,
    n_pix_grow_sat=1,
    read_pattern=None,
    bias=None,
    zeroframe=None,
    atod_limit=ATOD_LIMIT,
):
    """Flag saturation (SATURATED, grown), A/D floor (AD_FLOOR|DO_NOT_USE) and frame-averaging
    partial saturation (DO_NOT_USE) in ``gdq``.

    data : float32 (nints, ngroups, ny, nx); gdq uint8 same shape; pdq uint32 (ny, nx).
    sat_thresh float32 (ny, nx), sat_dq uint32 (ny, nx): reference cut to the science frame.
    read_pattern : list of lists of frame numbers per group (``make_read_pattern``) or None.
        When given, the backward pass (groups whose dilution factor != 1) and the group-2
        check (ngroups > 2, any NFRAMES, as in the official code) are done.
    bias : float32 (ny, nx) superbias cut-out for the group-2 check, as jwst passes it (NaN
        not zeroed), or None (= 0).
    zeroframe : float32 (nints, ny, nx) or None; saturated / <= 0 values (grown) set to 0.

    The charge-spill growth is not pixel-local: pass whole frames (or add a halo).
    Reference arrays are not modified (the official code mutates them).
    Returns ``(gdq, pdq, zeroframe)``.
    """
    check_dtypes(data=(data, np.float32), gdq=(gdq, np.uint8), pdq=(pdq, np.uint32))
    nints, ngroups, ny, nx = data.shape
    if gdq.shape != data.shape or pdq.shape != (ny, nx):
        raise ValueError("data / gdq / pdq shapes do not match")
    dnu = np.uint8(dqflags["DO_NOT_USE"])
    sat = np.uint8(dqflags["SATURATED"])
    adf = np.uint8(dqflags["AD_FLOOR"])
    nsc = np.uint32(dqflags["NO_SAT_CHECK"])
    low = np.uint8(adf | dnu)
    n = int(n_pix_grow_sat)

    sat_thresh = np.ascontiguousarray(sat_thresh, dtype=np.float32)
    sat_dq = np.ascontiguousarray(sat_dq, dtype=np.uint32)
    thr = np.empty((ny, nx), np.float32)
    nosat = np.empty((ny, nx), np.bool_)
    _k._effective_threshold(sat_thresh, sat_dq, nsc, atod_limit, thr, nosat, pdq)

    if read_pattern is not None:
        dilution = [float(np.mean(rp) / rp[-1]) for rp in read_pattern]
    grown = np.empty((ny, nx), np.bool_)
    rowhas = np.empty(ny, np.bool_)
    active = np.empty(ny, np.bool_)
    prev = np.empty((ny, nx), np.bool_)
    flag = np.empty((ny, nx), np.uint8)
    snap = np.empty((ny, nx), np.uint8)
    if bias is None:
        bias_arr = np.zeros((ny, nx), np.float32)
    else:
        bias_arr = np.ascontiguousarray(bias, dtype=np.float32)

    if _any_flag(gdq.reshape(-1), sat):
        # SATURATED already set on input: a group's seeds are not just the pixels above
        # threshold, so take each group's snapshot
        for i in range(nints):
            prev[:] = False
            for g in range(ngroups):
                _k._forward_group(data[i, g], gdq[i, g], thr, prev, sat, low, rowhas, snap)
                if n > 0:
                    _k._grow_from(gdq[i, g], snap, n, rowhas, sat)
    else:
        # two parallel passes over the whole chunk (a pass per group costs more in thread
        # start-up than in work on small frames)
        first_sat = np.empty((nints, ny, nx), np.int32)
        row_first = np.empty((nints, ny), np.int32)
        _k._forward_all(data, gdq, thr, sat, low, first_sat, row_first)
        if n > 0:
            _k._grow_all(gdq, first_sat, row_first, n, sat)
        del first_sat
    for i in range(nints):
        if read_pattern is not None:
            for g in range(ngroups - 2, -1, -1):
                if dilution[g] == 1:
                    continue
                _k._backward_group(
                    data[i, g], gdq[i, g], gdq[i, g + 1], thr, nosat, dilution[g], sat, dnu, flag
                )
                if n > 0:
                    _grow_or(flag, dnu, n, rowhas, snap)
                np.bitwise_or(gdq[i, g], flag, out=gdq[i, g])
            if ngroups > 2:
                _k._group2_check(
                    data[i, 0], data[i, 1], gdq[i, 1], gdq[i, 2], thr, bias_arr,
                    float(np.mean(read_pattern[0])), float(read_pattern[2][-1]),
                    len(read_pattern[1]), sat, dnu,
                )
        if zeroframe is not None:
            zdq = np.empty((ny, nx), np.uint8)
            _k._zeroframe_flags(zeroframe[i], thr, sat, low, zdq)
            if n > 0:
                _k._row_has(zdq, sat, rowhas)
                _k._dilate(zdq, sat, n, rowhas, active, grown)
            else:
                active[:] = False
            _k._zero_where(zeroframe[i], zdq, grown, active)
    return gdq, pdq, zeroframe
