"""Kernels of emicorr (MIRI EMI correction): the pixel loops of jwst 3.0's
``jwst/emicorr/emicorr.py``.

MIRI reads its four output channels at once: column ``x`` is sample ``x // 4`` of its
row, channel ``x % 4``. All four channels of one sample share one EMI phase.

* :func:`sum_by_phase` (joint algorithm): for every pixel that is "good" (the step's
  mask), its group values are added into the phase bin of its first-group phase, and
  the count of good pixels in that bin goes up by one; samples 1 and 2 (the bad
  reference column) are left out. Sums in float64 of the float32 products
  ``value * good`` in the official order (rows, samples, channels).
* :func:`subtract_channels`: ``data[i, g, :, 4k + c] -= model[:, k]`` for every channel,
  computed in float64 and stored as float32 (numpy's in-place ``float32 -= float64``).
* :func:`phase_bins` (sequential algorithm): the bin ``b`` of each phase with
  ``b / nbins < phase <= (b + 1) / nbins`` (-1 for none), with the bounds computed as
  Python's ``b / nbins`` so that edge values fall in the same bin as officially.
"""

import numpy as np

from webbflow.kernels._options import njit


@njit
def sum_by_phase(data, good, phase_index, all_y, all_n):
    """data (nints, ngroups, ny, nx) float32; good (nints, ny, nx) bool; phase_index
    (ny, nx4) int64; all_y (nints, nphases, ngroups) and all_n (nints, nphases) float64,
    added to in place."""
    nints, ngroups, ny, nx = data.shape
    nx4 = nx // 4
    for j in range(ny):
        for k in range(nx4):
            if k == 1 or k == 2:
                continue
            b = phase_index[j, k]
            for c in range(4):
                x = 4 * k + c
                for i in range(nints):
                    weight = np.float32(1.0) if good[i, j, x] else np.float32(0.0)
                    for g in range(ngroups):
                        all_y[i, b, g] += np.float64(data[i, g, j, x] * weight)
                    all_n[i, b] += 1.0 if good[i, j, x] else 0.0


@njit
def subtract_channels(plane, model):
    """plane (ny, nx) float32, in place; model (ny, nx // 4) float64."""
    ny, nx = plane.shape
    nx4 = model.shape[1]
    for j in range(ny):
        for k in range(nx4):
            m = model[j, k]
            for c in range(4):
                x = 4 * k + c
                if x < nx:
                    plane[j, x] = np.float32(np.float64(plane[j, x]) - m)


@njit
def subtract_channels_lookup(plane, lut, index):
    """plane (ny, nx) float32, in place, minus ``lut[index[j, k]]`` on every channel of
    sample k (non-finite table values count as 0, as officially)."""
    ny, nx = plane.shape
    nx4 = index.shape[1]
    for j in range(ny):
        for k in range(nx4):
            m = lut[index[j, k]]
            if not np.isfinite(m):
                m = 0.0
            for c in range(4):
                x = 4 * k + c
                if x < nx:
                    plane[j, x] = np.float32(np.float64(plane[j, x]) - m)


@njit
def phase_bins(phase, lower, upper):
    """Bin number of every phase (flat float64 array): b with lower[b] < p <= upper[b],
    -1 when none; lower/upper are the official bounds b/nbins, (b+1)/nbins."""
    nbins = lower.size
    out = np.empty(phase.size, np.int64)
    for n in range(phase.size):
        p = phase[n]
        out[n] = -1
        guess = int(p * nbins)
        for b in range(max(0, guess - 2), min(nbins, guess + 3)):
            if p > lower[b] and p <= upper[b]:
                out[n] = b
                break
    return out
