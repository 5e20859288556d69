"""bkg_subtract for imaging (jwst background step, the branch for exposures with
background members in their level-2 association).

The background exposures' rates are combined per pixel (sigma-clipped mean across the
exposures, :func:`webbflow.kernels.background.clipped_mean_stack`) and subtracted from
the science SCI; their DQ flags are OR-ed into the science DQ. ERR and the variances
are left as they are, as officially (the combined background's error is computed there
but not propagated). The combined image is rounded to float32 before the subtraction,
as the official ImageModel holding it stores it.

Backgrounds and science are placed by their subarray windows (SUBSTRT/SUBSIZE); when
the windows differ, the overlapping part of a background is put at the start of the
science array, as the official step does (equal windows, the normal case, line up).
"""

import logging

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.io import read_product
from webbflow.kernels.background import clipped_mean_stack

log = logging.getLogger("webbflow.bkg_subtract")

__all__ = ["subarray_window", "combine_backgrounds", "subtract_backgrounds"]


def subarray_window(meta, shape, source):
    """(row start, row stop, column start, column stop) on the full detector, 0-based."""
    sub = meta.get("subarray", {})
    keys = [sub.get(k) for k in ("xstart", "ystart", "xsize", "ysize")]
    if None in keys:
        full = (1024, 1032) if meta.get("instrument", {}).get("name") == "MIRI" else (2048, 2048)
        if tuple(shape[-2:]) != full:
            raise WebbflowError(source, "SUBSTRT1/2 or SUBSIZE1/2 missing from a subarray "
                                        "exposure: cannot place it against the backgrounds")
        keys = [1, 1, full[1], full[0]]
    xstart, ystart, xsize, ysize = (int(k) for k in keys)
    return ystart - 1, ystart - 1 + ysize, xstart - 1, xstart - 1 + xsize


def combine_backgrounds(meta, shape, background_paths, *, sigma=3.0, maxiters=None,
                        source=None):
    """The combined background on the science exposure's pixels: (float32 SCI, uint32 DQ
    OR-ed over the backgrounds)."""
    window = subarray_window(meta, shape, source)
    stack = np.full((len(background_paths),) + tuple(shape), np.nan, np.float32)
    dq = np.zeros(shape, np.uint32)
    for k, path in enumerate(background_paths):
        with read_product(path, require=("data", "dq")) as background:
            data_shape = background.shape("data")
            if len(data_shape) != 2:
                raise WebbflowError(path, f"a {len(data_shape)}-D background; bkg_subtract "
                                          "takes 2-D rate backgrounds")
            if background.shape("dq") != data_shape:
                raise WebbflowError(path, f"DQ {background.shape('dq')} does not match SCI "
                                          f"{data_shape}")
            other = subarray_window(background.meta, data_shape, path)
            rows = (max(window[0], other[0]), min(window[1], other[1]))
            cols = (max(window[2], other[2]), min(window[3], other[3]))
            if rows[1] <= rows[0] or cols[1] <= cols[0]:
                log.info("%s does not overlap the science exposure", path)
                continue
            cut = (slice(rows[0] - other[0], rows[1] - other[0]),
                   slice(cols[0] - other[2], cols[1] - other[2]))
            data = background["data"][cut]
            height, width = data.shape
            stack[k, :height, :width] = data
            dq[:height, :width] |= background["dq"][cut].astype(np.uint32)
        log.info("background %s accumulated", path)
    mean = clipped_mean_stack(stack, float(sigma), -1 if maxiters is None else int(maxiters))
    return mean.astype(np.float32), dq


def subtract_backgrounds(arrays, meta, background_paths, options, source=None):
    """Subtract the combined background from ``arrays`` (SCI, DQ) in place; records
    cal_step.bkg_subtract."""
    data = arrays["data"]
    background, dq = combine_backgrounds(meta, data.shape, background_paths,
                                         sigma=options.get("sigma", 3.0),
                                         maxiters=options.get("maxiters"), source=source)
    data -= background
    arrays["dq"] |= dq
    meta.setdefault("cal_step", {})["bkg_subtract"] = "COMPLETE"
    log.info("%s: subtracted the combined background of %d exposures", source,
             len(background_paths))
