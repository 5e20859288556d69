"""tweakreg's alignment order (expand_refcat without enforce_user_order) against
tweakwcs's own choice: the same footprints given to tweakwcs (``WCSImageCatalog`` /
``WCSGroupCatalog`` / ``RefCatalog`` polygons on spherical_geometry, ``_max_overlap_pair``
and ``_max_overlap_image``) and to webbflow.steps.tweakreg_overlap.

The footprints: dithered, rotated TAN images with random source lists, groups of one
and two images, members without sources (bounding-box outline) and with one to three
sources (the boxes around them); a reference catalog that grows by each aligned group's
sources, as in the expanding alignment. tweakwcs and spherical_geometry are the
official chain's packages (installed with jwst for the tests), not webbflow's.
"""

import numpy as np
import pytest

from webbflow.steps.tweakreg_overlap import (group_overlap, image_polygon, max_overlap_image,
                                             max_overlap_pair, overlap_area, refcat_polygon)

tweakwcs = pytest.importorskip("tweakwcs")

RA0, DEC0 = 53.16, -27.78
SCALE = 0.031 / 3600.0


def _wcs(rng, dx, dy, rot, shape):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA0 + dx / 3600.0 / np.cos(np.radians(DEC0)), DEC0 + dy / 3600.0]
    ny, nx = shape
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    w.wcs.cd = SCALE * np.array([[-c, s], [s, c]])
    w.pixel_shape = (nx, ny)
    return w


def _image(rng, dx, dy, rot=0.0, shape=(400, 400), nsrc=40):
    """(tweakwcs WCSImageCatalog, our polygon, our sources' RA/Dec)."""
    from astropy.table import Table
    from tweakwcs.correctors import FITSWCSCorrector
    from tweakwcs.wcsimage import WCSImageCatalog

    wcs = _wcs(rng, dx, dy, rot, shape)
    ny, nx = shape
    x = rng.uniform(-0.4, nx - 0.6, nsrc)
    y = rng.uniform(-0.4, ny - 0.6, nsrc)
    corrector = FITSWCSCorrector(wcs)
    catalog = Table({"x": x, "y": y, "id": np.arange(1, nsrc + 1)})
    image = WCSImageCatalog(catalog, corrector, name=f"im{dx:.1f},{dy:.1f}")
    polygon = image_polygon(x, y, corrector.det_to_world, corrector.bounding_box)
    ra, dec = corrector.det_to_world(x, y)
    return image, polygon, (np.asarray(ra), np.asarray(dec))


def _scene(seed, layout):
    """``layout``: per group a list of image kwargs. Returns tweakwcs groups, our
    polygon lists, our per-group source RA/Dec."""
    from tweakwcs.wcsimage import WCSGroupCatalog

    rng = np.random.default_rng(seed)
    groups, polygons, radec = [], [], []
    for k, images in enumerate(layout):
        made = [_image(rng, **kw) for kw in images]
        groups.append(WCSGroupCatalog([m[0] for m in made], name=f"GROUP {k}"))
        polygons.append([m[1] for m in made])
        radec.append((np.concatenate([m[2][0] for m in made]),
                      np.concatenate([m[2][1] for m in made])))
    return groups, polygons, radec


LAYOUTS = {
    # five single images on a small random dither pattern (the usual tweakreg input)
    "dithers": lambda rng: [[dict(dx=dx, dy=dy, rot=rot)] for dx, dy, rot in zip(
        rng.uniform(-6, 6, 5), rng.uniform(-6, 6, 5), rng.uniform(-1, 1, 5))],
    # mosaic tiles overlapping by different amounts, one far away
    "mosaic": lambda rng: [[dict(dx=0.0, dy=0.0)], [dict(dx=10.0, dy=0.5)],
                           [dict(dx=4.0, dy=9.0, rot=20.0)], [dict(dx=-9.0, dy=-3.0)],
                           [dict(dx=60.0, dy=60.0)]],
    # two-detector exposures (one detector without sources), and sparse catalogs
    "groups": lambda rng: [
        [dict(dx=0.0, dy=0.0), dict(dx=13.0, dy=0.0, nsrc=0)],
        [dict(dx=2.0, dy=1.0), dict(dx=15.0, dy=1.0)],
        [dict(dx=-3.0, dy=2.0, nsrc=3), dict(dx=10.0, dy=2.0, nsrc=2)],
        [dict(dx=1.0, dy=-2.0, nsrc=1), dict(dx=14.0, dy=-2.0)],
        [dict(dx=6.0, dy=5.0, shape=(256, 512))]],
}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_overlap_order_matches_tweakwcs(layout, seed):
    from astropy.table import Table
    from tweakwcs.imalign import _max_overlap_image, _max_overlap_pair
    from tweakwcs.wcsimage import RefCatalog

    groups, polygons, radec = _scene(seed, LAYOUTS[layout](np.random.default_rng(seed)))
    # the overlap measure itself, group by group (spherical_geometry's angle sums are good
    # to ~1e-14 sr for these 1e-9 sr polygons)
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            theirs = groups[i]._guarded_intersection_area(groups[j])[0]
            ours = group_overlap(polygons[i], polygons[j])
            assert ours == pytest.approx(theirs, rel=1e-6, abs=3e-14), (i, j)
    # the starting pair and the order after it, the reference catalog growing by each
    # aligned group's sources
    index = {id(g): k for k, g in enumerate(groups)}
    pending = list(groups)
    ref, current, _ = _max_overlap_pair(pending, enforce_user_order=False)
    theirs = [index[id(ref)], index[id(current)]]
    refcat = RefCatalog(Table({"RA": radec[theirs[0]][0], "DEC": radec[theirs[0]][1]}))
    while current is not None:
        k = index[id(current)]
        refcat.expand_catalog(Table({"RA": radec[k][0], "DEC": radec[k][1]}))
        current, _ = _max_overlap_image(refcat, pending, enforce_user_order=False)
        if current is not None:
            theirs.append(index[id(current)])

    first, second, _, remaining = max_overlap_pair(polygons, user_order=False)
    ours = [first, second]
    ra, dec = radec[first]
    current = second
    while current is not None:
        ra, dec = np.concatenate([ra, radec[current][0]]), np.concatenate([dec, radec[current][1]])
        current, _ = max_overlap_image(refcat_polygon(ra, dec), polygons, remaining, False)
        if current is not None:
            ours.append(current)
    print(layout, seed, "order", ours)
    assert ours == theirs


def test_user_order_and_two_groups_keep_the_input_order():
    _, polygons, _ = _scene(3, LAYOUTS["mosaic"](None))
    first, second, area, remaining = max_overlap_pair(polygons, user_order=True)
    assert (first, second, remaining) == (0, 1, [2, 3, 4])
    assert area == pytest.approx(group_overlap(polygons[0], polygons[1]))
    assert max_overlap_image(None, polygons, remaining, True) == (2, None)
    assert max_overlap_pair(polygons[3:], user_order=False)[:2] == (0, 1)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 50])
def test_refcat_hull_matches_tweakwcs(n):
    """The reference catalog's polygon (boxes for one or two sources) has tweakwcs's area."""
    from astropy.table import Table
    from tweakwcs.wcsimage import RefCatalog

    rng = np.random.default_rng(n)
    ra = RA0 + rng.uniform(-0.005, 0.005, n)
    dec = DEC0 + rng.uniform(-0.005, 0.005, n)
    theirs = RefCatalog(Table({"RA": ra, "DEC": dec})).polygon
    ours = refcat_polygon(ra, dec)
    points = next(iter(theirs)).points[:-1]
    assert abs(theirs.area()) == pytest.approx(overlap_area(ours, [ours]), rel=1e-5)
    if n > 3:
        # the same vertices, in order up to the start and direction
        start = int(np.argmin(np.linalg.norm(points - ours[0], axis=1)))
        rolled = np.roll(points, -start, axis=0)
        if not np.allclose(rolled, ours, atol=1e-12):
            rolled = np.roll(rolled[::-1], 1, axis=0)
        assert np.allclose(rolled, ours, atol=1e-12)


def test_intersection_with_a_union_counts_the_overlap_once():
    """Two overlapping members: the union's overlap is not the sum of the overlaps."""
    from spherical_geometry.polygon import SphericalPolygon

    def square(cx, cy, half):
        ra = RA0 + (cx + np.array([-half, half, half, -half])) / 3600.0 / np.cos(np.radians(DEC0))
        dec = DEC0 + (cy + np.array([-half, -half, half, half])) / 3600.0
        from webbflow.wcs.sphere import unit_vectors
        return unit_vectors(ra, dec)

    a, b, c = square(0, 0, 5), square(3, 0.3, 5), square(-3, 1, 4.2)
    union = SphericalPolygon.multi_union([SphericalPolygon(np.vstack([p, p[:1]]))
                                          for p in (b, c)])
    theirs = abs(SphericalPolygon(np.vstack([a, a[:1]])).intersection(union).area())
    ours = overlap_area(a, [b, c])
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert ours < overlap_area(a, [b]) + overlap_area(a, [c])
    assert overlap_area(a, [square(30, 0, 5)]) == 0.0
    assert overlap_area(a, [a]) == pytest.approx(overlap_area(a, [square(0, 0, 6)]))
