"""rscd (MIRI): flag the initial groups affected by the reset-switch-charge decay.

Flag-only, as ``jwst.rscd.rscd_sub`` in jwst 3.0 (no pixel values change).
"""

import numpy as np

from webbflow.kernels.rscd import _any_problem, _flag_rscd
from webbflow.steps._checks import check_dtypes

__all__ = ["flag_rscd", "rscd_skip_groups"]


def rscd_skip_groups(ngroups, nints, group_skip_int1, group_skip_int2p):
    """Effective (n1, n2) after the official rules, or None if the step is skipped
    (NGROUPS < 3). group_skip_int1 < 0 (deprecated reference) means 1."""
    if group_skip_int1 < 0:
        group_skip_int1 = 1
    if ngroups < 3:
        return None
    if ngroups <= 5:
        group_skip_int1 = 1
        group_skip_int2p = 1
    if ngroups < group_skip_int1 + 3:
        group_skip_int1 = max(0, ngroups - 3)
    if nints > 1 and ngroups < group_skip_int2p + 3:
        group_skip_int2p = max(0, ngroups - 3)
    return group_skip_int1, group_skip_int2p


def _flag_range(gdq, pdq, i0, i1, skip, sat, dnu, flux_est):
    if i1 <= i0:
        return
    ngroups = gdq.shape[1]
    problem = np.zeros(ngroups, np.bool_)
    _any_problem(gdq, i0, i1, sat, problem)
    # The official loop checks group index skip+1, then skip, ... down to 1, stopping as
    # soon as no pixel has a problem at the index just checked.
    kmin = skip + 2  # nothing checked
    k = skip + 1
    while k >= 1:
        if not (k < ngroups and problem[k]):
            break
        kmin = k
        k -= 1
    _flag_rscd(gdq, pdq, i0, i1, skip, kmin, sat, dnu, flux_est)


def flag_rscd(gdq, pdq, group_skip_int1, group_skip_int2p, dqflags, *, nints=None,
              integration_start=1):
    """DO_NOT_USE on the first n1 groups of integration 1 and n2 groups of the others.

    Per pixel the count is lowered while the group after the flagged ones is SATURATED
    (and group 0 is not); such pixels get FLUX_ESTIMATED. ``nints`` is the exposure NINTS
    (default: data's); ``integration_start`` the segment's first integration (1-based).
    Whole frames: the back-off loop stops on a frame-wide condition, as official.
    Returns ``(gdq, pdq, status)``.
    """
    check_dtypes(gdq=(gdq, np.uint8), pdq=(pdq, np.uint32))
    n_data, ngroups = gdq.shape[:2]
    nints = n_data if nints is None else nints
    skips = rscd_skip_groups(ngroups, nints, group_skip_int1, group_skip_int2p)
    if skips is None:
        return gdq, pdq, "SKIPPED"
    n1, n2 = skips
    sat = np.uint8(dqflags["SATURATED"])
    dnu = np.uint8(dqflags["DO_NOT_USE"])
    fe = np.uint32(dqflags["FLUX_ESTIMATED"])
    if integration_start is None:
        integration_start = 1
    if integration_start == 1:
        _flag_range(gdq, pdq, 0, 1, n1, sat, dnu, fe)
        first_other = 1
    else:
        first_other = 0
    if nints > 1:
        _flag_range(gdq, pdq, first_other, n_data, n2, sat, dnu, fe)
    return gdq, pdq, "COMPLETE"
