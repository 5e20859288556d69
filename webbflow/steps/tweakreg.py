"""tweakreg for calwebb_image3: relative alignment of the exposures of an association,
then optionally their alignment to an absolute reference catalog.

What the official step (jwst 3.0 ``TweakRegStep`` on stcal/tweakwcs) does, and this does:

1. A catalog per member: point sources found in the cal image (photutils
   IRAFStarFinder by default, on the image minus a Background2D background, threshold
   ``snr_threshold`` x the median background RMS, the ``brightest`` kept), or a user
   catalog; sources outside the WCS bounding box are dropped.
2. Members are grouped by exposure (all detectors of one exposure move together); each
   group's sources go to the sky through the members' WCS.
3. The first group is the reference (the official order whenever ``expand_refcat`` is
   off, the default); each other group, in association order, is projected with the
   reference sources onto the tangent plane of its first member (V2/V3 about V2_REF,
   V3_REF, rotated by ROLL_REF), matched (2-D histogram offset, then xyxymatch with
   ``separation`` and ``tolerance``) and fitted (``fitgeometry``, clipped); below
   ``minobj`` matches the group stays where it is. With ``expand_refcat`` each aligned
   group's unmatched sources join the reference sources and, unless
   ``enforce_user_order``, the groups go in order of sky overlap (tweakreg_overlap.py:
   the pair overlapping most starts, then the group overlapping the reference sources'
   hull most).
4. The fit becomes an affine correction in each member's own tangent plane, inserted
   into its gwcs between the ``v2v3vacorr`` frame and the sky as a new ``v2v3corr`` frame
   (the official transform, with the official sub-model names, so the official tools
   read and extend it), then S_REGION and the SIP approximation are refreshed.
5. With ``abs_refcat`` (a catalog file; stcal ``absolute_align``): the relative
   alignment runs with ``expand_refcat`` forced on, then all members, as one group
   (official id 987654, sources through their relatively corrected WCS), are matched
   and fitted to the catalog in the first member's tangent plane with the ``abs_*``
   options (no initial offset without the histogram; clipped points re-enter each round,
   the official ``clip_accum=False``); the corrections compound, and a corrected WCS is
   named ``FIT-LVL3-<abs_refcat>``.

Fallbacks as officially: one group, fewer than two groups with sources, source confusion
in matching, or a correction larger than 2 x (searchrad + tolerance) -> no member
changes and the step is recorded FAILED (jwst 3.0's ``record_step_status(success=False)``)
with a warning. With ``abs_refcat`` such a relative
failure only logs the warning and the absolute alignment goes on from the WCS as they
are (with a relative correction found too large, as officially); the absolute fallbacks
(``abs_separation`` <= sqrt(2) x ``abs_tolerance``, fewer than ``abs_minobj`` catalog
rows, no sources at all, source confusion) leave every WCS as it came in (the relative
corrections too) and the step FAILED; fewer than ``abs_minobj`` matches leave every WCS
as it came in with the step COMPLETE. Online catalog names (GAIADR3 ...) raise.
"""

import copy
import logging
import warnings
from pathlib import Path

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.io import read_product
from webbflow.planning import ONLINE_REFCATS
from webbflow.pipelines.resample import group_id
from webbflow.steps.assign_wcs import _sip_options, _update_fits_wcsinfo, s_region
from webbflow.steps.tweakreg_match import (FIT_MIN_POINTS, MatchConfusionError,
                                           estimate_shift_2dhist, fit_linear, xyxymatch)
from webbflow.steps.tweakreg_overlap import (image_polygon, max_overlap_image,
                                             max_overlap_pair, refcat_polygon)

log = logging.getLogger("webbflow.tweakreg")

__all__ = ["tweakreg", "find_sources", "apply_correction", "TangentPlane", "DEFAULTS"]

ARCSEC_PER_RAD = 3600.0 * np.rad2deg(1.0)
CORRECTOR_NAME = "JWST tangent-plane linear correction. v1"

# the official spec defaults (jwst 3.0 TweakRegStep)
DEFAULTS = dict(
    save_catalogs=False, use_custom_catalogs=False, catfile="", starfinder="iraf",
    snr_threshold=10.0, kernel_fwhm=2.5, bkg_boxsize=400, minsep_fwhm=0.0, sigma_radius=1.5,
    sharplo=0.5, sharphi=2.0, roundlo=0.0, roundhi=0.2, brightest=200, peakmax=None,
    npixels=10, connectivity=8, nlevels=32, contrast=0.001, multithresh_mode="exponential",
    localbkg_width=0, apermask_method="correct", kron_params=None, deblend=True,
    enforce_user_order=False, expand_refcat=False, minobj=15, fitgeometry="rshift", nclip=3,
    sigma=3.0, searchrad=2.0, use2dhist=True, separation=1.0, tolerance=0.7, xoffset=0.0,
    yoffset=0.0, abs_refcat="", save_abs_catalog=False, abs_minobj=15,
    abs_fitgeometry="rshift", abs_nclip=3, abs_sigma=3.0, abs_searchrad=6.0,
    abs_use2dhist=True, abs_separation=1.0, abs_tolerance=0.7, sip_approx=True,
    sip_max_pix_error=0.01, sip_degree=None, sip_max_inv_pix_error=0.01, sip_inv_degree=None,
    sip_npoints=12,
)


class _Skip(Exception):
    """An official reason to leave every WCS as it is (logged as a warning)."""


def tweakreg(cal_paths, metas, options, dqflags, *, catalogs=None):
    """Align the members' WCS to each other.

    ``metas``: each member's meta dict with ``meta['wcs']`` (gwcs) and ``meta['wcsinfo']``;
    updated in place (corrected gwcs, S_REGION, SIP keywords, ``cal_step.tweakreg``).
    The members' arrays are read from ``cal_paths`` one at a time. ``catalogs``: optional
    {cal file name: user catalog path or None} (the association's ``tweakreg_catalog``
    entries), used when ``use_custom_catalogs``.

    Returns one dict per member: ``catalog`` (x, y arrays), ``status`` ('REFERENCE',
    'SUCCESS', 'FAILED: ...' or 'SKIPPED') and ``fit`` (when fitted).
    """
    opts = {**DEFAULTS, **{k: v for k, v in (options or {}).items() if k != "skip"}}
    if opts["save_catalogs"]:
        raise WebbflowError(cal_paths[0], "tweakreg save_catalogs is not implemented")
    abs_refcat = str(opts.get("abs_refcat") or "").strip()
    refcat = None
    if abs_refcat:
        refcat = read_refcat(resolve_refcat(abs_refcat, cal_paths))
        # as officially: no duplicate sources in the absolute fit
        opts["expand_refcat"] = True
    results = [{"status": "SKIPPED", "catalog": None} for _ in cal_paths]
    groups = [group_id(m) for m in metas]
    if len(set(groups)) == 1 and refcat is None:
        log.warning("At least two exposures are required for image alignment; "
                    "skipping tweakreg")
        return _finish(metas, results, "FAILED")

    user = _user_catalogs(cal_paths, opts, catalogs)
    members = []
    for path, meta, group in zip(cal_paths, metas, groups):
        name = Path(path).name
        if user.get(name):
            x, y, weight = read_catalog(user[name])
            log.info("%s: user catalog %s", name, user[name])
        else:
            with read_product(path, require=("data", "dq")) as cal:
                data, dq = cal["data"], cal["dq"]
                data = np.array(data, dtype=data.dtype.newbyteorder("="))
                dq = np.array(dq, dtype=dq.dtype.newbyteorder("="))
            x, y, _ = find_sources(data, dq, opts, dqflags)
            weight = None
            del data, dq
        (xlo, xhi), (ylo, yhi) = _bounding_box(meta["wcs"])
        inside = (x > xlo) & (x < xhi) & (y > ylo) & (y < yhi)
        x, y = x[inside], y[inside]
        weight = None if weight is None else weight[inside]
        if x.size:
            log.info("Detected %d sources in %s", x.size, name)
        else:
            log.warning("No sources found in %s", name)
        members.append(_Member(name, meta, group, x, y, weight))
    for result, member in zip(results, members):
        result["catalog"] = {"x": member.x, "y": member.y}

    relative_failed = True
    if len(set(groups)) > 1:
        try:
            _relative_align(members, opts)
            _check_small(members, opts)
            relative_failed = False
        except _Skip as exc:
            # as officially, an absolute alignment goes on from the WCS as they are now
            # (a relative correction found too large included)
            log.warning("%s", exc)
    if refcat is not None:
        log.info("Aligning to absolute reference catalog: %s", abs_refcat)
        try:
            _absolute_align(members, refcat, opts)
        except _Skip as exc:
            log.warning("%s", exc)
            return _finish(metas, results, "FAILED")
    elif relative_failed:
        return _finish(metas, results, "FAILED")

    sip = _sip_options(opts)
    for member, result in zip(members, results):
        result["status"] = member.status
        result["fit"] = member.fit
        if member.status == "SUCCESS":
            meta = member.meta
            if refcat is not None:
                # the official record of an absolute fit (the option as given)
                member.wcs.name = f"FIT-LVL3-{opts['abs_refcat']}"
            meta["wcs"] = member.wcs
            meta["wcsinfo"]["s_region"] = s_region(member.wcs)
            if opts["sip_approx"]:
                _update_fits_wcsinfo(meta["wcsinfo"], member.wcs, member.name, sip)
    return _finish(metas, results, "COMPLETE")


def _finish(metas, results, status):
    for meta in metas:
        meta.setdefault("cal_step", {})["tweakreg"] = status
    return results


def _bounding_box(wcs):
    """((xlo, xhi), (ylo, yhi)) of the gwcs, unbounded without one."""
    bounds = wcs.pixel_bounds
    if bounds is None:
        return (-np.inf, np.inf), (-np.inf, np.inf)
    (xlo, xhi), (ylo, yhi) = bounds
    return (float(xlo), float(xhi)), (float(ylo), float(yhi))


# ---------------------------------------------------------------------------- catalogs

def _user_catalogs(cal_paths, opts, catalogs):
    """{cal file name: catalog path} for the members with a user catalog."""
    if not opts["use_custom_catalogs"]:
        return {}
    found = {}
    catfile = str(opts.get("catfile") or "").strip()
    if catfile:
        catfile = Path(catfile)
        for line in catfile.read_text().splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) > 2:
                raise WebbflowError(catfile, "a catfile line has at most two columns")
            found[fields[0]] = str(catfile.parent / fields[1]) if len(fields) == 2 else None
        if not any(found.values()):
            log.warning("use_custom_catalogs is set but %s lists no catalogs; finding "
                        "sources instead", catfile)
            return {}
    elif catalogs:
        found = dict(catalogs)
    return {Path(k).name: v for k, v in found.items() if v}


def read_catalog(path):
    """x, y (0-based pixels) and the optional weight of a user catalog (any astropy
    Table format; x/y, xcentroid/ycentroid or x_centroid/y_centroid columns)."""
    from astropy.table import Table  # noqa: PLC0415

    table = Table.read(path)
    columns = []
    for axis in ("x", "y"):
        for name in (axis, f"{axis}centroid", f"{axis}_centroid"):
            if name in table.colnames:
                columns.append(np.asarray(table[name], np.float64))
                break
        else:
            raise WebbflowError(path, f"a tweakreg catalog needs column {axis!r}, "
                                      f"'{axis}centroid' or '{axis}_centroid'")
    weight = np.asarray(table["weight"], np.float64) if "weight" in table.colnames else None
    return columns[0], columns[1], weight


ABS_GROUP_ID = 987654  # the official group of every member in the absolute fit


def resolve_refcat(abs_refcat, cal_paths):
    """The file an ``abs_refcat`` value names: an absolute path as is; a relative one in
    the working directory (as officially; in the workflow, the program directory) or,
    failing that, beside the association's first member. Online catalog names raise."""
    name = str(abs_refcat).strip()
    if name.upper() in ONLINE_REFCATS:
        raise WebbflowError(cal_paths[0], f"tweakreg abs_refcat {name!r} is an online "
                                          "astrometric catalog (needs the network); set "
                                          "image3.steps.tweakreg.abs_refcat to a catalog file")
    path = Path(name)
    if path.is_file() or path.is_absolute():
        found = path
    else:
        found = Path(cal_paths[0]).parent / path
    if not found.is_file():
        raise WebbflowError(cal_paths[0], f"tweakreg abs_refcat {name!r}: no such catalog "
                                          "file (a relative path is taken from the working "
                                          "directory, then the members' directory)")
    return found


def read_refcat(path):
    """An absolute reference catalog (any astropy Table format): {'ra', 'dec', 'weight'
    (or None), 'nrows', 'name'} with RA/DEC columns of any case or, without them, a
    ``sky_centroid`` (SkyCoord) column, as the official ``_parse_sky_centroid``."""
    from astropy.table import Table  # noqa: PLC0415

    try:
        table = Table.read(path)
    except Exception as exc:  # noqa: BLE001 (astropy raises many kinds)
        raise WebbflowError(path, f"cannot read the tweakreg abs_refcat catalog: {exc}") \
            from None
    upper = [c.upper() for c in table.colnames]
    lower = [c.lower() for c in table.colnames]
    nra, ndec, ncen = upper.count("RA"), upper.count("DEC"), lower.count("sky_centroid")
    if nra > 1 or ndec > 1:
        raise WebbflowError(path, "the absolute reference catalog has several RA and/or DEC "
                                  "columns (names are case-insensitive)")
    if nra == 1 and ndec == 1:
        if ncen:
            log.warning("Absolute reference catalog contains both RA/DEC and sky_centroid "
                        "columns. Ignoring sky_centroid.")
        ra = table[table.colnames[upper.index("RA")]]
        dec = table[table.colnames[upper.index("DEC")]]
    elif ncen > 1:
        raise WebbflowError(path, "the absolute reference catalog has several sky_centroid "
                                  "columns (names are case-insensitive)")
    elif ncen == 0:
        raise WebbflowError(path, "the absolute reference catalog has neither RA/DEC nor "
                                  "sky_centroid columns")
    else:
        coords = table[table.colnames[lower.index("sky_centroid")]]
        ra, dec = coords.ra.deg, coords.dec.deg
    ra, dec = (_filled(getattr(c, "value", c), "deg") for c in (ra, dec))
    weight = None
    if "weight" in table.colnames:
        weight = _filled(table["weight"], None)
    return {"ra": ra, "dec": dec, "weight": weight, "nrows": len(table),
            "name": Path(path).name}


def _filled(column, unit):
    """A float array with masked entries as NaN (those rows are not used)."""
    column = column.to_value(unit) if unit and hasattr(column, "to_value") and \
        getattr(column, "unit", None) is not None else column
    if np.ma.isMaskedArray(column) or hasattr(column, "mask"):
        return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
    return np.asarray(column, np.float64)


def find_sources(data, dq, options, dqflags):
    """Point sources in a cal image, as the official tweakreg catalog: x, y (0-based
    pixels) and flux, brightest first as the star finder orders them.

    The image minus its Background2D background (``bkg_boxsize`` meshes, 3x3 filter,
    3-sigma clipped medians; pixels with DO_NOT_USE or NON_SCIENCE masked) is searched
    with the chosen photutils finder at ``snr_threshold`` x the median background RMS
    (the per-pixel threshold for 'segmentation')."""
    from astropy.stats import SigmaClip  # noqa: PLC0415
    from photutils.background import Background2D, MedianBackground  # noqa: PLC0415

    opts = {**DEFAULTS, **options}
    mask = (dq & np.uint32(dqflags["NON_SCIENCE"] | dqflags["DO_NOT_USE"])) != 0
    empty = (np.zeros(0), np.zeros(0), np.zeros(0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            args = dict(filter_size=(3, 3), coverage_mask=mask, sigma_clip=SigmaClip(sigma=3.0),
                        bkg_estimator=MedianBackground())
            try:
                bkg = Background2D(data, int(opts["bkg_boxsize"]), **args)
            except ValueError:
                # the official fallback: one mesh over the whole unmasked image
                bkg = Background2D(data, data.shape, exclude_percentile=100.0, **args)
            threshold = opts["snr_threshold"] * bkg.background_rms
            image = data - bkg.background
    except ValueError as exc:
        log.warning("Error determining sky background: %s", exc)
        return empty
    finder = str(opts["starfinder"]).lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if finder in ("iraf", "irafstarfinder", "dao", "daostarfinder"):
            table = _star_finder(finder, image, float(np.median(threshold)), mask, opts)
        elif finder in ("segmentation", "sourcefinder"):
            table = _segmentation(image, threshold, mask, opts)
        else:
            raise ValueError(f"unknown starfinder {opts['starfinder']!r}")
    if table is None or len(table) == 0:
        log.warning("No sources found in the image")
        return empty
    cols = table.colnames
    x = next(table[c] for c in ("x_centroid", "xcentroid") if c in cols)
    y = next(table[c] for c in ("y_centroid", "ycentroid") if c in cols)
    flux = next(table[c] for c in ("flux", "segment_flux") if c in cols)
    return (np.asarray(x, np.float64), np.asarray(y, np.float64),
            np.asarray(getattr(flux, "value", flux), np.float64))


def _future_columns():
    try:
        from photutils import use_future_column_names  # noqa: PLC0415
        return use_future_column_names()
    except ImportError:
        import contextlib  # noqa: PLC0415
        return contextlib.nullcontext()


def _star_finder(name, image, threshold, mask, opts):
    import inspect  # noqa: PLC0415

    from photutils.detection import DAOStarFinder, IRAFStarFinder  # noqa: PLC0415

    cls = IRAFStarFinder if name.startswith("iraf") else DAOStarFinder
    wanted = dict(sigma_radius=opts["sigma_radius"],
                  min_separation=max(2, int(opts["minsep_fwhm"] * opts["kernel_fwhm"] + 0.5)),
                  sharpness_range=(opts["sharplo"], opts["sharphi"]),
                  roundness_range=(opts["roundlo"], opts["roundhi"]),
                  peak_max=opts["peakmax"], n_brightest=opts["brightest"])
    accepted = inspect.signature(cls).parameters
    if "sharpness_range" not in accepted:  # photutils 2.x names
        wanted.update(sharplo=opts["sharplo"], sharphi=opts["sharphi"],
                      roundlo=opts["roundlo"], roundhi=opts["roundhi"],
                      brightest=opts["brightest"], peakmax=opts["peakmax"])
    kwargs = {k: v for k, v in wanted.items() if k in accepted}
    with _future_columns():
        return cls(threshold, opts["kernel_fwhm"], **kwargs)(image, mask=mask)


def _segmentation(image, threshold, mask, opts):
    from astropy.convolution import Gaussian2DKernel, convolve  # noqa: PLC0415
    from astropy.stats import gaussian_fwhm_to_sigma  # noqa: PLC0415
    from photutils.segmentation import SourceCatalog, SourceFinder  # noqa: PLC0415

    convolved = image
    if opts["kernel_fwhm"] > 0:
        kernel = Gaussian2DKernel(opts["kernel_fwhm"] * gaussian_fwhm_to_sigma)
        convolved = convolve(image, kernel, mask=mask)
    finder = SourceFinder(npixels=opts["npixels"], connectivity=int(opts["connectivity"]),
                          deblend=opts["deblend"], nlevels=opts["nlevels"],
                          contrast=opts["contrast"], mode=opts["multithresh_mode"],
                          progress_bar=False)
    segments = finder(convolved, threshold, mask=mask)
    if segments is None:
        return None
    kron = opts["kron_params"] if opts["kron_params"] is not None else (2.5, 1.4, 0.0)
    with _future_columns():
        catalog = SourceCatalog(image, segments, mask=mask, convolved_data=convolved,
                                localbkg_width=opts["localbkg_width"],
                                apermask_method=opts["apermask_method"], kron_params=kron)
        names = [c for c in ("x_centroid", "y_centroid", "xcentroid", "ycentroid",
                             "segment_flux") if hasattr(catalog, c)]
        return catalog.to_table(columns=names)


# ------------------------------------------------------------------- tangent planes

def _projection_models(v2_ref, v3_ref, roll_ref):
    """V2/V3 (arcsec) -> unit vectors rotated so that (V2_REF, V3_REF) is the x axis and
    the roll is undone, and back: the pieces of the official tangent-plane corrector,
    with its sub-model names."""
    from astropy.modeling.models import RotationSequence3D, Scale  # noqa: PLC0415
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian  # noqa: PLC0415

    to_deg = Scale(1.0 / 3600.0, name="arcsec_to_deg_1D")
    to_deg = to_deg & to_deg
    to_deg.name = "arcsec_to_deg_2D"
    to_arcsec = Scale(3600.0, name="deg_to_arcsec_1D")
    to_arcsec = to_arcsec & to_arcsec
    to_arcsec.name = "deg_to_arcsec_2D"
    rot = RotationSequence3D([v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref], "zyx",
                             name="det_to_optic_axis")
    rot_inv = rot.inverse
    rot_inv.name = "optic_axis_to_det"
    return (to_deg, SphericalToCartesian(name="s2c", wrap_lon_at=180), rot, rot_inv,
            CartesianToSpherical(name="c2s", wrap_lon_at=180), to_arcsec)


def _gnomonic_models():
    """Unit vector -> (y/x, z/x) in radians, and back (x = 1)."""
    from astropy.modeling.models import Const1D, Identity, Mapping  # noqa: PLC0415

    to_plane = (Mapping((0, 1, 2), name="xyz") / Mapping((0, 0, 0), n_inputs=3, name="xxx")) \
        | Mapping((1, 2), name="xtyt")
    to_plane.name = "Cartesian 3D to TAN"
    from_plane = Mapping((0, 0, 1), n_inputs=2, name="xtyt2xyz") | \
        (Const1D(1, name="one") & Identity(2, name="I(2D)"))
    from_plane.name = "TAN to cartesian 3D"
    return to_plane, from_plane


def correction_model(v2_ref, v3_ref, roll_ref, matrix, translation_rad):
    """The official V2/V3 tangent-plane correction (v2v3vacorr -> v2v3corr, arcsec):
    project about the reference point, apply ``matrix`` and ``translation`` (radians),
    project back; with its inverse."""
    from astropy.modeling.models import AffineTransformation2D  # noqa: PLC0415

    matrix = np.asarray(matrix, np.float64)
    translation = np.asarray(translation_rad, np.float64)
    to_deg, s2c, rot, rot_inv, c2s, to_arcsec = _projection_models(v2_ref, v3_ref, roll_ref)
    to_plane, from_plane = _gnomonic_models()
    affine = AffineTransformation2D(matrix, translation, name="tp_affine")
    inv = np.linalg.inv(matrix)
    affine_inv = AffineTransformation2D(inv, -inv @ translation, name="tp_affine_inv")
    forward = to_deg | s2c | rot | to_plane | affine | from_plane | rot_inv | c2s | to_arcsec
    forward.name = CORRECTOR_NAME
    backward = to_deg | s2c | rot | to_plane | affine_inv | from_plane | rot_inv | c2s | \
        to_arcsec
    backward.name = f"Inverse {CORRECTOR_NAME}"
    forward.inverse = backward
    return forward


class TangentPlane:
    """An image's tangent plane (arcsec): its V2/V3 frame (the corrected one when the
    gwcs already holds a tweakreg correction, then through that correction's affine)
    projected about (V2_REF, V3_REF) with the roll undone, as the official corrector."""

    def __init__(self, wcs, v2_ref, v3_ref, roll_ref):
        self.wcs = wcs
        self.refs = (float(v2_ref), float(v3_ref), float(roll_ref))
        frames = wcs.available_frames
        self.corrected = "v2v3corr" in frames
        if self.corrected:
            tpcorr = wcs.pipeline[frames.index("v2v3corr") - 1].transform
            affine = tpcorr["tp_affine"]
            self.matrix = np.array(affine.matrix.value, np.float64)
            self.translation = np.array(affine.translation.value, np.float64)
            self.frame = "v2v3corr"
        else:
            self.matrix, self.translation = np.eye(2), np.zeros(2)
            self.frame = "v2v3vacorr" if "v2v3vacorr" in frames else "v2v3"
        to_deg, s2c, rot, rot_inv, c2s, to_arcsec = _projection_models(*self.refs)
        to_plane, from_plane = _gnomonic_models()
        self._project = to_deg | s2c | rot | to_plane
        self._unproject = from_plane | rot_inv | c2s | to_arcsec
        first, last = wcs.pipeline[0].frame.name, wcs.pipeline[-1].frame.name
        self._det_to_v23 = wcs.get_transform(first, self.frame)
        self._world_to_v23 = wcs.get_transform(last, self.frame)
        self._v23_to_world = wcs.get_transform(self.frame, last)
        try:
            self._v23_to_det = wcs.get_transform(self.frame, first)
        except NotImplementedError:
            self._v23_to_det = None

    def _to_plane(self, v2, v3):
        xt, yt = self._project(v2, v3)
        xy = self.matrix @ np.array([np.ravel(xt), np.ravel(yt)]) + self.translation[:, None]
        return ARCSEC_PER_RAD * xy[0], ARCSEC_PER_RAD * xy[1]

    def _from_plane(self, x, y):
        inv = np.linalg.inv(self.matrix)
        xy = inv @ (np.array([np.ravel(x), np.ravel(y)], np.float64) / ARCSEC_PER_RAD
                    - self.translation[:, None])
        return self._unproject(xy[0], xy[1])

    def det_to_world(self, x, y):
        return self.wcs(x, y)

    def det_to_tanp(self, x, y):
        return self._to_plane(*self._det_to_v23(x, y))

    def world_to_tanp(self, ra, dec):
        return self._to_plane(*self._world_to_v23(ra, dec))

    def tanp_to_world(self, x, y):
        return self._v23_to_world(*self._from_plane(x, y))

    def tanp_to_det(self, x, y):
        if self._v23_to_det is None:
            raise NotImplementedError("no V2/V3 -> detector transform")
        return self._v23_to_det(*self._from_plane(x, y))

    def pixel_scale_at(self, x, y):
        """sqrt of the area of pixel (x, y) in the plane (arcsec)."""
        xt, yt = self.det_to_tanp(np.array([x - 0.5, x - 0.5, x + 0.5, x + 0.5]),
                                  np.array([y - 0.5, y + 0.5, y + 0.5, y - 0.5]))
        area = 0.5 * abs(xt[0] * yt[1] + xt[1] * yt[2] + xt[2] * yt[3] + xt[3] * yt[0]
                         - xt[1] * yt[0] - xt[2] * yt[1] - xt[3] * yt[2] - xt[0] * yt[3])
        return float(np.sqrt(area))

    def center_pixel_scale(self):
        """The pixel scale where the plane's origin falls (1 without an inverse)."""
        try:
            x, y = self.tanp_to_det(0.0, 0.0)
        except NotImplementedError:
            return 1.0
        return self.pixel_scale_at(float(np.ravel(x)[0]), float(np.ravel(y)[0]))


def _plane_to_plane(ref, plane):
    """Local linear map (matrix, shift) from ``ref``'s tangent plane to ``plane``'s,
    about ``ref``'s origin, by finite differences one pixel wide."""
    dx = np.array([-0.5, 0.5, -0.5, 0.0])
    dy = np.array([-0.5, -0.5, 0.5, 0.0])
    if plane.wcs.pixel_bounds is None:
        xt, yt = ref.world_to_tanp(*plane.det_to_world(dx, dy))
    else:
        (xlo, xhi), (ylo, yhi) = _bounding_box(plane.wcs)
        xt, yt = ref.world_to_tanp(*plane.det_to_world((xlo + xhi) / 2 + dx,
                                                       (ylo + yhi) / 2 + dy))
    step = np.sqrt(abs(np.linalg.det(np.array([xt[1:3] - xt[0], yt[1:3] - yt[0]]))))
    xr, yr = plane.world_to_tanp(*ref.tanp_to_world(dx * step, dy * step))
    matrix = np.array([xr[1:3] - xr[0], yr[1:3] - yr[0]]) / step
    return matrix, np.array([xr[3], yr[3]])


def apply_correction(wcs, wcsinfo, matrix, shift, ref_plane=None):
    """``wcs`` with the affine (``matrix``, ``shift`` arcsec) of ``ref_plane``'s tangent
    plane (default: its own) applied in its own tangent plane, as the official
    corrector: a new ``v2v3corr`` frame, or the existing correction compounded."""
    from gwcs import WCS  # noqa: PLC0415

    plane = TangentPlane(wcs, wcsinfo["v2_ref"], wcsinfo["v3_ref"], wcsinfo["roll_ref"])
    matrix = np.asarray(matrix, np.float64)
    shift = np.asarray(shift, np.float64)
    if ref_plane is not None:
        r, t = _plane_to_plane(ref_plane, plane)
        matrix = r @ matrix @ np.linalg.inv(r)
        shift = r @ shift - matrix @ t + t
    total = matrix @ plane.matrix
    translation = matrix @ plane.translation + shift / ARCSEC_PER_RAD
    model = correction_model(*plane.refs, total, translation)
    pipeline = copy.deepcopy(wcs.pipeline)
    frames = [step.frame.name for step in pipeline]
    if plane.corrected:
        k = frames.index("v2v3corr") - 1
        pipeline[k] = (pipeline[k].frame, model)
    else:
        k = frames.index(plane.frame)
        frame, to_sky = pipeline[k].frame, pipeline[k].transform
        corrected = copy.deepcopy(frame)
        corrected.name = "v2v3corr"
        pipeline[k] = (frame, model)
        pipeline.insert(k + 1, (corrected, to_sky))
    return WCS(pipeline, name=wcs.name)


# ------------------------------------------------------------------------ alignment

class _Member:
    def __init__(self, name, meta, group, x, y, weight):
        self.name, self.meta, self.group = name, meta, group
        self.x, self.y, self.weight = np.asarray(x, float), np.asarray(y, float), weight
        info = meta["wcsinfo"]
        self.refs = {k: info[k] for k in ("v2_ref", "v3_ref", "roll_ref")}
        self.original = meta["wcs"]
        self.wcs = meta["wcs"]
        self.status, self.fit = "SKIPPED", None

    def plane(self):
        return TangentPlane(self.wcs, self.refs["v2_ref"], self.refs["v3_ref"],
                            self.refs["roll_ref"])


class _GroupCatalog:
    """The sources of one exposure group on the sky (through the members' current WCS)."""

    def __init__(self, members):
        self.members = members
        self.owner = np.concatenate([np.full(m.x.size, k) for k, m in enumerate(members)])
        self.x = np.concatenate([m.x for m in members])
        self.y = np.concatenate([m.y for m in members])
        weights = [m.weight for m in members if m.x.size]
        if any(w is None for w in weights) and not all(w is None for w in weights):
            raise WebbflowError(members[0].name, "either all or none of a group's catalogs "
                                                 "must have a 'weight' column")
        self.weight = None if not weights or weights[0] is None else \
            np.concatenate([m.weight for m in members if m.x.size])
        self.radec()

    def radec(self):
        self.ra = np.full(self.x.size, np.nan)
        self.dec = np.full(self.x.size, np.nan)
        for k, member in enumerate(self.members):
            sel = self.owner == k
            if sel.any():
                self.ra[sel], self.dec[sel] = member.wcs(self.x[sel], self.y[sel])
        self.valid = np.isfinite(self.x) & np.isfinite(self.y) & np.isfinite(self.ra) & \
            np.isfinite(self.dec)


def _relative_align(members, opts):
    if opts["separation"] <= np.sqrt(2) * opts["tolerance"]:
        raise _Skip("Parameter 'separation' must be larger than 'tolerance' by at least a "
                    "factor of sqrt(2) to avoid source confusion.")
    if opts["fitgeometry"] not in FIT_MIN_POINTS:
        raise WebbflowError(members[0].name, f"unknown fitgeometry {opts['fitgeometry']!r}")
    by_group = {}
    for member in members:
        by_group.setdefault(member.group, []).append(member)
    groups = []
    for gid, group in by_group.items():
        catalog = _GroupCatalog(group)
        if not catalog.x.size:
            log.warning("Group with ID '%s' will not be aligned: empty source catalog", gid)
            for member in group:
                member.status = "FAILED: empty source catalog"
            continue
        groups.append((gid, catalog))
    if len(groups) < 2:
        raise _Skip("Too few input images (or groups of images) with non-empty catalogs. "
                    "At least two exposures are required for image alignment. Nothing to do.")

    expand = bool(opts["expand_refcat"])
    user_order = bool(opts["enforce_user_order"]) or not expand
    if expand:
        # the official polygons: each image's source hull through its WCS as it came in
        polygons = [[image_polygon(m.x, m.y, m.wcs, _bounding_box(m.wcs))
                     for m in catalog.members] for _, catalog in groups]
        first, current, area, remaining = max_overlap_pair(polygons, user_order)
    else:
        first, current, area, remaining = 0, 1, None, list(range(2, len(groups)))
    reference = groups[first][1]
    for member in reference.members:
        member.status = "REFERENCE"
    ref_ra, ref_dec = reference.ra.copy(), reference.dec.copy()
    ref_ok = reference.valid.copy()
    ref_weight = None if reference.weight is None else reference.weight.copy()
    log.info("Selected image 'GROUP ID: %s' as reference image", groups[first][0])
    while current is not None:
        gid, catalog = groups[current]
        unmatched = _align_group(gid, catalog, ref_ra[ref_ok], ref_dec[ref_ok],
                                 None if ref_weight is None else ref_weight[ref_ok], opts,
                                 "Skipping relative alignment.")
        if expand and (catalog.members[-1].status == "SUCCESS" or not area):
            catalog.radec()
            add = unmatched & catalog.valid
            nadd = np.count_nonzero(add)
            if ref_weight is not None or catalog.weight is not None:
                ref_weight = np.concatenate([
                    np.ones(ref_ok.size) if ref_weight is None else ref_weight,
                    np.ones(nadd) if catalog.weight is None else catalog.weight[add]])
            ref_ra = np.concatenate([ref_ra, catalog.ra[add]])
            ref_dec = np.concatenate([ref_dec, catalog.dec[add]])
            ref_ok = np.concatenate([ref_ok, np.ones(nadd, bool)])
            log.info("Added %d unmatched sources from 'GROUP ID: %s' to the reference "
                     "catalog", nadd, gid)
        elif expand:
            log.warning("Failed to align catalog 'GROUP ID: %s' to the reference catalog. "
                        "Therefore, it will not be added to the expanded reference catalog. "
                        "Reported error: '%s'", gid, catalog.members[-1].status)
        if expand and not user_order and remaining:
            hull = refcat_polygon(ref_ra[ref_ok], ref_dec[ref_ok])
        else:
            hull = None
        current, area = max_overlap_image(hull, polygons if expand else None, remaining,
                                          user_order)


def _align_group(gid, catalog, ref_ra, ref_dec, ref_weight, opts, confusion):
    """Match and fit one group to the reference sources; corrects its members' WCS on
    success. Returns the mask of the group's sources left unmatched. Source confusion in
    matching raises _Skip with ``confusion`` appended to the message."""
    first = catalog.members[0]
    plane = first.plane()
    for member in catalog.members:
        member.status = "FAILED: Unknown error"
    img_tp = np.full((catalog.x.size, 2), np.nan)
    good = catalog.valid.copy()
    if good.any():
        img_tp[good] = np.column_stack(plane.world_to_tanp(catalog.ra[good], catalog.dec[good]))
    good &= np.isfinite(img_tp).all(axis=1)
    ref_tp = np.column_stack(plane.world_to_tanp(ref_ra, ref_dec))
    ref_good = np.isfinite(ref_tp).all(axis=1)
    unmatched = np.ones(catalog.x.size, bool)
    img_sel, ref_sel = np.flatnonzero(good), np.flatnonzero(ref_good)
    if img_sel.size == 0 or ref_sel.size == 0:
        nmatch, ref_idx, img_idx = 0, np.zeros(0, int), np.zeros(0, int)
    else:
        if opts["use2dhist"]:
            offset = estimate_shift_2dhist(img_tp[img_sel], ref_tp[ref_sel], opts["searchrad"],
                                           plane.center_pixel_scale())
        else:
            offset = (float(opts["xoffset"]), float(opts["yoffset"]))
        try:
            r, i = xyxymatch(img_tp[img_sel], ref_tp[ref_sel], offset, opts["tolerance"],
                             opts["separation"])
        except MatchConfusionError as exc:
            raise _Skip(f"{exc}. {confusion}") from None
        ref_idx, img_idx = ref_sel[r], img_sel[i]
        nmatch = ref_idx.size
    unmatched[img_idx] = False
    log.info("Found %d matches for group '%s'", nmatch, gid)
    if nmatch < opts["minobj"]:
        log.warning("Not enough matches (%d) found for group '%s'. Min required: %d.",
                    nmatch, gid, opts["minobj"])
        for member in catalog.members:
            member.status = "FAILED: not enough matches"
        return unmatched
    img_w = None if catalog.weight is None else catalog.weight[img_idx]
    ref_w = None if ref_weight is None else ref_weight[ref_idx]
    weights = _combined_weights(img_w, ref_w)
    fit = fit_linear(ref_tp[ref_idx], img_tp[img_idx], opts["fitgeometry"], opts["nclip"],
                     opts["sigma"], weights)
    fit["nmatches"] = int(nmatch)
    log.info("Group '%s': '%s' fit, shift %.6g %.6g arcsec, rotation %.6g deg, scale %.9g, "
             "RMSE %.4g arcsec on %d of %d matches", gid, opts["fitgeometry"], *fit["shift"],
             fit["rot"], fit["scale"], fit["rmse"], np.count_nonzero(fit["fitmask"]), nmatch)
    for member in catalog.members:
        member.wcs = apply_correction(member.wcs, member.refs, fit["matrix"], fit["shift"],
                                      ref_plane=plane)
        member.status = "SUCCESS"
        member.fit = fit
    return unmatched


def _absolute_align(members, refcat, opts):
    """All members, as one group, matched and fitted to the absolute reference catalog in
    the first member's tangent plane (stcal ``absolute_align``)."""
    if opts["abs_separation"] <= np.sqrt(2) * opts["abs_tolerance"]:
        raise _Skip("Parameter 'abs_separation' must be larger than 'abs_tolerance' by at "
                    "least a factor of sqrt(2) to avoid source confusion.")
    if refcat["nrows"] < opts["abs_minobj"]:
        raise _Skip(f"Not enough sources ({refcat['nrows']}) in the reference catalog for "
                    "the single-group alignment step to perform a fit. Skipping alignment "
                    "to the input reference catalog!")
    if opts["abs_fitgeometry"] not in FIT_MIN_POINTS:
        raise WebbflowError(members[0].name,
                            f"unknown abs_fitgeometry {opts['abs_fitgeometry']!r}")
    for member in members:
        member.status, member.fit = "FAILED: Unknown error", None
    catalog = _GroupCatalog(members)
    if not catalog.x.size:
        log.warning("Group with ID '%s' will not be aligned: empty source catalog",
                    ABS_GROUP_ID)
        for member in members:
            member.status = "FAILED: empty source catalog"
        raise _Skip("Too few input images (or groups of images) with non-empty catalogs. "
                    "At least one exposure is required to align images to an absolute "
                    "reference catalog. Alignment to an absolute reference catalog will "
                    "not be performed.")
    ok = np.isfinite(refcat["ra"]) & np.isfinite(refcat["dec"])
    weight = refcat["weight"]
    if weight is not None:
        ok &= np.isfinite(weight)
        weight = weight[ok]
    abs_opts = dict(searchrad=opts["abs_searchrad"], separation=opts["abs_separation"],
                    use2dhist=opts["abs_use2dhist"], tolerance=opts["abs_tolerance"],
                    xoffset=0.0, yoffset=0.0, minobj=opts["abs_minobj"],
                    fitgeometry=opts["abs_fitgeometry"], nclip=opts["abs_nclip"],
                    sigma=opts["abs_sigma"])
    _align_group(ABS_GROUP_ID, catalog, refcat["ra"][ok], refcat["dec"][ok], weight,
                 abs_opts, "Alignment to an absolute reference catalog will not be "
                           "performed.")


def _combined_weights(img_w, ref_w):
    if img_w is None:
        return ref_w
    if ref_w is None:
        return img_w
    both = (img_w > 0) & (ref_w > 0)
    out = np.zeros_like(img_w)
    out[both] = img_w[both] * ref_w[both] / (img_w[both] + ref_w[both])
    return out


def _check_small(members, opts):
    """The official sanity check: no footprint corner may move by 2 x (searchrad +
    tolerance) arcsec or more (a larger move means mismatched sources)."""
    if opts["use2dhist"]:
        limit = 2 * (opts["searchrad"] + opts["tolerance"])
    else:
        limit = 2 * (max(abs(opts["xoffset"]), abs(opts["yoffset"])) + opts["tolerance"])
    for member in members:
        if member.wcs is member.original:
            continue
        before = member.original.footprint()
        after = member.wcs.footprint()
        if not (_separation_arcsec(before, after) < limit).all():
            raise _Skip(f"WCS has been tweaked by more than {10 * opts['tolerance']} arcsec. "
                        "Skipping relative alignment...")


def _separation_arcsec(a, b):
    ra1, dec1, ra2, dec2 = (np.radians(v) for v in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    # haversine: well conditioned at the milliarcsecond separations at stake
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h))) * 3600.0
