"""skymatch's pieces on small inputs: the sky statistic against simulated truth and
against stsci.imagestats (the official one), the scan-line fill against gwcs' polygon
region, and footprint overlaps against spherical_geometry's polygon intersection."""

import numpy as np
import pytest

from webbflow.steps.skymatch import (fill_polygon, overlap_polygons, sky_statistic,
                                     solve_sky_deltas)


def _gaussian_sky(rng, n, level, sigma, n_hot=0):
    values = rng.normal(level, sigma, n).astype(np.float32)
    values[rng.integers(0, n, n_hot)] += rng.uniform(20 * sigma, 200 * sigma, n_hot)
    return values


def test_statistics_recover_a_known_sky():
    rng = np.random.default_rng(3)
    level, sigma, n = 0.25, 0.05, 400_000
    values = _gaussian_sky(rng, n, level, sigma, n_hot=2000)
    for stat, tolerance in (("mode", 0.1 * sigma), ("midpt", 0.05 * sigma),
                            ("median", 0.02 * sigma), ("mean", 0.02 * sigma)):
        value, npix = sky_statistic(values, stat)
        assert abs(value - level) < tolerance, stat
        # the clipping removed the hot pixels and kept nearly all the sky
        assert n - 2000 - 200 < npix <= n - 2000 + 50, stat


def test_statistic_is_shift_equivariant():
    rng = np.random.default_rng(4)
    values = _gaussian_sky(rng, 100_000, 0.1, 0.6, n_hot=300)
    base, _ = sky_statistic(values)
    shifted, _ = sky_statistic(values + np.float32(0.3))
    assert shifted - base == pytest.approx(0.3, abs=1e-5)


def test_statistic_errors_as_imagestats():
    with pytest.raises(ValueError):
        sky_statistic(np.zeros(0, np.float32))
    with pytest.raises(ValueError):
        sky_statistic(np.ones(10, np.float32), lower=2.0)
    with pytest.raises(ValueError):
        sky_statistic(np.ones(10, np.float32), upper=0.5)


@pytest.mark.oracle
def test_statistic_matches_imagestats():
    imagestats = pytest.importorskip("stsci.imagestats")
    rng = np.random.default_rng(1)
    for trial in range(120):
        n = int(rng.integers(5, 20000))
        values = _gaussian_sky(rng, n, rng.uniform(-1, 1), rng.uniform(0.01, 2),
                               n_hot=n // 50 if trial % 3 == 0 else 0)
        if trial % 5 == 0:
            values[0] = -50.0                 # a first value outside the clip range
        if trial % 7 == 0:
            values = np.round(values, 1).astype(np.float32)   # ties in the histogram
        lower = -0.5 if trial % 11 == 0 else None
        nclip = int(rng.integers(0, 6))
        for stat in ("mode", "midpt", "mean", "median"):
            try:
                official = imagestats.ImageStats(values, fields=f"npix,{stat}", lower=lower,
                                                 nclip=nclip, lsig=4.0, usig=4.0,
                                                 binwidth=0.1)
                expected = (getattr(official, stat), official.npix)
            except ValueError:
                expected = "error"
            try:
                got = sky_statistic(values, stat, lower=lower, nclip=nclip)
            except ValueError:
                got = "error"
            if expected == "error" or got == "error":
                assert expected == got, (trial, stat)
                continue
            assert got[1] == expected[1], (trial, stat)
            assert got[0] == expected[0] or (np.isnan(got[0]) and np.isnan(expected[0])), \
                (trial, stat, got, expected)
            assert type(got[0]) is type(expected[0]), (trial, stat)


def test_fill_matches_gwcs_region():
    from gwcs import region

    rng = np.random.default_rng(7)
    for _ in range(200):
        shape = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        # convex polygons around a centre, partly outside the image sometimes
        k = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        centre = rng.uniform(-5, 60, 2)
        radius = rng.uniform(2, 40)
        xs = list(centre[0] + radius * np.cos(angles)) + [centre[0] + radius * np.cos(angles[0])]
        ys = list(centre[1] + radius * np.sin(angles)) + [centre[1] + radius * np.sin(angles[0])]
        ours = fill_polygon(np.zeros(shape, bool), xs, ys)
        theirs = region.Polygon(True, list(zip(xs, ys))).scan(np.zeros(shape, bool))
        assert np.array_equal(ours, theirs)


def _square(ra0, dec0, half, rotation=0.0):
    """Unit vectors of a small square on the sky, built in the tangent plane at (ra0, dec0)."""
    c, s = np.cos(rotation), np.sin(rotation)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    xi, eta = (corners @ np.array([[c, -s], [s, c]]).T).T
    ra0, dec0 = np.deg2rad(ra0), np.deg2rad(dec0)
    centre = np.array([np.cos(dec0) * np.cos(ra0), np.cos(dec0) * np.sin(ra0), np.sin(dec0)])
    east = np.array([-np.sin(ra0), np.cos(ra0), 0.0])
    north = np.cross(centre, east)
    points = centre + np.outer(np.deg2rad(xi), east) + np.outer(np.deg2rad(eta), north)
    return points / np.linalg.norm(points, axis=1)[:, None]


def test_overlap_of_offset_squares():
    a = _square(30.0, -20.0, 0.01)
    b = _square(30.0 + 0.01 / np.cos(np.deg2rad(20.0)), -20.0 + 0.005, 0.01)
    pieces, area = overlap_polygons(a, b)
    assert len(pieces) == 1
    # half a square wide, three quarters high (in the tangent plane, in rad^2)
    expected = np.deg2rad(0.01) * np.deg2rad(0.015)
    assert area == pytest.approx(expected, rel=2e-3)
    assert overlap_polygons(a, _square(31.0, -20.0, 0.01)) == ([], 0.0)
    inner = _square(30.0, -20.0, 0.004, rotation=0.3)
    pieces, _ = overlap_polygons(a, inner)
    # a footprint inside the other is the overlap, its vertices unchanged
    assert {tuple(p) for p in pieces[0]} == {tuple(p) for p in inner}


@pytest.mark.oracle
def test_overlap_matches_spherical_geometry():
    sg = pytest.importorskip("spherical_geometry.polygon")
    rng = np.random.default_rng(11)
    for _ in range(50):
        a = _square(rng.uniform(0, 360), rng.uniform(-80, 80), 0.02, rng.uniform(0, 1))
        centre = np.mean(a, axis=0)
        ra = np.rad2deg(np.arctan2(centre[1], centre[0])) + rng.uniform(-0.03, 0.03)
        dec = np.rad2deg(np.arcsin(centre[2] / np.linalg.norm(centre))) + rng.uniform(-0.03, 0.03)
        b = _square(ra, dec, rng.uniform(0.005, 0.03), rng.uniform(0, 1))
        ours, area = overlap_polygons(a, b)
        theirs = sg.SphericalPolygon(np.vstack([a, a[:1]])).intersection(
            sg.SphericalPolygon(np.vstack([b, b[:1]])))
        assert (area == 0.0) == (theirs.area() == 0.0)
        if area:
            assert area == pytest.approx(theirs.area(), rel=1e-6)
            official = list(theirs.points)[0][:-1]
            mine = ours[0][:-1]
            assert len(mine) == len(official)
            assert np.abs(official[:, None, :] - mine[None, :, :]).sum(axis=2).min(axis=1) \
                .max() < 1e-12


def test_solution_recovers_pairwise_offsets():
    truth = np.array([0.0, 0.3, -0.2, 0.5])
    skies = truth[None, :] + np.zeros((4, 4))       # input i's sky seen over any overlap
    weights = np.full((4, 4), 1000.0)
    np.fill_diagonal(weights, 0)
    deltas = solve_sky_deltas(skies, weights)
    assert np.allclose(deltas - deltas.min(), truth - truth.min(), atol=1e-12)
    weights[3, :] = weights[:, 3] = 0                 # a member overlapping nothing
    assert np.isnan(solve_sky_deltas(skies, weights)[3])
