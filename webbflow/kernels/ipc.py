"""Kernels for the IPC correction (``jwst.ipc.ipc_corr.ipc_convolve`` order of operations)."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _ipc_plane(plane, src, kernel, per_pixel, y0, ny, x0, nx):
    """Convolve the science region [y0:y0+ny, x0:x0+nx] of ``plane`` (src: its copy).

    out(y, x) = sum_{j,i != centre} K[j,i] * in(y + kh-1-j - kh//2, x + kw-1-i - kw//2)
    accumulated in float32 in the official order (centre term last), with pixels outside
    the science region (reference pixels, edges) taken as 0.
    """
    kh = kernel.shape[0]
    kw = kernel.shape[1]
    bb = kh // 2
    lb = kw // 2
    for y in prange(ny):
        for x in range(nx):
            acc = np.float32(0.0)
            for j in range(kh):
                for i in range(kw):
                    if j == bb and i == lb:
                        continue
                    yy = y + (kh - 1 - j) - bb
                    xx = x + (kw - 1 - i) - lb
                    v = np.float32(0.0)
                    if 0 <= yy < ny and 0 <= xx < nx:
                        v = src[y0 + yy, x0 + xx]
                    if per_pixel:
                        k = kernel[j, i, y0 + y, x0 + x]
                    else:
                        k = kernel[j, i, 0, 0]
                    acc += k * v
            if per_pixel:
                k = kernel[bb, lb, y0 + y, x0 + x]
            else:
                k = kernel[bb, lb, 0, 0]
            acc += k * src[y0 + y, x0 + x]
            plane[y0 + y, x0 + x] = acc
