"""dark_current: subtract the dark reference (``stcal.dark_current.dark_sub`` as jwst calls it)."""

import numpy as np

from webbflow.kernels.dark_current import _subtract_dark
from webbflow.steps._checks import check_dtypes

__all__ = ["subtract_dark", "dark_group_starts", "average_dark_current"]


def dark_group_starts(ngroups, nframes, groupgap):
    """First dark frame of each science group: start_{g+1} = start_g + nframes + groupgap."""
    return np.arange(ngroups, dtype=np.int64) * (nframes + groupgap)


def subtract_dark(
    data,
    pdq,
    dark_sci,
    dark_dq,
    dqflags=None,
    *,
    sci_nframes,
    sci_groupgap,
    dark_nframes,
    dark_groupgap,
    is_miri=False,
    integration_start=1,
    first_integration=0,
    data_nints=None,
):
    """Subtract the dark, averaging dark frames when NFRAMES/GROUPGAP differ.

    dark_sci: float32 (ngroups_dark, ny, nx) near-IR or (nints_dark, ngroups_dark, ny, nx)
    MIRI; dark_dq: (ny, nx) or MIRI (nints_dark, 1, ny, nx) (OR-ed over integrations).
    Both cut to ``data``'s frame / row block (darks need an exact subarray match).
    Frames beyond the dark's length are extrapolated from its last two frames; NaN -> 0.
    MIRI: dark integration i for science integration i, the last one beyond (and for all
    integrations when ``integration_start`` != 1, as the official code does).
    ``first_integration``/``data_nints``: ``data`` holds integrations first_integration ..
    of the data_nints in the file (a chunk of a streamed run).
    Returns ``(data, pdq, status)`` with status "COMPLETE" or "SKIPPED" (dark NFRAMES or
    GROUPGAP larger than the science ones: nothing changed).
    """
    check_dtypes(data=(data, np.float32), pdq=(pdq, np.uint32))
    nints, ngroups, ny, nx = data.shape
    dark = np.asarray(dark_sci)
    four_d = dark.ndim == 4
    if not four_d:
        dark = dark[np.newaxis]
    if dark.dtype != np.float32:
        dark = dark.astype(np.float32)
    if dark.shape[-2:] != (ny, nx):
        raise ValueError(f"dark frame {dark.shape[-2:]} != science frame {(ny, nx)}")
    if is_miri and not four_d:
        raise ValueError("MIRI darks are 4-D")
    drk_nints, drk_ngroups = dark.shape[:2]

    sci_total = ngroups * sci_nframes + (ngroups - 1) * sci_groupgap
    drk_total = drk_ngroups * dark_nframes + (drk_ngroups - 1) * dark_groupgap
    extrapolated = sci_total > drk_total
    if extrapolated and drk_ngroups < 2:
        raise ValueError("cannot extrapolate a dark with fewer than 2 groups")
    if dark_nframes > sci_nframes or dark_groupgap > sci_groupgap:
        return data, pdq, "SKIPPED"

    averaged = not (sci_nframes == dark_nframes and sci_groupgap == dark_groupgap)
    if averaged:
        starts = dark_group_starts(ngroups, sci_nframes, sci_groupgap)
    else:
        starts = np.arange(ngroups, dtype=np.int64)

    ddq = np.asarray(dark_dq, dtype=np.uint32)
    if ddq.ndim == 4:
        ddq = np.bitwise_or.reduce(ddq[:, 0], axis=0)
    np.bitwise_or(pdq, ddq, out=pdq)

    if four_d:
        # data may be integrations first_integration .. of the data_nints in the file
        total = nints if data_nints is None else data_nints
        idx = np.empty(nints, np.int64)
        for k in range(nints):
            i = first_integration + k
            if i < drk_nints and integration_start == 1:
                idx[k] = i
            else:
                # official: dark[-1]; an averaged 4-D dark only fills min(dark, sci) ints
                idx[k] = drk_nints - 1 if (not averaged or drk_nints <= total) else -1
    else:
        idx = np.zeros(nints, np.int64)
    _subtract_dark(data, dark, idx, starts, int(sci_nframes), averaged, extrapolated)
    return data, pdq, "COMPLETE"


def average_dark_current(shape, user_value=None, dark_average_2d=None, dark_average_scalar=None):
    """The AVDRKCUR array stored for ramp_fit (e-/s), following jwst's priority:

    user parameter > 2-D AVDRKCUR of the dark (if present and not all zero) > scalar
    keyword of the dark > 0. Returns None when the 2-D dark array has the wrong shape (the
    official step then keeps the input model's array unchanged).
    """
    base = np.zeros(shape, dtype=np.float32)
    if user_value is not None:
        return base + user_value
    if dark_average_2d is None or np.sum(dark_average_2d) == 0.0:
        scalar = 0.0 if dark_average_scalar is None else dark_average_scalar
        return base + scalar
    if np.shape(dark_average_2d) != tuple(shape):
        return None
    return np.asarray(dark_average_2d)
