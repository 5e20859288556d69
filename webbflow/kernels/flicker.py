"""Kernels of clean_flicker_noise: the scene/background clipping and the masked medians
along the detector's fast axis.

``clip_to_background`` is the official step's clipping rule (jwst 3.0
``clean_flicker_noise.background_level.clip_to_background``): the
centre and sigma come from astropy's ``sigma_clipped_stats`` of the masked values in
float64 (3 sigma about the median, population std, at most 5 rounds, values outside the
bounds dropped each round; the statistics of what is left), optionally recomputed on the
lower half of the distribution mirrored about that centre (the histogram fit, which
needs scipy, is done by the step with :func:`clipped_values`); pixels below
``centre - sigma_lower * sigma`` or above ``centre + sigma_upper * sigma`` leave the mask.

``line_medians`` is ``numpy.ma.median`` of the masked image along one axis, in the
image's own precision: the middle value, or (low + high) / 2 of the two middle ones
summed in that precision; 0 where a line has no unmasked value (the official fills the
masked medians with 0).
"""

import numpy as np

from webbflow.kernels._options import njit


@njit
def _mean_std(values, n):
    """Mean and population std (two passes, float64) of values[:n]; NaN for n == 0."""
    if n == 0:
        return np.nan, np.nan
    total = 0.0
    for k in range(n):
        total += values[k]
    mean = total / n
    squares = 0.0
    for k in range(n):
        d = values[k] - mean
        squares += d * d
    return mean, np.sqrt(squares / n)


@njit
def _masked_finite(image, mask):
    """The finite values of ``image`` where ``mask`` is set (float64, row-major order)
    in a buffer of the image's size, and how many there are."""
    ny, nx = image.shape
    values = np.empty(ny * nx, np.float64)
    n = 0
    for y in range(ny):
        for x in range(nx):
            if mask[y, x]:
                v = np.float64(image[y, x])
                if np.isfinite(v):
                    values[n] = v
                    n += 1
    return values, n


@njit
def _clip(values, n, sigma, maxiters):
    """astropy ``sigma_clip`` rounds (median centre, population std) on values[:n],
    compacting the kept values in place; returns how many are kept."""
    changed = 1
    iteration = 0
    while changed != 0 and iteration < maxiters and n > 0:
        iteration += 1
        centre = np.median(values[:n])
        _, spread = _mean_std(values, n)
        low = centre - spread * sigma
        high = centre + spread * sigma
        m = 0
        for k in range(n):
            v = values[k]
            if v >= low and v <= high:
                values[m] = v
                m += 1
        changed = n - m
        n = m
    return n


@njit
def _clipped_stats(values, n, sigma, maxiters):
    """astropy ``sigma_clipped_stats(values[:n], sigma=sigma, maxiters=maxiters)`` with
    the default median centre and std: returns (mean, median, std). ``values`` is
    reordered and compacted in place."""
    n = _clip(values, n, sigma, maxiters)
    if n == 0:
        return np.nan, np.nan, np.nan
    mean, spread = _mean_std(values, n)
    return mean, np.median(values[:n]), spread


@njit
def clipped_values(image, mask):
    """The masked finite values of ``image`` (float64, in row-major order) that
    astropy's ``sigma_clipped_stats(image, mask=~mask, sigma=3)`` keeps after its
    clipping rounds; their mean, median and std are its statistics."""
    values, n = _masked_finite(image, mask)
    return values[:_clip(values, n, 3.0, 5)].copy()


@njit
def clip_to_background(image, mask, sigma_lower, sigma_upper, lower_half_only):
    """The mask (bool, same shape as the 2-D ``image``) with signal above and outliers
    below the background bounds switched off; the input mask is not modified."""
    ny, nx = image.shape
    out = mask.copy()
    values, n = _masked_finite(image, mask)
    any_mask = False
    for y in range(ny):
        for x in range(nx):
            if mask[y, x]:
                any_mask = True
                break
        if any_mask:
            break
    if not any_mask:
        return out
    _, centre, spread = _clipped_stats(values, n, 3.0, 5)
    if lower_half_only:
        m = 0
        for y in range(ny):
            for x in range(nx):
                if mask[y, x] and np.float64(image[y, x]) <= centre:
                    m += 1
        mirrored = np.empty(2 * m, np.float64)
        k = 0
        for y in range(ny):
            for x in range(nx):
                v = np.float64(image[y, x])
                if mask[y, x] and v <= centre:
                    mirrored[k] = (v - centre) + centre
                    mirrored[m + k] = (centre - v) + centre
                    k += 1
        n = 0
        for k in range(2 * m):
            if np.isfinite(mirrored[k]):
                mirrored[n] = mirrored[k]
                n += 1
        _, centre, spread = _clipped_stats(mirrored, n, 3.0, 5)
    low = centre - sigma_lower * spread
    high = centre + sigma_upper * spread
    for y in range(ny):
        for x in range(nx):
            v = np.float64(image[y, x])
            if v < low or v > high:
                out[y, x] = False
    return out


@njit
def masked_median(image, mask):
    """``np.nanmedian(image[mask])`` (NaN if nothing is left), as a float64 holding the
    value in the image's precision."""
    ny, nx = image.shape
    buf = np.empty(ny * nx, image.dtype)
    n = 0
    for y in range(ny):
        for x in range(nx):
            if mask[y, x] and not np.isnan(image[y, x]):
                buf[n] = image[y, x]
                n += 1
    if n == 0:
        return np.nan
    return _middle_mean(buf[:n]) * 0.5


@njit
def _middle_mean(values):
    """low + high of the two middle values of a sort (the middle one twice for odd
    sizes), summed in the values' precision; found by partitioning, not sorting."""
    n = values.shape[0]
    h = n // 2
    part = np.partition(values, h)
    high = part[h]
    if n % 2:
        return high + high
    low = part[0]
    for k in range(1, h):
        if part[k] > low:
            low = part[k]
    return low + high


@njit
def line_medians(image, mask, axis):
    """Masked median of each row (``axis`` 1) or column (``axis`` 0) of ``image``."""
    ny, nx = image.shape
    nlines, length = (ny, nx) if axis == 1 else (nx, ny)
    out = np.zeros(nlines, image.dtype)
    buf = np.empty(length, image.dtype)
    for line in range(nlines):
        n = 0
        for k in range(length):
            y, x = (line, k) if axis == 1 else (k, line)
            if mask[y, x]:
                buf[n] = image[y, x]
                n += 1
        if n == 0:
            continue
        # halving the float32/float64 sum is exact
        out[line] = _middle_mean(buf[:n]) * 0.5
    return out
