"""dq_init: propagate the MASK reference DQ into PIXELDQ and DO_NOT_USE into GROUPDQ.

Mirrors ``jwst.dq_init.dq_initialization.do_dqinit`` (ordinary ramps; FGS guider
and superstripe products are not handled here).
"""

import numpy as np

from webbflow.kernels.dq_init import _initialize_dq
from webbflow.steps._checks import check_dtypes

__all__ = ["initialize_dq", "default_dq"]


def default_dq(shape):
    """Zeroed (GROUPDQ uint8 4-D, PIXELDQ uint32 2-D) for a (nints, ngroups, ny, nx) cube."""
    return np.zeros(shape, dtype=np.uint8), np.zeros(shape[-2:], dtype=np.uint32)


def initialize_dq(gdq, pdq, mask_dq, dqflags, user_dq=None):
    """OR the mask DQ into ``pdq`` and its DO_NOT_USE bit into every group of ``gdq``.

    ``mask_dq`` must already be cut to the science subarray (``subarray.cut_reference``).
    ``user_dq`` (optional, same shape) is OR-ed into the mask first, as official.
    Arrays are updated in place and returned as ``(gdq, pdq)``.
    """
    check_dtypes(gdq=(gdq, np.uint8), pdq=(pdq, np.uint32))
    if gdq.ndim != 4 or pdq.shape != gdq.shape[-2:]:
        raise ValueError(f"gdq {gdq.shape} / pdq {pdq.shape} shapes do not match")
    mask = np.ascontiguousarray(mask_dq, dtype=np.uint32)
    if mask.shape != pdq.shape:
        raise ValueError(f"mask shape {mask.shape} != pixeldq shape {pdq.shape}")
    if user_dq is not None:
        if user_dq.shape != mask.shape:
            raise ValueError(f"user_dq has shape={user_dq.shape} but expecting {mask.shape}")
        mask = mask | user_dq.astype(np.uint32)
    _initialize_dq(gdq, pdq, mask, np.uint32(dqflags["DO_NOT_USE"]))
    return gdq, pdq
