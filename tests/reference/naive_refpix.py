"""Plain numpy/scipy reference for the 'median' refpix algorithm (NIR full frame, MIRI).

Written for clarity: scipy.stats.sigmaclip + numpy means/medians on the dtype the official
code uses (float32 for the first group, float64 buffer after a side correction).
"""

import numpy as np
from scipy import stats

from webbflow.steps.subarray import to_detector_frame, to_dms_frame


def _clip(vals, dq, dnu, lim=3.0):
    good = vals[(dq & dnu) == 0]
    if good.size == 0:
        return None
    if np.std(good, dtype=np.float64) != 0.0:
        c, _, _ = stats.sigmaclip(good, lim, lim)
        return c.mean()
    return good.mean(dtype=np.float64)


def _avg(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return 0.5 * (a + b)


def _running_median(col_block, dq_block, length, dnu):
    n = col_block.shape[0]
    half = (length if length % 2 else length + 1) // 2
    out = np.zeros(n)
    for i in range(n):
        rows = [abs(r) if r < 0 else (2 * (n - 1) - r if r > n - 1 else r)
                for r in range(i - half, i - half + length)]
        w, q = col_block[rows], dq_block[rows]
        good = w[(q & dnu) == 0]
        out[i] = np.nan if good.size == 0 else np.median(good)
    return out


def naive_refpix_nir_fullframe(data, pdq, dnu, fast, slow, side=True, oddeven=True, gain=1.0):
    data = data.copy()
    dq = to_detector_frame(pdq, fast, slow)
    dtype = np.float32
    for i in range(data.shape[0]):
        for g in range(data.shape[1]):
            grp = np.array(to_detector_frame(data[i, g], fast, slow), dtype=dtype)
            for a in range(4):
                c0, c1 = 512 * a, 512 * (a + 1)
                if oddeven:
                    s = []
                    for start in (c0, c0 + 1):
                        t = _clip(grp[2044:, start:c1:2], dq[2044:, start:c1:2], dnu)
                        b = _clip(grp[:4, start:c1:2], dq[:4, start:c1:2], dnu)
                        s.append(_avg(t, b))
                    if s[0] is not None and s[1] is not None:
                        grp[:, c0:c1:2] = grp[:, c0:c1:2] - s[0]
                        grp[:, c0 + 1:c1:2] = grp[:, c0 + 1:c1:2] - s[1]
                else:
                    s = _avg(_clip(grp[2044:, c0:c1], dq[2044:, c0:c1], dnu),
                             _clip(grp[:4, c0:c1], dq[:4, c0:c1], dnu))
                    if s is not None:
                        grp[:, c0:c1] = grp[:, c0:c1] - s
            if side:
                lft = _running_median(grp[:, 0:4], dq[:, 0:4], 11, dnu)
                rgt = _running_median(grp[:, 2044:], dq[:, 2044:], 11, dnu)
                comb = np.where(np.isnan(lft) & np.isnan(rgt), 0.0,
                                np.where(np.isnan(lft), rgt,
                                         np.where(np.isnan(rgt), lft, 0.5 * (lft + rgt))))
                grp = grp - gain * comb[:, None]
                dtype = np.float64
            data[i, g] = to_dms_frame(grp, fast, slow)
    return data


def naive_refpix_miri(data, pdq, dnu, oddeven=True):
    data = data.copy()
    for i in range(data.shape[0]):
        first = data[i, 0].astype(np.float64)
        data[i] = data[i] - first
        for g in range(1, data.shape[1]):
            grp = data[i, g]
            for a in range(4):
                if oddeven:
                    for r0 in (0, 1):
                        sl = slice(r0, 1024, 2)
                        s = 0.5 * (_clip(grp[sl, a], pdq[sl, a], dnu)
                                   + _clip(grp[sl, 1028 + a], pdq[sl, 1028 + a], dnu))
                        grp[r0::2, a::4] = grp[r0::2, a::4] - s
                else:
                    s = 0.5 * (_clip(grp[:, a], pdq[:, a], dnu)
                               + _clip(grp[:, 1028 + a], pdq[:, 1028 + a], dnu))
                    grp[:, a::4] = grp[:, a::4] - s
        data[i] += first
    return data
