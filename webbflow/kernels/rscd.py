"""Kernels for RSCD group flagging (MIRI)."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _any_problem(gdq, i0, i1, sat, out):
    """out[k] = any pixel/integration in [i0, i1) with group k SATURATED and group 0 not."""
    ngroups = gdq.shape[1]
    ny, nx = gdq.shape[2], gdq.shape[3]
    hits = np.zeros((ny, ngroups), np.bool_)
    # x innermost: a pixel's groups are a frame apart, so walk each group's row instead
    for y in prange(ny):
        for i in range(i0, i1):
            for k in range(1, ngroups):
                if hits[y, k]:
                    continue
                for x in range(nx):
                    if (gdq[i, k, y, x] & sat) and not (gdq[i, 0, y, x] & sat):
                        hits[y, k] = True
                        break
    for k in range(ngroups):
        out[k] = False
        for y in range(ny):
            if hits[y, k]:
                out[k] = True
                break


@njit(parallel=True)
def _flag_rscd(gdq, pdq, i0, i1, skip, kmin, sat, dnu, flux_est):
    """Back-off per pixel for checked group indices skip+1 .. kmin, then DO_NOT_USE on
    groups < skip_pixel; FLUX_ESTIMATED where any integration was backed off."""
    ny, nx = gdq.shape[2], gdq.shape[3]
    ngroups = gdq.shape[1]
    for y in prange(ny):
        for x in range(nx):
            backed = False
            for i in range(i0, i1):
                s = skip
                if kmin <= skip + 1 and not (gdq[i, 0, y, x] & sat):
                    for k in range(skip + 1, kmin - 1, -1):
                        if k < ngroups and (gdq[i, k, y, x] & sat):
                            s = max(s - 1, 0)
                if s < skip:
                    backed = True
                for g in range(min(s, ngroups)):
                    gdq[i, g, y, x] |= dnu
            if backed:
                pdq[y, x] |= flux_est
