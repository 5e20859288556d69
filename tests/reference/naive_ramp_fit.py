"""Loop-per-pixel reference for OLS_C ramp fitting, written for clarity, not speed.

Covers what the kernel does per pixel (no MIRI group dropping / firstgroup handling,
which live in the wrapper). Returns (rate, rateints) tuples like ``fit_ramps``.
"""

import math

import numpy as np

BIG = 1.0e6


def _div(a, b):
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def segments(dq, pers, jump):
    """Fit segments [start, end) of one ramp's group DQ list."""
    segs = []
    start = None
    for k in range(len(dq) + 1):
        good = k < len(dq) and (dq[k] & ~pers) == 0
        if good and start is None:
            start = k - 1 if (k > 0 and (dq[k - 1] & ~pers) == jump) else k
        elif not good and start is not None:
            segs.append((start, k))
            start = None
    if any(e - s >= 2 for s, e in segs):
        return [(s, e) for s, e in segs if e - s >= 2]
    return segs[:1]


def rnoise_var(rn, gain, t, n, check_gain=False):
    if check_gain and (gain <= 0 or math.isnan(gain)):
        return 0.0
    den = 6.0 if n <= 2 else float(n ** 3 - n)
    return _div(12.0 * _div(rn, t) ** 2, den * gain * gain)


def snr_power(snr):
    for limit, p in ((5, 0.0), (10, 0.4), (20, 1.0), (50, 3.0), (100, 6.0)):
        if snr < limit:
            return p
    return 10.0


def naive_fit_ramps(data, gdq, pdq, readnoise, gain, dqflags, *, frame_time, group_time, nframes,
                    suppress_one_group=True, average_dark_current=None, zeroframe=None):
    dnu, sat, jump = dqflags["DO_NOT_USE"], dqflags["SATURATED"], dqflags["JUMP_DET"]
    pers, ngv, chg = dqflags["PERSISTENCE"], dqflags["NO_GAIN_VALUE"], dqflags["CHARGELOSS"]
    nints, ngroups, ny, nx = data.shape
    if ngroups == 1:
        suppress_one_group = False
    gt = float(np.float32(group_time))
    ft = float(np.float32(frame_time))
    t1 = (nframes + 1.0) * ft / 2.0
    rn2d = (readnoise * (gain / np.sqrt(2.0 * nframes))).astype(np.float32)
    dark = np.zeros((ny, nx)) if average_dark_current is None else average_dark_current
    use_chg = bool(np.any(gdq & chg))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _fit(data, gdq, pdq, rn2d, gain, dark, zeroframe, use_chg, dnu, sat, jump, pers,
                    ngv, chg, gt, ft, t1, suppress_one_group)


def _fit(data, gdq, pdq, rn2d, gain, dark, zeroframe, use_chg, dnu, sat, jump, pers, ngv, chg,
         gt, ft, t1, suppress_one_group):
    nints, ngroups, ny, nx = data.shape
    rate = [np.zeros((ny, nx), np.float32) for _ in range(5)]
    rate[1] = np.zeros((ny, nx), np.uint32)
    ints = [np.zeros((nints, ny, nx), np.float32) for _ in range(5)]
    ints[1] = np.zeros((nints, ny, nx), np.uint32)
    for y in range(ny):
        for x in range(nx):
            g = float(gain[y, x])
            rn = float(rn2d[y, x])
            dc = float(dark[y, x])
            pix = int(pdq[y, x])
            if g <= 0 or math.isnan(g):
                pix |= dnu | ngv
            rdq = pix
            ramps, dqs, info = [], [], []
            for i in range(nints):
                q = [int(v) for v in gdq[i, :, y, x]]
                if suppress_one_group and sum((v & ~pers) == 0 for v in q) == 1:
                    q = [v | dnu for v in q]
                d = [math.nan if (q[k] & sat) else float(data[i, k, y, x]) for k in range(ngroups)]
                st = dict(good=sum(v == 0 for v in q), dnusat=sum(bool(v & (dnu | sat)) for v in q),
                          sat=sum(bool(v & sat) for v in q), is0=False, iszf=False,
                          chg=any(v & chg for v in q))
                has_jump = any(v & jump for v in q)   # group statistics are taken
                has_pers = any(v & pers for v in q)   # before the ZEROFRAME swap
                if not suppress_one_group:
                    if st["good"] == 1 and q[0] == 0:
                        st["is0"] = True
                    elif st["good"] == 0 and zeroframe is not None and zeroframe[i, y, x] != 0:
                        d[0], q[0] = float(zeroframe[i, y, x]), 0
                        st["dnusat"] -= 1
                        if st["sat"] == ngroups:
                            st["sat"] -= 1
                        st["iszf"] = True
                idq = pix
                if has_jump:
                    idq |= jump
                    rdq |= jump
                if has_pers:
                    idq |= pers
                    rdq |= pers
                ramps.append(d)
                dqs.append(q)
                info.append(dict(st, dq=idq))
            # median rate
            if ngroups == 1:
                mrate = sum(r[0] / t1 for r in ramps) / nints
            else:
                acc = 0.0
                for i in range(nints):
                    d, q = ramps[i], dqs[i]
                    if info[i]["is0"]:
                        m = d[0] / t1
                    elif info[i]["iszf"]:
                        m = d[0] / ft
                    else:
                        v = [math.nan if q[k] & dnu else d[k] / gt for k in range(ngroups)]
                        diffs = [v[k + 1] - v[k] for k in range(ngroups - 1) if not q[k + 1] & jump]
                        diffs = [z for z in diffs if not math.isnan(z)]
                        if not diffs and not math.isnan(v[0]):
                            diffs = [v[0]]
                        m = float(np.median(diffs)) if diffs else math.nan
                    acc += 0.0 if math.isnan(m) else m
                mrate = acc / nints

            def seg_fit(i, s, e):
                d = ramps[i]
                n = e - s
                t = gt
                if n == 1 and not suppress_one_group:
                    t = t1 if info[i]["is0"] else (ft if info[i]["iszf"] else gt)
                if n == 1:
                    slope, pden, vr = _div(d[s], t), t * g, rnoise_var(rn, g, t, 1)
                elif n == 2:
                    slope, pden, vr = (d[s + 1] - d[s]) / gt, gt * g, rnoise_var(rn, g, gt, 2)
                else:
                    dd = d[e - 1] - d[s]
                    den = rn * rn + dd * g
                    snr = 0.0 if (den <= 0 or g == 0) else max(dd * g / math.sqrt(den), 0.0)
                    p = np.float32(snr_power(snr))
                    mid = (n - 1) / 2.0
                    xs = np.arange(s, e, dtype=float)
                    w = np.array([float(np.float32(abs((j - mid) * (1.0 / mid))) ** p)
                                  for j in range(n)])
                    w *= _div(1.0, rn * rn)
                    ys = np.nan_to_num(np.array(d[s:e]), nan=0.0)
                    sw, sx, sxx = w.sum(), (w * xs).sum(), (w * xs * xs).sum()
                    sy, sxy = (w * ys).sum(), (w * xs * ys).sum()
                    slope = (sw * sxy - sx * sy) * _div(1.0, sw * sxx - sx * sx) / gt
                    pden, vr = gt * g * (n - 1), rnoise_var(rn, g, gt, n, True)
                vp = _div(mrate + dc, pden) if mrate > 0 else _div(dc, pden)
                return slope, vp, vr

            acc_s = acc_p = acc_r = 0.0
            ndnu = nsat = 0
            any_sat = False
            out_i = []
            for i in range(nints):
                q, st = dqs[i], info[i]
                idq = st["dq"]
                sl, vpi, vri, eri = 0.0, 0.0, 0.0, 0.0
                segs = []
                if q[0] & sat:
                    idq |= dnu | sat
                    sl = math.nan
                else:
                    segs = segments(q, pers, jump)
                if st["dnusat"] == ngroups:
                    idq |= dnu
                    if st["sat"] == ngroups:
                        idq |= sat
                elif segs:
                    fits = [seg_fit(i, s, e) for s, e in segs]
                    invr = sum(_div(1.0, f[2]) for f in fits)
                    invp = sum(1.0 / f[1] for f in fits if f[1] > 0)
                    inve = sum(_div(1.0, f[1] + f[2]) for f in fits)
                    num = sum(_div(f[0], f[2]) for f in fits)
                    vpi = 1.0 / invp if invp > 0 else 0.0
                    vpi = 0.0 if vpi >= BIG else vpi
                    vri = _div(1.0, invr)
                    vri = 0.0 if vri >= BIG else vri
                    if idq & (dnu | sat):
                        sl, vpi, vri, eri = math.nan, 0.0, 0.0, 0.0
                    else:
                        sl = num * vri
                        ve = _div(1.0, inve)
                        eri = 0.0 if ve > BIG else math.sqrt(ve)
                    acc_p += invp if invp > 0 else 0.0
                    acc_r += invr
                    acc_s += num
                if idq & dnu:
                    ndnu += 1
                    sl = math.nan
                if idq & sat:
                    nsat += 1
                    sl = math.nan
                if st["sat"] > 0:
                    idq |= sat
                    any_sat = True
                out_i.append([sl, idq, vpi, vri, eri])
            if ndnu == nints:
                rdq |= dnu
            if nsat == nints:
                rdq |= sat
            vp = 1.0 / acc_p if acc_p > 0 else acc_p
            vp = 0.0 if (vp >= BIG or vp < 0) else vp
            vr = 1.0 / acc_r if acc_r > 0 else acc_r
            vr = 0.0 if vr >= BIG else vr
            err = math.sqrt(vp + vr)
            sl = acc_s
            if rdq & (dnu | sat):
                sl, vp, vr, err = math.nan, 0.0, 0.0, 0.0
            if any_sat:
                rdq |= sat
            if not math.isnan(sl):
                sl *= vr
            if use_chg:
                evar, is_cl = 0.0, False
                for i in range(nints):
                    if not info[i]["chg"]:
                        if out_i[i][3] > 0:
                            evar += 1.0 / out_i[i][3]
                        continue
                    is_cl = True
                    q = [int(v) ^ (dnu | chg) if int(v) & chg else int(v) for v in gdq[i, :, y, x]]
                    invr = 0.0
                    for s, e in segments(q, pers, jump):
                        n = e - s
                        t = gt
                        if n == 1 and not suppress_one_group:
                            t = t1 if info[i]["is0"] else (ft if info[i]["iszf"] else gt)
                        sv = rnoise_var(rn, g, t, n, n >= 3)
                        if sv > 0:
                            invr += 1.0 / sv
                    vri = _div(1.0, invr)
                    out_i[i][3] = 0.0 if vri >= BIG else vri
                    evar += invr
                if is_cl:
                    if evar > 0:
                        vr = 1.0 / evar
                    if vr >= BIG:
                        vr = 0.0
            for arr, v in zip(rate, (sl, rdq, vp, vr, err)):
                arr[y, x] = v
            for i in range(nints):
                for arr, v in zip(ints, out_i[i]):
                    arr[i, y, x] = v
    return tuple(rate), tuple(ints)
