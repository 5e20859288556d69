"""``webbflow-detector1`` and ``webbflow-image2``: one exposure through one stage without
Snakemake (for quick looks, benchmarks and debugging). The workflow is the way to run a
program."""

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
from webbflow.pipelines.image2 import run_image2

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def _one_stage(prog, input_suffix, argv, plan, run, check=None):
    """Parse the common arguments, choose references for the stage ``plan(config, meta)``
    -> (stage config, reftypes), ``run(path, refs, stage, context)`` -> products, write
    them beside the input (or in --outdir) under the MAST names."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument(input_suffix)
    parser.add_argument("--outdir", default=None, help="default: next to the input")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--crds-path", default=None)
    parser.add_argument("--crds-context", default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step and its time")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(message)s")
    path = getattr(args, input_suffix)
    try:
        config = yaml.safe_load(Path(args.config).read_text())
        settings = webbflow_crds.configure({**(config.get("crds") or {}),
                                            **({"path": args.crds_path} if args.crds_path else {}),
                                            **({"context": args.crds_context} if args.crds_context else {})})
        context = webbflow_crds.resolve_context(settings)
        if check is not None:
            check(path)
        meta = read_product(path).meta
        stage, reftypes = plan(config, meta)
        refs = webbflow_crds.best_references(
            meta, reftypes, context=context, settings=settings, exposure=path,
            overrides=(config.get("crds") or {}).get("overrides"))
        products = run(path, refs, stage, context)
        outdir = Path(args.outdir) if args.outdir else Path(path).parent
        stem = Path(path).name.removesuffix(f"_{input_suffix}.fits")
        for name, product in products.items():
            write_product(outdir / f"{stem}_{name}.fits", product)
    except WebbflowError as exc:
        print(f"webbflow: {exc}", file=sys.stderr)
        return 1
    return 0


def detector1(argv=None):
    def plan(config, meta):
        stage = planning.detector1_config(config, meta)
        return stage, planning.detector1_reftypes(meta, stage["steps"])

    def run(path, refs, stage, context):
        return run_stage1(path, refs, stage, PIXEL, context=context)

    return _one_stage("webbflow-detector1", "uncal", argv, plan, run, check=check_raw_exposure)


def image2(argv=None):
    def plan(config, meta):
        stage = planning.stage_config(config, "image2", meta)
        return stage, planning.image2_reftypes(stage["steps"])

    def run(path, refs, stage, context):
        return run_image2(path, refs, stage, PIXEL, context=context)

    return _one_stage("webbflow-image2", "rate", argv, plan, run)


if __name__ == "__main__":
    sys.exit({"image2": image2}.get(sys.argv[1], detector1)(
        sys.argv[2:] if sys.argv[1] == "image2" else None))
