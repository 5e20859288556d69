"""lastframe / firstframe: vs explicit expectations and vs jwst (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from webbflow.dqflags import PIXEL
from webbflow.steps.firstframe import flag_firstframe
from webbflow.steps.lastframe import flag_lastframe


def _gdq(ngroups, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.choice(np.array([0, 0, 2, 4], np.uint8), (2, ngroups, 4, 5))
    g[:, 2:] |= g[:, 2:3] & 2          # a few ramps saturate from group index 2 on
    return g


@pytest.mark.parametrize("ngroups", [1, 2, 3, 5])
def test_lastframe(ngroups):
    g = _gdq(ngroups)
    exp = g.copy()
    if ngroups > 2:
        exp[:, -1] |= 1
    got, status = flag_lastframe(g.copy(), PIXEL)
    assert_array_equal(got, exp)
    assert status == ("COMPLETE" if ngroups > 2 else "SKIPPED")


@pytest.mark.oracle
@pytest.mark.parametrize("ngroups", [2, 3, 6])
@pytest.mark.parametrize("bright", [False, True])
def test_oracle_first_last(ngroups, bright):
    from stdatamodels.jwst.datamodels import RampModel

    from jwst.firstframe.firstframe_sub import do_correction as first
    from jwst.lastframe.lastframe_sub import do_correction as last

    g = _gdq(ngroups, ngroups)
    pdq = np.zeros((4, 5), np.uint32)
    m = RampModel(data=np.zeros(g.shape, np.float32), groupdq=g.copy(), pixeldq=pdq.copy())
    m = first(m, bright_use_group1=bright)
    got_g, got_p, _ = flag_firstframe(g.copy(), pdq.copy(), PIXEL, bright_use_group1=bright)
    assert_array_equal(got_g, m.groupdq)
    assert_array_equal(got_p, m.pixeldq)
    m2 = last(RampModel(data=np.zeros(g.shape, np.float32), groupdq=g.copy()))
    assert_array_equal(flag_lastframe(g.copy(), PIXEL)[0], m2.groupdq)
