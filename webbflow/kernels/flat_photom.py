"""flat_field and photom of an imaging exposure in one pass over the pixels.

Each pixel goes through the official sequence of float32 operations (flat division,
VAR_FLAT from the divided data, variance scaling, ERR, the NaN/DO_NOT_USE agreement,
then the photometric conversion), so the result is the official one to the last bit
while the arrays are read and written once instead of a dozen times.
"""

import math

import numpy as np
from numba import prange

from webbflow.kernels._options import njit


@njit(parallel=True)
def _flat_photom(sci, err, dq, var_poisson, var_rnoise, var_flat, flat, flat_err, flat_dq,
                 do_flat, conversion, do_photom, do_not_use, no_flat_field):
    """In place over (ny, nx) images; ``var_flat`` is written. ``flat*`` are the flat's
    subarray cut-outs (ignored unless ``do_flat``)."""
    ny, nx = sci.shape
    bad_flat = do_not_use | no_flat_field
    c = np.float32(conversion)
    c2 = c * c
    nan = np.float32(np.nan)
    for y in prange(ny):
        for x in range(nx):
            d = sci[y, x]
            vp = var_poisson[y, x]
            vr = var_rnoise[y, x]
            e = err[y, x]
            vf = var_flat[y, x]
            q = dq[y, x]
            if do_flat:
                f = flat[y, x]
                fdq = flat_dq[y, x]
                if math.isnan(f) or f == 0.0:
                    fdq |= bad_flat
                if fdq & no_flat_field:
                    fdq |= do_not_use
                if fdq & do_not_use:
                    f = np.float32(1.0)
                fe = flat_err[y, x]
                f2 = f * f
                d = d / f
                vf = d * d / f2 * (fe * fe)
                vp = vp / f2
                vr = vr / f2
                e = np.float32(math.sqrt(vp + vr + vf))
                q |= fdq
                if (math.isnan(d) or math.isnan(e) or math.isnan(vr) or math.isnan(vp)
                        or math.isnan(vf) or (q & do_not_use)):
                    q |= do_not_use
                    d = nan
                    e = nan
                    vr = nan
                    vp = nan
                    vf = nan
            if do_photom:
                d = d * c
                e = e * c
                vp = vp * c2
                vr = vr * c2
                vf = vf * c2
            sci[y, x] = d
            err[y, x] = e
            var_poisson[y, x] = vp
            var_rnoise[y, x] = vr
            var_flat[y, x] = vf
            dq[y, x] = q
