"""drizzle kernels vs drizzle.cdrizzle (tdriz / tblot, drizzle 2.2.0) and stcal resample.

Tolerances (the brief): science values to 1e-5 of their magnitude where the weight is
> 0, weights to 1e-5 relative, context and the set of covered pixels identical. The
kernels reproduce C's arithmetic, so in practice the arrays come out identical; the
checks below stay at the stated tolerances, and test_tolerance_catches_small_errors shows
they are tight enough to catch a 1/1000-pixel mapping error or a shifted corner.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from webbflow.kernels.drizzle import (
    accumulate_variance,
    blot_image,
    drizzle_image,
    error_from_variances,
    finalize_variance,
    ivm_output_weight,
)

cdrizzle = pytest.importorskip("drizzle.cdrizzle")

RTOL = 1e-5


def _pixmap(shape, ang=0.0, scale=1.0, shift=(0.0, 0.0), quad=0.0):
    """Output (x, y) of each input pixel centre: rotation by ang degrees about the
    origin, output pixels ``scale`` times larger, a shift, and an optional quadratic
    distortion (so that interpolated corners differ from the exact map)."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    a = np.deg2rad(ang)
    xo = (np.cos(a) * x - np.sin(a) * y) / scale + shift[0] + quad * (x - 30.0) ** 2
    yo = (np.sin(a) * x + np.cos(a) * y) / scale + shift[1] + 0.5 * quad * (y - 20.0) ** 2
    return np.ascontiguousarray(np.dstack([xo, yo]))


def _inputs(seed, shape):
    rng = np.random.default_rng(seed)
    data = rng.normal(10.0, 2.0, shape).astype(np.float32)
    weight = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return data, weight


def _empty(out_shape):
    return (np.zeros(out_shape, np.float32), np.zeros(out_shape, np.float32),
            np.zeros(out_shape, np.int32))


def _tdriz(data, weight, pixmap, out, bit=0, **kw):
    sci, wht, con = out
    cdrizzle.tdriz(data, weight, pixmap, sci, wht, con, uniqid=bit + 1,
                   kernel=kw.pop("kernel", "square"), in_units="cps", expscale=1.0,
                   wtscale=1.0, fillstr="INDEF", **kw)


def _ours(data, weight, pixmap, out, bit=0, **kw):
    sci, wht, con = out
    drizzle_image(data, weight, pixmap, sci, wht, con, bit, **kw)


def _assert_match(ref, got):
    (rs, rw, rc), (gs, gw, gc) = ref, got
    assert_array_equal(gw > 0, rw > 0)
    m = rw > 0
    assert m.any()
    np.testing.assert_allclose(gw, rw, rtol=RTOL, atol=0)
    scale = np.maximum(np.abs(rs[m]), 1e-30)
    assert np.max(np.abs(gs[m] - rs[m]) / scale) <= RTOL
    assert_array_equal(gc, rc)


def _both(data, weight, pixmap, out_shape, bit=0, start=None, **kw):
    ref = _empty(out_shape) if start is None else tuple(a.copy() for a in start)
    got = _empty(out_shape) if start is None else tuple(a.copy() for a in start)
    _tdriz(data, weight, pixmap, ref, bit, **kw)
    _ours(data, weight, pixmap, got, bit, **kw)
    return ref, got


SHAPE = (60, 70)

CASES = {
    "identity": dict(map=dict(), out=(60, 70)),
    "shift": dict(map=dict(shift=(3.3, -2.7)), out=(66, 76)),
    "rot_big_out_pix": dict(map=dict(ang=17.0, scale=1.3, shift=(20.0, -4.0)), out=(60, 70)),
    "rot_small_out_pix": dict(map=dict(ang=-33.0, scale=0.6, shift=(60.0, 120.0)), out=(170, 160)),
    "distorted": dict(map=dict(ang=3.0, scale=1.1, shift=(4.0, 6.0), quad=2e-3), out=(80, 90)),
    "partly_off_grid": dict(map=dict(ang=10.0, shift=(-20.3, -15.6)), out=(45, 50)),
}


@pytest.mark.parametrize("pixfrac", [1.0, 0.5])
@pytest.mark.parametrize("case", list(CASES))
def test_square_vs_tdriz(case, pixfrac):
    data, weight = _inputs(1, SHAPE)
    c = CASES[case]
    ref, got = _both(data, weight, _pixmap(SHAPE, **c["map"]), c["out"], pixfrac=pixfrac)
    _assert_match(ref, got)


def test_zero_weight_and_nan_pixmap():
    data, weight = _inputs(2, SHAPE)
    weight[30:35, 30:40] = 0.0
    weight[0, :] = 0.0
    pm = _pixmap(SHAPE, ang=5.0, scale=0.9, shift=(4.0, 4.0))
    pm[10:13, 20:25] = np.nan              # a hole
    pm[40, :, 1] = np.nan                  # a row (y only)
    pm[:, 0] = np.nan                      # the first column: the region shrinks
    pm[:, -2:] = np.nan                    # and the last two
    ref, got = _both(data, weight, pm, (90, 90))
    _assert_match(ref, got)
    # nothing drizzled where all contributors have zero weight / no map
    assert got[1][int(pm[32, 35, 1]), int(pm[32, 35, 0])] == 0.0


def test_point_kernel_and_tiny_pixfrac():
    data, weight = _inputs(3, SHAPE)
    pm = _pixmap(SHAPE, ang=10.0, shift=(3.0, 1.0), quad=1e-3)
    ref, got = _both(data, weight, pm, (90, 90), kernel="point")
    _assert_match(ref, got)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, got = _both(data, weight, pm, (90, 90), pixfrac=0.0005)   # -> point
    _assert_match(ref, got)


def test_two_inputs_accumulate():
    d1, w1 = _inputs(4, SHAPE)
    d2, w2 = _inputs(5, SHAPE)
    w2[::7] = 0.0
    ref, got = _both(d1, w1, _pixmap(SHAPE, ang=8.0, shift=(5.0, 3.0)), (80, 85), bit=0)
    _assert_match(ref, got)
    start_r, start_g = ref, got
    ref, got = _both(d2, w2, _pixmap(SHAPE, ang=-4.0, scale=1.1, shift=(12.0, 9.0)), (80, 85),
                     bit=31, pixfrac=0.7, start=start_r)
    got2 = _empty((80, 85))
    for a, b in zip(got2, start_g):
        a[...] = b
    _ours(d2, w2, _pixmap(SHAPE, ang=-4.0, scale=1.1, shift=(12.0, 9.0)), got2, 31, pixfrac=0.7)
    _assert_match(ref, got2)
    con = got2[2]
    assert (con == 1).any() and (con == np.int32(-(2**31))).any() and (con == 1 - 2**31).any()


def test_region_iscale_wtscale_dq():
    data, weight = _inputs(6, SHAPE)
    pm = _pixmap(SHAPE, ang=2.0, shift=(2.0, 2.0))
    dq = np.random.default_rng(6).integers(0, 16, SHAPE).astype(np.uint32)
    kw = dict(xmin=5, xmax=50, ymin=3, ymax=40, iscale=1.7, pixfrac=0.8)
    ref, got = _empty((70, 80)), _empty((70, 80))
    rdq, gdq = np.zeros((70, 80), np.uint32), np.zeros((70, 80), np.uint32)
    cdrizzle.tdriz(data, weight, pm, *ref, uniqid=1, kernel="square", in_units="cps", expscale=1.0,
                   wtscale=2.5, fillstr="INDEF", dq=dq, outdq=rdq, **kw)
    drizzle_image(data, weight, pm, *got, 0, wt_scale=2.5, in_dq=dq, out_dq=gdq, **kw)
    _assert_match(ref, got)
    assert_array_equal(gdq, rdq)
    assert rdq.any()


def test_threads_do_not_change_result():
    data, weight = _inputs(7, SHAPE)
    pm = _pixmap(SHAPE, ang=40.0, scale=0.8, shift=(50.0, 5.0))
    outs = []
    for n in (1, 2, 5):
        out = _empty((110, 110))
        _ours(data, weight, pm, out, nthreads=n)
        outs.append(out)
    for o in outs[1:]:
        for a, b in zip(o, outs[0]):
            assert_array_equal(a, b)


def test_moderate_image():
    data, weight = _inputs(8, (400, 440))
    pm = _pixmap((400, 440), ang=0.3, scale=1.07, shift=(5.3, 7.1), quad=2e-5)
    ref, got = _both(data, weight, pm, (420, 460))
    _assert_match(ref, got)


def test_tolerance_catches_small_errors():
    """The comparison is sharp: a 1e-3 pixel offset of the map, or corners placed at the
    exactly-mapped positions instead of C's bilinear interpolation, both fail it."""
    data, weight = _inputs(9, SHAPE)
    pm = _pixmap(SHAPE, ang=3.0, scale=1.1, shift=(4.0, 6.0), quad=2e-3)
    ref = _empty((80, 90))
    _tdriz(data, weight, pm, ref)
    got = _empty((80, 90))
    _ours(data, weight, pm + 1e-3, got)
    with pytest.raises(AssertionError):
        _assert_match(ref, got)
    # a pixmap evaluated half a pixel off everywhere = the wrong corner convention
    got = _empty((80, 90))
    _ours(data, weight, pm + np.array([0.5, 0.0]), got)
    with pytest.raises(AssertionError):
        _assert_match(ref, got)


def test_bad_region_raises():
    data, weight = _inputs(10, SHAPE)
    pm = np.full(SHAPE + (2,), np.nan)
    pm[5, 5] = (1.0, 1.0)
    with pytest.raises(ValueError):
        drizzle_image(data, weight, pm, *_empty((10, 10)))


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else a.dtype)


def _multi_vs_separate(data, weight, pm, extra, out_shape, start=None, **kw):
    """One multi-channel call against one call per channel (SCI with context and DQ,
    then each extra channel on a copy of the shared extra weight): bit for bit."""
    n = extra.shape[0]
    rng = np.random.default_rng(99)
    dq = rng.integers(0, 8, data.shape).astype(np.uint32)
    if start is None:
        sci, wht, con = _empty(out_shape)
        eout = np.zeros((n,) + out_shape, np.float32)
        ewht = np.zeros(out_shape, np.float32)
    else:
        (sci, wht, con), eout, ewht = start
    ref = [sci.copy(), wht.copy(), con.copy(), np.zeros(out_shape, np.uint32)]
    got = [sci.copy(), wht.copy(), con.copy(), np.zeros(out_shape, np.uint32)]
    ref_e = eout.copy()
    ref_w = []
    drizzle_image(data, weight, pm, *ref[:3], 3, in_dq=dq, out_dq=ref[3], **kw)
    for k in range(n):
        wk = ewht.copy()
        drizzle_image(extra[k], weight, pm, ref_e[k], wk, **kw)
        ref_w.append(wk)
    got_e = eout.copy()
    got_w = ewht.copy()
    drizzle_image(data, weight, pm, *got[:3], 3, in_dq=dq, out_dq=got[3], extra_data=extra,
                  extra_out=got_e, extra_wht=got_w, **kw)
    for a, b in zip(got, ref):
        assert_array_equal(_bits(a), _bits(b))
    assert_array_equal(_bits(got_e), _bits(ref_e))
    for wk in ref_w:
        assert_array_equal(_bits(got_w), _bits(wk))
    return tuple(got[:3]), got_e, got_w


def _extra_channels(seed, shape, n=3):
    rng = np.random.default_rng(seed)
    extra = np.sqrt(rng.uniform(0.1, 2.0, (n,) + shape)).astype(np.float32)
    extra[1, 10:14, 20:30] = np.nan          # NaN values with weight > 0 propagate
    extra[2, 33, :] = np.nan
    extra[0, 5, 5] = np.inf
    return extra


MULTI = {
    "pixfrac1": dict(pixfrac=1.0),
    "pixfrac0.6": dict(pixfrac=0.6),
    "point": dict(kernel="point"),
    "region_iscale": dict(pixfrac=0.8, iscale=1.7, wt_scale=2.5, xmin=4, xmax=55, ymin=2,
                          ymax=50),
    "one_strip": dict(pixfrac=0.9, nthreads=1),
    "many_strips": dict(pixfrac=0.9, nthreads=7),
}


@pytest.mark.parametrize("case", list(MULTI))
def test_multichannel_equals_separate_calls(case):
    data, weight = _inputs(12, SHAPE)
    data[40:42, 10:20] = np.nan
    weight[30:35, 30:40] = 0.0               # zero weight: nothing added, no context bit
    weight[20, 50:60] = np.nan               # NaN weight: NaN deposited, as tdriz
    pm = _pixmap(SHAPE, ang=12.0, scale=0.9, shift=(15.0, 2.0), quad=1e-3)
    pm[45:47, 30:33] = np.nan
    extra = _extra_channels(13, SHAPE)
    first = _multi_vs_separate(data, weight, pm, extra, (95, 100), **MULTI[case])
    assert np.isnan(first[1]).any() and (first[2] > 0).any()
    # a second input onto the running sums (non-empty extra weights)
    d2, w2 = _inputs(14, SHAPE)
    w2[::5] = 0.0
    pm2 = _pixmap(SHAPE, ang=-6.0, scale=1.05, shift=(20.0, 14.0))
    _multi_vs_separate(d2, w2, pm2, _extra_channels(15, SHAPE), (95, 100), start=first,
                       **MULTI[case])


def test_multichannel_without_weight_and_one_channel():
    data, _ = _inputs(16, SHAPE)
    pm = _pixmap(SHAPE, ang=30.0, scale=1.2, shift=(30.0, -5.0))
    _multi_vs_separate(data, None, pm, _extra_channels(17, SHAPE, n=3)[1:2], (80, 80),
                       pixfrac=0.7)


def test_multichannel_argument_checks():
    data, weight = _inputs(18, SHAPE)
    pm = _pixmap(SHAPE, shift=(2.0, 2.0))
    sci, wht, con = _empty((70, 80))
    extra = np.zeros((2,) + SHAPE, np.float32)
    eout = np.zeros((2, 70, 80), np.float32)
    with pytest.raises(ValueError, match="together"):
        drizzle_image(data, weight, pm, sci, wht, extra_data=extra, extra_out=eout)
    with pytest.raises(ValueError, match="overlap"):
        drizzle_image(data, weight, pm, sci, wht, extra_data=extra, extra_out=eout,
                      extra_wht=wht)
    with pytest.raises(ValueError, match="channels"):
        drizzle_image(data, weight, pm, sci, wht, extra_data=extra, extra_out=eout[:1],
                      extra_wht=np.zeros((70, 80), np.float32))
    with pytest.raises(TypeError):
        drizzle_image(data, weight, pm, sci, wht, extra_data=extra.astype(np.float64),
                      extra_out=eout, extra_wht=np.zeros((70, 80), np.float32))


@pytest.mark.parametrize("interp", ["linear", "poly5"])
def test_blot_vs_tblot(interp):
    yy, xx = np.mgrid[:70, :80]
    img = (100.0 + 5.0 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + 0.02 * xx * yy).astype(np.float32)
    # positions in img of each output pixel: rotated/scaled, partly outside img
    pm = _pixmap((60, 75), ang=-7.0, scale=0.95, shift=(-3.0, 5.0), quad=1e-3)
    pm[0, 0] = (79.2, 69.6)                # the last-column/last-row special cases
    pm[0, 1] = (79.0, 12.3)
    pm[0, 2] = (33.3, 69.0)
    ref = np.zeros((60, 75), np.float32)
    got = np.zeros((60, 75), np.float32)
    cdrizzle.tblot(img, pm, ref, iscale=1.3, interp=interp, fillval=-7.0, sinscl=1.0)
    blot_image(img, pm, got, iscale=1.3, fillval=-7.0, interp=interp)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
    assert (ref == -7.0).any()


@pytest.mark.oracle
def test_variance_recipe_vs_stcal_resample():
    """The documented recipe reproduces stcal's Resample: data, wht, con, the three
    resampled variances and ERR (compute_err='from_var', weight_type='ivm')."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs
    from stcal.resample import Resample
    from stcal.resample.utils import build_driz_weight, calc_pixmap, resample_range

    def make_wcs(shape, crpix, pscale, rot):
        t = ((models.Shift(-crpix[0]) & models.Shift(-crpix[1])) | models.Rotation2D(rot)
             | (models.Scale(pscale / 3600) & models.Scale(pscale / 3600))
             | models.Pix2Sky_TAN() | models.RotateNative2Celestial(150.0, 2.0, 180))
        w = gwcs_wcs.WCS([(cf.Frame2D(name="detector", unit=(u.pix, u.pix)), t),
                          (cf.CelestialFrame(reference_frame=coord.ICRS(), name="world",
                                             unit=(u.deg, u.deg)), None)])
        w.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
        w.array_shape = shape
        return w

    rng = np.random.default_rng(11)
    shape, out_shape = (60, 70), (80, 90)
    out_wcs = make_wcs(out_shape, (45, 40), 0.11, 0.0)
    names = ["var_rnoise", "var_flat", "var_poisson"]
    inputs = []
    for k, (rot, dx, dy) in enumerate([(10.0, 0.0, 0.0), (25.0, 3.3, -2.1)]):
        dq = np.zeros(shape, np.uint32)
        dq[5:8, 10:12] = 1
        m = dict(data=rng.normal(5, 1, shape).astype(np.float32), dq=dq,
                 wcs=make_wcs(shape, (35 + dx, 30 + dy), 0.1, rot), filename=f"m{k}",
                 group_id=f"g{k}", exposure_time=100.0, start_time=0.0, end_time=1.0,
                 duration=100.0, measurement_time=90.0,
                 pixelarea_steradians=(0.1 / 3600 * np.pi / 180) ** 2, level=0.5,
                 subtracted=False,
                 var_rnoise=rng.uniform(0.5, 1.5, shape).astype(np.float32),
                 var_poisson=rng.uniform(0.1, 0.3, shape).astype(np.float32),
                 var_flat=rng.uniform(0.01, 0.02, shape).astype(np.float32))
        m["var_poisson"][20, 20] = np.nan
        inputs.append(m)

    res = Resample({"wcs": out_wcs}, n_input_models=2, fillval=np.nan, weight_type="ivm",
                   compute_err="from_var", enable_var=True)
    for m in inputs:
        res.add_model(m)
    res.finalize()
    om = res.output_model

    sci, wht, con = _empty(out_shape)
    wsum = {n: np.full(out_shape, np.nan, np.float32) for n in names}
    wt = {n: np.zeros(out_shape, np.float32) for n in names}
    for k, m in enumerate(inputs):
        pm = np.ascontiguousarray(calc_pixmap(m["wcs"], out_wcs, shape), dtype=np.float64)
        w = build_driz_weight(m, weight_type="ivm", good_bits=0).astype(np.float32)
        xmin, xmax, ymin, ymax = resample_range(shape, m["wcs"].bounding_box)
        box = dict(xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax)
        drizzle_image(m["data"] - np.float32(m["level"]), w, pm, sci, wht, con, k, **box)
        vres = {}
        for n in names:
            s2, w2 = np.zeros(out_shape, np.float32), np.zeros(out_shape, np.float32)
            with np.errstate(invalid="ignore"):
                err_in = np.sqrt(m[n])
            drizzle_image(err_in, w, pm, s2, w2, None, **box)
            s2[w2 == 0] = np.nan
            vres[n] = s2 * s2
        ow = np.empty(out_shape)
        ivm_output_weight(vres["var_rnoise"], ow)
        for n in names:
            accumulate_variance(vres[n], ow, wsum[n], wt[n])
    sci[wht == 0] = np.nan

    def close(a, b):
        assert_array_equal(np.isnan(a), np.isnan(b))
        f = ~np.isnan(b)
        np.testing.assert_allclose(a[f], b[f], rtol=RTOL, atol=0)

    close(sci, om["data"])
    close(wht, om["wht"])
    assert_array_equal(con, om["con"][0])
    variances = []
    for n in names:
        v = np.empty(out_shape, np.float32)
        finalize_variance(wsum[n], wt[n], 1.0 / res.pixel_scale_ratio**2, v)
        close(v, om[n])
        variances.append(v)
    err = np.empty(out_shape, np.float32)
    error_from_variances(np.stack(variances), err)
    close(err, om["err"])
