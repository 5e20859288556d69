"""Loop-per-pixel reference for superbias subtraction."""

import numpy as np


def naive_subtract_superbias(data, pdq, bias, bias_dq, zframe=None):
    data, pdq = data.copy(), pdq.copy()
    zframe = None if zframe is None else zframe.copy()
    nints, ngroups, ny, nx = data.shape
    for y in range(ny):
        for x in range(nx):
            b = np.float32(0.0) if np.isnan(bias[y, x]) else bias[y, x]
            pdq[y, x] |= bias_dq[y, x]
            for i in range(nints):
                for g in range(ngroups):
                    data[i, g, y, x] = np.float32(data[i, g, y, x] - b)
                if zframe is not None and zframe[i, y, x] != 0:
                    zframe[i, y, x] = np.float32(zframe[i, y, x] - b)
    return data, pdq, zframe
