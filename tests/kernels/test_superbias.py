"""superbias: kernel vs naive reference and vs jwst.superbias.bias_sub (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_superbias import naive_subtract_superbias
from webbflow.dqflags import PIXEL
from webbflow.steps.subarray import cut_reference
from webbflow.steps.superbias import subtract_superbias


def _case(seed, shape):
    rng = np.random.default_rng(seed)
    data = rng.normal(12000, 300, shape).astype(np.float32)
    data[0, 0, 0, 0] = np.nan
    bias = rng.normal(11000, 200, shape[-2:]).astype(np.float32)
    bias[1, 1] = np.nan
    bdq = rng.choice(np.array([0, 0, 0, 1, 4194304], np.uint32), shape[-2:])
    pdq = rng.integers(0, 4, shape[-2:]).astype(np.uint32)
    z = data[:, 0].copy()
    z[0, 2, 2] = 0.0
    return data, pdq, bias, bdq, z


@pytest.mark.parametrize("shape", [(1, 1, 4, 5), (2, 3, 8, 6), (1, 2, 3, 9)])
def test_vs_naive(shape):
    data, pdq, bias, bdq, z = _case(3, shape)
    exp = naive_subtract_superbias(data, pdq, bias, bdq, z)
    got = subtract_superbias(data.copy(), pdq.copy(), bias, bdq, PIXEL, zeroframe=z.copy())
    for a, b in zip(got, exp):
        assert_array_equal(a, b)
    assert got[2][0, 2, 2] == 0.0
    assert np.isnan(bias[1, 1])            # the reference keeps its NaN (not mutated)


@pytest.mark.oracle
def test_oracle_jwst_subarray():
    from stdatamodels.jwst.datamodels import RampModel, SuperBiasModel

    from jwst.superbias.bias_sub import do_correction

    full = _case(5, (1, 1, 40, 48))
    data, pdq, _, _, z = _case(6, (2, 3, 16, 20))
    bias_full, bdq_full = full[2], full[3]
    sci = RampModel(data=data.copy(), pixeldq=pdq.copy(), zeroframe=z.copy(),
                    groupdq=np.zeros(data.shape, np.uint8))
    sci.meta.exposure.zero_frame = True
    sci.meta.subarray.xstart, sci.meta.subarray.ystart = 5, 9
    sci.meta.subarray.xsize, sci.meta.subarray.ysize = 20, 16
    ref = SuperBiasModel(data=bias_full.copy(), dq=bdq_full.copy())
    ref.meta.subarray.xstart, ref.meta.subarray.ystart = 1, 1
    ref.meta.subarray.xsize, ref.meta.subarray.ysize = 48, 40
    ref.meta.instrument.name = "NIRCAM"
    out = do_correction(sci, ref)
    b = cut_reference(bias_full, (1, 1), (48, 40), (5, 9), (20, 16))
    q = cut_reference(bdq_full, (1, 1), (48, 40), (5, 9), (20, 16))
    got = subtract_superbias(data.copy(), pdq.copy(), b, q, PIXEL, zeroframe=z.copy())
    assert_array_equal(got[0], out.data)
    assert_array_equal(got[1], out.pixeldq)
    assert_array_equal(got[2], out.zeroframe)
