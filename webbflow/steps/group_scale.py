"""group_scale: undo on-board frame averaging by a power-of-2 divisor (FRMDIVSR / NFRAMES)."""

import numpy as np

from webbflow.kernels.group_scale import _scale_rows

__all__ = ["scale_groups", "group_scale_needed"]


def group_scale_needed(nframes, frame_divisor):
    """The step's skip rules: False when NFRAMES is missing, when FRMDIVSR is missing and
    NFRAMES is a power of 2, or when they are equal."""
    if nframes is None:
        return False
    if frame_divisor is None:
        return not (nframes & (nframes - 1) == 0)
    return nframes != frame_divisor


def scale_groups(data, nframes, frame_divisor):
    """``data *= FRMDIVSR / NFRAMES`` in place (float32, as numpy with a Python float).

    The caller applies ``group_scale_needed`` first; with ``frame_divisor`` None the
    official step would fail too (it only runs when a divisor exists or NFRAMES is not a
    power of 2, and then reads FRMDIVSR). Returns ``data``.
    """
    scale = np.float32(float(frame_divisor) / nframes)
    if data.flags.c_contiguous:
        _scale_rows(data.reshape(-1, data.shape[-1]), scale)
    else:
        data *= scale
    return data
