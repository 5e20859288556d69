"""Our stages through their command-line entry points: a process per exposure, as the
workflow runs them, so CRDS loads each cache's rules afresh."""

import subprocess
import sys


def _cli(stage, path, outdir, cache, context="jwst_0001.pmap", extra=()):
    result = subprocess.run([sys.executable, "-m", "webbflow.cli", *([stage] if stage else []),
                             str(path), "--outdir", str(outdir), "--crds-path", str(cache),
                             "--crds-context", context, *extra],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]


def run_detector1_cli(uncal, outdir, cache, context="jwst_0001.pmap"):
    _cli(None, uncal, outdir, cache, context)


def run_image2_cli(rate, outdir, cache, context="jwst_0001.pmap", backgrounds=()):
    _cli("image2", rate, outdir, cache, context,
         [arg for path in backgrounds for arg in ("--background", str(path))])
