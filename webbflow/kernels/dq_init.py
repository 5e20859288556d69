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
            pdq[y, x] |= mask_dq[y, x]
        for i in range(nints):
            for g in range(ngroups):
                for x in range(nx):
                    gdq[i, g, y, x] |= np.uint8(mask_dq[y, x] & dnu)
