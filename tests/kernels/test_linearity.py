"""linearity: kernel vs naive reference and vs stcal (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_linearity import naive_correct_linearity
from webbflow.dqflags import PIXEL
from webbflow.steps.linearity import correct_linearity


def _case(seed, shape, ncoef=5):
    rng = np.random.default_rng(seed)
    ny, nx = shape[-2:]
    data = rng.uniform(-100, 40000, shape).astype(np.float32)
    data[0, 0, 0, 0] = np.nan
    c = np.zeros((ncoef, ny, nx), np.float32)
    c[0] = rng.normal(0, 2, (ny, nx))
    c[1] = rng.normal(1, 0.01, (ny, nx))
    for k in range(2, ncoef):
        c[k] = rng.normal(0, 10.0 ** (-4 * k + 2), (ny, nx))
    c[min(2, ncoef - 1), 1 % ny, 1 % nx] = np.nan
    c[1, 2 % ny, 0] = 0.0
    ldq = np.zeros((ny, nx), np.uint32)
    ldq[0, -1] = PIXEL["NO_LIN_CORR"]
    ldq[-1, 0] = 1
    gdq = np.zeros(shape, np.uint8)
    gdq[:, shape[1] // 2:, -1, -1] = 2
    pdq = rng.integers(0, 4, (ny, nx)).astype(np.uint32)
    z = data[:, 0].copy()
    z[0, -1, -1] = 0.0
    return data, gdq, pdq, c, ldq, z


@pytest.mark.parametrize("shape,ncoef", [((1, 1, 3, 4), 2), ((2, 3, 5, 6), 5), ((1, 2, 4, 4), 3),
                                         ((3, 4, 6, 5), 7)])
def test_vs_naive(shape, ncoef):
    data, gdq, pdq, c, ldq, z = _case(ncoef, shape, ncoef)
    exp = naive_correct_linearity(data, gdq, pdq, c, ldq, PIXEL, z)
    c0 = c.copy()
    got = correct_linearity(data.copy(), gdq, pdq.copy(), c, ldq, PIXEL, zeroframe=z.copy())
    for a, b in zip(got, exp):
        assert_array_equal(a, b)
    assert_array_equal(c, c0)


@pytest.mark.oracle
@pytest.mark.parametrize("shape,ncoef", [((2, 5, 30, 40), 5), ((1, 3, 7, 9), 4), ((1, 1, 4, 4), 2)])
def test_oracle_stcal(shape, ncoef):
    from stcal.linearity.linearity import linearity_correction

    data, gdq, pdq, c, ldq, z = _case(11, shape, ncoef)
    exp = linearity_correction(data.copy(), gdq, pdq.copy(), c.copy(), ldq.copy(), PIXEL,
                               zframe=z.copy())
    got = correct_linearity(data.copy(), gdq, pdq.copy(), c, ldq, PIXEL, zeroframe=z.copy())
    for a, b in zip(got, exp):
        assert_array_equal(a, b)


# ----------------------------------------------------------------- read-level (INV_COEFFS)
def _inverse(c):
    ic = np.zeros_like(c)
    with np.errstate(divide="ignore"):
        ic[1] = 1 / c[1]
    ic[2] = -c[2]
    ic[0] = -c[0]
    ic[2, 3 % c.shape[1], 0] = np.nan                # bad inverse only: NO_LIN_CORR too
    return ic


@pytest.mark.parametrize("shape,nframes", [((1, 2, 4, 5), 2), ((2, 4, 5, 6), 4), ((1, 6, 4, 4), 3)])
def test_reads_vs_naive(shape, nframes):
    from tests.reference.naive_linearity import naive_correct_linearity_reads
    from webbflow.steps.saturation import make_read_pattern

    data, gdq, pdq, c, ldq, _ = _case(nframes, shape, 3)
    data = np.abs(data)
    gdq[0, :, 1, 0] = 2                              # saturated throughout
    ic = _inverse(c)
    rp = make_read_pattern(shape[1], nframes)
    exp = naive_correct_linearity_reads(data, gdq, pdq, c, ic, ldq, PIXEL, rp)
    got = correct_linearity(data.copy(), gdq, pdq.copy(), c, ldq, PIXEL, inv_coeffs=ic,
                            read_pattern=rp)
    assert_array_equal(got[0], exp[0])
    assert_array_equal(got[1], exp[1])


@pytest.mark.oracle
@pytest.mark.parametrize("shape,nframes", [((2, 5, 30, 40), 4), ((1, 3, 7, 9), 2),
                                           ((2, 8, 10, 12), 5)])
def test_oracle_stcal_reads(shape, nframes):
    from stcal.linearity.linearity import linearity_correction

    from webbflow.steps.saturation import make_read_pattern

    data, gdq, pdq, c, ldq, z = _case(13, shape, 5)
    data = np.abs(data)
    gdq[0, 1:, 2, 2] = 2
    ic = _inverse(c)
    rp = make_read_pattern(shape[1], nframes)
    with np.errstate(invalid="ignore", over="ignore"):
        exp = linearity_correction(data.copy(), gdq, pdq.copy(), c.copy(), ldq.copy(), PIXEL,
                                   zframe=z.copy(), ilin_coeffs=ic.copy(), read_pattern=rp)
    got = correct_linearity(data.copy(), gdq, pdq.copy(), c, ldq, PIXEL, zeroframe=z.copy(),
                            inv_coeffs=ic, read_pattern=rp)
    for a, b in zip(got, exp):
        assert_array_equal(a, b)
