"""Reference for dark subtraction: builds the dark frames explicitly like the official code."""

import numpy as np


def naive_subtract_dark(data, pdq, dark, dark_dq, snf, sgg, dnf, dgg, intstart=1):
    data, pdq = data.copy(), pdq.copy()
    nints, ngroups, ny, nx = data.shape
    d4 = dark.ndim == 4
    dk = dark if d4 else dark[None]
    nd = dk.shape[1]
    sci_total = ngroups * snf + (ngroups - 1) * sgg
    drk_total = nd * dnf + (nd - 1) * dgg
    if sci_total > drk_total:
        nextra = int(np.ceil((sci_total - drk_total + dgg) / (dnf + dgg)))
        ext = np.empty((dk.shape[0], nd + nextra, ny, nx), np.float64)
        for k in range(dk.shape[0]):
            ext[k, :nd] = dk[k]
            rate = dk[k, -1] - dk[k, -2]
            for e in range(nextra):
                ext[k, nd + e] = (e + 1) * rate.astype(np.float64) + dk[k, -1]
        dk = ext
    if dnf > snf or dgg > sgg:
        return data, pdq, "SKIPPED"
    dk = np.where(np.isnan(dk), 0, dk).astype(dk.dtype)
    if snf != dnf or sgg != dgg:
        nuse = min(dk.shape[0], nints) if d4 else 1
        avg = np.zeros((dk.shape[0], ngroups, ny, nx), np.float32)
        for k in range(nuse):
            for g in range(ngroups):
                s = g * (snf + sgg)
                acc = dk[k, s].copy()
                for f in range(s + 1, s + snf):
                    acc = acc + dk[k, f]
                avg[k, g] = acc if snf == 1 else (acc.astype(np.float64) / snf)
        dk = avg
    ddq = np.bitwise_or.reduce(dark_dq[:, 0], axis=0) if dark_dq.ndim == 4 else dark_dq
    pdq |= ddq
    for i in range(nints):
        k = (i if (i < dk.shape[0] and intstart == 1) else dk.shape[0] - 1) if d4 else 0
        for g in range(ngroups):
            data[i, g] = (data[i, g].astype(np.float64) - dk[k, g]).astype(np.float32)
    return data, pdq, "COMPLETE"
