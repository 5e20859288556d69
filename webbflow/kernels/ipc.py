"""Kernels for the IPC correction (``jwst.ipc.ipc_corr.ipc_convolve`` order of operations)."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit
def _ipc_pixel(src, kernel, per_pixel, y0, ny, x0, nx, y, x):
    """One output pixel with bounds checks (edges of the science region, any kernel)."""
    kh = kernel.shape[0]
    kw = kernel.shape[1]
    bb = kh // 2
    lb = kw // 2
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
    return acc


@njit
def _ipc_row3(plane, saved, kernel, y0, nx, x0, y):
    """Row y of a constant 3x3 kernel with all its pixels' neighbours inside the region
    (x = 1 .. nx-2), in place: the input of rows y-1 and y is in ``saved`` (rows y % 2
    and (y-1) % 2), row y+1 is not written yet; same float32 operations and order as
    :func:`_ipc_pixel`."""
    k00 = kernel[0, 0, 0, 0]
    k01 = kernel[0, 1, 0, 0]
    k02 = kernel[0, 2, 0, 0]
    k10 = kernel[1, 0, 0, 0]
    k11 = kernel[1, 1, 0, 0]
    k12 = kernel[1, 2, 0, 0]
    k20 = kernel[2, 0, 0, 0]
    k21 = kernel[2, 1, 0, 0]
    k22 = kernel[2, 2, 0, 0]
    up = plane[y0 + y + 1]
    mid = saved[y % 2]
    dn = saved[(y - 1) % 2]
    out = plane[y0 + y]
    for x in range(x0 + 1, x0 + nx - 1):
        acc = np.float32(0.0)
        acc += k00 * up[x + 1]
        acc += k01 * up[x]
        acc += k02 * up[x - 1]
        acc += k10 * mid[x + 1]
        acc += k12 * mid[x - 1]
        acc += k20 * dn[x + 1]
        acc += k21 * dn[x]
        acc += k22 * dn[x - 1]
        acc += k11 * mid[x]
        out[x] = acc


@njit
def _ipc_plane(plane, src, kernel, per_pixel, y0, ny, x0, nx):
    """Convolve the science region [y0:y0+ny, x0:x0+nx] of ``plane`` (src: its copy).

    out(y, x) = sum_{j,i != centre} K[j,i] * in(y + kh-1-j - kh//2, x + kw-1-i - kw//2)
    accumulated in float32 in the official order (centre term last), with pixels outside
    the science region (reference pixels, edges) taken as 0.
    """
    for y in range(ny):
        for x in range(nx):
            plane[y0 + y, x0 + x] = _ipc_pixel(src, kernel, per_pixel, y0, ny, x0, nx, y, x)


@njit
def _ipc_plane3(plane, kernel, y0, ny, x0, nx):
    """:func:`_ipc_plane` for a constant 3x3 kernel (the usual case) without a copy of
    the plane: the border pixels of the region are computed first, from the untouched
    input, then the interior row by row in place, each row's input kept in a two-row
    buffer until the next row has used it."""
    top = np.empty(nx, dtype=plane.dtype)
    bottom = np.empty(nx, dtype=plane.dtype)
    left = np.empty(ny, dtype=plane.dtype)
    right = np.empty(ny, dtype=plane.dtype)
    for x in range(nx):
        top[x] = _ipc_pixel(plane, kernel, False, y0, ny, x0, nx, 0, x)
        bottom[x] = _ipc_pixel(plane, kernel, False, y0, ny, x0, nx, ny - 1, x)
    for y in range(ny):
        left[y] = _ipc_pixel(plane, kernel, False, y0, ny, x0, nx, y, 0)
        right[y] = _ipc_pixel(plane, kernel, False, y0, ny, x0, nx, y, nx - 1)
    saved = np.empty((2, plane.shape[1]), dtype=plane.dtype)
    saved[0, :] = plane[y0]
    for y in range(1, ny - 1):
        saved[y % 2, :] = plane[y0 + y]
        _ipc_row3(plane, saved, kernel, y0, nx, x0, y)
    for x in range(nx):
        plane[y0, x0 + x] = top[x]
        plane[y0 + ny - 1, x0 + x] = bottom[x]
    for y in range(ny):
        plane[y0 + y, x0] = left[y]
        plane[y0 + y, x0 + nx - 1] = right[y]


@njit(parallel=True)
def _ipc_cube(data, kernel, per_pixel, y0, ny, x0, nx):
    """Every group of every integration, one group per task (a group is a few ms of work:
    one parallel loop over all of them, not one per group)."""
    nints, ngroups, rows, cols = data.shape
    fast3 = (not per_pixel) and kernel.shape[0] == 3 and kernel.shape[1] == 3 \
        and nx >= 3 and ny >= 3
    for k in prange(nints * ngroups):
        plane = data[k // ngroups, k % ngroups]
        if fast3:
            _ipc_plane3(plane, kernel, y0, ny, x0, nx)
        else:
            src = plane.copy()
            _ipc_plane(plane, src, kernel, per_pixel, y0, ny, x0, nx)
