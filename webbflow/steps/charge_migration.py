"""charge_migration: flag groups above a signal threshold (and their 4 neighbours)."""

import numpy as np

from webbflow.kernels.charge_migration import _first_over, _flag_from_first
from webbflow.steps._checks import check_dtypes

__all__ = ["flag_charge_migration"]


def flag_charge_migration(data, gdq, dqflags, *, signal_threshold=25000.0):
    """From the first group where ``data > signal_threshold`` (and GROUPDQ is not exactly
    DO_NOT_USE) onwards, flag CHARGELOSS|DO_NOT_USE in that pixel and its 4 neighbours.

    Skipped (returned unchanged) for ramps with fewer than 3 groups, as the step does.
    Not pixel-local (needs whole frames or a 1-row halo). Returns ``(gdq, status)``.
    """
    check_dtypes(data=(data, np.float32), gdq=(gdq, np.uint8))
    nints, ngroups, ny, nx = data.shape
    if ngroups < 3:
        return gdq, "SKIPPED"
    dnu = np.uint8(dqflags["DO_NOT_USE"])
    flag = np.uint8(dqflags["CHARGELOSS"] | dqflags["DO_NOT_USE"])
    first = np.empty((nints, ny, nx), np.int32)
    _first_over(data, gdq, np.float32(signal_threshold), dnu, first)
    _flag_from_first(gdq, first, flag)
    return gdq, "COMPLETE"
