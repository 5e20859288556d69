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
from webbflow.sim.program import exposure_meta, int_times
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


def _ref_meta(det, window, full):
    sub = {"name": "FULL" if full else "GENERIC", "xstart": window.xstart,
           "ystart": window.ystart, "xsize": window.xsize, "ysize": window.ysize,
           "fastaxis": det.fastaxis, "slowaxis": det.slowaxis}
    return {"instrument": {"name": det.instrument, "detector": det.detector}, "subarray": sub}


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


def simulate_program(outdir, specs, *, seed=0, cosmic_ray_rate=1.5e-5, context_number=1):
    """Simulate ``specs`` into ``outdir``; returns the CRDS context written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cache = outdir / "crds_cache"
    refs = ReferenceWriter(cache)
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
        for spec in dspecs:
            _simulate_exposure(outdir, spec, det, cosmic_ray_rate)
        del det
    return write_cache(cache, refs.entries, context_number=context_number)


def _simulate_exposure(outdir, spec, det, cosmic_ray_rate):
    rng = np.random.default_rng(spec.seed)
    meta = exposure_meta(spec, det.fastaxis, det.slowaxis)
    xsize, ysize = spec.size
    scene = dict(n_stars=max(5, xsize * ysize // 2000), n_galaxies=max(2, xsize * ysize // 5000),
                 background=0.5 if det.is_miri else 0.3, n_saturating=2,
                 saturation_peak_rate=40000.0 / max(meta["exposure"]["integration_time"], 1e-3))
    scene.update(spec.scene)
    rate, sources = make_scene(rng, ysize, xsize, **scene)
    nframes, groupgap = spec.nframes_groupgap
    sci, zeroframe, truth = sim_detector.simulate_exposure(
        rng, rate, det, xstart=spec.xstart, ystart=spec.ystart, xsize=xsize, ysize=ysize,
        nints=spec.nints, ngroups=spec.ngroups, nframes=nframes, groupgap=groupgap,
        frame_time=meta["exposure"]["frame_time"], cosmic_ray_rate=cosmic_ray_rate,
        include_ipc=True, miri_reset_anomaly=det.is_miri)
    table = int_times(meta)
    paths = []
    for segment, first, last in spec.segment_ranges():
        seg_meta = copy.deepcopy(meta)
        seg_meta["exposure"].update(integration_start=first, integration_end=last)
        if segment is not None:
            seg_meta["exposure"].update(segment_number=segment, segment_total=spec.segments)
        rows = slice(first - 1, last)
        product = Product("Level1bModel", meta=seg_meta, arrays={"data": sci[rows]},
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
