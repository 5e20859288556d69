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

from webbflow.kernels._common import (_median_nonan, _median_select, _ranked_pair, _sort_nonan,
                                      run_row_blocks)
from webbflow.kernels._options import njit

MODE_ITERATIVE = 0
MODE_SINGLE_PASS = 1
MODE_SIGMA_CLIP = 2

# most groups one _detect_rows call reserves (virtual) room for as sources: 256 MB
_SOURCE_ROOM = 1 << 25


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
def _quiet_first_pass_row(row, nall, n, rnv, rej, thr3, thr2, a):
    """:func:`_quiet_first_pass` for 2 <= n <= 24, from the pixel's float32 differences
    row[:nall] (NaN where unusable) without sorting them: the robust median of the |d|
    other than their maximum is found by ranks (:func:`_median_nonan`), the same values
    a sort gives. a: float64 scratch (>= n). The signed median is then not needed for
    the decision, so quiet pixels skip it (see :func:`_detect_rows`)."""
    amax = -np.inf
    amin = np.inf
    m = 0
    for j in range(nall):
        v = abs(np.float64(row[j]))
        a[m] = v
        if not math.isnan(v):
            m += 1
            amax = max(amax, v)
            amin = min(amin, v)
    if n < 2:
        return False
    if n == 2:
        mi = amin
        thr = thr2
    elif n == 3:
        mi = _med3(a[0], a[1], a[2])
        thr = thr3
    else:
        thr = rej
        m = 0
        for j in range(n):
            v = a[j]
            a[m] = v
            m += v != amax
        if m == 0:
            return False
        mi = _median_nonan(a, m)
    si = math.sqrt(abs(mi) + rnv)
    if not si > 0.0:
        return False
    r0 = np.float64(abs(np.float32(amin - mi))) / si
    r1 = np.float64(abs(np.float32(amax - mi))) / si
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
def _row_diffs(data, gdq, gain, y, dnu_sat, jump, g32, prev, vr, dt, nfin, vmin, vmax, njump,
               nlater):
    """First differences of row y in electrons, pixel-major: dt[x, i * nd + k - 1] =
    float32(e[k] - e[k-1]) with e = float32(data * gain), NaN where either group is
    DO_NOT_USE/SATURATED (as :func:`_load_diffs`).

    The cube is read plane by plane (a row of each group is contiguous) and only the
    differences are scattered pixel-major: gathering each pixel's ramps first (the
    pixel-major copy of :func:`_load_row`) cost as much on a 50-integration cube as the
    detection itself. Per pixel, in the same pass: nfin the number of non-NaN
    differences, vmin/vmax (float32) the smallest and largest finite one, njump the
    groups already flagged JUMP_DET (group 0 included, as the cosmic-ray count), nlater
    those of groups 1... Each step is its own loop over the row with few arrays, so that
    the compiler vectorises it (one loop touching all of them did not). vr: (16, nx)
    float32 scratch, the staging block of the pixel-major write.
    """
    nints, ngroups, ny, nx = data.shape
    nd = ngroups - 1
    nall = nints * nd
    nanf = np.float32(np.nan)
    inf = np.float32(np.inf)
    jump = np.uint8(jump)
    dnu_sat = np.uint8(dnu_sat)
    for x in range(nx):
        g32[x] = np.float32(gain[y, x])
        nfin[x] = 0
        vmin[x] = inf
        vmax[x] = -inf
        njump[x] = 0
        nlater[x] = 0
    for i in range(nints):
        for x in range(nx):
            q = gdq[i, 0, y, x]
            njump[x] += np.int32((q & jump) != 0)
            prev[x] = nanf if q & dnu_sat else np.float32(data[i, 0, y, x] * g32[x])
        for k in range(1, ngroups):
            col = i * nd + k - 1
            vs = vr[col % 16]
            for x in range(nx):
                q = gdq[i, k, y, x]
                cur = nanf if q & dnu_sat else np.float32(data[i, k, y, x] * g32[x])
                vs[x] = np.float32(cur - prev[x])
                prev[x] = cur
            for x in range(nx):
                nlater[x] += np.int32((gdq[i, k, y, x] & jump) != 0)
            for x in range(nx):
                v = vs[x]
                nfin[x] += np.int32(v == v)
                fin = abs(v) < inf
                lo = v if fin else inf
                hi = v if fin else -inf
                vmin[x] = lo if lo < vmin[x] else vmin[x]
                vmax[x] = hi if hi > vmax[x] else vmax[x]
            # the differences are staged 16 columns at a time (vr: (16, nx)) and
            # written out as runs of 16 consecutive values per pixel, rather than one
            # 4-byte store per pixel per column spread over a row's worth of lines
            if col % 16 == 15:
                c0 = col - 15
                for x in range(nx):
                    for j in range(16):
                        dt[x, c0 + j] = vr[j, x]
            elif col == nall - 1:
                c0 = col - col % 16
                for x in range(nx):
                    for j in range(col - c0 + 1):
                        dt[x, c0 + j] = vr[j, x]
    for x in range(nx):
        njump[x] += nlater[x]


@njit
def _med3(x, y, z):
    return max(min(x, y), min(max(x, y), z))


@njit
def _median_copysel(src, n, s):
    """np.median (as float64) of the NaN-free src[:n], src left as it is; s: scratch
    rows s[0:3] of the same dtype and length >= n. NaN for n == 0.

    Quickselect that partitions by copying: every value is stored into a "below pivot"
    and an "above pivot" row and the two counters advance by the comparisons, so no load
    waits on a store (as in the in-place partition of :func:`_median_select`). Values
    equal to the pivot are only counted, so each pass shrinks the range. The two middle
    values of an even n are tracked together: they are the values a sort would put
    there, so the result equals ``np.median`` (float32 values are widened before the
    mean, as numpy's median of the widened differences; a zero median may come out with
    the other sign, as with :func:`_median_select`: callers take |median| or differences
    against it).
    """
    if n == 0:
        return np.nan
    h = n >> 1
    two = (n & 1) == 0
    k = h - 1 if two else h          # rank of the (lower) middle value in the range
    cur = src
    c = -1
    m = n
    if n > 256:
        # bracket the middle by order statistics of a sample of 32: the sample is
        # sorted by branch-free ranks, one vectorised pass counts the values below each
        # of the sample's ranks 8, 10, .. 24, and only the values between the two
        # adjacent ones that hold the middle ranks (about 1/16 of n) are copied out.
        # Exact whatever the sample: the counts decide which values are kept, and the
        # full range is searched when the middle is outside ranks 8 .. 24 (rare)
        smp = s[1]
        srt = s[2]
        st = n // 32
        for j in range(32):
            smp[j] = src[j * st]
        for j in range(32):
            a = smp[j]
            r = np.int32(0)
            for q in range(j):
                r += np.int32(smp[q] <= a)
            for q in range(j + 1, 32):
                r += np.int32(smp[q] < a)
            srt[r] = a
        t0 = srt[8]
        t1 = srt[10]
        t2 = srt[12]
        t3 = srt[14]
        t4 = srt[16]
        t5 = srt[18]
        t6 = srt[20]
        t7 = srt[22]
        t8 = srt[24]
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = np.int32(0)
        for j in range(n):
            v = src[j]
            c0 += np.int32(v < t0)
            c1 += np.int32(v < t1)
            c2 += np.int32(v < t2)
            c3 += np.int32(v < t3)
            c4 += np.int32(v < t4)
            c5 += np.int32(v < t5)
            c6 += np.int32(v < t6)
            c7 += np.int32(v < t7)
            c8 += np.int32(v < t8)
        kk = k + two                # rank of the upper middle value
        cs = (c0, c1, c2, c3, c4, c5, c6, c7, c8)
        ts = (t0, t1, t2, t3, t4, t5, t6, t7, t8)
        ja = -1                     # last threshold with at most k values below it
        jb = -1                     # first threshold with more than kk values below it
        for j in range(9):
            if cs[j] <= k:
                ja = j
            if jb < 0 and cs[j] > kk:
                jb = j
        if ja >= 0 and jb >= 0:
            blo = ts[ja]
            bhi = ts[jb]
            la = s[0]
            nb = 0
            for j in range(n):
                v = src[j]
                la[nb] = v
                nb += (v >= blo) & (v < bhi)
            cur = la
            c = 0
            m = nb
            k -= cs[ja]
    while m > 16:
        if m > 128:
            t = m >> 3
            p = _med3(_med3(cur[0], cur[t], cur[2 * t]),
                      _med3(cur[3 * t], cur[4 * t], cur[5 * t]),
                      _med3(cur[6 * t], cur[7 * t], cur[m - 1]))
        else:
            p = _med3(cur[0], cur[m >> 1], cur[m - 1])
        a = 1 if c == 0 else 0
        b = 1 if c == 2 else 2
        la = s[a]
        lb = s[b]
        nl = 0
        ng = 0
        for j in range(m):
            v = cur[j]
            la[nl] = v
            lb[ng] = v
            nl += v < p
            ng += v > p
        ne = m - nl - ng
        if k < nl:
            if two and k + 1 == nl:       # lower middle is the largest below p
                lo = la[0]
                for j in range(1, nl):
                    lo = max(lo, la[j])
                return (np.float64(lo) + np.float64(p)) / 2.0
            cur = la
            c = a
            m = nl
        elif k < nl + ne:
            if not two or k + 1 < nl + ne:
                return (np.float64(p) + np.float64(p)) / 2.0 if two else np.float64(p)
            hi = lb[0]                    # upper middle is the smallest above p
            for j in range(1, ng):
                hi = min(hi, lb[j])
            return (np.float64(p) + np.float64(hi)) / 2.0
        else:
            k -= nl + ne
            cur = lb
            c = b
            m = ng
    # small range: the values of ranks k (and k + 1) by stable ranks
    lo, hi = _ranked_pair(cur, m, k, k + 1)
    if not two:
        return np.float64(lo)
    return (np.float64(lo) + np.float64(hi)) / 2.0


@njit
def _flag(gdq, i, g, y, x, jump):
    """Set JUMP_DET; 1 if it was not set before (the cosmic-ray count), else 0."""
    q = gdq[i, g, y, x]
    gdq[i, g, y, x] = q | jump
    return 0 if q & jump else 1


@njit
def _detect_rows(y0, y1, data, gdq, gain, rn2, nframes, dnu, sat, jump, mode, rej, thr3, thr2,
                flag_nbrs, rmin, rmax, med_out, sig_out, ncr_rows, all_medians):
    """Detection for rows y0 .. y1-1 (serial, nogil; see :func:`_detect`). Returns the
    flat cube indices of the neighbour-flagging sources found in these rows."""
    nints, ngroups, ny, nx = data.shape
    nd = ngroups - 1
    nall = nints * nd
    dnu_sat = dnu | sat
    d = np.empty((nints, nd), dtype=np.float64)
    ad = np.empty((nints, nd), dtype=np.float64)
    buf = np.empty(nall + 1, dtype=np.float64)
    tmp = np.empty(nall + 1, dtype=np.float64)
    s32 = np.empty((3, nall + 1), dtype=np.float32)   # _median_copysel scratch
    pk = np.empty(nall + 1, dtype=np.float32)        # non-NaN differences, packed
    col = np.empty(nints, dtype=np.float64)
    keep = np.empty(nints, dtype=np.bool_)
    ratio = np.empty((nints, nd), dtype=np.float64)
    imax = np.empty(nints, dtype=np.float64)
    dt = np.empty((nx, nall), dtype=np.float32)
    g32 = np.empty(nx, dtype=np.float32)
    prev = np.empty(nx, dtype=np.float32)
    vr = np.empty((16, nx), dtype=np.float32)   # _row_diffs staging block
    nfin = np.empty(nx, dtype=np.int32)
    vmn = np.empty(nx, dtype=np.float32)
    vmx = np.empty(nx, dtype=np.float32)
    njump = np.empty(nx, dtype=np.int32)
    nlater = np.empty(nx, dtype=np.int32)
    # sources: flat cube indices, room for every group of the block (virtual memory:
    # only the pages written are ever touched; _detect keeps blocks small enough). A
    # buffer grown (reassigned) inside the loops slowed the whole detection by 4-20%
    srcs = np.empty(nall * nx * (y1 - y0), dtype=np.int64)
    nsrc = 0
    for y in range(y0, y1):
        _row_diffs(data, gdq, gain, y, dnu_sat, jump, g32, prev, vr, dt, nfin, vmn, vmx, njump,
                   nlater)
        cnt = 0
        for x in range(nx):
            row = dt[x]
            n = np.int64(nfin[x])
            had_jump = nlater[x] > 0
            cnt += njump[x]
            newj = False
            rnv = np.float64(rn2[y, x]) / nframes
            big = n > 24
            if mode == MODE_SINGLE_PASS:
                # signed nan-median over ints and groups, and the expected noise
                if big:
                    if n == nall:
                        med = _median_copysel(row, n, s32)
                    else:
                        m = 0
                        for jj in range(nall):
                            pk[m] = row[jj]
                            m += not math.isnan(row[jj])
                        med = _median_copysel(pk, n, s32)
                else:
                    m = 0
                    for jj in range(nall):
                        buf[m] = row[jj]
                        m += not math.isnan(row[jj])
                    med = _median_of(buf, n, tmp)
                sig = math.sqrt(abs(med) + rnv)
                if sig == 0.0:
                    sig = np.nan
                med_out[y, x] = med
                sig_out[y, x] = sig
                # |d - median| / sigma is monotone on each side of the median (every
                # operation is), so the extreme finite differences decide whether any
                # group is flagged; most pixels have none and skip the pass
                cand = abs(np.float64(vmn[x]) - med) / sig > rej or \
                    abs(np.float64(vmx[x]) - med) / sig > rej
                if cand or (flag_nbrs and had_jump):
                    for i in range(nints):
                        for k in range(nd):
                            v = np.float64(row[i * nd + k])
                            r = abs(v - med) / sig
                            flagged = cand and math.isfinite(v) and r > rej
                            if flagged:
                                cnt += _flag(gdq, i, k + 1, y, x, jump)
                            # the neighbour test on this group's jump, new or not, is
                            # the detection ratio against (rmin, rmax)
                            if flag_nbrs and r < rmax and r > rmin and \
                                    (flagged or (had_jump and gdq[i, k + 1, y, x] & jump)):
                                srcs[nsrc] = ((i * ngroups + k + 1) * ny + y) * nx + x
                                nsrc += 1
                continue
            # the iterative search's first pass, when it flags nothing, needs neither
            # the differences as float64 nor the signed median (quiet pixels are most)
            quiet = False
            small = mode == MODE_ITERATIVE and not big
            if small:
                quiet = _quiet_first_pass_row(row, nall, n, rnv, rej, thr3, thr2, tmp)
                if quiet and not (all_medians or (flag_nbrs and had_jump)):
                    med_out[y, x] = np.nan
                    sig_out[y, x] = np.nan
                    continue
            for i in range(nints):
                for k in range(nd):
                    d[i, k] = row[i * nd + k]
            # signed nan-median and expected noise, for neighbour and after-jump
            # flagging: taken only for pixels that need them (see _detect) unless
            # all_medians; the big-n iterative first pass needs the packed values
            med = np.nan
            sig = np.nan
            if all_medians or (mode == MODE_ITERATIVE and big):
                nb = _fill_finite(d, buf)
                med, sig = _median_sigma(buf, nb, tmp, rnv, big)
            med_out[y, x] = med
            sig_out[y, x] = sig
            if mode == MODE_SIGMA_CLIP:
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
                        for jj in range(m):
                            tmp[jj] = buf[jj]
                        c = _median_nonan(tmp, m)
                        mean = 0.0
                        for jj in range(m):
                            mean += buf[jj]
                        mean /= m
                        var = 0.0
                        for jj in range(m):
                            var += (buf[jj] - mean) ** 2
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
                            cnt += _flag(gdq, i, k + 1, y, x, jump)
                            newj = True
            elif not (quiet or (not small and _quiet_first_pass_big(buf, tmp, n, rnv, rej))):
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
                                cnt += _flag(gdq, i, k + 1, y, x, jump)
                                newj = True
                                ad[i, k] = np.nan
                                found = True
                    if not found:
                        break
                    it += 1
            if not all_medians and (mode == MODE_SIGMA_CLIP or small) and (newj or had_jump):
                med, sig = _median_sigma(buf, _fill_finite(d, buf), tmp, rnv,
                                         mode == MODE_SIGMA_CLIP or big)
                med_out[y, x] = med
                sig_out[y, x] = sig
            # only pixels with a jump (new or pre-existing) can be sources
            if flag_nbrs and (newj or had_jump):
                for i in range(nints):
                    for k in range(nd):
                        if gdq[i, k + 1, y, x] & jump:
                            r = abs(d[i, k] - med) / sig
                            if r < rmax and r > rmin:
                                srcs[nsrc] = ((i * ngroups + k + 1) * ny + y) * nx + x
                                nsrc += 1
        ncr_rows[y] = cnt
    return srcs[:nsrc].copy()       # not the (mostly untouched) whole buffer


def _detect(data, gdq, gain, rn2, nframes, dnu, sat, jump, mode, rej, thr3, thr2,
            flag_nbrs, rmin, rmax, med_out, sig_out, ncr_rows, all_medians=True):
    """Two-point-difference detection; sets JUMP_DET in gdq (later group of a pair).

    rn2 : float32 (ny, nx), (read noise in e-)**2.  nframes : read-noise divisor
    (0.5 * n_reads_groupdiff). mode : MODE_*. rej/thr3/thr2 : thresholds for >=4, 3
    and 2 usable differences. Writes the signed nan-median difference and sigma
    (float64) used later for neighbour and after-jump flagging, and returns the
    neighbour-flagging sources (see :func:`_neighbor_sources`) as int64 flat indices
    into the cube (empty unless flag_nbrs; in no particular order): sources are sparse
    (cosmic-ray hits), and a cube-sized byte mask of them cost a cube of page faults and
    a full scan. all_medians=False (sigma-clip mode, and
    iterative mode with at most 24 usable differences): the median and sigma are
    computed only for pixels with a jump after detection, NaN elsewhere (enough when
    nothing later flags new pixels and then reads them); single-pass detection needs
    them everywhere.
    """
    # many small blocks: the threads share cores with other work, and a slowed thread
    # then holds up the end by at most one small block; and at most _SOURCE_ROOM groups
    # a block (the room _detect_rows reserves for its sources)
    nints, ngroups, ny, nx = data.shape
    row_groups = nints * (ngroups - 1) * nx
    parts = run_row_blocks(_detect_rows, ny, data, gdq, gain, rn2, nframes, dnu, sat,
                           jump, mode, rej, thr3, thr2, flag_nbrs, rmin, rmax, med_out, sig_out,
                           ncr_rows, all_medians, blocks_per_thread=16,
                           max_rows=max(1, _SOURCE_ROOM // max(1, row_groups)))
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


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
    their neighbourhoods are written; serial, so no two threads write one pixel. The
    scan reads src 8 bytes at a time and looks at the bytes of non-zero words only (a
    byte loop with a branch per byte cost ~10x the memory time).
    """
    dnu_sat = dnu | sat
    flat = src.reshape(-1)
    nw = flat.shape[0] // 8
    words = flat[:nw * 8].view(np.uint64)
    for w in range(nw + 1):
        if w < nw:
            if words[w] == 0:
                continue
            j0 = w * 8
            j1 = j0 + 8
        else:
            j0 = nw * 8
            j1 = flat.shape[0]
        for jf in range(j0, j1):
            if flat[jf] == 0:
                continue
            _flag_source(gdq, jf, dnu_sat, jump)


@njit
def _flag_source(gdq, jf, dnu_sat, jump):
    """JUMP_DET on the group at flat cube index ``jf`` and on its four neighbours in the
    frame, each unless DO_NOT_USE or SATURATED."""
    nints, ngroups, ny, nx = gdq.shape
    plane = ny * nx
    ik = jf // plane
    r = jf - ik * plane
    i = ik // ngroups
    k = ik - i * ngroups
    y = r // nx
    x = r - y * nx
    _flag_unless(gdq, i, k, y, x, dnu_sat, jump)
    if y > 0:
        _flag_unless(gdq, i, k, y - 1, x, dnu_sat, jump)
    if y < ny - 1:
        _flag_unless(gdq, i, k, y + 1, x, dnu_sat, jump)
    if x > 0:
        _flag_unless(gdq, i, k, y, x - 1, dnu_sat, jump)
    if x < nx - 1:
        _flag_unless(gdq, i, k, y, x + 1, dnu_sat, jump)


@njit
def _apply_neighbor_list(gdq, srcs, dnu, sat, jump):
    """:func:`_apply_neighbors` for sources given as flat cube indices (any order,
    repeats allowed: each write only adds JUMP_DET under a test of DO_NOT_USE/SATURATED,
    which no write changes, so the order does not matter)."""
    dnu_sat = dnu | sat
    for j in range(srcs.shape[0]):
        _flag_source(gdq, srcs[j], dnu_sat, jump)


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


@njit
def _cleanup_run(flat, ds, clear):
    for j in range(flat.shape[0]):
        v = flat[j]
        flat[j] = v & clear if v & ds else v


@njit(parallel=True)
def _cleanup(gdq, dnu, sat, jump):
    """Remove JUMP_DET from groups that are also DO_NOT_USE or SATURATED.

    Branch-free over chunks of the flat cube (every byte rewritten), which vectorises
    (the loop is its own function: inside the prange body it did not, and the old
    per-row loop with a test per byte ran at a fraction of the memory speed)."""
    flat = gdq.reshape(-1)
    n = flat.shape[0]
    ds = np.uint8(dnu | sat)
    clear = np.uint8(~np.uint8(jump))
    nchunk = 16
    step = (n + nchunk - 1) // nchunk
    for c in prange(nchunk):
        _cleanup_run(flat[c * step:min(n, (c + 1) * step)], ds, clear)
