"""rscd: kernel vs naive reference and vs jwst.rscd (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_rscd import naive_flag_rscd
from webbflow.dqflags import PIXEL
from webbflow.steps.rscd import flag_rscd

SAT = 2


def _gdq(seed, nints, ngroups, ny=6, nx=7):
    """Monotonic saturation (as after the saturation step) starting at random groups."""
    rng = np.random.default_rng(seed)
    g = rng.choice(np.array([0, 0, 0, 4, 1], np.uint8), (nints, ngroups, ny, nx))
    start = rng.integers(0, ngroups + 3, (nints, ny, nx))
    for idx in np.ndindex(nints, ny, nx):
        i, y, x = idx
        g[i, start[idx]:, y, x] |= SAT
    return g


CASES = [(1, 2, 3, 3), (2, 4, 2, 2), (3, 6, 2, 4), (2, 10, 4, 3), (3, 12, -1, 5), (1, 9, 4, 2),
         (4, 8, 0, 0)]


@pytest.mark.parametrize("nints,ngroups,n1,n2", CASES)
@pytest.mark.parametrize("intstart", [1, 3])
def test_vs_naive(nints, ngroups, n1, n2, intstart):
    g = _gdq(ngroups * 3 + nints, nints, ngroups)
    pdq = np.zeros(g.shape[-2:], np.uint32)
    exp = naive_flag_rscd(g, pdq, n1, n2, PIXEL, nints=nints + 2, intstart=intstart)
    got = flag_rscd(g.copy(), pdq.copy(), n1, n2, PIXEL, nints=nints + 2,
                    integration_start=intstart)
    assert_array_equal(got[0], exp[0])
    assert_array_equal(got[1], exp[1])


@pytest.mark.oracle
@pytest.mark.parametrize("nints,ngroups,n1,n2", CASES)
@pytest.mark.parametrize("intstart", [None, 2])
def test_oracle_jwst(nints, ngroups, n1, n2, intstart):
    from stdatamodels.jwst.datamodels import RampModel

    from jwst.rscd.rscd_sub import correction_skip_groups

    g = _gdq(ngroups + nints, nints, ngroups, 12, 10)
    m = RampModel(data=np.zeros(g.shape, np.float32), groupdq=g.copy(),
                  pixeldq=np.zeros(g.shape[-2:], np.uint32))
    m.meta.exposure.ngroups, m.meta.exposure.nints = ngroups, nints
    m.meta.exposure.integration_start = intstart
    skip1 = 1 if n1 < 0 else n1
    out = correction_skip_groups(m, skip1, n2)
    got = flag_rscd(g.copy(), np.zeros(g.shape[-2:], np.uint32), n1, n2, PIXEL, nints=nints,
                    integration_start=intstart)
    assert_array_equal(got[0], out.groupdq)
    assert_array_equal(got[1], out.pixeldq)
    assert got[2] == out.meta.cal_step.rscd
