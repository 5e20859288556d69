"""superbias: subtract the superbias frame (near-IR), as ``jwst.superbias.bias_sub``."""

import numpy as np

from webbflow.kernels.superbias import _subtract_superbias, _subtract_superbias_zeroframe
from webbflow.steps._checks import check_dtypes

__all__ = ["subtract_superbias"]


def subtract_superbias(data, pdq, bias, bias_dq, dqflags=None, zeroframe=None):
    """``data -= bias`` (NaN bias -> 0) for every group; ``pdq |= bias_dq``.

    ZEROFRAME values of exactly 0 (unusable) stay 0, others get the bias subtracted.
    ``bias`` / ``bias_dq`` must already be cut to ``data``'s frame (or row block).
    ``dqflags`` is unused (kept for a uniform signature). Returns ``(data, pdq, zeroframe)``.
    """
    check_dtypes(data=(data, np.float32), pdq=(pdq, np.uint32))
    ny, nx = data.shape[-2:]
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    bias_dq = np.ascontiguousarray(bias_dq, dtype=np.uint32)
    if bias.shape != (ny, nx) or bias_dq.shape != (ny, nx) or pdq.shape != (ny, nx):
        raise ValueError("bias / bias_dq / pdq must match the data frame")
    _subtract_superbias(data, pdq, bias, bias_dq)
    if zeroframe is not None:
        _subtract_superbias_zeroframe(zeroframe, bias)
    return data, pdq, zeroframe
