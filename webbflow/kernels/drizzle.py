"""Drizzle and blot kernels: numba rebuild of ``drizzle.cdrizzle`` (drizzle 2.2.0).

What is reproduced (bit for bit where it was checked, see tests/kernels/test_drizzle.py):

* ``tdriz(..., kernel='square'|'point', in_units='cps', expscale=1, fillstr='INDEF')``:
  :func:`drizzle_image`. The algorithm of cdrizzlebox.c / cdrizzlemap.c:

  - the input region is the box xmin..xmax, ymin..ymax shrunk to the rows/columns that
    hold a finite pixmap entry (error if one row or column or less is left);
  - the box outline (pixel edges, +-0.5) is mapped to the output by bilinear
    (extra)polation of the pixmap, clipped to the output frame (-0.5 .. n-0.5,
    Sutherland-Hodgman), mapped back to the input by a golden-section search, and each
    input row is then only scanned between that polygon's edges (the edges shifted
    inwards by half a pixel width, so partly covered pixels at an output border are
    *skipped*, as in C);
  - the corners (i -+ h, j +- h), h = pixfrac / 2, of each input pixel are bilinear
    interpolations of the pixmap (the 3x3 shortcut ``interpolate_four_points`` for
    0 < i < nx-2 and 0 < j < ny-2, else ``interpolate_point`` with the cell clamped to
    the map, i.e. extrapolation at the map border); a NaN corner skips the pixel;
  - overlap areas with the output pixels by ``boxer``/``sgarea`` (the polygon clipper of
    2.x is only used for the region above), jacobian = half the cross product of the
    quad's diagonals, ``w = weight * wt_scale / jacobian``, ``dow = float32(area * w)``;
  - context bit set where ``dow > 0``; pixels with ``dow == 0`` (zero weight) are not
    added at all; otherwise ``out = (out * W + d * dow) / (W + dow)`` (float32 products, sum
    and division -- C divides in double and rounds, the same value; the first
    contribution to an empty pixel is copied), ``W += dow`` in float32; with a DQ pair,
    the output DQ is the input DQ for the first contribution and OR-ed afterwards (the
    'var' path of C);
  - ``kernel='point'`` (or pixfrac <= 0.001): whole pixel value and weight
    ``weight * wt_scale`` to the output pixel round(pixmap), no jacobian.

  The scatter runs in parallel over output strips (balanced on the input-pixel count):
  every thread walks the input pixels in C order and writes only the output rows of its
  strip, so each output pixel receives its contributions in exactly the serial order,
  whatever the thread count (bit-reproducible).

  Extra channels (``extra_data``/``extra_out``/``extra_wht``, e.g. the square roots of
  the three variances that resample drizzles with the same weights) share that one pass:
  the corners, overlaps and weights are computed once per input pixel and deposited into
  every channel, each ending up exactly as its own tdriz call would leave it.

* ``tblot(..., interp='linear', ...)`` (what ``stcal.outlier_detection.utils.gwcs_blot``
  uses; it replaces NaN pixmap entries by -1 first) and tblot's own default ``'poly5'``:
  :func:`blot_image`.

* the variance handling of ``stcal.resample.Resample`` (see :func:`accumulate_variance`).
"""

import math
import warnings

import numba
import numpy as np
from numba import prange

from webbflow.kernels._options import njit

_VERTEX_ATOL = 1.0e-12
_DBL_MIN = 2.2250738585072014e-308          # MIN_DOUBLE of cdrizzleutil.h (sic: positive)
_APPROX_ZERO = 1.0e3 * _DBL_MIN
_MAX_INV_ERR = 0.03
_GOLDEN = 0.6180339887498948482
_NPV = 8                                     # 2 * IMAGE_OUTLINE_NPTS


# --------------------------------------------------------------------------- scalars

@njit
def _div(a, b):
    """a / b with IEEE semantics (the house njit raises on a zero divisor)."""
    if b == 0.0:
        if a == 0.0 or a != a:
            return np.nan
        return math.copysign(np.inf, a) * math.copysign(1.0, b)
    return a / b


@njit
def _cround(x):
    """C ``round()``: nearest integer, halfway cases away from zero (float result)."""
    if x >= 0.0:
        r = math.floor(x)
        if x - r >= 0.5:
            r += 1.0
    else:
        r = math.ceil(x)
        if r - x >= 0.5:
            r -= 1.0
    return r


@njit
def _nint_clamped(v, n):
    """C ``(int) round(v)`` (halfway away from zero) for v within [-1, n + 1]; values
    beyond are clamped there first (only compared against 0 .. n-1 afterwards)."""
    v = v if v > -1.0 else -1.0
    v = v if v < n + 1.0 else n + 1.0
    r = math.floor(v)
    f = v - r
    if (f > 0.5) | ((f == 0.5) & (v >= 0.0)):
        r += 1.0
    return int(r)


@njit
def _interp_point(pixmap, xin, yin):
    """``interpolate_point``: bilinear pixmap value at (xin, yin), the cell clamped to
    the map (so extrapolated outside it). Returns (x, y, bad) with bad for a NaN result."""
    ny = pixmap.shape[0]
    nx = pixmap.shape[1]
    i0 = int(xin)
    j0 = int(yin)
    if i0 < 0:
        i0 = 0
    elif i0 > nx - 2:
        i0 = nx - 2
    if j0 < 0:
        j0 = 0
    elif j0 > ny - 2:
        j0 = ny - 2
    x = xin - i0
    y = yin - j0
    x1 = 1.0 - x
    y1 = 1.0 - y
    f00 = pixmap[j0, i0, 0]
    g00 = pixmap[j0, i0, 1]
    f10 = pixmap[j0, i0 + 1, 0]
    g10 = pixmap[j0, i0 + 1, 1]
    f01 = pixmap[j0 + 1, i0, 0]
    g01 = pixmap[j0 + 1, i0, 1]
    f11 = pixmap[j0 + 1, i0 + 1, 0]
    g11 = pixmap[j0 + 1, i0 + 1, 1]
    xo = f00 * x1 * y1 + f10 * x * y1 + f01 * x1 * y + f11 * x * y
    yo = g00 * x1 * y1 + g10 * x * y1 + g01 * x1 * y + g11 * x * y
    return xo, yo, (xo != xo) or (yo != yo)


@njit
def _corners_edge(pixmap, i, j, h):
    """Output positions of the corners (i-h, j+h), (i+h, j+h), (i+h, j-h), (i-h, j-h) of
    an input pixel on the map border (``interpolate_point`` each; the interior uses the
    3x3 shortcut inline in the kernel). Last item: any NaN."""
    xl = i - h
    xr = i + h
    yt = j + h
    yb = j - h
    x0, y0, b0 = _interp_point(pixmap, xl, yt)
    x1, y1, b1 = _interp_point(pixmap, xr, yt)
    x2, y2, b2 = _interp_point(pixmap, xr, yb)
    x3, y3, b3 = _interp_point(pixmap, xl, yb)
    return x0, x1, x2, x3, y0, y1, y2, y3, b0 or b1 or b2 or b3


# --------------------------------------------------------------------------- region

@njit
def _shrink_section(pixmap, xmin, xmax, ymin, ymax):
    """``shrink_image_section``: tightest box with a finite pixmap entry on each edge."""
    imin = xmax
    jmin = ymax
    for j in range(ymin, ymax + 1):
        for i in range(xmin, xmax + 1):
            if not (pixmap[j, i, 0] != pixmap[j, i, 0] or pixmap[j, i, 1] != pixmap[j, i, 1]):
                if i < imin:
                    imin = i
                if j < jmin:
                    jmin = j
                break
    imax = imin
    jmax = jmin
    for j in range(ymax, ymin - 1, -1):
        for i in range(xmax, xmin - 1, -1):
            if not (pixmap[j, i, 0] != pixmap[j, i, 0] or pixmap[j, i, 1] != pixmap[j, i, 1]):
                if i > imax:
                    imax = i
                if j > jmax:
                    jmax = j
                break
    return imin, imax, jmin, jmax, (imin >= imax or jmin >= jmax)


@njit
def _map_point(pixmap, xin, yin, xmin, xmax, ymin, ymax):
    i = int(xin)
    j = int(yin)
    if float(i) == xin and float(j) == yin:
        if i >= xmin and i <= xmax and j >= ymin and j <= ymax:
            xo = pixmap[j, i, 0]
            yo = pixmap[j, i, 1]
            return xo, yo, (xo != xo) or (yo != yo)
        return 0.0, 0.0, True
    return _interp_point(pixmap, xin, yin)


@njit
def _invert_pixmap(pixmap, xout, yout, xmin, xmax, ymin, ymax):
    """``invert_pixmap``: golden-section search of the input point mapping to (xout, yout)."""
    x_lo = xmin - 0.5
    x_hi = xmax + 0.5
    y_lo = ymin - 0.5
    y_hi = ymax + 0.5
    dx = x_hi - x_lo
    dy = y_hi - y_lo
    niter = 0
    while (dx > _MAX_INV_ERR or dy > _MAX_INV_ERR) and niter < 50:
        niter += 1
        x1 = x_hi - _GOLDEN * dx
        x2 = x_lo + _GOLDEN * dx
        y1 = y_hi - _GOLDEN * dy
        y2 = y_lo + _GOLDEN * dy
        xo, yo, bad = _interp_point(pixmap, x1, y1)
        if bad:
            return 0.0, 0.0, True
        d11 = (xo - xout) * (xo - xout) + (yo - yout) * (yo - yout)
        xo, yo, bad = _interp_point(pixmap, x1, y2)
        if bad:
            return 0.0, 0.0, True
        d12 = (xo - xout) * (xo - xout) + (yo - yout) * (yo - yout)
        xo, yo, bad = _interp_point(pixmap, x2, y1)
        if bad:
            return 0.0, 0.0, True
        d21 = (xo - xout) * (xo - xout) + (yo - yout) * (yo - yout)
        xo, yo, bad = _interp_point(pixmap, x2, y2)
        if bad:
            return 0.0, 0.0, True
        d22 = (xo - xout) * (xo - xout) + (yo - yout) * (yo - yout)
        if d11 < d12 and d11 < d21 and d11 < d22:
            x_hi = x2
            y_hi = y2
        elif d12 < d11 and d12 < d21 and d12 < d22:
            x_hi = x2
            y_lo = y1
        elif d21 < d11 and d21 < d12 and d21 < d22:
            x_lo = x1
            y_hi = y2
        else:
            x_lo = x1
            y_lo = y1
        dx = x_hi - x_lo
        dy = y_hi - y_lo
    return 0.5 * (x_lo + x_hi), 0.5 * (y_lo + y_hi), niter == 50


@njit
def _orient_ccw(vx, vy, n):
    if n < 3:
        return
    cx = 0.0
    cy = 0.0
    for k in range(n):
        cx += vx[k]
        cy += vy[k]
    cx /= n
    cy /= n
    ax = vx[0] - cx
    ay = vy[0] - cy
    bx = vx[1] - cx
    by = vy[1] - cy
    if ax * by - ay * bx >= 0.0:
        return
    for k in range(n // 2):
        m = n - 1 - k
        t = vx[k]
        vx[k] = vx[m]
        vx[m] = t
        t = vy[k]
        vy[k] = vy[m]
        vy[m] = t


@njit
def _append_vertex(vx, vy, n, x, y):
    if n > 0 and abs(vx[n - 1] - x) < _VERTEX_ATOL and abs(vy[n - 1] - y) < _VERTEX_ATOL:
        return n
    if n > 0 and abs(vx[0] - x) < _VERTEX_ATOL and abs(vy[0] - y) < _VERTEX_ATOL:
        return n
    if n >= _NPV:
        return n
    vx[n] = x
    vy[n] = y
    return n + 1


@njit
def _simplify_polygon(vx, vy, n):
    """Drop vertices lying on the line through their neighbours."""
    if n < 3:
        return n
    qx = np.empty(_NPV)
    qy = np.empty(_NPV)
    q = 0
    kp = n - 1
    kc = 0
    kn = 1
    for k in range(n):
        dpx = vx[kn] - vx[kp]
        dpy = vy[kn] - vy[kp]
        dqx = vx[kc] - vx[kp]
        dqy = vy[kc] - vy[kp]
        if (abs(dpx * dqy - dpy * dqx) > _APPROX_ZERO
                and math.sqrt(dpx * dpx + dpy * dpy) > _VERTEX_ATOL):
            qx[q] = vx[kc]
            qy[q] = vy[kc]
            q += 1
        kp = kc
        kc = kn
        kn = (2 + k) % n
    for k in range(q):
        vx[k] = qx[k]
        vy[k] = qy[k]
    return q


@njit
def _in_half_plane(ptx, pty, ax, ay, bx, by):
    # is_point_strictly_in_hp(pt, v_=a, v=b): area(b, pt) - area(a, pt) - area(b, a) > 0
    return ((bx * pty - by * ptx) - (ax * pty - ay * ptx) - (bx * ay - by * ax)) > 0.0


@njit
def _clip_polygon(px, py, pn, wx, wy, wn, cx, cy):
    """``clip_polygon_to_window`` (Sutherland-Hodgman); result in cx, cy; returns count
    (-1 when an input has fewer than 3 vertices). px/py and wx/wy are reoriented."""
    if pn < 3 or wn < 3:
        return -1
    _orient_ccw(px, py, pn)
    _orient_ccw(wx, wy, wn)
    ax = np.empty(_NPV)
    ay = np.empty(_NPV)
    bx = np.empty(_NPV)
    by = np.empty(_NPV)
    for k in range(pn):
        ax[k] = px[k]
        ay[k] = py[k]
    na = pn
    nb = 0
    # ppout starts as a (the copy of p); the first swap makes a the input
    in_is_a = False
    wvx_ = wx[wn - 1]
    wvy_ = wy[wn - 1]
    for k in range(wn):
        wvx = wx[k]
        wvy = wy[k]
        dwx = wvx - wvx_
        dwy = wvy - wvy_
        in_is_a = not in_is_a
        if in_is_a:
            ix, iy, ni, ox, oy = ax, ay, na, bx, by
        else:
            ix, iy, ni, ox, oy = bx, by, nb, ax, ay
        no = 0
        if ni > 0:
            pvx_ = ix[ni - 1]
            pvy_ = iy[ni - 1]
            for j in range(ni):
                pvx = ix[j]
                pvy = iy[j]
                dpx = pvx - pvx_
                dpy = pvy - pvy_
                v1_in = _in_half_plane(wvx_, wvy_, wvx, wvy, pvx_, pvy_)
                v2_in = _in_half_plane(wvx_, wvy_, wvx, wvy, pvx, pvy)
                if v2_in != v1_in:
                    d = dpx * dwy - dpy * dwx
                    app_ = pvx * pvy_ - pvy * pvx_
                    aww_ = wvx * wvy_ - wvy * wvx_
                    vix = _div(app_ * dwx - aww_ * dpx, d)
                    viy = _div(app_ * dwy - aww_ * dpy, d)
                    if math.isfinite(vix) and math.isfinite(viy):
                        no = _append_vertex(ox, oy, no, vix, viy)
                    if v2_in:
                        no = _append_vertex(ox, oy, no, pvx, pvy)
                elif v1_in:
                    no = _append_vertex(ox, oy, no, pvx, pvy)
                pvx_ = pvx
                pvy_ = pvy
        if in_is_a:
            nb = no
        else:
            na = no
        wvx_ = wvx
        wvy_ = wvy
    if in_is_a:
        ox, oy, no = bx, by, nb
    else:
        ox, oy, no = ax, ay, na
    _orient_ccw(ox, oy, no)
    no = _simplify_polygon(ox, oy, no)
    for k in range(no):
        cx[k] = ox[k]
        cy[k] = oy[k]
    return no


@njit
def _init_edge(edges, k, x1, y1, x2, y2, position):
    edges[k, 0] = x1
    edges[k, 1] = y1
    edges[k, 2] = x2
    edges[k, 3] = y2
    m = _div(x2 - x1, y2 - y1)
    b = _div(x1 * y2 - y1 * x2, y2 - y1)
    edges[k, 4] = m
    edges[k, 5] = b
    edges[k, 6] = b - math.copysign(0.5 + 0.5 * abs(m), position)


@njit
def _scan_rows(pixmap, xmin, xmax, ymin, ymax, out_ny, out_nx, row_x1, row_x2):
    """``init_image_scanner`` + the successive ``get_scanline_limits`` calls of the C
    kernels. Fills row_x1/row_x2 (input pixels x1..x2 of row j are drizzled; x1 > x2:
    row skipped) and returns (jlo, jhi, ok); ok False: nothing is drizzled (as in C)."""
    vx = np.empty(_NPV)
    vy = np.empty(_NPV)
    # the input box outline
    vx[0] = xmin - 0.5
    vy[0] = ymin - 0.5
    vx[1] = xmax + 0.5
    vy[1] = vy[0]
    vx[2] = vx[1]
    vy[2] = ymax + 0.5
    vx[3] = vx[0]
    vy[3] = vy[2]
    n = 4
    px = np.empty(_NPV)
    py = np.empty(_NPV)
    mapped = True
    for k in range(4):
        xo, yo, bad = _map_point(pixmap, vx[k], vy[k], xmin, xmax, ymin, ymax)
        if bad:
            mapped = False
            break
        px[k] = xo
        py[k] = yo
    if mapped:
        wx = np.empty(_NPV)
        wy = np.empty(_NPV)
        wx[0] = -0.5
        wy[0] = -0.5
        wx[1] = out_nx - 0.5
        wy[1] = -0.5
        wx[2] = out_nx - 0.5
        wy[2] = out_ny - 0.5
        wx[3] = -0.5
        wy[3] = out_ny - 0.5
        qx = np.empty(_NPV)
        qy = np.empty(_NPV)
        nq = _clip_polygon(px, py, 4, wx, wy, 4, qx, qy)
        if nq >= 0:
            inverted = True
            for k in range(nq):
                xi, yi, bad = _invert_pixmap(pixmap, qx[k], qy[k], xmin, xmax, ymin, ymax)
                if bad:
                    inverted = False       # C keeps the vertices already overwritten
                    break
                vx[k] = xi
                vy[k] = yi
            if inverted:
                n = nq
                _orient_ccw(vx, vy, n)

    # init_scanner
    for j in range(row_x1.size):
        row_x1[j] = 1
        row_x2[j] = 0
    if n < 3:
        return 0, -1, False
    min_y = vy[0]
    min_left = 0
    for k in range(1, n):
        if vy[k] < min_y:
            min_left = k
            min_y = vy[k]
    i1 = (min_left - 1 + n) % n
    i2 = (min_left + 1 + n) % n
    min_right = i1 if vy[i1] < vy[i2] else i2
    if vy[min_right] <= min_y * (1.0 + math.copysign(_VERTEX_ATOL, min_y)):
        if vx[min_left] > vx[min_right]:
            k = min_left
            min_left = min_right
            min_right = k
    else:
        min_right = min_left
    max_y = vy[0]
    max_right = 0
    for k in range(1, n):
        if vy[k] > max_y:
            max_right = k
            max_y = vy[k]
    i1 = (max_right - 1 + n) % n
    i2 = (max_right + 1 + n) % n
    max_left = i1 if vy[i1] > vy[i2] else i2
    if vy[max_left] >= max_y * (1.0 - math.copysign(_VERTEX_ATOL, max_y)):
        if vx[max_left] > vx[max_right]:
            k = max_left
            max_left = max_right
            max_right = k
    else:
        max_left = max_right
    if max_left > min_left:
        min_left += n
    nleft = min_left - max_left
    left = np.empty((_NPV, 7))
    for k in range(nleft):
        i1 = (min_left - k + n) % n
        i2 = (i1 - 1 + n) % n
        _init_edge(left, k, vx[i1], vy[i1], vx[i2], vy[i2], -1.0)
    if max_right < min_right:
        max_right += n
    nright = max_right - min_right
    right = np.empty((_NPV, 7))
    for k in range(nright):
        i1 = (min_right + k + n) % n
        i2 = (i1 + 1 + n) % n
        _init_edge(right, k, vx[i1], vy[i1], vx[i2], vy[i2], 1.0)

    jlo = max(0, int(min_y + 0.5 + 2.0 * _MAX_INV_ERR))
    jhi = min(ymax, int(max_y + 2.0 * _MAX_INV_ERR))

    # get_scanline_limits for j = jlo, jlo+1, ... (the scanner only moves forward)
    li = 0 if nleft > 0 else -1
    ri = 0 if nright > 0 else -1
    for y in range(jlo, jhi + 1):
        if ymax >= ymin and (y < 0 or y > ymax):
            continue                                    # 2: outside the image rows
        pyb = y - 0.5
        pyt = y + 0.5
        if pyt <= min_y or pyb >= max_y + 1:
            continue                                    # 2
        if li < 0 or ri < 0:
            break                                       # 1: scan ended
        ended = False
        while pyb > left[li, 3]:
            if li == nleft - 1:
                ended = True
                break
            li += 1
        if not ended:
            while pyb > right[ri, 3]:
                if ri == nright - 1:
                    ended = True
                    break
                ri += 1
        if ended:
            li = -1
            ri = -1
            break
        xlb = left[li, 4] * y + left[li, 6] - _MAX_INV_ERR
        xrb = right[ri, 4] * y + right[ri, 6] + _MAX_INV_ERR
        edge_ymax = left[li, 3] + 0.5 + _MAX_INV_ERR
        while pyt > edge_ymax:
            if li == nleft - 1:
                ended = True
                break
            li += 1
            edge_ymax = left[li, 3] + 0.5 + _MAX_INV_ERR
        if not ended:
            edge_ymax = right[ri, 3] + 0.5 + _MAX_INV_ERR
            while pyt > edge_ymax:
                if ri == nright - 1:
                    ended = True
                    break
                ri += 1
                edge_ymax = right[ri, 3] + 0.5 + _MAX_INV_ERR
        if ended:
            li = -1
            ri = -1
            break
        xlt = left[li, 4] * y + left[li, 6] - _MAX_INV_ERR
        xrt = right[ri, 4] * y + right[ri, 6] + _MAX_INV_ERR
        if xmax >= xmin:
            if xlb < xmin:
                xlb = float(xmin)
            if xlt < xmin:
                xlt = float(xmin)
            if xrb > xmax:
                xrb = float(xmax)
            if xrt > xmax:
                xrt = float(xmax)
        if xlt >= xrt:
            if xlb >= xrb:
                continue                                # 3: empty line
            xa = xlb
            xb = xrb
        elif xlb >= xrb:
            xa = xlt
            xb = xrt
        else:
            xa = xlb if xlb > xlt else xlt
            xb = xrb if xrb < xrt else xrt
        if xa != xa or xb != xb:
            # a NaN limit (from a horizontal edge): C's (int) gives INT_MIN, i.e. an
            # empty row, or a loop from INT_MIN (undefined); skip the row
            continue
        row_x1[y] = int(_cround(xa))                    # within xmin..xmax (clamped above)
        row_x2[y] = int(_cround(xb))
    return jlo, jhi, True


# --------------------------------------------------------------------------- scatter

@njit(parallel=True)
def _row_bounds(pixmap, row_x1, row_x2, jlo, jhi, cmin, cmax, dmax):
    """Per scanned input row j: range [cmin, cmax] of the finite pixel-centre y over
    x1..x2, and dmax, the largest |difference| of horizontally or vertically adjacent
    finite pixmap y values in rows j-1..j+1. A corner at (i +- h, j +- h) is a bilinear
    combination on a cell having the pixel centre as a node (h < 1), so it lies within
    2 (h + h^2) dmax of the centre y; the kernel allows 2 (1 + h + h^2) dmax + 1.
    One pass over the map (it is the largest array involved)."""
    ny = pixmap.shape[0]
    nx = pixmap.shape[1]
    r0 = max(jlo - 1, 0)
    r1 = min(jhi + 1, ny - 1)
    hd = np.zeros(ny)
    vd = np.zeros(ny)
    for r in prange(r0, r1 + 1):
        m = 0.0
        v = 0.0
        last = r < ny - 1
        for i in range(nx):
            y = pixmap[r, i, 1]
            if i + 1 < nx:
                d = abs(pixmap[r, i + 1, 1] - y)
                if d > m:
                    m = d
            if last:
                d = abs(pixmap[r + 1, i, 1] - y)
                if d > v:
                    v = d
        hd[r] = m
        vd[r] = v
        if r >= jlo and r <= jhi:
            lo = np.inf
            hi = -np.inf
            for i in range(row_x1[r], row_x2[r] + 1):
                y = pixmap[r, i, 1]
                if y < lo:
                    lo = y
                if y > hi:
                    hi = y
            cmin[r] = lo
            cmax[r] = hi
    for j in range(jlo, jhi + 1):
        m = max(hd[j], vd[j])
        if j > 0:
            m = max(m, hd[j - 1], vd[j - 1])
        if j < ny - 1:
            m = max(m, hd[j + 1])
        dmax[j] = m


@njit
def _balance_strips(row_x1, row_x2, jlo, jhi, cmin, cmax, out_ny, nstrips, edges):
    """Split the output rows into nstrips bands of about equal work: each scanned input
    row's pixel count is spread evenly over the output rows its centres span."""
    dens = np.zeros(out_ny + 1)
    for j in range(jlo, jhi + 1):
        if row_x1[j] > row_x2[j] or not (cmin[j] <= cmax[j]):
            continue
        a = max(int(max(cmin[j] + 0.5, 0.0)), 0)
        b = min(int(min(max(cmax[j] + 0.5, 0.0), out_ny - 1.0)), out_ny - 1)
        if cmax[j] < -0.5 or cmin[j] >= out_ny - 0.5 or b < a:
            continue
        v = (row_x2[j] - row_x1[j] + 1.0) / (b - a + 1.0)
        dens[a] += v
        dens[b + 1] -= v
    tot = 0.0
    run = 0.0
    for r in range(out_ny):
        run += dens[r]
        dens[r] = run
        tot += run
    edges[0] = 0
    acc = 0.0
    s = 1
    for r in range(out_ny):
        acc += dens[r]
        while s < nstrips and acc * nstrips >= tot * s:
            edges[s] = r + 1
            s += 1
    while s < nstrips:
        edges[s] = out_ny
        s += 1
    edges[nstrips] = out_ny


@njit(inline=True)
def _blend(vc, cur, d, dow):
    """``update_data`` for one output pixel (dow != 0) holding ``cur`` with weight vc:
    float32 products and sum, one division (float32 division of float32 operands equals
    C's double division rounded to float); the first contribution is copied."""
    if vc == 0.0:
        return d
    num = cur * vc + dow * d
    den = vc + dow
    if den != 0.0:
        return num / den
    return np.float32(_div(np.float64(num), np.float64(den)))


@njit
def _row_corners(pixmap, j, x1, x2, h, out_nx, out_ny, qc, qb, bad, qg):
    """Corners of the input pixels (x1..x2, j) on the output grid (qc[0:4] x, qc[4:8] y,
    order (i-h, j+h), (i+h, j+h), (i+h, j-h), (i-h, j-h)), the jacobian (qc[8]), the
    range of output pixels to visit, C's ``nintd`` of the corner extremes clamped to the
    output (qb[0:4] = ii0, ii1, jj0, jj1), and whether a corner is NaN (bad).

    Interior pixels (0 < i < nx-2, 0 < j < ny-2) use ``interpolate_four_points`` (the
    9 neighbours, each times its factor, summed in C's order), in a branch-free loop;
    the others ``interpolate_point`` per corner."""
    map_ny = pixmap.shape[0]
    map_nx = pixmap.shape[1]
    ha = (1 - h) * (1 - h)
    hb = (1 - h) * h
    hc = h * h
    ia = x2 + 1                 # interior (four-point) range ia..ib; empty on edge rows
    ib = x2
    if j > 0 and j < map_ny - 2 and h == 0.5:
        # pixfrac 1: all factors are 1/4 and neighbouring pixels share corners bit for
        # bit (same products summed in the same order): compute each grid point once,
        # U(i) = corner (i-1/2, j+1/2), L(i) = corner (i-1/2, j-1/2) (qg scratch)
        ia = max(x1, 1)
        ib = min(x2, map_nx - 3)
        for i in range(ia, ib + 2):
            qg[0, i] = (pixmap[j, i - 1, 0] * ha + pixmap[j, i, 0] * ha
                        + pixmap[j + 1, i - 1, 0] * ha + pixmap[j + 1, i, 0] * ha)
            qg[1, i] = (pixmap[j - 1, i - 1, 0] * ha + pixmap[j - 1, i, 0] * ha
                        + pixmap[j, i - 1, 0] * ha + pixmap[j, i, 0] * ha)
            qg[2, i] = (pixmap[j, i - 1, 1] * ha + pixmap[j, i, 1] * ha
                        + pixmap[j + 1, i - 1, 1] * ha + pixmap[j + 1, i, 1] * ha)
            qg[3, i] = (pixmap[j - 1, i - 1, 1] * ha + pixmap[j - 1, i, 1] * ha
                        + pixmap[j, i - 1, 1] * ha + pixmap[j, i, 1] * ha)
        for i in range(ia, ib + 1):
            qc[0, i] = qg[0, i]
            qc[1, i] = qg[0, i + 1]
            qc[2, i] = qg[1, i + 1]
            qc[3, i] = qg[1, i]
            qc[4, i] = qg[2, i]
            qc[5, i] = qg[2, i + 1]
            qc[6, i] = qg[3, i + 1]
            qc[7, i] = qg[3, i]
    elif j > 0 and j < map_ny - 2:
        ia = max(x1, 1)
        ib = min(x2, map_nx - 3)
        for i in range(ia, ib + 1):
            am = pixmap[j - 1, i - 1, 0] * hc
            bm = pixmap[j - 1, i, 0] * hb
            cm = pixmap[j - 1, i + 1, 0] * hc
            a0 = pixmap[j, i - 1, 0] * hb
            b0 = pixmap[j, i, 0] * ha
            c0 = pixmap[j, i + 1, 0] * hb
            ap = pixmap[j + 1, i - 1, 0] * hc
            bp = pixmap[j + 1, i, 0] * hb
            cp = pixmap[j + 1, i + 1, 0] * hc
            qc[0, i] = a0 + b0 + ap + bp
            qc[1, i] = b0 + c0 + bp + cp
            qc[2, i] = bm + cm + b0 + c0
            qc[3, i] = am + bm + a0 + b0
            am = pixmap[j - 1, i - 1, 1] * hc
            bm = pixmap[j - 1, i, 1] * hb
            cm = pixmap[j - 1, i + 1, 1] * hc
            a0 = pixmap[j, i - 1, 1] * hb
            b0 = pixmap[j, i, 1] * ha
            c0 = pixmap[j, i + 1, 1] * hb
            ap = pixmap[j + 1, i - 1, 1] * hc
            bp = pixmap[j + 1, i, 1] * hb
            cp = pixmap[j + 1, i + 1, 1] * hc
            qc[4, i] = a0 + b0 + ap + bp
            qc[5, i] = b0 + c0 + bp + cp
            qc[6, i] = bm + cm + b0 + c0
            qc[7, i] = am + bm + a0 + b0
    for i in range(x1, x2 + 1):
        if i < ia or i > ib:
            x0, x1_, x2_, x3, y0, y1, y2, y3, bd = _corners_edge(pixmap, i, j, h)
            qc[0, i] = x0
            qc[1, i] = x1_
            qc[2, i] = x2_
            qc[3, i] = x3
            qc[4, i] = y0
            qc[5, i] = y1
            qc[6, i] = y2
            qc[7, i] = y3
    for i in range(x1, x2 + 1):
        x0 = qc[0, i]
        x1_ = qc[1, i]
        x2_ = qc[2, i]
        x3 = qc[3, i]
        y0 = qc[4, i]
        y1 = qc[5, i]
        y2 = qc[6, i]
        y3 = qc[7, i]
        bad[i] = ((x0 != x0) | (x1_ != x1_) | (x2_ != x2_) | (x3 != x3)
                  | (y0 != y0) | (y1 != y1) | (y2 != y2) | (y3 != y3))
        qc[8, i] = 0.5 * ((x1_ - x3) * (y0 - y2) - (x0 - x2_) * (y1 - y3))
        # nintd(min/max of the corners) clamped to the output; C's max starts at DBL_MIN
        a = x0 if x0 < x1_ else x1_
        b = x2_ if x2_ < x3 else x3
        qb[0, i] = max(_nint_clamped(a if a < b else b, out_nx), 0)
        a = x0 if x0 > x1_ else x1_
        b = x2_ if x2_ > x3 else x3
        b = b if b > _DBL_MIN else _DBL_MIN
        qb[1, i] = min(_nint_clamped(a if a > b else b, out_nx), out_nx - 1)
        a = y0 if y0 < y1 else y1
        b = y2 if y2 < y3 else y3
        qb[2, i] = max(_nint_clamped(a if a < b else b, out_ny), 0)
        a = y0 if y0 > y1 else y1
        b = y2 if y2 > y3 else y3
        b = b if b > _DBL_MIN else _DBL_MIN
        qb[3, i] = min(_nint_clamped(a if a > b else b, out_ny), out_ny - 1)


@njit(inline=True)
def _side_x(xa, xb, xs):
    """sgarea's x-part of the side from x = xa to xb for the output column starting at
    xs: it depends on the column only, so the caller computes it once per column.
    Returns (active, sign, xl, xh, sx1, sx2, dx); inactive: the side misses the column."""
    sx1 = xa - xs
    sx2 = xb - xs
    dx = sx2 - sx1
    act = False
    sg = 1.0
    xl = 0.0
    xh = 0.0
    if dx != 0.0:
        if dx < 0.0:
            sg = -1.0
            xl = sx2
            xh = sx1
        else:
            xl = sx1
            xh = sx2
        if not (xl >= 1.0 or xh <= 0.0):
            act = True
            if xl < 0.0:
                xl = 0.0
            if xh > 1.0:
                xh = 1.0
    return act, sg, xl, xh, sx1, sx2, dx


@njit(inline=True)
def _side_y(sg, xl, xh, sx1, sx2, dx, ya, yb, ys):
    """sgarea's y-part: the signed area under the side from (xa, ya) to (xb, yb) within
    the output pixel whose lower edge is ys (x-part from :func:`_side_x`, active)."""
    sy1 = ya - ys
    sy2 = yb - ys
    dy = sy2 - sy1
    slope = dy / dx
    ylo = sy1 + slope * (xl - sx1)
    yhi = sy1 + slope * (xh - sx1)
    if ylo <= 0.0 and yhi <= 0.0:
        return 0.0      # the caller's sum is never -0.0, so adding +0.0 changes no bit
    if ylo >= 1.0 and yhi >= 1.0:
        return sg * (xh - xl)
    xlo = xl
    xhi = xh
    det = sx1 * sy2 - sy1 * sx2
    if ylo < 0.0:
        ylo = 0.0
        xlo = det / dy
    if yhi < 0.0:
        yhi = 0.0
        xhi = det / dy
    if ylo <= 1.0:
        if yhi <= 1.0:
            return sg * 0.5 * (xhi - xlo) * (yhi + ylo)
        xtop = (dx + det) / dy
        t = 0.5 * (xtop - xlo) * (1.0 + ylo) + xhi - xtop
        return sg * t
    xtop = (dx + det) / dy
    t = 0.5 * (xhi - xtop) * (1.0 + yhi) + xtop - xlo
    return sg * t


@njit(inline=True)
def _deposit(out_sci, out_wht, out_con, use_con, bitval, out_dq, use_dq, ext_out, ext_wht,
             ii, jj, d, dk, dow, dqv):
    """One contribution of weight dow to output pixel (ii, jj): the context bit where
    dow > 0, then (dow != 0) SCI/WHT/DQ and, with extra channels, each channel k with
    value dk[k] against the shared extra weight ext_wht."""
    if use_con and dow > 0.0:
        out_con[jj, ii] |= bitval
    if dow == 0.0:
        return
    vc = out_wht[jj, ii]
    out_sci[jj, ii] = _blend(vc, out_sci[jj, ii], d, dow)
    out_wht[jj, ii] = vc + dow
    if use_dq:
        if vc == 0.0:
            out_dq[jj, ii] = dqv
        else:
            out_dq[jj, ii] |= dqv
    # None (no extra channels) is a type: numba compiles this branch out of SCI-only calls
    if ext_wht is not None:
        ve = ext_wht[jj, ii]
        for k in range(dk.size):
            ext_out[k, jj, ii] = _blend(ve, ext_out[k, jj, ii], dk[k], dow)
        ext_wht[jj, ii] = ve + dow


@njit(parallel=True)
def _drizzle_kernel(data, weight, use_weight, pixmap, out_sci, out_wht, out_con, use_con,
                    bitval, in_dq, out_dq, use_dq, ext_data, ext_out, ext_wht,
                    row_x1, row_x2, jlo, jhi, cmin, cmax, dmax, edges, h, iscale, wt_scale):
    """The square-kernel scatter. Strip s owns output rows edges[s]..edges[s+1]-1 and
    walks, in C order, the input pixels that may reach it (rows rejected by a bound on
    how far corners lie from pixel centres). boxer/sgarea is split per quad side into an
    x-part computed once per output column and a y-part per output pixel; the overlap
    and weight of each output pixel are computed once and deposited into all channels."""
    out_ny = out_sci.shape[0]
    out_nx = out_sci.shape[1]
    nx = pixmap.shape[1]
    nch = 0
    if ext_data is not None:
        nch = ext_data.shape[0]
    nstrips = edges.size - 1
    grow = 2.0 * (1.0 + h + h * h) * (1.0 + 1e-6)    # generous: any h, border cells
    for s in prange(nstrips):
        lo = edges[s]
        hi = edges[s + 1] - 1
        if hi < lo:
            continue
        qc = np.empty((9, nx))
        qb = np.empty((4, nx), np.int64)
        bad = np.empty(nx, np.bool_)
        qg = np.empty((4, nx + 1))
        dk = np.empty(nch, np.float32)
        for j in range(jlo, jhi + 1):
            x1r = row_x1[j]
            x2r = row_x2[j]
            if x1r > x2r:
                continue
            margin = grow * dmax[j] + 1.0
            if cmax[j] + margin < lo or cmin[j] - margin > hi:
                continue
            _row_corners(pixmap, j, x1r, x2r, h, out_nx, out_ny, qc, qb, bad, qg)
            for i in range(x1r, x2r + 1):
                if bad[i]:
                    continue
                jj0 = max(qb[2, i], lo)
                jj1 = min(qb[3, i], hi)
                if jj0 > jj1:
                    continue
                ii0 = qb[0, i]
                ii1 = qb[1, i]
                qx0 = qc[0, i]
                qx1 = qc[1, i]
                qx2 = qc[2, i]
                qx3 = qc[3, i]
                qy0 = qc[4, i]
                qy1 = qc[5, i]
                qy2 = qc[6, i]
                qy3 = qc[7, i]
                jaco = qc[8, i]
                d = data[j, i] * iscale
                if ext_data is not None:
                    for k in range(nch):
                        dk[k] = ext_data[k, j, i] * iscale
                if use_weight:
                    wnum = np.float64(weight[j, i] * wt_scale)
                else:
                    wnum = 1.0
                if jaco != 0.0:
                    w = wnum / jaco
                else:
                    w = _div(wnum, jaco)
                dqv = in_dq[j, i] if use_dq else np.uint32(0)
                for ii in range(ii0, ii1 + 1):
                    xs = ii - 0.5
                    a0, sg0, xl0, xh0, sa0, sb0, dx0 = _side_x(qx0, qx1, xs)
                    a1, sg1, xl1, xh1, sa1, sb1, dx1 = _side_x(qx1, qx2, xs)
                    a2, sg2, xl2, xh2, sa2, sb2, dx2 = _side_x(qx2, qx3, xs)
                    a3, sg3, xl3, xh3, sa3, sb3, dx3 = _side_x(qx3, qx0, xs)
                    for jj in range(jj0, jj1 + 1):
                        ys = jj - 0.5
                        # summed over the sides in C's order
                        dover = 0.0
                        if a0:
                            dover += _side_y(sg0, xl0, xh0, sa0, sb0, dx0, qy0, qy1, ys)
                        if a1:
                            dover += _side_y(sg1, xl1, xh1, sa1, sb1, dx1, qy1, qy2, ys)
                        if a2:
                            dover += _side_y(sg2, xl2, xh2, sa2, sb2, dx2, qy2, qy3, ys)
                        if a3:
                            dover += _side_y(sg3, xl3, xh3, sa3, sb3, dx3, qy3, qy0, ys)
                        if dover == 0.0:
                            continue
                        _deposit(out_sci, out_wht, out_con, use_con, bitval, out_dq, use_dq,
                                 ext_out, ext_wht, ii, jj, d, dk, np.float32(dover * w), dqv)


@njit(parallel=True)
def _point_kernel(data, weight, use_weight, pixmap, out_sci, out_wht, out_con, use_con,
                  bitval, in_dq, out_dq, use_dq, ext_data, ext_out, ext_wht,
                  row_x1, row_x2, jlo, jhi, edges, iscale, wt_scale):
    """``do_kernel_point``: each input pixel to output pixel nintd(pixmap), whole value,
    weight * wt_scale (no jacobian); same strip scheme as the square kernel."""
    out_nx = out_sci.shape[1]
    nch = 0
    if ext_data is not None:
        nch = ext_data.shape[0]
    nstrips = edges.size - 1
    one32 = np.float32(1.0)
    for s in prange(nstrips):
        lo = edges[s]
        hi = edges[s + 1] - 1
        dk = np.empty(nch, np.float32)
        for j in range(jlo, jhi + 1):
            for i in range(row_x1[j], row_x2[j] + 1):
                xc = pixmap[j, i, 0]
                yc = pixmap[j, i, 1]
                if xc != xc or yc != yc:
                    continue
                jj = int(_cround(yc)) if abs(yc) < 1e18 else -1
                if jj < lo or jj > hi:
                    continue
                ii = int(_cround(xc)) if abs(xc) < 1e18 else -1
                if ii < 0 or ii >= out_nx:
                    continue
                d = data[j, i] * iscale
                if ext_data is not None:
                    for k in range(nch):
                        dk[k] = ext_data[k, j, i] * iscale
                dow = weight[j, i] * wt_scale if use_weight else one32
                dqv = in_dq[j, i] if use_dq else np.uint32(0)
                _deposit(out_sci, out_wht, out_con, use_con, bitval, out_dq, use_dq,
                         ext_out, ext_wht, ii, jj, d, dk, dow, dqv)


def _check(name, a, dtype, ndim):
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim:
        raise TypeError(f"'{name}' must be a {ndim}-D numpy array of {np.dtype(dtype).name}")
    if not a.flags.c_contiguous:
        raise TypeError(f"'{name}' must be C-contiguous")


def drizzle_image(data, weight, pixmap, out_sci, out_wht, out_con=None, context_bit=0, *,
                  pixfrac=1.0, iscale=1.0, wt_scale=1.0, kernel="square",
                  xmin=0, xmax=None, ymin=0, ymax=None, in_dq=None, out_dq=None,
                  extra_data=None, extra_out=None, extra_wht=None, nthreads=None):
    """Drizzle one input image onto the output arrays, in place (``cdrizzle.tdriz``).

    Parameters
    ----------
    data : float32 (ny, nx)
        Input values, already in the output's intensity units except for ``iscale``
        (tdriz with in_units='cps'; for counts pass ``iscale / exptime``). NaN values
        with weight > 0 propagate into the output, as in C.
    weight : float32 (ny, nx) or None
        Input weights (None: all 1). Pixels whose weight is 0 add nothing.
    pixmap : float64 (ny, nx, 2), C-contiguous
        ``pixmap[j, i] = (x, y)``: 0-based output pixel coordinates (pixel centres at
        integers) of the centre of input pixel (x=i, y=j); NaN where undefined.
    out_sci, out_wht : float32 (ony, onx)
        Running weighted mean and its summed weights; updated in place. Start them at 0
        (out_sci may hold anything where out_wht == 0).
    out_con : int32 (ony, onx) or None
        One 32-bit context plane; bit ``context_bit`` (0..31) is OR-ed in where this
        image contributes with positive weight. Input number k (0-based) of a Drizzle
        object goes to plane ``k // 32``, bit ``k % 32`` (tdriz uniqid = bit + 1).
    pixfrac, iscale, wt_scale : float
        As tdriz (``d = data * float32(iscale)``, ``weight * float32(wt_scale)``).
        pixfrac <= 0.001 switches to the point kernel (with a warning), as tdriz.
    kernel : 'square' or 'point'
    xmin, xmax, ymin, ymax : int
        Inclusive input region; xmax/ymax None, 0 or too large mean the last column/row
        (tdriz convention).
    in_dq, out_dq : uint32 arrays or None
        Optional DQ propagation (output = OR of the contributing inputs' DQ).
    extra_data : float32 (n, ny, nx) or None
        More images on the same input pixels (e.g. the square roots of the variances),
        drizzled in the same pass: the overlap geometry and the weights are computed
        once for all channels.
    extra_out : float32 (n, ony, onx)
        Running weighted means of the extra channels, updated in place.
    extra_wht : float32 (ony, onx)
        The summed weights of the extra channels (one array: every channel receives the
        same weights), distinct from out_wht. Channel k ends up bit for bit as
        ``drizzle_image(extra_data[k], weight, pixmap, extra_out[k], w_k, **same_options)``
        with w_k a copy of extra_wht, and extra_wht as each w_k; iscale applies to every
        channel, the context and DQ only to ``out_sci``.
    nthreads : int or None
        Number of output strips processed in parallel (default: numba's thread count);
        the result does not depend on it.

    No fill value is applied: set ``out_sci[out_wht == 0] = fillval`` afterwards (what
    tdriz does for a fillstr other than 'INDEF').

    Raises ValueError when the pixmap has one row/column of finite values or fewer in
    the region (tdriz: "No or too few valid pixels in the pixel map").
    """
    _check("data", data, np.float32, 2)
    _check("pixmap", pixmap, np.float64, 3)
    _check("out_sci", out_sci, np.float32, 2)
    _check("out_wht", out_wht, np.float32, 2)
    ny, nx = data.shape
    if pixmap.shape != (ny, nx, 2):
        raise ValueError("pixmap must have shape data.shape + (2,)")
    if out_wht.shape != out_sci.shape:
        raise ValueError("out_wht shape differs from out_sci")
    use_weight = weight is not None
    if use_weight:
        _check("weight", weight, np.float32, 2)
        if weight.shape != data.shape:
            raise ValueError("weight shape differs from data")
    else:
        weight = np.ones((1, 1), np.float32)
    use_con = out_con is not None
    if use_con:
        _check("out_con", out_con, np.int32, 2)
        if out_con.shape != out_sci.shape:
            raise ValueError("out_con shape differs from out_sci")
        if not 0 <= int(context_bit) <= 31:
            raise ValueError("context_bit must be in 0..31")
    else:
        out_con = np.zeros((1, 1), np.int32)
    bitval = np.uint32(1 << int(context_bit)).view(np.int32)
    use_dq = in_dq is not None or out_dq is not None
    if use_dq:
        if in_dq is None or out_dq is None:
            raise ValueError("in_dq and out_dq must be given together")
        _check("in_dq", in_dq, np.uint32, 2)
        _check("out_dq", out_dq, np.uint32, 2)
        if in_dq.shape != data.shape or out_dq.shape != out_sci.shape:
            raise ValueError("DQ array shapes do not match data/out_sci")
    else:
        in_dq = np.zeros((1, 1), np.uint32)
        out_dq = np.zeros((1, 1), np.uint32)
    if extra_data is not None or extra_out is not None or extra_wht is not None:
        if extra_data is None or extra_out is None or extra_wht is None:
            raise ValueError("extra_data, extra_out and extra_wht must be given together")
        _check("extra_data", extra_data, np.float32, 3)
        _check("extra_out", extra_out, np.float32, 3)
        _check("extra_wht", extra_wht, np.float32, 2)
        if extra_data.shape[1:] != data.shape or extra_out.shape[1:] != out_sci.shape:
            raise ValueError("extra_data/extra_out shapes do not match data/out_sci")
        if extra_out.shape[0] != extra_data.shape[0]:
            raise ValueError("extra_out and extra_data differ in their number of channels")
        if extra_wht.shape != out_sci.shape:
            raise ValueError("extra_wht shape differs from out_sci")
        # the kernel reads each output weight before adding to it, channel by channel
        for a in (out_sci, out_wht):
            for b in (extra_out, extra_wht):
                if np.may_share_memory(a, b):
                    raise ValueError("extra_out/extra_wht must not overlap out_sci/out_wht")
        if np.may_share_memory(extra_out, extra_wht):
            raise ValueError("extra_wht must not overlap extra_out")
    if kernel not in ("square", "point"):
        raise ValueError("kernel must be 'square' or 'point'")
    if nx < 2 or ny < 2:
        raise ValueError("input must be at least 2x2")

    xmin = max(int(xmin or 0), 0)
    ymin = max(int(ymin or 0), 0)
    xmax = nx - 1 if (not xmax or xmax >= nx) else int(xmax)
    ymax = ny - 1 if (not ymax or ymax >= ny) else int(ymax)
    if xmax <= xmin or ymax <= ymin:
        raise ValueError("need xmax > xmin and ymax > ymin")
    xmin, xmax, ymin, ymax, fail = _shrink_section(pixmap, xmin, xmax, ymin, ymax)
    if fail:
        raise ValueError("No or too few valid pixels in the pixel map.")
    if pixfrac <= 0.001 and kernel == "square":
        warnings.warn("Kernel reset to 'point' due to input 'pixfrac' being too small.",
                      stacklevel=2)
        kernel = "point"

    ony, onx = out_sci.shape
    row_x1 = np.empty(ny, np.int64)
    row_x2 = np.empty(ny, np.int64)
    jlo, jhi, ok = _scan_rows(pixmap, xmin, xmax, ymin, ymax, ony, onx, row_x1, row_x2)
    if not ok or jhi < jlo:
        return
    cmin = np.empty(ny)
    cmax = np.empty(ny)
    dmax = np.empty(ny)
    _row_bounds(pixmap, row_x1, row_x2, jlo, jhi, cmin, cmax, dmax)
    nstrips = int(nthreads or numba.get_num_threads())
    nstrips = max(1, min(nstrips, ony))
    edges = np.empty(nstrips + 1, np.int64)
    _balance_strips(row_x1, row_x2, jlo, jhi, cmin, cmax, ony, nstrips, edges)
    if kernel == "point":
        _point_kernel(data, weight, use_weight, pixmap, out_sci, out_wht, out_con, use_con,
                      bitval, in_dq, out_dq, use_dq, extra_data, extra_out, extra_wht,
                      row_x1, row_x2, jlo, jhi, edges, np.float32(iscale),
                      np.float32(wt_scale))
    else:
        _drizzle_kernel(data, weight, use_weight, pixmap, out_sci, out_wht, out_con, use_con,
                        bitval, in_dq, out_dq, use_dq, extra_data, extra_out, extra_wht,
                        row_x1, row_x2, jlo, jhi, cmin, cmax, dmax, edges,
                        float(0.5 * pixfrac), np.float32(iscale), np.float32(wt_scale))


# --------------------------------------------------------------------------- blot

@njit
def _poly5_at(data, x, y, c, zt):
    """``interpolate_poly5`` (+ ``ii_bipoly5``) at (x, y), 0 <= x < nx, 0 <= y < ny.
    Scratch: c float32 (48,) = 8 rows of 6, rows 6-7 zero (C reads past its 6x6 table when
    3 + fraction rounds to 4.0; the products with those values are then 0); zt (6,)."""
    ny = data.shape[0]
    nx = data.shape[1]
    two = np.float32(2.0)
    ix = int(x)
    iy = int(y)
    r = 0
    for j in range(iy - 2, iy + 4):
        if j >= 0 and j < ny:
            src = j
        elif j == iy + 3:
            src = ny - 4
        else:
            r += 1
            continue
        col = 0
        for i in range(ix - 2, ix + 4):
            if i < 0:
                c[6 * r + col] = two * data[src, 0] - data[src, -i]
            elif i >= nx:
                c[6 * r + col] = two * data[src, nx - 1] - data[src, 2 * nx - 2 - i]
            else:
                c[6 * r + col] = data[src, i]
            col += 1
        r += 1
    firstw = max(0, 2 - iy)
    if firstw > 0:
        for j in range(firstw + 1):
            for k in range(6):
                c[6 * j + k] = two * c[6 * firstw + k] - c[6 * (2 * firstw - j) + k]
    lastrw = min(5, ny - iy + 1)
    if lastrw < 5:
        for j in range(lastrw + 1, 5):
            for k in range(6):
                c[6 * j + k] = two * c[6 * lastrw + k] - c[6 * (2 * lastrw - j) + k]
    elif lastrw == 2:
        for k in range(6):
            c[30 + k] = two * c[12 + k] - c[30 + k]
    else:
        for k in range(6):
            c[30 + k] = two * c[6 * lastrw + k] - c[6 * (2 * lastrw - 5) + k]
    # ii_bipoly5 at (3 + fx, 3 + fy)
    xv = np.float32(3.0) + (x - np.float32(ix))
    yv = np.float32(3.0) + (y - np.float32(iy))
    nxp = int(xv)
    nyp = int(yv)
    sx = xv - np.float32(nxp)
    sx2 = sx * sx
    sx2m1 = sx2 - np.float32(1.0)
    sx2m4 = sx2 - np.float32(4.0)
    tx = np.float32(1.0) - sx
    tx2 = tx * tx
    tx2m1 = tx2 - np.float32(1.0)
    tx2m4 = tx2 - np.float32(4.0)
    sy = yv - np.float32(nyp)
    sy2 = sy * sy
    ty = np.float32(1.0) - sy
    ty2 = ty * ty
    sixth = np.float32(1.0) / np.float32(6.0)
    f120 = np.float32(1.0) / np.float32(120.0)
    four = np.float32(4.0)
    six = np.float32(6.0)
    first = (nyp - 3) * 6 + nxp - 1
    for j in range(6):
        q = first + 6 * j
        cd20 = sixth * (c[q + 1] - two * c[q] + c[q - 1])
        cd21 = sixth * (c[q + 2] - two * c[q + 1] + c[q])
        cd40 = f120 * (c[q - 2] - four * c[q - 1] + six * c[q]
                       - four * c[q + 1] + c[q + 2])
        cd41 = f120 * (c[q - 1] - four * c[q] + six * c[q + 1]
                       - four * c[q + 2] + c[q + 3])
        zt[j] = (sx * (c[q + 1] + sx2m1 * (cd21 + sx2m4 * cd41))
                 + tx * (c[q] + tx2m1 * (cd20 + tx2m4 * cd40)))
    cd20y = sixth * (zt[3] - two * zt[2] + zt[1])
    cd21y = sixth * (zt[4] - two * zt[3] + zt[2])
    cd40y = f120 * (zt[0] - four * zt[1] + six * zt[2] - four * zt[3] + zt[4])
    cd41y = f120 * (zt[1] - four * zt[2] + six * zt[3] - four * zt[4] + zt[5])
    return (sy * (zt[3] + (sy2 - np.float32(1.0)) * (cd21y + (sy2 - four) * cd41y))
            + ty * (zt[2] + (ty2 - np.float32(1.0)) * (cd20y + (ty2 - four) * cd40y)))


@njit(parallel=True)
def _blot_kernel(data, pixmap, out, scale, fillval, poly5):
    ny = data.shape[0]
    nx = data.shape[1]
    fnx = np.float32(nx)
    fny = np.float32(ny)
    one = np.float32(1.0)
    for j in prange(out.shape[0]):
        c = np.zeros(48, np.float32)
        zt = np.empty(6, np.float32)
        for i in range(out.shape[1]):
            x = np.float32(pixmap[j, i, 0])
            y = np.float32(pixmap[j, i, 1])
            if not (x >= 0.0 and x < fnx and y >= 0.0 and y < fny):
                out[j, i] = fillval
                continue
            if poly5:
                out[j, i] = _poly5_at(data, x, y, c, zt) * scale
                continue
            ix = int(x)
            iy = int(y)
            f00 = data[iy, ix]
            if ix == nx - 1:
                if iy == ny - 1:
                    v = f00
                else:
                    sy = y - np.float32(iy)
                    v = (one - sy) * f00 + sy * data[iy + 1, ix]
            elif iy == ny - 1:
                sx = x - np.float32(ix)
                v = (one - sx) * f00 + sx * data[iy, ix + 1]
            else:
                sx = x - np.float32(ix)
                tx = one - sx
                sy = y - np.float32(iy)
                ty = one - sy
                v = (tx * ty * f00 + sx * ty * data[iy, ix + 1]
                     + sy * tx * data[iy + 1, ix] + sx * sy * data[iy + 1, ix + 1])
            out[j, i] = v * scale


def blot_image(data, pixmap, out, *, iscale=1.0, fillval=0.0, interp="linear"):
    """Resample ``data`` at the positions ``pixmap`` (``cdrizzle.tblot``), in place.

    data : float32 (ny, nx) -- the image to sample (e.g. the median).
    pixmap : float64 (ony, onx, 2) -- ``pixmap[j, i] = (x, y)``: 0-based position in
        ``data`` of output pixel (i, j) (the opposite direction of drizzle's pixmap).
        Positions are rounded to float32 first; outside 0 <= x < nx, 0 <= y < ny the
        output is ``fillval``. NaN entries raise ValueError as in tblot (stcal's
        gwcs_blot sets them to -1 beforehand, i.e. to fillval).
    out : float32 (ony, onx) -- result ``interp(data) * float32(iscale)``.
    interp : 'linear' (stcal outlier detection) or 'poly5' (tblot's default).
    """
    _check("data", data, np.float32, 2)
    _check("pixmap", pixmap, np.float64, 3)
    _check("out", out, np.float32, 2)
    if pixmap.shape != out.shape + (2,):
        raise ValueError("pixmap must have shape out.shape + (2,)")
    if interp not in ("linear", "poly5"):
        raise ValueError("interp must be 'linear' or 'poly5'")
    if interp == "poly5" and min(data.shape) < 4:
        raise ValueError("poly5 needs an input of at least 4x4")
    if np.isnan(pixmap).any():
        raise ValueError("NaN in pixmap")
    _blot_kernel(data, pixmap, out, np.float32(1.0) * np.float32(iscale),
                 np.float32(fillval), interp == "poly5")


# --------------------------------------------------------------------------- variance

@njit(parallel=True)
def accumulate_variance(var, out_weight, wsum, wt):
    """One input's resampled variance into stcal's running sums (in place):
    where ``var >= 0``, finite and ``out_weight > 0``:
    ``wsum = nansum(wsum, var * w * w)`` (float64, stored float32) and ``wt += w``.

    var : float32 (ony, onx) -- the resampled variance of this input (see module notes).
    out_weight : float64 (ony, onx) -- stcal's per-output-pixel weight of this input:
        weight_type 'ivm*': ``float64(float32(1) / var_rnoise_resampled)`` where that is
        > 0 and finite, else 0 (see :func:`ivm_output_weight`); 'exptime': the
        measurement time everywhere.
    wsum : float32, start NaN; wt : float32, start 0.
    """
    for j in prange(var.shape[0]):
        for i in range(var.shape[1]):
            v = var[j, i]
            w = out_weight[j, i]
            if v >= 0.0 and math.isfinite(v) and w > 0.0:
                p = np.float64(v) * w * w
                s = wsum[j, i]
                if s != s:
                    wsum[j, i] = p
                elif p != p:
                    pass
                else:
                    wsum[j, i] = np.float64(s) + p
                wt[j, i] = np.float64(wt[j, i]) + w


@njit(parallel=True)
def ivm_output_weight(var_rnoise, out):
    """stcal's 'ivm' per-output-pixel weight from the resampled VAR_RNOISE (float64 out)."""
    one = np.float32(1.0)
    for j in prange(var_rnoise.shape[0]):
        for i in range(var_rnoise.shape[1]):
            v = var_rnoise[j, i]
            if v > 0.0 and math.isfinite(v):
                out[j, i] = one / v
            else:
                out[j, i] = 0.0


@njit(parallel=True)
def finalize_variance(wsum, wt, scaling, out):
    """``out = float32(wsum * scaling / wt / wt)`` (float64 arithmetic); NaN where wt == 0.
    scaling: ``1 / pixel_scale_ratio**2`` for imaging output, ``pixel_scale_ratio`` for
    spectra, 1 when stcal has no pixel_scale_ratio."""
    for j in prange(wsum.shape[0]):
        for i in range(wsum.shape[1]):
            w = np.float64(wt[j, i])
            out[j, i] = _div(_div(np.float64(wsum[j, i]) * scaling, w), w)


@njit(parallel=True)
def error_from_variances(variances, out):
    """``out = sqrt(nansum(variances, axis=0))`` in float32; NaN where all are NaN."""
    nv = variances.shape[0]
    for j in prange(variances.shape[1]):
        for i in range(variances.shape[2]):
            s = np.float32(0.0)
            n = 0
            for k in range(nv):
                v = variances[k, j, i]
                if v == v:
                    s += v
                    n += 1
            out[j, i] = np.sqrt(s) if n > 0 else np.float32(np.nan)
