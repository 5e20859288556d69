"""gain_scale: multiply rate products by GAINFACT (non-standard gain settings)."""

import numpy as np

from webbflow.kernels.group_scale import _scale_rows

__all__ = ["scale_gain"]


def _scale(arr, factor):
    if arr is None or np.size(arr) == 0:
        return arr
    if arr.flags.c_contiguous:
        _scale_rows(arr.reshape(-1, arr.shape[-1]), np.float32(factor))
    else:
        arr *= np.float32(factor)
    return arr


def scale_gain(data, err, gain_factor, var_poisson=None, var_rnoise=None):
    """SCI, ERR *= GAINFACT; VAR_POISSON, VAR_RNOISE *= GAINFACT**2 (float32, in place).

    Works on rate (2-D) or rateints (3-D) arrays. ``gain_factor`` None means the step is
    skipped (no GAINFACT anywhere): arrays are returned unchanged.
    Returns ``(data, err, var_poisson, var_rnoise)``.
    """
    if gain_factor is None:
        return data, err, var_poisson, var_rnoise
    g = float(gain_factor)
    _scale(data, g)
    _scale(err, g)
    _scale(var_poisson, g**2)
    _scale(var_rnoise, g**2)
    return data, err, var_poisson, var_rnoise
