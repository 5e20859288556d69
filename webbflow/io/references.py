"""Open reference files in the JWST formats and cut them to the science subarray.

A :class:`Reference` reads lazily: ``full(name)`` gives an array cut to the science
frame, ``rows(name, y0, y1)`` only the science rows ``y0:y1`` of it, so a 4-D MIRI dark
or reset never has to sit in memory whole.
"""

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.io.products import read_product
from webbflow.steps.subarray import cut_reference

REFERENCE_MODELS = {
    "mask": "MaskModel",
    "saturation": "SaturationModel",
    "superbias": "SuperBiasModel",
    "linearity": "LinearityModel",
    "dark": "DarkModel",
    "gain": "GainModel",
    "readnoise": "ReadnoiseModel",
    "ipc": "IPCModel",
    "reset": "ResetModel",
    "rscd": "RSCDModel",
    "flat": "FlatModel",
    "area": "PixelAreaModel",
}

# arrays each reftype must carry
REQUIRED_ARRAYS = {
    "mask": ("dq",),
    "saturation": ("data",),
    "superbias": ("data",),
    "linearity": ("coeffs",),
    "dark": ("data",),
    "gain": ("data",),
    "readnoise": ("data",),
    "ipc": ("data",),
    "reset": ("data",),
    "rscd": (),
}

# reftypes whose file must be taken for exactly the science subarray, never cut
EXACT_SUBARRAY = ("dark", "reset")
# reftypes whose arrays are not images of the detector
NOT_IMAGES = ("ipc", "rscd")


def _window(meta):
    sub = meta.get("subarray", {})
    if all(sub.get(k) is not None for k in ("xstart", "ystart", "xsize", "ysize")):
        return (int(sub["xstart"]), int(sub["ystart"])), (int(sub["xsize"]), int(sub["ysize"]))
    return None, None


class Reference:
    """A reference product whose image arrays are seen through the science window."""

    def __init__(self, product, reftype, science_shape, x0, y0):
        self.product = product
        self.reftype = reftype
        self.meta = product.meta
        self.tables = product.tables
        self.model_type = product.model_type
        self.path = product.path
        self._ny, self._nx = science_shape
        self._x0, self._y0 = x0, y0

    def has(self, name):
        return self.product.has(name)

    def get(self, dotted, default=None):
        return self.product.get(dotted, default)

    def full(self, name, dtype=None):
        return self.rows(name, 0, self._ny, dtype)

    def rows(self, name, start, stop, dtype=None, first=None):
        """Rows start:stop of the science window; ``first=(i0, i1)`` keeps only that range
        of the first axis (planes of a cube)."""
        if self.reftype in NOT_IMAGES:
            array = self.product[name]
            return array if dtype is None else array.astype(dtype)
        block = self.product.rows(name, self._y0 + start, self._y0 + stop, dtype, first=first)
        if self._x0 or block.shape[-1] != self._nx:
            block = np.ascontiguousarray(block[..., self._x0:self._x0 + self._nx])
        return block

    def close(self):
        self.product.close()


def load_reference(path, reftype, science_meta, science_shape):
    """A :class:`Reference` matching the science frame ``science_shape`` (ny, nx).
    Raises one-line WebbflowErrors naming the file for every mismatch."""
    model_type = REFERENCE_MODELS.get(reftype)
    ref = read_product(path, require=REQUIRED_ARRAYS.get(reftype, ()),
                       model_type=None if reftype == "dark" else model_type)
    if reftype == "dark" and ref.model_type not in ("DarkModel", "DarkMIRIModel", "DarkNirspecModel"):
        raise WebbflowError(path, f"is a {ref.model_type}, not a dark")
    ny, nx = science_shape
    if reftype in NOT_IMAGES:
        return Reference(ref, reftype, science_shape, 0, 0)
    sci_start, sci_size = _window(science_meta)
    if sci_start is None:
        sci_start, sci_size = (1, 1), (nx, ny)
    ref_start, ref_size = _window(ref.meta)
    x0 = y0 = 0
    for name in list(ref._lazy) + list(ref._arrays):
        shape = ref.shape(name)
        if len(shape) < 2:
            continue
        if reftype in EXACT_SUBARRAY:
            if shape[-2:] != (ny, nx):
                raise WebbflowError(path, f"{name} frame is {shape[-2]}x{shape[-1]}, the science "
                                          f"subarray is {ny}x{nx}; {reftype} must match exactly")
            continue
        # the cut-out rule applied to a stand-in of the same shape: checks, no data read
        probe = np.broadcast_to(np.uint8(0), shape[-2:])
        try:
            cut = cut_reference(probe, ref_start, ref_size, sci_start, sci_size)
        except ValueError as exc:
            raise WebbflowError(path, f"{name}: {exc}") from None
        if cut.shape != (ny, nx):
            raise WebbflowError(path, f"{name} has shape {shape}, which does not cover the "
                                      f"science frame {ny}x{nx}")
        if cut.shape != shape[-2:]:
            origin = ref_start or (1, 1)
            x0, y0 = sci_start[0] - origin[0], sci_start[1] - origin[1]
    return Reference(ref, reftype, science_shape, x0, y0)
