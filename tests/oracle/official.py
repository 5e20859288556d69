"""Run the official pipeline (jwst 3.0.0) offline on a synthetic CRDS cache.

Each batch runs in its own process: CRDS reads its environment once, at import.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

_RUNNER = r"""
import json, os, sys
spec = json.loads(sys.argv[1])
import jwst.pipeline
pipeline = getattr(jwst.pipeline, spec["pipeline"])
for uncal, steps in spec["jobs"]:
    steps = {name: block for name, block in steps.items() if name in pipeline.step_defs}
    pipeline.call(uncal, steps=steps, save_results=True, output_dir=spec["outdir"])
"""


def official_steps(stage_config):
    """The official pipeline's ``steps`` argument for the same switches as ours."""
    steps = {name: {"skip": True} for name in ("picture_frame",)}
    for name, block in stage_config["steps"].items():
        if block.get("skip"):
            steps[name] = {"skip": True}
    refpix = steps.setdefault("refpix", {})
    if not refpix.get("skip"):
        refpix.update(override_refpix="N/A", override_sirskernel="N/A")
    return steps


def run_official(jobs, cache, outdir, timeout=3600, pipeline="Detector1Pipeline"):
    """``jobs``: [(input path, steps dict)]: each input through ``pipeline`` (a class
    name in ``jwst.pipeline``), products written into outdir under the official names."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(CRDS_PATH=str(cache), CRDS_MODE="local", CRDS_READONLY_CACHE="1",
               CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu",
               STPIPE_DISABLE_CRDS_STEPPARS="true")
    spec = json.dumps({"jobs": [(str(u), s) for u, s in jobs], "outdir": str(outdir),
                       "pipeline": pipeline})
    result = subprocess.run([sys.executable, "-c", _RUNNER, spec], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"official pipeline failed:\n{result.stderr[-4000:]}")
    return outdir
