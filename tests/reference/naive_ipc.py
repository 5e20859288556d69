"""Loop-per-pixel reference for the IPC convolution."""

import numpy as np


def naive_correct_ipc(data, kernel, nref):
    """nref = (bottom, top, left, right) reference pixels; kernel (kh, kw) or (kh, kw, ny, nx)."""
    data = data.copy()
    bottom, top, left, right = nref
    nints, ngroups, NY, NX = data.shape
    ny, nx = NY - bottom - top, NX - left - right
    kh, kw = kernel.shape[:2]
    c_j, c_i = kh // 2, kw // 2
    for i in range(nints):
        for g in range(ngroups):
            src = data[i, g].copy()
            for y in range(ny):
                for x in range(nx):
                    acc = np.float32(0)
                    terms = [(j, ii) for j in range(kh) for ii in range(kw) if (j, ii) != (c_j, c_i)]
                    terms.append((c_j, c_i))
                    for j, ii in terms:
                        yy, xx = y + kh - 1 - j - c_j, x + kw - 1 - ii - c_i
                        v = src[bottom + yy, left + xx] if (0 <= yy < ny and 0 <= xx < nx) else np.float32(0)
                        k = kernel[j, ii] if kernel.ndim == 2 else kernel[j, ii, bottom + y, left + x]
                        acc = np.float32(acc + np.float32(k * v))
                    data[i, g, bottom + y, left + x] = acc
    return data
