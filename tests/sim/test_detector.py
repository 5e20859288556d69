"""Tests of the synthetic detector: the forward model the stage-1 pipeline inverts."""

import numpy as np
import pytest

from webbflow.sim import detector as D
from webbflow.sim.readout import nircam_frame_time

NY = NX = 64


def small_nir(seed=1, **kw):
    return D.make_detector(np.random.default_rng(seed), "NIRCAM", "NRCA1", ny=NY, nx=NX, **kw)


def naive_detector1(sci, det, xstart, ystart, nframes=1, groupgap=0, frame_time=10.0,
                    drift=None):
    """Superbias, (ideal) refpix, linearity and dark subtraction, in plain numpy."""
    ysize, xsize = sci.shape[-2:]
    sl = (slice(ystart - 1, ystart - 1 + ysize), slice(xstart - 1, xstart - 1 + xsize))
    data = sci.astype(np.float64)
    coeffs = det.linearity_coeffs[:, sl[0], sl[1]]
    if det.is_miri:
        lin = D.linearity_correct(data, coeffs)
    else:
        data = data - det.superbias[sl]
        if drift is not None:   # drift offsets per group and amp/parity
            data = data - drift[:, :, det.amp_map[sl]]
        lin = D.linearity_correct(data, coeffs)
    ngroups = sci.shape[0]
    dark, _, _ = D.reference_dark(det, ngroups, nframes, groupgap, frame_time, nints=1)
    dark = dark.reshape((-1,) + det.shape)[:ngroups]
    return lin - dark[:, sl[0], sl[1]]


def test_determinism():
    det1, det2 = small_nir(3), small_nir(3)
    for name in ("gain", "superbias", "dark_rate", "saturation", "linearity_coeffs", "mask_dq"):
        np.testing.assert_array_equal(getattr(det1, name), getattr(det2, name))
    rate = np.full(det1.shape, 5.0, np.float32)
    out1 = D.simulate_exposure(np.random.default_rng(7), rate, det1, ngroups=4,
                               frame_time=10.0, cosmic_ray_rate=1e-3)
    out2 = D.simulate_exposure(np.random.default_rng(7), rate, det2, ngroups=4,
                               frame_time=10.0, cosmic_ray_rate=1e-3)
    np.testing.assert_array_equal(out1[0], out2[0])
    np.testing.assert_array_equal(out1[1], out2[1])
    np.testing.assert_array_equal(out1[2]["cosmic_rays"], out2[2]["cosmic_rays"])
    out3 = D.simulate_exposure(np.random.default_rng(8), rate, det1, ngroups=4,
                               frame_time=10.0)
    assert not np.array_equal(out1[0], out3[0])


def test_geometry_and_mask():
    rng = np.random.default_rng(0)
    nir = D.make_detector(rng, "NIRISS", "NIS", ny=32, nx=32)
    miri = D.make_detector(rng, "MIRI", "MIRIMAGE", ny=32, nx=40)
    ref = nir.reference_pixels
    assert ref[:4].all() and ref[-4:].all() and ref[:, :4].all() and ref[:, -4:].all()
    assert not ref[4:-4, 4:-4].any()
    mref = miri.reference_pixels
    assert mref[:, :4].all() and mref[:, -4:].all() and not mref[:, 4:-4].any()
    # reference pixels are never DO_NOT_USE (refpix would ignore them)
    assert not (nir.mask_dq[ref] & 1).any()
    dead = nir.dead
    assert ((nir.mask_dq[dead] & 1) == 1).all()
    # IPC: physical kernel centre < 1, reference kernel centre > 1, both sum to 1
    assert abs(nir.ipc_kernel.sum() - 1) < 1e-6
    kref = D.reference_ipc(nir)
    assert kref.shape == (3, 3) and kref[1, 1] > 1 and abs(kref.sum() - 1) < 1e-6
    c = nir.ipc_kernel.shape[0] // 2
    assert nir.ipc_kernel[c, c] < 1 and (nir.ipc_kernel[c, c - 1:c + 2] > 0.004).all()
    # reference layouts (jwst-algorithms.md 2.2)
    coeffs, ldq = D.reference_linearity(nir)
    assert coeffs.dtype == np.float32 and coeffs.shape[1:] == nir.shape and ldq.dtype == np.uint32
    sci, err, dq = D.reference_dark(nir, 5)
    assert sci.shape == (5, 32, 32) and err.shape == sci.shape and dq.shape == (32, 32)
    sci, err, dq = D.reference_dark(miri, 5, nints=2)
    assert sci.shape == (2, 5, 32, 40) and dq.shape == (2, 1, 32, 40)
    sci, err, dq = D.reference_reset(miri, 2, 5)
    assert sci.shape == (2, 5, 32, 40) and dq.shape == (32, 40)
    tab = D.reference_rscd_table()
    assert set(tab.dtype.names) == {"subarray", "readpatt", "group_skip1", "group_skip"}


def test_amp_map_matches_jwst_transform():
    reffile_utils = pytest.importorskip("jwst.lib.reffile_utils")
    for fa, sa in ((1, 2), (-1, 2), (1, -2), (-2, -1), (2, 1)):
        amp = D._amp_map(16, 16, "NIRCAM", fa, sa)
        detframe = reffile_utils.science_detector_frame_transform(amp, fa, sa)
        xd = np.arange(16)
        expect = (xd // 4) * 2 + xd % 2
        np.testing.assert_array_equal(detframe, np.broadcast_to(expect, (16, 16)))


def test_linearity_inverse_exact():
    det = small_nir()
    lin = np.linspace(0, 40000, NY * NX).reshape(NY, NX)
    raw = D.linearity_forward(lin, det.linearity_coeffs)
    assert (raw <= lin + 1e-9).all()          # the raw signal is sub-linear
    # exact up to the float32 rounding of the linear input
    np.testing.assert_allclose(D.linearity_correct(raw, det.linearity_coeffs), lin,
                               rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("nframes,groupgap,drop", [(1, 0, 0), (4, 2, 1)])
def test_noiseless_ramp_recovers_rate(nframes, groupgap, drop):
    # with NFRAMES > 1 averaging non-linear frames is not exactly invertible by the
    # pipeline's group-level correction, so that case uses a linear detector
    det = small_nir(nonlinearity=0.0 if nframes > 1 else 0.08)
    rng = np.random.default_rng(2)
    rate = rng.uniform(0.0, 40.0, det.shape).astype(np.float32)
    ft, ng = 10.0, 6
    xstart, ystart, xs, ys = 1, 5, 48, 40
    sci, zf, truth = D.simulate_exposure(
        rng, rate, det, xstart=xstart, ystart=ystart, xsize=xs, ysize=ys, ngroups=ng,
        nframes=nframes, groupgap=groupgap, drop_frames1=drop, frame_time=ft,
        cosmic_ray_rate=0, large_event_rate=0, noiseless=True, quantize=False)
    assert sci.dtype == np.float32 and sci.shape == (1, ng, ys, xs)
    cal = naive_detector1(sci[0], det, xstart, ystart, nframes, groupgap, ft)
    tg = (nframes + groupgap) * ft
    diffs = np.diff(cal, axis=0)
    good = ~truth["dead_mask"]
    expect = truth["rate"] * tg
    np.testing.assert_allclose(diffs[:, good], np.broadcast_to(expect[good], diffs[:, good].shape),
                               rtol=0, atol=0.02)   # float32 rounding of raw ~3e4 DN
    assert (truth["rate"][truth["reference_mask"]] == 0).all()
    # absolute level: group 0 holds (drop + mean read index + 1) frames of signal; the
    # dark reference starts at frame 0, so dropped frames leave a constant dark offset
    t0 = (drop + (nframes - 1) / 2 + 1) * ft
    dark = det.dark_rate[ystart - 1:ystart - 1 + ys, xstart - 1:xstart - 1 + xs]
    level = truth["rate"] * t0 + dark * drop * ft
    np.testing.assert_allclose(cal[0][good], level[good], atol=0.02, rtol=1e-6)
    # zero frame = first read frame
    if nframes == 1:
        np.testing.assert_array_equal(zf[0], sci[0, 0])
    # quantised output differs from the float one by rounding only
    sci_q, _, _ = D.simulate_exposure(
        np.random.default_rng(2), rate, det, xstart=xstart, ystart=ystart, xsize=xs,
        ysize=ys, ngroups=ng, nframes=nframes, groupgap=groupgap, drop_frames1=drop,
        frame_time=ft, cosmic_ray_rate=0, large_event_rate=0, noiseless=True)
    assert sci_q.dtype == np.uint16
    assert np.abs(sci_q.astype(np.float64) - sci).max() <= 0.5 + 1e-3


def test_noise_variance():
    det = small_nir(5)
    rng = np.random.default_rng(11)
    rate = np.full(det.shape, 20.0, np.float32)
    ft, ng = 10.0, 12
    sci, _, truth = D.simulate_exposure(rng, rate, det, nints=4, ngroups=ng, frame_time=ft,
                                        cosmic_ray_rate=0, large_event_rate=0)
    cal = np.stack([naive_detector1(s, det, 1, 1, frame_time=ft) for s in sci])
    d = np.diff(cal, axis=1)           # (nints, ng-1, ny, nx)
    # remove the per-(int, group, amp/parity) bias drift with the top/bottom reference
    # rows, as refpix does
    ref = truth["reference_mask"]
    rows = np.zeros(det.shape, bool)
    rows[:4, 4:-4] = rows[-4:, 4:-4] = True
    amp = det.amp_map
    for a in np.unique(amp):
        off = d[:, :, rows & (amp == a)].mean(axis=-1)
        d[:, :, amp == a] -= off[..., None]
    good = ~ref & ~det.dead & (det.dark_rate < 0.1)
    g = det.gain[good]
    rn = det.readnoise_cds[good]
    # mean signal per pixel -> linearity derivative scales the read noise
    x = (sci[:, :, good].mean(axis=(0, 1)) - det.superbias[good]).astype(np.float64)
    c = det.linearity_coeffs[:, good].astype(np.float64)
    fprime = c[1] + 2 * c[2] * x + 3 * c[3] * x ** 2
    resid = d[:, :, good] - (rate[good] + 0) * ft
    pred = (rate[good] + det.dark_rate[good]) * ft / g + (rn * fprime) ** 2 + 2 / 12.0
    ratio = (resid ** 2).mean(axis=(0, 1)) / pred
    assert abs(ratio.mean() - 1) < 0.03, ratio.mean()
    # without the Poisson term the prediction would be far off
    assert ((resid ** 2).mean() / (rn ** 2 * fprime ** 2 + 2 / 12.0).mean()) > 1.5
    # mean recovered rate is unbiased
    assert abs(d[:, :, good].mean() / ft - 20.0) < 0.05


def test_cosmic_rays_at_right_group():
    det = small_nir(6)
    rng = np.random.default_rng(4)
    rate = np.zeros(det.shape, np.float32)
    ft, ng = 10.0, 8
    sci, _, truth = D.simulate_exposure(rng, rate, det, ngroups=ng, nints=2, frame_time=ft,
                                        cosmic_ray_rate=2e-4, large_event_rate=0,
                                        noiseless=True, quantize=False)
    cr = truth["cosmic_rays"]
    assert cr.size > 10
    assert {"int", "frame", "group", "y", "x", "charge_dn"} <= set(cr.dtype.names)
    cal = np.stack([naive_detector1(s, det, 1, 1, frame_time=ft) for s in sci])
    d = np.diff(cal, axis=1)
    # sum the deposits per (int, group, pixel) and compare with the jump in the ramp
    expect = np.zeros(d.shape)
    for row in cr:
        if 0 < row["group"] < ng:
            expect[row["int"], row["group"] - 1, row["y"], row["x"]] += row["charge_dn"]
    hit0 = np.zeros(cal.shape[:1] + cal.shape[2:], bool)
    for row in cr[cr["group"] == 0]:
        hit0[row["int"], row["y"], row["x"]] = True
    ok = ~hit0[:, None]                 # group-0 hits offset the ramp, not a difference
    sat = truth["saturated_mask"]
    ok = ok & ~sat
    np.testing.assert_allclose(d[np.broadcast_to(ok, d.shape)],
                               expect[np.broadcast_to(ok, d.shape)], atol=1e-2, rtol=1e-5)
    # hits in different pixels/groups are separate; the list is not empty of real jumps
    assert (expect > 100).sum() > 5


def test_saturation_and_snowball():
    det = small_nir(7)
    rng = np.random.default_rng(9)
    rate = np.full(det.shape, 1.0, np.float32)
    rate[20:24, 20:24] = 2000.0          # saturates after ~20-25 s
    ft, ng = 10.0, 6
    sci, _, truth = D.simulate_exposure(rng, rate, det, ngroups=ng, frame_time=ft,
                                        cosmic_ray_rate=0, large_event_rate=0)
    first = truth["first_saturated_group"][0]
    assert truth["saturated_mask"][20:24, 20:24].all()
    assert truth["saturated_mask"].sum() == 16
    # the pipeline's rule: a group is saturated when raw >= threshold
    raw = sci[0].astype(np.float32)
    thr = det.saturation
    for y in range(20, 24):
        for x in range(20, 24):
            g = first[y, x]
            assert raw[g, y, x] >= thr[y, x] - 50
            if g > 0:
                assert raw[g - 1, y, x] < thr[y, x]
            # plateau at the hard-saturation (full-well) level
            assert abs(raw[-1, y, x] - det.hard_saturation[y, x]) < 60
    # a large event saturates its core
    sci2, _, truth2 = D.simulate_exposure(np.random.default_rng(1), np.zeros(det.shape), det,
                                          ngroups=ng, frame_time=ft, cosmic_ray_rate=0,
                                          large_event_rate=2e-5)
    cr = truth2["cosmic_rays"]
    assert cr["large"].any()
    assert truth2["saturated_mask"].any()


def test_miri_reset_and_linearity_on_raw():
    det = D.make_detector(np.random.default_rng(3), "MIRI", "MIRIMAGE", ny=32, nx=40)
    rng = np.random.default_rng(4)
    rate = np.full(det.shape, 30.0, np.float32)
    ft, ng, ni = 2.77504, 8, 2
    sci, _, truth = D.simulate_exposure(rng, rate, det, ngroups=ng, nints=ni, frame_time=ft,
                                        cosmic_ray_rate=0, large_event_rate=0,
                                        miri_reset_anomaly=True, noiseless=True,
                                        quantize=False)
    reset, _, _ = D.reference_reset(det, ni, ng)
    raw = sci.astype(np.float64) - reset
    lin = D.linearity_correct(raw, det.linearity_coeffs)
    dark, _, _ = D.reference_dark(det, ng, 1, 0, ft, nints=ni)
    cal = lin - dark
    d = np.diff(cal, axis=1)
    good = ~truth["reference_mask"] & ~truth["dead_mask"]
    np.testing.assert_allclose(d[:, :, good], 30.0 * ft, atol=2e-3)
    # reference columns: no light, only bias plus the reset anomaly
    assert (np.abs(np.diff(raw, axis=1)[:, :, truth["reference_mask"]]) < 1e-3).all()
    assert (np.abs(np.diff(sci, axis=1)[0, 0][truth["reference_mask"]]) > 1).all()


def test_ipc_round_trip():
    det = small_nir(8, nonlinearity=0.0)
    rng = np.random.default_rng(1)
    rate = np.zeros(det.shape, np.float32)
    rate[30, 30] = 100.0
    kw = dict(ngroups=3, frame_time=10.0, cosmic_ray_rate=0, large_event_rate=0,
              noiseless=True, quantize=False, include_ipc=True)
    sci, _, truth = D.simulate_exposure(rng, rate, det, **kw)
    # neighbours see alpha of the signal
    d = np.diff(sci[0].astype(np.float64), axis=0)[0]
    assert d[30, 31] > 0.005 * d[30, 30]
    # the pipeline's correction (convolve with the reference kernel) undoes it
    corr = D._ipc_convolve(sci[0, 1].astype(np.float32) - sci[0, 0].astype(np.float32),
                           D.reference_ipc(det), ~truth["reference_mask"])
    assert abs(corr[30, 31]) < 5e-5 * d[30, 30]     # vs alpha ~ 1e-2 uncorrected
    assert abs(corr[30, 30] - (1000.0 + det.dark_rate[30, 30] * 10.0)) < 1e-2


@pytest.mark.slow
def test_full_frame_speed():
    import time
    det = D.make_detector(np.random.default_rng(0), "NIRCAM", "NRCA1")
    rate = np.full(det.shape, 2.0, np.float32)
    t = time.perf_counter()
    sci, _, _ = D.simulate_exposure(np.random.default_rng(0), rate, det, ngroups=10)
    assert time.perf_counter() - t < 40
    assert sci.shape == (1, 10, 2048, 2048)


# --------------------------------------------------------------------------------------
# the official pipeline as oracle: its stage-1 steps, fed the simulator's references
# (in memory, every reftype overridden), must recover the true rates with honest errors

def _oracle_env(monkeypatch):
    from tests.realdata import real_file

    cache = str(real_file("crds_cache"))
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    monkeypatch.setenv("CRDS_SERVER_URL", "https://crds-serverless-mode.stsci.edu")
    monkeypatch.setenv("CRDS_MODE", "local")
    monkeypatch.setenv("CRDS_PATH", cache)
    monkeypatch.setenv("CRDS_READONLY_CACHE", "1")


def _meta(m, det, sub=None, science=False):
    def put(path, value):    # reference models lack some blocks (IPC has no subarray)
        *head, last = path.split(".")
        node = m.meta
        try:
            for h in head:
                node = getattr(node, h)
            setattr(node, last, value)
        except AttributeError:
            pass

    put("instrument.name", det.instrument)
    put("instrument.detector", det.detector)
    if det.is_miri:
        put("instrument.filter", "F770W")
        put("exposure.type", "MIR_IMAGE")
    else:
        put("instrument.filter", "F200W")
        put("instrument.pupil", "CLEAR")
        put("instrument.channel", "SHORT")
        put("instrument.module", "A")
        put("exposure.type", "NRC_IMAGE")
    put("subarray.fastaxis", det.fastaxis)
    put("subarray.slowaxis", det.slowaxis)
    name, x0, y0, xs, ys = sub or ("FULL", 1, 1, det.shape[1], det.shape[0])
    put("subarray.name", name)
    put("subarray.xstart", x0)
    put("subarray.ystart", y0)
    put("subarray.xsize", xs)
    put("subarray.ysize", ys)
    if science:
        put("observation.date", "2024-01-01")
        put("observation.time", "00:00:00")
    else:
        put("description", "webbflow synthetic")
        put("author", "webbflow")
        put("pedigree", "DUMMY")
        put("useafter", "2020-01-01T00:00:00")
    return m


def _run_oracle(det, sci, sub, *, nframes, groupgap, frame_time, readpatt, ipc=False):
    from stdatamodels.jwst import datamodels as dm
    from jwst.dark_current import DarkCurrentStep
    from jwst.dq_init import DQInitStep
    from jwst.ipc import IPCStep
    from jwst.jump import JumpStep
    from jwst.lastframe import LastFrameStep
    from jwst.linearity import LinearityStep
    from jwst.ramp_fitting import RampFitStep
    from jwst.refpix import RefPixStep
    from jwst.reset import ResetStep
    from jwst.saturation import SaturationStep
    from jwst.superbias import SuperBiasStep

    name, x0, y0, xs, ys = sub
    nints, ngroups = sci.shape[:2]
    ramp = _meta(dm.RampModel(data=sci.astype(np.float32)), det, sub, science=True)
    e = ramp.meta.exposure
    e.ngroups, e.nints, e.nframes, e.groupgap = ngroups, nints, nframes, groupgap
    e.frame_time = frame_time
    e.group_time = (nframes + groupgap) * frame_time
    e.readpatt, e.drop_frames1, e.nresets_between_ints = readpatt, 0, 1
    e.integration_time = e.group_time * ngroups
    e.zero_frame = False
    cut = (slice(y0 - 1, y0 - 1 + ys), slice(x0 - 1, x0 - 1 + xs))
    full = lambda m: _meta(m, det)           # noqa: E731
    gain = full(dm.GainModel(data=D.reference_gain(det)))
    rn = full(dm.ReadnoiseModel(data=D.reference_readnoise(det)))
    s, dq = D.reference_saturation(det)
    satm = full(dm.SaturationModel(data=s, dq=dq))
    c, dq = D.reference_linearity(det)
    lin = full(dm.LinearityModel(coeffs=c, dq=dq))
    s, err, dq = D.reference_dark(det, ngroups, 1, 0, frame_time, nints=nints)
    frames_needed = int(D.dark_frame_indices(ngroups, nframes, groupgap)[-1, -1]) + 1
    s, err, dq = D.reference_dark(det, frames_needed, 1, 0, frame_time, nints=nints)
    if det.is_miri:
        dark = dm.DarkMIRIModel(data=s[..., cut[0], cut[1]].copy(),
                                err=err[..., cut[0], cut[1]].copy(),
                                dq=dq[..., cut[0], cut[1]].copy())
    else:
        dark = dm.DarkModel(data=s[:, cut[0], cut[1]].copy(), err=err[:, cut[0], cut[1]].copy(),
                            dq=dq[cut].copy())
    _meta(dark, det, sub)
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.ngroups = frames_needed
    dark.meta.exposure.nints = nints if det.is_miri else 1
    ipcm = full(dm.IPCModel(data=D.reference_ipc(det)))

    m = DQInitStep.call(ramp, override_mask=full(dm.MaskModel(dq=D.reference_mask(det))))
    if det.is_miri:
        m = SaturationStep.call(m, override_saturation=satm, override_superbias="N/A")
    else:
        s, err, dq = D.reference_superbias(det)
        bias = full(dm.SuperBiasModel(data=s, err=err, dq=dq))
        m = SaturationStep.call(m, override_saturation=satm, override_superbias=bias)
    if ipc:
        m = IPCStep.call(m, override_ipc=ipcm)
    if det.is_miri:
        m = LastFrameStep.call(m)
        s, err, dq = D.reference_reset(det, nints, ngroups)
        reset = _meta(dm.ResetModel(data=s[..., cut[0], cut[1]].copy(),
                                    err=err[..., cut[0], cut[1]].copy(),
                                    dq=dq[cut].copy()), det, sub)
        reset.meta.exposure.ngroups, reset.meta.exposure.nints = ngroups, nints
        m = ResetStep.call(m, override_reset=reset)
        m = LinearityStep.call(m, override_linearity=lin)
        m = DarkCurrentStep.call(m, override_dark=dark)
    else:
        m = SuperBiasStep.call(m, override_superbias=bias)
        m = RefPixStep.call(m, override_refpix="N/A", override_sirskernel="N/A")
        m = LinearityStep.call(m, override_linearity=lin)
        m = DarkCurrentStep.call(m, override_dark=dark)
    m = JumpStep.call(m, override_gain=gain, override_readnoise=rn)
    rate, _ = RampFitStep.call(m, override_gain=gain, override_readnoise=rn)
    return rate, m


@pytest.mark.oracle
@pytest.mark.slow
def test_oracle_nircam_subarray(monkeypatch):
    pytest.importorskip("jwst")
    _oracle_env(monkeypatch)
    rng = np.random.default_rng(5)
    det = D.make_detector(rng, "NIRCAM", "NRCA1")
    sub = ("SUB160", 1, 1, 160, 160)            # corner: two reference edges inside
    ft = nircam_frame_time(160, 160, 1)
    nframes, groupgap, ng, ni = 2, 0, 8, 2      # BRIGHT2
    rate = rng.uniform(0.5, 60.0, det.shape).astype(np.float32)
    rate[60:64, 60:64] = 3e4                    # saturates in group 1-2
    sci, _, truth = D.simulate_exposure(
        rng, rate, det, xstart=1, ystart=1, xsize=160, ysize=160, nints=ni, ngroups=ng,
        nframes=nframes, groupgap=groupgap, frame_time=ft, cosmic_ray_rate=2e-4,
        large_event_rate=0, include_ipc=True)
    res, ramp = _run_oracle(det, sci, sub, nframes=nframes, groupgap=groupgap,
                            frame_time=ft, readpatt="BRIGHT2", ipc=True)
    cr = truth["cosmic_rays"]
    big = cr[(cr["charge_dn"] > 200) & (cr["group"] > 0) & (cr["group"] < ng)]
    hit = np.zeros((160, 160), bool)
    hit[cr["y"], cr["x"]] = True
    clean = (~truth["reference_mask"] & ~truth["dead_mask"] & ~truth["saturated_mask"] & ~hit
             & (res.dq == 0))
    z = (res.data - truth["rate"]) / res.err
    print(f"NIRCam oracle: n={clean.sum()} z mean={np.mean(z[clean]):.4f} "
          f"std={np.std(z[clean]):.4f}")
    assert clean.sum() > 15000
    assert abs(np.mean(z[clean])) < 0.05
    assert abs(np.std(z[clean]) - 1) < 0.05
    # jumps: the big deposits are flagged at their group in the ramp
    gdq = ramp.groupdq
    found = (gdq[big["int"], big["group"], big["y"], big["x"]] & 4) != 0
    print(f"jumps found {found.mean():.3f} of {found.size}")
    assert found.mean() > 0.9
    # saturation flagged where the truth says so
    assert ((res.dq[truth["saturated_mask"]] & 2) != 0).all()
    # rates of CR-hit pixels stay sane
    hitok = hit & ~truth["saturated_mask"] & ~truth["dead_mask"] & np.isfinite(res.data)
    assert np.median(np.abs(z[hitok])) < 1.0


@pytest.mark.oracle
@pytest.mark.slow
def test_oracle_miri_subarray(monkeypatch):
    pytest.importorskip("jwst")
    _oracle_env(monkeypatch)
    rng = np.random.default_rng(6)
    det = D.make_detector(rng, "MIRI", "MIRIMAGE")
    sub = ("SUB64", 1, 779, 72, 64)             # the MIRI SUB64 of a real ground-test file
    ft, ng, ni = 0.085, 40, 3                   # its TFRAME
    rate = rng.uniform(50.0, 500.0, det.shape).astype(np.float32)
    sci, _, truth = D.simulate_exposure(
        rng, rate, det, xstart=1, ystart=779, xsize=72, ysize=64, nints=ni, ngroups=ng,
        frame_time=ft, cosmic_ray_rate=0, large_event_rate=0, miri_reset_anomaly=True)
    res, _ = _run_oracle(det, sci, sub, nframes=1, groupgap=0, frame_time=ft,
                         readpatt="FAST")
    clean = ~truth["reference_mask"] & ~truth["dead_mask"] & (res.dq == 0)
    z = (res.data - truth["rate"]) / res.err
    print(f"MIRI oracle: n={clean.sum()} z mean={np.mean(z[clean]):.4f} "
          f"std={np.std(z[clean]):.4f}")
    assert clean.sum() > 3000
    assert abs(np.mean(z[clean])) < 0.1
    assert abs(np.std(z[clean]) - 1) < 0.07


@pytest.mark.parametrize("lam", [0.3, 3.0, 9.99, 10.0, 43.0, 2.5e4])
def test_counter_rng_poisson_and_normal(lam):
    from scipy import stats
    n = 512
    acc = np.zeros((n, n), np.float32)
    D._add_poisson(acc, np.full((n, n), lam, np.float32), 1.0, 12345, 7)
    k = acc.ravel().astype(np.float64)
    assert np.all(k == np.round(k)) and k.min() >= 0
    se = np.sqrt(lam / k.size)
    assert abs(k.mean() - lam) < 5 * se
    assert abs(k.var() / lam - 1) < 5 * np.sqrt(2.0 / k.size) + 1e-3
    if lam < 50:   # the whole distribution, not just two moments
        kmax = int(lam + 8 * np.sqrt(lam) + 8)
        obs = np.bincount(k.astype(int), minlength=kmax + 1)[:kmax + 1]
        exp = stats.poisson.pmf(np.arange(kmax + 1), lam) * k.size
        keep = exp > 20
        chi2 = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4
    fr = np.zeros((n, n), np.float32)
    D._add_normal(fr, np.full((n, n), 2.0), 99, 3)
    assert abs(fr.mean()) < 5 * 2.0 / n and abs(fr.std() / 2.0 - 1) < 0.01
    assert stats.kstest(fr.ravel()[::7] / 2.0, "norm").pvalue > 1e-4


def test_counter_rng_independent_of_threads():
    import numba
    e = np.random.default_rng(0).uniform(0, 50, (64, 64)).astype(np.float32)
    outs = []
    nt0 = numba.get_num_threads()
    try:
        for nt in sorted({1, nt0}):
            numba.set_num_threads(nt)
            acc = np.zeros((64, 64), np.float32)
            D._add_poisson(acc, e, 3.0, 5, 1)
            D._add_normal(acc, np.ones((64, 64)), 5, 2)
            outs.append(acc)
    finally:
        numba.set_num_threads(nt0)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    # different keys give different draws
    acc2 = np.zeros((64, 64), np.float32)
    D._add_poisson(acc2, e, 3.0, 5, 2)
    assert not np.array_equal(acc2, np.floor(outs[0]))
