"""Loop-per-pixel reference for dq_init."""


def naive_initialize_dq(gdq, pdq, mask, flags):
    gdq, pdq = gdq.copy(), pdq.copy()
    nints, ngroups, ny, nx = gdq.shape
    for y in range(ny):
        for x in range(nx):
            pdq[y, x] |= mask[y, x]
            if mask[y, x] & flags["DO_NOT_USE"]:
                for i in range(nints):
                    for g in range(ngroups):
                        gdq[i, g, y, x] |= flags["DO_NOT_USE"]
    return gdq, pdq
