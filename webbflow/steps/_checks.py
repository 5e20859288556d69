"""Argument checks shared by the step wrappers."""

import numpy as np


def check_dtypes(**arrays):
    """The kernels are compiled for the pipeline dtypes; refuse silent up/down-casts.

    Called as ``check_dtypes(data=(data, np.float32), gdq=(gdq, np.uint8))``.
    """
    for name, (arr, dtype) in arrays.items():
        if arr.dtype != dtype:
            raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {arr.dtype}")
