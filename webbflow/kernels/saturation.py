"""Kernels for saturation flagging (stcal.saturation.flag_saturated_pixels semantics)."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _effective_threshold(sat_thresh, sat_dq, no_sat_check, atod_limit, thr, nosat, pdq):
    """NaN / NO_SAT_CHECK thresholds -> atod_limit + 1; pdq |= sat_dq (+NO_SAT_CHECK on NaN)."""
    ny, nx = sat_thresh.shape
    big = np.float32(atod_limit + 1)
    for y in prange(ny):
        for x in range(nx):
            t = sat_thresh[y, x]
            d = sat_dq[y, x]
            isnan = np.isnan(t)
            if isnan:
                d |= no_sat_check
            ns = ((sat_dq[y, x] & no_sat_check) == no_sat_check) or isnan
            nosat[y, x] = ns
            thr[y, x] = big if ns else t
            pdq[y, x] |= d


@njit(parallel=True)
def _row_has(src, flag, rowhas):
    """rowhas[y] = any(src[y] & flag)."""
    ny, nx = src.shape
    for y in prange(ny):
        hit = False
        for x in range(nx):
            if src[y, x] & flag:
                hit = True
                break
        rowhas[y] = hit


@njit(parallel=True)
def _dilate(src, flag, n, rowhas, active, out):
    """out[y, x] = any pixel of the (2n+1)^2 box around (y, x) has src & flag.

    Only rows within n of a row with a flagged pixel (rowhas) are computed; ``active``
    marks them (other rows of ``out`` are left stale and must be ignored).
    """
    ny, nx = src.shape
    for y in prange(ny):
        y0 = max(0, y - n)
        y1 = min(ny, y + n + 1)
        near = False
        for yy in range(y0, y1):
            if rowhas[yy]:
                near = True
        active[y] = near
        if not near:
            continue
        for x in range(nx):
            x0 = max(0, x - n)
            x1 = min(nx, x + n + 1)
            hit = False
            for yy in range(y0, y1):
                if not rowhas[yy]:
                    continue
                for xx in range(x0, x1):
                    if src[yy, xx] & flag:
                        hit = True
                        break
                if hit:
                    break
            out[y, x] = hit


@njit(parallel=True)
def _forward_group(plane, gdq_plane, thr, prev, sat, low_flag, rowhas, snap):
    """Forward saturation / A/D floor flags of one group; snap = gdq_plane & sat after it
    and rowhas[y] = any(snap[y]) (the seeds of the charge-spill growth)."""
    ny, nx = plane.shape
    for y in prange(ny):
        hit = False
        for x in range(nx):
            v = plane[y, x]
            if v >= thr[y, x]:
                prev[y, x] = True
            f = np.uint8(0)
            if prev[y, x]:
                f |= sat
            if v <= 0:
                f |= low_flag
            q = gdq_plane[y, x] | f
            gdq_plane[y, x] = q
            s = q & sat
            snap[y, x] = s
            if s:
                hit = True
        rowhas[y] = hit


@njit(parallel=True)
def _forward_all(data, gdq, thr, sat, low_flag, first_sat, row_first):
    """The forward flags of every group of every integration in one parallel pass.

    A pixel is SATURATED from the first group at or above its threshold on (it stays
    so), AD_FLOOR|DO_NOT_USE where at or below zero. first_sat[i, y, x] is that first
    group (ngroups if none) and row_first[i, y] its minimum over the row: the seeds of
    the charge-spill growth, valid when gdq held no SATURATED bit before (then a group's
    seeds are exactly the pixels with first_sat <= g).
    """
    nints, ngroups, ny, nx = data.shape
    # groups outer, pixels inner: a row of each group is contiguous, while a pixel's
    # groups are a frame apart (one page each, more than the TLB holds)
    for y in prange(ny):
        first = np.empty(nx, np.int64)
        for i in range(nints):
            first[:] = ngroups
            for g in range(ngroups):
                for x in range(nx):
                    v = data[i, g, y, x]
                    if first[x] == ngroups and v >= thr[y, x]:
                        first[x] = g
                    f = np.uint8(0)
                    if first[x] <= g:
                        f |= sat
                    if v <= 0:
                        f |= low_flag
                    gdq[i, g, y, x] |= f
            rmin = ngroups
            for x in range(nx):
                first_sat[i, y, x] = first[x]
                if first[x] < rmin:
                    rmin = first[x]
            row_first[i, y] = rmin


@njit(parallel=True)
def _grow_all(gdq, first_sat, row_first, n, sat):
    """gdq |= SATURATED on the (2n+1)^2 box around every seed, group by group (a seed of
    group g is a pixel with first_sat <= g; growth never seeds further growth). Each
    thread writes only its own rows."""
    nints, ngroups, ny, nx = gdq.shape
    for y in prange(ny):
        for i in range(nints):
            for yy in range(max(0, y - n), min(ny, y + n + 1)):
                if row_first[i, yy] >= ngroups:
                    continue
                for x in range(nx):
                    first = first_sat[i, yy, x]
                    if first >= ngroups:
                        continue
                    for g in range(first, ngroups):
                        for xx in range(max(0, x - n), min(nx, x + n + 1)):
                            gdq[i, g, y, xx] |= sat


@njit(parallel=True)
def _snap_flag(src, flag, snap, rowhas):
    """snap = src & flag; rowhas[y] = any(snap[y])."""
    ny, nx = src.shape
    for y in prange(ny):
        hit = False
        for x in range(nx):
            s = src[y, x] & flag
            snap[y, x] = s
            if s:
                hit = True
        rowhas[y] = hit


@njit(parallel=True)
def _grow_from(plane, snap, n, rowhas, flag):
    """plane |= flag on the (2n+1)^2 box dilation of snap != 0 (a snapshot, so growth
    never feeds on itself); rows with no seed within n rows are not touched."""
    ny, nx = plane.shape
    for y in prange(ny):
        y0 = max(0, y - n)
        y1 = min(ny, y + n + 1)
        for yy in range(y0, y1):
            if not rowhas[yy]:
                continue
            for x in range(nx):
                if snap[yy, x]:
                    for xx in range(max(0, x - n), min(nx, x + n + 1)):
                        plane[y, xx] |= flag


@njit(parallel=True)
def _backward_group(plane, thisdq, nextdq, thr, nosat, dilution, sat, dnu, out):
    """Partial-saturation candidates of one group (returned as DO_NOT_USE bits in ``out``)."""
    ny, nx = plane.shape
    satdnu = sat | dnu
    for y in prange(ny):
        for x in range(nx):
            dil = 1.0 if nosat[y, x] else dilution
            hit = (
                np.float64(plane[y, x]) >= np.float64(thr[y, x]) * dil
                and (thisdq[y, x] & satdnu) == 0
                and (nextdq[y, x] & sat) != 0
            )
            out[y, x] = dnu if hit else np.uint8(0)


@njit(parallel=True)
def _group2_check(d0, d1, dq1, dq2, thr, bias, mean0, last2, len1, sat, dnu):
    """Flag group index 1 DO_NOT_USE for pixels that saturate within group index 1."""
    ny, nx = d0.shape
    flen1 = np.float32(len1)
    for y in prange(ny):
        for x in range(nx):
            b = bias[y, x]
            t = thr[y, x]
            scigp1 = d0[y, x] - b
            m = (np.float64(scigp1) / mean0) * last2 + np.float64(b) < np.float64(t)
            if not m:
                continue
            if not (d1[y, x] - d0[y, x] > (t - d0[y, x]) / flen1):
                continue
            if (dq2[y, x] & sat) != 0 and (dq1[y, x] & sat) == 0:
                dq1[y, x] |= dnu


@njit(parallel=True)
def _zeroframe_flags(z, thr, sat, low_flag, zdq):
    ny, nx = z.shape
    for y in prange(ny):
        for x in range(nx):
            v = z[y, x]
            f = np.uint32(0)
            if v >= thr[y, x]:
                f |= sat
            if v <= 0:
                f |= low_flag
            zdq[y, x] = f


@njit(parallel=True)
def _zero_where(z, zdq, grown, active):
    ny, nx = z.shape
    for y in prange(ny):
        for x in range(nx):
            if zdq[y, x] != 0 or (active[y] and grown[y, x]):
                z[y, x] = np.float32(0.0)
