"""Keep freed memory in the process instead of handing it back to the system.

A stage runs as a process of its own (a Snakemake job, or the command line) and frees and
allocates arrays of the same sizes over and over: one integration chunk after another,
one row block after another. glibc serves big allocations with fresh ``mmap`` pages and
returns them on free, so every chunk touches new pages. On the virtual machines we
measured, a first touch cost 0.3 ms per MB when the guest had freed pages at hand and
1-7 ms per MB when it had not (a page fault through the hypervisor), more than the
arithmetic on those bytes: the TSO benchmark spent 5-10 s of system time on it. With
``mmap`` off for allocations and no trimming of the heap, freed arrays are reused,
already mapped. Measured peaks with against without: TSO case 1326 against 1336 MB,
MIRI case 588 against 573 MB (that pair also differs by the O_DIRECT
scratch ramp and its reused buffer).

The cycle collector is the other per-process cost: a stage imports numba, llvmlite and
astropy (a few hundred thousand objects) and makes almost no reference cycles after, yet
CPython rescans those objects every few hundred allocations and once more, in full, at
exit. See :func:`quiet_collector`.
"""

import atexit
import ctypes
import gc

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_libc = None


def _glibc():
    """glibc, or None (another C library: its allocator's defaults it is)."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            from ctypes.util import find_library  # noqa: PLC0415 - 40 ms and ldconfig

            try:
                libc = ctypes.CDLL(find_library("c"))
            except (OSError, TypeError):
                libc = False
        if libc and not hasattr(libc, "mallopt"):
            libc = False
        if libc:
            libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            libc.malloc.argtypes = (ctypes.c_size_t,)
            libc.malloc.restype = ctypes.c_void_p
            libc.free.argtypes = (ctypes.c_void_p,)
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        _libc = libc
    return _libc or None


def reuse_freed_memory():
    """Tell glibc's allocator to keep and reuse freed memory (no-op elsewhere; once)."""
    _glibc()


# Cap of :func:`prefault_for`: below the heap that the first arrays of every benchmark
# exposure take anyway (NIRCam full frame: a 168 MB float32 ramp and 42 MB of group DQ),
# so the peak does not grow.
PREFAULT_MAX_BYTES = 256 * 2**20
_MADV_HUGEPAGE = 14


def prefault_for(raw_path):
    """Fault in, in a background thread, the heap the working copy of a raw ramp will
    take (twice its uint16 file, at most :data:`PREFAULT_MAX_BYTES`), and hand it back to
    the allocator, which keeps it (:func:`reuse_freed_memory`). Call it before the
    imports: the pages are touched on the other core while the interpreter imports,
    instead of by the first read of the ramp. A first touch costs 0.3-7 ms per MB here
    (see above). Returns the thread, or None (not glibc, no such file)."""
    import os  # noqa: PLC0415
    import threading  # noqa: PLC0415

    libc = _glibc()
    try:
        nbytes = min(2 * os.path.getsize(raw_path), PREFAULT_MAX_BYTES)
    except OSError:
        return None
    if libc is None or nbytes <= 0:
        return None
    block = libc.malloc(nbytes)  # in this thread: the main arena, where arrays go
    if not block:
        return None

    def touch():
        # huge pages, as numpy asks for its own big arrays; then every page written
        # (ctypes calls run without the GIL)
        page = 2**21
        start = (block + page - 1) // page * page
        if start < block + nbytes:
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t((block + nbytes - start)
                                                                 // page * page),
                         _MADV_HUGEPAGE)
        ctypes.memset(block, 0, nbytes)
        libc.free(block)

    thread = threading.Thread(target=touch, name="prefault", daemon=True)
    thread.start()
    return thread

def quiet_collector():
    """Collect reference cycles rarely, and not at all at exit (call once, at the start of
    a stage process: the command line or a Snakemake step script).

    Measured on the NIRCam full-frame stage-1 run: 371 collections took 0.12 s during the
    run, and the full collections of interpreter shutdown 0.3 s after the products were
    written; with these settings, 12 collections and none at exit. Exit still runs
    ``atexit`` handlers and closes files; only the collector's final passes, which free
    nothing the operating system would not, are skipped.
    """
    gc.set_threshold(50_000, 20, 20)
    atexit.register(gc.freeze)  # atexit handlers run before shutdown's collections
