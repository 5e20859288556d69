"""source_catalog for imaging: the last step of calwebb_image3 (jwst.source_catalog with
its default segmentation finder).

One entry point, :func:`make_source_catalog`, takes the arrays of a drizzled ``i2d``
(SCI, ERR, WHT in MJy/sr), its gwcs and its ``meta`` tree, and the APCORR and
ABVEGAOFFSET references; it returns the official catalog (an astropy ``QTable`` with
the official columns, units, formats, descriptions and metadata, written to ``_cat.ecsv``
by :func:`write_catalog`) and the segmentation map (written to ``_segm.fits`` by
:func:`segmentation_product` + ``write_product``).

What runs, in the official order and arithmetic (the catalog comes out bit for bit as
the official one on the synthetic images tried, the segmentation map identical):

1. MJy/sr -> Jy (``x 1e6 PIXAR_SR``, float32); coverage = NaN ERR or zero WHT.
2. Background and RMS: photutils ``Background2D`` mesh statistics (3-sigma-clipped
   median, 3x3 filter; one box over the image when ``bkg_boxsize`` does not fit); the
   mesh is expanded by two small matrix products equal to its cubic-spline ``zoom``
   (:class:`_SeparableZoom`) instead of ``zoom`` over the padded image.
3. Detection on the background-subtracted image convolved with a Gaussian of
   ``kernel_fwhm`` (astropy ``convolve``): photutils ``detect_sources`` above
   ``snr_threshold x RMS`` with ``npixels`` connected pixels, then ``deblend_sources``
   on the segments that can split at all (:func:`_deblend_candidates`, a union-find
   flood); single-peaked segments skip the 32-level multi-thresholding.
4. Segment properties (isophotal flux and error, area, bounding boxes; centroids and
   second moments from the convolved image with photutils' own matrix products): only
   the columns the catalog keeps (the official step also computes Kron apertures and
   other columns it discards).
5. Circular aperture photometry at the APCORR radii (the photutils exact-overlap
   geometry, numpy's pairwise sums), local background as the 3-sigma-clipped median in
   the APCORR annulus (pixel centres), aperture-corrected total flux, AB and Vega
   magnitudes, concentration indices, DAOFind sharpness and roundness, nearest
   neighbours: numba kernels and whole-catalog numpy instead of per-source loops.
"""

import logging
import math
import os
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.kernels.source_catalog import (annulus_background, aperture_sums, gather_values,
                                             label_counts, merge_flags)

log = logging.getLogger("webbflow.source_catalog")

__all__ = ["make_source_catalog", "write_catalog", "segmentation_product", "DEFAULTS",
           "read_aperture_params", "read_abvega_offset"]

# the official step's spec defaults (jwst 3.0 SourceCatalogStep)
DEFAULTS = {
    "aperture_ee1": 30, "aperture_ee2": 50, "aperture_ee3": 70,
    "ci1_star_threshold": 2.0, "ci2_star_threshold": 1.8,
    "starfinder": "segmentation",
    "snr_threshold": 3.0, "bkg_boxsize": 1000, "kernel_fwhm": 2.0,
    "npixels": 25, "connectivity": 8, "nlevels": 32, "contrast": 0.001,
    "multithresh_mode": "exponential", "localbkg_width": 0, "apermask_method": "correct",
    "kron_params": None, "deblend": True,
    # not an official parameter: worker processes for photutils' deblending (same result)
    "n_processes": 1,
}

GAUSSIAN_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # astropy's value


# --------------------------------------------------------------------------- references

def _text(value):
    return None if value is None else str(value)


def read_aperture_params(apcorr_path, meta, aperture_ee=(30, 50, 70)):
    """The APCORR row selection of the official ``ReferenceData.aperture_params``: radii,
    corrections and annulus for the three EE values, radii divided by the resample
    ``pixel_scale_ratio``. ``apcorr_path`` None: radii 1, 2, 3 px without corrections."""
    aperture_ee = np.array(aperture_ee).astype(int)
    if len(aperture_ee) != 3 or not np.all(aperture_ee[1:] > aperture_ee[:-1]) or \
            np.any((aperture_ee <= 0) | (aperture_ee >= 100)):
        raise ValueError("aperture_ee must be 3 strictly increasing values in (0, 100)")
    if apcorr_path is None:
        return {"aperture_radii": np.array((1.0, 2.0, 3.0)),
                "aperture_corrections": np.array((1.0, 1.0, 1.0)),
                "aperture_ee": np.array((1, 2, 3)),
                "bkg_aperture_inner_radius": 5.0, "bkg_aperture_outer_radius": 10.0}
    from astropy.io import fits  # noqa: PLC0415

    instrument = meta.get("instrument", {})
    name = instrument.get("name")
    if name in ("NIRCAM", "NIRISS"):
        selector = {"filter": instrument.get("filter"), "pupil": instrument.get("pupil")}
    elif name == "MIRI":
        selector = {"filter": instrument.get("filter"),
                    "subarray": (meta.get("subarray") or {}).get("name")}
    elif name == "FGS":
        selector = None
    else:
        raise WebbflowError(apcorr_path, f"{name} is not a valid instrument for APCORR")
    try:
        table = fits.getdata(apcorr_path, "APCORR")
    except (OSError, KeyError) as exc:
        raise WebbflowError(apcorr_path, f"unreadable APCORR reference: {exc}") from None
    if selector is not None:
        rows = np.logical_and.reduce([table[key] == _text(value)
                                      for key, value in selector.items()])
        table = table[rows]
    if len(table) == 0:
        raise WebbflowError(apcorr_path, f"APCORR reference file data is missing for "
                                         f"{selector}")
    ee_percent = np.round(table["eefraction"] * 100)
    radii, apcorrs, skyins, skyouts = [], [], [], []
    for ee in aperture_ee:
        row = table[ee_percent == ee]
        if len(row) != 1:
            raise WebbflowError(apcorr_path, f"{len(row)} APCORR rows for EE {ee} %")
        radii.append(row["radius"][0])
        apcorrs.append(row["apcorr"][0])
        skyins.append(row["skyin"][0])
        skyouts.append(row["skyout"][0])
    ratio = (meta.get("resample") or {}).get("pixel_scale_ratio")
    if ratio is None:
        log.warning("no resample pixel_scale_ratio: assuming the native pixel scale")
        ratio = 1.0
    skyins, skyouts = np.unique(skyins), np.unique(skyouts)
    if len(skyins) != 1 or len(skyouts) != 1:
        raise WebbflowError(apcorr_path, "several skyin/skyout values for one selection")
    return {"aperture_ee": aperture_ee,
            "aperture_radii": np.array(radii) / ratio,
            "aperture_corrections": np.array(apcorrs),
            "bkg_aperture_inner_radius": skyins[0] / ratio,
            "bkg_aperture_outer_radius": skyouts[0] / ratio}


def read_abvega_offset(path, meta):
    """m_AB - m_Vega of the image's filter (pupil; detector for FGS); 0 without a file."""
    if path is None:
        log.warning("no ABVEGAOFFSET reference: Vega magnitudes are not correct")
        return 0.0
    import asdf  # noqa: PLC0415

    instrument = meta.get("instrument", {})
    name = instrument.get("name")
    if name in ("NIRCAM", "NIRISS"):
        selector = {"filter": instrument.get("filter"), "pupil": instrument.get("pupil")}
    elif name == "MIRI":
        selector = {"filter": instrument.get("filter")}
    elif name == "FGS":
        selector = {"detector": instrument.get("detector")}
    else:
        raise WebbflowError(path, f"{name} is not a valid instrument for ABVEGAOFFSET")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with asdf.open(path, lazy_load=False, memmap=False) as af:
                table = af.tree["abvega_offset"]
                rows = np.logical_and.reduce([np.asarray(table[key]) == _text(value)
                                              for key, value in selector.items()])
                values = np.asarray(table["abvega_offset"])[rows]
    except KeyError as exc:
        raise WebbflowError(path, f"{exc} not found in the ABVEGAOFFSET reference") from None
    if len(values) != 1:
        raise WebbflowError(path, f"{len(values)} ABVEGAOFFSET rows match {selector}")
    return values[0]


# --------------------------------------------------------------------------- detection

class _SeparableZoom:
    """photutils' background-mesh interpolator (scipy ``ndimage.zoom``: cubic spline,
    'reflect', grid mode, clipped to the mesh range), as two small matrix products.

    The spline (prefilter, boundary and evaluation) is a tensor product and linear in
    the mesh, so zooming the mesh equals ``Wy @ mesh @ Wx.T`` where the columns of Wy
    and Wx are ``zoom`` of the unit vectors along each axis. Same values to rounding
    (the products are summed in another order) at a fraction of the cost: ``zoom`` of
    the padded mesh evaluates 16 taps per pixel of an image larger than the data."""

    def __call__(self, data, **kwargs):
        from scipy.ndimage import zoom  # noqa: PLC0415

        data = np.asanyarray(data)
        data = getattr(data, "value", data)
        shape = kwargs["shape"]
        if np.ptp(data) == 0:
            return np.full(shape, np.min(data), dtype=kwargs["dtype"])
        box = np.broadcast_to(np.asarray(kwargs["box_size"]), (2,))
        weights = []
        for axis in (0, 1):
            n = data.shape[axis]
            unit = np.eye(n)
            weights.append(np.stack([zoom(unit[k], box[axis], order=3, mode="reflect",
                                          grid_mode=True)[:shape[axis]]
                                     for k in range(n)], axis=1))
        result = (weights[0] @ data.astype(np.float64) @ weights[1].T).astype(data.dtype)
        np.clip(result, np.min(data), np.max(data), out=result)
        return result


def _background(data, box_size, coverage_mask):
    """Background and RMS images: jwst's JWSTBackground (photutils Background2D: 3-sigma
    clipped median per box, 3x3 median filter of the mesh), the mesh expanded to the
    image by :class:`_SeparableZoom`."""
    from astropy.stats import SigmaClip  # noqa: PLC0415
    from astropy.utils.exceptions import AstropyUserWarning  # noqa: PLC0415
    from photutils.background import Background2D, MedianBackground  # noqa: PLC0415

    kwargs = dict(filter_size=(3, 3), coverage_mask=coverage_mask,
                  sigma_clip=SigmaClip(sigma=3.0), bkg_estimator=MedianBackground())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=AstropyUserWarning)
        try:
            bkg = Background2D(data, box_size, **kwargs)
        except ValueError:
            bkg = Background2D(data, data.shape, exclude_percentile=100.0, **kwargs)
            log.info("background from the whole unmasked image (bkg_boxsize %s)",
                     data.shape)
        bkg.interpolator = _SeparableZoom()
        return bkg.background, bkg.background_rms


def _convolve(data, kernel_fwhm, mask):
    from astropy.convolution import Gaussian2DKernel, convolve  # noqa: PLC0415
    from astropy.utils.exceptions import AstropyUserWarning  # noqa: PLC0415

    kernel = Gaussian2DKernel(kernel_fwhm * GAUSSIAN_FWHM_TO_SIGMA)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=AstropyUserWarning)
        return convolve(data, kernel, mask=mask)


def _deblend_candidates(conv, segm, npixels, connectivity):
    """Labels that multi-threshold deblending could split. A split at level t needs two
    components of at least ``npixels`` pixels above t inside the segment; flooding the
    segment from the top, their ancestors meet (at the saddle, below t) already holding
    that many pixels each. Segments where no such meeting happens come back from
    photutils unchanged, so only the others are handed to it: the same segmentation
    without the 32-level detection of every single-peaked source."""
    flat = segm.ravel()
    pixels = np.flatnonzero(flat)
    order = pixels[np.argsort(-np.asarray(conv, dtype=np.float64).ravel()[pixels],
                              kind="stable")]
    flags = merge_flags(segm, order, npixels, connectivity == 8, int(segm.max()))
    return np.flatnonzero(flags).astype(segm.dtype)


def _detect(data, threshold, conv, mask, opts):
    """photutils SourceFinder: detect_sources then deblend_sources, the latter only on
    the segments that can split (:func:`_deblend_candidates`); same segmentation."""
    from photutils.segmentation import deblend_sources, detect_sources  # noqa: PLC0415
    from photutils.utils import NoDetectionsWarning  # noqa: PLC0415

    npixels = int(opts["npixels"])
    connectivity = int(opts["connectivity"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=NoDetectionsWarning)
        segment_img = detect_sources(conv, threshold, npixels, mask=mask,
                                     connectivity=connectivity)
    if segment_img is None or not opts["deblend"]:
        return segment_img
    labels = _deblend_candidates(np.asarray(conv), np.ascontiguousarray(segment_img.data),
                                 npixels, connectivity)
    if not len(labels):
        labels = segment_img.labels[:0]
    from astropy.utils.exceptions import AstropyUserWarning  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=AstropyUserWarning)
        return deblend_sources(conv, segment_img, npixels, labels=labels,
                               n_levels=int(opts["nlevels"]),
                               contrast=float(opts["contrast"]),
                               mode=opts["multithresh_mode"], connectivity=connectivity,
                               relabel=True, n_processes=int(opts.get("n_processes") or 1),
                               progress_bar=False)


# ------------------------------------------------------------------------ measurements

def _moments(segm, conv, coverage, slices):
    """Raw and central moments up to 2nd order of each label's convolved-image cutout
    (pixels of the segment, unmasked, finite and non-negative), exactly as photutils
    computes them (the same small matrix products, so the same bits). Returns
    (m00, x centroid, y centroid in the cutout, mu_xx, mu_xy, mu_yy)."""
    out = np.empty((len(slices), 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, slc in enumerate(slices):
            arr = conv[slc].copy()
            bad = ~np.isfinite(arr) | (arr < 0) | (segm[slc] != i + 1) | coverage[slc]
            arr[bad] = 0.0
            ny, nx = arr.shape
            y = np.arange(ny, dtype=float)
            x = np.arange(nx, dtype=float)
            yp = np.column_stack([np.ones(ny), y, y * y, y ** 3])
            xp = np.column_stack([np.ones(nx), x, x * x, x ** 3])
            m = yp.T @ arr @ xp
            ycen = m[1, 0] / m[0, 0]
            xcen = m[0, 1] / m[0, 0]
            yc = np.arange(ny, dtype=float) - ycen
            xc = np.arange(nx, dtype=float) - xcen
            yp = np.column_stack([np.ones(ny), yc, yc * yc, yc ** 3])
            xp = np.column_stack([np.ones(nx), xc, xc * xc, xc ** 3])
            mu = yp.T @ arr @ xp
            out[i] = (mu[0, 0], xcen, ycen, mu[0, 2], mu[1, 1], mu[2, 0])
    return out


def _no_sources():
    """:func:`_segment_properties` of a map without segments."""
    import astropy.units as u  # noqa: PLC0415

    empty = np.zeros(0)
    index = np.zeros(0, np.int64)
    return {"label": np.zeros(0, np.int32), "xcentroid": empty, "ycentroid": empty,
            "flux": empty, "flux_err": np.zeros(0, np.float32), "area": empty, "semimajor": empty * u.pix,
            "semiminor": empty * u.pix, "orientation": empty, "bbox": (index,) * 4}


def _segment_properties(segm, data, conv, error, mask, coverage):
    """The photutils SourceCatalog columns the catalog keeps, for labels 1..n."""
    import astropy.units as u  # noqa: PLC0415
    from scipy import ndimage  # noqa: PLC0415

    nlabels = int(segm.max())
    slices = ndimage.find_objects(segm)
    y0 = np.array([s[0].start for s in slices], np.int64)
    y1 = np.array([s[0].stop for s in slices], np.int64)
    x0 = np.array([s[1].start for s in slices], np.int64)
    x1 = np.array([s[1].stop for s in slices], np.int64)

    count = label_counts(segm, data, mask, nlabels)[1:]
    starts = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    dvals, evals = gather_values(segm, data, error, mask, starts)
    # photutils: a fully masked source contributes one NaN
    empty = count == 0
    if empty.any():
        pieces_d = np.split(dvals, starts[1:-1])
        pieces_e = np.split(evals, starts[1:-1])
        for i in np.flatnonzero(empty):
            pieces_d[i] = np.array([np.nan], dvals.dtype)
            pieces_e[i] = np.array([np.nan], evals.dtype)
        sizes = np.array([len(p) for p in pieces_d])
        dvals, evals = np.concatenate(pieces_d), np.concatenate(pieces_e)
        splits = np.concatenate([[0], np.cumsum(sizes[:-1])])
    else:
        splits = starts[:-1]
    area = count.astype(float)
    area[empty] = np.nan
    flux = np.add.reduceat(dvals.astype(np.float64), splits)  # photutils' float cutouts
    flux = flux - area * 0.0  # photutils: minus area x local background (none)
    flux_err = np.sqrt(np.add.reduceat(np.square(evals), splits))

    mom = _moments(segm, conv, coverage, slices)
    m00 = mom[:, 0]
    xc = mom[:, 1] + x0
    yc = mom[:, 2] + y0
    with np.errstate(divide="ignore", invalid="ignore"):
        covar = np.empty((nlabels, 2, 2))
        covar[:, 0, 0] = mom[:, 3] / m00
        covar[:, 0, 1] = covar[:, 1, 0] = mom[:, 4] / m00
        covar[:, 1, 1] = mom[:, 5] / m00
        delta = 1.0 / 12
        det = np.linalg.det(covar)
        covar[det < 0] = np.nan
        idx = np.where(det < delta ** 2)[0]
        while idx.size > 0:
            covar[idx, 0, 0] += delta
            covar[idx, 1, 1] += delta
            det = np.linalg.det(covar)
            idx = np.where(det < delta ** 2)[0]
    eig = np.full((nlabels, 2), np.nan)
    good = np.unique(np.where(np.isfinite(covar))[0])
    eig[good] = np.linalg.eigvalsh(covar[good])
    eig[np.unique(np.where(eig < 0)[0])] = np.nan
    eig = np.fliplr(eig) * u.pix ** 2
    semimajor = np.sqrt(eig[:, 0])  # Quantities in pix, as photutils
    semiminor = np.sqrt(eig[:, 1])
    orientation = np.rad2deg(0.5 * np.arctan2(2.0 * covar[:, 0, 1],
                                              covar[:, 0, 0] - covar[:, 1, 1])) % 360
    return {"label": np.arange(1, nlabels + 1, dtype=segm.dtype), "xcentroid": xc,
            "ycentroid": yc, "flux": flux, "flux_err": flux_err, "area": area,
            "semimajor": semimajor, "semiminor": semiminor, "orientation": orientation,
            "bbox": (x0, x1, y0, y1)}


def _daofind_kernel(kernel_sigma):
    from astropy.convolution import Gaussian2DKernel  # noqa: PLC0415

    size = 2 * int(max(2.0, 1.5 * kernel_sigma)) + 1
    center = (size - 1) // 2
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.sqrt((xx - center) ** 2 + (yy - center) ** 2)
    mask = (radius <= max(2.0, 1.5 * kernel_sigma)).astype(int)
    kernel = Gaussian2DKernel(kernel_sigma, x_size=size, y_size=size).array
    kernel /= np.max(kernel)
    kernel *= mask
    npixels = mask.sum()
    denom = np.sum(kernel ** 2) - (np.sum(kernel) ** 2 / npixels)
    return ((kernel - (kernel.sum() / npixels)) / denom) * mask, mask, center


def _cutouts(array, xs, ys, size):
    """astropy extract_array (mode 'partial', fill 0) of size x size around every
    (x, y), all at once: the first row/column is ceil(position - size / 2)."""
    ny, nx = array.shape
    iy = np.ceil(ys - size / 2.0).astype(np.int64)[:, None] + np.arange(size)
    ix = np.ceil(xs - size / 2.0).astype(np.int64)[:, None] + np.arange(size)
    inside = ((iy >= 0) & (iy < ny))[:, :, None] & ((ix >= 0) & (ix < nx))[:, None, :]
    out = array[np.clip(iy, 0, ny - 1)[:, :, None], np.clip(ix, 0, nx - 1)[:, None, :]]
    return np.where(inside, out, np.zeros((), array.dtype))


def _sharp_round(data, xs, ys, kernel_sigma):
    """DAOFind sharpness and roundness at the centroids (jwst JWSTSourceCatalog)."""
    from scipy import ndimage  # noqa: PLC0415

    kernel, mask, c = _daofind_kernel(kernel_sigma)
    size = kernel.shape[0]
    conv = ndimage.convolve(data, kernel, mode="constant", cval=0.0)
    cut = _cutouts(data, xs, ys, size)
    cutc = _cutouts(conv, xs, ys, size)
    npixels = mask.sum() - 1
    data_masked = cut * mask
    data_peak = cut[:, c, c]
    conv_peak = cutc[:, c, c]
    data_mean = (np.sum(data_masked, axis=(1, 2)) - data_peak) / npixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        sharpness = (data_peak - data_mean) / conv_peak
    cutout = cutc.copy()
    cutout[:, c, c] = 0.0
    quad1 = cutout[:, 0:c + 1, c + 1:]
    quad2 = cutout[:, 0:c, 0:c + 1]
    quad3 = cutout[:, c:, 0:c]
    quad4 = cutout[:, c + 1:, c:]
    axis = (1, 2)
    sum2 = -quad1.sum(axis=axis) + quad2.sum(axis=axis) - quad3.sum(axis=axis) + \
        quad4.sum(axis=axis)
    sum2[sum2 == 0] = 0.0
    sum4 = np.abs(cutout).sum(axis=axis)
    sum4[sum4 == 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        roundness = 2.0 * sum2 / sum4
    return sharpness, roundness


def _abmag(flux, flux_err):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        abmag = -2.5 * np.log10(flux) + 8.9
        if flux_err is None or np.all(np.isnan(flux_err)):
            abmag_err = np.zeros_like(abmag) * np.nan
        else:
            abmag_err = 2.5 * np.log10(1.0 + (flux_err / flux))
    negative = flux < 0
    abmag[negative] = np.nan
    abmag_err[negative] = np.nan
    return abmag, abmag_err


def _versions():
    """photutils' catalog metadata versions as the official catalog keeps them, with
    webbflow in place of jwst."""
    out = {"Python": sys.version.split()[0]}
    for key, dist in (("numpy", "numpy"), ("scipy", "scipy"), ("astropy", "astropy"),
                      ("photutils", "photutils"), ("gwcs", "gwcs"), ("webbflow", "webbflow")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def _date():
    try:
        now = datetime.now().astimezone()
    except OSError:
        now = datetime.now(UTC)
    return now.strftime("%Y-%m-%d %H:%M:%S %Z")


# --------------------------------------------------------------------------- the step

def make_source_catalog(sci, err, wht, wcs, meta, apcorr_path, abvegaoffset_path,
                        options=None):
    """The official imaging source catalog of a drizzled image.

    ``sci``, ``err``, ``wht``: the i2d arrays (SCI and ERR in MJy/sr); ``wcs``: its gwcs;
    ``meta``: its meta tree (``photometry.pixelarea_steradians``, ``instrument`` name,
    filter, pupil, detector, ``subarray.name``, ``resample.pixel_scale_ratio``,
    ``wcsinfo.crpix1/2``); ``apcorr_path`` / ``abvegaoffset_path``: the references (None:
    the official fallbacks); ``options``: step parameters over :data:`DEFAULTS`.

    Returns ``(catalog, segmentation)``: the catalog as an astropy ``QTable`` and the
    int32 segmentation map. When nothing is detected they are an empty catalog (the
    same columns) and an all-zero map, where the official step writes neither file: a
    workflow job has declared outputs, and "no sources" is a result worth a file.
    """
    import astropy.units as u  # noqa: PLC0415
    from astropy.table import QTable  # noqa: PLC0415
    from scipy.spatial import KDTree  # noqa: PLC0415

    opts = {**DEFAULTS, **(options or {})}
    if str(opts["starfinder"]).lower() not in ("segmentation", "sourcefinder"):
        raise ValueError(f"starfinder {opts['starfinder']!r}: only 'segmentation' is "
                         "implemented")
    for key in ("bunit_data", "bunit_err"):
        if meta.get(key) not in (None, "MJy/sr"):
            raise ValueError("data and err are expected to be in units of MJy/sr")
    aperture_ee = (opts["aperture_ee1"], opts["aperture_ee2"], opts["aperture_ee3"])
    params = read_aperture_params(apcorr_path, meta, aperture_ee)
    abvega_offset = read_abvega_offset(abvegaoffset_path, meta)

    err = np.asarray(err)
    coverage = np.isnan(err) | (np.asarray(wht) == 0)
    pixar = (meta.get("photometry") or {}).get("pixelarea_steradians")
    if pixar is None:
        raise ValueError("no photometry.pixelarea_steradians: cannot convert to Jy")
    to_jy = 1.0e6 * pixar
    # new native-order arrays, float32 like the official in-place products
    data = np.asarray(sci) * to_jy
    error = err * to_jy

    # detection, as make_tweakreg_catalog
    kernel_fwhm = float(opts["kernel_fwhm"])
    segment_map = None
    try:
        background, rms = _background(data, int(opts["bkg_boxsize"]), coverage)
    except ValueError as exc:
        log.warning("error determining the sky background: %s: empty catalog", exc)
    else:
        threshold = float(opts["snr_threshold"]) * rms
        detect = data - background
        conv = _convolve(detect, kernel_fwhm, coverage) if kernel_fwhm > 0 else detect
        segment_map = _detect(detect, threshold, conv, coverage, opts)
    if segment_map is None:
        log.warning("no sources found in the image: empty catalog")
        segm = np.zeros(data.shape, np.int32)
        props = _no_sources()
    else:
        segm = np.ascontiguousarray(segment_map.data)
        mask = np.ascontiguousarray(coverage | ~np.isfinite(detect))
        props = _segment_properties(segm, detect, np.asarray(conv), error, mask, coverage)
    n = len(props["label"])
    xc, yc = props["xcentroid"], props["ycentroid"]
    xypos = np.transpose((xc, yc))
    nonfinite = ~np.isfinite(xypos).all(axis=1)
    xyf = xypos.copy()
    xyf[~np.isfinite(xyf)] = -1000.0

    # local background and aperture photometry on the image in Jy (not bkg-subtracted)
    med, std, nval = annulus_background(
        data, xyf[:, 0].copy(), xyf[:, 1].copy(),
        float(params["bkg_aperture_inner_radius"]), float(params["bkg_aperture_outer_radius"]),
        3.0, 5)
    with np.errstate(divide="ignore", invalid="ignore"):
        bkg_err = np.sqrt(np.pi / (2.0 * nval)) * std
    radii = np.asarray(params["aperture_radii"], dtype=np.float64)
    sums, sum_errs = aperture_sums(data, error, xyf[:, 0].copy(), xyf[:, 1].copy(), radii)

    columns = {}
    desc = {}
    columns["label"] = props["label"]
    columns["xcentroid"] = xc
    columns["ycentroid"] = yc
    columns["sky_centroid"] = wcs.pixel_to_world(xc, yc)
    desc.update(label="Unique source identification label number",
                xcentroid="X pixel value of the source centroid (0 indexed)",
                ycentroid="Y pixel value of the source centroid (0 indexed)",
                sky_centroid="ICRS Sky coordinate of the source centroid")

    ee = [int(e) for e in params["aperture_ee"]]
    columns["aper_bkg_flux"] = med * u.Jy
    columns["aper_bkg_flux_err"] = bkg_err * u.Jy
    desc["aper_bkg_flux"] = ("The local background value calculated as the sigma-clipped "
                             "median value in the background annulus aperture")
    desc["aper_bkg_flux_err"] = "The standard error of the sigma-clipped median background value"
    fluxes, kinds = {}, (("flux", "Flux", "flux"), ("abmag", "AB magnitude", "AB magnitude"),
                         ("vegamag", "Vega magnitude", "Vega magnitude"))
    per_kind = {k: {} for k, _, _ in kinds}
    for i, radius in enumerate(radii):
        flux = (sums[i] - med * (np.pi * radius ** 2)) * u.Jy
        flux_err = sum_errs[i] * u.Jy
        abmag, abmag_err = _abmag(flux.value, flux_err.value)
        fluxes[ee[i]] = flux
        per_kind["flux"][ee[i]] = (flux, flux_err)
        per_kind["abmag"][ee[i]] = (abmag, abmag_err)
        per_kind["vegamag"][ee[i]] = (abmag - abvega_offset, abmag_err)
    apcorr = params["aperture_corrections"][-1]
    total = apcorr * per_kind["flux"][ee[-1]][0]
    total_err = apcorr * per_kind["flux"][ee[-1]][1]
    tab, tab_err = _abmag(total.value, total_err.value)
    per_kind["flux"]["total"] = (total, total_err)
    per_kind["abmag"]["total"] = (tab, tab_err)
    per_kind["vegamag"]["total"] = (tab - abvega_offset, tab_err)
    for kind, title, lower in kinds:
        for e in ee:
            name = f"aper{e}_{kind}"
            columns[name], columns[f"{name}_err"] = per_kind[kind][e]
            desc[name] = f"{title} within the {e}% encircled energy circular aperture"
            desc[f"{name}_err"] = (f"{title} error within the {e}% encircled energy "
                                   "circular aperture")
        name = f"aper_total_{kind}"
        columns[name], columns[f"{name}_err"] = per_kind[kind]["total"]
        desc[name] = (f"Total aperture-corrected {lower} based on the {ee[-1]}% encircled "
                      "energy circular aperture; should be used only for unresolved sources.")
        desc[f"{name}_err"] = (f"Total aperture-corrected {lower} error based on the "
                               f"{ee[-1]}% encircled energy circular aperture; should be "
                               "used only for unresolved sources.")

    ci = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        for i, j in ((0, 1), (1, 2), (0, 2)):
            name = f"CI_{ee[j]}_{ee[i]}"
            columns[name] = fluxes[ee[j]].value / fluxes[ee[i]].value
            desc[name] = ("Concentration index calculated as "
                          f"(aper{ee[j]}_flux / aper{ee[i]}_flux)")
            ci.append(columns[name])
    columns["is_extended"] = np.logical_and(ci[0] > opts["ci1_star_threshold"],
                                            ci[1] > opts["ci2_star_threshold"])
    desc["is_extended"] = "Flag indicating whether the source is extended"

    kernel_sigma = kernel_fwhm * GAUSSIAN_FWHM_TO_SIGMA
    sharp, rnd = _sharp_round(data, xyf[:, 0], xyf[:, 1], kernel_sigma)
    columns["sharpness"], columns["roundness"] = sharp, rnd
    desc["sharpness"] = "The DAOFind source sharpness statistic"
    desc["roundness"] = "The DAOFind source roundness statistic"
    if n <= 1:
        columns["nn_label"] = np.full(n, -1, props["label"].dtype)
        columns["nn_dist"] = np.full(n, np.nan) * u.pixel
    else:
        qdist, qidx = KDTree(xyf).query(xyf, k=[2])
        qdist, qidx = np.transpose(qdist)[0], np.transpose(qidx)[0]
        nn_label = props["label"][qidx]
        nn_label[nonfinite] = -1
        qdist[nonfinite] = np.nan
        columns["nn_label"] = nn_label
        columns["nn_dist"] = qdist * u.pixel
    desc["nn_label"] = "The label number of the nearest neighbor"
    desc["nn_dist"] = "The distance in pixels to the nearest neighbor"

    iso = props["flux"] * u.Jy
    iso_err = props["flux_err"] * u.Jy
    iab, iab_err = _abmag(iso.value, iso_err.value)
    columns["isophotal_flux"], columns["isophotal_flux_err"] = iso, iso_err
    columns["isophotal_abmag"], columns["isophotal_abmag_err"] = iab, iab_err
    columns["isophotal_vegamag"] = iab - abvega_offset
    columns["isophotal_vegamag_err"] = iab_err
    columns["isophotal_area"] = props["area"] * u.pix ** 2
    semimajor, semiminor = props["semimajor"], props["semiminor"]
    columns["semimajor_sigma"], columns["semiminor_sigma"] = semimajor, semiminor
    columns["ellipticity"] = 1.0 - (semiminor / semimajor)
    orientation = props["orientation"] * u.deg
    columns["orientation"] = orientation
    columns["sky_orientation"] = _sky_orientation(wcs, meta, orientation)
    # photutils' corners: xmin - 0.5 and (exclusive) xmax + 0.5, likewise in y
    bx0, bx1, by0, by1 = props["bbox"]
    columns["sky_bbox_ll"] = wcs.pixel_to_world(bx0 - 0.5, by0 - 0.5)
    columns["sky_bbox_ul"] = wcs.pixel_to_world(bx0 - 0.5, by1 + 0.5)
    columns["sky_bbox_lr"] = wcs.pixel_to_world(bx1 + 0.5, by0 - 0.5)
    columns["sky_bbox_ur"] = wcs.pixel_to_world(bx1 + 0.5, by1 + 0.5)
    desc.update(
        isophotal_flux="Isophotal flux", isophotal_flux_err="Isophotal flux error",
        isophotal_abmag="Isophotal AB magnitude",
        isophotal_abmag_err="Isophotal AB magnitude error",
        isophotal_vegamag="Isophotal Vega magnitude",
        isophotal_vegamag_err="Isophotal Vega magnitude error",
        isophotal_area="Isophotal area",
        semimajor_sigma=("1-sigma standard deviation along the semimajor axis of the 2D "
                         "Gaussian function that has the same second-order central moments "
                         "as the source"),
        semiminor_sigma=("1-sigma standard deviation along the semiminor axis of the 2D "
                         "Gaussian function that has the same second-order central moments "
                         "as the source"),
        ellipticity=("1 minus the ratio of the 1-sigma lengths of the semimajor and "
                     "semiminor axes"),
        orientation=("The angle (degrees) between the positive X axis and the major axis "
                     "(increases counter-clockwise)"),
        sky_orientation="The position angle (degrees) from North of the major axis",
        sky_bbox_ll=("Sky coordinate of the lower-left vertex of the minimal bounding box "
                     "of the source"),
        sky_bbox_ul=("Sky coordinate of the upper-left vertex of the minimal bounding box "
                     "of the source"),
        sky_bbox_lr=("Sky coordinate of the lower-right vertex of the minimal bounding box "
                     "of the source"),
        sky_bbox_ur=("Sky coordinate of the upper-right vertex of the minimal bounding box "
                     "of the source"))

    catalog = QTable()
    for name, value in columns.items():
        catalog[name] = value
        catalog[name].info.description = desc[name]
    _format_columns(catalog)
    kron = opts["kron_params"]
    catalog.meta.update({
        "date": _date(), "version": _versions(),
        "local_bkg_width": int(opts["localbkg_width"]),
        "aperture_mask_method": opts["apermask_method"],
        "kron_params": (2.5, 1.4, 0.0) if kron is None else tuple(float(k) for k in kron),
        "aperture_params": params, "abvega_offset": abvega_offset})
    return catalog, segm.astype(np.int32, copy=False)


def _sky_orientation(wcs, meta, orientation):
    """Position angle of the major axis east of north, from the WCS angle at CRPIX."""
    import astropy.units as u  # noqa: PLC0415

    wcsinfo = meta.get("wcsinfo") or {}
    skycoord = wcs.pixel_to_world(wcsinfo["crpix1"] - 1, wcsinfo["crpix2"] - 1)
    xpos, ypos = wcs.world_to_pixel(skycoord)
    offset = skycoord.directional_offset_by(0.0, 1 * u.arcsec)
    x1, y1 = wcs.world_to_pixel(offset)
    angle = (np.arctan2(y1 - ypos, x1 - xpos) * u.radian).to(u.deg)
    return ((180.0 * u.deg) - angle + orientation) % (360 * u.deg)


def _format_columns(catalog):
    """The official output formats (JPWG 2020-02-05)."""
    for name in catalog.colnames:
        if name in ("xcentroid", "ycentroid") or "CI_" in name:
            catalog[name].info.format = ".4f"
        if "flux" in name:
            catalog[name].info.format = ".6e"
        if "abmag" in name or "vegamag" in name or name in ("nn_dist", "sharpness",
                                                           "roundness"):
            catalog[name].info.format = ".6f"
        if name in ("semimajor_sigma", "semiminor_sigma", "ellipticity", "orientation",
                    "sky_orientation"):
            catalog[name].info.format = ".6f"


# ------------------------------------------------------------------------------ output

def write_catalog(path, catalog):
    """Write ``catalog`` as ECSV, atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        catalog.write(tmp, format="ascii.ecsv", overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def segmentation_product(segm, meta, wcs, source_catalog=None):
    """The ``_segm`` product as the official step makes it: a SegmentationMapModel
    whose meta is the image's primary-header metadata (stdatamodels ``update(...,
    only='PRIMARY')``: no date, no model type), plus the image's WCS and wcsinfo;
    ``source_catalog``: the catalog's file name (SCATFILE), which the official step
    records in the image before copying. Write it with ``webbflow.io.write_product``."""
    import copy  # noqa: PLC0415

    from webbflow.io import Product, get_meta, set_meta  # noqa: PLC0415
    from webbflow.io.datamodels import keywords_by_hdu  # noqa: PLC0415

    primary = {path for path, _ in keywords_by_hdu("ImageModel").get("PRIMARY", [])}
    allowed = {path for entries in keywords_by_hdu("SegmentationMapModel").values()
               for path, _ in entries}
    out = {}
    for dotted in sorted(primary & allowed):
        if dotted in ("meta.date", "meta.model_type", "meta.filename"):
            continue
        value = get_meta(meta, dotted[len("meta."):]) if dotted.startswith("meta.") else None
        if value is not None:
            set_meta(out, dotted[len("meta."):], copy.deepcopy(value))
    if source_catalog is not None:
        out["source_catalog"] = str(source_catalog)
    out["wcsinfo"] = copy.deepcopy(meta.get("wcsinfo") or {})
    out["wcs"] = wcs
    return Product("SegmentationMapModel", meta=out,
                   arrays={"data": np.asarray(segm).astype(np.uint32)})
