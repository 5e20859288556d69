"""persistence: jwst 3.0 flag-only persistence windows (step is skip=True by default)."""

import numpy as np

from webbflow.kernels.persistence import _flag_persistence
from webbflow.steps._checks import check_dtypes

__all__ = ["flag_persistence", "persistence_group_times", "mjd_to_epoch"]


def mjd_to_epoch(mjd):
    return (mjd - 40587.0) * 86400.0


def persistence_group_times(nints, ngroups, start_mjd, integration_time, group_time,
                            int_start_mjds=None):
    """Epoch time (s) the official step assigns to each (integration, group): the
    integration start (INT_TIMES int_start_MJD_UTC if available, else EXPSTART +
    i * integration_time) plus (g + 1) * group_time, accumulated as the step does."""
    times = np.empty((nints, ngroups), np.float64)
    epoch = mjd_to_epoch(start_mjd)
    for i in range(nints):
        if int_start_mjds is not None and len(int_start_mjds) > i:
            current = mjd_to_epoch(int_start_mjds[i])
        else:
            current = epoch + i * integration_time
        for g in range(ngroups):
            current = current + group_time
            times[i, g] = current
    return times


def flag_persistence(data, gdq, persistence_array, group_times, persistence_time, dqflags, *,
                     dn_threshold=None, persistence_dnu=False):
    """Flag PERSISTENCE (| DO_NOT_USE with ``persistence_dnu``) inside persistence windows.

    persistence_array: float64 (ny, nx) window end times (epoch s, 0 = none), updated in
    place (carry it to the next exposure). A window of ``persistence_time`` s opens at the
    first SATURATED group (or a group above ``dn_threshold`` DN). group_times from
    ``persistence_group_times``. ``persistence_time`` None or <= 0: nothing is done
    (the official step reports FAILED). Returns ``(gdq, persistence_array, status)``.
    """
    check_dtypes(data=(data, np.float32), gdq=(gdq, np.uint8))
    if persistence_time is None or persistence_time <= 0.0:
        return gdq, persistence_array, "FAILED"
    flag = dqflags["PERSISTENCE"] | (dqflags["DO_NOT_USE"] if persistence_dnu else 0)
    use_dn = dn_threshold is not None
    thr = np.float32(dn_threshold if use_dn else 0.0)
    _flag_persistence(data, gdq, persistence_array, np.asarray(group_times, np.float64),
                      float(persistence_time), use_dn, thr, np.uint8(dqflags["SATURATED"]),
                      np.uint8(flag))
    return gdq, persistence_array, "COMPLETE"
