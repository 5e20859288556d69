"""Kernels for dark subtraction (stcal.dark_current.dark_sub semantics, computed on the fly).

The dark reference is never copied: group/frame averaging, extrapolation beyond the last
dark frame and NaN -> 0 are evaluated per pixel with the official dtypes (float32 when the
dark is used as is, float64 once the official code has extrapolated it).
"""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit
def _frame64(dark, k, f, y, x):
    """Frame ``f`` of dark integration ``k`` after extrapolation, as float64 (NaN kept)."""
    nd = dark.shape[1]
    if f < nd:
        return np.float64(dark[k, f, y, x])
    last = dark[k, nd - 1, y, x]
    rate = last - dark[k, nd - 2, y, x]  # float32, as numpy
    return np.float64(f - nd + 1) * np.float64(rate) + np.float64(last)


@njit
def _frame32(dark, k, f, y, x):
    v = dark[k, f, y, x]
    if np.isnan(v):
        return np.float32(0.0)
    return v


@njit
def _dark_value(dark, k, s0, nframes, averaged, extrapolated, y, x):
    """Dark to subtract (float64) for dark integration k, group starting at frame s0."""
    if k < 0:
        return 0.0
    if extrapolated:
        v = _frame64(dark, k, s0, y, x)
        acc = 0.0 if np.isnan(v) else v
        if averaged and nframes > 1:
            for f in range(s0 + 1, s0 + nframes):
                v = _frame64(dark, k, f, y, x)
                acc += 0.0 if np.isnan(v) else v
            acc = acc / nframes
        return np.float64(np.float32(acc)) if averaged else acc
    acc32 = _frame32(dark, k, s0, y, x)
    if averaged and nframes > 1:
        for f in range(s0 + 1, s0 + nframes):
            acc32 += _frame32(dark, k, f, y, x)
        acc32 = np.float32(np.float64(acc32) / nframes)
    return np.float64(acc32)


@njit(parallel=True)
def _subtract_dark(data, dark, dark_index, starts, nframes, averaged, extrapolated):
    """data[i, g] -= D(dark_index[i], g) with the float64 difference rounded once.

    D is dark group ``starts[g]`` (averaged False) or the mean of ``nframes`` dark frames
    from ``starts[g]`` stored as float32 (averaged True). dark_index[i] < 0: zero dark.
    For a float32 dark the rounding equals float32 subtraction (53 >= 2*24+2).
    """
    nints, ngroups, ny, nx = data.shape
    simple = not averaged and not extrapolated
    for y in prange(ny):
        drow = np.empty(nx, np.float64)
        for i in range(nints):
            k = dark_index[i]
            for g in range(ngroups):
                s0 = starts[g]
                if k < 0:
                    drow[:] = 0.0
                elif simple:
                    for x in range(nx):
                        v = dark[k, s0, y, x]
                        drow[x] = 0.0 if np.isnan(v) else np.float64(v)
                else:
                    for x in range(nx):
                        drow[x] = _dark_value(dark, k, s0, nframes, averaged, extrapolated, y, x)
                for x in range(nx):
                    data[i, g, y, x] = np.float32(np.float64(data[i, g, y, x]) - drow[x])
