"""Kernels for persistence flagging (jwst 3.0: flags only, no trap model)."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _flag_persistence(data, gdq, parr, times, ptime, use_dn, dn_threshold, sat, flag):
    """Per pixel, group by group as the official ``process_persistence_flagging``."""
    nints, ngroups, ny, nx = data.shape
    for y in prange(ny):
        nsat = np.zeros(nx, np.int64)
        for i in range(nints):
            nsat[:] = 0
            for g in range(ngroups):
                t = times[i, g]
                wend = t + ptime
                for x in range(nx):
                    p = parr[y, x]
                    if p < t:
                        p = 0.0
                    if gdq[i, g, y, x] & sat:
                        nsat[x] += 1
                    if nsat[x] == 1:
                        p = wend
                    if use_dn and data[i, g, y, x] > dn_threshold and not (p > 0.0):
                        p = wend
                    if p != 0.0 and p - wend > 0.0:
                        p = 0.0
                    if p > 0.0:
                        gdq[i, g, y, x] |= flag
                    parr[y, x] = p
