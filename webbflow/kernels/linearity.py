"""Kernels for the linearity correction (classic and read-level), row-parallel with the
pixel axis innermost so every group row is read contiguously."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit
def _prepare_row(coeffs, lin_dq, y, no_lin_corr, cbuf, addbuf):
    """Load row y's coefficients into cbuf (ncoef, nx); benign (identity) for pixels flagged
    NO_LIN_CORR in the reference, with a NaN coefficient or with c1 == 0. addbuf[x] gets
    the NO_LIN_CORR bit to add to PIXELDQ (0 when the reference DQ already has it)."""
    ncoef, nx = cbuf.shape
    for x in range(nx):
        anynan = False
        for k in range(ncoef):
            v = coeffs[k, y, x]
            cbuf[k, x] = v
            if np.isnan(v):
                anynan = True
        flagged = (lin_dq[y, x] & no_lin_corr) == no_lin_corr
        addbuf[x] = 0
        if flagged or anynan or cbuf[1, x] == 0:
            for k in range(ncoef):
                cbuf[k, x] = np.float32(0.0)
            cbuf[1, x] = np.float32(1.0)
            if not flagged:
                addbuf[x] = no_lin_corr


@njit
def _horner32(cbuf, x, d):
    n = cbuf.shape[0]
    r = cbuf[n - 1, x] * d
    for j in range(n - 2, 0, -1):
        r += cbuf[j, x]
        r *= d
    r += cbuf[0, x]
    return r


@njit
def _horner64(cbuf, x, d):
    """numpy's float32-coefficient polynomial on float64 values (float64 arithmetic)."""
    n = cbuf.shape[0]
    r = np.float64(cbuf[n - 1, x]) * d
    for j in range(n - 2, 0, -1):
        r += np.float64(cbuf[j, x])
        r *= d
    r += np.float64(cbuf[0, x])
    return r


@njit(parallel=True)
def _correct_linearity(data, gdq, pdq, coeffs, lin_dq, sat, no_lin_corr, zframe, do_zframe):
    """Horner polynomial in float32 per group (SATURATED groups unchanged); ZEROFRAME values
    other than 0 corrected too; pdq |= lin_dq (+ NO_LIN_CORR for NaN / zero-c1 pixels)."""
    nints, ngroups, ny, nx = data.shape
    ncoef = coeffs.shape[0]
    for y in prange(ny):
        cbuf = np.empty((ncoef, nx), np.float32)
        addbuf = np.empty(nx, np.uint32)
        _prepare_row(coeffs, lin_dq, y, no_lin_corr, cbuf, addbuf)
        for x in range(nx):
            pdq[y, x] = pdq[y, x] | lin_dq[y, x] | addbuf[x]
        rbuf = np.empty(nx, np.float32)
        for i in range(nints):
            for g in range(ngroups):
                drow = data[i, g, y]
                qrow = gdq[i, g, y]
                # _horner32 on the whole row, one coefficient at a time: the pixel loop is
                # innermost and vectorises (same float32 operations in the same order)
                for x in range(nx):
                    rbuf[x] = cbuf[ncoef - 1, x] * drow[x]
                for j in range(ncoef - 2, 0, -1):
                    for x in range(nx):
                        rbuf[x] = (rbuf[x] + cbuf[j, x]) * drow[x]
                for x in range(nx):
                    r = rbuf[x] + cbuf[0, x]
                    drow[x] = drow[x] if qrow[x] & sat else r
        if do_zframe:
            for i in range(zframe.shape[0]):
                for x in range(nx):
                    d = zframe[i, y, x]
                    if d != 0.0:
                        zframe[i, y, x] = _horner32(cbuf, x, d)


@njit(parallel=True)
def _correct_linearity_reads(data, gdq, pdq, coeffs, icoeffs, lin_dq, sat, no_lin_corr,
                             mean_reads, read_frames, read_start, read_count):
    """Read-level linearity correction of frame-averaged groups (stcal ``ilin_coeffs`` path).

    Per integration: a count rate from the linearised first and last unsaturated groups
    predicts every read, INV_COEFFS turn the reads back into raw counts, they are offset to
    reproduce the measured group, linearised read by read and averaged (float64 throughout,
    rounded once into float32). SATURATED groups are left unchanged.
    """
    nints, ngroups, ny, nx = data.shape
    ncoef = coeffs.shape[0]
    nicoef = icoeffs.shape[0]
    maxr = 1
    for g in range(ngroups):
        maxr = max(maxr, read_count[g])
    m0 = mean_reads[0]
    for y in prange(ny):
        c = np.empty((ncoef, nx), np.float32)
        ci = np.empty((nicoef, nx), np.float32)
        add1 = np.empty(nx, np.uint32)
        add2 = np.empty(nx, np.uint32)
        _prepare_row(coeffs, lin_dq, y, no_lin_corr, c, add1)
        _prepare_row(icoeffs, lin_dq, y, no_lin_corr, ci, add2)
        for x in range(nx):
            pdq[y, x] = pdq[y, x] | lin_dq[y, x] | add1[x] | add2[x]
        nun = np.empty(nx, np.int64)
        first = np.empty(nx, np.float32)
        rate = np.empty(nx, np.float64)
        ru = np.empty(maxr, np.float64)
        for i in range(nints):
            for x in range(nx):
                nun[x] = -1
            for g in range(ngroups):
                for x in range(nx):
                    if (gdq[i, g, y, x] & sat) == 0:
                        nun[x] += 1
            for x in range(nx):
                lv = max(nun[x], 2) - 1
                d0 = data[i, 0, y, x]
                f = d0 if gdq[i, 0, y, x] & sat else _horner32(c, x, d0)
                dl = data[i, lv, y, x]
                last = dl if gdq[i, lv, y, x] & sat else _horner32(c, x, dl)
                first[x] = f
                rate[x] = np.float64(last - f) / (mean_reads[lv] - m0)
            for g in range(ngroups):
                nr = read_count[g]
                s0 = read_start[g]
                for x in range(nx):
                    if gdq[i, g, y, x] & sat:
                        continue
                    pred = 0.0
                    for k in range(nr):
                        rl = np.float64(first[x]) + rate[x] * (read_frames[s0 + k] - m0)
                        ru[k] = _horner64(ci, x, rl)
                        pred = ru[k] if k == 0 else pred + ru[k]
                    off = np.float64(data[i, g, y, x]) - pred / nr
                    acc = 0.0
                    for k in range(nr):
                        v = _horner64(c, x, ru[k] + off)
                        acc = v if k == 0 else acc + v
                    data[i, g, y, x] = acc / nr
