"""clean_flicker_noise (stage 1, after jump, off by default): 1/f noise removal from the
group differences of a ramp, as jwst 3.0 does for imaging (near-IR; MIRI imaging
without ``mask_science_regions``).

The scene mask comes from a draft rate (a ramp fit with the software defaults; one
rate, or one per integration when ``single_mask`` is off) or from ``user_mask``: True
where a pixel is background. NaN or exactly zero rates leave it, then pixels above
``n_sigma`` (or below 3) sigma of the clipped background (with ``fit_histogram``: of a
Gaussian fit to its histogram). Each group difference ``g[j+1] - g[j]`` of each
integration is then cleaned on its own: groups flagged DO_NOT_USE (saturated ones
included) or JUMP_DET leave that group's mask, the image is divided by the flat
(``apply_flat_field``), a background level (``background_method``: the median or a
photutils ``Background2D`` model of the clipped background pixels) is removed, signal
above and below ``n_sigma`` of the lower half of the distribution is clipped, and the
masked median of each line along the fast read direction (per amplifier with
``fit_by_channel`` on near-IR full frames; along columns for MIRI) is subtracted. The
cleaned difference, with its background and flat restored, is added to the already
cleaned previous group, so the first group of an integration is left as it is and the
slope loses the 1/f stripes. No DQ is set; the status is COMPLETE, or FAILED (data
untouched) where the official skips.

Not carried: ``fit_method='fft'`` (NSClean) for the NIRSpec modes it is allowed on (for
imaging the official skips it and so do we), the spectroscopic modes, MIRI's
science-region masking, ``background_method='median_image'`` and the
save_mask/save_background/save_noise products: asking for them is an error naming them.
"""

import logging
import warnings

import numpy as np

from webbflow.kernels.flicker import (clip_to_background, clipped_values, line_medians,
                                      masked_median)

log = logging.getLogger("webbflow.clean_flicker_noise")

__all__ = ["DEFAULTS", "IMAGING_EXP_TYPES", "unsupported_options", "skipped_officially",
           "correction_axis", "auto_parameters", "histogram_clip", "scene_mask", "prepare_flat", "clean_image",
           "clean_ramp"]

DEFAULTS = dict(autoparam=False, fit_method="median", fit_by_channel=False,
                background_method="median", background_box_size=None,
                mask_science_regions=False, apply_flat_field=False, n_sigma=2.0,
                fit_histogram=False, single_mask=True, user_mask=None, save_mask=False,
                save_background=False, save_noise=False)

# exposure types whose correction is carried (imaging, NIRCam time series imaging too;
# MIRI without science regions)
IMAGING_EXP_TYPES = ("NRC_IMAGE", "NRC_TSIMAGE", "NIS_IMAGE", "FGS_IMAGE", "MIR_IMAGE")
# ``True`` switches of the official step webbflow does not carry
_NOT_CARRIED = ("save_mask", "save_background", "save_noise")


def unsupported_options(params, exp_type):
    """The names of the asked-for options (or the exposure type) not implemented for this
    exposure; [] when the step can run or the official would skip it anyway."""
    p = {**DEFAULTS, **params}
    if skipped_officially(p, exp_type):
        return []
    bad = [name for name in _NOT_CARRIED if p[name]]
    if str(p["background_method"]).lower() == "median_image":
        bad.append("background_method='median_image'")
    if exp_type not in IMAGING_EXP_TYPES:
        bad.append(f"EXP_TYPE {exp_type}")
    elif exp_type == "MIR_IMAGE" and p["mask_science_regions"]:
        # the official masks MIRI's non-science regions by the draft rate's flat_field DQ
        bad.append("mask_science_regions for MIR_IMAGE")
    return bad


def correction_axis(exp_type, slowaxis):
    """The numpy axis the line medians run along: the fast read direction of the near-IR
    detectors (from SLOWAXIS), along columns for MIRI (its vertical flicker)."""
    if exp_type.startswith("MIR"):
        return 0
    return abs(int(slowaxis or 2)) - 1


def skipped_officially(params, exp_type):
    """jwst 3.0 skips (status FAILED, data untouched) MIRI modes other than imaging and
    the 'fft' fit on anything but the NIRSpec spectroscopic modes."""
    p = {**DEFAULTS, **params}
    if exp_type.startswith("MIR") and exp_type != "MIR_IMAGE":
        return True
    return p["fit_method"] == "fft" and exp_type not in (
        "NRS_MSASPEC", "NRS_IFU", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")


def background_model(image, mask, box_size=None):
    """The background as a photutils ``Background2D`` (median estimator of 3-sigma
    clipped boxes, 5x5 box filter) of the masked pixels after the lower-half clip; the
    box is ``box_size`` or the largest of 1..32 dividing each axis. The median of the
    background pixels (a scalar) if photutils cannot fit it. Returns (background, mask)."""
    from astropy.stats import SigmaClip
    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.background import Background2D, MedianBackground

    mask = clip_to_background(image, mask, 3.0, 3.0, True)
    if box_size is None:
        box_size = [max(b for b in range(1, 33) if size % b == 0) for size in image.shape]
    if image.shape[0] % box_size[0] or image.shape[1] % box_size[1]:
        log.warning("background box size %s does not divide the image shape %s evenly",
                    tuple(box_size), image.shape)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=AstropyUserWarning)
            fit = Background2D(image, box_size=tuple(int(b) for b in box_size),
                               filter_size=(5, 5), mask=~mask,
                               sigma_clip=SigmaClip(sigma=3.0, maxiters=5),
                               bkg_estimator=MedianBackground())
        return fit.background, mask
    except ValueError:
        log.error("background fit failed, using the median value")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(image[mask]), mask


def prepare_flat(flat):
    """The FLAT image with its zero and non-finite pixels replaced by a smoothed local
    value (the 'model' background of the good ones), as the official reads it."""
    flat = np.array(flat, dtype=np.float32)
    bad = (flat == 0) | ~np.isfinite(flat)
    if np.any(bad):
        smooth, _ = background_model(flat, ~bad)
        flat[bad] = smooth if np.isscalar(smooth) or np.ndim(smooth) == 0 else smooth[bad]
    return flat


def _gaussian(x, amplitude, centre, sigma):
    return amplitude * np.exp(-0.5 * ((x - centre) / sigma) ** 2)


def histogram_clip(image, mask, sigma_lower, sigma_upper):
    """``clip_to_background`` with ``fit_histogram``: the centre and sigma of a Gaussian
    fit (scipy ``curve_fit``) to a 2000-bin histogram of the masked values over
    +/- 4 sigma about the clipped mean (the clipped mean and std if the fit fails)."""
    from scipy.optimize import curve_fit

    if not mask.any():
        return mask
    kept = clipped_values(image, mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre, sigma = np.nanmean(kept), np.nanstd(kept)
    values_for_fit = image.astype(np.float64)[mask]
    try:
        hist, edges = np.histogram(values_for_fit, bins=2000,
                                   range=(centre - 4.0 * sigma, centre + 4.0 * sigma))
    except ValueError:
        log.error("histogram failed; using the clipped centre and sigma")
        hist = None
    if hist is not None:
        bins = (edges[1:] + edges[0:-1]) / 2.0
        peak = np.argmax(hist)
        try:
            fit, _ = curve_fit(_gaussian, bins, hist, p0=(hist[peak], bins[peak], sigma),
                               bounds=[(0, bins[0], 0), (np.inf, bins[-1], bins[-1] - bins[0])])
            centre, sigma = fit[1], fit[2]
        except RuntimeError:
            log.error("Gaussian fit failed; using the clipped centre and sigma")
    values = image.astype(np.float64)
    low, high = centre - sigma_lower * sigma, centre + sigma_upper * sigma
    return mask & ~(values < low) & ~(values > high)


def scene_mask(rate, n_sigma=2.0, flat=None, fit_histogram=False):
    """Background pixels of a draft rate (ny, nx) or rateints (nints, ny, nx): finite,
    nonzero and within [-3, +n_sigma] sigma of the clipped background (or of a Gaussian
    fit to its histogram), per integration. ``flat``: the rate is divided by it first."""
    rate = np.asarray(rate, dtype=np.float32)
    if flat is not None:
        rate = rate / flat
    mask = ~(np.isnan(rate) | (rate == 0))
    clip = histogram_clip if fit_histogram else (
        lambda image, plane, low, high: clip_to_background(image, plane, low, high, False))
    if n_sigma > 0:
        if rate.ndim == 3:
            for i in range(rate.shape[0]):
                mask[i] = clip(rate[i], mask[i], 3.0, float(n_sigma))
        else:
            mask = clip(rate, mask, 3.0, float(n_sigma))
    return mask


def _line_correction(image, mask, axis, by_channel):
    """image minus the masked medians along ``axis`` (numpy axis of the fast read
    direction), per 512-pixel channel when ``by_channel`` and that axis is 2048 long."""
    if by_channel and image.shape[axis] == 2048:
        edges = [(c * 512, (c + 1) * 512) for c in range(4)]
    else:
        edges = [(0, image.shape[axis])]
    out = image.copy()
    for c0, c1 in edges:
        part = (slice(None), slice(c0, c1)) if axis == 1 else (slice(c0, c1), slice(None))
        stripes = line_medians(np.ascontiguousarray(image[part]),
                               np.ascontiguousarray(mask[part]), axis)
        out[part] = image[part] - (stripes[:, None] if axis == 1 else stripes[None, :])
    return out


def clean_image(image, mask, *, axis, background_method="median", background_box_size=None,
                n_sigma=2.0, fit_by_channel=False, flat=None):
    """One cleaned group difference (float32 or, with a 'model' background, float64), or
    None when no background pixel is left (the image is then not corrected)."""
    image = image.astype(np.float32)
    mask = mask.copy()
    if flat is not None:
        image /= flat
    nan = np.isnan(image)
    image[nan] = 0.0
    mask[nan] = False
    if not mask.any():
        return None
    if background_method is None:
        background = 0.0
        residual = image
    else:
        if background_method == "model":
            background, mask = background_model(image, mask, background_box_size)
        else:
            mask = clip_to_background(image, mask, 3.0, 3.0, True)
            background = np.float32(masked_median(image, mask))
        residual = image - background
        if n_sigma > 0:
            mask = clip_to_background(residual, mask, float(n_sigma), float(n_sigma), True)
    cleaned = _line_correction(residual, mask, axis, fit_by_channel)
    cleaned += background
    if flat is not None:
        cleaned *= flat
    cleaned[nan] = np.nan
    return cleaned


# autoparam: the official heuristic limits per exposure type
_AUTO_LIMITS = {
    "NIS_IMAGE": dict(mask_frac=0.07, max_offset_high_mask=0.07, max_slope_low_offset=1e-5,
                      max_slope_high_offset=1e-4, slope_ratio=5.0, channel_sigma=0.02),
    "NRC_IMAGE": dict(mask_frac=0.1, max_offset_high_mask=0.07, max_slope_low_offset=1e-5,
                      max_slope_high_offset=1e-5, slope_ratio=3.0, channel_sigma=0.02),
}


def _quick_clean(rate, flat, axis):
    """The draft rate (divided by the flat) median-cleaned with the default clipping:
    returns (cleaned float32 image with NaNs kept, background mask)."""
    image = np.array(rate, dtype=np.float32)
    if flat is not None:
        image /= flat
    mask = clip_to_background(image, np.ones(image.shape, bool), 3.0, 2.0, False)
    nan = np.isnan(image)
    image[nan] = 0.0
    mask[nan] = False
    mask = clip_to_background(image, mask, 3.0, 3.0, True)
    background = np.float32(masked_median(image, mask))
    image -= background
    mask = clip_to_background(image, mask, 3.0, 2.0, True)
    image = _line_correction(image, mask, axis, False)
    image += background
    image[nan] = np.nan
    return image, mask


def _slope_and_scatter(profile):
    """A straight line fit (numpy Polynomial) to the finite values of a 1-D profile: its
    slope (per pixel) and the 10-sigma clipped std of the residuals."""
    from astropy.stats import sigma_clipped_stats

    good = np.isfinite(profile)
    x = np.arange(profile.size)
    line = np.polynomial.Polynomial.fit(x[good], profile[good], deg=1)
    coef = line.convert().coef
    slope = coef[1] if len(coef) > 1 else 0.0
    _, _, scatter = sigma_clipped_stats(profile[good] - line(x[good]), sigma=10.0)
    return slope, scatter


def _channel_offset(profile):
    """Largest difference of the 3-sigma clipped means of neighbouring 512-pixel
    amplifier channels of a 2048-long profile (0 for other lengths)."""
    from astropy.stats import sigma_clipped_stats

    if profile.size != 2048:
        return 0.0
    means = np.array([sigma_clipped_stats(profile[c:c + 512], sigma=3.0)[0]
                      for c in range(0, 2048, 512)])
    return np.max(np.abs(means[1:] - means[:-1]))


def _band_mean(image, axis, start, stop):
    """Mean over the rows (``axis`` 0) or columns (1) between the fractions start and
    stop of that axis, as the official rounds them."""
    from fractions import Fraction

    n = image.shape[axis]
    i0, i1 = int(round(Fraction(start) * n)), int(round(Fraction(stop) * n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if axis == 0:
            return np.nanmean(image[i0:i1, :], axis=0)
        return np.nanmean(image[:, i0:i1], axis=1)


def auto_parameters(exp_type, rate, flat, axis):
    """``autoparam``: apply_flat_field, background_method and fit_by_channel chosen from
    statistics of a quick median clean of the draft rate (NIRCam and NIRISS imaging, as
    jwst 3.0); None for other exposure types (the given parameters stand)."""
    from fractions import Fraction

    limits = _AUTO_LIMITS.get(exp_type)
    if limits is None:
        return None
    cleaned, mask = _quick_clean(rate, flat, axis)
    background, mask = background_model(cleaned, mask)
    cleaned[~mask] = background if np.ndim(background) == 0 else background[~mask]
    mask_frac = np.sum(~mask) / mask.size
    along_rows = _band_mean(cleaned, 0, Fraction(3, 8), Fraction(5, 8))
    along_cols = _band_mean(cleaned, 1, Fraction(3, 8), Fraction(5, 8))
    col_slope, row_scatter = _slope_and_scatter(along_rows)
    row_slope, _ = _slope_and_scatter(along_cols)
    if exp_type == "NIS_IMAGE":
        _, channel_sigma = _slope_and_scatter(
            _band_mean(cleaned, 0, Fraction(10, 12), Fraction(11, 12)))
        max_offset = _channel_offset(along_cols)
    else:
        channel_sigma = row_scatter
        max_offset = _channel_offset(along_rows)
    slopes = np.abs([row_slope, col_slope])
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_ratio = np.max(slopes) / np.min(slopes)
    chosen = dict(apply_flat_field=flat is not None, **_decide(
        limits, mask_frac, max_offset, np.max(slopes), slope_ratio, channel_sigma))
    log.info("clean_flicker_noise autoparam for %s: %s (mask fraction %.4g, channel offset "
             "%.4g, slope %.4g, slope ratio %.4g, channel sigma %.4g)", exp_type, chosen,
             mask_frac, max_offset, np.max(slopes), slope_ratio, channel_sigma)
    return chosen


def _decide(limits, mask_frac, max_offset, max_slope, slope_ratio, channel_sigma):
    """The official decision tree: background 'model' where the cleaned background still
    slopes, per-channel fits where the channels are offset (or scattered)."""
    much_masked = mask_frac >= limits["mask_frac"]
    offset = max_offset >= limits["max_offset_high_mask"]
    slope_low = max_slope >= limits["max_slope_low_offset"]
    slope_high = max_slope >= limits["max_slope_high_offset"]
    if not much_masked and offset:
        return dict(background_method="median", fit_by_channel=True)
    if much_masked:
        sloped = slope_high if offset else slope_low
        return dict(background_method="model" if sloped else "median", fit_by_channel=False)
    if slope_high or (slope_low and not slope_ratio >= limits["slope_ratio"]):
        method = "model"
    else:
        method = "median"
    by_channel = bool(max_offset > 0 and channel_sigma >= limits["channel_sigma"])
    return dict(background_method=method, fit_by_channel=by_channel)


def clean_ramp(data, gdq, mask, dqflags, *, axis, background_method="median",
               background_box_size=None, n_sigma=2.0, fit_by_channel=False, flat=None):
    """Clean the ramp ``data`` (float32 (nints, ngroups, ny, nx), modified in place) group
    difference by group difference. ``mask``: background pixels, (ny, nx) or one plane
    per integration. Returns ``data``."""
    from concurrent.futures import ThreadPoolExecutor

    import numba

    nints, ngroups = data.shape[:2]
    unusable = np.uint8(dqflags["DO_NOT_USE"] | dqflags["JUMP_DET"])
    # the differences are cleaned independently (the kernels release the GIL), a batch
    # of them at once; the cleaned ramp is then summed in group order
    workers = max(1, min(numba.get_num_threads(), ngroups - 1))

    def clean(i, j, difference):
        scene = mask[i] if mask.ndim == 3 else mask
        usable = scene & ((gdq[i, j + 1] & unusable) == 0)
        return clean_image(difference, usable, axis=axis, background_method=background_method,
                           background_box_size=background_box_size, n_sigma=n_sigma,
                           fit_by_channel=fit_by_channel, flat=flat)

    with ThreadPoolExecutor(workers) as pool:
        for i in range(nints):
            previous = data[i, 0].copy()    # the input value of the group before
            for j0 in range(0, ngroups - 1, workers):
                batch = range(j0, min(ngroups - 1, j0 + workers))
                inputs = [data[i, j + 1].copy() for j in batch]
                below = [previous] + inputs[:-1]
                results = list(pool.map(clean, [i] * len(batch), batch,
                                        [a - b for a, b in zip(inputs, below)]))
                for j, cleaned in zip(batch, results):
                    if cleaned is None:
                        log.warning("no usable data in integration %d, group %d: not "
                                    "corrected", i + 1, j + 2)
                    else:
                        data[i, j + 1] = data[i, j] + cleaned
                previous = inputs[-1]
    return data
