"""Loop-per-pixel reference for the reset subtraction."""

import numpy as np


def naive_subtract_reset(data, pdq, reset, reset_dq, intstart=1):
    data, pdq = data.copy(), pdq.copy()
    nints, ngroups, ny, nx = data.shape
    for y in range(ny):
        for x in range(nx):
            pdq[y, x] |= reset_dq[y, x]
            for k in range(nints):
                ir = min(intstart - 1 + k, reset.shape[0] - 1)
                for g in range(min(ngroups, reset.shape[1])):
                    r = reset[ir, g, y, x]
                    r = np.float32(0) if np.isnan(r) else r
                    data[k, g, y, x] = np.float32(data[k, g, y, x] - r)
    return data, pdq
