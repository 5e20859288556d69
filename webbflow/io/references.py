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
        self._kept = None  # {read: array} once keep_reads() is asked
        self._kept_budget = 0

    def keep_reads(self, budget_bytes):
        """Keep what :meth:`rows` reads, up to ``budget_bytes`` in all, and hand out copies
        of it after: a run that calls the steps once per integration chunk reads the same
        rows of a reference every chunk, and decoding them from the file costs more than a
        copy (a TSO dark: 25 chunks of 45 planes)."""
        self._kept = {}
        self._kept_budget = int(budget_bytes)

    def forget_reads(self):
        """Stop keeping reads and let the kept ones go."""
        self._kept = None
        self._kept_budget = 0

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
        key = (name, start, stop, None if dtype is None else np.dtype(dtype).str, first)
        if self._kept is not None and key in self._kept:
            return self._kept[key].copy()
        block = self.product.rows(name, self._y0 + start, self._y0 + stop, dtype, first=first)
        if self._x0 or block.shape[-1] != self._nx:
            block = np.ascontiguousarray(block[..., self._x0:self._x0 + self._nx])
        if self._kept is not None and block.nbytes <= self._kept_budget:
            self._kept_budget -= block.nbytes
            self._kept[key] = block.copy()
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
    if max(ny, nx) > 2048:
        return _irs2_reference(path, ref, reftype, science_shape)
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


# NIRSpec IRS2 (frames 3200 x 2048 with the interleaved reference pixels): MASK and
# SUPERBIAS come in that layout, SATURATION in the 2048 x 2048 of the normal pixels
# (applied to those only); every later reference follows the refpix step, which removes
# the interleaved pixels.
IRS2_LAYOUT = ("mask", "superbias")
IRS2_NORMAL = ("saturation",)


def _irs2_reference(path, ref, reftype, science_shape):
    ny, nx = science_shape
    want = {"mask": (ny, nx), "superbias": (ny, nx), "saturation": (2048, 2048)}.get(reftype)
    if want is None:
        raise WebbflowError(path, f"{reftype} reference asked for an IRS2 frame ({ny}x{nx}); "
                                  "refpix must remove the interleaved reference pixels first")
    for name in list(ref._lazy) + list(ref._arrays):
        shape = ref.shape(name)
        if len(shape) >= 2 and shape[-2:] != want:
            raise WebbflowError(path, f"{name} has shape {shape}; an IRS2 exposure needs "
                                      f"{reftype} frames of {want[0]}x{want[1]}")
    return Reference(ref, reftype, want, 0, 0)


def load_irs2_reference(path):
    """alpha, beta (4, 712*2048) complex64 and the DQ table (output, odd_even, mask) of a
    REFPIX (IRS2Model) reference; one-line WebbflowErrors for anything else."""
    from astropy.io import fits

    from webbflow.steps.irs2 import ALPHA_BETA_ROWS, read_coefficients

    try:
        with fits.open(path, memmap=False) as hdul:
            names = [h.name for h in hdul]
            if "IRS2" not in names:
                raise WebbflowError(path, "REFPIX reference has no IRS2 table extension")
            table = hdul["IRS2"].data
            columns = [f"{p}_{k}" for p in ("alpha", "beta") for k in range(4)]
            missing = [c for c in columns if c not in table.columns.names]
            if missing:
                raise WebbflowError(path, f"REFPIX IRS2 table lacks columns {missing}")
            if len(table) != ALPHA_BETA_ROWS:
                raise WebbflowError(path, f"REFPIX IRS2 table has {len(table)} rows; the "
                                          f"IRS2 readout needs 2 x 712 x 2048 = {ALPHA_BETA_ROWS}")
            cols = {c: np.asarray(table[c], dtype=np.float32) for c in columns}
            dq = None
            if "DQ" in names and hdul["DQ"].data is not None and len(hdul["DQ"].data):
                d = hdul["DQ"].data
                dq = list(zip(np.asarray(d["output"]), np.asarray(d["odd_even"]),
                              np.asarray(d["mask"])))
    except OSError as exc:
        raise WebbflowError(path, f"cannot read REFPIX reference: {exc}") from None
    alpha, beta = read_coefficients(cols)
    return alpha, beta, dq
