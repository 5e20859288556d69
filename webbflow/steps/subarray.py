"""Reference-file subarray cut-outs and detector/DMS orientation transforms.

Same rules as ``jwst.lib.reffile_utils`` (``get_subarray_model``,
``science_detector_frame_transform``, ``detector_science_frame_transform``).
"""

import numpy as np

__all__ = [
    "FULL_FRAME",
    "cut_reference",
    "ref_matches_sci",
    "to_detector_frame",
    "to_dms_frame",
    "is_subarray",
]

FULL_FRAME = {"MIRI": (1024, 1032), "NIR": (2048, 2048)}


def full_frame_shape(instrument):
    """(ny, nx) of a full frame: MIRI 1024x1032, everything else 2048x2048."""
    return FULL_FRAME["MIRI"] if str(instrument).upper() == "MIRI" else FULL_FRAME["NIR"]


def is_subarray(shape, instrument):
    """True when the frame (last two axes of ``shape``) is smaller than a full frame."""
    ny, nx = shape[-2:]
    fy, fx = full_frame_shape(instrument)
    return nx < fx or ny < fy


def ref_matches_sci(ref_substrt, ref_subsize, sci_substrt, sci_subsize):
    """True when the reference's (SUBSTRT1, SUBSTRT2) and (SUBSIZE1, SUBSIZE2) equal the science."""
    return tuple(ref_substrt) == tuple(sci_substrt) and tuple(ref_subsize) == tuple(sci_subsize)


def cut_reference(ref_array, ref_substrt, ref_subsize, sci_substrt, sci_subsize):
    """Cut a reference array to the science subarray (on its last two axes).

    ref_substrt : (SUBSTRT1, SUBSTRT2) of the reference (1-based x, y), or None for a
        full-frame reference without subarray keywords (then (1, 1) and ``ref_subsize`` =
        the array's own (nx, ny) are assumed).
    ref_subsize : (SUBSIZE1, SUBSIZE2) of the reference, or None (the array's shape).
    sci_substrt, sci_subsize : the science (SUBSTRT1, SUBSTRT2), (SUBSIZE1, SUBSIZE2).
    Returns a view when a cut is needed, the array itself when it already matches.
    Raises ValueError when the science window does not fit inside the reference.
    """
    arr = np.asarray(ref_array)
    if ref_substrt is None:
        ref_substrt = (1, 1)
    if ref_subsize is None:
        ref_subsize = (arr.shape[-1], arr.shape[-2])
    if ref_matches_sci(ref_substrt, ref_subsize, sci_substrt, sci_subsize):
        return arr
    x0 = int(sci_substrt[0]) - int(ref_substrt[0])
    y0 = int(sci_substrt[1]) - int(ref_substrt[1])
    x1 = x0 + int(sci_subsize[0])
    y1 = y0 + int(sci_subsize[1])
    if x0 < 0 or y0 < 0 or x1 > ref_subsize[0] or y1 > ref_subsize[1]:
        raise ValueError(
            f"science window x[{x0}:{x1}] y[{y0}:{y1}] does not fit in the reference "
            f"(SUBSTRT={tuple(ref_substrt)}, SUBSIZE={tuple(ref_subsize)})"
        )
    return arr[..., y0:y1, x0:x1]


def to_detector_frame(data, fastaxis, slowaxis):
    """DMS -> detector orientation (a view): flip by the axis signs, transpose if |FASTAXIS| = 2."""
    if abs(fastaxis) == 1:
        return data[..., :: int(np.sign(slowaxis)), :: int(np.sign(fastaxis))]
    data = data[..., :: int(np.sign(fastaxis)), :: int(np.sign(slowaxis))]
    return np.swapaxes(data, -2, -1)


def to_dms_frame(data, fastaxis, slowaxis):
    """Detector -> DMS orientation (a view); inverse of ``to_detector_frame``."""
    if abs(fastaxis) == 1:
        return data[..., :: int(np.sign(slowaxis)), :: int(np.sign(fastaxis))]
    data = np.swapaxes(data, -2, -1)
    return data[..., :: int(np.sign(fastaxis)), :: int(np.sign(slowaxis))]
