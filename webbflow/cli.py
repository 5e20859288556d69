"""``webbflow-detector1``: stage 1 of one exposure without Snakemake (for quick looks,
benchmarks and debugging). The workflow is the way to run a program."""

import argparse
import logging
import sys
from pathlib import Path

import yaml

from webbflow import crds as webbflow_crds
from webbflow import planning
from webbflow.dqflags import PIXEL
from webbflow.errors import WebbflowError
from webbflow.io import read_product, write_product
from webbflow.pipelines.detector1 import check_raw_exposure, run_stage1

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def detector1(argv=None):
    parser = argparse.ArgumentParser(prog="webbflow-detector1", description=__doc__)
    parser.add_argument("uncal")
    parser.add_argument("--outdir", default=None, help="default: next to the input")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--crds-path", default=None)
    parser.add_argument("--crds-context", default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step and its time")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(message)s")
    try:
        config = yaml.safe_load(Path(args.config).read_text())
        settings = webbflow_crds.configure({**(config.get("crds") or {}),
                                            **({"path": args.crds_path} if args.crds_path else {}),
                                            **({"context": args.crds_context} if args.crds_context else {})})
        context = webbflow_crds.resolve_context(settings)
        check_raw_exposure(args.uncal)
        meta = read_product(args.uncal).meta
        stage = planning.detector1_config(config, meta)
        refs = webbflow_crds.best_references(
            meta, planning.detector1_reftypes(meta, stage["steps"]), context=context,
            settings=settings, exposure=args.uncal, overrides=(config.get("crds") or {}).get("overrides"))
        products = run_stage1(args.uncal, refs, stage, PIXEL, context=context)
        uncal = Path(args.uncal)
        outdir = Path(args.outdir) if args.outdir else uncal.parent
        stem = uncal.name.removesuffix("_uncal.fits")
        for name, product in products.items():
            write_product(outdir / f"{stem}_{name}.fits", product)
    except WebbflowError as exc:
        print(f"webbflow: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(detector1())
