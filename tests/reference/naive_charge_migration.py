"""Loop-per-pixel reference for charge-migration flagging."""

import numpy as np


def naive_flag_charge_migration(data, gdq, f, thr=25000.0):
    out = gdq.copy()
    nints, ngroups, ny, nx = data.shape
    flag = f["CHARGELOSS"] | f["DO_NOT_USE"]
    for i in range(nints):
        for g in range(ngroups):
            for y in range(ny):
                for x in range(nx):
                    if data[i, g, y, x] > np.float32(thr) and gdq[i, g, y, x] != f["DO_NOT_USE"]:
                        for yy, xx in ((y, x), (y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                            if 0 <= yy < ny and 0 <= xx < nx:
                                out[i, g:, yy, xx] |= flag
    return out
