"""numba kernels for two-point-difference jump detection (stcal ``twopoint_difference``).

Called only from :mod:`webbflow.steps.jump`. Detection works on one pixel's first
differences at a time (pooled over integrations), in electrons, with the dtype
sequence of stcal (float32 cube, float32 differences widened to float64, float32
iterative medians) so that threshold decisions match. Rows run in parallel (row blocks
in threads for the big detection kernel, prange elsewhere); neighbour
flagging is split into a "source" pass and an "apply" pass so that no two threads
write the same pixel.
"""

import math

import numpy as np
from numba import prange

from webbflow.kernels._common import _median_nonan, _median_select, _sort_nonan, run_row_blocks
from webbflow.kernels._options import njit

MODE_ITERATIVE = 0
MODE_SINGLE_PASS = 1
MODE_SIGMA_CLIP = 2


@njit
def _median_of(buf, n, tmp):
    """Median of the NaN-free buf[:n] (sorted in place; tmp scratch); NaN for n == 0."""
    if n == 0:
        return np.nan
    v = buf[:n]
    _sort_nonan(v, tmp)
    m = n >> 1
    if n & 1:
        return v[m]
    return (v[m - 1] + v[m]) / 2.0


@njit
def _load_row(data, gdq, y, rowd, rowq):
    """Copy row y of the cube (all ints/groups) into scratch buffers laid out pixel by
    pixel (nx, nints, ngroups), so that each pixel's ramps are contiguous for the
    per-pixel loops (the cube's own layout puts a row's groups megabytes apart)."""
    nints, ngroups, _, nx = data.shape
    for i in range(nints):
        for k in range(ngroups):
            for x in range(nx):
                rowd[x, i, k] = data[i, k, y, x]
                rowq[x, i, k] = gdq[i, k, y, x]


@njit
def _load_diffs(rowd, rowq, g, x, dnu_sat, d):
    """First differences in electrons; NaN where either group is DO_NOT_USE/SATURATED."""
    nints, ngroups = rowd.shape[1], rowd.shape[2]
    g = np.float32(g)
    for i in range(nints):
        prev = np.float32(np.nan)
        for k in range(ngroups):
            if rowq[x, i, k] & dnu_sat:
                cur = np.float32(np.nan)
            else:
                cur = np.float32(rowd[x, i, k] * g)
            if k > 0:
                d[i, k - 1] = np.float64(np.float32(cur - prev))
            prev = cur


@njit
def _robust_abs_median(ad, buf, tmp):
    """stcal calc_med_first_diffs on |diffs| of one pixel (nints, ndiffs)."""
    nints, nd = ad.shape
    n = 0
    mx = -np.inf
    for i in range(nints):
        for k in range(nd):
            v = ad[i, k]
            if not math.isnan(v):
                n += 1
                if v > mx:
                    mx = v
    if n < 2:
        return np.nan, n
    m = 0
    mn = np.inf
    for i in range(nints):
        for k in range(nd):
            v = ad[i, k]
            if math.isnan(v):
                continue
            if v < mn:
                mn = v
            if n >= 4 and v == mx:
                continue
            buf[m] = v
            m += 1
    if n == 2:
        return mn, n
    return _median_of(buf, m, tmp), n


@njit
def _quiet_first_pass(buf, tmp, n, rnv, rej, thr3, thr2):
    """True when the first iteration of the iterative search flags nothing.

    buf[:n] holds the pixel's n non-NaN differences sorted ascending (left by the signed
    median). Their absolute values, sorted, come from merging the negative and
    non-negative runs (no second sort); the robust median is then taken as in
    :func:`_robust_abs_median`. The largest ratio |f32(|d| - median)| / sigma is reached
    at the largest or the smallest |d| (every operation is monotone), so those two
    decide. False (run the full search) whenever a ratio is NaN or above threshold.
    """
    if n < 2:
        return False
    p = 0
    while p < n and buf[p] < 0.0:
        p += 1
    a = p - 1
    b = p
    for j in range(n):
        if a >= 0 and (b >= n or -buf[a] <= buf[b]):
            tmp[j] = -buf[a]
            a -= 1
        else:
            tmp[j] = abs(buf[b])
            b += 1
    if n == 2:
        mi = tmp[0]
        thr = thr2
    elif n == 3:
        mi = tmp[1]
        thr = thr3
    else:
        thr = rej
        mx = tmp[n - 1]
        m = n - 1
        while m > 0 and tmp[m - 1] == mx:
            m -= 1
        if m == 0:
            return False
        h = m >> 1
        if m & 1:
            mi = tmp[h]
        else:
            mi = (tmp[h - 1] + tmp[h]) / 2.0
    si = math.sqrt(abs(mi) + rnv)
    if not si > 0.0:
        return False
    r0 = np.float64(abs(np.float32(tmp[0] - mi))) / si
    r1 = np.float64(abs(np.float32(tmp[n - 1] - mi))) / si
    if math.isnan(r0) or math.isnan(r1):
        return False
    return not (r0 > thr or r1 > thr)


@njit
def _quiet_first_pass_big(buf, tmp, n, rnv, rej):
    """:func:`_quiet_first_pass` for n > 24 unsorted differences: the robust median of
    the |d| other than their maximum by quickselect, O(n)."""
    amax = -np.inf
    amin = np.inf
    for j in range(n):
        a = abs(buf[j])
        if a > amax:
            amax = a
        if a < amin:
            amin = a
    m = 0
    for j in range(n):
        a = abs(buf[j])
        if a != amax:
            tmp[m] = a
            m += 1
    if m == 0:
        return False
    mi = _median_select(tmp, m)
    si = math.sqrt(abs(mi) + rnv)
    if not si > 0.0:
        return False
    r0 = np.float64(abs(np.float32(amin - mi))) / si
    r1 = np.float64(abs(np.float32(amax - mi))) / si
    if math.isnan(r0) or math.isnan(r1):
        return False
    return not (r0 > rej or r1 > rej)


@njit
def _fill_finite(d, buf):
    """Copy the non-NaN differences of one pixel into buf; returns their number."""
    n = 0
    for i in range(d.shape[0]):
        for k in range(d.shape[1]):
            if not math.isnan(d[i, k]):
                buf[n] = d[i, k]
                n += 1
    return n


@njit
def _median_sigma(buf, n, tmp, rnv, big):
    """Signed median of buf[:n] and sigma = sqrt(|median| + read-noise variance), NaN for
    a zero sigma. big: quickselect, buf reordered (a zero median's sign may differ);
    else buf[:n] is left sorted, which :func:`_quiet_first_pass` relies on."""
    med = _median_select(buf, n) if big else _median_of(buf, n, tmp)
    sig = math.sqrt(abs(med) + rnv)
    if sig == 0.0:
        sig = np.nan
    return med, sig


@njit
def _pixel_has_jump(gdq, y, x, jump):
    for i in range(gdq.shape[0]):
        for k in range(1, gdq.shape[1]):
            if gdq[i, k, y, x] & jump:
                return True
    return False


@njit
def _detect_rows(y0, y1, data, gdq, gain, rn2, nframes, dnu, sat, jump, mode, rej, thr3, thr2,
                flag_nbrs, rmin, rmax, med_out, sig_out, ncr_rows, src, all_medians):
    """Detection for rows y0 .. y1-1 (serial, nogil; see :func:`_detect`)."""
    nints, ngroups, ny, nx = data.shape
    nd = ngroups - 1
    dnu_sat = dnu | sat
    d = np.empty((nints, nd), dtype=np.float64)
    ad = np.empty((nints, nd), dtype=np.float64)
    buf = np.empty(nints * nd + 1, dtype=np.float64)
    tmp = np.empty(nints * nd + 1, dtype=np.float64)
    col = np.empty(nints, dtype=np.float64)
    keep = np.empty(nints, dtype=np.bool_)
    ratio = np.empty((nints, nd), dtype=np.float64)
    imax = np.empty(nints, dtype=np.float64)
    rowd = np.empty((nx, nints, ngroups), dtype=np.float32)
    rowq = np.empty((nx, nints, ngroups), dtype=np.uint8)
    for y in range(y0, y1):
        _load_row(data, gdq, y, rowd, rowq)
        for x in range(nx):
            _load_diffs(rowd, rowq, gain[y, x], x, dnu_sat, d)
            newj = False
            rnv = np.float64(rn2[y, x]) / nframes
            # signed nan-median over ints and groups, and the expected noise; the
            # sigma-clip detector does not use them, so there they are taken later and
            # only for pixels that end up with a jump (the only ones that need them)
            med = np.nan
            sig = np.nan
            n = 0
            big = False
            if mode != MODE_SIGMA_CLIP or all_medians:
                n = _fill_finite(d, buf)
                big = n > 24
                med, sig = _median_sigma(buf, n, tmp, rnv, big)
            med_out[y, x] = med
            sig_out[y, x] = sig
            if mode == MODE_SINGLE_PASS:
                for i in range(nints):
                    for k in range(nd):
                        v = d[i, k]
                        if math.isfinite(v) and abs(v - med) / sig > rej:
                            gdq[i, k + 1, y, x] |= jump
                            newj = True
            elif mode == MODE_SIGMA_CLIP:
                for k in range(nd):
                    for i in range(nints):
                        col[i] = d[i, k]
                        keep[i] = math.isfinite(col[i])
                    for _ in range(5):
                        m = 0
                        for i in range(nints):
                            if keep[i]:
                                buf[m] = col[i]
                                m += 1
                        if m == 0:
                            break
                        # median of a copy: the mean and spread are summed in
                        # integration order, as numpy reduces along that axis
                        for j in range(m):
                            tmp[j] = buf[j]
                        c = _median_nonan(tmp, m)
                        mean = 0.0
                        for j in range(m):
                            mean += buf[j]
                        mean /= m
                        var = 0.0
                        for j in range(m):
                            var += (buf[j] - mean) ** 2
                        std = math.sqrt(var / m)
                        lo = c - std * rej
                        hi = c + std * rej
                        changed = 0
                        for i in range(nints):
                            if keep[i] and (col[i] < lo or col[i] > hi):
                                keep[i] = False
                                changed += 1
                        if changed == 0:
                            break
                    for i in range(nints):
                        if (not keep[i]) and math.isfinite(col[i]) and \
                                (gdq[i, k + 1, y, x] & dnu_sat) == 0:
                            gdq[i, k + 1, y, x] |= jump
                            newj = True
            elif not (_quiet_first_pass_big(buf, tmp, n, rnv, rej) if big else
                      _quiet_first_pass(buf, tmp, n, rnv, rej, thr3, thr2)):
                for i in range(nints):
                    for k in range(nd):
                        ad[i, k] = abs(d[i, k])
                it = 0
                while True:
                    mi, nuse = _robust_abs_median(ad, buf, tmp)
                    if it > 0:
                        mi = np.float64(np.float32(mi))
                    si = math.sqrt(abs(mi) + rnv)
                    if si == 0.0:
                        si = np.nan
                    if nuse >= 4:
                        thr = rej
                    elif nuse == 3:
                        thr = thr3
                    elif nuse == 2:
                        thr = thr2
                    else:
                        break
                    gmax = -np.inf
                    anyfinite = False
                    for i in range(nints):
                        imax[i] = -np.inf
                        for k in range(nd):
                            r = np.float64(abs(np.float32(ad[i, k] - mi))) / si
                            ratio[i, k] = r
                            if not math.isnan(r):
                                anyfinite = True
                                if r > imax[i]:
                                    imax[i] = r
                        if imax[i] > gmax:
                            gmax = imax[i]
                    if not anyfinite:
                        break
                    found = False
                    for i in range(nints):
                        if not imax[i] > thr:
                            continue
                        for k in range(nd):
                            if ratio[i, k] == gmax:
                                gdq[i, k + 1, y, x] |= jump
                                newj = True
                                ad[i, k] = np.nan
                                found = True
                    if not found:
                        break
                    it += 1
            if mode == MODE_SIGMA_CLIP and not all_medians and _pixel_has_jump(gdq, y, x, jump):
                med, sig = _median_sigma(buf, _fill_finite(d, buf), tmp, rnv, True)
                med_out[y, x] = med
                sig_out[y, x] = sig
            if flag_nbrs and not newj:
                # src is zero-initialised: only pixels with a jump (new or pre-existing)
                # can be sources
                for i in range(nints):
                    for k in range(1, ngroups):
                        if rowq[x, i, k] & jump:
                            newj = True
            if flag_nbrs and newj:
                for i in range(nints):
                    for k in range(nd):
                        if gdq[i, k + 1, y, x] & jump:
                            r = abs(d[i, k] - med) / sig
                            if r < rmax and r > rmin:
                                src[i, k + 1, y, x] = 1
        cnt = 0
        for i in range(nints):
            for k in range(ngroups):
                for x in range(nx):
                    if gdq[i, k, y, x] & jump:
                        cnt += 1
        ncr_rows[y] = cnt


def _detect(data, gdq, gain, rn2, nframes, dnu, sat, jump, mode, rej, thr3, thr2,
            flag_nbrs, rmin, rmax, med_out, sig_out, ncr_rows, src, all_medians=True):
    """Two-point-difference detection; sets JUMP_DET in gdq (later group of a pair).

    rn2 : float32 (ny, nx), (read noise in e-)**2.  nframes : read-noise divisor
    (0.5 * n_reads_groupdiff). mode : MODE_*. rej/thr3/thr2 : thresholds for >=4, 3
    and 2 usable differences. Writes the signed nan-median difference and sigma
    (float64) used later for neighbour and after-jump flagging, and, if flag_nbrs, the
    neighbour-flagging sources (see :func:`_neighbor_sources`) into src, which must be
    zero on entry (only sources are written). all_medians=False (sigma-clip mode only):
    the median and sigma are computed only for pixels with a jump after detection, NaN
    elsewhere (enough when nothing later flags new pixels and then reads them).
    """
    run_row_blocks(_detect_rows, data.shape[2], data, gdq, gain, rn2, nframes, dnu, sat, jump,
                   mode, rej, thr3, thr2, flag_nbrs, rmin, rmax, med_out, sig_out, ncr_rows, src,
                   all_medians)


@njit(parallel=True)
def _neighbor_sources(data, gdq, gain, med, sig, dnu, sat, jump, rmin, rmax, src):
    """src[i, g] = 1 where a jump at group g has rmin < |d - med|/sigma < rmax."""
    nints, ngroups, ny, nx = data.shape
    dnu_sat = dnu | sat
    for y in prange(ny):
        d = np.empty((nints, ngroups - 1), dtype=np.float64)
        rowd = np.empty((nx, nints, ngroups), dtype=np.float32)
        rowq = np.empty((nx, nints, ngroups), dtype=np.uint8)
        _load_row(data, gdq, y, rowd, rowq)
        for x in range(nx):
            _load_diffs(rowd, rowq, gain[y, x], x, dnu_sat, d)
            for i in range(nints):
                src[i, 0, y, x] = 0
                for k in range(ngroups - 1):
                    s = 0
                    if gdq[i, k + 1, y, x] & jump:
                        r = abs(d[i, k] - med[y, x]) / sig[y, x]
                        if r < rmax and r > rmin:
                            s = 1
                    src[i, k + 1, y, x] = s


@njit
def _flag_unless(gdq, i, k, y, x, dnu_sat, jump):
    if (gdq[i, k, y, x] & dnu_sat) == 0:
        gdq[i, k, y, x] |= jump


@njit
def _apply_neighbors(gdq, src, dnu, sat, jump):
    """JUMP_DET on every source and its four edge neighbours, unless SAT/DNU.

    Sources are sparse (cosmic-ray hits), so the cube is scanned once for them and only
    their neighbourhoods are written; serial, so no two threads write one pixel.
    """
    nints, ngroups, ny, nx = gdq.shape
    dnu_sat = dnu | sat
    for i in range(nints):
        for k in range(1, ngroups):
            for y in range(ny):
                for x in range(nx):
                    if src[i, k, y, x] == 0:
                        continue
                    _flag_unless(gdq, i, k, y, x, dnu_sat, jump)
                    if y > 0:
                        _flag_unless(gdq, i, k, y - 1, x, dnu_sat, jump)
                    if y < ny - 1:
                        _flag_unless(gdq, i, k, y + 1, x, dnu_sat, jump)
                    if x > 0:
                        _flag_unless(gdq, i, k, y, x - 1, dnu_sat, jump)
                    if x < nx - 1:
                        _flag_unless(gdq, i, k, y, x + 1, dnu_sat, jump)


@njit(parallel=True)
def _after_jump(data, gdq, gain, med, dnu, sat, jump, e1, n1, e2, n2):
    """Flag n1 (n2) groups after jumps of amplitude >= e1 (e2) electrons."""
    nints, ngroups, ny, nx = data.shape
    dnu_sat = dnu | sat
    for y in prange(ny):
        d = np.empty((nints, ngroups - 1), dtype=np.float64)
        add = np.empty(ngroups, dtype=np.bool_)
        rowd = np.empty((nx, nints, ngroups), dtype=np.float32)
        rowq = np.empty((nx, nints, ngroups), dtype=np.uint8)
        _load_row(data, gdq, y, rowd, rowq)
        for x in range(nx):
            _load_diffs(rowd, rowq, gain[y, x], x, dnu_sat, d)
            for i in range(nints):
                for k in range(ngroups):
                    add[k] = False
                for k in range(1, ngroups):
                    if not (gdq[i, k, y, x] & jump):
                        continue
                    e = d[i, k - 1] - med[y, x]
                    n = 0
                    if e >= e1 and n1 > n:
                        n = n1
                    if e >= e2 and n2 > n:
                        n = n2
                    if e >= e1 or e >= e2:
                        add[k] = True
                    for j in range(k + 1, min(k + n + 1, ngroups)):
                        add[j] = True
                for k in range(ngroups):
                    if add[k] and (gdq[i, k, y, x] & dnu_sat) == 0:
                        gdq[i, k, y, x] |= jump


@njit(parallel=True)
def _cleanup(gdq, dnu, sat, jump):
    """Remove JUMP_DET from groups that are also DO_NOT_USE or SATURATED."""
    nints, ngroups, ny, nx = gdq.shape
    for y in prange(ny):
        for i in range(nints):
            for k in range(ngroups):
                for x in range(nx):
                    v = gdq[i, k, y, x]
                    if (v & jump) and (v & (dnu | sat)):
                        gdq[i, k, y, x] = v - jump
