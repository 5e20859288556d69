"""persistence (3.0 flag-only): kernel vs naive reference and vs jwst (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_persistence import naive_flag_persistence
from webbflow.dqflags import PIXEL
from webbflow.steps.persistence import flag_persistence, persistence_group_times


def _case(seed, shape):
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 40000, shape).astype(np.float32)
    gdq = np.zeros(shape, np.uint8)
    start = rng.integers(0, shape[1] + 2, (shape[0],) + shape[2:])
    for i, y, x in np.ndindex(shape[0], shape[2], shape[3]):
        gdq[i, start[i, y, x]:, y, x] |= 2
    return data, gdq


# (shape, persistence_time, dn_threshold, dnu, preloaded windows)
CASES = [((2, 5, 6, 7), 30.0, None, False, False), ((3, 4, 5, 5), 12.0, 30000.0, True, True),
         ((1, 1, 4, 4), 100.0, None, False, True), ((2, 2, 3, 3), 5.0, 20000.5, False, False)]


def _times(shape):
    return persistence_group_times(shape[0], shape[1], 60000.5, 12.5, 2.7)


@pytest.mark.parametrize("case", CASES)
def test_vs_naive(case):
    shape, pt, dn, dnu, pre = case
    data, gdq = _case(shape[1], shape)
    t = _times(shape)
    parr = np.zeros(shape[2:])
    if pre:
        parr[0, :] = t[0, 0] + np.array([-5.0, 3.0, 50.0, 500.0, 1.0, 2.0, 7.0][: shape[3]])
    exp = naive_flag_persistence(data, gdq, parr, t, pt, PIXEL, dn, dnu)
    got = flag_persistence(data, gdq.copy(), parr.copy(), t, pt, PIXEL, dn_threshold=dn,
                           persistence_dnu=dnu)
    assert_array_equal(got[0], exp[0])
    assert_array_equal(got[1], exp[1])
    assert flag_persistence(data, gdq, parr, t, None, PIXEL)[2] == "FAILED"


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES)
def test_oracle_jwst(case):
    from stdatamodels.jwst.datamodels import RampModel

    from jwst.persistence.persistence import DataSet

    shape, pt, dn, dnu, pre = case
    data, gdq = _case(shape[0] + 3, shape)
    m = RampModel(data=data.copy(), groupdq=gdq.copy())
    m.meta.exposure.start_time = 60000.5
    m.meta.exposure.integration_time = 12.5
    m.meta.exposure.group_time = 2.7
    t = _times(shape)
    parr = np.zeros(shape[2:])
    if pre:
        parr[-1, :] = t[0, -1] + 4.0
    ds = DataSet(m, None, persistence_time=pt, dn_threshold=dn, persistence_array=parr.copy(),
                 persistence_dnu=dnu)
    out, _ = ds.do_all()
    got = flag_persistence(data, gdq.copy(), parr.copy(), t, pt, PIXEL, dn_threshold=dn,
                           persistence_dnu=dnu)
    assert_array_equal(got[0], out.groupdq)
    assert_array_equal(got[1], ds.persistence_array)
