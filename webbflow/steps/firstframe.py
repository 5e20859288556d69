"""firstframe (MIRI, deprecated, off by default): flag the first group DO_NOT_USE."""

import numpy as np

__all__ = ["flag_firstframe"]


def flag_firstframe(gdq, pdq, dqflags, *, bright_use_group1=False):
    """Group 0 -> DO_NOT_USE when NGROUPS > 3.

    With ``bright_use_group1``, integrations where group index 2 is SATURATED keep group 0
    and those pixels get FLUX_ESTIMATED in ``pdq``. Returns ``(gdq, pdq, status)``.
    """
    if gdq.shape[1] <= 3:
        return gdq, pdq, "SKIPPED"
    dnu = np.uint8(dqflags["DO_NOT_USE"])
    if bright_use_group1:
        svals = (gdq[:, 2] & np.uint8(dqflags["SATURATED"])) > 0
        first = gdq[:, 0]
        first[~svals] |= dnu
        pdq[np.any(svals, axis=0)] |= np.uint32(dqflags["FLUX_ESTIMATED"])
    else:
        gdq[:, 0] |= dnu
    return gdq, pdq, "COMPLETE"
