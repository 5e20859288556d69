"""linearity: classic polynomial linearity correction (``stcal.linearity`` without INV_COEFFS)."""

import numpy as np

from webbflow.kernels.linearity import _correct_linearity

__all__ = ["correct_linearity"]


def correct_linearity(data, gdq, pdq, coeffs, lin_dq, dqflags, zeroframe=None):
    """``F_c = sum_k c_k F^k`` (Horner, float32) for every group not flagged SATURATED.

    coeffs float32 (ncoeffs, ny, nx), lin_dq uint32 (ny, nx), cut to ``data``'s frame.
    Pixels with NO_LIN_CORR in ``lin_dq``, a NaN coefficient or c1 == 0 are left unchanged
    and get NO_LIN_CORR in ``pdq``; ``pdq |= lin_dq``. ZEROFRAME is corrected except where
    it is 0. The reference arrays are not modified. The read-level refinement that the
    official code does when INV_COEFFS exist and NFRAMES > 1 is not implemented.
    Returns ``(data, pdq, zeroframe)``.
    """
    ny, nx = data.shape[-2:]
    coeffs = np.ascontiguousarray(coeffs, dtype=np.float32)
    lin_dq = np.ascontiguousarray(lin_dq, dtype=np.uint32)
    if coeffs.ndim != 3 or coeffs.shape[1:] != (ny, nx) or coeffs.shape[0] < 2:
        raise ValueError(f"coeffs shape {coeffs.shape} does not match data {data.shape}")
    if lin_dq.shape != (ny, nx) or pdq.shape != (ny, nx) or gdq.shape != data.shape:
        raise ValueError("lin_dq / pdq / gdq shapes do not match data")
    do_z = zeroframe is not None
    z = zeroframe if do_z else np.zeros((0, ny, nx), np.float32)
    _correct_linearity(
        data, gdq, pdq, coeffs, lin_dq, np.uint8(dqflags["SATURATED"]),
        np.uint32(dqflags["NO_LIN_CORR"]), z, do_z,
    )
    return data, pdq, zeroframe
