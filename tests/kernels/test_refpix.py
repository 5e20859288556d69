"""refpix ('median'): kernels vs numpy/scipy reference and vs jwst.refpix (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from tests.reference.naive_refpix import naive_refpix_miri, naive_refpix_nir_fullframe
from webbflow.dqflags import PIXEL
from webbflow.kernels.refpix import _clipped_mean, _pairwise_sum
from webbflow.steps.refpix import correct_refpix

DNU, REF = PIXEL["DO_NOT_USE"], PIXEL["REFERENCE_PIXEL"]


def _cube(shape, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 5, shape) + rng.normal(0, 50, shape[:2] + (1, 1))
    data += (np.arange(shape[-1]) % 2) * 3.0 + (np.arange(shape[-2]) % 7)[:, None] * 0.5
    data = data.astype(np.float32)
    pdq = np.zeros(shape[-2:], np.uint32)
    pdq[rng.random(shape[-2:]) < 0.01] = DNU
    return data, pdq


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_sum_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    for n in list(range(1, 140)) + [255, 256, 1000, 2044, 4096, 10001]:
        a = rng.normal(1000, 30, n).astype(dtype)
        assert _pairwise_sum(a, 0, n) == np.sum(a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipped_mean_matches_scipy(dtype):
    from scipy import stats

    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 17, 128, 1000, 4096):
        a = rng.normal(100, 3, n).astype(dtype)
        a[: max(1, n // 50)] += 80                      # outliers
        st, v = _clipped_mean(a, 3.0)
        if np.std(a, dtype=np.float64) != 0:
            assert st == 1 and v == stats.sigmaclip(a, 3.0, 3.0)[0].mean()
        else:
            assert st == 2 and v == a.mean(dtype=np.float64)
    assert _clipped_mean(np.array([], dtype), 3.0)[0] == 0
    assert np.isnan(_clipped_mean(np.array([1, np.nan], dtype), 3.0)[1])


@pytest.mark.parametrize("fast,slow", [(2, 1), (-2, -1), (1, -2)])
def test_nir_fullframe_vs_naive(fast, slow):
    data, pdq = _cube((1, 2, 2048, 2048), 7)
    exp = naive_refpix_nir_fullframe(data, pdq, DNU, fast, slow)
    got, status = correct_refpix(data.copy(), pdq, PIXEL, instrument="NIRCAM", fastaxis=fast,
                                 slowaxis=slow, noutputs=4)
    assert status == "COMPLETE"
    assert_array_equal(got, exp)


def test_nir_fullframe_no_side_no_oddeven_vs_naive():
    data, pdq = _cube((1, 2, 2048, 2048), 8)
    exp = naive_refpix_nir_fullframe(data, pdq, DNU, -1, 2, side=False, oddeven=False)
    got, _ = correct_refpix(data.copy(), pdq, PIXEL, instrument="NIRCAM", fastaxis=-1,
                            slowaxis=2, use_side_ref_pixels=False, odd_even_columns=False)
    assert_array_equal(got, exp)


@pytest.mark.parametrize("oddeven", [True, False])
def test_miri_vs_naive(oddeven):
    data, pdq = _cube((2, 3, 1024, 1032), 9)
    exp = naive_refpix_miri(data, pdq, DNU, oddeven)
    got, status = correct_refpix(data.copy(), pdq, PIXEL, instrument="MIRI", fastaxis=1,
                                 slowaxis=2, odd_even_rows=oddeven)
    assert status == "COMPLETE"
    assert_array_equal(got, exp)


def test_miri_subarray_skipped():
    data, pdq = _cube((1, 2, 64, 72), 1)
    got, status = correct_refpix(data.copy(), pdq, PIXEL, instrument="MIRI", fastaxis=1,
                                 slowaxis=2, xstart=1, ystart=1)
    assert status == "SKIPPED"
    assert_array_equal(got, data)


# --------------------------------------------------------------------------- oracle
def _model(instr, det, data, pdq, xstart, ystart, fast, slow, nout, name, zeroframe=None):
    from stdatamodels.jwst.datamodels import RampModel

    m = RampModel(data=data.copy(), pixeldq=pdq.copy(), groupdq=np.zeros(data.shape, np.uint8))
    m.meta.instrument.name, m.meta.instrument.detector = instr, det
    m.meta.subarray.xstart, m.meta.subarray.ystart = xstart, ystart
    m.meta.subarray.xsize, m.meta.subarray.ysize = data.shape[-1], data.shape[-2]
    m.meta.subarray.fastaxis, m.meta.subarray.slowaxis = fast, slow
    m.meta.subarray.name = name
    m.meta.exposure.noutputs = nout
    m.meta.exposure.zero_frame = zeroframe is not None
    if zeroframe is not None:
        m.zeroframe = zeroframe.copy()
    return m


ORACLE = [
    # instr, det, shape, xstart, ystart, fast, slow, nout, subarray, refpix-dq edges, kwargs
    ("NIRCAM", "NRCA1", (1, 3, 2048, 2048), 1, 1, -1, 2, 4, "FULL", None, dict(zeroframe=True)),
    ("NIRSPEC", "NRS1", (1, 2, 2048, 2048), 1, 1, 2, 1, 4, "FULL", None, {}),
    ("NIRCAM", "NRCB2", (2, 2, 2048, 2048), 1, 1, 1, -2, 4, "FULL", None,
     dict(use_side_ref_pixels=False, odd_even_columns=False)),
    ("NIRCAM", "NRCA1", (1, 3, 64, 64), 1, 1, -1, 2, 1, "SUB64P", "corner", dict(zeroframe=True)),
    ("NIRCAM", "NRCA1", (2, 2, 64, 64), 1, 1, -1, 2, 1, "SUB64P", "left",
     dict(odd_even_columns=False)),
    ("NIRSPEC", "NRS1", (1, 3, 32, 2048), 1, 1000, 2, 1, 1, "SUB32", None, {}),
    ("NIRCAM", "NRCA1", (2, 3, 128, 2048), 1, 1, -1, 2, 4, "SUBGRISM128", "bottom",
     dict(zeroframe=True)),
    ("MIRI", "MIRIMAGE", (2, 4, 1024, 1032), 1, 1, 1, 2, 4, "FULL", None, dict(zeroframe=True)),
    ("MIRI", "MIRIMAGE", (1, 3, 1024, 1032), 1, 1, 1, 2, 4, "FULL", None,
     dict(odd_even_rows=False)),
    ("MIRI", "MIRIMAGE", (2, 3, 1024, 1032), 1, 1, 1, 2, 4, "FULL", "miri-dead-ref", {}),
    ("NIRCAM", "NRCA1", (2, 3, 64, 64), 1, 1, -1, 2, 1, "SUB64P", "corner-const", {}),
    ("NIRCAM", "NRCA3", (1, 3, 2048, 2048), 1, 1, 1, 2, 4, "FULL", "const-bottom", {}),
    # 4-output subarrays away from / on a corner of the full-frame border
    ("NIRCAM", "NRCA1", (2, 3, 160, 160), 1025, 1025, -1, 2, 4, "SUB160", None, {}),
    ("NIRSPEC", "NRS1", (1, 3, 64, 512), 1537, 1985, 2, 1, 4, "SUB512X", None,
     dict(zeroframe=True)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", ORACLE, ids=[f"{c[0]}-{c[8]}-{i}" for i, c in enumerate(ORACLE)])
def test_oracle_jwst(case):
    from jwst.refpix import reference_pixels

    instr, det, shape, x0, y0, fast, slow, nout, name, edges, kw = case
    kw = dict(kw)
    data, pdq = _cube(shape, len(name) + shape[1])
    if edges in ("corner", "left", "corner-const"):
        pdq[:, :4] |= REF
    if edges in ("corner", "corner-const"):
        pdq[:4, :] |= REF
    if edges == "corner-const":                         # zero-variance (float64) branch
        data[:, :, :, :4] = 1000.0
        data[:, :, :4, :] = 1000.0
    if edges == "const-bottom":                         # one amplifier's bottom rows constant
        data[:, :, :4, 512:1024] = 1000.0
    if edges == "miri-dead-ref":                        # no good ref pixels: correction stops
        pdq[:, 1028] |= DNU
    if edges == "bottom":
        pdq[:4, :] |= REF                               # bottom reference rows
    zf = None
    if kw.pop("zeroframe", False):
        zf = data[:, 0] - np.float32(3.0)
        zf[:, 5:9, 7] = 0.0
    m = _model(instr, det, data, pdq, x0, y0, fast, slow, nout, name, zf)
    params = dict(odd_even_columns=True, use_side_ref_pixels=True, odd_even_rows=True)
    params.update(kw)
    ckp = dict(refpix_algorithm="median", sirs_kernel_model=None, sigreject=4.0, gaussmooth=1.0,
               halfwidth=30)
    status = reference_pixels.correct_model(m, params["odd_even_columns"],
                                            params["use_side_ref_pixels"], 11, 1.0,
                                            params["odd_even_rows"], ckp, 3.0)
    assert status == reference_pixels.REFPIX_OK
    got, st = correct_refpix(data.copy(), pdq, PIXEL, instrument=instr, fastaxis=fast,
                             slowaxis=slow, xstart=x0, ystart=y0, noutputs=nout,
                             subarray_name=name, zeroframe=zf, **params)
    assert st == "COMPLETE"
    assert_array_equal(got, m.data)
    if zf is not None:
        assert_array_equal(zf, m.zeroframe)
        assert (zf[:, 5:9, 7] == 0).all()


@pytest.mark.parametrize("fast, slow", [(-1, 2), (2, 1)])
def test_integration_chunks_continue_the_buffer_state(fast, slow):
    """Streamed stage 1 corrects integrations in chunks: the later chunks, marked
    ``continuing``, must give the whole-exposure result bit for bit (the official group
    buffer is float32 only for the very first group)."""
    data, pdq = _cube((3, 2, 2048, 2048), 11)
    zeroframe = data[:, 0] - np.float32(2.0)
    kw = dict(instrument="NIRCAM", fastaxis=fast, slowaxis=slow)
    whole, _ = correct_refpix(data.copy(), pdq, PIXEL, zeroframe=zeroframe.copy(), **kw)
    first, _ = correct_refpix(data[:1].copy(), pdq, PIXEL, zeroframe=zeroframe[:1].copy(), **kw)
    rest, _ = correct_refpix(data[1:].copy(), pdq, PIXEL, zeroframe=zeroframe[1:].copy(),
                             continuing=True, **kw)
    assert_array_equal(np.concatenate([first, rest]), whole)
