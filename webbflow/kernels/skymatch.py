"""Loops of skymatch's sky statistic (the official one is stsci.imagestats, in C).

Called only from :mod:`webbflow.steps.skymatch`. Both kernels keep the C code's float32
arithmetic (comparisons against float32 limits, float32 differences, float64 sums), so
the clipped moments and the histogram counts are the official ones bit for bit.
"""

import numpy as np

from webbflow.kernels._options import njit


@njit
def _clipped_sums(values, clipmin, clipmax):
    """(count, float64 sum, min, max) of the float32 ``values`` within [clipmin, clipmax].

    The running min and max start from the first value bounded by the limits, not from
    the first value inside them: when values[0] lies below clipmin the reported minimum
    is clipmin itself (and likewise for the maximum), as imagestats reports it."""
    first = values[0]
    lo = clipmin if clipmin > first else first
    hi = clipmax if clipmax < first else first
    n = 0
    total = 0.0
    for i in range(values.size):
        v = values[i]
        if v >= clipmin and v <= clipmax:
            if v <= lo:
                lo = v
            if v >= hi:
                hi = v
            n += 1
            total += v
    return n, total, lo, hi


@njit
def _sum_sq_dev(values, mean, lo, hi):
    """Sum over values in [lo, hi] of (v - mean)**2, each term in float32, in float64."""
    acc = 0.0
    for i in range(values.size):
        v = values[i]
        if v >= lo and v <= hi:
            d = v - mean
            acc += d * d
    return acc


@njit
def _histogram(values, counts, low, width, limit, inclusive):
    """Counts of float32 ``values`` in bins of ``width`` from ``low``: the bin index is
    truncated from the float32 product with the float32 reciprocal of the width."""
    f = np.float32(1.0) / width
    nbins = counts.size
    for i in range(values.size):
        v = values[i]
        if v >= low and (v <= limit if inclusive else v < limit):
            pos = f * (v - low)
            # a zero width (all values equal) puts everything in the first bin
            k = int(pos) if pos == pos and pos < nbins else (0 if nbins == 1 else nbins)
            if k < nbins:
                counts[k] += 1
    return counts
