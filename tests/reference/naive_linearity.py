"""Loop-per-pixel reference for the classic linearity correction."""

import numpy as np


def _poly(c, d):
    r = np.float32(c[-1] * d)
    for k in range(len(c) - 2, 0, -1):
        r = np.float32(np.float32(r + c[k]) * d)
    return np.float32(r + c[0])


def naive_correct_linearity(data, gdq, pdq, coeffs, lin_dq, flags, zframe=None):
    NLC, SAT = flags["NO_LIN_CORR"], flags["SATURATED"]
    data, pdq = data.copy(), pdq.copy()
    zframe = None if zframe is None else zframe.copy()
    nints, ngroups, ny, nx = data.shape
    for y in range(ny):
        for x in range(nx):
            c = coeffs[:, y, x].astype(np.float32).copy()
            pdq[y, x] |= lin_dq[y, x]
            if (lin_dq[y, x] & NLC) or np.isnan(c).any() or c[1] == 0:
                if not (lin_dq[y, x] & NLC):
                    pdq[y, x] |= NLC
                c[:] = 0
                c[1] = 1
            for i in range(nints):
                for g in range(ngroups):
                    if not gdq[i, g, y, x] & SAT:
                        data[i, g, y, x] = _poly(c, data[i, g, y, x])
                if zframe is not None and zframe[i, y, x] != 0:
                    zframe[i, y, x] = _poly(c, zframe[i, y, x])
    return data, pdq, zframe


def _poly64(c, d):
    r = np.float64(c[-1]) * d
    for k in range(len(c) - 2, 0, -1):
        r = (r + np.float64(c[k])) * d
    return r + np.float64(c[0])


def _prep(cc, ldq, NLC):
    cc = cc.astype(np.float32).copy()
    add = 0
    if (ldq & NLC) or np.isnan(cc).any() or cc[1] == 0:
        if not ldq & NLC:
            add = NLC
        cc[:] = 0
        cc[1] = 1
    return cc, add


def naive_correct_linearity_reads(data, gdq, pdq, coeffs, icoeffs, lin_dq, flags, read_pattern):
    """Read-level correction, one pixel and one group at a time."""
    with np.errstate(all="ignore"):
        return _reads(data, gdq, pdq, coeffs, icoeffs, lin_dq, flags, read_pattern)


def _reads(data, gdq, pdq, coeffs, icoeffs, lin_dq, flags, read_pattern):
    NLC, SAT = flags["NO_LIN_CORR"], flags["SATURATED"]
    data, pdq = data.copy(), pdq.copy()
    nints, ngroups, ny, nx = data.shape
    mrr = [np.mean(r) for r in read_pattern]
    for y in range(ny):
        for x in range(nx):
            c, a1 = _prep(coeffs[:, y, x], lin_dq[y, x], NLC)
            ci, a2 = _prep(icoeffs[:, y, x], lin_dq[y, x], NLC)
            pdq[y, x] |= lin_dq[y, x] | a1 | a2
            for i in range(nints):
                sat = [bool(gdq[i, g, y, x] & SAT) for g in range(ngroups)]
                lv = max(ngroups - sum(sat) - 1, 2) - 1
                first = data[i, 0, y, x] if sat[0] else _poly(c, data[i, 0, y, x])
                last = data[i, lv, y, x] if sat[lv] else _poly(c, data[i, lv, y, x])
                rate = np.float64(np.float32(last - first)) / (mrr[lv] - mrr[0])
                for g in range(ngroups):
                    if sat[g]:
                        continue
                    ru = [_poly64(ci, np.float64(first) + rate * (f - mrr[0]))
                          for f in read_pattern[g]]
                    pred = ru[0]
                    for v in ru[1:]:
                        pred = pred + v
                    off = np.float64(data[i, g, y, x]) - pred / len(ru)
                    acc = _poly64(c, ru[0] + off)
                    for v in ru[1:]:
                        acc = acc + _poly64(c, v + off)
                    data[i, g, y, x] = np.float32(acc / len(ru))
    return data, pdq
