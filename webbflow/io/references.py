"""Open reference files in the JWST formats and cut them to the science subarray."""

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


def _window(meta):
    sub = meta.get("subarray", {})
    if all(sub.get(k) is not None for k in ("xstart", "ystart", "xsize", "ysize")):
        return (int(sub["xstart"]), int(sub["ystart"])), (int(sub["xsize"]), int(sub["ysize"]))
    return None, None


def load_reference(path, reftype, science_meta, science_shape):
    """A reference Product whose image arrays match the science frame ``science_shape``
    (ny, nx). Raises one-line WebbflowErrors naming the file for every mismatch."""
    model_type = REFERENCE_MODELS.get(reftype)
    ref = read_product(path, require=REQUIRED_ARRAYS.get(reftype, ()),
                       model_type=None if reftype == "dark" else model_type)
    if reftype == "dark" and ref.model_type not in ("DarkModel", "DarkMIRIModel", "DarkNirspecModel"):
        raise WebbflowError(path, f"is a {ref.model_type}, not a dark")
    if reftype == "ipc":
        return ref  # kernels are not images of the detector
    sci_start, sci_size = _window(science_meta)
    ny, nx = science_shape
    if sci_start is None:
        sci_start, sci_size = (1, 1), (nx, ny)
    ref_start, ref_size = _window(ref.meta)
    for name in list(ref._lazy) + list(ref._arrays):
        shape = ref.shape(name)
        if len(shape) < 2:
            continue
        if reftype in EXACT_SUBARRAY:
            if shape[-2:] != (ny, nx):
                raise WebbflowError(path, f"{name} frame is {shape[-2]}x{shape[-1]}, the science "
                                          f"subarray is {ny}x{nx}; {reftype} must match exactly")
            continue
        try:
            cut = cut_reference(ref[name], ref_start, ref_size, sci_start, sci_size)
        except ValueError as exc:
            raise WebbflowError(path, f"{name}: {exc}") from None
        if cut.shape[-2:] != (ny, nx):
            raise WebbflowError(path, f"{name} has shape {shape}, which does not cover the "
                                      f"science frame {ny}x{nx}")
        ref[name] = np.ascontiguousarray(cut)
    return ref
