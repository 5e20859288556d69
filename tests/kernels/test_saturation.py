"""saturation: kernel vs naive reference and vs stcal (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_saturation import naive_flag_saturated
from webbflow.dqflags import PIXEL
from webbflow.steps.saturation import flag_saturated, make_read_pattern

DNU, SAT, ADF = 1, 2, 64


def _case(seed, nints, ngroups, ny, nx, preexisting_sat=True):
    rng = np.random.default_rng(seed)
    base = rng.uniform(-100, 1500, (nints, 1, ny, nx))
    rate = rng.uniform(0, 600, (nints, 1, ny, nx))
    data = (base + rate * np.arange(ngroups)[None, :, None, None]).astype(np.float32)
    data[0, :, 1, 1] = 70000.0                      # saturated from group 0
    data[0, :, 2, 3] = np.nan
    data[:, :, -1, -1] = 0.0                        # A/D floor
    thr = rng.uniform(1200, 3000, (ny, nx)).astype(np.float32)
    thr[3, 1] = np.nan
    sdq = np.zeros((ny, nx), np.uint32)
    sdq[2, 2] = PIXEL["NO_SAT_CHECK"] | 4
    sdq[4 % ny, 0] = 1
    gdq = np.zeros(data.shape, np.uint8)
    if preexisting_sat:  # a pre-existing flag gets grown (the per-group path)
        gdq[-1, 0, 0, 2] = SAT
    gdq[0, -1, 3, 3] = DNU
    pdq = rng.integers(0, 8, (ny, nx)).astype(np.uint32)
    bias = rng.uniform(0, 300, (ny, nx)).astype(np.float32)
    bias[0, 0] = np.nan
    z = data[:, 0].copy()
    return data, gdq, pdq, thr, sdq, bias, z


CASES = [(1, 1, 7, 6, 1, 1), (1, 2, 6, 8, 1, 2), (2, 3, 8, 7, 2, 1), (2, 6, 9, 10, 4, 1),
         (1, 5, 12, 9, 3, 2), (2, 4, 7, 7, 1, 0)]


@pytest.mark.parametrize("nints,ngroups,ny,nx,nframes,grow", CASES)
@pytest.mark.parametrize("use_readpatt", [True, False])
@pytest.mark.parametrize("preexisting_sat", [True, False])
def test_vs_naive(nints, ngroups, ny, nx, nframes, grow, use_readpatt, preexisting_sat):
    data, gdq, pdq, thr, sdq, bias, z = _case(ngroups * 7 + nx, nints, ngroups, ny, nx,
                                              preexisting_sat)
    rp = make_read_pattern(ngroups, nframes) if use_readpatt else None
    exp = naive_flag_saturated(data, gdq, pdq, thr, sdq, PIXEL, grow, rp, bias, z)
    thr0, sdq0 = thr.copy(), sdq.copy()
    got = flag_saturated(data.copy(), gdq.copy(), pdq.copy(), thr, sdq, PIXEL,
                         n_pix_grow_sat=grow, read_pattern=rp, bias=bias, zeroframe=z.copy())
    for a, b in zip(got, exp):
        assert_array_equal(a, b)
    assert_array_equal(thr, thr0)                  # references are not mutated
    assert_array_equal(sdq, sdq0)
    assert (got[0][0, :, 1, 1] & SAT).all()
    assert (got[0][:, :, -1, -1] & (ADF | DNU) == ADF | DNU).all()


@pytest.mark.oracle
@pytest.mark.parametrize("nints,ngroups,ny,nx,nframes,grow", CASES + [(2, 8, 40, 50, 5, 1)])
@pytest.mark.parametrize("preexisting_sat", [True, False])
def test_oracle_stcal(nints, ngroups, ny, nx, nframes, grow, preexisting_sat):
    from stcal.saturation.saturation import flag_saturated_pixels

    data, gdq, pdq, thr, sdq, bias, z = _case(ngroups + nx, nints, ngroups, ny, nx,
                                              preexisting_sat)
    if ny > 12:
        data[:, 2:, 20:23, 30:33] = np.maximum(data[:, 2:, 20:23, 30:33], 2500)   # bright source
        data[0, 1, 25, 25] = data[0, 0, 25, 25] + 0.9 * (thr[25, 25] - data[0, 0, 25, 25])
        data[0, 2:, 25, 25] = 9e4
    rp = make_read_pattern(ngroups, nframes)
    exp = flag_saturated_pixels(data.copy(), gdq.copy(), pdq.copy(), thr.copy(), sdq.copy(),
                                65535, PIXEL, n_pix_grow_sat=grow, zframe=z.copy(),
                                read_pattern=rp, bias=bias.copy())
    got = flag_saturated(data.copy(), gdq.copy(), pdq.copy(), thr, sdq, PIXEL,
                         n_pix_grow_sat=grow, read_pattern=rp, bias=bias, zeroframe=z.copy())
    for a, b in zip(got, exp):
        assert_array_equal(a, b)
