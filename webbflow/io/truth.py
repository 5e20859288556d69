"""The simulator's truth beside each exposure: what a calibrated product should recover."""

from pathlib import Path

import numpy as np
from astropy.io import fits

from webbflow.io.products import atomic_hdulist_write


def write_truth(path, truth, sources):
    """RATE (true DN/s), masks, the cosmic-ray list and the source list, in one FITS file."""
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["ORIGIN"] = "webbflow synthetic observatory"
    hdus[0].header["TGROUP"] = truth.get("group_time", 0.0)
    hdus.append(fits.ImageHDU(np.asarray(truth["rate"], np.float32), name="RATE"))
    for key, name in (("saturated_mask", "SATMASK"), ("dead_mask", "DEADMASK")):
        if truth.get(key) is not None:
            hdus.append(fits.ImageHDU(np.asarray(truth[key], np.uint8), name=name))
    if truth.get("cosmic_rays") is not None:
        hdus.append(fits.BinTableHDU(np.asarray(truth["cosmic_rays"]), name="COSMIC_RAYS"))
    if sources is not None and len(sources):
        hdus.append(fits.BinTableHDU(np.asarray(sources), name="SOURCES"))
    atomic_hdulist_write(Path(path), fits.HDUList(hdus))


def read_truth(path):
    with fits.open(path) as hdulist:
        out = {"rate": hdulist["RATE"].data.astype(np.float32)}
        for name, key in (("SATMASK", "saturated_mask"), ("DEADMASK", "dead_mask")):
            if name in hdulist:
                out[key] = hdulist[name].data.astype(bool)
        for name, key in (("COSMIC_RAYS", "cosmic_rays"), ("SOURCES", "sources")):
            if name in hdulist:
                out[key] = np.asarray(hdulist[name].data)
    return out
