"""Kernels for dq_init."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _initialize_dq(gdq, pdq, mask_dq, dnu):
    """pdq |= mask; gdq |= mask & DO_NOT_USE for every integration and group."""
    nints, ngroups, ny, nx = gdq.shape
    for y in prange(ny):
        for x in range(nx):
            m = mask_dq[y, x]
            pdq[y, x] |= m
            f = np.uint8(m & dnu)
            if f:
                for i in range(nints):
                    for g in range(ngroups):
                        gdq[i, g, y, x] |= f
