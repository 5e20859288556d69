"""Small serial kernels that several steps' kernels call."""

import numpy as np

from webbflow.kernels._options import njit


@njit
def _sort_small(v):
    """In-place ascending sort; insertion sort for the short per-pixel arrays."""
    n = v.shape[0]
    if n > 24:
        v.sort()
        return
    for j in range(1, n):
        t = v[j]
        k = j - 1
        while k >= 0 and v[k] > t:
            v[k + 1] = v[k]
            k -= 1
        v[k + 1] = t


@njit
def _sort_nonan(v, tmp):
    """In-place stable ascending sort of a short NaN-free array (tmp: scratch, same size+).

    Branch-free rank sort for n <= 16 (each value goes to the number of smaller values,
    ties kept in input order, so the output equals a stable sort bit for bit, signed zeros
    included); longer arrays use :func:`_sort_small`. NaNs would break the ranks.
    """
    n = v.shape[0]
    if n > 16:
        _sort_small(v)
        return
    for i in range(n):
        tmp[i] = v[i]
    for i in range(n):
        a = tmp[i]
        r = 0
        for j in range(i):
            r += tmp[j] <= a
        for j in range(i + 1, n):
            r += tmp[j] < a
        v[r] = a


@njit
def _median_nonan(buf, n):
    """Median of the NaN-free buf[:n] (NaN for n == 0): the middle value of a stable
    ascending sort, or the mean (lo + hi) / 2.0 of the two middle ones for even n.

    n <= 10: found by stable ranks without moving anything (buf is left as is). Longer
    arrays: quickselect in place (buf[:n] is reordered), the same value as ``np.median``
    except that a zero median may come out with the other sign (callers must not care).
    """
    if n == 0:
        return np.nan
    h = n >> 1
    if n > 10:
        return _median_select(buf, n)
    lo = np.nan
    hi = np.nan
    need = 1 if n & 1 else 2
    hl = -1 if n & 1 else h - 1     # rank of the lower middle value (even n only)
    found = 0
    for i in range(n):
        a = buf[i]
        r = 0
        for j in range(i):
            r += buf[j] <= a
        for j in range(i + 1, n):
            r += buf[j] < a
        if r == h:
            hi = a
            found += 1
        elif r == hl:
            lo = a
            found += 1
        if found == need:
            break
    if n & 1:
        return hi
    return (lo + hi) / 2.0


@njit
def _ranked_pair(v, m, ka, kb):
    """The values of ranks ka and kb (0-based) of the NaN-free v[:m] in a stable ascending
    sort, NaN for a rank not there: counted, nothing moved, no data-dependent branch. For
    the few values left once a selection has narrowed the range to the middle ranks."""
    a = np.nan
    b = np.nan
    for i in range(m):
        x = v[i]
        r = 0
        for j in range(i):
            r += v[j] <= x
        for j in range(i + 1, m):
            r += v[j] < x
        a = x if r == ka else a
        b = x if r == kb else b
    return a, b


@njit
def _select_kth(a, n, k):
    """Partially order a[:n] in place so that a[k] is its k-th smallest value, with
    everything before it no larger; returns it.

    Quickselect with a median-of-three pivot and a branch-free Lomuto partition: the
    data-dependent branches of the classic partition mispredict on noisy ramps, and
    ``np.median`` also allocates a copy per call; this is ~3x faster on 20-100 values."""
    lo = 0
    hi = n - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        x = a[lo]
        y = a[mid]
        z = a[hi]
        if x > y:
            x, y = y, x
        if y > z:
            y = z
        if x > y:
            y = x
        if a[mid] == y:
            a[mid] = a[hi]
            a[hi] = y
        elif a[lo] == y:
            a[lo] = a[hi]
            a[hi] = y
        pivot = a[hi]
        store = lo
        for i in range(lo, hi):
            v = a[i]
            a[i] = a[store]
            a[store] = v
            store += v < pivot
        a[hi] = a[store]
        a[store] = pivot
        if store == k:
            return pivot
        if store < k:
            lo = store + 1
        else:
            hi = store - 1
    return a[k]


@njit
def _median_select(a, n):
    """np.median of the NaN-free a[:n] (n >= 1) by in-place selection (a is reordered)."""
    h = n >> 1
    hi = _select_kth(a, n, h)
    if n & 1:
        return hi
    # after selecting h, a[:h] holds the h smallest values: the lower middle is their max
    lo = a[0]
    for i in range(1, h):
        if a[i] > lo:
            lo = a[i]
    return (lo + hi) / 2.0


@njit
def _all_flag(a, flag):
    """True if every element of the 1-D array a has a bit of ``flag`` (stops early)."""
    for j in range(a.shape[0]):
        if (a[j] & flag) == 0:
            return False
    return True


@njit
def _any_flag(a, flag):
    """True if some byte of the 1-D uint8 array a has a bit of ``flag``. Reads 8 bytes a
    word, OR-reduced over blocks (a loop without an exit vectorises), and stops after the
    first block that has one: DQ cubes are mostly clean, so the whole array is usually
    read, and a byte loop with an exit ran at a tenth of the memory speed."""
    n = a.shape[0]
    nwords = n // 8
    words = a[:nwords * 8].view(np.uint64)
    pattern = np.uint64(flag) * np.uint64(0x0101010101010101)
    for start in range(0, nwords, 2048):
        acc = np.uint64(0)
        for j in range(start, min(nwords, start + 2048)):
            acc |= words[j]
        if acc & pattern:
            return True
    for j in range(nwords * 8, n):
        if a[j] & flag:
            return True
    return False


def run_row_blocks(kernel, ny, *args, blocks_per_thread=4, max_rows=None):
    """Call ``kernel(y0, y1, *args)`` on row blocks covering range(ny), in threads.

    For big per-row kernels compiled serially with ``nogil=True``: this replaces a
    ``parallel=True`` wrapper, whose compilation (LLVM re-optimising the inlined row
    body) cost as much as the kernel itself. Rows must be independent. The thread count
    is numba's (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``). ``max_rows``: no
    block has more rows (also with one thread). Returns the kernel's results, one per
    block in row order.
    """
    import numba

    nthreads = max(1, min(numba.get_num_threads(), ny))
    if max_rows is None and (nthreads == 1 or ny < 2):
        return [kernel(0, ny, *args)]
    nblocks = 1 if nthreads == 1 else min(ny, nthreads * blocks_per_thread)
    if max_rows is not None:
        nblocks = max(nblocks, -(-ny // max_rows))
    edges = [ny * b // nblocks for b in range(nblocks + 1)]
    blocks = [(edges[b], edges[b + 1]) for b in range(nblocks) if edges[b + 1] > edges[b]]
    if nthreads == 1:
        return [kernel(y0, y1, *args) for y0, y1 in blocks]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=nthreads) as pool:
        futures = [pool.submit(kernel, y0, y1, *args) for y0, y1 in blocks]
        return [f.result() for f in futures]


# numpy's pairwise summation, bit for bit: means and sums that must equal numpy's
@njit
def _pairwise_leaf(a, start, n):
    """numpy's pairwise_sum base case for 1 <= n <= 128 values: a plain loop below 8,
    else 8 interleaved accumulators, combined as ((0+1)+(2+3))+((4+5)+(6+7)), then the
    remainder one by one."""
    if n < 8:
        res = a[start]                  # numpy starts from -0.0, and -0.0 + x == x
        for i in range(start + 1, start + n):
            res += a[i]
        return res
    r0 = a[start]
    r1 = a[start + 1]
    r2 = a[start + 2]
    r3 = a[start + 3]
    r4 = a[start + 4]
    r5 = a[start + 5]
    r6 = a[start + 6]
    r7 = a[start + 7]
    m = n - n % 8
    for j in range(start + 8, start + m, 8):
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(start + m, start + n):
        res += a[i]
    return res


@njit
def _pairwise_sum(a, start, n):
    """Sum of a[start:start+n] (n >= 1) in a's dtype, in the order of numpy's pairwise
    ``add.reduce`` over one contiguous run: blocks of <= 128 values summed by
    :func:`_pairwise_leaf`, larger runs split in two at n // 2 rounded down to a multiple
    of 8 and the halves' sums added. numpy recurses; this walks the same tree with an
    explicit stack (numba's cache mishandles recursive functions)."""
    if n <= 128:
        return _pairwise_leaf(a, start, n)
    node_start = np.empty(128, np.int64)
    node_n = np.empty(128, np.int64)      # n < 0: both halves of node -n are summed
    partial = np.empty(128, a.dtype)
    sp = 1
    node_start[0] = start
    node_n[0] = n
    vp = 0
    while sp > 0:
        sp -= 1
        s0 = node_start[sp]
        m = node_n[sp]
        if m < 0:                       # combine: left was pushed first
            vp -= 1
            right = partial[vp]
            partial[vp - 1] = partial[vp - 1] + right
        elif m <= 128:
            partial[vp] = _pairwise_leaf(a, s0, m)
            vp += 1
        else:
            m2 = m // 2
            m2 -= m2 % 8
            node_n[sp] = -m             # revisit to combine after both halves
            node_start[sp + 1] = s0 + m2
            node_n[sp + 1] = m - m2
            node_start[sp + 2] = s0
            node_n[sp + 2] = m2
            sp += 3
    return partial[0]
