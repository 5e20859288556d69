"""Catalog matching and linear fits in a tangent plane, for tweakreg.

Plain arrays in, arrays out (coordinates in one tangent plane, arcsec). The behaviour is
that of the official chain (tweakwcs ``XYXYMatch`` on stsci.stimage ``xyxymatch``'s
'tolerance' algorithm, and tweakwcs ``iter_linear_fit``), written from their
descriptions:

* initial offset: a 2-D histogram of all image-minus-reference position differences
  within ``searchrad``, in bins of one image pixel; its peak located by a quadratic fit
  in a 5x5 box (centre of mass or the maximum bin where the fit is unusable);
* matching: each list sorted by (y, x) and thinned so that no two kept points lie within
  ``separation`` (the first in sort order survives); every reference point then takes the
  nearest offset-corrected image point within ``tolerance``;
* fit: 'shift', 'rshift' (rotation + shift), 'rscale' (+ one scale) or 'general' (full
  affine), about the mean image position, with ``nclip`` rounds of clipping at
  ``sigma`` x RMSE (clipped points re-enter each round).

The loops here run over at most a few thousand catalogue entries once per group, so they
stay in Python rather than in a numba kernel (compiling would cost more than running).
"""

import logging

import numpy as np

log = logging.getLogger("webbflow.tweakreg")

__all__ = ["estimate_shift_2dhist", "xyxymatch", "fit_linear", "MatchConfusionError",
           "FIT_MIN_POINTS"]

# points a fit geometry needs (below this a clipping round is not allowed to go)
FIT_MIN_POINTS = {"shift": 1, "rshift": 2, "rscale": 2, "general": 3}


class MatchConfusionError(RuntimeError):
    """More matches than image sources: several reference sources took one image source."""


def estimate_shift_2dhist(imxy, refxy, searchrad, pscale):
    """Initial (x, y) offset image - reference (units of the coordinates) from the peak of
    the histogram of pairwise differences, bins of ``pscale``; (0, 0) without a peak."""
    img = np.asarray(imxy, np.float64) / pscale
    ref = np.asarray(refxy, np.float64) / pscale
    r = searchrad / pscale
    dx = (img[:, None, 0] - ref[None, :, 0]).ravel()
    dy = (img[:, None, 1] - ref[None, :, 1]).ravel()
    keep = (dx < r + 0.5) & (dx >= -r - 0.5) & (dy < r + 0.5) & (dy >= -r - 0.5)
    half = int(np.ceil(r))
    edges = [-half - 0.5, half + 0.5]
    hist = np.histogram2d(dx[keep], dy[keep], 2 * half + 1, [edges, edges])[0].T
    nonzero = np.count_nonzero(hist)
    if nonzero == 0:
        log.warning("No matches found within a search radius of %g arcsec", searchrad)
        return 0.0, 0.0
    if nonzero == 1:
        yp, xp = np.unravel_index(np.argmax(hist), hist.shape)
    else:
        (xp, yp), status = _find_peak(hist, box=5, mask=hist > 0)
        if status.startswith("ERROR"):
            log.warning("No valid shift found within a search radius of %g arcsec", searchrad)
            return 0.0, 0.0
    # the official offset origin is -searchrad (not -ceil(searchrad/pscale) bins)
    xoff, yoff = pscale * xp - searchrad, pscale * yp - searchrad
    log.info("Initial X and Y shifts: %g, %g arcsec", xoff, yoff)
    return float(xoff), float(yoff)


def _find_peak(data, box=5, mask=None):
    """Peak (x, y) of a 2-D array: a quadratic fitted in a ``box`` around the largest
    element; the box's centre of mass when the fit has no maximum inside the box, the
    element itself when it sits on the edge of the box. Returns ((x, y), status)."""
    data = np.asarray(data, np.float64)
    ny, nx = data.shape
    good = np.isfinite(data) if mask is None else mask & np.isfinite(data)
    rows, cols = np.nonzero(good)
    if rows.size == 0:
        return ((nx - 1.0) / 2.0, (ny - 1.0) / 2.0), "ERROR:NODATA"
    k = np.argmax(data[good])
    imax, jmax = int(cols[k]), int(rows[k])
    if data[jmax, imax] < 1:
        return ((nx - 1.0) / 2.0, (ny - 1.0) / 2.0), "ERROR:NODATA"
    x1 = max(0, imax - box // 2)
    x2 = min(nx, x1 + box)
    y1 = max(0, jmax - box // 2)
    y2 = min(ny, y1 + box)
    if imax in (x1, x2 - 1) or jmax in (y1, y2 - 1):
        return (float(imax), float(jmax)), "WARNING:EDGE"
    if x2 - x1 < box:
        if x1 == 0:
            x2 = min(nx, box)
        if x2 == nx:
            x1 = max(0, nx - box)
    if y2 - y1 < box:
        if y1 == 0:
            y2 = min(ny, box)
        if y2 == ny:
            y1 = max(0, ny - box)
    inside = good[y1:y2, x1:x2].ravel()
    # coordinates counted from one before the box (as the official fit does: it
    # changes the conditioning of the normal equations, not the answer)
    u, v = np.meshgrid(np.arange(x1, x2) - (x1 - 1.0), np.arange(y1, y2) - (y1 - 1.0))
    u, v = u.ravel()[inside], v.ravel()[inside]
    d = data[y1:y2, x1:x2].ravel()[inside]

    def centre_of_mass():
        total = d.sum()
        if total == 0:
            return ((x2 + x1 - 1.0) / 2.0, (y2 + y1 - 1.0) / 2.0), "ERROR:NODATA"
        return (float(x1 + np.dot(u, d) / total - 1), float(y1 + np.dot(v, d) / total - 1)), \
            "WARNING:CENTER-OF-MASS"

    if d.size < 6:
        return centre_of_mass()
    design = np.column_stack([np.ones_like(u), u, v, u * v, u * u, v * v])
    try:
        c = np.linalg.lstsq(design, d, rcond=None)[0]
        if not np.all(np.isfinite(c)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        return centre_of_mass()
    _, c10, c01, c11, c20, c02 = c
    det = 4 * c02 * c20 - c11 ** 2
    if det <= 0 or (c20 > 0.0 and c02 >= 0.0) or (c20 >= 0.0 and c02 > 0.0):
        coord, status = centre_of_mass()
        return coord, status if status.startswith("ERROR") else "WARNING:BADFIT"
    xm = (c01 * c11 - 2.0 * c02 * c10) / det + x1 - 1
    ym = (c10 * c11 - 2.0 * c01 * c20) / det + y1 - 1
    if x1 <= xm <= x2 - 1.0 and y1 <= ym <= y2 - 1.0:
        return (float(xm), float(ym)), "SUCCESS"
    return centre_of_mass()


def _sorted_unique(xy, separation):
    """Indices of ``xy`` sorted by (y, x), dropping every point within ``separation`` of
    an earlier kept one."""
    order = np.lexsort((xy[:, 0], xy[:, 1]))
    x, y = xy[order, 0], xy[order, 1]
    sep2 = separation * separation
    alive = np.ones(order.size, bool)
    for i in range(order.size):
        if not alive[i]:
            continue
        for j in range(i + 1, order.size):
            if not alive[j]:
                continue
            r2 = (y[j] - y[i]) ** 2
            if r2 > sep2:
                break
            if r2 + (x[j] - x[i]) ** 2 <= sep2:
                alive[j] = False
    return order[alive]


def xyxymatch(imxy, refxy, offset, tolerance, separation):
    """Match image to reference positions after removing ``offset`` (image - reference)
    from the image positions. Returns (reference indices, image indices), in the order
    of the reference points sorted by (y, x). A reference point takes the nearest image
    point within ``tolerance`` (the later one in sort order on a tie); an image point
    may serve several reference points."""
    imxy = np.asarray(imxy, np.float64)
    refxy = np.asarray(refxy, np.float64)
    if len(imxy) == 0 or len(refxy) == 0:
        raise ValueError("matching needs non-empty image and reference lists")
    moved = imxy - np.asarray(offset, np.float64)
    ref_order = _sorted_unique(refxy, separation)
    img_order = _sorted_unique(moved, separation)
    iy = moved[img_order, 1]
    ix = moved[img_order, 0]
    tol2 = tolerance * tolerance
    ref_idx, img_idx = [], []
    start = 0
    n = img_order.size
    for r in ref_order:
        rx, ry = refxy[r]
        while start < n and ry - iy[start] >= tolerance:
            start += 1
        if start >= n:
            break
        if ry - iy[start] < -tolerance:
            continue
        best, best_r2 = -1, tol2
        for k in range(start, n):
            dy = ry - iy[k]
            if dy < -tolerance:
                break
            r2 = (rx - ix[k]) ** 2 + dy * dy
            if r2 <= best_r2:
                best, best_r2 = k, r2
        if best >= 0:
            if len(ref_idx) >= len(imxy):
                raise MatchConfusionError(
                    f"Number of output coordinates exceeded allocation ({len(imxy)}): "
                    "several reference sources matched one image source; adjust "
                    "'tolerance' and/or 'separation'")
            ref_idx.append(int(r))
            img_idx.append(int(img_order[best]))
    return np.array(ref_idx, int), np.array(img_idx, int)


def _normalised(weights):
    return None if weights is None else weights / weights.sum()


def _fit_once(ref, img, fitgeom, w):
    """ref ~ matrix @ img + shift for one set of (already centred) points."""
    mean = (lambda a: a.mean(axis=0)) if w is None else (lambda a: w @ a)
    if fitgeom == "shift":
        matrix = np.eye(2)
        shift = mean(ref - img)
    elif fitgeom in ("rshift", "rscale"):
        rm, im = mean(ref), mean(img)
        x, y = (ref - rm).T
        u, v = (img - im).T
        dot = (lambda a, b: a @ b) if w is None else (lambda a, b: w @ (a * b))
        sxu, sxv, syu, syv = dot(x, u), dot(x, v), dot(y, u), dot(y, v)
        reflect = sxu * syv - sxv * syu < 0
        # the rotation (with a flip of the image y axis when the points say so) that
        # best superposes the centred lists: the classical closed form
        num, den = (sxv + syu, sxu - syv) if reflect else (sxv - syu, sxu + syv)
        theta = 0.0 if num == den else np.arctan2(num, den)
        c, s = np.cos(theta), np.sin(theta)
        if fitgeom == "rshift":
            mag = 1.0
        else:
            norm = dot(u, u) + dot(v, v)
            if not norm > 0:
                raise ValueError("singular fit: the points are colinear")
            mag = (den * c + num * s) / norm
        flip = -1.0 if reflect else 1.0
        matrix = mag * np.array([[c, s], [-flip * s, flip * c]])
        shift = rm - matrix @ im
    elif fitgeom == "general":
        design = np.column_stack([img, np.ones(len(img))])
        if w is not None:
            root = np.sqrt(w)
            coef = np.linalg.lstsq(design * root[:, None], ref * root[:, None], rcond=None)[0]
        else:
            coef = np.linalg.lstsq(design, ref, rcond=None)[0]
        matrix = coef[:2].T
        shift = coef[2]
    else:
        raise ValueError(f"unknown fitgeometry {fitgeom!r}")
    resid = ref - img @ matrix.T - shift
    norm = np.hypot(resid[:, 0], resid[:, 1])
    if w is None:
        rmse = float(np.sqrt(np.mean(norm ** 2)))
        mae = float(np.mean(norm))
    else:
        rmse = float(np.sqrt(w @ norm ** 2))
        mae = float(w @ norm)
    return matrix, shift, resid, rmse, mae


def fit_linear(refxy, imxy, fitgeom="rshift", nclip=3, sigma=3.0, weights=None):
    """The linear map ``ref ~ matrix @ img + shift`` with clipping. Returns a dict:
    matrix, shift (both about the origin), center, fitmask, rmse, mae, resids, rot (deg),
    scale, nclip (rounds done)."""
    ref = np.asarray(refxy, np.float64)
    img = np.asarray(imxy, np.float64)
    minpts = FIT_MIN_POINTS[fitgeom]
    usable = np.ones(len(ref), bool) if weights is None else np.asarray(weights) > 0
    if np.count_nonzero(usable) < minpts:
        raise ValueError(f"a '{fitgeom}' fit needs at least {minpts} points")
    if np.count_nonzero(usable) == minpts:
        nclip = 0
    center = img[usable].mean(axis=0)
    ref = ref - center
    img = img - center

    def run(mask):
        w = None if weights is None else _normalised(np.asarray(weights, np.float64)[mask])
        return _fit_once(ref[mask], img[mask], fitgeom, w)

    mask = usable.copy()
    matrix, shift, resid, rmse, mae = run(mask)
    rounds = 0
    for _ in range(nclip or 0):
        keep = np.hypot(resid[:, 0], resid[:, 1]) < sigma * rmse
        if np.count_nonzero(keep) < minpts or keep.all():
            break
        rounds += 1
        previous = mask
        mask = usable.copy()
        mask[previous] &= keep
        matrix, shift, resid, rmse, mae = run(mask)
    shift = shift + center - matrix @ center
    det = np.linalg.det(matrix)
    return {"matrix": matrix, "shift": shift, "center": center, "fitmask": mask,
            "rmse": rmse, "mae": mae, "resids": resid, "nclip": rounds,
            "rot": float(np.degrees(np.arctan2(matrix[0, 1], matrix[0, 0]))),
            "scale": float(np.sqrt(abs(det))), "fitgeom": fitgeom}
