"""Kernels for the classic (group-level) linearity correction."""

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _correct_linearity(data, gdq, pdq, coeffs, lin_dq, sat, no_lin_corr, zframe, do_zframe):
    """Horner polynomial in float32 per group; benign coefficients for bad pixels.

    Bad pixels: NO_LIN_CORR in the reference DQ, any NaN coefficient, or zero linear term.
    """
    nints, ngroups, ny, nx = data.shape
    ncoef = coeffs.shape[0]
    for y in prange(ny):
        c = np.empty(ncoef, np.float32)
        for x in range(nx):
            ldq = lin_dq[y, x]
            anynan = False
            for k in range(ncoef):
                c[k] = coeffs[k, y, x]
                if np.isnan(c[k]):
                    anynan = True
            flagged = (ldq & no_lin_corr) == no_lin_corr
            bad = flagged or anynan or c[1] == 0
            newdq = pdq[y, x] | ldq
            if bad:
                for k in range(ncoef):
                    c[k] = np.float32(0.0)
                c[1] = np.float32(1.0)
                if not flagged:
                    newdq |= no_lin_corr
            pdq[y, x] = newdq
            for i in range(nints):
                for g in range(ngroups):
                    if gdq[i, g, y, x] & sat:
                        continue
                    d = data[i, g, y, x]
                    r = c[ncoef - 1] * d
                    for j in range(ncoef - 2, 0, -1):
                        r += c[j]
                        r *= d
                    r += c[0]
                    data[i, g, y, x] = r
            if do_zframe:
                for i in range(zframe.shape[0]):
                    d = zframe[i, y, x]
                    if d == 0.0:
                        continue
                    r = c[ncoef - 1] * d
                    for j in range(ncoef - 2, 0, -1):
                        r += c[j]
                        r *= d
                    r += c[0]
                    zframe[i, y, x] = r
