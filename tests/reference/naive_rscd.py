"""Loop-per-pixel reference for RSCD flagging (monotonic saturation assumed, as after the
saturation step, which makes the official frame-wide back-off loop pixel-local)."""

import numpy as np


def _range(gdq, pdq, i0, i1, skip, f):
    ngroups = gdq.shape[1]
    for y in range(gdq.shape[2]):
        for x in range(gdq.shape[3]):
            backed = False
            for i in range(i0, i1):
                s = skip
                if not gdq[i, 0, y, x] & f["SATURATED"]:
                    k = skip + 1
                    while k >= 1 and gdq[i, k, y, x] & f["SATURATED"]:
                        s = max(s - 1, 0)
                        k -= 1
                backed |= s < skip
                for g in range(min(s, ngroups)):
                    gdq[i, g, y, x] |= f["DO_NOT_USE"]
            if backed:
                pdq[y, x] |= f["FLUX_ESTIMATED"]


def naive_flag_rscd(gdq, pdq, n1, n2, f, nints=None, intstart=1):
    gdq, pdq = gdq.copy(), pdq.copy()
    n_data, ngroups = gdq.shape[:2]
    nints = n_data if nints is None else nints
    if n1 < 0:
        n1 = 1
    if ngroups < 3:
        return gdq, pdq
    if ngroups <= 5:
        n1 = n2 = 1
    if ngroups < n1 + 3:
        n1 = max(0, ngroups - 3)
    if nints > 1 and ngroups < n2 + 3:
        n2 = max(0, ngroups - 3)
    first = 0
    if intstart == 1:
        _range(gdq, pdq, 0, 1, n1, f)
        first = 1
    if nints > 1:
        _range(gdq, pdq, first, n_data, n2, f)
    return gdq, pdq
