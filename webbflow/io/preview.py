"""Preview images of products for the Snakemake report: an 8-bit PNG with an asinh
stretch between robust percentiles, written without an imaging library; spectra are
plotted by webbflow.io.spectra."""

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np


def stretch(image, low=1.0, high=99.5, softening=0.1):
    """Map finite values to 0..255: percentile limits, then asinh (faint detail visible,
    bright stars not clipped to a block). NaN becomes 0."""
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, np.uint8)
    lo, hi = np.percentile(image[finite], [low, high])
    scaled = np.clip((np.where(finite, image, lo) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    scaled = np.arcsinh(scaled / softening) / np.arcsinh(1.0 / softening)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def _chunk(kind, payload):
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path, gray):
    """A grayscale 8-bit PNG, rows top to bottom (FITS row 0 is the bottom: flip it)."""
    gray = np.ascontiguousarray(gray[::-1], dtype=np.uint8)
    height, width = gray.shape
    raw = b"".join(b"\x00" + gray[row].tobytes() for row in range(height))
    png = (b"\x89PNG\r\n\x1a\n"
           + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(raw, 6))
           + _chunk(b"IEND", b""))
    Path(path).write_bytes(png)


def image_preview(path, image, max_size=1024):
    """Write a preview of a 2-D image (or the first plane of a cube), binned down to at
    most ``max_size`` pixels on a side."""
    image = np.asarray(image, dtype=np.float32)
    while image.ndim > 2:
        image = image[0]
    step = max(1, int(np.ceil(max(image.shape) / max_size)))
    if step > 1:
        ny, nx = (image.shape[0] // step) * step, (image.shape[1] // step) * step
        with warnings.catch_warnings():
            # a bin with no finite pixel (an i2d's empty border) stays NaN, shown black
            warnings.simplefilter("ignore", RuntimeWarning)
            image = np.nanmean(image[:ny, :nx].reshape(ny // step, step, nx // step, step),
                               axis=(1, 3))
    write_png(path, stretch(image))


PREVIEW = "_preview"
# products shown as a plot of their spectra (webbflow.io.spectra), not as an image
SPECTRAL_SUFFIXES = ("x1d", "x1dints", "c1d")


def write_previews(outputs, products):
    """Write the previews a rule declares: an output named ``<product>_preview`` is the
    preview of that product's SCI array, or for a spectrum (``x1d``, ``x1dints``,
    ``c1d``) the plot of the file the rule wrote for it. ``outputs``: (name, path) pairs."""
    outputs = list(outputs)
    paths = dict(outputs)
    for name, path in outputs:
        if not name.endswith(PREVIEW):
            continue
        product = name.removesuffix(PREVIEW)
        if product in SPECTRAL_SUFFIXES:
            from webbflow.io.spectra import spectrum_preview

            spectrum_preview(path, paths[product])
        else:
            image_preview(path, products[product]["data"])
