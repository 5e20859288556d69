"""outlier_detection kernels vs hand-made cases, numpy and stcal/jwst 3.0 (oracle).

The oracle tests compare with ``stcal.outlier_detection.utils`` / ``median`` (what
``jwst/outlier_detection/utils.py`` calls) on random data with injected outliers, NaNs,
infs, zero and NaN weights and 1-pixel-wide images. Several also check that their data
would catch a plausible mistake (a different clipping rule, neighbourhood, comparison
dtype), so an equality here is not an accident of easy inputs.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from webbflow.kernels import outlier as ol

F32 = np.float32
BIG32 = np.finfo(F32).max


def _stcal():
    pytest.importorskip("stcal")
    from stcal.outlier_detection import utils

    return utils


def _quiet(f, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*a, **k)


def _same(a, b):
    """Equal values (NaN == NaN, -0 == 0) and dtype."""
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# weight threshold
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_sum_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    big = np.exp(rng.normal(0, 8, 100_003)).astype(dtype)      # order-sensitive sums
    for n in list(range(1, 140)) + [255, 256, 257, 1000, 8191, 8193, 100_003]:
        a = big[:n].copy()
        assert ol._pairwise_sum(a, 0, n) == np.add.reduce(a), n
    a = big[:5000].copy()
    assert ol._pairwise_sum(a, 17, 3000) == np.add.reduce(a[17:3017])
    # the emulation matters: plain left-to-right float32 summation gives another value
    a = big[:20000]
    assert np.cumsum(a)[-1] != np.add.reduce(a)


def _weights(seed, shape, dtype=F32, kind="normal"):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        w = rng.normal(100, 10, shape)
    elif kind == "lognormal":
        w = np.exp(rng.normal(0, 3, shape))
    elif kind == "ties":                         # exptime-like: few distinct values
        w = rng.integers(0, 5, shape) * 250.0
    else:                                        # heavy tails, negative weights
        w = rng.standard_cauchy(shape) * 50
    w = w.astype(dtype)
    flat = w.reshape(-1)
    flat[rng.random(flat.size) < 0.15] = 0       # off the footprint
    flat[rng.random(flat.size) < 0.02] = np.nan
    flat[rng.random(flat.size) < 0.005] = np.inf
    flat[rng.random(flat.size) < 0.005] = -np.inf
    return w


THRESHOLD_CASES = [
    (0, (60, 70), F32, "normal"),
    (1, (130, 97), F32, "lognormal"),       # > 8192 values: chunked float64 mean
    (2, (150, 160), F32, "lognormal"),
    (2, (40, 41), F32, "ties"),
    (3, (90, 100), F32, "cauchy"),
    (4, (3, 50, 60), F32, "normal"),        # cube
    (5, (70, 80), np.float64, "lognormal"),
    (6, (1, 1), F32, "normal"),
    (7, (1, 2), F32, "cauchy"),
    (8, (1, 3), F32, "normal"),
]


@pytest.mark.oracle
@pytest.mark.parametrize("seed,shape,dtype,kind", THRESHOLD_CASES)
@pytest.mark.parametrize("maskpt", [0.7, 0.25])
def test_weight_threshold_vs_stcal(seed, shape, dtype, kind, maskpt):
    su = _stcal()
    w = _weights(seed, shape, dtype, kind)
    w0 = w.copy()
    got = ol.compute_weight_threshold(w, maskpt)
    exp = _quiet(su.compute_weight_threshold, w, maskpt)
    assert type(got) is type(exp) is np.float64
    assert got == exp or (np.isnan(got) and np.isnan(exp))
    assert_array_equal(w, w0)                                  # input untouched


@pytest.mark.oracle
def test_weight_threshold_data_are_discriminating():
    """The cases above would catch another inclusion rule or clipping."""
    from astropy.stats import sigma_clip

    su = _stcal()
    w = _weights(3, (90, 100), F32, "cauchy")
    exp = _quiet(su.compute_weight_threshold, w, 0.7)
    good = w[np.isfinite(w) & (w != 0)]
    one_pass = _quiet(sigma_clip, good, sigma=3, maxiters=1, masked=False)
    assert np.mean(one_pass, dtype="f8") * 0.7 != exp            # 5 iterations matter
    pos = good[good > 0]
    assert _quiet(su.compute_weight_threshold, pos, 0.7) != exp  # negatives take part
    lw = _weights(1, (130, 97), F32, "lognormal")
    kept = _quiet(sigma_clip, lw[np.isfinite(lw) & (lw != 0)], sigma=3, maxiters=5,
                  masked=False, copy=False)
    in_order = np.cumsum(kept.astype(np.float64))[-1] / kept.size   # not numpy's order
    assert in_order * 0.7 != _quiet(su.compute_weight_threshold, lw, 0.7)
    # np.mean(float32, dtype='f8') sums numpy's 8192-value casting buffers one by one
    lw = _weights(2, (150, 160), F32, "lognormal")
    kept = _quiet(sigma_clip, lw[np.isfinite(lw) & (lw != 0)], sigma=3, maxiters=5,
                  masked=False, copy=False)
    one_run = np.add.reduce(kept.astype(np.float64)) / kept.size
    assert one_run * 0.7 != _quiet(su.compute_weight_threshold, lw, 0.7)
    assert ol.compute_weight_threshold(lw, 0.7) == _quiet(su.compute_weight_threshold, lw,
                                                          0.7)


def _weights_on_bound(seed, side, outside, n=2000):
    """Uniform weights (none beyond 3 sigma) plus one value X that is exactly the upper
    (side 1) or lower (side 0) clipping bound of the whole set including X, or one float32
    step beyond it (outside): X is kept, resp. clipped, and a bound computed one step
    off by different rounding would flip that."""
    from astropy.stats import sigma_clip

    rng = np.random.default_rng(seed)
    w = np.append(rng.uniform(90, 110, n).astype(F32), F32(100))
    for _ in range(20):                     # X moves the bound a little: fixed point
        bounds = _quiet(sigma_clip, w, sigma=3, maxiters=1, masked=False,
                        return_bounds=True)[1:]
        x = F32(bounds[side])
        if x == w[-1]:
            break
        w[-1] = x
    else:
        pytest.skip("no fixed point")
    if outside:
        w[-1] = np.nextafter(x, F32(np.inf) if side else F32(-np.inf))
    return w.reshape(-1, 1)


@pytest.mark.oracle
@pytest.mark.parametrize("side", [0, 1])
@pytest.mark.parametrize("outside", [False, True])
def test_weight_threshold_on_the_clipping_bound(side, outside):
    su = _stcal()
    cases = [_weights_on_bound(s, side, outside) for s in range(25)]
    got = [ol.compute_weight_threshold(w) for w in cases]
    exp = [_quiet(su.compute_weight_threshold, w, 0.7) for w in cases]
    assert got == exp
    # X is kept exactly when it is on the bound
    kept = [np.mean(w[:-1], dtype="f8") * 0.7 != t for w, t in zip(cases, exp)]
    assert kept == [not outside] * len(cases)


def test_weight_threshold_degenerate():
    assert np.isnan(ol.compute_weight_threshold(np.zeros((4, 5), F32)))
    w = np.full((4, 5), np.nan, F32)
    w[0, 0] = np.inf
    assert np.isnan(ol.compute_weight_threshold(w))
    assert ol.compute_weight_threshold(np.array([[0, 2.0, 0]], F32), 0.5) == 1.0
    # constant weights: the clipping keeps all; mean 3 exactly
    assert ol.compute_weight_threshold(np.full((30, 40), 3.0, F32), 0.7) == 3.0 * 0.7
    with pytest.raises(TypeError):
        ol.compute_weight_threshold(np.ones((2, 2), np.int32))


# --------------------------------------------------------------------------------------
# median of the singles
# --------------------------------------------------------------------------------------

def test_median_hand_cases():
    nan = np.nan
    stack = np.array([
        [[1, 5, nan, 7, 2]],
        [[3, nan, nan, 1, 2]],
        [[2, 6, nan, nan, 9]],
        [[10, 8, nan, 4, -2]],
    ], F32)
    got = ol.median_of_singles(stack)
    # 4 values: (2+3)/2; 3 values: 6; none: NaN; 3 values: 4; 4 values: (2+2)/2
    _same(got, np.array([[2.5, 6, nan, 4, 2]], F32))
    w = np.ones_like(stack)
    w[3, 0, 0] = 0.5                                    # drops 10: median of 1, 3, 2
    w[0, 0, 4] = np.nan                                 # NaN weight: kept
    got = ol.median_of_singles(stack, w, [0.9, 0.9, 0.9, 0.9])
    _same(got, np.array([[2, 6, nan, 4, 2]], F32))
    got = ol.median_of_singles(stack, w, [nan, nan, nan, 2.0])   # NaN threshold: no mask
    _same(got, np.array([[2, 5.5, nan, 4, 2]], F32))
    # sorted ranks are averaged in float32, like numpy's odd counts too: x + x overflows
    big = np.full((3, 1, 1), 3e38, F32)
    _same(ol.median_of_singles(big), np.array([[np.inf]], F32))


def _stack(seed, nimg, ny, nx, infs=False, ties=False):
    rng = np.random.default_rng(seed)
    data = rng.normal(10, 2, (nimg, ny, nx)).astype(F32)
    if ties:
        data = np.round(data)
    data[rng.random(data.shape) < 0.02] += 500          # cosmic rays in single images
    data[rng.random(data.shape) < 0.1] = np.nan
    if infs:
        data[rng.random(data.shape) < 0.03] = np.inf
        data[rng.random(data.shape) < 0.02] = -np.inf
    wht = rng.normal(100, 20, data.shape).astype(F32)
    for i in range(nimg):                               # each single's footprint
        wht[i, :, : (i * 3) % max(nx, 1)] = 0
        wht[i, : i % max(ny, 1)] = 0
    wht[rng.random(data.shape) < 0.03] = np.nan
    data[:, 0, 0] = np.nan                              # an all-NaN pixel
    return data, wht


def _stcal_median(data, wht, thresholds, in_memory=True):
    """What jwst's median_with_resampling does with each drizzled single."""
    from stcal.outlier_detection.median import MedianComputer

    computer = MedianComputer(data.shape, in_memory, None, data.dtype)
    for i in range(data.shape[0]):
        d = data[i].copy()
        d[wht[i] < thresholds[i]] = np.nan
        computer.append(d, i)
    return _quiet(computer.evaluate)


MEDIAN_CASES = [
    (0, 1, 9, 11, False, False),
    (1, 2, 12, 10, False, False),
    (2, 3, 9, 13, True, False),
    (3, 4, 20, 17, False, True),
    (4, 5, 1, 30, True, False),
    (5, 8, 30, 1, False, True),
    (6, 13, 11, 9, True, True),
    (7, 4, 7, 1100, False, False),       # rows longer than one sorting chunk
]


@pytest.mark.oracle
@pytest.mark.parametrize("seed,nimg,ny,nx,infs,ties", MEDIAN_CASES)
def test_median_vs_stcal(seed, nimg, ny, nx, infs, ties, tmp_path):
    su = _stcal()
    data, wht = _stack(seed, nimg, ny, nx, infs, ties)
    thr = [_quiet(su.compute_weight_threshold, w, 0.7) for w in wht]
    assert thr == [ol.compute_weight_threshold(w, 0.7) for w in wht]
    exp = _stcal_median(data, wht, thr)
    d0, w0 = data.copy(), wht.copy()
    _same(ol.median_of_singles(data, wht, thr), exp)                     # 3-D in place
    _same(ol.median_of_singles(list(data), list(wht), thr, rows_per_block=3), exp)
    out = np.full((ny, nx), -1, F32)
    assert ol.median_of_singles(list(data), wht, thr, out=out, rows_per_block=1) is out
    _same(out, exp)
    mm = np.memmap(tmp_path / "stack.f32", F32, "w+", shape=data.shape)
    mm[:] = data
    _same(ol.median_of_singles(mm, wht, thr, rows_per_block=4), exp)   # row blocks
    assert_array_equal(data, d0)
    assert_array_equal(wht, w0)
    # no weights: plain nanmedian
    _same(ol.median_of_singles(data), _quiet(np.nanmedian, data, axis=0))


@pytest.mark.oracle
def test_median_vs_stcal_on_disk_median():
    _stcal()
    data, wht = _stack(11, 6, 25, 19)
    thr = [ol.compute_weight_threshold(w, 0.7) for w in wht]
    _same(ol.median_of_singles(list(data), list(wht), thr, rows_per_block=2),
          _stcal_median(data, wht, thr, in_memory=False))


@pytest.mark.oracle
def test_median_weight_comparison_is_float64():
    """numpy compares the float32 weights with the float64 threshold in float64: a weight
    that is the threshold rounded to float32 is masked when it rounded down only."""
    su = _stcal()
    data, wht = _stack(21, 3, 6, 7)
    thr = [_quiet(su.compute_weight_threshold, w, 0.7) for w in wht]
    below = [F32(t) for t in thr]
    for i, t in enumerate(thr):
        f = F32(t)
        # neighbours of the threshold in float32, one rounding down, one up
        lo = f if f < t else np.nextafter(f, F32(-np.inf))
        hi = f if f > t else np.nextafter(f, F32(np.inf))
        wht[i, 1:, :3] = lo
        wht[i, 1:, 3:] = hi
        below[i] = lo
    exp = _stcal_median(data, wht, thr)
    _same(ol.median_of_singles(data, wht, thr), exp)
    # comparing in float32 would keep the rounded-down weights: these data notice
    assert any(F32(t) == lo for t, lo in zip(thr, below))
    masked32 = _stcal_median(data, wht, [F32(t) for t in thr])
    assert not np.array_equal(masked32, exp, equal_nan=True)


# --------------------------------------------------------------------------------------
# cosmic-ray flags
# --------------------------------------------------------------------------------------

def test_abs_deriv_hand_case():
    a = np.array([[1, 2, 4],
                  [1, np.nan, 0],
                  [9, 2, 5]], F32)
    exp = np.array([[1, 2, 4],          # (0,2): |4-2|=2, |0-4|=4
                    [8, np.nan, 5],     # (1,0): |9-1|=8; NaN neighbour ignored
                    [8, 7, 5]], F32)
    _same(ol.abs_deriv(a), exp)
    # stcal's order of putmask calls: the difference to the row above only counts when
    # finite, the other three whenever larger (so an inf wins from below, left, right)
    b = np.array([[np.inf, 1], [1, 2]], F32)           # (1, 0): not inf from above
    _same(ol.abs_deriv(b), np.array([[np.inf, np.inf], [1, 1]], F32))
    c = np.array([[1, 1], [np.inf, 2]], F32)
    _same(ol.abs_deriv(c), np.array([[np.inf, 1], [np.inf, np.inf]], F32))
    d = np.array([[1], [np.inf]], F32)                  # an inf pixel can get 0
    _same(ol.abs_deriv(d), np.array([[np.inf], [0]], F32))


def test_flag_resampled_hand_case():
    # one hit of mask1 dilates over the 3x3 box clipped at the edge; mask2 everywhere
    sci = np.zeros((4, 5), F32)
    blot = np.zeros((4, 5), F32)
    err = np.ones((4, 5), F32)
    sci[0, 0] = 100      # mask1 (> 5) at (0, 0)
    sci[1:, 1:] = 4.5    # mask2 only (> 4)
    got = ol.flag_resampled_crs(sci, err, blot, 5.0, 4.0, 0.0, 0.0, 0.0)
    exp = np.zeros((4, 5), bool)
    exp[0, 0] = True
    exp[1, 1] = True
    _same(got, exp)


@pytest.mark.oracle
@pytest.mark.parametrize("params", [(4.0, 3.3, 1.2, 0.7, 0.4), (3.7, 1.3, 0.3, 0.1, 0.35)])
def test_flags_scalars_round_to_float32(params):
    """numpy rounds the Python-float scalars (snr, scale, backg) to the arrays' float32:
    differences a few float32 steps around either threshold flag accordingly."""
    su = _stcal()
    s1, s2, c1, c2, bg = params
    nx = 36
    blot = np.zeros((4, nx), F32)
    blot[:, ::2] = F32(0.1)
    blot[:, ::3] += F32(0.37)
    err = np.full((4, nx), 0.25, F32)
    err[:, ::5] = F32(0.61)
    deriv = su._abs_deriv(blot)
    t1 = F32(c1) * deriv + F32(s1) * err        # the float32 thresholds numpy uses
    t2 = F32(c2) * deriv + F32(s2) * err
    steps = (np.arange(nx) % 9 - 4).astype(F32)
    sci = np.empty_like(blot)
    for r, t in enumerate((t1, t2, t1, t2)):
        target = t[r] + steps * np.spacing(t[r])
        sci[r] = blot[r] + F32(bg) + target
    sci[2:] = blot[2:] + F32(bg) - (sci[2:] - blot[2:] - F32(bg))   # negative differences
    exp = _quiet(su.flag_resampled_crs, sci, err, blot, *params)
    _same(ol.flag_resampled_crs(sci, err, blot, *params), exp)
    _same(ol.flag_crs(sci, err, blot, s2), _quiet(su.flag_crs, sci, err, blot, s2))
    # with the scalars kept in float64 some of these pixels would flip
    d64 = np.abs(sci.astype(float) - blot - bg)
    m1_64 = d64 > c1 * deriv.astype(float) + s1 * err.astype(float)
    m1_32 = np.abs(sci - blot - F32(bg)) > t1
    assert not np.array_equal(m1_64, m1_32)
    m2_64 = d64 > c2 * deriv.astype(float) + s2 * err.astype(float)
    assert 0 < exp.sum() < exp.size
    assert not np.array_equal(m2_64 & ndimage_box(m1_64), exp)


def ndimage_box(m):
    from scipy import ndimage

    return ndimage.binary_dilation(m, np.ones((3, 3)))


def _images(seed, shape, infs=False):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    blot = (50 * np.exp(-((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 3) ** 2) / 20)
            + rng.normal(5, 0.5, shape)).astype(F32)
    err = np.abs(rng.normal(0.6, 0.1, shape)).astype(F32)
    sci = (blot + rng.normal(0, 0.6, shape)).astype(F32)
    hits = rng.random(shape) < 0.04
    sci[hits] += rng.uniform(2, 60, hits.sum()).astype(F32)
    for y, x in zip(*np.nonzero(hits)):                 # charge around some hits
        if rng.random() < 0.5:
            box = sci[max(0, y - 1): y + 2, max(0, x - 1): x + 2]
            box += rng.uniform(1.5, 3.5, box.shape).astype(F32)
    sci[rng.random(shape) < 0.03] = np.nan
    blot[rng.random(shape) < 0.04] = np.nan                # outside the median footprint
    blot[:, : shape[1] // 6] = np.nan
    err[rng.random(shape) < 0.03] = np.nan
    if infs:
        blot[rng.random(shape) < 0.02] = np.inf
        err[rng.random(shape) < 0.02] = np.inf
        err[rng.random(shape) < 0.01] = -np.inf
        sci[rng.random(shape) < 0.02] = -np.inf
    return sci, err, blot


SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 40), (37, 29), (64, 33)]
PARAMS = [(5.0, 4.0, 1.2, 0.7, 0.0), (3.0, 2.0, 0.5, 0.2, 0.4)]


@pytest.mark.oracle
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("infs", [False, True])
def test_abs_deriv_vs_stcal(shape, infs):
    su = _stcal()
    _, _, blot = _images(7 * sum(shape) + infs, shape, infs)
    _same(ol.abs_deriv(blot), _quiet(su._abs_deriv, blot))


@pytest.mark.oracle
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("infs", [False, True])
@pytest.mark.parametrize("params", PARAMS)
def test_flag_resampled_crs_vs_stcal(shape, infs, params):
    su = _stcal()
    sci, err, blot = _images(sum(shape) + 7 * infs, shape, infs)
    args = [a.copy() for a in (sci, err, blot)]
    exp = _quiet(su.flag_resampled_crs, sci, err, blot, *params)
    _same(ol.flag_resampled_crs(sci, err, blot, *params), exp)
    for a, b in zip(args, (sci, err, blot)):
        assert_array_equal(a, b)
    # every split into row blocks gives the same rows (halo rows of mask1)
    rng = np.random.default_rng(shape[0])
    big = F32(BIG32)
    out = np.empty(shape, bool)
    y0 = 0
    while y0 < shape[0]:
        y1 = min(shape[0], y0 + int(rng.integers(1, 4)))
        ol._flag_resampled_rows(y0, y1, sci, err, blot, *map(F32, params), big, out)
        y0 = y1
    _same(out, exp)


@pytest.mark.oracle
def test_flag_resampled_data_are_discriminating():
    """The 3x3 box, the derivative and the err handling all change flags on these data."""
    from scipy import ndimage

    su = _stcal()
    sci, err, blot = _images(64 + 33, (64, 33))
    exp = ol.flag_resampled_crs(sci, err, blot)
    d = np.abs(sci - blot)
    e = np.nan_to_num(err)
    deriv = su._abs_deriv(blot)
    m1 = d > F32(1.2) * deriv + F32(5.0) * e
    m2 = d > F32(0.7) * deriv + F32(4.0) * e
    assert_array_equal(exp, ndimage.binary_dilation(m1, np.ones((3, 3)),) & m2)
    assert not np.array_equal(exp, m1 & m2)                                  # no smoothing
    cross = ndimage.binary_dilation(m1, ndimage.generate_binary_structure(2, 1))
    assert not np.array_equal(exp, cross & m2)                               # 4-neighbours
    assert not np.array_equal(exp, ndimage.binary_dilation(m1, np.ones((5, 5))) & m2)
    m1e = d > F32(1.2) * deriv + F32(5.0) * err                              # NaN err
    assert not np.array_equal(exp, ndimage.binary_dilation(m1e, np.ones((3, 3))) & m2)


@pytest.mark.oracle
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("infs", [False, True])
@pytest.mark.parametrize("snr", [5.0, 3.3])
def test_flag_crs_vs_stcal(shape, infs, snr):
    su = _stcal()
    sci, err, med = _images(sum(shape) + 3, shape, infs)
    _same(ol.flag_crs(sci, err, med, snr), _quiet(su.flag_crs, sci, err, med, snr))


@pytest.mark.oracle
def test_flag_model_crs_like_jwst():
    """The DQ update jwst makes from the mask: dq |= mask * (DO_NOT_USE | OUTLIER)."""
    pytest.importorskip("jwst")
    from stdatamodels.jwst.datamodels import ImageModel

    from jwst.outlier_detection.utils import _flag_resampled_model_crs

    sci, err, blot = _images(5, (30, 26))
    model = ImageModel(data=sci.copy(), err=err.copy(), dq=np.zeros(sci.shape, np.uint32),
                       var_rnoise=np.ones_like(sci), var_poisson=np.ones_like(sci),
                       var_flat=np.ones_like(sci))
    _quiet(_flag_resampled_model_crs, model, blot, None, 5.0, 4.0, 1.2, 0.7, 0.0)
    mask = ol.flag_resampled_crs(sci, err, blot)
    flagged = (model.dq & 16) != 0                              # OUTLIER
    assert_array_equal(flagged, mask)
    assert mask.sum() > 10
