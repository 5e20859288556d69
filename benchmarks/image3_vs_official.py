"""Stage 3 imaging, webbflow against the official Image3Pipeline, in one run on this machine.

The case of the imaging issue: outlier_detection and resample of a 4-exposure NIRCam
full-frame association (2048x2048 cal files). Both pipelines read the same cal files
(webbflow's stage 1 and 2 of the simulated ``imaging-fullframe`` program, made once as
set-up) with tweakreg, skymatch and source_catalog off, so each runs the same two steps
and writes crf + i2d; ``--all-steps`` runs both with every step on (the official
defaults), adding the catalog and segmentation map. Each run is a whole fresh process; wall time and peak RSS come from
the kernel (``wait4``); webbflow is run cold (empty numba cache) and warm.

    .venv/bin/python benchmarks/image3_vs_official.py [--repeat 2] [--all-steps]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.detector1_vs_official import measure  # noqa: E402

SKIPPED = ("tweakreg", "skymatch", "source_catalog")

OFFICIAL = r"""
import json, sys
from jwst.pipeline import Image3Pipeline
asn, outdir, skipped = json.loads(sys.argv[1])
Image3Pipeline.call(asn, steps={step: {"skip": True} for step in skipped},
                    save_results=True, output_dir=outdir)
"""


def _prepare(program):
    """Simulate the program and make its cal files with webbflow (not timed)."""
    if not (program / "crds_cache").exists():
        print("simulating the 4-exposure full-frame imaging program ...", flush=True)
        subprocess.run([sys.executable, "-m", "webbflow.sim.cli", str(program),
                        "--program", "imaging-fullframe", "--seed", "7"], check=True)
    cache = str(program / "crds_cache")
    for uncal in sorted(program.glob("*_uncal.fits")):
        stem = uncal.name.removesuffix("_uncal.fits")
        if not (program / f"{stem}_rate.fits").exists():
            subprocess.run([sys.executable, "-m", "webbflow.cli", str(uncal), "--crds-path",
                            cache], check=True)
        if not (program / f"{stem}_cal.fits").exists():
            subprocess.run([sys.executable, "-m", "webbflow.cli", "image2",
                            str(program / f"{stem}_rate.fits"), "--crds-path", cache],
                           check=True)
    cals = sorted(program.glob("*_nrca1_cal.fits"))
    asn = {"asn_type": "image3", "asn_rule": "Asn_Lv3Image", "asn_id": "o005",
           "asn_pool": "benchmark", "program": "01234", "target": "1",
           "products": [{"name": "jw01234-o005_t001_nircam_f200w",
                         "members": [{"expname": c.name, "exptype": "science"} for c in cals]}]}
    path = program / "image3_bench_asn.json"
    path.write_text(json.dumps(asn))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "work"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--all-steps", action="store_true",
                        help="both pipelines with every step on (tweakreg, skymatch, "
                             "outlier_detection, resample, source_catalog)")
    args = parser.parse_args()
    skipped = () if args.all_steps else SKIPPED
    workdir = Path(args.workdir)
    asn = _prepare(workdir / "imaging")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    crds_env = dict(base_env, CRDS_PATH=str(workdir / "imaging" / "crds_cache"),
                    CRDS_MODE="local", CRDS_READONLY_CACHE="1",
                    CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu",
                    STPIPE_DISABLE_CRDS_STEPPARS="true")
    ours_out = workdir / "ours_image3"
    official_out = workdir / "official_image3"
    for directory in (ours_out, official_out):
        directory.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for step in skipped:
        config["image3"]["steps"][step]["skip"] = True
    config_path = workdir / "image3_bench_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    ours_cmd = [sys.executable, "-m", "webbflow.cli", "image3", str(asn), "--outdir",
                str(ours_out), "--config", str(config_path)]
    cache_dir = tempfile.mkdtemp(prefix="numba-cold-")
    try:
        cold = measure(ours_cmd, dict(crds_env, NUMBA_CACHE_DIR=cache_dir))
        warm = min(measure(ours_cmd, dict(crds_env, NUMBA_CACHE_DIR=cache_dir))
                   for _ in range(args.repeat))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    official = min(measure([sys.executable, "-c", OFFICIAL,
                            json.dumps([str(asn), str(official_out), skipped])], crds_env)
                   for _ in range(args.repeat))
    result = {"official_s": official[0], "official_mb": official[1], "ours_cold_s": cold[0],
              "ours_warm_s": warm[0], "ours_mb": warm[1],
              "speedup_warm": official[0] / warm[0], "speedup_cold": official[0] / cold[0],
              "memory_fraction": warm[1] / official[1]}
    case = "all steps" if args.all_steps else "outlier_detection + resample"
    result["case"] = case
    print(f"image3 ({case}, 4 x 2048x2048): official {official[0]:.1f} s "
          f"{official[1]:.0f} MB | webbflow cold {cold[0]:.1f} s, warm {warm[0]:.1f} s "
          f"{warm[1]:.0f} MB | speed-up {result['speedup_warm']:.1f}x warm, "
          f"{result['speedup_cold']:.1f}x cold; memory {result['memory_fraction']:.2f} of official",
          flush=True)
    out = workdir / ("image3_all_vs_official.json" if args.all_steps
                     else "image3_vs_official.json")
    out.write_text(json.dumps(result, indent=1))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
