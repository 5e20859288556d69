"""The combination of background exposures in bkg_subtract: per pixel, the values of the
n backgrounds sigma-clipped about their median and averaged.

astropy's ``sigma_clip(stack, sigma, maxiters, axis=0)`` followed by the masked mean is
what the official step does; this is the same arithmetic per pixel in float64 (NaN
values out from the start; bounds median -/+ sigma x population std of the values
left; iterate until nothing more is clipped or ``maxiters`` rounds; the mean of what is
left, summed in stack order), without the float64 (n, ny, nx) copies.
"""

import numpy as np

from webbflow.kernels._options import njit


@njit
def _median_sorted(values, n):
    half = n // 2
    if n % 2:
        return values[half]
    return 0.5 * (values[half - 1] + values[half])


@njit
def clipped_mean_stack(stack, sigma, maxiters):
    """float64 (ny, nx) mean over axis 0 of ``stack`` (n, ny, nx) after clipping; 0.0
    where no value is left, as the official masked mean's data is there. ``maxiters``
    < 0: no limit."""
    n, ny, nx = stack.shape
    out = np.zeros((ny, nx), np.float64)
    keep = np.empty(n, np.bool_)
    work = np.empty(n, np.float64)
    for y in range(ny):
        for x in range(nx):
            for k in range(n):
                keep[k] = np.isfinite(stack[k, y, x])
            iteration = 0
            while maxiters < 0 or iteration < maxiters:
                iteration += 1
                m = 0
                for k in range(n):
                    if keep[k]:
                        work[m] = stack[k, y, x]
                        m += 1
                if m == 0:
                    break
                work[:m].sort()
                centre = _median_sorted(work, m)
                total = 0.0
                for k in range(m):
                    total += work[k]
                mean = total / m
                squares = 0.0
                for k in range(m):
                    squares += (work[k] - mean) ** 2
                spread = np.sqrt(squares / m)
                low = centre - spread * sigma
                high = centre + spread * sigma
                changed = 0
                for k in range(n):
                    if keep[k]:
                        value = np.float64(stack[k, y, x])
                        if value < low or value > high:
                            keep[k] = False
                            changed += 1
                if changed == 0:
                    break
            total = 0.0
            count = 0
            for k in range(n):
                if keep[k]:
                    total += np.float64(stack[k, y, x])
                    count += 1
            if count:
                out[y, x] = total * 1.0 / count
    return out
