"""The synthetic observatory: a program directory of MAST-named ``uncal`` files, the
CRDS cache that calibrates them, and the truth beside them.

Layout written under ``outdir``::

    jw01234001001_02101_00001_nrca1_uncal.fits ...   raw exposures (Level1bModel)
    truth/<exposure>_truth.fits                       true rates, cosmic rays, masks
    crds_cache/                                       mappings + reference files

The exposures are simulated through ``webbflow.sim.detector`` with the same detector
model whose reference files go into the cache, so calibrated rates recover the truth.
"""

import copy
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from webbflow.crds.cache_writer import RuleEntry, read_rules, references_dir, write_cache
from webbflow.dqflags import dq_def_rows
from webbflow.io import Product, write_product
from webbflow.io.truth import write_truth
from webbflow.sim import detector as sim_detector
from webbflow.sim import optics, sky as sim_sky
from webbflow.sim.program import (IMAGING_EXP_TYPES, NIRCAM_DETECTORS, exposure_meta, int_times,
                                  optical_elements, passband, true_wcsinfo)
from webbflow.sim.scene import make_scene

log = logging.getLogger("webbflow.sim")

DQ_DEF_DTYPE = [("BIT", ">i4"), ("VALUE", ">u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")]


def _dq_def():
    return np.array(dq_def_rows(), dtype=DQ_DEF_DTYPE)


def _detector_seed(seed, instrument, detector):
    return zlib.crc32(f"{seed}:{instrument}:{detector}".encode())


@dataclass(frozen=True)
class _Window:
    xstart: int
    ystart: int
    xsize: int
    ysize: int

    def cut(self, array):
        return np.ascontiguousarray(array[..., self.ystart - 1:self.ystart - 1 + self.ysize,
                                          self.xstart - 1:self.xstart - 1 + self.xsize])


class ReferenceWriter:
    """Writes reference files into the cache and collects the rules that select them."""

    def __init__(self, cache_root, serial_start=1):
        self.cache_root = Path(cache_root)
        self.entries = []
        self.serial = {}
        self.serial_start = serial_start

    def write(self, instrument, reftype, model_type, meta, arrays, tables=None, match=None):
        key = (instrument, reftype)
        self.serial[key] = self.serial.get(key, self.serial_start - 1) + 1
        name = f"jwst_{instrument.lower()}_{reftype}_{self.serial[key]:04d}.fits"
        meta = dict(meta)
        meta.update(reftype=reftype.upper(), author="webbflow synthetic observatory",
                    pedigree="DUMMY", useafter="2000-01-01T00:00:00", telescope="JWST",
                    description=f"synthetic {reftype} for {meta['instrument']['detector']}")
        product = Product(model_type, meta=meta, arrays=arrays,
                          tables={"dq_def": _dq_def(), **(tables or {})}
                          if "dq" in arrays else (tables or {}))
        write_product(references_dir(self.cache_root, instrument) / name, product)
        self.entries.append(RuleEntry(instrument, reftype, name, match or {}))
        return name

    def write_asdf(self, instrument, reftype, model, match=None):
        """An ASDF reference (DISTORTION, FILTEROFFSET) from a stdatamodels model."""
        key = (instrument, reftype)
        self.serial[key] = self.serial.get(key, self.serial_start - 1) + 1
        name = f"jwst_{instrument.lower()}_{reftype}_{self.serial[key]:04d}.asdf"
        model.meta.reftype = reftype.upper()
        model.meta.author = "webbflow synthetic observatory"
        model.meta.pedigree = "DUMMY"
        model.meta.useafter = "2000-01-01T00:00:00"
        model.meta.telescope = "JWST"
        path = references_dir(self.cache_root, instrument) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(str(path))
        self.entries.append(RuleEntry(instrument, reftype, name, match or {}))
        return name


def _ref_meta(det, window, full):
    sub = {"name": "FULL" if full else "GENERIC", "xstart": window.xstart,
           "ystart": window.ystart, "xsize": window.xsize, "ysize": window.ysize,
           "fastaxis": det.fastaxis, "slowaxis": det.slowaxis}
    instrument = {"name": det.instrument, "detector": det.detector}
    if det.instrument == "NIRCAM":
        instrument["channel"], instrument["module"] = NIRCAM_DETECTORS[det.detector]
    return {"instrument": instrument, "subarray": sub}


def write_detector_references(refs, det, exposures_by_window):
    """Full-frame references of one detector plus subarray-exact darks (and MIRI resets)."""
    ny, nx = det.shape
    full = _Window(1, 1, nx, ny)
    meta = _ref_meta(det, full, True)
    inst, detname = det.instrument, det.detector
    match = {"META.INSTRUMENT.DETECTOR": detname}
    refs.write(inst, "mask", "MaskModel", meta, {"dq": sim_detector.reference_mask(det)}, match=match)
    sat, sat_dq = sim_detector.reference_saturation(det)
    refs.write(inst, "saturation", "SaturationModel", meta, {"data": sat, "dq": sat_dq}, match=match)
    if not det.is_miri:
        bias, bias_err, bias_dq = sim_detector.reference_superbias(det)
        refs.write(inst, "superbias", "SuperBiasModel", meta,
                   {"data": bias, "err": bias_err, "dq": bias_dq}, match=match)
    coeffs, lin_dq = sim_detector.reference_linearity(det)
    refs.write(inst, "linearity", "LinearityModel", meta, {"coeffs": coeffs, "dq": lin_dq},
               match=match)
    refs.write(inst, "gain", "GainModel", meta, {"data": sim_detector.reference_gain(det)},
               match=match)
    refs.write(inst, "readnoise", "ReadnoiseModel", meta,
               {"data": sim_detector.reference_readnoise(det)}, match=match)
    refs.write(inst, "ipc", "IPCModel", meta, {"data": sim_detector.reference_ipc(det)},
               match=match)
    if det.is_miri:
        refs.write(inst, "rscd", "RSCDModel", meta, {},
                   tables={"rscd_group_skip_table": sim_detector.reference_rscd_table()},
                   match=match)

    for (window, subarray, frame_time), specs in exposures_by_window.items():
        frames = max(s.ngroups * (s.nframes_groupgap[0] + s.nframes_groupgap[1]) for s in specs)
        nints = max(s.nints for s in specs)
        dark_meta = _ref_meta(det, window, subarray == "FULL")
        dark_meta["subarray"]["name"] = subarray
        dark_meta["exposure"] = {"nframes": 1, "groupgap": 0, "ngroups": frames,
                                 "readpatt": "FAST" if det.is_miri else "RAPID",
                                 "frame_time": frame_time,
                                 "average_dark_current": float(np.median(sim_detector.reference_avdrkcur(det)))}
        sci, err, dq = sim_detector.reference_dark(
            det, frames, frame_time=frame_time, nints=min(nints, 2) if det.is_miri else None)
        readpatts = sorted({s.readpatt for s in specs})
        arrays = {"data": window.cut(sci), "err": window.cut(err), "dq": window.cut(dq)}
        name = None
        for readpatt in readpatts:
            dark_match = {**match, "META.EXPOSURE.READPATT": readpatt, "META.SUBARRAY.NAME": subarray}
            if name is None:
                name = refs.write(inst, "dark", "DarkMIRIModel" if det.is_miri else "DarkModel",
                                  dark_meta, arrays, match=dark_match)
            else:
                refs.entries.append(RuleEntry(inst, "dark", name, dark_match))
        if det.is_miri:
            reset_ints, reset_groups = 2, max(s.ngroups for s in specs)
            rsci, rerr, rdq = sim_detector.reference_reset(det, reset_ints, reset_groups)
            reset_meta = _ref_meta(det, window, subarray == "FULL")
            reset_meta["subarray"]["name"] = subarray
            reset_meta["exposure"] = {"nints": reset_ints, "ngroups": reset_groups,
                                      "readpatt": "FAST"}
            refs.write(inst, "reset", "ResetModel", reset_meta,
                       {"data": window.cut(rsci), "err": window.cut(rerr), "dq": window.cut(rdq)},
                       match={**match, "META.SUBARRAY.NAME": subarray})


@dataclass
class ImagingOptics:
    """What the imaging references of one detector say: the simulator renders with it."""

    distortion: object          # astropy model, full-frame pixels -> V2/V3 arcsec
    area: np.ndarray            # relative pixel areas, full frame
    flat: np.ndarray            # QE * area, full frame (NaN: no response)
    pixar_a2: float
    offsets: dict               # (filter, pupil) -> (column, row) offset in pixels

    @property
    def pixar_sr(self):
        return self.pixar_a2 * (np.pi / 180.0 / 3600.0) ** 2


_PHOTOM_MODELS = {"NIRCAM": "NrcImgPhotomModel", "NIRISS": "NisImgPhotomModel",
                  "MIRI": "MirImgPhotomModel", "FGS": "FgsImgPhotomModel"}


def write_imaging_references(refs, det, specs, rng):
    """DISTORTION, FILTEROFFSET, FLAT, PHOTOM and AREA of one detector for the filters
    its imaging exposures use; returns the :class:`ImagingOptics` they describe."""
    from stdatamodels.jwst import datamodels  # noqa: PLC0415
    import astropy.units as u  # noqa: PLC0415

    inst, detname = det.instrument, det.detector
    shape = det.shape
    distortion = optics.synthetic_distortion(rng, detname, shape)
    area, pixar_a2 = optics.pixel_area_map(distortion, shape)
    flat = (optics.quantum_efficiency(rng, shape) * area).astype(np.float32)
    # (FILTER, PUPIL) pairs; FGS: the one (None, None) of an instrument without wheels,
    # and without filter offsets
    filters = sorted({optical_elements(s) for s in specs}, key=str)
    offsets = {f: (round(float(rng.normal(0, 0.3)), 3), round(float(rng.normal(0, 0.3)), 3))
               for f in filters if inst != "FGS"}
    opt = ImagingOptics(distortion, area, flat, pixar_a2, offsets)
    match = {"META.INSTRUMENT.DETECTOR": detname}
    pixar = {"pixelarea_steradians": opt.pixar_sr, "pixelarea_arcsecsq": pixar_a2}

    model = datamodels.DistortionModel()
    model.model = distortion
    model.meta.input_units = u.pix
    model.meta.output_units = u.arcsec
    model.meta.instrument.name = inst
    model.meta.instrument.detector = detname
    model.meta.exposure.p_exptype = "|".join(IMAGING_EXP_TYPES) + "|"
    if inst == "NIRCAM":
        model.meta.instrument.channel, model.meta.instrument.module = NIRCAM_DETECTORS[detname]
        model.meta.instrument.p_pupil = "CLEAR|"
    model.meta.description = f"synthetic distortion for {detname}"
    refs.write_asdf(inst, "distortion", model, match=match)

    if inst != "FGS":  # FGS's assign_wcs takes no FILTEROFFSET (jwst assign_wcs/fgs.py)
        model = datamodels.FilteroffsetModel()
        model.filters = [{"filter": f, **({"pupil": p} if p else {}),
                          "column_offset": offsets[f, p][0], "row_offset": offsets[f, p][1]}
                         for f, p in filters]
        model.meta.instrument.name = inst
        model.meta.instrument.detector = detname
        if inst == "NIRCAM":
            model.meta.instrument.channel, model.meta.instrument.module = \
                NIRCAM_DETECTORS[detname]
        model.meta.description = f"synthetic filter offsets for {detname}"
        refs.write_asdf(inst, "filteroffset", model, match=match)

    meta = _ref_meta(det, _Window(1, 1, shape[1], shape[0]), True)
    for filter_name, pupil in filters:
        flat_meta = copy.deepcopy(meta)
        flat_meta["instrument"].update(**({"filter": filter_name} if filter_name else {}),
                                       **({"pupil": pupil} if pupil else {}))
        fmatch = dict(match)
        if filter_name:  # FGS flats are chosen by detector (and EXP_TYPE) alone
            fmatch["META.INSTRUMENT.FILTER"] = filter_name
        if pupil:
            fmatch["META.INSTRUMENT.PUPIL"] = pupil
        refs.write(inst, "flat", "FlatModel", flat_meta,
                   {"data": flat, "err": np.full(shape, 0.002, np.float32) * np.nan_to_num(flat),
                    "dq": np.zeros(shape, np.uint32)}, match=fmatch)
        area_meta = copy.deepcopy(flat_meta)
        area_meta["photometry"] = pixar
        refs.write(inst, "area", "PixelAreaModel", area_meta, {"data": area}, match=fmatch)

    # PHOTOM rows: FILTER and PUPIL (NIRCam, NIRISS), FILTER and SUBARRAY (MIRI), one
    # row without selectors (FGS: the official step reads its first row)
    if inst == "FGS":
        value = optics.photmjsr(inst, passband(None, None))
        table = np.array([(value, 0.01 * value)],
                         dtype=[("photmjsr", ">f4"), ("uncertainty", ">f4")])
    else:
        key = "subarray" if inst == "MIRI" else "pupil"
        width = 17 if inst == "MIRI" else 12
        table = np.array([(f, "GENERIC" if inst == "MIRI" else p,
                           optics.photmjsr(inst, passband(f, p)),
                           0.01 * optics.photmjsr(inst, passband(f, p))) for f, p in filters],
                         dtype=[("filter", "S12"), (key, f"S{width}"), ("photmjsr", ">f4"),
                                ("uncertainty", ">f4")])
    photom_meta = copy.deepcopy(meta)
    photom_meta["photometry"] = pixar
    refs.write(inst, "photom", _PHOTOM_MODELS[inst], photom_meta, {},
               tables={"phot_table": table}, match=match)

    # APCORR and ABVEGAOFFSET (source_catalog). The stars are pixel-integrated circular
    # Gaussians (FWHM 1.6 px near-IR, 2.0 px MIRI: ``_sky_rate``). In a drizzled i2d at
    # the native scale (pixfrac 1) as photometered by exact-overlap circular apertures,
    # a star's profile along each axis is that Gaussian convolved with four one-pixel
    # boxes, on average over the sub-pixel phases: the detector's pixel integration,
    # the drizzle's square input pixels, their integration over the output pixel, and
    # the aperture's piecewise-constant view of the output pixels. The encircled
    # energies of that separable profile, EE(r) = P(X^2 + Y^2 <= r^2), follow from its
    # one-dimensional density (the Gaussian convolved with the Irwin-Hall density of
    # four boxes, on a 0.001 px grid) by Gauss-Legendre quadrature across the disc:
    # radii for EE 10..90 % and apcorr = 1 / EE (the annulus, at 5-7.5 FWHM, holds no
    # starlight). Radii are native pixels (the step divides by pixel_scale_ratio).
    from scipy.optimize import brentq  # noqa: PLC0415
    from astropy.table import Table  # noqa: PLC0415

    fwhm = 2.0 if det.is_miri else 1.6
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    step = 1e-3
    grid = np.arange(-12.0, 12.0 + step / 2, step)
    density = np.exp(-0.5 * (grid / sigma) ** 2)
    for _ in range(4):  # Gaussian (x) box^4 on the fine grid, renormalised each time
        box = np.ones(int(round(1.0 / step)) + 1)
        box[[0, -1]] = 0.5
        density = np.convolve(density, box, mode="same")
        density /= density.sum() * step
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1])) * step])
    cdf /= cdf[-1]

    def encircled(r):
        nodes, weights = np.polynomial.legendre.leggauss(400)
        x = r * nodes
        half = np.interp(np.sqrt(np.maximum(r * r - x * x, 0.0)), grid, cdf)
        return float(np.sum(weights * r * np.interp(x, grid, density) * (2.0 * half - 1.0)))

    eefractions = np.round(np.arange(0.1, 0.95, 0.1), 2)
    radii = [brentq(lambda r, p=p: encircled(r) - p, 1e-3, 10.0, xtol=1e-10)
             for p in eefractions]
    skyin, skyout = 5.0 * fwhm, 7.5 * fwhm
    subarrays = sorted({s.subarray for s in specs} | {"FULL"})
    rows = []
    for filter_name, pupil in filters:
        for selector in (subarrays if inst == "MIRI" else [pupil]):
            for ee, radius in zip(eefractions, radii):
                rows.append(((filter_name,) if inst != "FGS" else ()) +
                            ((selector,) if inst != "FGS" else ()) +
                            (ee, radius, 1.0 / ee, skyin, skyout))
    selector_cols = {"NIRCAM": [("filter", "S12"), ("pupil", "S15")],
                     "NIRISS": [("filter", "S12"), ("pupil", "S15")],
                     "MIRI": [("filter", "S12"), ("subarray", "S17")], "FGS": []}[inst]
    apcorr_table = np.array(rows, dtype=selector_cols + [
        (name, ">f4") for name in ("eefraction", "radius", "apcorr", "skyin", "skyout")])
    if inst == "FGS":  # FGS tables carry no selector: one PSF per detector
        apcorr_table = apcorr_table[:len(eefractions)]
    model = getattr(datamodels, {"NIRCAM": "NrcImgApcorrModel", "NIRISS": "NisImgApcorrModel",
                                 "MIRI": "MirImgApcorrModel", "FGS": "FgsImgApcorrModel"}[inst])()
    model.apcorr_table = apcorr_table
    model.meta.instrument.name = inst
    model.meta.instrument.detector = detname
    model.meta.exposure.type = next(s.exp_type for s in specs)
    model.meta.exposure.p_exptype = "|".join(IMAGING_EXP_TYPES) + "|"
    model.meta.description = (f"synthetic aperture corrections for {detname}: Gaussian PSF "
                              f"FWHM {fwhm} px, pixel-integrated and drizzled")
    model.meta.reftype = "APCORR"
    model.meta.author = "webbflow synthetic observatory"
    model.meta.pedigree = "DUMMY"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.meta.telescope = "JWST"
    # FITS like the delivered APCORR files; ReferenceWriter.write (webbflow's product
    # writer) has no layout for the *ApcorrModel classes, so the model saves itself
    key = (inst, "apcorr")
    refs.serial[key] = refs.serial.get(key, refs.serial_start - 1) + 1
    name = f"jwst_{inst.lower()}_apcorr_{refs.serial[key]:04d}.fits"
    path = references_dir(refs.cache_root, inst) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    refs.entries.append(RuleEntry(inst, "apcorr", name, match))

    # m_AB - m_Vega at each filter's pivot wavelength (the digits of the name, in units
    # of 10 nm: F200W 2.00 um, F770W 7.70 um), interpolated in a table of Vega's
    # spectrum read off the delivered files
    vega_um = [0.7, 0.9, 1.15, 1.5, 2.0, 2.77, 3.56, 4.44, 5.6, 7.7, 10.0, 12.8, 15.0, 18.0,
               21.0, 25.5]
    vega_offset = [0.26, 0.50, 0.76, 1.17, 1.69, 2.29, 2.78, 3.23, 3.73, 4.32, 4.87, 5.36,
                   5.70, 6.10, 6.46, 6.92]

    def abvega(filter_name):  # FGS: its broad 0.6-5 um band, taken at 2.0 um
        digits = "".join(c for c in filter_name if c.isdigit())
        wave = int(digits) / 100.0 if digits else 2.0
        return float(np.interp(np.log(wave), np.log(vega_um), vega_offset))

    model = datamodels.ABVegaOffsetModel()
    if inst == "FGS":
        model.abvega_offset = Table({"detector": [detname], "abvega_offset":
                                     np.array([abvega(passband(None, None))], np.float32)})
    else:
        columns = {"filter": [f for f, _ in filters]}
        if inst != "MIRI":
            columns["pupil"] = [p for _, p in filters]
        columns["abvega_offset"] = np.array([abvega(passband(f, p)) for f, p in filters],
                                            np.float32)
        model.abvega_offset = Table(columns)
    model.meta.instrument.name = inst
    model.meta.instrument.detector = detname
    model.meta.description = f"synthetic AB - Vega offsets for {detname}"
    refs.write_asdf(inst, "abvegaoffset", model, match=match)
    return opt


def simulate_program(outdir, specs, *, seed=0, cosmic_ray_rate=1.5e-5, context_number=1):
    """Simulate ``specs`` into ``outdir``; returns the CRDS context written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cache = outdir / "crds_cache"
    refs = ReferenceWriter(cache)
    sky = None
    by_detector = {}
    for spec in specs:
        by_detector.setdefault((spec.instrument, spec.detector), []).append(spec)

    for (instrument, detname), dspecs in by_detector.items():
        rng = np.random.default_rng(_detector_seed(seed, instrument, detname))
        det = sim_detector.make_detector(rng, instrument, detname)
        windows = {}
        for spec in dspecs:
            xsize, ysize = spec.size
            window = _Window(spec.xstart, spec.ystart, xsize, ysize)
            tframe = spec.frame_time
            windows.setdefault((window, spec.subarray, tframe), []).append(spec)
        write_detector_references(refs, det, windows)
        imaging = [s for s in dspecs if s.exp_type in IMAGING_EXP_TYPES]
        opt = None
        if imaging:
            opt = write_imaging_references(
                refs, det, imaging,
                np.random.default_rng(_detector_seed(seed, instrument, detname + ":optics")))
        for spec in dspecs:
            if spec.scene.get("sky") and sky is None:
                sky = _program_sky(outdir, specs, seed)
            _simulate_exposure(outdir, spec, det, cosmic_ray_rate,
                               opt if spec.exp_type in IMAGING_EXP_TYPES else None, sky)
        del det
    if "MIRI" in {instrument for instrument, _ in by_detector}:
        write_emicorr_reference(refs)
    return write_cache(cache, refs.entries, context_number=context_number)


def _program_sky(outdir, specs, seed):
    """One sky for all exposures that ask for it, covering their dithers; written to
    truth/sky.fits."""
    from astropy.io import fits  # noqa: PLC0415

    on_sky = [s for s in specs if s.scene.get("sky")]
    ra, dec = on_sky[0].target_ra, on_sky[0].target_dec
    radius = max(max(s.size) * optics.aperture(s.detector).scale for s in on_sky)
    # scene {"sky": {...}} overrides make_sky's source counts and fluxes, and the radius
    density = dict(on_sky[0].scene["sky"]) if isinstance(on_sky[0].scene["sky"], dict) else {}
    radius = density.pop("radius_arcsec", radius)
    sky = sim_sky.make_sky(np.random.default_rng(_detector_seed(seed, "SKY", "field")),
                           ra, dec, radius, **density)
    path = outdir / "truth" / "sky.fits"
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(sky, name="SKY")]).writeto(
        path, overwrite=True)
    return sky


def _sky_rate(spec, meta, det, opt, sky):
    from webbflow.wcs.imaging import imaging_wcs  # noqa: PLC0415

    xsize, ysize = spec.size
    window = _Window(spec.xstart, spec.ystart, xsize, ysize)
    wcs = imaging_wcs(true_wcsinfo(spec, meta), opt.distortion, shape=(ysize, xsize),
                      substrt=(spec.xstart, spec.ystart),
                      offset=opt.offsets.get(optical_elements(spec)))
    ap = optics.aperture(det.detector)
    fwhm = 2.0 if det.is_miri else 1.6
    rate, _ = sim_sky.render(sky, wcs, (ysize, xsize),
                             photmjsr=optics.photmjsr(det.instrument,
                                                      passband(*optical_elements(spec))),
                             pixar_sr=opt.pixar_sr, area=window.cut(opt.area),
                             background_mjysr=0.3 if det.is_miri else 0.1,
                             psf_fwhm_pix=fwhm, pixel_scale_arcsec=ap.scale)
    return rate


# the synthetic EMICORR reference: which frequencies each subarray case corrects
# (FAST; SLOW per detector), waveforms of EMICORR_SAMPLES points per period
EMICORR_CASES = {"FULL_FAST": ["Hz10"], "FULL_SLOW": ["Hz10"], "SUB256": ["Hz390", "Hz218a"],
                 "MASK1550": ["Hz390", "Hz10"], "MASK1140": ["Hz390", "Hz10"],
                 "MASK1065": ["Hz390", "Hz10"], "BRIGHTSKY": ["Hz390"], "SUB128": ["Hz390"],
                 "SUB64": ["Hz390"], "SLITLESSPRISM": ["Hz390"], "MASKLYOT": ["Hz390"]}
EMICORR_SAMPLES = 128


def emicorr_waveform(n=EMICORR_SAMPLES):
    """A unit sine over one period, sample k at phase (k + 0.5) / n (where jwst's
    emicorr places the reference's samples)."""
    return np.sin(2 * np.pi * (np.arange(n) + 0.5) / n).astype(np.float32)


def write_emicorr_reference(refs):
    """The MIRI EMICORR reference in the official ASDF layout (stdatamodels EmiModel:
    ``frequencies`` {name: {frequency, phase_amplitudes}}, ``subarray_cases``
    {case: {rowclocks, frameclocks, freqs: {FAST: [...], SLOW: {detector: [...]}}}}),
    selected by date only, as the real CRDS rmap does."""
    from stdatamodels.jwst.datamodels import EmiModel  # noqa: PLC0415

    from webbflow.sim.readout import MIRI_EMI_FREQUENCIES  # noqa: PLC0415
    from webbflow.steps.emicorr import SUBARRAY_CLOCKS  # noqa: PLC0415

    model = EmiModel()
    model.frequencies = {name: {"frequency": hz, "phase_amplitudes": emicorr_waveform()}
                         for name, hz in MIRI_EMI_FREQUENCIES.items()}
    cases = {}
    for case, names in EMICORR_CASES.items():
        rowclocks, frameclocks = SUBARRAY_CLOCKS[case]
        freqs = {"SLOW": {d: list(names) for d in ("MIRIMAGE", "MIRIFULONG", "MIRIFUSHORT")}}
        if case != "FULL_SLOW":
            freqs["FAST"] = list(names)
        cases[case] = {"rowclocks": rowclocks, "frameclocks": frameclocks, "freqs": freqs}
    model.subarray_cases = cases
    model.meta.instrument.name = "MIRI"
    model.meta.description = "synthetic EMI correction waveforms"
    return refs.write_asdf("MIRI", "emicorr", model)


def _emi_model(spec, meta):
    """The EMI a MIRI exposure's ``emi`` option asks for, on the clocks of its subarray
    case (the sequence jwst's emicorr phases against)."""
    from webbflow.sim.readout import MIRI_EMI_FREQUENCIES, MIRI_NSAMPLES  # noqa: PLC0415
    from webbflow.steps.emicorr import SUBARRAY_CLOCKS  # noqa: PLC0415

    if spec.instrument != "MIRI":
        raise ValueError("EMI is simulated for MIRI only")
    speed = "SLOW" if "SLOW" in spec.readpatt else "FAST"
    case = f"FULL_{speed}" if spec.subarray == "FULL" else spec.subarray
    if case not in SUBARRAY_CLOCKS:
        raise ValueError(f"no EMI clocks for subarray {spec.subarray}")
    rowclocks, frameclocks = SUBARRAY_CLOCKS[case]
    return {"waves": [(MIRI_EMI_FREQUENCIES[name], float(amp), float(phase))
                      for name, amp, phase in spec.emi],
            "rowclocks": rowclocks, "frameclocks": frameclocks,
            "nsamples": MIRI_NSAMPLES[spec.readpatt],
            "r1": spec.readpatt in ("FASTR1", "SLOWR1")}


def _simulate_exposure(outdir, spec, det, cosmic_ray_rate, opt=None, sky=None):
    rng = np.random.default_rng(spec.seed)
    meta = exposure_meta(spec, det.fastaxis, det.slowaxis)
    xsize, ysize = spec.size
    if spec.scene.get("sky"):
        rate, sources = _sky_rate(spec, meta, det, opt, sky), None
    else:
        scene = dict(n_stars=max(5, xsize * ysize // 2000),
                     n_galaxies=max(2, xsize * ysize // 5000),
                     background=0.5 if det.is_miri else 0.3, n_saturating=2,
                     saturation_peak_rate=40000.0 / max(meta["exposure"]["integration_time"],
                                                        1e-3))
        scene.update(spec.scene)
        rate, sources = make_scene(rng, ysize, xsize, **scene)
    if opt is not None:
        # the pixel response (the FLAT reference): dead-in-the-flat pixels see nothing
        window = _Window(spec.xstart, spec.ystart, xsize, ysize)
        rate = rate * np.nan_to_num(window.cut(opt.flat), nan=0.0)
    nframes, groupgap = spec.nframes_groupgap
    sci, zeroframe, truth = sim_detector.simulate_exposure(
        rng, rate, det, xstart=spec.xstart, ystart=spec.ystart, xsize=xsize, ysize=ysize,
        nints=spec.nints, ngroups=spec.ngroups, nframes=nframes, groupgap=groupgap,
        frame_time=meta["exposure"]["frame_time"], cosmic_ray_rate=cosmic_ray_rate,
        include_ipc=True, miri_reset_anomaly=det.is_miri, flicker_noise=spec.flicker_noise,
        flicker_amp_fraction=spec.flicker_amp_fraction, noutputs=spec.outputs,
        emi=_emi_model(spec, meta) if spec.emi else None)
    table = int_times(meta)
    paths = []
    for segment, first, last in spec.segment_ranges():
        seg_meta = copy.deepcopy(meta)
        seg_meta["exposure"].update(integration_start=first, integration_end=last)
        if segment is not None:
            seg_meta["exposure"].update(segment_number=segment, segment_total=spec.segments)
        rows = slice(first - 1, last)
        arrays = {"data": sci[rows]}
        if spec.zeroframe:
            arrays["zeroframe"] = zeroframe[rows]
        product = Product("Level1bModel", meta=seg_meta, arrays=arrays,
                          tables={"int_times": table[rows]})
        name = spec.segment_basename(segment)
        path = write_product(outdir / f"{name}_uncal.fits", product)
        seg_truth = dict(truth)
        if truth.get("cosmic_rays") is not None:
            crs = truth["cosmic_rays"]
            seg_truth["cosmic_rays"] = crs[(crs["int"] >= first - 1) & (crs["int"] < last)]
        write_truth(outdir / "truth" / f"{name}_truth.fits", seg_truth, sources)
        log.info("wrote %s", path)
        paths.append(path)
    return paths


def redeliver(cache_root, instrument, reftype, *, detector, scale=1.01, context_number=2):
    """A new context in which one detector's ``reftype`` file is replaced by a copy with
    its SCI scaled by ``scale``, as when an instrument team delivers a new calibration.
    Everything else keeps its file, so only exposures using that reference change."""
    from webbflow.io import read_product  # noqa: PLC0415

    cache_root = Path(cache_root)
    entries = read_rules(cache_root, context_number - 1)
    replaced = {}
    out = []
    for entry in entries:
        if (entry.instrument, entry.reftype) == (instrument, reftype) and \
                entry.match.get("META.INSTRUMENT.DETECTOR") == detector:
            if entry.filename not in replaced:
                old = read_product(references_dir(cache_root, instrument) / entry.filename,
                                   require=())
                old.meta["description"] = f"redelivered {reftype} (x{scale})"
                for name in list(old.arrays):
                    if name in ("data", "coeffs"):
                        old[name] = (old[name] * np.float32(scale)).astype(np.float32)
                new_name = entry.filename.replace(".fits", f"_c{context_number:04d}.fits")
                write_product(references_dir(cache_root, instrument) / new_name, old)
                old.close()
                replaced[entry.filename] = new_name
            entry = RuleEntry(entry.instrument, entry.reftype, replaced[entry.filename],
                              entry.match, entry.useafter)
        out.append(entry)
    if not replaced:
        raise ValueError(f"no {instrument} {reftype} reference for {detector} to redeliver")
    return write_cache(cache_root, out, context_number=context_number)
