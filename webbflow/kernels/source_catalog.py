"""source_catalog kernels: per-segment pixel gathering, the deblending pre-filter's
union-find, exact circle/pixel overlaps for aperture photometry (photutils' geometry)
and the sigma-clipped annulus background. Sums use numpy's pairwise order so the
fluxes equal the official ones to the last bit."""

import numpy as np

from webbflow.kernels._common import _pairwise_sum
from webbflow.kernels._options import njit

__all__ = ["label_counts", "gather_values", "aperture_sums", "annulus_background",
           "merge_flags"]


@njit
def label_counts(segm, data, mask, nlabels):
    """Per label (index 1..nlabels): the number of unmasked, finite pixels."""
    ny, nx = segm.shape
    count = np.zeros(nlabels + 1, np.int64)
    for y in range(ny):
        for x in range(nx):
            lab = segm[y, x]
            if lab > 0 and not mask[y, x] and np.isfinite(data[y, x]):
                count[lab] += 1
    return count


@njit
def gather_values(segm, data, error, mask, starts):
    """The unmasked data and error values of every label, label by label and row-major
    inside each (the order of photutils' compressed cutouts)."""
    ny, nx = segm.shape
    n = starts[-1]
    dvals = np.empty(n, data.dtype)
    evals = np.empty(n, error.dtype)
    pos = starts[:-1].copy()
    for y in range(ny):
        for x in range(nx):
            lab = segm[y, x]
            if lab > 0 and not mask[y, x] and np.isfinite(data[y, x]):
                k = pos[lab - 1]
                dvals[k] = data[y, x]
                evals[k] = error[y, x]
                pos[lab - 1] = k + 1
    return dvals, evals


# photutils.geometry (circular_overlap.pyx, core.pyx): exact area of a circle centred on
# the origin inside a rectangle, by arcs and triangles

@njit
def _area_arc(x1, y1, x2, y2, r):
    a = np.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
    theta = 2.0 * np.arcsin(0.5 * a / r)
    return 0.5 * r * r * (theta - np.sin(theta))


@njit
def _area_triangle(x1, y1, x2, y2, x3, y3):
    return 0.5 * abs(x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2))


@njit
def _overlap_core(xmin, ymin, xmax, ymax, r):
    if xmin * xmin + ymin * ymin > r * r:
        return 0.0
    if xmax * xmax + ymax * ymax < r * r:
        return (xmax - xmin) * (ymax - ymin)
    d1 = np.sqrt(xmax * xmax + ymin * ymin)
    d2 = np.sqrt(xmin * xmin + ymax * ymax)
    if d1 < r and d2 < r:
        x1, y1 = np.sqrt(r * r - ymax * ymax), ymax
        x2, y2 = xmax, np.sqrt(r * r - xmax * xmax)
        return ((xmax - xmin) * (ymax - ymin) - _area_triangle(x1, y1, x2, y2, xmax, ymax)
                + _area_arc(x1, y1, x2, y2, r))
    if d1 < r:
        x1, y1 = xmin, np.sqrt(r * r - xmin * xmin)
        x2, y2 = xmax, np.sqrt(r * r - xmax * xmax)
        return (_area_arc(x1, y1, x2, y2, r) + _area_triangle(x1, y1, x1, ymin, xmax, ymin)
                + _area_triangle(x1, y1, x2, ymin, x2, y2))
    if d2 < r:
        x1, y1 = np.sqrt(r * r - ymin * ymin), ymin
        x2, y2 = np.sqrt(r * r - ymax * ymax), ymax
        return (_area_arc(x1, y1, x2, y2, r) + _area_triangle(x1, y1, xmin, y1, xmin, ymax)
                + _area_triangle(x1, y1, xmin, y2, x2, y2))
    x1, y1 = np.sqrt(r * r - ymin * ymin), ymin
    x2, y2 = xmin, np.sqrt(r * r - xmin * xmin)
    return _area_arc(x1, y1, x2, y2, r) + _area_triangle(x1, y1, x2, y2, xmin, ymin)


@njit
def _overlap_simple(xmin, ymin, xmax, ymax, r):
    """circular_overlap_single_exact for a rectangle inside one quadrant (edges on the
    axes allowed): folded into the first quadrant."""
    if 0.0 <= xmin:
        if 0.0 <= ymin:
            return _overlap_core(xmin, ymin, xmax, ymax, r)
        return _overlap_core(-ymax, xmin, -ymin, xmax, r)
    if 0.0 <= ymin:
        return _overlap_core(-xmax, ymin, -xmin, ymax, r)
    return _overlap_core(-xmax, -ymax, -xmin, -ymin, r)


@njit
def _overlap_exact(xmin, ymin, xmax, ymax, r):
    """circular_overlap_single_exact: a rectangle straddling an axis is cut there and
    the parts summed in the official order (the recursion, unrolled)."""
    if 0.0 <= xmin or 0.0 >= xmax:
        if 0.0 <= ymin or 0.0 >= ymax:
            return _overlap_simple(xmin, ymin, xmax, ymax, r)
        return (_overlap_simple(xmin, ymin, xmax, 0.0, r)
                + _overlap_simple(xmin, 0.0, xmax, ymax, r))
    if 0.0 <= ymin or 0.0 >= ymax:
        return (_overlap_simple(xmin, ymin, 0.0, ymax, r)
                + _overlap_simple(0.0, ymin, xmax, ymax, r))
    return (_overlap_simple(xmin, ymin, 0.0, 0.0, r) + _overlap_simple(0.0, ymin, xmax, 0.0, r)
            + _overlap_simple(xmin, 0.0, 0.0, ymax, r) + _overlap_simple(0.0, 0.0, xmax, ymax, r))


@njit
def _overlap_weight(pxmin, pxmax, pymin, pymax, dx, dy, r, pixel_radius, exact):
    """circular_overlap_grid for one pixel: 1 well inside, 0 well outside, else the
    exact fraction (exact) or whether the pixel centre is inside (centre method)."""
    pxcen = pxmin + dx * 0.5
    pycen = pymin + dy * 0.5
    d = np.sqrt(pxcen * pxcen + pycen * pycen)
    if d < r - pixel_radius:
        return 1.0
    if d < r + pixel_radius:
        if exact:
            return _overlap_exact(pxmin, pymin, pxmax, pymax, r) / (dx * dy)
        x = pxmin - 0.5 * dx + dx
        y = pymin - 0.5 * dy + dy
        return 1.0 if x * x + y * y < r * r else 0.0
    return 0.0


@njit
def _aperture_geometry(x, y, r):
    """photutils BoundingBox.from_float and the centred pixel edges of a circle."""
    ixmin = int(np.floor(x - r + 0.5))
    ixmax = int(np.ceil(x + r + 0.5))
    iymin = int(np.floor(y - r + 0.5))
    iymax = int(np.ceil(y + r + 0.5))
    return (ixmin, ixmax, iymin, iymax, ixmin - 0.5 - x, ixmax - 0.5 - x,
            iymin - 0.5 - y, iymax - 0.5 - y)


@njit
def _grid_weights(exmin, exmax, eymin, eymax, nx, ny, r, exact):
    """circular_overlap_grid: weights of the nx x ny pixels between the centred edges."""
    w = np.zeros((ny, nx))
    dx = (exmax - exmin) / nx
    dy = (eymax - eymin) / ny
    pixel_radius = 0.5 * np.sqrt(dx * dx + dy * dy)
    bxmin = -r - 0.5 * dx
    bxmax = r + 0.5 * dx
    bymin = -r - 0.5 * dy
    bymax = r + 0.5 * dy
    for i in range(nx):
        pxmin = exmin + i * dx
        pxmax = pxmin + dx
        if pxmax > bxmin and pxmin < bxmax:
            for j in range(ny):
                pymin = eymin + j * dy
                pymax = pymin + dy
                if pymax > bymin and pymin < bymax:
                    w[j, i] = _overlap_weight(pxmin, pxmax, pymin, pymax, dx, dy, r,
                                              pixel_radius, exact)
    return w


@njit
def _circle_weights(x, y, r_out, r_in, exact):
    """Aperture mask of a circle (r_in <= 0) or an annulus (outer minus inner circle on
    the outer circle's grid) at (x, y): (ixmin, iymin, weights)."""
    ixmin, ixmax, iymin, iymax, exmin, exmax, eymin, eymax = _aperture_geometry(x, y, r_out)
    nx = ixmax - ixmin
    ny = iymax - iymin
    w = _grid_weights(exmin, exmax, eymin, eymax, nx, ny, r_out, exact)
    if r_in > 0:
        w -= _grid_weights(exmin, exmax, eymin, eymax, nx, ny, r_in, exact)
    return ixmin, iymin, w


@njit
def aperture_sums(data, error, xs, ys, radii):
    """Exact-overlap circular aperture sums and errors (sqrt of the weighted error
    squares) at each position for each radius; NaN without overlap, NaN data propagate
    (photutils aperture_photometry without a mask): the same products summed in the
    same order as numpy."""
    ny, nx = data.shape
    n = xs.shape[0]
    sums = np.full((radii.shape[0], n), np.nan)
    errs = np.full((radii.shape[0], n), np.nan)
    for k in range(radii.shape[0]):
        for i in range(n):
            ix0, iy0, w = _circle_weights(xs[i], ys[i], radii[k], 0.0, True)
            h, wd = w.shape
            if ix0 >= nx or iy0 >= ny or ix0 + wd <= 0 or iy0 + h <= 0:
                continue
            vals = np.empty(h * wd)
            var = np.empty(h * wd)
            m = 0
            for j in range(max(0, -iy0), min(h, ny - iy0)):
                for q in range(max(0, -ix0), min(wd, nx - ix0)):
                    wt = w[j, q]
                    if wt > 0:
                        vals[m] = data[iy0 + j, ix0 + q] * wt
                        err = error[iy0 + j, ix0 + q]
                        var[m] = (err * err) * wt
                        m += 1
            sums[k, i] = _pairwise_sum(vals, 0, m)
            errs[k, i] = np.sqrt(_pairwise_sum(var, 0, m))
    return sums, errs


@njit
def _mean_std(v, n):
    """np.std (ddof 0): pairwise sums of the values and of the squared deviations."""
    mean = _pairwise_sum(v, 0, n) / n
    dev = np.empty(n)
    for i in range(n):
        d = v[i] - mean
        dev[i] = d * d
    return np.sqrt(_pairwise_sum(dev, 0, n) / n)


@njit
def _median_sorted(v, n):
    h = n // 2
    if n % 2:
        return v[h]
    return (v[h - 1] + v[h]) / 2.0


@njit
def annulus_background(data, xs, ys, r_in, r_out, sigma, maxiters):
    """Local background of the official step: the pixels whose centres fall in the
    annulus, sigma-clipped (astropy SigmaClip: median centre, std, 3 sigma, 5
    iterations, NaN dropped); returns their median, std and count."""
    ny, nx = data.shape
    n = xs.shape[0]
    med = np.full(n, np.nan)
    std = np.full(n, np.nan)
    cnt = np.zeros(n, np.int64)
    for i in range(n):
        ix0, iy0, w = _circle_weights(xs[i], ys[i], r_out, r_in, False)
        h, wd = w.shape
        if ix0 >= nx or iy0 >= ny or ix0 + wd <= 0 or iy0 + h <= 0:
            continue
        buf = np.empty(h * wd)
        m = 0
        for j in range(max(0, -iy0), min(h, ny - iy0)):
            for k in range(max(0, -ix0), min(wd, nx - ix0)):
                wt = w[j, k]
                if wt > 0:
                    v = data[iy0 + j, ix0 + k] * wt
                    if np.isfinite(v):
                        buf[m] = v
                        m += 1
        vals = buf[:m]
        for _ in range(maxiters):
            if m == 0:
                break
            srt = np.sort(vals)
            cen = _median_sorted(srt, m)
            sd = _mean_std(vals, m)
            lo = cen - sd * sigma
            hi = cen + sd * sigma
            keep = 0
            for t in range(m):
                if vals[t] >= lo and vals[t] <= hi:
                    vals[keep] = vals[t]
                    keep += 1
            changed = m - keep
            m = keep
            vals = vals[:m]
            if changed == 0:
                break
        cnt[i] = m
        if m > 0:
            srt = np.sort(vals)
            med[i] = _median_sorted(srt, m)
            std[i] = _mean_std(vals, m)
    return med, std, cnt


@njit
def _find_root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit
def merge_flags(segm, order, npixels, conn8, nlabels):
    """Flood the segments from their brightest pixel down (union-find on the pixel
    grid): flag a label when two of its components of at least ``npixels`` pixels
    meet."""
    ny, nx = segm.shape
    parent = np.full(ny * nx, -1, np.int64)
    size = np.zeros(ny * nx, np.int64)
    flag = np.zeros(nlabels + 1, np.bool_)
    for p in order:
        y = p // nx
        x = p - y * nx
        parent[p] = p
        size[p] = 1
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy == 0 and dx == 0) or (not conn8 and dy != 0 and dx != 0):
                    continue
                yy = y + dy
                xx = x + dx
                if yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                    continue
                q = yy * nx + xx
                if parent[q] < 0:
                    continue
                rp = _find_root(parent, p)
                rq = _find_root(parent, q)
                if rp == rq:
                    continue
                if size[rp] >= npixels and size[rq] >= npixels:
                    flag[segm[y, x]] = True
                if size[rp] < size[rq]:
                    rp, rq = rq, rp
                parent[rq] = rp
                size[rp] += size[rq]
    return flag
