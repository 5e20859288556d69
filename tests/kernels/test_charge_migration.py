"""charge_migration: kernel vs naive reference and vs jwst (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_charge_migration import naive_flag_charge_migration
from webbflow.dqflags import PIXEL
from webbflow.steps.charge_migration import flag_charge_migration


def _case(seed, shape):
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 30000, shape).astype(np.float32)
    data = np.sort(data, axis=1)
    data[0, :, 0, 0] = 30000
    data[-1, :, -1, -1] = np.nan
    gdq = rng.choice(np.array([0, 0, 0, 1, 2, 3], np.uint8), shape)
    return data, gdq


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 5, 6, 6), (2, 2, 3, 3), (1, 1, 2, 2)])
@pytest.mark.parametrize("thr", [25000.0, 12345.6])
def test_vs_naive(shape, thr):
    data, gdq = _case(shape[1], shape)
    got, status = flag_charge_migration(data, gdq.copy(), PIXEL, signal_threshold=thr)
    if shape[1] < 3:
        assert status == "SKIPPED"
        assert_array_equal(got, gdq)
    else:
        assert_array_equal(got, naive_flag_charge_migration(data, gdq, PIXEL, thr))


@pytest.mark.oracle
@pytest.mark.parametrize("thr", [25000.0, 12345.6])
def test_oracle_jwst(thr):
    from stdatamodels.jwst.datamodels import RampModel

    from jwst.charge_migration.charge_migration import charge_migration

    data, gdq = _case(4, (2, 6, 20, 24))
    m = charge_migration(RampModel(data=data.copy(), groupdq=gdq.copy()), thr)
    got, _ = flag_charge_migration(data, gdq.copy(), PIXEL, signal_threshold=thr)
    assert_array_equal(got, m.groupdq)
