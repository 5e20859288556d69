"""The one place numba options are set, so no kernel hard-codes them.

``cache=True`` matters here: every Snakemake job is a fresh process, and the on-disk
cache (``NUMBA_CACHE_DIR`` if set, else ``__pycache__`` beside the package) turns the
JIT cost into a once-per-machine cost. numba writes cache entries atomically, so
concurrent jobs can share the directory.
"""

import numba

NJIT = dict(cache=True, nogil=True, fastmath=False)
NJIT_PARALLEL = dict(cache=True, nogil=True, fastmath=False, parallel=True)


def njit(func=None, *, parallel=False):
    options = NJIT_PARALLEL if parallel else NJIT
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)
