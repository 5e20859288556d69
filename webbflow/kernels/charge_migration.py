"""Kernels for charge-migration flagging."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _first_over(data, gdq, thr, dnu, first):
    """first[i, y, x] = first group with data > thr and gdq != DO_NOT_USE (else ngroups)."""
    nints, ngroups, ny, nx = data.shape
    for y in prange(ny):
        for x in range(nx):
            for i in range(nints):
                f = ngroups
                for g in range(ngroups):
                    if data[i, g, y, x] > thr and gdq[i, g, y, x] != dnu:
                        f = g
                        break
                first[i, y, x] = f


@njit(parallel=True)
def _flag_from_first(gdq, first, flag):
    """Flag groups >= min(first) over the pixel and its 4 neighbours."""
    nints, ngroups, ny, nx = gdq.shape
    for y in prange(ny):
        for x in range(nx):
            for i in range(nints):
                f = first[i, y, x]
                if y > 0:
                    f = min(f, first[i, y - 1, x])
                if y < ny - 1:
                    f = min(f, first[i, y + 1, x])
                if x > 0:
                    f = min(f, first[i, y, x - 1])
                if x < nx - 1:
                    f = min(f, first[i, y, x + 1])
                for g in range(f, ngroups):
                    gdq[i, g, y, x] |= flag
