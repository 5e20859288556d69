"""The one place numba options are set, so no kernel hard-codes them.

``cache=True`` matters here: every Snakemake job is a fresh process, and the on-disk
cache turns the JIT cost into a once-per-machine cost. numba writes cache entries
atomically, so concurrent jobs can share the directory.

numba invalidates a cached function only when its own source file changes, not when a
kernel it calls from another module does, so an edited helper could run stale machine
code. The cache therefore lives in a directory named by a fingerprint of all kernel
sources: ``$NUMBA_CACHE_DIR/webbflow-<fingerprint>`` (default base
``$XDG_CACHE_HOME/webbflow/numba``, i.e. ``~/.cache/webbflow/numba``). On a cluster, point
NUMBA_CACHE_DIR at a shared directory to compile once for all nodes of one CPU type.
"""

import hashlib
import os
from pathlib import Path

import numba

NJIT = dict(cache=True, nogil=True, fastmath=False)
NJIT_PARALLEL = dict(cache=True, nogil=True, fastmath=False, parallel=True)


def _kernel_fingerprint():
    digest = hashlib.sha1(numba.__version__.encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _cache_dir():
    base = os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "webbflow", "numba")
    return os.path.join(base, f"webbflow-{_kernel_fingerprint()}")


# read by numba when each kernel below is decorated (not later)
numba.config.CACHE_DIR = _cache_dir()


def njit(func=None, *, parallel=False, inline=False):
    """``inline=True``: numba inlines the function into its callers at the IR level, for
    small helpers of hot loops that LLVM would otherwise leave as calls."""
    options = NJIT_PARALLEL if parallel else NJIT
    if inline:
        options = dict(options, inline="always")
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)
