"""linearity: classic polynomial linearity correction (``stcal.linearity`` without INV_COEFFS)."""

import numpy as np

from webbflow.kernels.linearity import _correct_linearity, _correct_linearity_reads
from webbflow.steps._checks import check_dtypes

__all__ = ["correct_linearity"]


def correct_linearity(data, gdq, pdq, coeffs, lin_dq, dqflags, zeroframe=None, *,
                      inv_coeffs=None, read_pattern=None):
    """``F_c = sum_k c_k F^k`` (Horner, float32) for every group not flagged SATURATED.

    coeffs float32 (ncoeffs, ny, nx), lin_dq uint32 (ny, nx), cut to ``data``'s frame.
    Pixels with NO_LIN_CORR in ``lin_dq``, a NaN coefficient or c1 == 0 are left unchanged
    and get NO_LIN_CORR in ``pdq``; ``pdq |= lin_dq``. ZEROFRAME is corrected except where
    it is 0. The reference arrays are not modified.

    ``inv_coeffs`` (INV_COEFFS, same layout) with ``read_pattern`` (frame numbers per group,
    ``saturation.make_read_pattern``) switches on the read-level correction, which jwst uses
    when the reference has INV_COEFFS, NFRAMES > 1 and the exposure has no read times.
    Its NaN / zero-c1 pixels also get NO_LIN_CORR (their inverse becomes the identity).
    ZEROFRAME always gets the classic correction. Returns ``(data, pdq, zeroframe)``.
    """
    check_dtypes(data=(data, np.float32), gdq=(gdq, np.uint8), pdq=(pdq, np.uint32))
    ny, nx = data.shape[-2:]
    coeffs = np.ascontiguousarray(coeffs, dtype=np.float32)
    lin_dq = np.ascontiguousarray(lin_dq, dtype=np.uint32)
    if coeffs.ndim != 3 or coeffs.shape[1:] != (ny, nx) or coeffs.shape[0] < 2:
        raise ValueError(f"coeffs shape {coeffs.shape} does not match data {data.shape}")
    if lin_dq.shape != (ny, nx) or pdq.shape != (ny, nx) or gdq.shape != data.shape:
        raise ValueError("lin_dq / pdq / gdq shapes do not match data")
    do_z = zeroframe is not None
    z = zeroframe if do_z else np.zeros((0, ny, nx), np.float32)
    if inv_coeffs is not None:
        if read_pattern is None:
            raise ValueError("inv_coeffs needs read_pattern")
        if data.shape[1] < 2:
            raise ValueError("read-level linearity needs at least 2 groups")
        icoeffs = np.ascontiguousarray(inv_coeffs, dtype=np.float32)
        if icoeffs.ndim != 3 or icoeffs.shape[1:] != (ny, nx) or icoeffs.shape[0] < 2:
            raise ValueError(f"inv_coeffs shape {icoeffs.shape} does not match data")
        mean_reads = np.array([np.mean(r) for r in read_pattern], dtype=np.float64)
        counts = np.array([len(r) for r in read_pattern], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        frames = np.concatenate([np.asarray(r, np.float64) for r in read_pattern])
        pdq_in = pdq.copy()
        _correct_linearity_reads(
            data, gdq, pdq, coeffs, icoeffs, lin_dq, np.uint8(dqflags["SATURATED"]),
            np.uint32(dqflags["NO_LIN_CORR"]), mean_reads, frames, starts, counts,
        )
        if do_z:
            # classic correction of ZEROFRAME with the (prepared) forward coefficients only
            _correct_linearity(
                np.zeros((0, 0, ny, nx), np.float32), np.zeros((0, 0, ny, nx), np.uint8),
                pdq_in, coeffs, lin_dq, np.uint8(dqflags["SATURATED"]),
                np.uint32(dqflags["NO_LIN_CORR"]), z, True,
            )
        return data, pdq, zeroframe
    _correct_linearity(
        data, gdq, pdq, coeffs, lin_dq, np.uint8(dqflags["SATURATED"]),
        np.uint32(dqflags["NO_LIN_CORR"]), z, do_z,
    )
    return data, pdq, zeroframe
