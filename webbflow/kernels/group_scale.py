"""Kernels for simple multiplicative rescalings (group_scale, gain_scale)."""

from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _scale_rows(data2d, factor):
    """data2d *= factor (float32 factor, float32 arithmetic); data2d is (rows, cols)."""
    n, m = data2d.shape
    for r in prange(n):
        for c in range(m):
            data2d[r, c] = data2d[r, c] * factor
