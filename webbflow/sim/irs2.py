"""A NIRSpec IRS2 exposure and the CRDS cache that calibrates it.

The detector is simulated on its 2048 x 2048 normal pixels (``webbflow.sim.detector``),
then laid out as IRS2 reads it (3200 x 2048 in DMS orientation: the reference output and,
in each of the four amplifiers, 4 interleaved reference pixels after every 16 normal ones,
NRS_NORM = 16, NRS_REF = 4). On top of the detector signal every sample gets, per
integration and group, what the reference pixels are there to remove:

* per output (the reference output included) an offset and a drift linear in read time;
* a common-mode signal, slow in read time, seen by all five outputs.

The reference pixels carry the same signals plus their own bias and read noise. The
REFPIX reference (``IRS2Model``) says how the correction estimates the common mode: beta
weights the interleaved references (low-passed: 0.7 of the signal), alpha the reference
output (0.3), so together they restore it in full. The other references are those the
official pipeline asks for in this mode, in the layouts of the delivered files: MASK and
SUPERBIAS in the IRS2 layout, SATURATION, IPC, LINEARITY, DARK, GAIN, READNOISE on the
2048 x 2048 normal pixels, selected by the parameters the real rmaps use.

``truth/<exposure>_truth.fits`` holds the true rates; ``truth/<exposure>_irs2.npz`` the
injected per-group signals (and the ramp without them, for the truth tests).
"""

import copy
from pathlib import Path

import numpy as np

from webbflow.crds.cache_writer import references_dir, write_cache
from webbflow.io import Product, write_product
from webbflow.io.truth import write_truth
from webbflow.sim import detector as sim_detector
from webbflow.sim.observatory import ReferenceWriter, _Window, _ref_meta
from webbflow.sim.program import ExposureSpec, exposure_meta, int_times
from webbflow.sim.scene import make_scene
from webbflow.steps.irs2 import ALPHA_BETA_ROWS, _layout, normal_rows, to_detector

AXES = {"NRS1": (2, 1), "NRS2": (-2, -1)}  # FASTAXIS, SLOWAXIS of the NIRSpec SCAs
NROWS = 3200
ROW = 712
REF_BIAS = 11000.0
COMMON_BETA_SHARE = 0.7   # share of the common mode the interleaved references restore
LOWPASS_BINS = 4096       # frequencies (per frame stream) that alpha/beta pass


def _read_times(nrs_norm=16, nrs_ref=4, ny=2048, nx=NROWS):
    """Read-time index (samples from the frame start) of every pixel, detector frame."""
    _, hnorm, href, hnorm1, href1, _, _ = _layout(nrs_norm, nrs_ref)
    pos = np.zeros(nx // 5, np.int64)
    pos[hnorm] = hnorm1
    pos[href] = href1
    cols = np.arange(nx)
    local = cols % (nx // 5)
    sector = cols // (nx // 5)
    local = np.where(sector % 2 == 0, nx // 5 - 1 - local, local)
    return np.arange(ny)[:, None] * ROW + pos[local][None, :]


def irs2_coefficients():
    """alpha, beta (4, 712*2048) complex: pass-band gains of the reference output and
    the interleaved references (the latter scaled by 712/256 for their sampling)."""
    n = ALPHA_BETA_ROWS // 2
    freq = np.fft.fftfreq(n) * n
    band = np.abs(freq) <= LOWPASS_BINS
    alpha = np.where(band, 1.0 - COMMON_BETA_SHARE, 0.0).astype(np.complex64)
    beta = np.where(band, COMMON_BETA_SHARE * ROW / 256.0, 0.0).astype(np.complex64)
    return np.repeat(alpha[None], 4, 0), np.repeat(beta[None], 4, 0)


def write_irs2_reference(path, detector, alpha, beta, dq_rows=None, nrows=None):
    """A REFPIX (IRS2Model) file: IRS2 table (alpha_k, beta_k, real/imag rows) and DQ table."""
    from stdatamodels.jwst import datamodels

    nrows = ALPHA_BETA_ROWS if nrows is None else nrows
    names = [f"alpha_{k}" for k in range(4)] + [f"beta_{k}" for k in range(4)]
    table = np.zeros(nrows, dtype=[(c, ">f4") for c in names])
    m = min(nrows // 2, alpha.shape[1])
    for k in range(4):
        for label, coef in (("alpha", alpha[k]), ("beta", beta[k])):
            col = np.zeros(nrows, np.float32)
            col[0:2 * m:2] = coef[:m].real
            col[1:2 * m:2] = coef[:m].imag
            table[f"{label}_{k}"] = col
    dq = np.array(dq_rows if dq_rows is not None else
                  [(o, e, 0) for o in (1, 2, 3, 4) for e in (1, 2)],
                  dtype=[("output", ">i2"), ("odd_even", ">i2"), ("mask", ">u4")])
    model = datamodels.IRS2Model()
    model.irs2_table = table
    model.dq_table = dq
    meta = model.meta
    meta.instrument.name = "NIRSPEC"
    meta.instrument.detector = detector
    meta.reftype = "REFPIX"
    meta.author = "webbflow synthetic observatory"
    meta.pedigree = "DUMMY"
    meta.useafter = "2000-01-01T00:00:00"
    meta.telescope = "JWST"
    meta.description = f"synthetic IRS2 alpha/beta for {detector}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    model.close()


def simulate_irs2_program(outdir, *, detector="NRS1", readpatt="NRSIRS2RAPID", ngroups=4,
                          nints=1, seed=3, inject=True, cosmic_ray_rate=1e-5,
                          refpix_rows=None, context_number=1):
    """Simulate one IRS2 exposure into ``outdir`` with its CRDS cache; returns the uncal
    path. ``inject=False``: no reference signals (offsets, drifts, common mode).
    ``refpix_rows``: rows of the REFPIX IRS2 table (default the right 2*712*2048; a
    wrong number gives a bad reference for the error tests)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cache = outdir / "crds_cache"
    fast, slow = AXES[detector]
    rng = np.random.default_rng(seed)
    det = sim_detector.make_detector(rng, "NIRSPEC", detector, fastaxis=fast, slowaxis=slow)
    spec = ExposureSpec("NIRSPEC", detector, "NRS_FIXEDSLIT", "F170LP", readpatt, ngroups, nints,
                        seed=seed)
    meta = exposure_meta(spec, fast, slow)
    meta["exposure"].update(nrs_normal=16, nrs_reference=4)
    meta["instrument"]["grating"] = "G235M"
    nframes, groupgap = spec.nframes_groupgap
    tframe = meta["exposure"]["frame_time"]

    rate, sources = make_scene(rng, 2048, 2048, n_stars=400, n_galaxies=100, background=0.3,
                               n_saturating=2, saturation_peak_rate=40000.0 / max(
                                   meta["exposure"]["integration_time"], 1e-3))
    sci, _, truth = sim_detector.simulate_exposure(
        rng, rate, det, nints=nints, ngroups=ngroups, nframes=nframes, groupgap=groupgap,
        frame_time=tframe, cosmic_ray_rate=cosmic_ray_rate, include_ipc=True,
        bias_drift=False, quantize=False)

    normal = normal_rows(NROWS)
    rows = normal if detector == "NRS1" else normal[::-1]
    ref_bias = (REF_BIAS + rng.standard_normal((NROWS, 2048)) * 200.0).astype(np.float32)
    full = np.empty((nints, ngroups, NROWS, 2048), np.float32)
    full[:] = ref_bias
    full[:, :, ~rows, :] += (rng.standard_normal((nints, ngroups, int((~rows).sum()), 2048))
                             * 7.0).astype(np.float32)
    full[:, :, rows, :] = sci
    clean = full.copy()

    # reference signals, per integration and group, in read time
    t = _read_times()
    ntime = 2048 * ROW
    offsets = rng.normal(0.0, 30.0, (nints, ngroups, 5))
    drifts = rng.normal(0.0, 20.0, (nints, ngroups, 5))
    cycles = np.array([3.0, 17.0, 61.0])
    common_amp = rng.uniform(4.0, 10.0, (nints, ngroups, 3))
    common_phase = rng.uniform(0, 2 * np.pi, (nints, ngroups, 3))
    if inject:
        det_view = to_detector(full, detector)
        sector = np.arange(NROWS) // (NROWS // 5)
        tt = (t / ntime - 0.5)
        for i in range(nints):
            for g in range(ngroups):
                sig = offsets[i, g][sector][None, :] + drifts[i, g][sector][None, :] * tt
                for c in range(3):
                    sig = sig + common_amp[i, g, c] * np.sin(
                        2 * np.pi * cycles[c] * t / ntime + common_phase[i, g, c])
                det_view[i, g] += sig.astype(np.float32)
    # one noisy interleaved reference pair (found by the outlier test); one flagged in
    # the mask; one marked in the REFPIX DQ table
    noisy = np.flatnonzero(~normal[640:1280])[10] + 640
    if detector == "NRS2":
        noisy = NROWS - 2 - noisy
    full[:, :, noisy:noisy + 2, :] += (rng.standard_normal((nints, ngroups, 2, 2048))
                                       * 300.0).astype(np.float32)
    raw = np.clip(np.round(full), 0, 65535).astype(np.uint16)

    name = spec.basename
    product = Product("Level1bModel", meta=copy.deepcopy(meta), arrays={"data": raw},
                      tables={"int_times": int_times(meta)})
    uncal = write_product(outdir / f"{name}_uncal.fits", product)
    write_truth(outdir / "truth" / f"{name}_truth.fits", truth, sources)
    np.savez(outdir / "truth" / f"{name}_irs2.npz", offsets=offsets, drifts=drifts,
             common_amp=common_amp, common_phase=common_phase, cycles=cycles,
             clean=np.clip(np.round(clean), 0, 65535).astype(np.uint16))

    _write_references(cache, det, detector, readpatt, ngroups * (nframes + groupgap),
                      tframe, rows, ref_bias, refpix_rows)
    return uncal


def _write_references(cache, det, detector, readpatt, frames, tframe, rows, ref_bias,
                      refpix_rows):
    refs = ReferenceWriter(cache)
    inst = "NIRSPEC"
    full = _Window(1, 1, 2048, 2048)
    meta = _ref_meta(det, full, True)
    by = {"META.INSTRUMENT.DETECTOR": detector}
    sub = {"META.SUBARRAY.NAME": "FULL"}
    patt = {"META.EXPOSURE.READPATT": readpatt}
    irs2_meta = copy.deepcopy(meta)
    irs2_meta["exposure"] = {"readpatt": readpatt}

    ref_bit = np.uint32(1 << 31)
    bad_ref = np.uint32(1 << 17)
    mask = np.full((NROWS, 2048), ref_bit, np.uint32)
    mask[rows, :] = sim_detector.reference_mask(det)
    # a bad interleaved pair known to the mask (amplifier 3)
    first = np.flatnonzero(~rows[1280:1920])[6] + 1280
    mask[first:first + 2, :] |= bad_ref
    refs.write(inst, "mask", "MaskModel", irs2_meta, {"dq": mask}, match={**by, **sub, **patt})
    bias = ref_bias.copy()
    bias[rows, :] = sim_detector.reference_superbias(det)[0]
    refs.write(inst, "superbias", "SuperBiasModel", irs2_meta,
               {"data": bias, "err": np.full(bias.shape, 5.0, np.float32),
                "dq": np.zeros(bias.shape, np.uint32)}, match={**by, **patt, **sub})
    sat, sat_dq = sim_detector.reference_saturation(det)
    refs.write(inst, "saturation", "SaturationModel", meta, {"data": sat, "dq": sat_dq},
               match={**by, **sub})
    refs.write(inst, "ipc", "IPCModel", meta, {"data": sim_detector.reference_ipc(det)},
               match=by)
    coeffs, lin_dq = sim_detector.reference_linearity(det)
    refs.write(inst, "linearity", "LinearityModel", meta, {"coeffs": coeffs, "dq": lin_dq},
               match={**by, **sub})
    refs.write(inst, "gain", "GainModel", meta, {"data": sim_detector.reference_gain(det)},
               match={**by, **sub})
    refs.write(inst, "readnoise", "ReadnoiseModel", irs2_meta,
               {"data": sim_detector.reference_readnoise(det)}, match={**by, **patt, **sub})
    dark_meta = copy.deepcopy(meta)
    dark_meta["exposure"] = {"nframes": 1, "groupgap": 0, "ngroups": frames,
                             "readpatt": readpatt, "frame_time": tframe}
    dsci, derr, ddq = sim_detector.reference_dark(det, frames, frame_time=tframe)
    refs.write(inst, "dark", "DarkModel", dark_meta, {"data": dsci, "err": derr, "dq": ddq},
               match={**by, **patt, **sub})

    alpha, beta = irs2_coefficients()
    refs.serial[(inst, "refpix")] = 1
    fname = "jwst_nirspec_refpix_0001.fits"
    dq_rows = [(o, e, 0) for o in (1, 2, 3, 4) for e in (1, 2)]
    dq_rows[2] = (2, 1, 1 << 20)  # output 2, first pair of the 21st block: bad
    write_irs2_reference(references_dir(cache, inst) / fname, detector, alpha, beta,
                         dq_rows, nrows=refpix_rows)
    from webbflow.crds.cache_writer import RuleEntry

    refs.entries.append(RuleEntry(inst, "refpix", fname, {**by, **patt}))
    return write_cache(cache, refs.entries, context_number=1)
