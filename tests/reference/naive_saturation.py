"""Loop-per-pixel reference for saturation flagging (clarity, not speed)."""

import numpy as np


def _grow(mask, n):
    ny, nx = mask.shape
    out = np.zeros_like(mask)
    for y in range(ny):
        for x in range(nx):
            for yy in range(max(0, y - n), min(ny, y + n + 1)):
                for xx in range(max(0, x - n), min(nx, x + n + 1)):
                    if mask[yy, xx]:
                        out[y, x] = True
    return out


def naive_flag_saturated(data, gdq, pdq, thr, sdq, flags, n_grow=1, read_pattern=None,
                         bias=None, zframe=None, atod=65535):
    DNU, SAT, ADF, NSC = (flags[k] for k in ("DO_NOT_USE", "SATURATED", "AD_FLOOR", "NO_SAT_CHECK"))
    gdq, pdq = gdq.copy(), pdq.copy()
    zframe = None if zframe is None else zframe.copy()
    nints, ngroups, ny, nx = data.shape
    t = np.array(thr, dtype=np.float32)
    nosat = np.zeros((ny, nx), bool)
    for y in range(ny):
        for x in range(nx):
            d = sdq[y, x]
            if np.isnan(thr[y, x]):
                d |= NSC
            nosat[y, x] = (sdq[y, x] & NSC) == NSC or np.isnan(thr[y, x])
            if nosat[y, x]:
                t[y, x] = atod + 1
            pdq[y, x] |= d
    b = np.zeros((ny, nx), np.float32) if bias is None else bias
    for i in range(nints):
        satnow = np.zeros((ny, nx), bool)
        for g in range(ngroups):
            for y in range(ny):
                for x in range(nx):
                    v = data[i, g, y, x]
                    if v >= t[y, x]:
                        satnow[y, x] = True
                    if satnow[y, x]:
                        gdq[i, g, y, x] |= SAT
                    if v <= 0:
                        gdq[i, g, y, x] |= ADF | DNU
            if n_grow > 0:
                grown = _grow((gdq[i, g] & SAT) > 0, n_grow)
                gdq[i, g][grown] |= SAT
        if read_pattern is not None:
            for g in range(ngroups - 2, -1, -1):
                dil = np.mean(read_pattern[g]) / read_pattern[g][-1]
                if dil == 1:
                    continue
                hit = np.zeros((ny, nx), bool)
                for y in range(ny):
                    for x in range(nx):
                        dd = 1.0 if nosat[y, x] else dil
                        hit[y, x] = (float(data[i, g, y, x]) >= float(t[y, x]) * dd
                                     and gdq[i, g, y, x] & (SAT | DNU) == 0
                                     and gdq[i, g + 1, y, x] & SAT != 0)
                if n_grow > 0:
                    hit = _grow(hit, n_grow)
                gdq[i, g][hit] |= DNU
            if ngroups > 2:
                m0 = np.mean(read_pattern[0])
                for y in range(ny):
                    for x in range(nx):
                        d0, d1 = data[i, 0, y, x], data[i, 1, y, x]
                        c1 = (float(d0 - b[y, x]) / m0) * read_pattern[2][-1] + float(b[y, x]) < float(t[y, x])
                        c2 = (d1 - d0) > (t[y, x] - d0) / np.float32(len(read_pattern[1]))
                        c3 = gdq[i, 2, y, x] & SAT and not gdq[i, 1, y, x] & SAT
                        if c1 and c2 and c3:
                            gdq[i, 1, y, x] |= DNU
        if zframe is not None:
            z = zframe[i]
            bad = (z >= t) | (z <= 0)
            grown = _grow(z >= t, n_grow) if n_grow > 0 else np.zeros_like(bad)
            z[bad | grown] = 0.0
    return gdq, pdq, zframe
