"""The output grid of resample: a tangent-plane WCS covering all input footprints.

As the official resample builds it (stcal ``wcs_from_sregions``): the fiducial is the
centre of the footprints' bounding box in 3-D Cartesian coordinates; the orientation is
the first input's (ROLL_REF, V3YANGLE, VPARITY) unless a rotation is asked for; the
pixel scale is the first input's at its reference point times ``pixel_scale_ratio``
unless a scale is given; the grid's origin makes every footprint fall inside.
"""

import logging
import re

import numpy as np

log = logging.getLogger("webbflow.resample")

__all__ = ["output_wcs", "footprint_from_s_region", "pixel_scale_at", "pixel_map",
           "combined_s_region"]


def footprint_from_s_region(s_region):
    """(N, 2) RA/Dec vertices of a ``POLYGON ICRS ...`` string."""
    numbers = re.sub(r"[a-zA-Z]", "", s_region).split()
    return np.array(numbers, dtype=float).reshape(-1, 2)


def combined_s_region(s_regions, output):
    """The S_REGION of a mosaic, as the official resample writes it: the union of the
    inputs' polygons (several POLYGONs when they do not touch) cut to the output grid's
    footprint, computed in the output's pixel plane, nearly-collinear and doubled
    vertices dropped, back on the sky. None when nothing overlaps the grid."""
    import shapely  # noqa: PLC0415

    polygons = []
    for region in s_regions:
        polygons += ["POLYGON ICRS " + p.strip() for p in region.split("POLYGON ICRS") if p.strip()]
    det2world = output.get_transform("detector", "world")
    world2det = det2world.inverse

    def to_pixels(footprint):
        return np.column_stack(world2det(footprint[:, 0], footprint[:, 1]))

    union = shapely.unary_union([shapely.Polygon(to_pixels(footprint_from_s_region(p)))
                                 for p in polygons])
    grid = shapely.Polygon(to_pixels(output.footprint()))
    pieces = union.geoms if isinstance(union, shapely.MultiPolygon) else [union]
    regions = []
    for piece in pieces:
        cut = shapely.intersection(piece, grid)
        if cut.is_empty:
            continue
        vertices = _drop_collinear(np.column_stack(cut.exterior.coords.xy)[:-1])
        ra, dec = det2world(vertices[:, 0], vertices[:, 1])
        corners = " ".join(f"{a:.9f} {d:.9f}" for a, d in zip(ra, dec))
        regions.append(f"POLYGON ICRS  {corners}")
    return "  ".join(regions) if regions else None


def _drop_collinear(vertices, min_step=0.05, min_angle=1e-6):
    """Vertices (pixels) less than ``min_step`` after their predecessor, or turning by less
    than ``min_angle`` radians (slopes compared as the official does), removed."""
    before = vertices - np.roll(vertices, 1, axis=0)
    after = np.roll(vertices, -1, axis=0) - vertices
    close = (np.abs(before[:, 0]) < min_step) & (np.abs(before[:, 1]) < min_step)
    slope_before = before[:, 1] / (before[:, 0] + 1e-12)
    slope_after = after[:, 1] / (after[:, 0] + 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        turn = np.arctan((slope_after - slope_before) / (1 + slope_before * slope_after))
    return vertices[~(close | (np.abs(turn) < min_angle))]


def _fiducial(footprints):
    lon, lat = np.deg2rad(np.vstack(footprints)).T
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    xm, ym, zm = [(v.max() + v.min()) / 2.0 for v in (x, y, z)]
    return (np.rad2deg(np.arctan2(ym, xm)) % 360.0,
            np.rad2deg(np.arctan2(zm, np.sqrt(xm ** 2 + ym ** 2))))


def pixel_scale_at(wcs, ra, dec):
    """Geometric mean of the x and y pixel scales (deg) of ``wcs`` at (ra, dec)."""
    from astropy import coordinates as coord  # noqa: PLC0415

    x, y = wcs.invert(ra, dec, with_bounding_box=False)
    ras, decs = wcs(np.array([x, x + 1, x]), np.array([y, y, y + 1]), with_bounding_box=False)
    points = coord.SkyCoord(ra=ras, dec=decs, unit="deg")
    return float(np.sqrt(abs(points[0].separation(points[1]).value) *
                         abs(points[0].separation(points[2]).value)))


def _rotation_matrix(roll_ref, v3yangle, vparity):
    angle = roll_ref - vparity * v3yangle
    return np.array([[vparity * np.cos(angle), np.sin(angle)],
                     [vparity * -np.sin(angle), np.cos(angle)]])


def output_wcs(s_regions, ref_wcs, ref_wcsinfo, *, pixel_scale_ratio=1.0, pixel_scale=None,
               rotation=None):
    """(gwcs, shape (ny, nx), pixel scale deg) of the grid covering ``s_regions``.
    ``ref_wcs``/``ref_wcsinfo``: the first input's; ``pixel_scale`` in deg."""
    import gwcs  # noqa: PLC0415
    from astropy.modeling import models  # noqa: PLC0415

    footprints = [footprint_from_s_region(s) for s in s_regions]
    crval = _fiducial(footprints)
    v3yangle = np.deg2rad(ref_wcsinfo["v3yangle"])
    vparity = ref_wcsinfo["vparity"]
    roll = np.deg2rad(ref_wcsinfo["roll_ref"]) if rotation is None else \
        np.deg2rad(rotation) + vparity * v3yangle
    pc = _rotation_matrix(roll, v3yangle, vparity)
    if not pixel_scale:
        pixel_scale = pixel_scale_at(ref_wcs, ref_wcsinfo["ra_ref"], ref_wcsinfo["dec_ref"]) \
            * pixel_scale_ratio
    projection = models.Pix2Sky_TAN()
    transform = (models.AffineTransformation2D(matrix=pc)
                 | models.Scale(pixel_scale) & models.Scale(pixel_scale)
                 | projection | models.RotateNative2Celestial(crval[0], crval[1], 180))
    bounds = np.hstack([transform.inverse(*f.T) for f in footprints])
    lower, upper = bounds.min(axis=1), bounds.max(axis=1)
    native_crpix = transform.inverse(*crval)
    offsets = tuple(c - lo for c, lo in zip(native_crpix, lower))
    upper = upper + offsets
    shape = tuple(int(u + 0.5) for u in upper[::-1])
    if min(shape) < 2:
        raise ValueError(f"the output grid would be {shape[1]}x{shape[0]} pixels")
    fits_transform = gwcs.FITSImagingWCSTransform(projection, crpix=offsets, crval=crval,
                                                  cdelt=[pixel_scale, pixel_scale], pc=pc)
    wcs = gwcs.WCS([gwcs.Step(ref_wcs.input_frame, fits_transform),
                    gwcs.Step(ref_wcs.output_frame, None)])
    wcs.bounding_box = tuple((-0.5, s - 0.5) for s in shape[::-1])
    wcs.pixel_shape = shape[::-1]
    return wcs, shape, pixel_scale


def pixel_map(input_wcs, output, shape, rows_per_block=128):
    """Output-grid (x, y) of every input pixel centre: float64 (ny, nx, 2), as the
    official calc_pixmap (input WCS forward, output WCS inverse, the output's bounding
    box ignored; input pixels outside the input's bounding box NaN).

    The transform chain runs as a compiled program (webbflow.wcs.compiled), checked
    against astropy's evaluation on a sparse grid of pixels; a chain it cannot express,
    or a disagreement beyond 1e-6 px, falls back to astropy, in row blocks (the chain
    makes a dozen temporaries per point)."""
    from webbflow.kernels.transform import run_program  # noqa: PLC0415
    from webbflow.wcs.compiled import Unsupported, compile_chain  # noqa: PLC0415

    ny, nx = shape
    forward = input_wcs.forward_transform
    backward = output.backward_transform
    out = np.empty((ny, nx, 2), np.float64)
    try:
        program = compile_chain(forward, backward)
    except Unsupported as exc:
        log.info("pixel map by astropy: %s", exc)
    else:
        run_program(*program, 0, ny, nx, out)
        ys = np.unique(np.linspace(0, ny - 1, 17).astype(int))
        xs = np.unique(np.linspace(0, nx - 1, 17).astype(int))
        yy, xx = np.meshgrid(ys.astype(np.float64), xs.astype(np.float64), indexing="ij")
        expected = _astropy_map(forward, backward, xx, yy)
        got = out[yy.astype(int), xx.astype(int)]
        both = np.isfinite(expected) & np.isfinite(got)
        if np.array_equal(both, np.isfinite(expected)) and \
                np.abs(got[both] - expected[both]).max(initial=0.0) < 1e-6:
            return _blank_outside_box(input_wcs, out)
        log.warning("compiled pixel map disagrees with astropy: using astropy")
    x = np.arange(nx, dtype=np.float64)
    for y0 in range(0, ny, rows_per_block):
        y1 = min(ny, y0 + rows_per_block)
        yy, xx = np.meshgrid(np.arange(y0, y1, dtype=np.float64), x, indexing="ij")
        out[y0:y1] = _astropy_map(forward, backward, xx, yy)
    return _blank_outside_box(input_wcs, out)


def _blank_outside_box(input_wcs, pixmap):
    """NaN for the input pixels outside the input WCS's bounding box: the official pixel
    map evaluates the input WCS with its box (a full-frame MIRI exposure's reference
    columns are not drizzled)."""
    box = getattr(input_wcs, "bounding_box", None)
    if box is None:
        return pixmap
    (x0, x1), (y0, y1) = box.bounding_box(order="F") if hasattr(box, "bounding_box") else box
    columns, rows = np.arange(pixmap.shape[1]), np.arange(pixmap.shape[0])
    pixmap[:, (columns < x0) | (columns > x1)] = np.nan
    pixmap[(rows < y0) | (rows > y1)] = np.nan
    return pixmap


def _astropy_map(forward, backward, xx, yy):
    # every input pixel centre lies inside the input's bounding box
    ra, dec = forward(xx, yy, with_bounding_box=False)
    xo, yo = backward(ra, dec, with_bounding_box=False)
    return np.stack([xo, yo], axis=-1)
