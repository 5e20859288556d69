"""numba kernels for OLS ramp fitting with optimal weighting (stcal ``OLS_C``).

Called only from :mod:`webbflow.steps.ramp_fit`. One pixel is fitted at a time, with
float64 accumulators, following stcal's ``slope_fitter.c`` step by step (segment
finding, median-rate Poisson estimate, power-law weights, integration and exposure
combination, CHARGELOSS read-noise recomputation). Pixels are independent, so row blocks
run in threads (serial nogil kernel, see ``_common.run_row_blocks``) and any row block of a
frame can be passed.
"""

import math

import numpy as np

from webbflow.kernels._common import _median_nonan, _ranked_pair, _select_kth, run_row_blocks
from webbflow.kernels._options import njit

LARGE_VARIANCE = 1.0e6


@njit
def _find_segments(q, ngroups, pers, jump, seg_s, seg_e):
    """Fill seg_s/seg_e with the fit segments of one ramp's DQ ``q``.

    Returns (number of segments, size of stcal's segment list), the latter only used
    for the dimension of the optional fitopt arrays.

    A segment is a run of groups whose DQ (ignoring PERSISTENCE) is 0; the group
    just before the run is prepended when its DQ (ignoring PERSISTENCE) is exactly
    JUMP_DET. If any segment has length >= 2 only those are kept, else only the first.
    """
    npers = ~pers
    nseg = 0
    in_seg = False
    start = 0
    maxlen = 0
    for idx in range(ngroups + 1):
        good = False
        if idx < ngroups:
            good = (q[idx] & npers) == 0
        if good:
            if not in_seg:
                if idx > 0 and (q[idx - 1] & npers) == jump:
                    start = idx - 1
                else:
                    start = idx
                in_seg = True
        elif in_seg:
            seg_s[nseg] = start
            seg_e[nseg] = idx
            nseg += 1
            if idx - start > maxlen:
                maxlen = idx - start
            in_seg = False
    if nseg < 2:
        return nseg, nseg
    if maxlen < 2:
        return 1, nseg  # the C list keeps one node but its size stays at nseg
    n = 0
    for s in range(nseg):
        if seg_e[s] - seg_s[s] >= 2:
            seg_s[n] = seg_s[s]
            seg_e[n] = seg_e[s]
            n += 1
    return n, n


@njit
def _fdiv(a, b):
    """IEEE a / b (the C code relies on inf/NaN from division by zero)."""
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return np.nan
        return math.copysign(np.inf, a) * math.copysign(1.0, b)
    return a / b


@njit
def _rnoise_var(rn, gain, t, n, check_gain):
    """Read-noise variance of a segment of n groups (n=1 uses the n=2 denominator)."""
    if check_gain and (gain <= 0.0 or math.isnan(gain)):
        return 0.0
    r = _fdiv(rn, t)
    num = 12.0 * r * r
    if n <= 2:
        den = 6.0
    else:
        den = float(n) * n * n - n
    return _fdiv(num, den * gain * gain)


@njit
def _snr_power_index(snr):
    if snr < 5.0:
        return 0
    if snr < 10.0:
        return 1
    if snr < 20.0:
        return 2
    if snr < 50.0:
        return 3
    if snr < 100.0:
        return 4
    return 5


@njit
def _median_counted(dif, p, n, below, m, nnan, a, b, lc0, buf, tmp):
    """Median of the first differences dif[:n, p] of a ramp without DQ flags (DN/s),
    NaN differences left out, lc0 (its first value) if all are; the same value as the
    general path's :func:`_median_nonan` of them.

    The median is an order statistic, so it can be selected among the values of a narrow
    window [a, b] once that is known to hold the middle rank(s). :func:`_clean_block`
    makes the differences and, in one branch-free pass over a row of pixels, the counts
    below (< a), m (in the window) and nnan (NaN); this replaces most of a full
    quickselect. The window is centred on the mean difference (the ramp's end points give
    it without a sum) with a half width of 2 sigma / sqrt(n) (~2.6 standard deviations
    of median - mean for normal noise), sigma^2 = rnv + |mean| * pois from read noise and
    Poisson noise (per-pixel constants, DN^2). The window only has to be a guess: a
    missed one (a cosmic ray shifts the mean, or the noise model is off) falls back to
    the full selection, and NaN bounds (bad gain) miss.
    """
    if nnan > 0:
        nv = 0
        for k in range(n):
            v = dif[k, p]
            if not math.isnan(v):
                buf[nv] = v
                nv += 1
        if nv == 0 and not math.isnan(lc0):
            buf[0] = lc0
            nv = 1
        return _median_nonan(buf, nv)
    h = n >> 1
    # ranks below..below+m-1 of the sorted differences are the window's values
    klo = h if n & 1 else h - 1
    if n <= 2 or below > klo or below + m <= h:
        for k in range(n):
            buf[k] = dif[k, p]
        return _median_nonan(buf, n)
    mm = 0
    for k in range(n):
        v = dif[k, p]
        tmp[mm] = v
        mm += (v >= a) & (v <= b)
    t = h - below
    if m > 16:
        hi = _select_kth(tmp, m, t)
        if n & 1:
            return hi
        # tmp[:t] holds the window's values below rank t: the lower middle is their max
        lo = tmp[0]
        for k in range(1, t):
            if tmp[k] > lo:
                lo = tmp[k]
        return (lo + hi) / 2.0
    # few values: the values of ranks t-1 and t are the order statistics whatever ties
    # there are
    lo, hi = _ranked_pair(tmp, m, t - 1, t)
    if n & 1:
        return hi
    return (lo + hi) / 2.0


@njit
def _weight_table(ngroups):
    """wt[p, n, j] = powf(|(j - m)/m|, P_p) for a segment of n >= 3 groups, m = (n-1)/2.

    Same float32 expression as the C code (powf), tabulated once instead of per group.
    """
    powers = np.array([0.0, 0.4, 1.0, 3.0, 6.0, 10.0], dtype=np.float32)
    wt = np.zeros((6, ngroups + 1, ngroups), dtype=np.float64)
    for p in range(6):
        for n in range(3, ngroups + 1):
            mid = (n - 1) / 2.0
            invmid = 1.0 / mid
            for j in range(n):
                w = abs((float(j) - mid) * invmid)
                wt[p, n, j] = np.float64(np.float32(w) ** powers[p])
    return wt


@njit
def _clean_block(data, gdq, row, x0, nb, rnoise, gain, y, group_time, inv_gt, wt, lean_ok,
                 cl, mr, px, sy, sxy, sw, sx, sxx, lcb, invrn2, buf, tmp):
    """The clean integrations (no DQ flag in any group) of pixels x0 .. x0+nb-1 of fitted
    row y (data row ``row``), all integrations at once: cl[i, p] whether integration i
    of pixel x0+p is clean; for those mr[i, p], the median rate (:func:`_median_counted`),
    and, with >= 3 groups, px[i, p] the weight power index and sy/sxy[i, p] the data
    sums of the full-ramp fit, with sw/sx/sxx[q, p] its weight sums for power index q.

    Every value is the one the per-pixel code computed (same float64 operations in the
    same order per pixel); the loops only run over pixels innermost, reading a data row
    as it is in memory (no transposition), so the divisions, differences, window counts
    and group sums vectorise across pixels instead of being one latency-bound chain per
    pixel.
    """
    nints, ngroups = data.shape[0], data.shape[1]
    any_clean = False
    acc = np.empty(nb, dtype=np.uint8)
    for i in range(nints):
        for p in range(nb):
            cl[i, p] = False
            acc[p] = 0
        if not lean_ok:
            continue
        for k in range(ngroups):
            for p in range(nb):
                acc[p] |= gdq[i, k, row, x0 + p]
        for p in range(nb):
            cl[i, p] = acc[p] == 0
            any_clean |= cl[i, p]
    if not any_clean:
        return
    used = np.zeros(6, dtype=np.bool_)
    # noise model of the clean-ramp median window (a guess: any value is safe)
    # (numba raises on a float division by zero: bad gains get NaN, which misses)
    rnv_b = np.full(nb, np.nan)
    pois_b = np.full(nb, np.nan)
    for p in range(nb):
        g = np.float64(gain[y, x0 + p])
        rn = np.float64(rnoise[y, x0 + p])
        if g > 0.0:
            rnv_b[p] = 2.0 * rn * rn / (g * g)
            pois_b[p] = group_time / g
    wa = np.empty(nb, dtype=np.float64)
    wbh = np.empty(nb, dtype=np.float64)
    n_below = np.empty(nb, dtype=np.int64)
    n_in = np.empty(nb, dtype=np.int64)
    n_nan = np.empty(nb, dtype=np.int64)
    dif = np.empty((max(ngroups - 1, 1), nb + 8), dtype=np.float64)
    if ngroups >= 3:
        # power index of each clean full-ramp fit, as in _fit_rows' segment fit
        for i in range(nints):
            for p in range(nb):
                px[i, p] = 0
                if not cl[i, p]:
                    continue
                g = np.float64(gain[y, x0 + p])
                rn = np.float64(rnoise[y, x0 + p])
                dd = (np.float64(data[i, ngroups - 1, row, x0 + p])
                      - np.float64(data[i, 0, row, x0 + p]))
                den = rn * rn + dd * g
                snr = 0.0
                if not (den <= 0.0 or g == 0.0):
                    sv = dd * g / math.sqrt(den)
                    snr = 0.0 if sv < 0.0 else sv
                q = _snr_power_index(snr)
                px[i, p] = q
                used[q] = True
        # weights w = wt * 1/rn^2, x * w, and their sums, in the segment fit's order
        for p in range(nb):
            rn = np.float64(rnoise[y, x0 + p])
            invrn2[p] = _fdiv(1.0, rn * rn)
        for q in range(6):
            if not used[q]:
                continue
            for p in range(nb):
                sw[q, p] = 0.0
                sx[q, p] = 0.0
                sxx[q, p] = 0.0
            for j in range(ngroups):
                xv = float(j)
                wq = wt[q, ngroups, j]
                for p in range(nb):
                    w = wq * invrn2[p]
                    xw = xv * w
                    sw[q, p] += w
                    sx[q, p] += xw
                    sxx[q, p] += xv * xw
    for i in range(nints):
        n_cl = 0
        for p in range(nb):
            n_cl += cl[i, p]
        if n_cl == 0:
            continue
        for k in range(ngroups):
            for p in range(nb):
                lcb[k, p] = np.float64(data[i, k, row, x0 + p]) / group_time
        # median rates: the window (see _median_counted) and the counts, pixel-inner
        n = ngroups - 1
        inv_n = 1.0 / n
        for p in range(nb):
            c = (lcb[n, p] - lcb[0, p]) * inv_n
            half = 2.0 * math.sqrt((rnv_b[p] + abs(c) * pois_b[p]) * inv_n) * inv_gt
            wa[p] = c - half
            wbh[p] = c + half
            n_below[p] = 0
            n_in[p] = 0
            n_nan[p] = 0
        for k in range(n):
            for p in range(nb):
                v = lcb[k + 1, p] - lcb[k, p]
                dif[k, p] = v
                n_below[p] += v < wa[p]
                n_in[p] += (v >= wa[p]) & (v <= wbh[p])
                n_nan[p] += math.isnan(v)
        for p in range(nb):
            if cl[i, p]:
                mr[i, p] = _median_counted(dif, p, n, n_below[p], n_in[p], n_nan[p], wa[p],
                                           wbh[p], lcb[0, p], buf, tmp)
        if ngroups < 3:
            continue
        for p in range(nb):
            sy[i, p] = 0.0
            sxy[i, p] = 0.0
        for j in range(ngroups):
            xv = float(j)
            for p in range(nb):
                yv = np.float64(data[i, j, row, x0 + p])
                yv = 0.0 if math.isnan(yv) else yv
                w = wt[px[i, p], ngroups, j] * invrn2[p]
                xw = xv * w
                sy[i, p] += yv * w
                sxy[i, p] += yv * xw


@njit
def _fit_rows(y0, y1, data, gdq, row0, pdq, rnoise, gain, dark, zframe, use_zframe, use_chargeloss,
             clear_jump_g0, suppress1g, dnu, sat, jump, pers, ngval, chgloss,
             group_time, frame_time, one_group_time, wt,
             r_slope, r_dq, r_vp, r_vr, r_err, i_slope, i_dq, i_vp, i_vr, i_err,
             opt_mode, ped_tmp, o_maxseg, o_maxcr, o_slope, o_sigslope, o_yint, o_sigyint,
             o_weights, o_vp, o_vr, o_ped, o_crmag):
    """Fit every pixel of rows y0 .. y1-1 (serial, nogil; see :func:`_ols_fit`); their
    ramps are rows row0 + y0 .. row0 + y1-1 of data and gdq."""
    nints, ngroups, ny, nx = data.shape
    invalid = dnu | sat
    d = np.empty((nints, ngroups), dtype=np.float64)
    q = np.empty((nints, ngroups), dtype=np.int64)
    oq = np.empty(ngroups, dtype=np.int64)
    seg_s = np.empty(ngroups + 1, dtype=np.int64)
    seg_e = np.empty(ngroups + 1, dtype=np.int64)
    buf = np.empty(ngroups + 1, dtype=np.float64)
    loc = np.empty(ngroups, dtype=np.float64)
    has_jump = np.zeros(nints, dtype=np.bool_)
    has_pers = np.zeros(nints, dtype=np.bool_)
    has_chg = np.zeros(nints, dtype=np.bool_)
    cnt_good = np.zeros(nints, dtype=np.int64)
    cnt_dnu_sat = np.zeros(nints, dtype=np.int64)
    cnt_sat = np.zeros(nints, dtype=np.int64)
    is0th = np.zeros(nints, dtype=np.bool_)
    iszf = np.zeros(nints, dtype=np.bool_)
    idq = np.zeros(nints, dtype=np.int64)
    islope = np.zeros(nints, dtype=np.float64)
    ivp = np.zeros(nints, dtype=np.float64)
    ivr = np.zeros(nints, dtype=np.float64)
    ierr = np.zeros(nints, dtype=np.float64)
    clean = np.zeros(nints, dtype=np.bool_)
    tmp = np.empty(ngroups + 1, dtype=np.float64)
    # the lean path (see below) is not used for fitopt, which also needs the CR counts
    lean_ok = opt_mode == 0 and ngroups >= 2
    inv_gt = 1.0 / group_time
    # the clean integrations of a whole row are done first, together (_clean_block),
    # reading each group's row as it is in memory; the per-pixel pass that follows reads
    # the flagged integrations' groups from data/gdq directly. (Blocks of 32 pixels were
    # slower: with a power-of-two frame size the nints x ngroups short pieces of a block
    # alias in the caches and each block missed again.) The per-row arrays get +8 so
    # their rows, read down a column (per pixel), do not alias either.
    XB = nx
    cl = np.zeros((nints, XB + 8), dtype=np.bool_)
    mr = np.zeros((nints, XB + 8), dtype=np.float64)
    px = np.zeros((nints, XB + 8), dtype=np.int64)
    sy_b = np.zeros((nints, XB + 8), dtype=np.float64)
    sxy_b = np.zeros((nints, XB + 8), dtype=np.float64)
    sw_b = np.zeros((6, XB + 8), dtype=np.float64)
    sx_b = np.zeros((6, XB + 8), dtype=np.float64)
    sxx_b = np.zeros((6, XB + 8), dtype=np.float64)
    lcb = np.empty((ngroups, XB + 8), dtype=np.float64)
    invrn2_b = np.empty(XB, dtype=np.float64)
    for y in range(y0, y1):
        maxseg = 0
        maxcr = 0
        row = row0 + y
        _clean_block(data, gdq, row, 0, nx, rnoise, gain, y, group_time, inv_gt, wt, lean_ok,
                     cl, mr, px, sy_b, sxy_b, sw_b, sx_b, sxx_b, lcb, invrn2_b, buf, tmp)
        for x in range(nx):
            pix = np.int64(pdq[y, x])
            g = np.float64(gain[y, x])
            if g <= 0.0 or math.isnan(g):
                pix |= dnu | ngval
            rn = np.float64(rnoise[y, x])
            dc = np.float64(dark[y, x])
            # per-pixel constants of the segment fits (one full segment in clean ramps)
            invrn2 = _fdiv(1.0, rn * rn)
            vr_full = _rnoise_var(rn, g, group_time, ngroups, True)
            rate_dq = pix
            acc_slope = 0.0
            acc_invp = 0.0
            acc_invr = 0.0
            # ---- load the pixel's ramps and group statistics
            for i in range(nints):
                idq[i] = pix
                islope[i] = 0.0
                ivp[i] = 0.0
                ivr[i] = 0.0
                ierr[i] = 0.0
                has_jump[i] = False
                has_pers[i] = False
                has_chg[i] = False
                cnt_good[i] = 0
                cnt_dnu_sat[i] = 0
                cnt_sat[i] = 0
                is0th[i] = False
                iszf[i] = False
                # an integration without any DQ flag (most of them in real data): one
                # segment of all groups, nothing to count; the values set here are those
                # the general code below reaches for such a ramp
                clean[i] = cl[i, x]
                if clean[i]:
                    cnt_good[i] = ngroups
                    if ngroups < 3:
                        # the 2-group fit below reads d (longer ramps have their sums)
                        for k in range(ngroups):
                            d[i, k] = np.float64(data[i, k, row, x])
                    continue
                ngood_np = 0
                for k in range(ngroups):
                    v = np.int64(gdq[i, k, row, x])
                    q[i, k] = v
                    if (v & ~pers) == 0:
                        ngood_np += 1
                # stcal suppresses one-good-group ramps before MIRI group dropping
                if suppress1g and ngroups > 1 and ngood_np == 1:
                    for k in range(ngroups):
                        q[i, k] |= dnu
                if clear_jump_g0 and (q[i, 0] & jump):
                    q[i, 0] -= jump
                for k in range(ngroups):
                    v = q[i, k]
                    if v & jump:
                        has_jump[i] = True
                    if v & pers:
                        has_pers[i] = True
                    if v & chgloss:
                        has_chg[i] = True
                    if v == 0:
                        cnt_good[i] += 1
                    if (v & dnu) or (v & sat):
                        cnt_dnu_sat[i] += 1
                    if v & sat:
                        d[i, k] = np.nan
                        cnt_sat[i] += 1
                    else:
                        d[i, k] = np.float64(data[i, k, row, x])
                if opt_mode > 0:
                    ncr = 0
                    for k in range(1, ngroups):
                        if q[i, k] & jump:
                            if opt_mode == 2:
                                o_crmag[i, ncr, y, x] = d[i, k] - d[i, k - 1]
                            ncr += 1
                    if ncr > maxcr:
                        maxcr = ncr
                if not suppress1g:
                    if cnt_good[i] == 1 and q[i, 0] == 0:
                        is0th[i] = True
                    elif cnt_good[i] == 0 and use_zframe:
                        zf = np.float64(zframe[i, y, x])
                        if zf != 0.0:
                            d[i, 0] = zf
                            q[i, 0] = 0
                            cnt_good[i] = 1
                            cnt_dnu_sat[i] -= 1
                            if cnt_sat[i] == ngroups:
                                cnt_sat[i] -= 1
                            iszf[i] = True
                if has_jump[i]:
                    idq[i] |= jump
                    rate_dq |= jump
                if has_pers[i]:
                    idq[i] |= pers
                    rate_dq |= pers
            # ---- median rate (Poisson variance estimate)
            if ngroups == 1:
                acc = 0.0
                for i in range(nints):
                    acc += d[i, 0] / one_group_time
                median_rate = acc / nints
            else:
                acc = 0.0
                for i in range(nints):
                    if is0th[i]:
                        mrate = d[i, 0] / one_group_time
                    elif iszf[i]:
                        mrate = d[i, 0] / frame_time
                    elif clean[i]:
                        mrate = mr[i, x]
                    else:
                        for k in range(ngroups):
                            if q[i, k] & dnu:
                                loc[k] = np.nan
                            else:
                                loc[k] = d[i, k] / group_time
                        loc0 = loc[0]
                        n = 0
                        for k in range(ngroups - 1):
                            if q[i, k + 1] & jump:
                                continue
                            dv = loc[k + 1] - loc[k]
                            if not math.isnan(dv):
                                buf[n] = dv
                                n += 1
                        if n == 0 and not math.isnan(loc0):
                            buf[0] = loc0
                            n = 1
                        mrate = _median_nonan(buf, n)
                    if math.isnan(mrate):
                        mrate = 0.0
                    acc += mrate
                median_rate = acc / np.float32(nints)
            # ---- per-integration segment fits
            have_seg = False
            have_post = False
            f_invr = 0.0
            f_invp = 0.0
            f_inve = 0.0
            f_ivp = 0.0
            f_ivr = 0.0
            f_err = 0.0
            dnu_cnt = 0
            sat_cnt = 0
            rate_sat = False
            for i in range(nints):
                nseg = 0
                nsize = 0
                if clean[i]:
                    nseg = 1
                    nsize = 1
                    seg_s[0] = 0
                    seg_e[0] = ngroups
                elif q[i, 0] & sat:
                    idq[i] |= dnu | sat
                    islope[i] = np.nan
                else:
                    nseg, nsize = _find_segments(q[i], ngroups, pers, jump, seg_s, seg_e)
                if nsize > maxseg:
                    maxseg = nsize
                if cnt_dnu_sat[i] == ngroups:
                    idq[i] |= dnu
                    if cnt_sat[i] == ngroups:
                        idq[i] |= sat
                elif nseg > 0:
                    invr = 0.0
                    invp = 0.0
                    inve = 0.0
                    num = 0.0
                    for s in range(nseg):
                        st = seg_s[s]
                        ln = seg_e[s] - st
                        if ln == 1:
                            t = group_time
                            if not suppress1g:
                                if is0th[i]:
                                    t = one_group_time
                                elif iszf[i]:
                                    t = frame_time
                            slope = _fdiv(d[i, st], t)
                            pden = t * g
                            vr = _rnoise_var(rn, g, t, 1, False)
                            sigsl = 0.0
                            yint = 0.0
                            sigyi = 0.0
                        elif ln == 2:
                            slope = (d[i, st + 1] - d[i, st]) / group_time
                            pden = group_time * g
                            vr = _rnoise_var(rn, g, group_time, 2, False)
                            sigsl = 1.41421356 * rn
                            sec = st + 1.0
                            yint = d[i, st + 1] * (1.0 - sec) + d[i, st] * sec
                            sigyi = sigsl
                        elif clean[i]:
                            # the full-ramp fit's sums, from _clean_block
                            pidx = px[i, x]
                            sw = sw_b[pidx, x]
                            sx = sx_b[pidx, x]
                            sxx = sxx_b[pidx, x]
                            sy = sy_b[i, x]
                            sxy = sxy_b[i, x]
                            den2 = sw * sxx - sx * sx
                            num2 = sw * sxy - sx * sy
                            invden = _fdiv(1.0, den2)
                            slope = num2 * invden / group_time
                            sigsl = 0.0
                            yint = 0.0
                            sigyi = 0.0
                            pden = group_time * g * (ln - 1.0)
                            vr = vr_full
                        else:
                            dd = d[i, st + ln - 1] - d[i, st]
                            den = rn * rn + dd * g
                            snr = 0.0
                            if not (den <= 0.0 or g == 0.0):
                                sv = dd * g / math.sqrt(den)
                                snr = 0.0 if sv < 0.0 else sv
                            pidx = _snr_power_index(snr)
                            sw = 0.0
                            sx = 0.0
                            sxx = 0.0
                            sy = 0.0
                            sxy = 0.0
                            for j in range(ln):
                                w = wt[pidx, ln, j] * invrn2
                                xv = float(j + st)
                                yv = d[i, st + j]
                                if math.isnan(yv):
                                    yv = 0.0
                                xw = xv * w
                                sw += w
                                sx += xw
                                sxx += xv * xw
                                sy += yv * w
                                sxy += yv * xw
                            den2 = sw * sxx - sx * sx
                            num2 = sw * sxy - sx * sy
                            invden = _fdiv(1.0, den2)
                            slope = num2 * invden / group_time
                            # only written with fitopt: two square roots saved per fit
                            sigsl = 0.0
                            yint = 0.0
                            sigyi = 0.0
                            if opt_mode == 2:
                                sigsl = math.sqrt(sw * invden) if sw * invden >= 0 else np.nan
                                yint = (sxx * sy - sx * sxy) * invden
                                sigyi = math.sqrt(sxx * invden) if sxx * invden >= 0 else np.nan
                            pden = group_time * g * (ln - 1.0)
                            if ln == ngroups:
                                vr = vr_full
                            else:
                                vr = _rnoise_var(rn, g, group_time, ln, True)
                        if clean[i] and have_seg:
                            # vp and vr of a full segment depend only on the pixel and
                            # its median rate: the first clean integration's sums
                            invr += f_invr
                            invp += f_invp
                            inve += f_inve
                        else:
                            if median_rate > 0.0:
                                vp = _fdiv(median_rate + dc, pden)
                            else:
                                vp = _fdiv(dc, pden)
                            if opt_mode == 2:
                                o_slope[i, s, y, x] = slope
                                o_sigslope[i, s, y, x] = sigsl
                                o_yint[i, s, y, x] = yint
                                o_sigyint[i, s, y, x] = sigyi
                                o_weights[i, s, y, x] = _fdiv(1.0, vr)
                                o_vp[i, s, y, x] = vp
                                o_vr[i, s, y, x] = vr
                            invr += _fdiv(1.0, vr)
                            if vp > 0.0:
                                invp += 1.0 / vp
                            inve += _fdiv(1.0, vp + vr)
                            if clean[i]:
                                f_invr = invr
                                f_invp = invp
                                f_inve = inve
                                have_seg = True
                        num += _fdiv(slope, vr)
                    if clean[i] and have_post:
                        ivp[i] = f_ivp
                        ivr[i] = f_ivr
                    else:
                        if invp > 0.0:
                            ivp[i] = 1.0 / invp
                        if ivp[i] >= LARGE_VARIANCE:
                            ivp[i] = 0.0
                        ivr[i] = _fdiv(1.0, invr)
                        if ivr[i] >= LARGE_VARIANCE:
                            ivr[i] = 0.0
                    if idq[i] & invalid:
                        islope[i] = np.nan
                        ivp[i] = 0.0
                        ivr[i] = 0.0
                        ierr[i] = 0.0
                    else:
                        islope[i] = num * ivr[i]
                        if clean[i] and have_post:
                            ierr[i] = f_err
                        else:
                            verr = _fdiv(1.0, inve)
                            ierr[i] = 0.0 if verr > LARGE_VARIANCE else math.sqrt(verr)
                    if clean[i] and not have_post:
                        # idq of a clean integration is the pixel's DQ: same branch for all
                        f_ivp = ivp[i]
                        f_ivr = ivr[i]
                        f_err = ierr[i]
                        have_post = True
                    if invp > 0.0:
                        acc_invp += invp
                    acc_invr += invr
                    acc_slope += num
                if idq[i] & dnu:
                    dnu_cnt += 1
                    islope[i] = np.nan
                if opt_mode == 2:
                    if idq[i] & sat:
                        o_ped[i, y, x] = 0.0
                    else:
                        pv = d[i, 0] - islope[i] * ped_tmp
                        o_ped[i, y, x] = 0.0 if math.isnan(pv) else pv
                if idq[i] & sat:
                    sat_cnt += 1
                    islope[i] = np.nan
                if cnt_sat[i] > 0:
                    idq[i] |= sat
                    rate_sat = True
            # ---- exposure combination
            if dnu_cnt == nints:
                rate_dq |= dnu
            if sat_cnt == nints:
                rate_dq |= sat
            vp_r = acc_invp
            if vp_r > 0.0:
                vp_r = 1.0 / vp_r
            if vp_r >= LARGE_VARIANCE or vp_r < 0.0:
                vp_r = 0.0
            vr_r = acc_invr
            if vr_r > 0.0:
                vr_r = 1.0 / vr_r
            if vr_r >= LARGE_VARIANCE:
                vr_r = 0.0
            err_r = math.sqrt(vp_r + vr_r)
            sl_r = acc_slope
            if rate_dq & invalid:
                sl_r = np.nan
                vp_r = 0.0
                vr_r = 0.0
                err_r = 0.0
            if rate_sat:
                rate_dq |= sat
            if not math.isnan(sl_r):
                sl_r = sl_r * vr_r
            # ---- CHARGELOSS: recompute read-noise variance without those flags
            if use_chargeloss:
                is_cl = False
                evar = 0.0
                for i in range(nints):
                    if not has_chg[i]:
                        if ivr[i] > 0.0:
                            evar += 1.0 / ivr[i]
                        continue
                    is_cl = True
                    for k in range(ngroups):
                        v = np.int64(gdq[i, k, row, x])
                        if v & chgloss:
                            v ^= dnu | chgloss
                        oq[k] = v
                    nseg, nsize = _find_segments(oq, ngroups, pers, jump, seg_s, seg_e)
                    invr = 0.0
                    for s in range(nseg):
                        ln = seg_e[s] - seg_s[s]
                        if ln == 1:
                            t = group_time
                            if not suppress1g:
                                if is0th[i]:
                                    t = one_group_time
                                elif iszf[i]:
                                    t = frame_time
                            sv = _rnoise_var(rn, g, t, 1, False)
                        elif ln == 2:
                            sv = _rnoise_var(rn, g, group_time, 2, False)
                        else:
                            sv = _rnoise_var(rn, g, group_time, ln, True)
                        if sv > 0.0:
                            invr += 1.0 / sv
                    ivr[i] = _fdiv(1.0, invr)
                    if ivr[i] >= LARGE_VARIANCE:
                        ivr[i] = 0.0
                    evar += invr
                if is_cl:
                    if evar > 0.0:
                        vr_r = 1.0 / evar
                    if vr_r >= LARGE_VARIANCE:
                        vr_r = 0.0
            # ---- store
            r_slope[y, x] = sl_r
            r_dq[y, x] = rate_dq
            r_vp[y, x] = vp_r
            r_vr[y, x] = vr_r
            r_err[y, x] = err_r
            for i in range(nints):
                i_slope[i, y, x] = islope[i]
                i_dq[i, y, x] = idq[i]
                i_vp[i, y, x] = ivp[i]
                i_vr[i, y, x] = ivr[i]
                i_err[i, y, x] = ierr[i]
        o_maxseg[y] = maxseg
        o_maxcr[y] = maxcr


def _ols_fit(data, gdq, row0, pdq, rnoise, gain, dark, zframe, use_zframe, use_chargeloss,
             clear_jump_g0, suppress1g, dnu, sat, jump, pers, ngval, chgloss,
             group_time, frame_time, one_group_time, wt,
             r_slope, r_dq, r_vp, r_vr, r_err, i_slope, i_dq, i_vp, i_vr, i_err,
             opt_mode, ped_tmp, o_maxseg, o_maxcr, o_slope, o_sigslope, o_yint, o_sigyint,
             o_weights, o_vp, o_vr, o_ped, o_crmag):
    """Fit every pixel; see the module docstring.

    opt_mode: 0 no fitopt; 1 only count segments/CRs per row into o_maxseg/o_maxcr;
    2 also write the fitopt arrays (sized from a mode-1 pass). row0: the fitted pixels'
    ramps start at that row of data and gdq (a row block read with halo rows), every
    other array holds the fitted rows alone.
    """
    # many small row blocks: threads that finish early (or share a core) take more
    run_row_blocks(_fit_rows, pdq.shape[0], data, gdq, row0, pdq, rnoise, gain, dark, zframe,
                   use_zframe, use_chargeloss, clear_jump_g0, suppress1g, dnu, sat, jump, pers,
                   ngval, chgloss, group_time, frame_time, one_group_time, wt,
                   r_slope, r_dq, r_vp, r_vr, r_err, i_slope, i_dq, i_vp, i_vr, i_err,
                   opt_mode, ped_tmp, o_maxseg, o_maxcr, o_slope, o_sigslope, o_yint,
                   o_sigyint, o_weights, o_vp, o_vr, o_ped, o_crmag, blocks_per_thread=16)
