"""numba kernels for the likelihood ramp fit (stcal ``LIKELY``, Brandt 2024 papers I/II).

Called only from :mod:`webbflow.steps.ramp_fit_likely`. Each pixel is fitted on its
resultant differences with the tridiagonal covariance of read and photon noise: the
inverse is built from the theta/phi recursions of paper I, jumps are found by the
chi-square gain of dropping one difference or two adjacent ones (paper II), iterated
while something is dropped, and the final fit uses the debiased count rate. stcal does
this on whole rows with numpy; here each pixel runs alone, with every float64 operation
in numpy's order (left to right, sums sequential over the difference axis), so the
results agree bit for bit. Pixels are independent, so any row block of a frame can be
passed and row blocks run in threads (``_common.run_row_blocks``).
"""

import math

import numpy as np

from webbflow.kernels._common import run_row_blocks
from webbflow.kernels._options import njit
from webbflow.kernels.ramp_fit import _fdiv


@njit
def _nanmax_propagating(x, n, w):
    """np.amax(x * w) over the first n entries: NaN if any product is NaN."""
    m = x[0] * w[0]
    for k in range(1, n):
        v = x[k] * w[k]
        if math.isnan(m):
            return m
        if math.isnan(v) or v > m:
            m = v
    return m


@njit
def _median(x, n, tmp):
    """np.median of x[:n] (float64): NaN if any is NaN, mean of the middle two if even."""
    for k in range(n):
        if math.isnan(x[k]):
            return np.nan
        tmp[k] = x[k]
    s = np.sort(tmp[:n])
    h = n // 2
    if n % 2 == 1:
        return s[h]
    return (s[h - 1] + s[h]) / 2.0


@njit
def _fit_pixel(diff, use, crg, g, rn2, ar, br, ap, bp, nd, detect, w):
    """One pixel's fit (stcal likely_fit.fit_ramps on one column).

    diff : float64 (nd,) differences in DN/s; use : uint8 (nd,) differences to use.
    crg : count-rate guess for the covariance; g : gain; rn2 : read noise squared.
    ar, br, ap, bp : the Covar read/photon alphas (nd) and betas (nd-1).
    w : float64 work array (20, nd + 1). With ``detect``, rows 16..19 receive the
    count rates and chi squares with one difference omitted (16, 17) and with two
    adjacent ones omitted (18, 19).

    Returns (countrate, chisq, uncert, var_poisson, var_rnoise).
    """
    alpha = w[0]
    beta = w[1]
    a_ph = w[2]
    a_rn = w[3]
    b_ph = w[4]
    b_rn = w[5]
    theta = w[6]
    phi = w[7]
    Phi = w[8]
    PhiD = w[9]
    Theta = w[10]
    ThetaD = w[11]
    dm = w[12]
    dC = w[13]
    dB = w[14]
    cinv = w[15]

    # covariance elements (compute_alphas_betas)
    cpg = _fdiv(crg, g)
    for k in range(nd):
        a_ph[k] = cpg * ap[k]
        a_rn[k] = rn2 * ar[k]
        alpha[k] = a_ph[k] + a_rn[k]
    for k in range(nd - 1):
        b_ph[k] = cpg * bp[k]
        b_rn[k] = rn2 * br[k]
        beta[k] = b_ph[k] + b_rn[k]
    # rescale to determinant 1, renormalising every 10 steps
    theta[0] = 1.0
    theta[1] = alpha[0]
    scale = 1.0
    for i in range(2, nd + 1):
        theta[i] = (_fdiv(alpha[i - 1], scale) * theta[i - 1]
                    - _fdiv(beta[i - 2] * beta[i - 2], scale * scale) * theta[i - 2])
        if i % 10 == 0 or i == nd:
            f = theta[i] ** (1.0 / i)
            scale *= f
            tmp = _fdiv(theta[i], f)
            theta[i - 1] = _fdiv(theta[i - 1], tmp)
            theta[i - 2] = _fdiv(theta[i - 2], _fdiv(tmp, f))
            theta[i] = 1.0
    for k in range(nd):
        alpha[k] = _fdiv(alpha[k], scale)
    for k in range(nd - 1):
        beta[k] = _fdiv(beta[k], scale)

    # masking
    for k in range(nd):
        dm[k] = diff[k] * use[k]
    for k in range(nd - 1):
        beta[k] = beta[k] * use[k + 1] * use[k]

    # theta, phi (eqs 38-43)
    theta[0] = 1.0
    theta[1] = alpha[0]
    for i in range(2, nd + 1):
        theta[i] = alpha[i - 1] * theta[i - 1] - (beta[i - 2] * beta[i - 2]) * theta[i - 2]
    phi[nd] = 1.0
    phi[nd - 1] = alpha[nd - 1]
    for i in range(nd - 2, -1, -1):
        phi[i] = alpha[i] * phi[i + 1] - (beta[i] * beta[i]) * phi[i + 2]
    # Phi, PhiD, Theta, ThetaD (eqs 46-48, paper II eq 4); sgn = -1 on even indices
    Phi[nd - 1] = 0.0
    PhiD[nd - 1] = 0.0
    for i in range(nd - 2, -1, -1):
        s1 = -1.0 if (i + 1) % 2 == 0 else 1.0
        Phi[i] = Phi[i + 1] * beta[i] + (s1 * beta[i]) * phi[i + 2]
        PhiD[i] = (PhiD[i + 1] + (s1 * dm[i + 1]) * phi[i + 2]) * beta[i]
    Theta[0] = -theta[0]
    ThetaD[0] = 0.0
    ThetaD[1] = (-dm[0]) * theta[0]
    for i in range(1, nd):
        si = -1.0 if i % 2 == 0 else 1.0
        Theta[i] = Theta[i - 1] * beta[i - 1] + si * theta[i]
        ThetaD[i + 1] = beta[i - 1] * ThetaD[i] + (si * dm[i]) * theta[i]

    # matrix_computations (eqs 61-63, 71, 75)
    tn = theta[nd]
    A = 0.0
    A2 = 0.0
    B = 0.0
    C = 0.0
    for k in range(nd):
        sk = -1.0 if k % 2 == 0 else 1.0
        f = _fdiv(sk, tn)
        dC[k] = f * (phi[k + 1] * Theta[k] + theta[k] * Phi[k]) * use[k]
        dB[k] = f * (phi[k + 1] * ThetaD[k + 1] + theta[k] * PhiD[k])
        bext = 1.0 if k == 0 else beta[k - 1]
        t = _fdiv(dm[k] * sk, tn) * bext * phi[k + 1] * ThetaD[k]
        t2 = _fdiv(dm[k] * dm[k] * theta[k] * phi[k + 1], tn)
        bc = dm[k] * dC[k]
        if k == 0:
            A, A2, B, C = t, t2, bc, dC[k]
        else:
            A += t
            A2 += t2
            B += bc
            C += dC[k]
    A = 2.0 * A + A2

    # get_ramp_result
    countrate = B * _fdiv(1.0, C)
    chisq = _fdiv(A - _fdiv(B * B, C), scale)
    uncert = np.sqrt(_fdiv(scale, C))
    vp = 0.0
    vr = 0.0
    vp2 = 0.0
    vr2 = 0.0
    for k in range(nd):
        wk = _fdiv(dC[k], C)
        cinv[k] = wk
        if k == 0:
            vp, vr = wk * wk * a_ph[k], wk * wk * a_rn[k]
        else:
            vp += wk * wk * a_ph[k]
            vr += wk * wk * a_rn[k]
    for k in range(nd - 1):
        pw = cinv[k + 1] * cinv[k]
        if k == 0:
            vp2, vr2 = pw * b_ph[k], pw * b_rn[k]
        else:
            vp2 += pw * b_ph[k]
            vr2 += pw * b_rn[k]
    vp += 2.0 * vp2
    vr += 2.0 * vr2
    if not detect:
        return countrate, chisq, uncert, vp, vr

    # jump detection (paper II 3.1, 3.2): one omitted difference ...
    cr1 = w[16]
    ch1 = w[17]
    cr2 = w[18]
    ch2 = w[19]
    for k in range(nd):
        cinv[k] = _fdiv(theta[k] * phi[k + 1], tn) * use[k]
    for k in range(nd):
        cd = cinv[k]
        a = _fdiv(cd * B - dB[k] * dC[k], C * cd - dC[k] * dC[k])
        b = _fdiv(dB[k] - a * dC[k], cd)
        cr1[k] = a
        chi = (A + (a * a) * C - (2.0 * a) * B + (b * b) * cd - (2.0 * b) * dB[k]
               + (2.0 * a) * b * dC[k])
        ch1[k] = _fdiv(chi, scale)
    # ... and two adjacent ones
    for k in range(nd - 1):
        coff = _fdiv((-beta[k]) * theta[k] * phi[k + 2], tn)
        cpj = dC[k] * dC[k] - C * cinv[k]
        cjck = dC[k] * dC[k + 1] - C * coff
        bcpj = B * dC[k] - dB[k] * C
        c = _fdiv(bcpj, cpj) - _fdiv(B * dC[k + 1] - dB[k + 1] * C, cjck)
        c = _fdiv(c, _fdiv(cjck, cpj) - _fdiv(dC[k + 1] * dC[k + 1] - C * cinv[k + 1], cjck))
        b = _fdiv(bcpj - c * cjck, cpj)
        a = _fdiv(B - b * dC[k] - c * dC[k + 1], C)
        cr2[k] = a
        chi = A + (a * a) * C + (b * b) * cinv[k] + (c * c) * cinv[k + 1]
        chi -= (2.0 * a) * B + (2.0 * b) * dB[k] + (2.0 * c) * dB[k + 1]
        chi += (2.0 * a) * b * dC[k] + (2.0 * a) * c * dC[k + 1] + (2.0 * b) * c * coff
        ch2[k] = _fdiv(chi, scale)
    # omissions of already masked differences revert to the fits with fewer omissions
    for k in range(nd):
        if use[k] == 0:
            cr1[k] = countrate
            ch1[k] = chisq
    for k in range(nd - 1):
        if use[k + 1] == 0:
            cr2[k] = cr1[k]
            ch2[k] = ch1[k]
    for k in range(nd - 1):
        if use[k] == 0:
            cr2[k] = cr1[k + 1]
            ch2[k] = ch1[k + 1]
    return countrate, chisq, uncert, vp, vr


@njit
def _mask_jumps(diff, use, g, rn2, ar, br, ap, bp, one_ok, two_ok, nd, t1, t2, w, tmp, d1, d2):
    """stcal likely_fit.mask_jumps on one pixel: drops differences from ``use`` in place
    while the best one- or two-difference omission beats its threshold; returns the
    count rate of the last fit (with the omissions)."""
    crg = _median(diff, nd, tmp)
    crg = crg * (1.0 if crg > 0 else 0.0)
    countrate = 0.0
    for j in range(nd):
        cr, chisq, _u, _vp, _vr = _fit_pixel(diff, use, crg, g, rn2, ar, br, ap, bp, nd, True, w)
        if j == 0:
            countrate = cr
        cr1 = w[16]
        ch1 = w[17]
        cr2 = w[18]
        ch2 = w[19]
        for k in range(nd):
            d1[k] = chisq - ch1[k]
        for k in range(nd - 1):
            d2[k] = chisq - ch2[k]
        best1 = _nanmax_propagating(d1, nd, one_ok)
        best2 = _nanmax_propagating(d2, nd - 1, two_ok)
        one_better = (best1 - t1) > (best2 - t2)
        best = (best1 * (1.0 if best1 > t1 else 0.0) * (1.0 if one_better else 0.0)
                + best2 * (1.0 if best2 > t2 else 0.0) * (0.0 if one_better else 1.0))
        if best == 0:
            best = np.nan
        any1 = False
        any2 = False
        if one_better:
            for k in range(nd):
                if d1[k] == best:
                    any1 = True
        else:
            for k in range(nd - 1):
                if d2[k] == best:
                    any2 = True
        if not (any1 or any2):
            break
        new = 0.0
        if any1:
            new = cr1[0] * (1.0 if d1[0] == best else 0.0)
            for k in range(1, nd):
                new += cr1[k] * (1.0 if d1[k] == best else 0.0)
            for k in range(nd):
                if d1[k] == best:
                    use[k] = 0
        else:
            new = cr2[0] * (1.0 if d2[0] == best else 0.0)
            for k in range(1, nd - 1):
                new += cr2[k] * (1.0 if d2[k] == best else 0.0)
            for k in range(nd - 1):
                if d2[k] == best:
                    use[k] = 0
                    use[k + 1] = 0
        countrate = countrate * 0.0 + new
        left = 0
        for k in range(nd):
            left += use[k]
        if left <= 3:
            break
    return countrate


@njit
def _likely_rows(y0, y1, data, gdq, pdq, zframe, use_zframe, nframes, rnoise, gain, dark,
                 dt, ar, br, ap, bp, one_ok, two_ok, t1, t2, dnu, sat, jump,
                 sci, dq, vp, vr, err, chisq):
    """Rows y0:y1 of every integration: jump masking, final fit, integration DQ."""
    nints, ngroups, _ny, nx = data.shape
    nres = ngroups + 1 if use_zframe else ngroups
    nd = nres - 1
    w = np.zeros((20, nd + 1))
    tmp = np.zeros(nd)
    d1 = np.zeros(nd)
    d2 = np.zeros(nd)
    res = np.zeros(nres, np.float32)
    q = np.zeros(nres, np.uint8)
    diff = np.zeros(nd)
    use = np.zeros(nd, np.uint8)
    before = np.zeros(nd, np.uint8)
    nf32 = np.float32(nframes)
    nf1 = np.float32(nframes - 1)
    sqrt2 = math.sqrt(2.0)
    total = np.uint8(sat | dnu)
    for i in range(nints):
        for y in range(y0, y1):
            for x in range(nx):
                if use_zframe:
                    z = zframe[i, y, x]
                    res[0] = z
                    res[1] = np.float32(np.float32(data[i, 0, y, x] * nf32) - z) / nf1
                    q[0] = gdq[i, 0, y, x]
                    q[1] = gdq[i, 0, y, x]
                    for k in range(1, ngroups):
                        res[k + 1] = data[i, k, y, x]
                        q[k + 1] = gdq[i, k, y, x]
                else:
                    for k in range(ngroups):
                        res[k] = data[i, k, y, x]
                        q[k] = gdq[i, k, y, x]
                for k in range(nd):
                    diff[k] = np.float64(np.float32(res[k + 1] - res[k])) / dt[k]
                    use[k] = 1 if (q[k + 1] == 0 and q[k] == 0) else 0
                g = np.float64(gain[y, x])
                rn = np.float64(rnoise[y, x]) / sqrt2
                rn2 = rn * rn
                for k in range(nd):
                    before[k] = use[k]
                cr = _mask_jumps(diff, use, g, rn2, ar, br, ap, bp, one_ok, two_ok, nd,
                                 t1, t2, w, tmp, d1, d2)
                anyjump = False
                for k in range(nd):
                    if before[k] != use[k]:
                        q[k + 1] |= jump
                guess = cr * (1.0 if cr > 0 else 0.0) + np.float64(dark[y, x])
                rate, chi, unc, v_p, v_r = _fit_pixel(diff, use, guess, g, rn2, ar, br, ap,
                                                     bp, nd, False, w)
                sci[i, y, x] = rate
                err[i, y, x] = unc
                vp[i, y, x] = v_p
                vr[i, y, x] = v_r
                chisq[i, y, x] = chi
                flags = pdq[y, x]
                allbad = True
                for k in range(nres):
                    if q[k] & total == 0:
                        allbad = False
                    if q[k] & sat:
                        flags |= sat
                    if q[k] & jump:
                        anyjump = True
                if allbad:
                    flags |= dnu
                if anyjump:
                    flags |= jump
                dq[i, y, x] = flags


def _likely_fit(data, gdq, pdq, zframe, use_zframe, nframes, rnoise, gain, dark, dt, ar, br,
                ap, bp, one_ok, two_ok, t1, t2, dnu, sat, jump, sci, dq, vp, vr, err, chisq):
    run_row_blocks(_likely_rows, data.shape[2], data, gdq, pdq, zframe, use_zframe, nframes,
                   rnoise, gain, dark, dt, ar, br, ap, bp, one_ok, two_ok, t1, t2, dnu, sat,
                   jump, sci, dq, vp, vr, err, chisq)


@njit
def _f32div(a, b):
    """float32 a / b, IEEE (inf/NaN on zero), correctly rounded via float64."""
    return np.float32(_fdiv(np.float64(a), np.float64(b)))


@njit
def _combine_rows(y0, y1, sci, dq, vp, vr, chisq, dnu, o_sci, o_dq, o_vp, o_vr, o_err,
                  o_chisq, tmp):
    """Exposure rate from the integration rates (stcal likely compute_image_info), float32
    as stcal: nanmedian start, two passes of Poisson-rescaled inverse-variance weights."""
    nints, _ny, nx = sci.shape
    f0 = np.float32(0.0)
    one = np.float32(1.0)
    rs = np.zeros(nints, np.float32)
    wt = np.zeros(nints, np.float32)
    avp = np.zeros(nints, np.float32)
    for y in range(y0, y1):
        for x in range(nx):
            flags = dq[0, y, x]
            ndnu = 0
            for i in range(nints):
                flags |= dq[i, y, x]
                if dq[i, y, x] & dnu:
                    ndnu += 1
            flags &= ~np.uint32(dnu)
            if ndnu == nints:
                flags |= dnu
            o_dq[y, x] = flags
            # nanmedian (float32; even count: (low + high) / 2)
            n = 0
            for i in range(nints):
                v = sci[i, y, x]
                if not math.isnan(v):
                    tmp[n] = v
                    n += 1
            if n == 0:
                slope = np.float32(np.nan)
            else:
                s = np.sort(tmp[:n])
                h = n // 2
                if n % 2 == 1:
                    slope = s[h]
                else:
                    slope = np.float32(np.float32(s[h - 1] + s[h]) / np.float32(2.0))
            for _ in range(2):
                wsum = f0
                for i in range(nints):
                    r = _f32div(slope, sci[i, y, x])
                    if not np.isfinite(r) or r < 0:
                        r = f0
                    rs[i] = r
                    avp[i] = np.float32(vp[i, y, x] * r)
                    wt[i] = _f32div(one, np.float32(avp[i] + vr[i, y, x]))
                    if not math.isnan(wt[i]):
                        wsum = np.float32(wsum + wt[i])
                allnan = True
                acc = f0
                for i in range(nints):
                    wt[i] = _f32div(wt[i], wsum)
                    t = np.float32(sci[i, y, x] * wt[i])
                    if not math.isnan(t):
                        allnan = False
                        acc = np.float32(acc + t)
                slope = np.float32(np.nan) if allnan else acc
            acc_p = f0
            acc_r = f0
            nan_p = True
            nan_r = True
            csum = f0
            for i in range(nints):
                w2 = np.float32(wt[i] * wt[i])
                tp = np.float32(avp[i] * w2)
                tr = np.float32(vr[i, y, x] * w2)
                if not math.isnan(tp):
                    nan_p = False
                    acc_p = np.float32(acc_p + tp)
                if not math.isnan(tr):
                    nan_r = False
                    acc_r = np.float32(acc_r + tr)
                csum = np.float32(csum + chisq[i, y, x])
            o_sci[y, x] = slope
            o_vp[y, x] = np.float32(np.nan) if nan_p else acc_p
            o_vr[y, x] = np.float32(np.nan) if nan_r else acc_r
            o_err[y, x] = np.sqrt(np.float32(o_vp[y, x] + o_vr[y, x]))
            o_chisq[y, x] = csum


def _combine(sci, dq, vp, vr, chisq, dnu, o_sci, o_dq, o_vp, o_vr, o_err, o_chisq):
    tmp = np.zeros(sci.shape[0], np.float32)
    # tmp is per call; rows run serially here (the combination is cheap)
    _combine_rows(0, sci.shape[1], sci, dq, vp, vr, chisq, dnu, o_sci, o_dq, o_vp, o_vr,
                  o_err, o_chisq, tmp)
