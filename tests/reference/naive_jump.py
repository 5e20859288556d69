"""Loop-per-pixel reference for two-point-difference jump detection, for clarity.

Mirrors stcal (uniform JWST groups, single process, no snowballs/showers): returns
(gdq, pdq, n_primary_crs).
"""

import math

import numpy as np


def _diffs(data, gdq, gain, y, x, bad):
    """First differences (electrons) of one pixel, NaN where either group is bad."""
    nints, ngroups = data.shape[:2]
    g = np.float32(gain[y, x])
    d = np.full((nints, ngroups - 1), np.nan)
    for i in range(nints):
        e = [np.float32(np.nan) if gdq[i, k, y, x] & bad else np.float32(data[i, k, y, x] * g)
             for k in range(ngroups)]
        for k in range(ngroups - 1):
            d[i, k] = float(np.float32(e[k + 1] - e[k]))
    return d


def _abs_median(ad):
    v = ad[np.isfinite(ad)]
    if v.size < 2:
        return math.nan, v.size
    if v.size == 2:
        return float(v.min()), 2
    if v.size >= 4:
        w = v[v != v.max()]
        return (float(np.median(w)) if w.size else math.nan), v.size
    return float(np.median(v)), 3


def naive_detect_jumps(data, gdq, pdq, gain, readnoise, dqflags, *, nframes, group_time,
                       rejection_threshold=4.0, three_group_rejection_threshold=6.0,
                       four_group_rejection_threshold=5.0, flag_4_neighbors=True,
                       max_jump_to_flag_neighbors=1000.0, min_jump_to_flag_neighbors=10.0,
                       after_jump_flag_dn1=0.0, after_jump_flag_time1=0.0,
                       after_jump_flag_dn2=0.0, after_jump_flag_time2=0.0,
                       min_diffs_single_pass=10, minimum_sigclip_groups=100):
    dnu, sat, jump = dqflags["DO_NOT_USE"], dqflags["SATURATED"], dqflags["JUMP_DET"]
    bad = dnu | sat
    gdq = gdq.copy()
    pdq = pdq.copy()
    nints, ngroups, ny, nx = data.shape
    if ngroups <= 2:
        return gdq, pdq, 0
    badg = (gain <= 0) | np.isnan(gain)
    pdq[badg] |= dqflags["NO_GAIN_VALUE"] | dnu
    rn2 = (readnoise.astype(np.float32) * gain) ** 2
    all_dnu = np.array([[np.all(gdq[i, k] & dnu) for k in range(ngroups)] for i in range(nints)])
    min_usable = ngroups - all_dnu.sum(axis=1).max()
    sigclip = nints >= minimum_sigclip_groups
    if not sigclip and min_usable < 3:
        gdq[(gdq & jump).astype(bool) & (gdq & bad).astype(bool)] -= jump
        return gdq, pdq, -99
    single = (min_usable - 1) >= min_diffs_single_pass
    med = np.zeros((ny, nx))
    sig = np.zeros((ny, nx))
    for y in range(ny):
        for x in range(nx):
            d = _diffs(data, gdq, gain, y, x, bad)
            rnv = float(rn2[y, x]) / nframes
            fin = np.isfinite(d)
            m = float(np.median(d[fin])) if fin.any() else math.nan
            s = math.sqrt(abs(m) + rnv)
            s = math.nan if s == 0 else s
            med[y, x], sig[y, x] = m, s
            if sigclip:
                for k in range(ngroups - 1):
                    col = d[:, k]
                    keep = np.isfinite(col)
                    for _ in range(5):
                        if not keep.any():
                            break
                        c, sd = np.median(col[keep]), np.std(col[keep])
                        out = keep & ((col < c - sd * rejection_threshold) |
                                      (col > c + sd * rejection_threshold))
                        if not out.any():
                            break
                        keep &= ~out
                    for i in range(nints):
                        if not keep[i] and np.isfinite(col[i]) and not gdq[i, k + 1, y, x] & bad:
                            gdq[i, k + 1, y, x] |= jump
            elif single:
                for i in range(nints):
                    for k in range(ngroups - 1):
                        if fin[i, k] and abs(d[i, k] - m) / s > rejection_threshold:
                            gdq[i, k + 1, y, x] |= jump
            else:
                ad = np.abs(d)
                it = 0
                while True:
                    mi, n = _abs_median(ad)
                    if it:
                        mi = float(np.float32(mi))
                    si = math.sqrt(abs(mi) + rnv)
                    si = math.nan if si == 0 else si
                    if n < 2:
                        break
                    thr = (rejection_threshold if n >= 4 else
                           four_group_rejection_threshold if n == 3 else
                           three_group_rejection_threshold)
                    ratio = np.abs((ad - mi).astype(np.float32)).astype(float) / si
                    if not np.isfinite(ratio).any():
                        break
                    gmax = np.nanmax(ratio)
                    hit = False
                    for i in range(nints):
                        if not np.isfinite(ratio[i]).any() or not np.nanmax(ratio[i]) > thr:
                            continue
                        for k in range(ngroups - 1):
                            if ratio[i, k] == gmax:
                                gdq[i, k + 1, y, x] |= jump
                                ad[i, k] = np.nan
                                hit = True
                    if not hit:
                        break
                    it += 1
    if sigclip:
        for i in range(nints):
            for k in range(ngroups):
                if np.all(gdq[i, k] & (jump | dnu)):
                    gdq[i, k][gdq[i, k] == jump] = 0
    ncr = int(np.count_nonzero(gdq & jump))
    if flag_4_neighbors:
        src = np.zeros(gdq.shape, bool)
        for y in range(ny):
            for x in range(nx):
                d = _diffs(data, gdq, gain, y, x, bad)
                for i in range(nints):
                    for k in range(ngroups - 1):
                        r = abs(d[i, k] - med[y, x]) / sig[y, x]
                        src[i, k + 1, y, x] = bool(gdq[i, k + 1, y, x] & jump) and \
                            min_jump_to_flag_neighbors < r < max_jump_to_flag_neighbors
        for i in range(nints):
            for k in range(1, ngroups):
                for y, x in zip(*np.nonzero(src[i, k])):
                    for yy, xx in ((y, x), (y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                        if 0 <= yy < ny and 0 <= xx < nx and not gdq[i, k, yy, xx] & bad:
                            gdq[i, k, yy, xx] |= jump
    n1 = int(after_jump_flag_time1 // group_time)
    n2 = int(after_jump_flag_time2 // group_time)
    if n1 > 0 or n2 > 0:
        gmed = float(np.nanmedian(gain))
        e1, e2 = after_jump_flag_dn1 * gmed, after_jump_flag_dn2 * gmed
        for y in range(ny):
            for x in range(nx):
                d = _diffs(data, gdq, gain, y, x, bad)
                for i in range(nints):
                    add = np.zeros(ngroups, bool)
                    for k in range(1, ngroups):
                        if not gdq[i, k, y, x] & jump:
                            continue
                        e = d[i, k - 1] - med[y, x]
                        for thr, n in ((e1, n1), (e2, n2)):
                            if e >= thr:
                                add[k:k + n + 1] = True
                    for k in range(ngroups):
                        if add[k] and not gdq[i, k, y, x] & bad:
                            gdq[i, k, y, x] |= jump
    both = (gdq & jump).astype(bool) & (gdq & bad).astype(bool)
    gdq[both] -= jump
    return gdq, pdq, ncr
