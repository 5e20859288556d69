"""Synthetic programs: which exposures to take, and their complete level-1b metadata.

Pure functions: an :class:`ExposureSpec` says what the observatory does; ``exposure_meta``
turns it into the ``meta`` tree a MAST ``uncal`` file carries. Writing is done by
``webbflow.sim.observatory``.
"""

from dataclasses import dataclass, field, replace

import numpy as np
import astropy.units as u
from astropy.time import Time

from webbflow.sim import optics, readout

# channel/module/pupil facts a NIRCam detector name implies
NIRCAM_DETECTORS = {
    "NRCA1": ("SHORT", "A"), "NRCA2": ("SHORT", "A"), "NRCA3": ("SHORT", "A"),
    "NRCA4": ("SHORT", "A"), "NRCALONG": ("LONG", "A"), "NRCB1": ("SHORT", "B"),
    "NRCB2": ("SHORT", "B"), "NRCB3": ("SHORT", "B"), "NRCB4": ("SHORT", "B"),
    "NRCBLONG": ("LONG", "B"),
}


def _base36(value, width):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out.rjust(width, "0")


def frame_time(instrument, subarray, xsize, ysize, noutputs, readpatt):
    """Frame time in seconds: the documented value where one is known
    (``webbflow.sim.readout``), else the near-IR clocking formula; other MIRI subarrays
    scale the full FAST frame by the pixels read (a synthetic stand-in)."""
    try:
        return readout.frame_time(instrument, subarray, readpatt)
    except KeyError:
        pass
    if instrument != "MIRI":
        return readout.nircam_frame_time(xsize, ysize, noutputs)
    full = readout.frame_time("MIRI", "FULL", readpatt)
    return round(full * max(xsize * ysize / (1032 * 1024), 0.085 / 2.775), 5)


@dataclass(frozen=True)
class ExposureSpec:
    instrument: str
    detector: str
    exp_type: str
    filter: str | None      # None: FGS (no filter wheel)
    readpatt: str
    ngroups: int
    nints: int
    subarray: str = "FULL"
    xstart: int = 1
    ystart: int = 1
    xsize: int | None = None
    ysize: int | None = None
    pupil: str | None = None
    noutputs: int | None = None
    program: str = "01234"
    observation: int = 1
    visit: int = 1
    visit_group: int = 2
    sequence: int = 1
    activity: int = 1
    exposure: int = 1
    tso: bool = False
    segments: int = 1
    target_ra: float = 53.16
    target_dec: float = -27.78
    dither_arcsec: tuple = (0.0, 0.0)
    # where the telescope really pointed, relative to the header (arcsec in RA, Dec; deg)
    pointing_error_arcsec: tuple = (0.0, 0.0)
    roll_error_deg: float = 0.0
    start: str = "2023-01-10T03:00:00"
    # a dedicated background pointing (BKGDTARG = T): level-2 associations give it to the
    # science exposures of the same configuration as a background member
    background_target: bool = False
    # point with the subarray's own aperture (V2_REF/V3_REF at the subarray centre, as
    # the SIAF subarray apertures do) rather than the full-frame detector's
    subarray_aperture: bool = False
    # 1/f (flicker) noise: rms raw DN per read frame (0: none, the default) and the share
    # of its variance independent per amplifier (webbflow.sim.detector.flicker_frame)
    flicker_noise: float = 0.0
    flicker_amp_fraction: float = 0.25
    # write the ZEROFRAME extension (each integration's first read frame), as NIRCam and
    # NIRISS deliver it (off by default)
    zeroframe: bool = False
    # MIRI EMI: ((name in readout.MIRI_EMI_FREQUENCIES, amplitude in raw DN, phase in
    # cycles at the exposure's first pixel), ...); () adds none (the default)
    emi: tuple = ()
    seed: int = 1
    scene: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def full_shape(self):
        return (1024, 1032) if self.instrument == "MIRI" else (2048, 2048)

    @property
    def size(self):
        ny, nx = self.full_shape
        return (self.xsize or nx, self.ysize or ny)

    @property
    def outputs(self):
        if self.noutputs:
            return self.noutputs
        xsize, _ = self.size
        return 4 if (self.instrument != "MIRI" and xsize == 2048) else 1

    @property
    def nframes_groupgap(self):
        pattern = readout.READ_PATTERNS[(self.instrument, self.readpatt)]
        return pattern.nframes, pattern.groupgap

    @property
    def frame_time(self):
        xsize, ysize = self.size
        return frame_time(self.instrument, self.subarray, xsize, ysize, self.outputs,
                          self.readpatt)

    @property
    def basename(self):
        return self.segment_basename(None)

    def segment_basename(self, segment):
        """MAST name without suffix; ``segment`` (1-based) adds ``-segNNN``."""
        seg = "" if segment is None else f"-seg{segment:03d}"
        return (f"jw{self.program}{self.observation:03d}{self.visit:03d}_"
                f"{self.visit_group:02d}{self.sequence}{_base36(self.activity, 2)}_"
                f"{self.exposure:05d}{seg}_{self.detector.lower()}")

    def segment_ranges(self):
        """(segment number, first int, last int), 1-based and inclusive, as EXSEGNUM,
        INTSTART and INTEND give them; one entry of (None, 1, nints) if unsegmented."""
        if self.segments <= 1:
            return [(None, 1, self.nints)]
        edges = np.linspace(0, self.nints, self.segments + 1).round().astype(int)
        return [(k + 1, int(edges[k]) + 1, int(edges[k + 1])) for k in range(self.segments)]


DEFAULT_PUPIL = {"NIRCAM": "CLEAR", "NIRISS": "CLEARP"}


def optical_elements(spec):
    """(FILTER, PUPIL) of an exposure as its header gives them; None where the instrument
    has no such wheel (MIRI: no pupil; FGS: neither)."""
    return spec.filter, spec.pupil or DEFAULT_PUPIL.get(spec.instrument)


def passband(filter_name, pupil):
    """The element that defines the bandpass: the filter, or the pupil-wheel filter
    behind a CLEAR filter wheel (NIRISS F090W..F200W sit in the pupil wheel), "CLEAR"
    for FGS (no filter at all)."""
    if filter_name not in (None, "CLEAR"):
        return filter_name
    return pupil if pupil not in (None, "CLEAR", "CLEARP") else "CLEAR"


def exposure_meta(spec, fastaxis, slowaxis):
    """The level-1b ``meta`` tree of one exposure, as MAST delivers it."""
    nframes, groupgap = spec.nframes_groupgap
    xsize, ysize = spec.size
    tframe = spec.frame_time
    tgroup = round((nframes + groupgap) * tframe, 5)
    frames_per_int = spec.ngroups * nframes + (spec.ngroups - 1) * groupgap
    integration_time = frames_per_int * tframe
    # one reset frame between integrations
    duration = spec.nints * (integration_time + tframe)
    start = Time(spec.start, scale="utc")
    end = start + duration * u.s
    mid = start + duration / 2 * u.s

    instrument = {"name": spec.instrument, "detector": spec.detector}
    if spec.filter is not None:  # FGS has no filter wheel: its headers carry no FILTER
        instrument["filter"] = spec.filter
    if spec.instrument == "NIRCAM":
        channel, module = NIRCAM_DETECTORS[spec.detector]
        instrument.update(channel=channel, module=module)
    if optical_elements(spec)[1] is not None:
        instrument["pupil"] = optical_elements(spec)[1]
    exposure = {
        "type": spec.exp_type, "readpatt": spec.readpatt, "nints": spec.nints,
        "ngroups": spec.ngroups, "nframes": nframes, "groupgap": groupgap,
        "frame_time": tframe, "group_time": tgroup, "frame_divisor": nframes,
        "nresets_at_start": 1, "nresets_between_ints": 1, "drop_frames1": 0,
        "drop_frames3": 0, "integration_time": round(integration_time, 5),
        "exposure_time": round(integration_time * spec.nints, 5),
        "duration": round(duration, 5), "start_time": start.mjd, "mid_time": mid.mjd,
        "end_time": end.mjd, "zero_frame": bool(spec.zeroframe), "noutputs": spec.outputs,
        "measurement_time": round((spec.ngroups - 1) * tgroup * spec.nints, 5),
        "effective_exposure_time": round(integration_time * spec.nints, 5),
        "elapsed_exposure_time": round(integration_time * spec.nints, 5),
        "count": 1, "integration_start": 1, "integration_end": spec.nints,
    }
    if spec.instrument == "MIRI":
        exposure.update(miri_fsw_nframes=1, miri_fsw_ngroups=spec.ngroups,
                        nsamples=readout.MIRI_NSAMPLES.get(spec.readpatt, 1))
    obs_id = (f"V{spec.program}{spec.observation:03d}{spec.visit:03d}"
              f"P{spec.visit_group:02d}{spec.sequence}{_base36(spec.activity, 2)}")
    observation = {
        "date": start.isot[:10], "time": start.isot[11:23], "date_beg": start.isot,
        "date_end": end.isot, "program_number": spec.program,
        "observation_number": f"{spec.observation:03d}", "visit_number": f"{spec.visit:03d}",
        "visit_group": f"{spec.visit_group:02d}", "sequence_id": str(spec.sequence),
        "activity_id": _base36(spec.activity, 2), "exposure_number": f"{spec.exposure:05d}",
        "obs_id": obs_id, "visit_id": f"{spec.program}{spec.observation:03d}{spec.visit:03d}",
        "observation_label": "webbflow synthetic observation",
        "bkgdtarg": spec.background_target,
    }
    dra = spec.dither_arcsec[0] / 3600.0 / np.cos(np.radians(spec.target_dec))
    ddec = spec.dither_arcsec[1] / 3600.0
    wcsinfo = {"ra_ref": spec.target_ra + dra, "dec_ref": spec.target_dec + ddec,
               "roll_ref": 90.0, "v3yangle": 0.0, "vparity": -1, "wcsaxes": 2}
    if spec.detector in optics.APERTURES:
        ap = optics.aperture(spec.detector)
        v2_ref, v3_ref = ap.v2_ref, ap.v3_ref
        if spec.subarray_aperture:
            v2_ref, v3_ref = (round(float(v), 6) for v in optics.subarray_reference(
                spec.detector, spec.full_shape, spec.xstart, spec.ystart, xsize, ysize))
        wcsinfo.update(v2_ref=v2_ref, v3_ref=v3_ref, v3yangle=ap.v3_idl_yang,
                       vparity=ap.parity)
    return {
        "telescope": "JWST",
        "origin": "webbflow synthetic observatory",
        "instrument": instrument,
        "exposure": exposure,
        "subarray": {"name": spec.subarray, "xstart": spec.xstart, "ystart": spec.ystart,
                     "xsize": xsize, "ysize": ysize, "fastaxis": fastaxis, "slowaxis": slowaxis},
        "observation": observation,
        "program": {"pi_name": "Synthetic, Observer", "title": "webbflow demo program",
                    "category": "GO"},
        "target": {"catalog_name": "SYNTHETIC-FIELD", "proposer_name": "synthetic field",
                   "ra": spec.target_ra, "dec": spec.target_dec, "type": "FIXED"},
        "visit": {"tsovisit": spec.tso, "type": "PRIME_TARGETED_FIXED",
                  "engineering_quality": "OK"},
        "pointing": {"ra_v1": spec.target_ra + dra, "dec_v1": spec.target_dec + ddec,
                     "pa_v3": 90.0},
        "wcsinfo": wcsinfo,
        "velocity_aberration": {"scale_factor": 1.0},
        "dither": {"position_number": spec.exposure, "x_offset": spec.dither_arcsec[0],
                   "y_offset": spec.dither_arcsec[1]},
    }


def true_wcsinfo(spec, meta):
    """The pointing the telescope really had: the header's plus the spec's error."""
    info = dict(meta["wcsinfo"])
    dec = info["dec_ref"]
    info["ra_ref"] += spec.pointing_error_arcsec[0] / 3600.0 / np.cos(np.radians(dec))
    info["dec_ref"] += spec.pointing_error_arcsec[1] / 3600.0
    info["roll_ref"] += spec.roll_error_deg
    return info


def int_times(meta):
    """The INT_TIMES table: start/mid/end of each integration (MJD UTC and TDB)."""
    exposure = meta["exposure"]
    nints = exposure["nints"]
    step = (exposure["integration_time"] + exposure["frame_time"]) / 86400.0
    length = exposure["integration_time"] / 86400.0
    table = np.zeros(nints, dtype=[
        ("integration_number", ">i4"), ("int_start_MJD_UTC", ">f8"), ("int_mid_MJD_UTC", ">f8"),
        ("int_end_MJD_UTC", ">f8"), ("int_start_BJD_TDB", ">f8"), ("int_mid_BJD_TDB", ">f8"),
        ("int_end_BJD_TDB", ">f8")])
    starts = exposure["start_time"] + np.arange(nints) * step
    table["integration_number"] = np.arange(1, nints + 1)
    table["int_start_MJD_UTC"] = starts
    table["int_mid_MJD_UTC"] = starts + length / 2
    table["int_end_MJD_UTC"] = starts + length
    # TDB - UTC is 69.184 s in this era; barycentric light time is left out
    for which in ("start", "mid", "end"):
        table[f"int_{which}_BJD_TDB"] = table[f"int_{which}_MJD_UTC"] + 69.184 / 86400.0
    return table


def demo_program():
    """Small, mixed, quick: every stage-1 path the project supports, in a few minutes."""
    nircam = dict(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_IMAGE", filter="F200W")
    return [
        # a dithered pair on a subarray with frame averaging and several integrations
        ExposureSpec(**nircam, readpatt="BRIGHT2", ngroups=6, nints=2, subarray="SUB320",
                     xstart=1, ystart=1, xsize=320, ysize=320, exposure=1,
                     dither_arcsec=(0.0, 0.0), seed=11),
        ExposureSpec(**nircam, readpatt="BRIGHT2", ngroups=6, nints=2, subarray="SUB320",
                     xstart=1, ystart=1, xsize=320, ysize=320, exposure=2,
                     dither_arcsec=(0.5, 0.3), seed=12),
        # frame-averaged pattern with a group gap
        ExposureSpec(**nircam, readpatt="SHALLOW4", ngroups=4, nints=1, subarray="SUB320",
                     xstart=1, ystart=1, xsize=320, ysize=320, exposure=3, seed=13),
        # NIRISS imaging, a 3-group ramp and a 2-group ramp
        ExposureSpec(instrument="NIRISS", detector="NIS", exp_type="NIS_IMAGE", filter="F150W",
                     readpatt="NISRAPID", ngroups=3, nints=1, subarray="SUB256",
                     xstart=1793, ystart=1793, xsize=256, ysize=256, observation=2, seed=21),
        ExposureSpec(instrument="NIRISS", detector="NIS", exp_type="NIS_IMAGE", filter="F150W",
                     readpatt="NISRAPID", ngroups=2, nints=1, subarray="SUB256",
                     xstart=1793, ystart=1793, xsize=256, ysize=256, observation=2, exposure=2,
                     seed=22),
        # a 1-group ramp
        ExposureSpec(instrument="NIRISS", detector="NIS", exp_type="NIS_IMAGE", filter="F150W",
                     readpatt="NISRAPID", ngroups=1, nints=1, subarray="SUB256",
                     xstart=1793, ystart=1793, xsize=256, ysize=256, observation=2, exposure=3,
                     seed=23),
        # MIRI imaging with several integrations (RSCD and RESET)
        ExposureSpec(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                     filter="F770W", readpatt="FAST", ngroups=10, nints=2, subarray="SUB256",
                     xstart=413, ystart=51, xsize=256, ysize=256, observation=3, seed=31),
        # time series: many integrations (the sigma-clip jump path), in two segments
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_TSIMAGE",
                     filter="F210M", readpatt="RAPID", ngroups=5, nints=200, segments=2,
                     subarray="SUB64P", xstart=1, ystart=1, xsize=64, ysize=64, tso=True,
                     observation=4, seed=41),
    ]


def fullframe_program():
    """Benchmark sizes: NIRCam full frame, MIRI full frame, a TSO cube."""
    return [
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_IMAGE",
                     filter="F200W", readpatt="RAPID", ngroups=10, nints=1, seed=101),
        ExposureSpec(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                     filter="F770W", readpatt="FAST", ngroups=50, nints=2, observation=2,
                     seed=102),
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_TSIMAGE",
                     filter="F210M", readpatt="RAPID", ngroups=45, nints=50, subarray="GENERIC",
                     xstart=1, ystart=1, xsize=512, ysize=512, tso=True, observation=3,
                     seed=103),
    ]


IMAGING_EXP_TYPES = ("NRC_IMAGE", "NIS_IMAGE", "MIR_IMAGE", "FGS_IMAGE")

# a 4-point dither (arcsec) and the small pointing errors tweakreg has to find
DITHER_4 = ((0.0, 0.0), (2.1, 1.3), (-1.7, 2.4), (1.2, -2.2))
POINTING_ERRORS_4 = ((0.0, 0.0), (0.045, -0.03), (-0.035, 0.05), (0.03, 0.04))


def imaging_program(size=512, ngroups=4, sky=True):
    """Dithered imaging of one sky field, for stages 2 and 3: four NIRCam exposures
    (``size`` x ``size`` subarray, or full frame for ``size=2048``) and a MIRI pair.
    ``sky``: True, or a dict of ``make_sky`` overrides (source counts, flux range)."""
    full = size >= 2048
    nircam = dict(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_IMAGE",
                  filter="F200W", readpatt="RAPID", ngroups=ngroups, nints=1,
                  subarray="FULL" if full else "GENERIC", xstart=1, ystart=1,
                  xsize=None if full else size, ysize=None if full else size,
                  observation=5, scene={"sky": sky})
    specs = [ExposureSpec(**nircam, exposure=k + 1, dither_arcsec=DITHER_4[k],
                          pointing_error_arcsec=POINTING_ERRORS_4[k],
                          roll_error_deg=0.002 * k, seed=501 + k) for k in range(4)]
    if not full:
        miri = dict(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                    filter="F770W", readpatt="FAST", ngroups=ngroups + 2, nints=1,
                    subarray="SUB256", xstart=413, ystart=51, xsize=256, ysize=256,
                    observation=6, scene={"sky": sky})
        specs += [ExposureSpec(**miri, exposure=k + 1, dither_arcsec=DITHER_4[k],
                               pointing_error_arcsec=POINTING_ERRORS_4[k], seed=601 + k)
                  for k in range(2)]
    return specs


# a star field dense enough for tweakreg's defaults (minobj 15 matches after the 1"
# separation thinning) on the 512x512 NIRCam exposures: about 0.2 stars per arcsec^2 in
# a disc reaching NRCA1 (40" from the target), all well above the detection threshold
STAR_FIELD = {"n_stars": 2300, "n_galaxies": 80, "flux_range_jy": (1e-6, 1e-4),
              "radius_arcsec": 60.0}


def imaging_starfield_program():
    """The four dithered NIRCam exposures of ``imaging_program`` on a dense star field
    (tweakreg's test input)."""
    return imaging_program(sky=STAR_FIELD)[:4]


def imaging_background_program():
    """MIRI imaging with dedicated background exposures (bkg_subtract's input): a
    dithered pair on the field and, as observation 7, a pair of background-target
    exposures 150" away, where the sky holds no sources, only the zodiacal level."""
    miri = dict(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                filter="F770W", readpatt="FAST", ngroups=6, nints=1, subarray="SUB256",
                xstart=413, ystart=51, xsize=256, ysize=256, scene={"sky": True})
    science = [ExposureSpec(**miri, observation=6, exposure=k + 1,
                            dither_arcsec=DITHER_4[k], seed=701 + k) for k in range(2)]
    backgrounds = [ExposureSpec(**miri, observation=7, exposure=k + 1,
                                dither_arcsec=(150.0 + DITHER_4[k][0], DITHER_4[k][1]),
                                background_target=True, seed=711 + k) for k in range(2)]
    return science + backgrounds


# the field of imaging_nis_fgs_program: 0.05 sources per arcsec^2 in a disc of 60"
# (inside the FGS full frame, 141" on a side), ~55 on the 512x512 NIRISS subarray
# (33.6" on a side): enough for tweakreg's 15 matches there; all well above the
# detection threshold, none saturating in either
NIS_FGS_FIELD = {"n_stars": 530, "n_galaxies": 40, "flux_range_jy": (2e-6, 5e-5),
                 "radius_arcsec": 60.0}


def imaging_nis_fgs_program():
    """Dithered NIRISS and FGS imaging of one sky field, for stages 2 and 3: four NIRISS
    exposures (FILTER CLEAR, PUPIL F150W: NIRISS's short-wavelength filters sit in the
    pupil wheel behind a clear filter wheel; a 512x512 subarray in the corner where the
    NIRISS imaging subarrays SUB64..SUB256 sit, so that it has reference pixels, pointed
    with its own aperture)
    and a pair of full-frame FGS exposures on GUIDER2 (FGS_IMAGE has no filter or pupil
    wheel; FGSRAPID, one frame a group), with the small pointing errors of
    ``imaging_program``."""
    niriss = dict(instrument="NIRISS", detector="NIS", exp_type="NIS_IMAGE", filter="CLEAR",
                  pupil="F150W", readpatt="NISRAPID", ngroups=6, nints=1,
                  subarray="GENERIC", xstart=1537, ystart=1537, xsize=512, ysize=512,
                  observation=8, subarray_aperture=True, scene={"sky": NIS_FGS_FIELD})
    specs = [ExposureSpec(**niriss, exposure=k + 1, dither_arcsec=DITHER_4[k],
                          pointing_error_arcsec=POINTING_ERRORS_4[k],
                          roll_error_deg=0.002 * k, seed=801 + k) for k in range(4)]
    fgs = dict(instrument="FGS", detector="GUIDER2", exp_type="FGS_IMAGE", filter=None,
               readpatt="FGSRAPID", ngroups=4, nints=1, observation=9,
               scene={"sky": NIS_FGS_FIELD})
    specs += [ExposureSpec(**fgs, exposure=k + 1, dither_arcsec=DITHER_4[k],
                           pointing_error_arcsec=POINTING_ERRORS_4[k], seed=901 + k)
              for k in range(2)]
    return specs


def imaging_fullframe_program():
    return imaging_program(size=2048, ngroups=6)


PROGRAMS = {"demo": demo_program, "fullframe": fullframe_program,
            "imaging": imaging_program, "imaging-starfield": imaging_starfield_program,
            "imaging-fullframe": imaging_fullframe_program,
            "imaging-background": imaging_background_program,
            "imaging-nis-fgs": imaging_nis_fgs_program}


def with_seed(spec, seed):
    return replace(spec, seed=seed)
