"""Small serial kernels that several steps' kernels call."""

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
