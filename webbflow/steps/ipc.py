"""ipc: interpixel-capacitance deconvolution with a 2-D or per-pixel 4-D kernel."""

import numpy as np

from webbflow.kernels.ipc import _ipc_cube
from webbflow.steps._checks import check_dtypes

__all__ = ["correct_ipc", "ipc_reference_pixels"]


def ipc_reference_pixels(instrument, xstart, ystart, xsize, ysize):
    """(bottom_rows, top_rows, left_columns, right_columns) of reference pixels in the
    subarray (1-based xstart/ystart), as ``jwst.ipc.ipc_corr.get_num_ref_pixels``."""
    x0 = xstart - 1
    if str(instrument).upper() == "MIRI":
        return 0, 0, max(0, 4 - x0), max(0, x0 + xsize - 1028)
    y0 = ystart - 1
    return (max(0, 4 - y0), max(0, y0 + ysize - 2044), max(0, 4 - x0), max(0, x0 + xsize - 2044))


def correct_ipc(data, kernel, *, instrument="NIRCAM", xstart=1, ystart=1, xsize=None, ysize=None):
    """Convolve every group's science region with the IPC kernel (in place).

    kernel: float32 (nk, nk) or per-pixel (nk, nk, ny, nx) already cut to ``data``'s frame
    (``subarray.cut_reference``). Reference pixels (located from the subarray geometry,
    1-based xstart/ystart) are left unchanged and act as zeros. Whole frames only.
    NIRSpec IRS2: pass the normal pixels only (detector1 does). Returns ``data``.
    """
    check_dtypes(data=(data, np.float32))
    nints, ngroups, ny_all, nx_all = data.shape
    xsize = nx_all if xsize is None else xsize
    ysize = ny_all if ysize is None else ysize
    bottom, top, left, right = ipc_reference_pixels(instrument, xstart, ystart, xsize, ysize)
    k = np.ascontiguousarray(kernel, dtype=np.float32)
    per_pixel = k.ndim == 4
    if per_pixel:
        if k.shape[2:] != (ny_all, nx_all):
            raise ValueError(f"4-D IPC kernel frame {k.shape[2:]} != data frame {(ny_all, nx_all)}")
    elif k.ndim == 2:
        k = k[:, :, np.newaxis, np.newaxis]
    else:
        raise ValueError("IPC kernel must be 2-D or 4-D")
    ny = ny_all - (bottom + top)
    nx = nx_all - (left + right)
    _ipc_cube(data, k, per_pixel, bottom, ny, left, nx)
    return data
