"""ipc: kernel vs naive reference and vs jwst.ipc (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_ipc import naive_correct_ipc
from webbflow.steps.ipc import correct_ipc, ipc_reference_pixels
from webbflow.steps.subarray import cut_reference


def _kernel(seed, nk, per_pixel_shape=None):
    rng = np.random.default_rng(seed)
    shape = (nk, nk) if per_pixel_shape is None else (nk, nk) + per_pixel_shape
    k = rng.uniform(-0.02, 0.02, shape).astype(np.float32)
    k[nk // 2, nk // 2] = np.float32(1.05)
    return k


# (instrument, frame shape, xstart, ystart, kernel size, per-pixel)
CASES = [
    ("NIRCAM", (12, 14), 1, 1, 3, False),          # subarray in the corner: 4 ref rows/cols
    ("NIRCAM", (10, 9), 2040, 2040, 3, False),     # top/right corner
    ("NIRCAM", (9, 11), 100, 200, 5, False),       # no reference pixels
    ("NIRCAM", (10, 10), 1, 3, 3, True),
    ("MIRI", (8, 12), 1, 1, 3, False),
    ("MIRI", (8, 12), 1021, 5, 3, True),
]


def _data(seed, frame, nints=2, ngroups=2):
    rng = np.random.default_rng(seed)
    d = rng.normal(500, 100, (nints, ngroups) + frame).astype(np.float32)
    d[0, 0, 5, 5] = np.nan
    return d


@pytest.mark.parametrize("case", CASES)
def test_vs_naive(case):
    instr, frame, x0, y0, nk, pp = case
    data = _data(nk, frame)
    k = _kernel(1, nk, frame if pp else None)
    nref = ipc_reference_pixels(instr, x0, y0, frame[1], frame[0])
    exp = naive_correct_ipc(data, k, nref)
    got = correct_ipc(data.copy(), k, instrument=instr, xstart=x0, ystart=y0)
    assert_array_equal(got, exp)


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES)
def test_oracle_jwst(case):
    from stdatamodels.jwst.datamodels import IPCModel, RampModel

    from jwst.ipc.ipc_corr import do_correction

    instr, frame, x0, y0, nk, pp = case
    full = (1024, 1032) if instr == "MIRI" else (2048, 2048)
    data = _data(nk + 1, frame)
    kfull = _kernel(2, nk, full if pp else None)
    m = RampModel(data=data.copy())
    m.meta.instrument.name = instr
    m.meta.instrument.detector = "MIRIMAGE" if instr == "MIRI" else "NRCA1"
    m.meta.subarray.xstart, m.meta.subarray.ystart = x0, y0
    m.meta.subarray.xsize, m.meta.subarray.ysize = frame[1], frame[0]
    m.meta.exposure.nframes, m.meta.exposure.groupgap = 1, 0
    out = do_correction(m, IPCModel(data=kfull.copy()))
    k = kfull if not pp else cut_reference(kfull, None, None, (x0, y0), (frame[1], frame[0]))
    got = correct_ipc(data.copy(), k, instrument=instr, xstart=x0, ystart=y0)
    assert_array_equal(got, out.data)
