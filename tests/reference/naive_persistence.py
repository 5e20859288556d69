"""Loop-per-pixel reference for jwst 3.0 persistence flagging."""

import numpy as np


def naive_flag_persistence(data, gdq, parr, times, ptime, f, dn_threshold=None, dnu=False):
    gdq, parr = gdq.copy(), parr.copy()
    nints, ngroups, ny, nx = data.shape
    flag = f["PERSISTENCE"] | (f["DO_NOT_USE"] if dnu else 0)
    for y in range(ny):
        for x in range(nx):
            for i in range(nints):
                nsat = 0
                for g in range(ngroups):
                    t = times[i, g]
                    wend = t + ptime
                    if parr[y, x] < t:
                        parr[y, x] = 0.0
                    nsat += bool(gdq[i, g, y, x] & f["SATURATED"])
                    if nsat == 1:
                        parr[y, x] = wend
                    if dn_threshold is not None and data[i, g, y, x] > np.float32(dn_threshold) \
                            and not parr[y, x] > 0:
                        parr[y, x] = wend
                    if parr[y, x] != 0 and parr[y, x] - wend > 0:
                        parr[y, x] = 0.0
                    if parr[y, x] > 0:
                        gdq[i, g, y, x] |= flag
    return gdq, parr
