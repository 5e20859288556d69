"""Kernels for the MIRI reset correction."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _subtract_reset(data, pdq, reset, reset_dq, ref_index, ngroups_corr):
    nints, ngroups, ny, nx = data.shape
    for y in prange(ny):
        for x in range(nx):
            pdq[y, x] |= reset_dq[y, x]
        for i in range(nints):
            k = ref_index[i]
            for g in range(ngroups_corr):
                for x in range(nx):
                    r = reset[k, g, y, x]
                    if np.isnan(r):
                        r = np.float32(0.0)
                    data[i, g, y, x] = data[i, g, y, x] - r
