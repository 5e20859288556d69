"""Kernels for the NIRSpec IRS2 reference correction (``webbflow.steps.irs2``).

All arrays are seen in the detector frame (rows = slow axis, 3200 columns = the reference
output and four amplifiers of 640 read samples each). The kernels do the re-orderings
between that frame and the per-output time streams (712 samples per row: 512 normal
pixels, 128 interleaved reference pixels, the jump gaps and the new-row pad) and the
arithmetic around the FFTs, in the dtype order the official code uses: float64 for the
ramp average, float32 for everything stored.
"""

import numpy as np

from webbflow.kernels._options import njit

SECTOR = 640  # raw samples per output and row


@njit
def ramp_average(data, b_offset):
    """``b_offset = data.sum(axis=0, float64) / ngroups`` for one integration
    (data: ngroups, ny, nx); the sum runs over the groups in order."""
    ngroups, ny, nx = data.shape
    for y in range(ny):
        for x in range(nx):
            s = 0.0
            for g in range(ngroups):
                s += np.float64(data[g, y, x])
            b_offset[y, x] = s / ngroups


@njit
def time_streams(data, b_offset, hnorm, href, hnorm1, href1, out):
    """``out[s, g, y, t]``: the sample of output ``s`` read at position ``t`` of row ``y``,
    less the ramp average, zero in the gaps. Outputs 0, 2, 4 are read right to left.
    out must be zeroed (5, ngroups, ny, row) float32."""
    ngroups, ny, nx = data.shape
    for s in range(5):
        flip = s % 2 == 0
        base = s * SECTOR
        for g in range(ngroups):
            for y in range(ny):
                for n in range(hnorm.shape[0]):
                    j = hnorm[n]
                    col = base + (SECTOR - 1 - j if flip else j)
                    out[s, g, y, hnorm1[n]] = np.float32(np.float64(data[g, y, col])
                                                          - b_offset[y, col])
                for n in range(href.shape[0]):
                    j = href[n]
                    col = base + (SECTOR - 1 - j if flip else j)
                    out[s, g, y, href1[n]] = np.float32(np.float64(data[g, y, col])
                                                         - b_offset[y, col])


@njit
def subtract_line(plane, time, intercept, slope):
    """``plane -= (intercept + time * slope) * (plane != 0)`` in float32."""
    ny, nrow = plane.shape
    for y in range(ny):
        for t in range(nrow):
            v = plane[y, t]
            if v != 0.0:
                plane[y, t] = v - (intercept + time[y, t] * slope)


@njit
def gather_reference(stream, hs, ht, out):
    """Interleaved reference samples of one output into a zeroed complex64 stream:
    ``out[g, y*row + ht[i]] = stream[g, y, hs[i]]``."""
    ngroups, ny, nrow = stream.shape
    for g in range(ngroups):
        for y in range(ny):
            for i in range(hs.shape[0]):
                out[g, y * nrow + ht[i]] = stream[g, y, hs[i]]


@njit
def subtract_model(stream, model, hnorm1):
    """``stream[g, y, hnorm1] -= model[g, y*row + hnorm1].real`` (the model's float32
    real part)."""
    ngroups, ny, nrow = stream.shape
    for g in range(ngroups):
        for y in range(ny):
            for n in range(hnorm1.shape[0]):
                t = hnorm1[n]
                stream[g, y, t] = stream[g, y, t] - np.float32(model[g, y * nrow + t].real)


@njit
def assemble_normal(streams, b_offset, hnorm1, normal_cols, out):
    """The corrected normal pixels back in the detector frame without the interleaved
    references: ``out[g, y, (s-1)*512 + j]`` from output s (1..4; outputs 2 and 4 read
    right to left), plus the ramp average of that pixel."""
    nsec, ngroups, ny, nrow = streams.shape
    nn = hnorm1.shape[0]
    for s in range(1, 5):
        for g in range(ngroups):
            for y in range(ny):
                for n in range(nn):
                    j = nn - 1 - n if s % 2 == 0 else n
                    k = (s - 1) * nn + j
                    out[g, y, k] = np.float32(np.float64(streams[s, g, y, hnorm1[n]])
                                              + b_offset[y, normal_cols[k]])
