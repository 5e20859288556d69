"""skymatch (calwebb_image3): each member's sky level, matched across overlaps.

What jwst 3.0 does (``jwst/skymatch/skymatch_step.py`` on ``stcal.skymatch``), and what
this module reproduces:

* Inputs are grouped by exposure (all detectors of one exposure move together, as one
  "sky group"); a group of one is a plain image.
* A pixel takes part when its DQ has none of the ``dqbits`` bad bits (astropy bit-flag
  syntax, default ``~DO_NOT_USE+NON_SCIENCE``) and its SCI is finite.
* The sky statistic is stsci.imagestats' (:func:`sky_statistic`): ``nclip`` rounds of
  lsigma/usigma clipping about the mean, then (for 'mode') the peak of a histogram of
  ``binwidth`` x sigma bins refined by a parabola.
* 'match': for every pair of inputs, each one's statistic over the pixels of its own
  image that fall in the overlap of the two footprints; then the least-squares sky
  differences (weighted by the pixel counts), shifted so the lowest (``match_down``) or
  highest is 0. 'local': each input's statistic over all its pixels; 'global': the
  smallest of those, for all; 'global+match': the match solution plus the smallest
  remaining sky; 'user': values from ``skylist``.
* A footprint is the image outline (pixel corners, optionally every ``stepsize`` pixels)
  taken to the sky with the WCS; two footprints intersect as spherical polygons (great
  circle edges). The overlap's vertices go back to pixels through the inverse WCS and
  the pixels inside are those of a scan-line fill after rounding the vertices to whole
  pixels (gwcs ``region.Polygon``), which is what decides the statistic's sample.
* Results go to ``meta.background`` (level, subtracted, method: BKGLEVEL, BKGSUB,
  BKGMETH) and ``meta.cal_step.skymatch``. With ``subtract=False`` (default) SCI is left
  alone and resample/outlier_detection subtract the level themselves.

Here the footprint intersection is done in the gnomonic (tangent-plane) projection, where
great circles are straight lines, so the overlap polygon has the same vertices; a vertex
that is an image corner keeps the exact sky coordinates the official one gets, so the
pixel masks agree pixel for pixel. Members are read one at a time: every statistic a
member contributes is computed in a single pass over its SCI and DQ.
"""

import logging
import math
from pathlib import Path

import numpy as np
from astropy.nddata.bitmask import bitfield_to_boolean_mask, interpret_bit_flags

from webbflow.errors import WebbflowError
from webbflow.io import read_product
from webbflow.kernels.skymatch import _clipped_sums, _histogram, _sum_sq_dev
from webbflow.wcs.sphere import tangent_basis, unit_vectors

log = logging.getLogger("webbflow.skymatch")

__all__ = ["skymatch", "sky_statistic", "footprint", "overlap_polygons", "fill_polygon",
           "solve_sky_deltas", "SKYMATCH_DEFAULTS"]

SKYMATCH_DEFAULTS = {
    "skymethod": "match", "match_down": True, "subtract": False, "skylist": None,
    "stepsize": None, "skystat": "mode", "dqbits": "~DO_NOT_USE+NON_SCIENCE",
    "lower": None, "upper": None, "nclip": 5, "lsigma": 4.0, "usigma": 4.0, "binwidth": 0.1,
}
_METHODS = ("local", "global", "match", "global+match", "user")
_TINY = 10.0 * np.finfo(np.float32).eps


# --------------------------------------------------------------------------------------
# the sky statistic (stsci.imagestats.ImageStats as SkyStats calls it)
# --------------------------------------------------------------------------------------

def sky_statistic(values, skystat="mode", *, lower=None, upper=None, nclip=5, lsigma=4.0,
                  usigma=4.0, binwidth=0.1):
    """(statistic, number of pixels used) of the 1-D ``values`` (cast to float32).

    Raises ValueError where imagestats does (no values, limits outside the data, every
    value clipped). The value keeps the numeric type the official one has (a numpy
    float64 for the histogram peak, float32 for 'median'): with ``subtract`` it is
    subtracted from float32 SCI, where the type decides the rounding."""
    values = np.ascontiguousarray(values, dtype=np.float32).ravel()
    if values.size == 0:
        raise ValueError("no data")
    if nclip < 0 or lsigma <= 0 or usigma <= 0 or binwidth <= 0:
        raise ValueError("nclip >= 0 and positive lsigma, usigma, binwidth are required")
    vmin, vmax = values.min(), values.max()
    if lower is None:
        lower = vmin
    elif lower > vmax or (upper is not None and lower > upper):
        raise ValueError("lower limit above the data")
    if upper is None:
        upper = vmax
    elif upper < vmin:
        raise ValueError("upper limit below the data")

    clipmin, clipmax = lower, upper
    for iteration in range(nclip + 1):
        # imagestats passes the limits to C as float and gets float results back
        n, total, lo, hi = _clipped_sums(values, np.float32(clipmin), np.float32(clipmax))
        if n <= 0:
            raise ValueError("every value clipped")
        mean = np.float32(total / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.float32(np.sqrt(np.float64(_sum_sq_dev(values, mean, lo, hi)) / (n - 1)))
        mean, std, lo, hi = float(mean), float(std), float(lo), float(hi)
        if iteration < nclip:
            clipmin = max(lower, mean - lsigma * std)
            clipmax = min(upper, mean + usigma * std)

    if skystat == "mean":
        return mean, n
    if skystat == "median":
        kept = values[(values <= np.float32(clipmax)) & (values >= np.float32(clipmin))] \
            if nclip > 0 else values
        return np.median(kept), n
    if skystat not in ("mode", "midpt"):
        raise ValueError(f"unknown skystat {skystat!r}")

    hwidth = binwidth * std
    drange = hi - lo
    if hwidth < _TINY or abs(drange) < _TINY or hwidth > drange:
        nbins, dz = 1, drange
    else:
        nbins = int((hi - lo) / hwidth) + 1
        dz = float(hi - lo) / float(nbins - 1)
    counts = _hist_counts(values, nbins, dz, lo)
    if skystat == "mode":
        return _histogram_peak(counts, lo, hwidth), n
    return _histogram_midpoint(counts, lo, hwidth), n


def _hist_counts(values, nbins, dz, low):
    width, low = np.float32(dz), np.float32(low)
    limit = low + width * nbins
    # the last edge is pulled in by one float32 epsilon when the top value would land
    # in a bin past the end, and the top value then counts in the last bin
    edge = np.float32(low + width * np.float32(nbins))
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (np.float32(1.0) / width) * (edge - low)
    # a zero width (every clipped value equal) gives NaN here, which C truncates to
    # INT_MIN: not inclusive, and an empty histogram
    inclusive = bool(np.isfinite(scaled)) and int(scaled) == nbins
    if inclusive:
        edge = np.float32(edge * np.float32(1.0 - np.finfo(np.float32).eps))
    limit = min(limit, edge)
    if not width > 0:
        return np.zeros(nbins, np.uint32)      # [low, low) holds nothing
    return _histogram(values, np.zeros(nbins, np.uint32), low, width, np.float32(limit),
                      inclusive)


def _histogram_peak(counts, low, hwidth):
    # positions are in units of binwidth x sigma although the bins are (max-min)/(n-1)
    # wide: imagestats' definition, kept
    nbins = counts.size
    if nbins == 1:
        return low + 0.5 * hwidth
    if nbins == 2:
        if counts[0] > counts[1]:
            return low + 0.5 * hwidth
        if counts[0] < counts[1]:
            return low + 1.5 * hwidth
        return low + hwidth
    peak = int(np.argmax(counts))
    if peak == 0:
        return low + 0.5 * hwidth
    if peak == nbins - 1:
        return low + (nbins - 0.5) * hwidth
    rise = counts[peak] - counts[peak - 1]
    fall = counts[peak] - counts[peak + 1]
    denom = rise + fall
    if denom == 0:
        return low + (peak + 0.5) * hwidth
    offset = peak + 1 + (0.5 * (int(rise) - int(fall)) / denom)
    return low + ((offset - 0.5) * hwidth)


def _histogram_midpoint(counts, low, hwidth):
    if counts.size <= 1:
        return counts[0]
    cumulative = np.cumsum(counts).astype(np.float32)
    cumulative = cumulative / cumulative[-1]
    lo = np.where(cumulative >= 0.5)[0][0]
    h1 = low + lo * hwidth
    step = cumulative[lo] if lo == 0 else cumulative[lo] - cumulative[lo - 1]
    if step == 0:
        return h1
    if lo == 0:
        return h1 + 0.5 / step * hwidth
    return h1 + ((0.5 - cumulative[lo - 1]) / step * hwidth)


# --------------------------------------------------------------------------------------
# footprints and overlaps
# --------------------------------------------------------------------------------------

def _radec(xyz):
    x, y, z = (np.asanyarray(xyz[:, k], dtype=np.float64) for k in range(3))
    lon = np.remainder(np.arctan2(y, x), 2.0 * np.pi)
    lat = np.arctan2(z, np.sqrt(x ** 2 + y ** 2))
    return np.rad2deg(lon), np.rad2deg(lat)


def footprint(wcs, shape, stepsize=None):
    """Unit vectors (n, 3) of the image outline, pixel corners (-0.5, -0.5) ... (nx-0.5,
    ny-0.5), with vertices every ``stepsize`` pixels along the sides (None: corners only),
    counter-clockwise in pixels, not closed."""
    ny, nx = shape
    if stepsize is None:
        nint_x = nint_y = 2
    else:
        nint_x = max(2, int(np.ceil((nx + 1.0) / stepsize)))
        nint_y = max(2, int(np.ceil((ny + 1.0) / stepsize)))
    xs = np.linspace(-0.5, nx - 0.5, nint_x, dtype=float)
    ys = np.linspace(-0.5, ny - 0.5, nint_y, dtype=float)[1:-1]
    bx = np.concatenate([xs, np.full(ys.size, nx - 0.5), xs[::-1], np.full(ys.size, -0.5)])
    by = np.concatenate([np.full(xs.size, -0.5), ys, np.full(xs.size, ny - 0.5), ys[::-1]])
    # the official outline is closed (first point repeated) before the WCS call
    ra, dec = wcs(np.append(bx, bx[0]), np.append(by, by[0]), with_bounding_box=False)
    return unit_vectors(np.asarray(ra)[:-1], np.asarray(dec)[:-1])


def _project(points, basis):
    centre, e1, e2 = basis
    depth = points @ centre
    return np.column_stack([points @ e1 / depth, points @ e2 / depth])


def _signed_area(poly):
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _is_convex(poly):
    edges = np.roll(poly, -1, axis=0) - poly
    turns = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    return bool(np.all(turns >= 0) or np.all(turns <= 0))


def overlap_polygons(points_a, points_b):
    """The intersection of two footprints (unit vectors, either orientation) as a list of
    closed unit-vector vertex arrays, and its area in the tangent plane (0 when they do
    not overlap). Vertices of either footprint inside the other are returned as given
    (bit for bit); edge crossings are computed in the gnomonic projection."""
    basis = tangent_basis(np.vstack([points_a, points_b]))
    plane_a, plane_b = _project(points_a, basis), _project(points_b, basis)
    if _signed_area(plane_a) < 0:
        points_a, plane_a = points_a[::-1], plane_a[::-1]
    if _signed_area(plane_b) < 0:
        points_b, plane_b = points_b[::-1], plane_b[::-1]
    if _is_convex(plane_b):
        pieces = [_clip_convex(plane_a, points_a, plane_b, points_b)]
    elif _is_convex(plane_a):
        pieces = [_clip_convex(plane_b, points_b, plane_a, points_a)]
    else:
        # outlines with many vertices (stepsize) bend with the distortion
        pieces = _clip_general(plane_a, points_a, plane_b, points_b)
    centre, e1, e2 = basis
    out, area = [], 0.0
    for piece in pieces:
        if len(piece) < 3:
            continue
        piece_area = abs(_signed_area(np.array([p for p, _ in piece])))
        if piece_area == 0.0:
            continue
        area += piece_area
        vertices = []
        for (xi, eta), original in piece:
            if original is None:
                original = centre + xi * e1 + eta * e2
                original = original / np.linalg.norm(original)
            vertices.append(original)
        vertices.append(vertices[0])
        out.append(np.array(vertices))
    return out, area


def _clip_convex(plane_s, points_s, plane_c, points_c):
    """Sutherland-Hodgman: polygon s clipped by each edge of the convex polygon c (both
    counter-clockwise). Vertices are (plane point, unit vector or None for crossings).
    A vertex of c inside s comes out as the crossing of two clip edges; it is given back
    its own unit vector."""
    subject = [(tuple(p), v) for p, v in zip(plane_s, points_s)]
    for k in range(len(plane_c)):
        c1, c2 = plane_c[k], plane_c[(k + 1) % len(plane_c)]
        if not subject:
            break
        clipped = []
        for m in range(len(subject)):
            cur, prev = subject[m], subject[m - 1]
            cur_in = _left_of(c1, c2, cur[0]) >= 0
            prev_in = _left_of(c1, c2, prev[0]) >= 0
            if cur_in:
                if not prev_in:
                    clipped.append((_crossing(c1, c2, prev[0], cur[0]), None))
                clipped.append(cur)
            elif prev_in:
                clipped.append((_crossing(c1, c2, prev[0], cur[0]), None))
        subject = clipped
    scale = np.abs(plane_c).max() + np.abs(plane_s).max()
    for m, (point, original) in enumerate(subject):
        if original is None:
            gap = np.abs(plane_c - np.asarray(point)).sum(axis=1)
            k = int(np.argmin(gap))
            if gap[k] <= 1e-9 * scale:
                subject[m] = (tuple(plane_c[k]), points_c[k])
    return subject


def _inside(poly, p):
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    straddle = (y > p[1]) != (yn > p[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = x + (p[1] - y) * (xn - x) / (yn - y)
    return bool(np.count_nonzero(straddle & (p[0] < xcross)) % 2)


def _clip_general(plane_a, points_a, plane_b, points_b):
    """Greiner-Hormann intersection of two simple polygons (no vertex on the other's
    edges): the crossings split both outlines, then the pieces inside are walked."""
    na, nb = len(plane_a), len(plane_b)
    # every crossing: (edge of a, position along it, edge of b, position along it)
    crossings = []
    for i in range(na):
        p, r = plane_a[i], plane_a[(i + 1) % na] - plane_a[i]
        q = plane_b
        s = np.roll(plane_b, -1, axis=0) - plane_b
        denom = r[0] * s[:, 1] - r[1] * s[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((q[:, 0] - p[0]) * s[:, 1] - (q[:, 1] - p[1]) * s[:, 0]) / denom
            u = ((q[:, 0] - p[0]) * r[1] - (q[:, 1] - p[1]) * r[0]) / denom
        for j in np.nonzero((denom != 0) & (t > 0) & (t < 1) & (u > 0) & (u < 1))[0]:
            crossings.append((i, float(t[j]), int(j), float(u[j])))
    if not crossings:
        if _inside(plane_b, plane_a[0]):
            return [[(tuple(p), v) for p, v in zip(plane_a, points_a)]]
        if _inside(plane_a, plane_b[0]):
            return [[(tuple(p), v) for p, v in zip(plane_b, points_b)]]
        return []

    def ring(plane, points, key):
        nodes = []
        for k in range(len(plane)):
            nodes.append({"pt": tuple(plane[k]), "v": points[k], "x": None})
            here = sorted((c for c in range(len(crossings)) if crossings[c][key] == k),
                          key=lambda c: crossings[c][key + 1])
            for c in here:
                i, t = crossings[c][0], crossings[c][1]
                pt = tuple(plane_a[i] + t * (plane_a[(i + 1) % na] - plane_a[i]))
                nodes.append({"pt": pt, "v": None, "x": c})
        return nodes

    ring_a, ring_b = ring(plane_a, points_a, 0), ring(plane_b, points_b, 2)
    where_b = {node["x"]: k for k, node in enumerate(ring_b) if node["x"] is not None}
    where_a = {node["x"]: k for k, node in enumerate(ring_a) if node["x"] is not None}
    for nodes, other in ((ring_a, plane_b), (ring_b, plane_a)):
        status = _inside(other, nodes[0]["pt"])
        for node in nodes:
            if node["x"] is not None:
                node["entry"] = not status
                status = not status
    visited = set()
    pieces = []
    for start in range(len(ring_a)):
        if ring_a[start]["x"] is None or ring_a[start]["x"] in visited:
            continue
        piece = []
        nodes, k = ring_a, start
        while True:
            node = nodes[k]
            visited.add(node["x"])
            piece.append((node["pt"], None))
            step = 1 if node["entry"] else -1
            while True:
                k = (k + step) % len(nodes)
                if nodes[k]["x"] is not None:
                    break
                piece.append((nodes[k]["pt"], nodes[k]["v"]))
            crossing = nodes[k]["x"]
            if crossing in visited:
                break
            nodes = ring_b if nodes is ring_a else ring_a
            k = (where_b if nodes is ring_b else where_a)[crossing]
        pieces.append(piece)
    return pieces


def _left_of(a, b, p):
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _crossing(a, b, p, q):
    da, dp = _left_of(a, b, p), _left_of(a, b, q)
    t = da / (da - dp)
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


def fill_polygon(mask, xs, ys):
    """Set ``mask`` True inside the closed pixel polygon (xs, ys) as gwcs
    ``region.Polygon.scan`` does: vertices rounded half-to-even to whole pixels (after a
    shift that makes them non-negative), scan lines through the rounded vertices, spans
    from the ceiling of each crossing, both ends included, the topmost scan line using
    the edges of the line below it. Returns ``mask``."""
    ny, nx = mask.shape
    shift_x = min(0, min(xs))
    shift_y = min(0, min(ys))
    vx = [round(x - shift_x) for x in xs]
    vy = [round(y - shift_y) for y in ys]
    shift_x, shift_y = round(shift_x), round(shift_y)
    x0, y0 = min(vx), min(vy)
    width, top = max(vx) - x0, max(vy)
    if width <= 0:
        return mask
    edges = []
    for k in range(1, len(vx)):
        (sx, sy), (ex, ey) = (vx[k - 1], vy[k - 1]), (vx[k], vy[k])
        if sy != ey:
            edges.append((sx, sy, ex - sx, ey - sy, min(sy, ey), max(sy, ey)))
    active = []
    for y in range(y0, top + 1):
        if y < top:
            active = [e for e in active if e[5] != y] + \
                     [e for e in edges if e[4] == y and e[5] != y]
        row = y + shift_y
        if row < 0 or row >= ny:
            continue
        # the crossing x = start + t*dx with t = width*(sy - y) / (-dy*width), in float64
        # as numpy evaluates it from the integer vertices
        crossings = sorted(math.ceil((width * (sy - y)) / (-dy * width) * dx + sx)
                           for sx, sy, dx, dy, _, _ in active)
        for start, stop in zip(crossings[::2], crossings[1::2]):
            # plain slicing, negative ends included, as the official fill does
            mask[row, max(0, start + shift_x):min(stop + shift_x, nx - 1) + 1] = True
    return mask


# --------------------------------------------------------------------------------------
# the match solution
# --------------------------------------------------------------------------------------

def solve_sky_deltas(skies, weights):
    """Least-squares sky offsets from the pairwise overlap statistics: ``skies[j, i]`` is
    input i's sky in its overlap with input j, ``weights[j, i]`` its pixel count. Inputs
    in no valid pair get NaN. As stcal: equations w_ij (d_i - d_j) = w_ij (s_i - s_j)
    with w_ij the mean of both counts, solved with the pseudo-inverse (rcond 1e-12)."""
    n = skies.shape[0]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)
             if weights[i, j] > 0 and weights[j, i] > 0]
    mean_w = 0.5 * (weights + weights.T)
    coeffs = np.zeros((len(pairs), n))
    rhs = np.zeros(len(pairs))
    used = np.zeros(n, bool)
    for row, (i, j) in enumerate(pairs):
        coeffs[row, i], coeffs[row, j] = mean_w[i, j], -mean_w[i, j]
        rhs[row] = mean_w[i, j] * (skies[j, i] - skies[i, j])
        used[i] = used[j] = True
    try:
        rank = np.linalg.matrix_rank(coeffs, 1.0e-12)
    except np.linalg.LinAlgError:
        log.warning("Unable to compute sky: no valid data in common image areas")
        return np.full(n, np.nan)
    if rank < n - 1:
        log.warning("%d sky values but only %d independent overlap equations: sky is "
                    "matched only within subsets of the inputs", n, rank)
    deltas = np.linalg.pinv(coeffs, rcond=1.0e-12) @ rhs
    deltas[~used] = np.nan
    return deltas


# --------------------------------------------------------------------------------------
# the step
# --------------------------------------------------------------------------------------

def skymatch(cal_paths, metas, options, dqflags, *, group_ids=None):
    """Run skymatch over one association's members.

    ``metas``: each member's meta (with ``meta["wcs"]``, a gwcs), updated in place:
    ``background`` {level, subtracted, method} and ``cal_step.skymatch``. ``group_ids``:
    each member's exposure group (default: one group per member). Returns, per member,
    the values to subtract from its SCI in this order (empty unless ``subtract``)."""
    opts = {**SKYMATCH_DEFAULTS, **{k: v for k, v in options.items() if k != "skip"}}
    method = str(opts["skymethod"]).lower()
    if method not in _METHODS:
        raise WebbflowError(cal_paths[0], f"unknown skymatch skymethod {method!r}")
    subtract = bool(opts["subtract"])
    if method == "user":
        return _user_sky(cal_paths, metas, opts, subtract)

    previous = [_previous_level(path, meta, subtract) for path, meta in zip(cal_paths, metas)]
    groups = {}
    for index, gid in enumerate(group_ids or range(len(cal_paths))):
        groups.setdefault(gid, []).append(index)
    inputs = list(groups.values())            # lists of member indices
    owner = {i: k for k, members in enumerate(inputs) for i in members}
    # the official image sky starts at 0, or at the level already subtracted
    sky = [previous[i] if subtract else 0.0 for i in range(len(cal_paths))]
    shapes = [_shape(path) for path in cal_paths]
    outlines = [footprint(meta["wcs"], shape, opts["stepsize"])
                for meta, shape in zip(metas, shapes)]
    stat = _statistic(opts)
    do_match, do_global = "match" in method, "global" in method
    subtractions = [[] for _ in cal_paths]

    # one pass over the members: each one's statistic over all its good pixels and over
    # its overlap with every other input
    full, over = {}, {}
    for i, path in enumerate(cal_paths):
        data, good = _read_sky_pixels(path, opts["dqbits"], dqflags)
        if do_global or not do_match:
            full[i] = _calc(stat, data[good])
        if do_match:
            for k, members in enumerate(inputs):
                if k == owner[i]:
                    continue
                over[i, k] = _overlap_stat(stat, data, good, metas[i]["wcs"], outlines[i],
                                           [outlines[j] for j in members])
        del data, good

    valid = [False] * len(cal_paths)
    if do_match:
        n = len(inputs)
        skies, weights = np.zeros((n, n)), np.zeros((n, n))
        for a in range(n):
            for b in range(a + 1, n):
                s1, w1, area1 = _input_overlap(inputs[a], b, over, sky, not subtract)
                s2, w2, area2 = _input_overlap(inputs[b], a, over, sky, not subtract)
                if area1 == 0.0 or area2 == 0.0 or s1 is None or s2 is None:
                    continue
                skies[b, a], weights[b, a] = s1, w1
                skies[a, b], weights[a, b] = s2, w2
        deltas = solve_sky_deltas(skies, weights)
        good = np.isfinite(deltas)
        if good.any():
            deltas[good] -= np.amin(deltas[good]) if opts["match_down"] \
                else np.amax(deltas[good])
        deltas = [float(d) if np.isfinite(d) else None for d in deltas]
        _apply(inputs, deltas, sky, valid, subtractions, subtract, use_global=False)

    if do_global or not do_match:
        if subtract and do_match:
            # the global statistic is taken on SCI after the match offsets came off
            for i, path in enumerate(cal_paths):
                data, good = _read_sky_pixels(path, opts["dqbits"], dqflags)
                for value in subtractions[i]:
                    data -= value
                full[i] = _calc(stat, data[good])
                del data, good
        values = [_input_full(members, full, sky, not subtract) for members in inputs]
        if do_global:
            finite = [v for v in values if v is not None]
            lowest = None
            for v in finite:
                if lowest is None or v < lowest:
                    lowest = v
            if lowest is None:
                log.warning('Unable to compute "global" sky value')
            values = [lowest] * len(inputs)
        _apply(inputs, values, sky, valid, subtractions, subtract, use_global=do_global)

    for i, meta in enumerate(metas):
        status = "COMPLETE" if valid[i] else "SKIPPED"
        if valid[i]:
            meta["background"] = {**(meta.get("background") or {}), "level": sky[i],
                                  "subtracted": subtract, "method": method}
        meta.setdefault("cal_step", {})["skymatch"] = status
        log.info("%s: sky %s%s", Path(cal_paths[i]).name, sky[i],
                 "" if valid[i] else " (not computed: skymatch SKIPPED)")
    return [tuple(s) for s in subtractions]


def _statistic(opts):
    def stat(values):
        return sky_statistic(values, opts["skystat"], lower=opts["lower"], upper=opts["upper"],
                             nclip=opts["nclip"], lsigma=opts["lsigma"],
                             usigma=opts["usigma"], binwidth=opts["binwidth"])
    return stat


def _calc(stat, values):
    """(sky, npix) or (None, 0) as SkyImage.calc_sky (before the delta)."""
    if values.size < 1:
        return None, 0
    try:
        value, npix = stat(values)
    except ValueError:
        return None, 0
    if not np.isfinite(value):
        return None, 0
    return value, npix


def _overlap_stat(stat, data, good, wcs, outline, others):
    """(sky, npix, area) of one image over its overlap with the footprints ``others``."""
    mask = np.zeros(data.shape, bool)
    area = 0.0
    polygons = []
    for other in others:
        pieces, piece_area = overlap_polygons(outline, other)
        if piece_area == 0.0:
            continue
        area += piece_area
        polygons += pieces
    if area == 0.0:
        return None, 0, 0.0
    for vertices in polygons:
        if len(vertices) < 4:
            continue
        ra, dec = _radec(vertices)
        x, y = wcs.invert(ra, dec, with_bounding_box=False)
        fill_polygon(mask, list(np.asarray(x)), list(np.asarray(y)))
    mask &= good
    value, npix = _calc(stat, data[mask])
    if value is None:
        return None, 0, 0.0
    return value, npix, area


def _input_overlap(members, other, over, sky, delta):
    """An input's (sky, weight, area) in its overlap with input ``other``: its image's,
    or for a group the pixel-weighted mean over its images."""
    if len(members) == 1:
        i = members[0]
        value, npix, area = over[i, other]
        if value is None:
            return None, 0, area
        return (value - sky[i] if delta else value), npix, area
    total, weight, area = 0.0, 0, 0.0
    for i in members:
        value, npix, area1 = over[i, other]
        area += area1
        if value is not None and npix > 0:
            total += (value - sky[i] if delta else value) * npix
            weight += npix
    if weight == 0 or area == 0.0:
        return None, weight, area
    return total / weight, weight, area


def _input_full(members, full, sky, delta):
    """An input's sky over all its pixels: its image's, or a group's lowest image sky."""
    lowest = None
    for i in members:
        value, _ = full[i]
        if value is None:
            continue
        if delta:
            value = value - sky[i]
        if lowest is None or lowest > value:
            lowest = value
    return lowest


def _apply(inputs, values, sky, valid, subtractions, subtract, *, use_global):
    for members, value in zip(inputs, values):
        if use_global:
            ok = True if value is not None else valid[members[0]]
        else:
            ok = value is not None
        if value is None:
            value = 0.0
        for i in members:
            if subtract:
                subtractions[i].append(value)
            sky[i] += value
            valid[i] = ok


def _previous_level(path, meta, subtract):
    background = meta.get("background") or {}
    level, done = background.get("level"), background.get("subtracted")
    if done is None:
        if level is not None:
            raise WebbflowError(path, "background level is set but BKGSUB is not")
        return 0.0
    if level is None:
        raise WebbflowError(path, "background was subtracted but BKGLEVEL is not set")
    if bool(done) != subtract:
        raise WebbflowError(path, "skymatch subtract differs from the BKGSUB already "
                                  "recorded in this file")
    return level


def _shape(path):
    with read_product(path, require=("data",)) as cal:
        return tuple(cal.shape("data")[-2:])


def _read_sky_pixels(path, dqbits, dqflags):
    """float32 SCI and the mask of pixels the statistic may use."""
    with read_product(path, require=("data", "dq")) as cal:
        data = np.array(cal["data"], dtype=np.float32)
        dq = np.asarray(cal["dq"])
        bad = interpret_bit_flags(dqbits, flag_name_map=dqflags)
        if bad is None:
            good = np.isfinite(data)
        else:
            good = bitfield_to_boolean_mask(dq, bad, good_mask_value=True, dtype=bool)
            good &= np.isfinite(data)
    return data, good


_SUFFIXES = ("cal", "crf", "i2d", "skymatch", "outlier_detection", "tweakreg", "rate")


def _stem(name):
    stem = Path(str(name)).stem
    head, _, tail = stem.rpartition("_")
    return head if head and tail in _SUFFIXES else stem


def _user_sky(cal_paths, metas, opts, subtract):
    """skymethod 'user': levels from ``skylist`` (lines 'file sky'), matched to members by
    file name without its suffix; stored as float32, as the official reads them."""
    if opts["skylist"] is None:
        raise WebbflowError(cal_paths[0], 'skymethod "user" needs a skylist file')
    table = np.genfromtxt(opts["skylist"], dtype=[("fname", "<S128"), ("sky", "f")],
                          ndmin=1)
    names = np.array([_stem(n) for n in table["fname"].astype(str)])
    if len(table) != len(cal_paths):
        raise WebbflowError(opts["skylist"], f"{len(table)} sky values for "
                                             f"{len(cal_paths)} images")
    out = []
    for path, meta in zip(cal_paths, metas):
        stem = _stem(meta.get("filename") or Path(path).name)
        found = table["sky"][names == stem]
        if len(found) != 1:
            raise WebbflowError(opts["skylist"], f"{stem} appears {len(found)} times")
        level = float(found[0])
        meta["background"] = {**(meta.get("background") or {}), "level": level,
                              "subtracted": subtract, "method": "user"}
        meta.setdefault("cal_step", {})["skymatch"] = "COMPLETE"
        out.append((level,) if subtract else ())
    return out
