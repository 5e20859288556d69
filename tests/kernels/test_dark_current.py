"""dark_current: kernel vs naive reference and vs stcal (oracle)."""

from types import SimpleNamespace

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_dark_current import naive_subtract_dark
from webbflow.dqflags import PIXEL
from webbflow.steps.dark_current import average_dark_current, subtract_dark

# (nints, ngroups, sci nframes, sci groupgap, dark shape, dark nframes, dark groupgap, intstart)
CASES = [
    (2, 5, 1, 0, (10, 6, 7), 1, 0, 1),          # same readout
    (1, 1, 1, 0, (3, 6, 7), 1, 0, 1),           # one group
    (2, 4, 4, 1, (30, 6, 7), 1, 0, 1),          # frame averaging
    (2, 5, 4, 1, (10, 6, 7), 1, 0, 1),          # averaging + extrapolation
    (1, 12, 1, 0, (10, 6, 7), 1, 0, 1),         # extrapolation, direct
    (3, 5, 1, 0, (2, 10, 6, 7), 1, 0, 1),       # MIRI, more science ints than dark ints
    (3, 4, 2, 0, (2, 12, 6, 7), 1, 0, 1),       # MIRI averaged
    (1, 4, 2, 0, (3, 12, 6, 7), 1, 0, 3),       # MIRI averaged, segment (last dark int = 0s)
    (2, 5, 2, 0, (2, 6, 6, 7), 1, 0, 1),        # MIRI averaged + extrapolated
    (2, 3, 1, 0, (10, 6, 7), 2, 0, 1),          # dark NFRAMES > science: skipped
]


def _case(seed, nints, ngroups, dshape):
    rng = np.random.default_rng(seed)
    ny, nx = dshape[-2:]
    data = rng.normal(1000, 100, (nints, ngroups, ny, nx)).astype(np.float32)
    dark = rng.normal(10, 5, dshape).astype(np.float32)
    dark.reshape(-1)[::17] = np.nan
    ddq_shape = (dshape[0], 1, ny, nx) if len(dshape) == 4 else (ny, nx)
    ddq = rng.choice(np.array([0, 0, 1, 8388608], np.uint32), ddq_shape)
    pdq = rng.integers(0, 4, (ny, nx)).astype(np.uint32)
    return data, pdq, dark, ddq


@pytest.mark.parametrize("case", CASES)
def test_vs_naive(case):
    nints, ngroups, snf, sgg, dshape, dnf, dgg, ist = case
    data, pdq, dark, ddq = _case(ngroups, nints, ngroups, dshape)
    exp = naive_subtract_dark(data, pdq, dark, ddq, snf, sgg, dnf, dgg, ist)
    d0 = dark.copy()
    got = subtract_dark(data.copy(), pdq.copy(), dark, ddq, PIXEL, sci_nframes=snf,
                        sci_groupgap=sgg, dark_nframes=dnf, dark_groupgap=dgg,
                        is_miri=len(dshape) == 4, integration_start=ist)
    assert got[2] == exp[2]
    assert_array_equal(got[0], exp[0])
    assert_array_equal(got[1], exp[1])
    assert_array_equal(dark, d0)


def test_average_dark_current():
    assert (average_dark_current((2, 3), user_value=0.5) == 0.5).all()
    assert (average_dark_current((2, 3), dark_average_scalar=0.25) == 0.25).all()
    a2 = np.full((2, 3), 0.1, np.float32)
    assert average_dark_current((2, 3), dark_average_2d=a2) is a2
    assert (average_dark_current((2, 3), dark_average_2d=np.zeros((2, 3)),
                                 dark_average_scalar=2.0) == 2.0).all()
    assert average_dark_current((2, 4), dark_average_2d=a2) is None
    assert average_dark_current((2, 3)).dtype == np.float32


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES)
def test_oracle_stcal(case):
    from stcal.dark_current import dark_class, dark_sub

    nints, ngroups, snf, sgg, dshape, dnf, dgg, ist = case
    data, pdq, dark, ddq = _case(nints + 7, nints, ngroups, dshape)
    sci = SimpleNamespace(data=data.copy(), groupdq=np.zeros(data.shape, np.uint8),
                          pixeldq=pdq.copy(), err=None, exp_nframes=snf, exp_groupgap=sgg,
                          exp_intstart=ist, cal_step=None)
    drk = dark_class.DarkData()
    drk.data, drk.groupdq = dark.copy(), ddq.copy()
    drk.exp_nframes, drk.exp_ngroups, drk.exp_groupgap = dnf, dshape[-3], dgg
    out, _ = dark_sub.do_correction_data(sci, drk)
    got = subtract_dark(data.copy(), pdq.copy(), dark, ddq, PIXEL, sci_nframes=snf,
                        sci_groupgap=sgg, dark_nframes=dnf, dark_groupgap=dgg,
                        is_miri=len(dshape) == 4, integration_start=ist)
    assert got[2] == out.cal_step
    assert_array_equal(got[0], out.data)
    assert_array_equal(got[1], out.pixeldq)
