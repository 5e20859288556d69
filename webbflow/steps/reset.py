"""reset (MIRI): subtract the reset-anomaly reference from the first groups."""

import numpy as np

from webbflow.kernels.reset import _subtract_reset
from webbflow.steps._checks import check_dtypes

__all__ = ["subtract_reset"]


def subtract_reset(data, pdq, reset_sci, reset_dq, dqflags=None, *, integration_start=None,
                   integration_end=None, nints=None):
    """``SCI[i, g] -= RESET[min(i, nint_ref-1), g]`` for g < min(ngroups, ngroups_ref).

    reset_sci float32 (nints_ref, ngroups_ref, ny, nx) (NaN -> 0), reset_dq uint32 (ny, nx),
    both matching the science subarray exactly. ``i`` is the absolute integration number
    (segments: data integration k is exposure integration integration_start-1+k).
    ``nints``: exposure NINTS (default: data's). ``pdq |= reset_dq``. Returns ``(data, pdq)``.
    """
    check_dtypes(data=(data, np.float32), pdq=(pdq, np.uint32))
    n_data, ngroups, ny, nx = data.shape
    reset = np.asarray(reset_sci, dtype=np.float32)
    if reset.ndim == 3:
        reset = reset[np.newaxis]
    if reset.shape[-2:] != (ny, nx):
        raise ValueError(f"reset frame {reset.shape[-2:]} != science frame {(ny, nx)}")
    nints = n_data if nints is None else nints
    istart = 0 if integration_start is None else integration_start - 1
    iend = nints if integration_end is None else integration_end
    n_do = min(n_data, iend - istart)
    idx = np.array([min(i, reset.shape[0] - 1) for i in range(istart, istart + n_do)],
                   dtype=np.int64)
    ngc = min(ngroups, reset.shape[1])
    rdq = np.ascontiguousarray(reset_dq, dtype=np.uint32)
    _subtract_reset(data[:n_do], pdq, reset, rdq, idx, ngc)
    return data, pdq
