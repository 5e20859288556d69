"""Helpers for the IRS2 tests: our stage-1 steps up to refpix, in process."""

from pathlib import Path

import numpy as np
import yaml

from webbflow.dqflags import PIXEL
from webbflow.pipelines.detector1 import Detector1, open_ramp, read_ramp_data

REPO = Path(__file__).resolve().parents[1]
UP_TO_REFPIX = ("group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix")


def cache_references(cache):
    """{reftype: path} of the (one-exposure) synthetic cache."""
    refs = {}
    for path in sorted((Path(cache) / "references" / "jwst" / "nirspec").glob("*.fits")):
        refs[path.name.split("_")[2]] = str(path)
    return refs


def detector1_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())["detector1"]


def run_ours(uncal, steps=UP_TO_REFPIX, data=None, refs=None):
    """Our steps on ``uncal`` (or on ``data`` in its place); returns the Ramp after them."""
    ramp, product = open_ramp(uncal)
    ramp.data = read_ramp_data(product) if data is None else np.array(data, np.float32)
    product.close()
    refs = refs or cache_references(Path(uncal).parent / "crds_cache")
    pipeline = Detector1(ramp, refs, detector1_config(), PIXEL, source=str(uncal), steps=steps)
    try:
        pipeline.run()
    finally:
        pipeline.close()
    return pipeline.ramp
