"""Kernels for charge-migration flagging (rows in parallel, pixel axis innermost)."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _first_over(data, gdq, thr, dnu, first):
    """first[i, y, x] = first group with data > thr and gdq != DO_NOT_USE (else ngroups)."""
    nints, ngroups, ny, nx = data.shape
    for y in prange(ny):
        for i in range(nints):
            for x in range(nx):
                first[i, y, x] = ngroups
            for g in range(ngroups):
                for x in range(nx):
                    if first[i, y, x] == ngroups and data[i, g, y, x] > thr \
                            and gdq[i, g, y, x] != dnu:
                        first[i, y, x] = g


@njit(parallel=True)
def _flag_from_first(gdq, first, flag):
    """Flag groups >= min(first) over the pixel and its 4 neighbours."""
    nints, ngroups, ny, nx = gdq.shape
    for y in prange(ny):
        fmin = np.empty(nx, np.int32)
        for i in range(nints):
            for x in range(nx):
                f = first[i, y, x]
                if y > 0:
                    f = min(f, first[i, y - 1, x])
                if y < ny - 1:
                    f = min(f, first[i, y + 1, x])
                if x > 0:
                    f = min(f, first[i, y, x - 1])
                if x < nx - 1:
                    f = min(f, first[i, y, x + 1])
                fmin[x] = f
            for g in range(ngroups):
                for x in range(nx):
                    if g >= fmin[x]:
                        gdq[i, g, y, x] |= flag
