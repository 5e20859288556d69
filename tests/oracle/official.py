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
    # steps switched on with parameters of their own (the official names)
    flicker = stage_config["steps"].get("clean_flicker_noise", {})
    if not flicker.get("skip", True):
        steps["clean_flicker_noise"] = dict(flicker)
    emicorr = stage_config["steps"].get("emicorr", {})
    if not emicorr.get("skip", True):
        steps["emicorr"] = dict(emicorr)
    refpix = steps.setdefault("refpix", {})
    if not refpix.get("skip"):
        refpix.update(override_refpix="N/A", override_sirskernel="N/A")
    return steps


def run_official(jobs, cache, outdir, timeout=3600, pipeline="Detector1Pipeline"):
    """``jobs``: [(input path, steps dict)]: each input through ``pipeline`` (a class
    name in ``jwst.pipeline``), products written into outdir under the official names."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    _run_offline(_RUNNER, {"jobs": [(str(u), s) for u, s in jobs], "outdir": str(outdir),
                           "pipeline": pipeline}, cache, timeout, "pipeline")
    return outdir


_STEP_RUNNER = r"""
import json, sys
spec = json.loads(sys.argv[1])
import jwst.step
step = getattr(jwst.step, spec["step"])
for path, options, output in spec["jobs"]:
    step.call(path, **options).save(output)
"""


def run_official_step(jobs, cache, step="AssignWcsStep", timeout=1800):
    """``jobs``: [(input path, step options, output path)]: each input through one
    official step (a class name in ``jwst.step``), its result saved under the given path."""
    jobs = [(str(path), options, str(output)) for path, options, output in jobs]
    _run_offline(_STEP_RUNNER, {"step": step, "jobs": jobs}, cache, timeout, step)


def _run_offline(runner, spec, cache, timeout, what):
    """``runner`` in a process of its own, with CRDS offline on ``cache``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(CRDS_PATH=str(cache), CRDS_MODE="local", CRDS_READONLY_CACHE="1",
               CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu",
               STPIPE_DISABLE_CRDS_STEPPARS="true")
    result = subprocess.run([sys.executable, "-c", runner, json.dumps(spec)], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"official {what} failed:\n{result.stderr[-4000:]}")
