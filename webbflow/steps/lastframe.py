"""lastframe (MIRI): flag the final group of every integration DO_NOT_USE."""

import numpy as np

__all__ = ["flag_lastframe"]


def flag_lastframe(gdq, dqflags):
    """``gdq[:, -1] |= DO_NOT_USE`` when NGROUPS > 2. Returns ``(gdq, status)``."""
    if gdq.shape[1] <= 2:
        return gdq, "SKIPPED"
    gdq[:, -1] |= np.uint8(dqflags["DO_NOT_USE"])
    return gdq, "COMPLETE"
