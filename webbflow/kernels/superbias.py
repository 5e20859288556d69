"""Kernels for superbias subtraction."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _subtract_superbias(data, pdq, bias, bias_dq):
    """data[i, g] -= bias (NaN -> 0), pdq |= bias_dq; rows in parallel, x innermost."""
    nints, ngroups, ny, nx = data.shape
    for y in prange(ny):
        for x in range(nx):
            pdq[y, x] |= bias_dq[y, x]
        for i in range(nints):
            for g in range(ngroups):
                for x in range(nx):
                    b = bias[y, x]
                    if np.isnan(b):
                        b = np.float32(0.0)
                    data[i, g, y, x] = data[i, g, y, x] - b


@njit(parallel=True)
def _subtract_superbias_zeroframe(zframe, bias):
    nints, ny, nx = zframe.shape
    for y in prange(ny):
        for i in range(nints):
            for x in range(nx):
                b = bias[y, x]
                if np.isnan(b):
                    b = np.float32(0.0)
                z = zframe[i, y, x]
                if z != 0.0:
                    zframe[i, y, x] = z - b
