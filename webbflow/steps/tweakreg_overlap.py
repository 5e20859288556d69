"""The order in which tweakreg aligns exposure groups when it expands its reference catalog
(``expand_refcat`` without ``enforce_user_order``, which alignment to ``abs_refcat``
implies): largest sky overlap first, as tweakwcs ``align_wcs`` chooses it.

What the official chain (tweakwcs 0.8 ``imalign._max_overlap_pair`` /
``_max_overlap_image`` on ``wcsimage`` polygons and spherical_geometry) does, and this
module reproduces with its own spherical geometry:

* an image's polygon is the convex hull of its catalog's sources in pixel coordinates
  (vertices closer than 1e-4 pixel dropped), its vertices taken to the sky through the
  image's WCS and joined by great circles; with one to three sources a small box or the
  least-area rectangle around them, replaced by an axis-aligned rectangle clipped to the
  bounding box when it reaches outside; without sources, the outline of the bounding box
  (shrunk by half a pixel, three intervals a side);
* a group's polygon is the union of its images' polygons;
* the reference catalog's polygon is the convex hull of its sources on the sky (in the
  gnomonic plane about their mean direction, as tweakwcs ``RefCatalog``); it grows with
  every group whose sources are added to it;
* overlap of two groups: the sum over the first group's images of the area of the image
  polygon intersected with the second group's union; overlap with the reference
  catalog: the area of its hull intersected with the group's union;
* the pair to start from: the largest entry of the symmetric overlap matrix (row-major
  first), its row or column whichever has the larger overlap sum becomes the reference;
  the other groups are re-ordered by their overlap with it (``numpy.argsort``, reversed);
  then each next group is the one (first of equals) overlapping the reference catalog
  most. With two groups, or in user order, the input order.

The areas are exact spherical areas (steradians): the intersection with a union is the
integral over its boundary (the parts of the edges of one polygon inside the others), and
the area of a closed boundary is the sum of the signed spherical triangles it makes with
the projection centre (Van Oosterom-Strackee). In the gnomonic projection great circles
are straight lines, so the boundary pieces are found with plane segment crossings.
spherical_geometry (Girard's angle sum) computes the same areas to about 1e-6 relative for
these small polygons; choices that depend on a smaller difference cannot be reproduced.
"""

import math

import numpy as np

from webbflow.wcs.sphere import tangent_basis, unit_vectors

__all__ = ["convex_hull", "image_polygon", "refcat_polygon", "overlap_area",
           "group_overlap", "max_overlap_pair", "max_overlap_image"]


def convex_hull(x, y, min_separation=None):
    """Convex hull (Andrew's monotone chain) of points, counter-clockwise from the
    lexicographically smallest, closed (first vertex repeated) unless it is one point.
    ``min_separation``: a vertex within this distance in both x and y of the next one is
    dropped (scanning backwards from the second to last), as tweakwcs ``convex_hull``."""
    points = sorted(set(zip(np.asarray(x, float).tolist(), np.asarray(y, float).tolist())))
    if not points:
        return np.zeros(0), np.zeros(0)
    if len(points) == 1:
        return np.array([points[0][0]]), np.array([points[0][1]])

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in points:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(points):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper, np.float64)
    xs, ys = hull[:, 0], hull[:, 1]
    if min_separation is not None:
        keep = list(range(xs.size))
        for k in range(xs.size - 2, 0, -1):
            if abs(xs[k] - xs[k + 1]) <= min_separation and \
                    abs(ys[k] - ys[k + 1]) <= min_separation:
                keep.pop(k)
        xs, ys = xs[keep], ys[keep]
    return xs, ys


def _min_area_rectangle(x, y, xp, yp):
    """The least-area rectangle (sides along a hull edge, half a pixel of margin) around
    the points, closed; ``xp``, ``yp``: their hull (original points when it has <= 3)."""
    if len(xp) <= 3:
        xi, yi = list(x) + [x[0]], list(y) + [y[0]]
    else:
        xi, yi = list(xp), list(yp)
    best, out = np.inf, None
    for k in range(len(xi) - 1):
        dx, dy = xi[k + 1] - xi[k], yi[k + 1] - yi[k]
        d = math.hypot(dx, dy)
        if d == 0:
            continue
        dx, dy = dx / d, dy / d
        du, dv = -dy, dx
        u = [(px - xi[k]) * dx + (py - yi[k]) * dy for px, py in zip(xi, yi)]
        v = [(px - xi[k]) * du + (py - yi[k]) * dv for px, py in zip(xi, yi)]
        u0, u1, v0, v1 = min(u) - 0.5, max(u) + 0.5, min(v) - 0.5, max(v) + 0.5
        area = (u1 - u0) * (v1 - v0)
        if area < best:
            best = area
            corners = [(u0, v0), (u1, v0), (u1, v1), (u0, v1), (u0, v0)]
            out = (np.array([xi[k] + a * dx + b * du for a, b in corners]),
                   np.array([yi[k] + a * dy + b * dv for a, b in corners]))
    return out


def _clipped_box(x, y, bbox):
    """An axis-aligned rectangle around the points (half a pixel of margin, at least a
    pixel wide) clipped to the bounding box, closed."""
    (xlo_b, xhi_b), (ylo_b, yhi_b) = bbox
    xlo, xhi = max(min(x) - 0.5, xlo_b), min(max(x) + 0.5, xhi_b)
    ylo, yhi = max(min(y) - 0.5, ylo_b), min(max(y) + 0.5, yhi_b)
    if xhi - xlo < 1:
        if xhi == xhi_b:
            xlo = max(xhi - 1.0, xlo_b)
        elif xlo == xlo_b:
            xhi = min(xlo + 1.0, xhi_b)
    if yhi - ylo < 1:
        if yhi == yhi_b:
            ylo = max(yhi - 1.0, ylo_b)
        elif ylo == ylo_b:
            yhi = min(ylo + 1.0, yhi_b)
    return np.array([xlo, xhi, xhi, xlo, xlo]), np.array([ylo, ylo, yhi, yhi, ylo])


def _chip_outline(bbox, x, y):
    if bbox is None or not np.all(np.isfinite(np.asarray(bbox, float))):
        lx = ly = -0.5
        hx = max(1, int(np.ceil(np.amax(x, initial=1)))) - 0.5
        hy = max(1, int(np.ceil(np.amax(y, initial=1)))) - 0.5
    else:
        (lx, hx), (ly, hy) = bbox
        lx, hx, ly, hy = lx + 0.5, hx - 0.5, ly + 0.5, hy - 0.5
    xs = np.linspace(lx, hx, 4)
    ys = np.linspace(ly, hy, 4)[1:-1]
    bx = np.concatenate([xs, np.full(ys.size, hx), xs[::-1], np.full(ys.size, lx)])
    by = np.concatenate([np.full(xs.size, ly), ys, np.full(xs.size, hy), ys[::-1]])
    return np.append(bx, bx[0]), np.append(by, by[0])


def image_polygon(x, y, det_to_world, bbox):
    """An image's polygon on the sky, (n, 3) unit vectors (not closed): the hull of its
    sources (x, y: 0-based pixels) or, without sources, its bounding-box outline.
    ``det_to_world(x, y)`` -> (ra, dec) deg; ``bbox``: ((xlo, xhi), (ylo, yhi)) or None."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        xp, yp = _chip_outline(bbox, x, y)
    else:
        xp = yp = None
        if x.size > 2:
            xp, yp = convex_hull(x, y, min_separation=0.0001)
            if x.size > 3 and len(xp) > 3:
                return _sky_ring(det_to_world, xp, yp)
        if x.size == 1:
            xp = np.array([x[0] - 0.5, x[0] + 0.5, x[0] + 0.5, x[0] - 0.5, x[0] - 0.5])
            yp = np.array([y[0] - 0.5, y[0] - 0.5, y[0] + 0.5, y[0] + 0.5, y[0] - 0.5])
        elif x.size == 2:
            dx, dy = x[1] - x[0], y[1] - y[0]
            d = math.hypot(dx, dy)
            c = 0.5 * np.array([x[0] + x[1], y[0] + y[1]])
            if d < 0.0001:
                u, v = np.array([0.5, 0.0]), np.array([0.0, 0.5])
            else:
                u = np.array([dx, dy]) / (2.0 * d)
                v = np.array([-dy, dx]) / (2.0 * d)
            p1, p2 = c - (d + 1) * u - v, c + (d + 1) * u - v
            p3, p4 = c + (d + 1) * u + v, c - (d + 1) * u + v
            xp, yp = np.array([p1, p2, p3, p4, p1]).T
        else:
            xp, yp = _min_area_rectangle(x, y, xp, yp)
        if bbox is not None and np.all(np.isfinite(np.asarray(bbox, float))):
            (xlo, xhi), (ylo, yhi) = bbox
            if xp.min() < xlo or xp.max() > xhi or yp.min() < ylo or yp.max() > yhi:
                xp, yp = _clipped_box(x, y, bbox)
    return _sky_ring(det_to_world, xp, yp)


def _sky_ring(det_to_world, xp, yp):
    ra, dec = det_to_world(np.asarray(xp, float), np.asarray(yp, float))
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    ring = unit_vectors(ra[:-1], dec[:-1])  # the last vertex closes the ring
    return ring[np.isfinite(ring).all(axis=1)]


def _rot3(angle, axis):
    c, s = math.cos(angle), math.sin(angle)
    m = np.eye(3)
    i, j = [k for k in range(3) if k != axis]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, s, -s, c
    return m


def refcat_polygon(ra, dec, footprint_tol=1.0):
    """A reference catalog's polygon, (n, 3) unit vectors (not closed): the convex hull
    of its sources (finite RA, Dec) in the gnomonic plane about their mean direction
    (tweakwcs ``RefCatalog``: rotated by RA about z after Dec about y, vertices closer
    than 1e-11 dropped; one to two sources: a box ``footprint_tol`` wide)."""
    ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return None
    vec = unit_vectors(ra[ok], dec[ok]).T
    mean = vec.mean(axis=1)
    ra_ref = math.degrees(math.atan2(mean[1], mean[0]))
    dec_ref = math.degrees(math.atan2(mean[2], math.hypot(mean[0], mean[1])))
    rot = _rot3(math.radians(ra_ref), 2) @ _rot3(math.radians(dec_ref), 1)
    xr, yr, zr = rot @ vec
    xv, yv = convex_hull(yr / xr, zr / xr, min_separation=1e-11)
    tol = 0.5 * footprint_tol
    if len(xv) == 1:
        xv = [xv[0] - tol, xv[0] - tol, xv[0] + tol, xv[0] + tol, xv[0] - tol]
        yv = [yv[0] - tol, yv[0] + tol, yv[0] + tol, yv[0] - tol, yv[0] - tol]
    elif len(xv) in (2, 3):
        vx, vy = yv[1] - yv[0], xv[1] - xv[0]
        norm = math.hypot(vx, vy)
        vx, vy = vx / norm, vy / norm
        xv = [xv[0] - (vx - vy) * tol, xv[0] - (vx + vy) * tol, xv[1] + (vx - vy) * tol,
              xv[1] + (vx + vy) * tol, xv[0] - (vx - vy) * tol]
        yv = [yv[0] - (vy + vx) * tol, yv[0] - (vy - vx) * tol, yv[1] + (vy + vx) * tol,
              yv[1] + (vy - vx) * tol, yv[0] - (vy + vx) * tol]
    xv, yv = np.asarray(xv, float), np.asarray(yv, float)
    back = np.linalg.inv(rot) @ np.array([np.ones_like(xv), xv, yv])
    back /= np.linalg.norm(back, axis=0)
    return back.T[:-1]


# ------------------------------------------------------------------ areas on the sphere

def _triangles(centre, p, q):
    """Signed areas (sr) of the spherical triangles (centre, p_k, q_k)."""
    det = np.einsum("ij,ij->i", p, np.cross(q, centre))
    den = 1.0 + p @ centre + q @ centre + np.einsum("ij,ij->i", p, q)
    return 2.0 * np.arctan2(det, den)


def _inside(poly, pts):
    """Even-odd test of points (m, 2) against a plane polygon (n, 2)."""
    x, y = poly[:, 0][None, :], poly[:, 1][None, :]
    xn, yn = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    px, py = pts[:, 0][:, None], pts[:, 1][:, None]
    straddle = (y > py) != (yn > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = x + (py - y) * (xn - x) / (yn - y)
    return (np.count_nonzero(straddle & (px < xcross), axis=1) % 2) == 1


def _polygon_area(ring):
    centre, _, _ = tangent_basis(ring)
    return abs(float(_triangles(centre, ring, np.roll(ring, -1, axis=0)).sum()))


def overlap_area(polygon, others):
    """Spherical area (sr) of ``polygon`` intersected with the union of ``others`` (each
    (n, 3) unit vectors, not closed, either orientation, simple, within a hemisphere)."""
    if polygon is None or len(polygon) < 3:
        return 0.0
    unique = []
    for other in others:
        if other is None or len(other) < 3:
            continue
        if any(len(o) == len(other) and np.array_equal(o, other) for o in unique):
            continue
        unique.append(np.asarray(other, np.float64))
    if not unique:
        return 0.0
    polygon = np.asarray(polygon, np.float64)
    if any(len(o) == len(polygon) and np.array_equal(o, polygon) for o in unique):
        return _polygon_area(polygon)
    centre, e1, e2 = tangent_basis(np.vstack([polygon] + unique))
    rings, planes = [], []
    for ring in [polygon] + unique:
        depth = ring @ centre
        plane = np.column_stack([ring @ e1 / depth, ring @ e2 / depth])
        x, y = plane[:, 0], plane[:, 1]
        signed = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
        if signed < 0:
            ring, plane = ring[::-1], plane[::-1]
        rings.append(ring)
        planes.append(plane)
    lo = planes[0].min(axis=0)
    hi = planes[0].max(axis=0)
    if not any(np.all(p.max(axis=0) >= lo) and np.all(p.min(axis=0) <= hi)
               for p in planes[1:]):
        return 0.0
    total = 0.0
    for k, (ring, plane) in enumerate(zip(rings, planes)):
        others_k = [j for j in range(len(planes)) if j != k]
        a = np.vstack([planes[j] for j in others_k])
        b = np.vstack([np.roll(planes[j], -1, axis=0) for j in others_k])
        s = b - a
        p = plane
        r = np.roll(plane, -1, axis=0) - plane
        denom = r[:, None, 0] * s[None, :, 1] - r[:, None, 1] * s[None, :, 0]
        qp = a[None, :, :] - p[:, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (qp[..., 0] * s[None, :, 1] - qp[..., 1] * s[None, :, 0]) / denom
            u = (qp[..., 0] * r[:, None, 1] - qp[..., 1] * r[:, None, 0]) / denom
        hit = (denom != 0) & (t > 0) & (t < 1) & (u >= 0) & (u <= 1)
        starts, ends, mids = [], [], []
        nxt = np.roll(ring, -1, axis=0)
        for i in range(len(plane)):
            ts = np.concatenate([[0.0], np.sort(t[i][hit[i]]), [1.0]])
            pts = p[i] + ts[:, None] * r[i]
            vec = centre + pts[:, :1] * e1 + pts[:, 1:] * e2
            vec /= np.linalg.norm(vec, axis=1)[:, None]
            vec[0], vec[-1] = ring[i], nxt[i]
            starts.append(vec[:-1])
            ends.append(vec[1:])
            mids.append(0.5 * (pts[:-1] + pts[1:]))
        starts, ends, mids = np.vstack(starts), np.vstack(ends), np.vstack(mids)
        if k == 0:
            keep = np.zeros(len(mids), bool)
            for j in range(1, len(planes)):
                keep |= _inside(planes[j], mids)
        else:
            keep = _inside(planes[0], mids)
            for j in range(1, len(planes)):
                if j != k:
                    keep &= ~_inside(planes[j], mids)
        if keep.any():
            total += float(_triangles(centre, starts[keep], ends[keep]).sum())
    return max(total, 0.0)


# --------------------------------------------------------------------------- ordering

def group_overlap(polygons_a, polygons_b):
    """Overlap of two groups (lists of image polygons), tweakwcs' measure: the sum over
    the first group's images of their intersection with the second group's union."""
    return sum(overlap_area(p, polygons_b) for p in polygons_a)


def max_overlap_pair(groups, user_order):
    """tweakwcs ``_max_overlap_pair`` on a list of groups (each a list of image
    polygons; only called with two or more): (reference index, first index to align,
    their overlap, the remaining indices in the order to try)."""
    order = list(range(len(groups)))
    if len(groups) == 2 or user_order:
        return 0, 1, group_overlap(groups[0], groups[1]), order[2:]
    n = len(groups)
    m = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            m[i, j] = m[j, i] = group_overlap(groups[i], groups[j])
    i, j = np.unravel_index(m.argmax(), m.shape)
    if np.sum(m[i]) < np.sum(m[:, j]):
        i, j = j, i
    area = m[i, j]
    ref = order.pop(i)
    current = order.pop(j - 1 if i < j else j)
    row = np.delete(np.delete(m[i], i), j - 1 if i < j else j)
    rest = [order[k] for k in np.argsort(row)[::-1]]
    return ref, current, area, rest


def max_overlap_image(refcat_poly, groups, remaining, user_order):
    """tweakwcs ``_max_overlap_image``: (index popped from ``remaining``, its overlap
    with the reference catalog polygon or None in user order); (None, None) when none
    remain. ``remaining`` is modified."""
    if not remaining:
        return None, None
    if user_order:
        return remaining.pop(0), None
    areas = [overlap_area(refcat_poly, groups[k]) for k in remaining]
    idx = int(np.argmax(areas))
    return remaining.pop(idx), areas[idx]
