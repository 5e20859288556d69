"""Plots of 1-D spectra (x1d, x1dints, c1d) for the Snakemake report.

``spectrum_panels`` reads a product and returns what would be drawn (so it can be
tested without looking at pixels); ``spectrum_preview`` draws it to a PNG. Each
spectrum of the file (one per source, slit or spectral order) gets a panel with flux
and its error band against wavelength, in the table's units; NaN and DO_NOT_USE points
are left out, and the y-limits ignore the most extreme points so that one hot pixel
does not flatten the plot. An x1dints spectrum (rows = integrations, vector columns)
shows its first integration and the median over integrations, with a white-light
curve panel beside it."""

import io
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path

import numpy as np
from astropy.io import fits

from webbflow.dqflags import PIXEL
from webbflow.errors import WebbflowError

TABLES = ("EXTRACT1D", "COMBINE1D")
MAX_PANELS = 40
DO_NOT_USE = PIXEL["DO_NOT_USE"]


@dataclass
class Line:
    label: str
    x: np.ndarray
    y: np.ndarray
    err: np.ndarray | None = None
    index: np.ndarray | None = None   # the rows plotted: a jump is a gap in the line


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    lines: list = field(default_factory=list)
    ylim: tuple | None = None


def robust_limits(values, fraction=0.005, margin=0.05):
    """y-limits of finite ``values`` that a few wild points do not set: the range
    without the ``fraction`` most extreme points at each end (at least one, once there
    are 10 or more), stretched to include the dropped points lying within half that
    range of it (a line's peak), then widened by ``margin``. None when nothing is
    finite."""
    values = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    n = values.size
    if n == 0:
        return None
    drop = max(1, ceil(fraction * n)) if n >= 10 else 0
    lo, hi = values[drop], values[n - 1 - drop]
    span = hi - lo
    lo = values[values >= lo - 0.5 * span].min()
    hi = values[values <= hi + 0.5 * span].max()
    pad = margin * (hi - lo) if hi > lo else max(abs(hi) * margin, 1e-30)
    return float(lo - pad), float(hi + pad)


def _label(header, index):
    parts = []
    for keyword, name in (("SOURCEID", "source"), ("SLTNAME", "slit"), ("SPORDER", "order")):
        value = header.get(keyword)
        if value not in (None, ""):
            parts.append(f"{name} {value}")
    return ", ".join(parts) or f"spectrum {index + 1}"


def _unit(columns, name):
    unit = columns[name].unit if name in columns.names else None
    return f" [{unit}]" if unit else ""


def _quantity(table):
    """The flux column and its error column: FLUX, or SURF_BRIGHT when the flux has no
    usable point (an extended source extracted in surface brightness only)."""
    names = table.columns.names
    error = "FLUX_ERROR" if "FLUX_ERROR" in names else ("ERROR" if "ERROR" in names else None)
    if "SURF_BRIGHT" in names:
        flux = np.asarray(table["FLUX"], dtype=np.float64)
        if not (np.isfinite(flux) & (flux != 0)).any():
            return "SURF_BRIGHT", "SB_ERROR" if "SB_ERROR" in names else None
    return "FLUX", error


def _valid(table, flux):
    good = np.isfinite(flux) & np.isfinite(np.asarray(table["WAVELENGTH"], dtype=np.float64))
    if "DQ" in table.columns.names:
        good &= (np.asarray(table["DQ"]) & DO_NOT_USE) == 0
    return good


def _line(label, wave, flux, err, good):
    index = np.flatnonzero(good)
    return Line(label, wave[good], flux[good], None if err is None else err[good], index)


def _spectrum_panel(table, title):
    flux_name, err_name = _quantity(table)
    wave = np.asarray(table["WAVELENGTH"], dtype=np.float64)
    flux = np.asarray(table[flux_name], dtype=np.float64)
    err = None if err_name is None else np.asarray(table[err_name], dtype=np.float64)
    line = _line(title, wave, flux, err, _valid(table, flux))
    return Panel(title, "wavelength" + _unit(table.columns, "WAVELENGTH"),
                 flux_name.lower().replace("_", " ") + _unit(table.columns, flux_name),
                 [line], robust_limits(line.y))


def _tso_panels(table, title):
    """An x1dints spectrum: rows are integrations, WAVELENGTH, FLUX, ... vectors."""
    flux_name, err_name = _quantity(table)
    wave = np.asarray(table["WAVELENGTH"], dtype=np.float64)
    flux = np.asarray(table[flux_name], dtype=np.float64)
    err = None if err_name is None else np.asarray(table[err_name], dtype=np.float64)
    good = _valid(table, flux)
    nints = flux.shape[0]
    masked = np.where(good, flux, np.nan)
    lines = [_line("integration 1", wave[0], flux[0], None if err is None else err[0], good[0])]
    any_good = good.any(axis=0)
    with np.errstate(invalid="ignore"):
        median = np.nanmedian(masked[:, any_good], axis=0)
        median_wave = np.nanmedian(np.where(good, wave, np.nan)[:, any_good], axis=0)
    index = np.flatnonzero(any_good)
    lines.append(Line(f"median of {nints} integrations", median_wave, median, None, index))
    ylabel = flux_name.lower().replace("_", " ") + _unit(table.columns, flux_name)
    spectrum = Panel(title, "wavelength" + _unit(table.columns, "WAVELENGTH"), ylabel, lines,
                     robust_limits(np.concatenate([line.y for line in lines])))

    # white light: mean over the wavelength bins usable in every integration, so that
    # the curve does not jump where one integration lost a bin
    common = good.all(axis=0)
    with np.errstate(invalid="ignore"):
        if common.any():
            white = masked[:, common].mean(axis=1)
            how = f"mean over {int(common.sum())} bins"
        else:
            white = np.nanmean(masked, axis=1)
            how = "mean over the usable bins"
    names = table.columns.names
    time = np.asarray(table["MJD-AVG"], dtype=np.float64) if "MJD-AVG" in names else None
    if time is not None and np.isfinite(time).all():
        xlabel = "MJD (mid-integration)"
    else:
        time = (np.asarray(table["INT_NUM"], dtype=np.float64) if "INT_NUM" in names
                else np.arange(1.0, nints + 1))
        xlabel = "integration"
    keep = np.isfinite(white)
    curve = Panel(f"{title}: white light", xlabel, f"{ylabel} ({how})",
                  [Line("white light", time[keep], white[keep], None, np.flatnonzero(keep))],
                  robust_limits(white))
    return [spectrum, curve]


def spectrum_panels(path):
    """The panels a spectrum preview of ``path`` shows, one (two for x1dints: spectrum
    and white-light curve) per EXTRACT1D or COMBINE1D table."""
    panels = []
    try:
        with fits.open(path, memmap=False) as hdul:
            tables = [hdu for hdu in hdul if hdu.name in TABLES and hdu.data is not None]
            if not tables:
                raise WebbflowError(path, "no EXTRACT1D or COMBINE1D spectrum table to plot")
            for index, hdu in enumerate(tables):
                if "WAVELENGTH" not in hdu.columns.names or "FLUX" not in hdu.columns.names:
                    raise WebbflowError(path, f"{hdu.name} table {index + 1} has no "
                                              "WAVELENGTH and FLUX columns")
                title = _label(hdu.header, index)
                if np.ndim(hdu.data["FLUX"]) == 2:
                    panels += _tso_panels(hdu.data, title)
                else:
                    panels.append(_spectrum_panel(hdu.data, title))
    except OSError as exc:
        raise WebbflowError(path, f"unreadable spectrum file ({exc})") from None
    return panels


def _with_gaps(line, values):
    """``values`` of a line with NaN inserted where rows were left out, so the plotted
    line breaks there instead of bridging the gap."""
    if line.index is None or line.index.size < 2:
        return values
    breaks = np.flatnonzero(np.diff(line.index) > 1) + 1
    return np.insert(values.astype(np.float64), breaks, np.nan)


def spectrum_preview(png, product):
    """Write the PNG preview of the spectrum product at ``product``."""
    panels = spectrum_panels(product)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only where spectra are
    from matplotlib.figure import Figure

    shown = panels[:MAX_PANELS]
    figure = Figure(figsize=(8.0, 2.6 * len(shown) + 0.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    if len(panels) > len(shown):
        figure.suptitle(f"{Path(product).name}: first {len(shown)} of {len(panels)} panels")
    else:
        figure.suptitle(Path(product).name)
    for axes, panel in zip(figure.subplots(len(shown), 1, squeeze=False)[:, 0], shown):
        for line in panel.lines:
            x, y = _with_gaps(line, line.x), _with_gaps(line, line.y)
            marker = "." if line.x.size <= 100 else None
            drawn = axes.plot(x, y, lw=0.8, marker=marker, ms=3, label=line.label)[0]
            if line.err is not None:
                e = _with_gaps(line, line.err)
                axes.fill_between(x, y - e, y + e, color=drawn.get_color(), alpha=0.3, lw=0)
        if panel.ylim is not None:
            axes.set_ylim(*panel.ylim)
        axes.set_title(panel.title, fontsize=9)
        axes.set_xlabel(panel.xlabel, fontsize=8)
        axes.set_ylabel(panel.ylabel, fontsize=8)
        axes.tick_params(labelsize=7)
        if len(panel.lines) > 1:
            axes.legend(fontsize=7)
        if not any(line.x.size for line in panel.lines):
            axes.text(0.5, 0.5, "no usable point", ha="center", va="center",
                      transform=axes.transAxes)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    Path(png).write_bytes(buffer.getvalue())   # nothing under the name if drawing fails
