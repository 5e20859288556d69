"""dq_init: kernel vs naive reference and vs jwst.dq_init (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_dq_init import naive_initialize_dq
from webbflow.dqflags import PIXEL
from webbflow.steps.dq_init import initialize_dq
from webbflow.steps.subarray import cut_reference


def _arrays(seed, shape):
    rng = np.random.default_rng(seed)
    gdq = rng.integers(0, 256, shape).astype(np.uint8)
    pdq = rng.integers(0, 2**32, shape[-2:], dtype=np.uint64).astype(np.uint32)
    mask = rng.choice(np.array([0, 1, 2**31, 2**31 + 1, 1024 | 1, 4096], np.uint32), shape[-2:])
    return gdq, pdq, mask


@pytest.mark.parametrize("shape", [(1, 1, 5, 7), (2, 3, 9, 4), (3, 2, 16, 16)])
def test_vs_naive(shape):
    gdq, pdq, mask = _arrays(sum(shape), shape)
    exp = naive_initialize_dq(gdq, pdq, mask, PIXEL)
    got = initialize_dq(gdq.copy(), pdq.copy(), mask, PIXEL)
    assert_array_equal(got[0], exp[0])
    assert_array_equal(got[1], exp[1])


def test_user_dq_and_shape_check():
    gdq, pdq, mask = _arrays(1, (1, 2, 4, 4))
    user = np.zeros((4, 4), np.uint32)
    user[1, 1] = 1
    g, p = initialize_dq(gdq.copy(), pdq.copy(), mask, PIXEL, user_dq=user)
    assert g[0, :, 1, 1].tolist() == [gdq[0, 0, 1, 1] | 1, gdq[0, 1, 1, 1] | 1]
    with pytest.raises(ValueError):
        initialize_dq(gdq, pdq, mask[:3], PIXEL)


@pytest.mark.oracle
def test_oracle_subarray():
    from stdatamodels.jwst.datamodels import MaskModel, RampModel

    from jwst.dq_init.dq_initialization import do_dqinit

    rng = np.random.default_rng(3)
    full = rng.choice(np.array([0, 1, 2**31, 1 | 2048, 8], np.uint32), (64, 80))
    shape = (2, 3, 20, 30)
    gdq = rng.integers(0, 4, shape).astype(np.uint8)
    pdq = np.zeros(shape[-2:], np.uint32)
    sci = RampModel(data=np.zeros(shape, np.float32), groupdq=gdq.copy(), pixeldq=pdq.copy())
    sci.meta.subarray.xstart, sci.meta.subarray.ystart = 11, 7
    sci.meta.subarray.xsize, sci.meta.subarray.ysize = 30, 20
    sci.meta.exposure.type = "NRC_IMAGE"
    ref = MaskModel(dq=full.copy())
    ref.meta.subarray.xstart, ref.meta.subarray.ystart = 1, 1
    ref.meta.subarray.xsize, ref.meta.subarray.ysize = 80, 64
    ref.meta.instrument.name = "NIRCAM"
    out = do_dqinit(sci, ref)
    mask = cut_reference(full, (1, 1), (80, 64), (11, 7), (30, 20))
    g, p = initialize_dq(gdq.copy(), pdq.copy(), mask, PIXEL)
    assert_array_equal(g, out.groupdq)
    assert_array_equal(p, out.pixeldq)
