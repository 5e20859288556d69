"""group_scale and gain_scale: vs explicit float32 expectations and vs jwst (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from webbflow.steps.gain_scale import scale_gain
from webbflow.steps.group_scale import group_scale_needed, scale_groups


def test_skip_rules():
    assert not group_scale_needed(None, 4)
    assert not group_scale_needed(4, None)
    assert group_scale_needed(3, None)
    assert not group_scale_needed(4, 4)
    assert group_scale_needed(5, 8)


@pytest.mark.parametrize("nframes,divisor", [(5, 8), (3, 4), (1, 2)])
def test_scale_groups_vs_naive(nframes, divisor):
    rng = np.random.default_rng(nframes)
    data = rng.normal(100, 30, (2, 3, 5, 6)).astype(np.float32)
    data[0, 0, 0, 0] = np.nan
    exp = data.copy()
    for idx in np.ndindex(exp.shape):
        exp[idx] = np.float32(exp[idx] * np.float32(divisor / nframes))
    assert_array_equal(scale_groups(data.copy(), nframes, divisor), exp)
    view = data.copy()[:, :, :, ::2]                # non-contiguous input still works
    assert_array_equal(scale_groups(view, nframes, divisor), exp[:, :, :, ::2])


@pytest.mark.oracle
def test_oracle_group_scale():
    from stdatamodels.jwst.datamodels import RampModel

    from jwst.group_scale.group_scale import do_correction

    rng = np.random.default_rng(2)
    data = rng.normal(100, 30, (2, 3, 10, 12)).astype(np.float32)
    m = RampModel(data=data.copy())
    m.meta.exposure.nframes, m.meta.exposure.frame_divisor = 5, 8
    do_correction(m)
    assert_array_equal(scale_groups(data.copy(), 5, 8), m.data)


@pytest.mark.oracle
@pytest.mark.parametrize("ndim", [2, 3])
def test_oracle_gain_scale(ndim):
    from stdatamodels.jwst.datamodels import CubeModel, ImageModel

    from jwst.gain_scale.gain_scale import do_correction

    rng = np.random.default_rng(ndim)
    shape = (7, 9) if ndim == 2 else (2, 7, 9)
    arrs = [rng.normal(5, 2, shape).astype(np.float32) for _ in range(4)]
    model = (ImageModel if ndim == 2 else CubeModel)(
        data=arrs[0].copy(), err=arrs[1].copy(), var_poisson=arrs[2].copy(),
        var_rnoise=arrs[3].copy())
    do_correction(model, 1.6107)
    got = scale_gain(*[a.copy() for a in arrs[:2]], 1.6107, arrs[2].copy(), arrs[3].copy())
    for a, b in zip(got, (model.data, model.err, model.var_poisson, model.var_rnoise)):
        assert_array_equal(a, b)
    assert scale_gain(arrs[0], arrs[1], None)[0] is arrs[0]
