"""reset (MIRI): kernel vs naive reference and vs jwst.reset (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_reset import naive_subtract_reset
from webbflow.dqflags import PIXEL
from webbflow.steps.reset import subtract_reset

# (data nints, ngroups, reset nints, reset ngroups, integration_start)
CASES = [(1, 1, 1, 3, 1), (3, 5, 2, 3, 1), (2, 2, 3, 6, 1), (2, 4, 2, 4, 2), (1, 6, 3, 2, 4)]


def _case(seed, nints, ngroups, rn, rg):
    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 50, (nints, ngroups, 5, 6)).astype(np.float32)
    reset = rng.normal(3, 2, (rn, rg, 5, 6)).astype(np.float32)
    reset.reshape(-1)[::11] = np.nan
    rdq = rng.choice(np.array([0, 0, 1, 4], np.uint32), (5, 6))
    pdq = rng.integers(0, 3, (5, 6)).astype(np.uint32)
    return data, pdq, reset, rdq


@pytest.mark.parametrize("case", CASES)
def test_vs_naive(case):
    n, ng, rn, rg, ist = case
    data, pdq, reset, rdq = _case(ng, n, ng, rn, rg)
    exp = naive_subtract_reset(data, pdq, reset, rdq, ist)
    got = subtract_reset(data.copy(), pdq.copy(), reset, rdq, PIXEL, integration_start=ist,
                         nints=ist - 1 + n)
    assert_array_equal(got[0], exp[0])
    assert_array_equal(got[1], exp[1])


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES)
def test_oracle_jwst(case):
    from stdatamodels.jwst.datamodels import RampModel, ResetModel

    from jwst.reset.reset_sub import do_correction

    n, ng, rn, rg, ist = case
    data, pdq, reset, rdq = _case(n + 5, n, ng, rn, rg)
    m = RampModel(data=data.copy(), pixeldq=pdq.copy())
    m.meta.exposure.nints, m.meta.exposure.ngroups = ist - 1 + n, ng
    m.meta.exposure.integration_start = ist
    r = ResetModel(data=reset.copy(), dq=rdq.copy())
    r.meta.exposure.nints, r.meta.exposure.ngroups = rn, rg
    out = do_correction(m, r)
    got = subtract_reset(data.copy(), pdq.copy(), reset, rdq, PIXEL, integration_start=ist,
                         nints=ist - 1 + n)
    assert_array_equal(got[0], out.data)
    assert_array_equal(got[1], out.pixeldq)
