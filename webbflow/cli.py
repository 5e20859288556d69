"""``webbflow-detector1``, ``webbflow-image2`` and ``webbflow-image3``: one exposure (or
one association) through one stage without Snakemake (for quick looks, benchmarks and
debugging). The workflow is the way to run a program."""

import argparse
import logging
import sys
import threading
from pathlib import Path

from webbflow.errors import WebbflowError
from webbflow.pipelines.memory import quiet_collector

# numpy, astropy, numba and the pipelines are imported by the functions that use them,
# after a stage-1 run has started importing numba in a thread (warm_numba): ~0.3 s of
# imports that overlap

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def _parser(prog, input_name, input_help=None):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument(input_name, help=input_help)
    parser.add_argument("--outdir", default=None, help="default: next to the input")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--crds-path", default=None)
    parser.add_argument("--crds-context", default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step and its time")
    return parser


def _setup(args):
    """Logging and the config."""
    import yaml  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(message)s")
    return yaml.safe_load(Path(args.config).read_text())


def _crds(args, config):
    """CRDS settings (the config's, with the command line's path and context) and the
    context they resolve to."""
    from webbflow import crds as webbflow_crds  # noqa: PLC0415

    settings = webbflow_crds.configure({**(config.get("crds") or {}),
                                        **({"path": args.crds_path} if args.crds_path else {}),
                                        **({"context": args.crds_context} if args.crds_context else {})})
    return settings, webbflow_crds.resolve_context(settings)


def _references(config, settings, context, meta, reftypes, path, outdir):
    """The best references and the cache that remembers them in ``outdir/.webbflow``, as
    the workflow remembers a program's: running the same exposure again (a
    re-parameterised step, a benchmark) does not load the CRDS client (~1.5 s of
    imports) to get the same answer. The caller saves the cache once its products are
    written, so that a failed run leaves nothing in ``outdir``."""
    from webbflow import crds as webbflow_crds  # noqa: PLC0415
    from webbflow import planning  # noqa: PLC0415

    overrides = (config.get("crds") or {}).get("overrides")
    cache = planning.ReferenceCache(outdir, context)
    refs = cache.lookup(
        [webbflow_crds.crds_parameters(meta), settings.get("path")], reftypes,
        lambda: webbflow_crds.best_references(meta, reftypes, context=context,
                                              settings=settings, exposure=path,
                                              overrides=overrides),
        overrides=overrides)
    return refs, cache


def warm_numba():
    """Import numba and load its compiler registries in a thread. The first kernel call of
    a process does it anyway (~0.35 s CPU: numba, its lowering modules and scipy.linalg,
    the registries under numba's compiler lock); started first it overlaps the reading of
    the config, the references and the raw ramp, which wait on the disk with the GIL
    released. The science is untouched: only numba's own one-time setup moves."""
    def warm():
        try:
            # first, as the kernels do: it points numba's cache at webbflow's directory
            import webbflow.kernels._options  # noqa: F401, PLC0415
            from numba.core.compiler_lock import global_compiler_lock  # noqa: PLC0415
            from numba.core.registry import cpu_target  # noqa: PLC0415

            with global_compiler_lock:
                cpu_target.target_context.refresh()
        except Exception:  # noqa: BLE001 - the first kernel call then loads them itself
            pass

    thread = threading.Thread(target=warm, name="numba-registries")
    thread.start()
    return thread


def _one_stage(prog, input_suffix, argv, plan, run, check=None, options=(), warm=False):
    """Parse the common arguments (and ``options``: (flags, add_argument keywords)),
    choose references for the stage ``plan(config, meta)`` -> (stage config, reftypes),
    ``run(path, refs, stage, context, args)`` -> products, write them beside the input
    (or in --outdir) under the MAST names."""
    quiet_collector()
    parser = _parser(prog, input_suffix)
    for flags, keywords in options:
        parser.add_argument(*flags, **keywords)
    args = parser.parse_args(argv)
    path = getattr(args, input_suffix)
    if warm:
        warm_numba()
    from webbflow.io import read_product, write_products  # noqa: PLC0415

    try:
        config = _setup(args)
        settings, context = _crds(args, config)
        if check is not None:
            check(path)
        meta = read_product(path).meta
        stage, reftypes = plan(config, meta)
        outdir = Path(args.outdir) if args.outdir else Path(path).parent
        refs, remembered = _references(config, settings, context, meta, reftypes, path, outdir)
        products = run(path, refs, stage, context, args)
        stem = Path(path).name.removesuffix(f"_{input_suffix}.fits")
        write_products((outdir / f"{stem}_{name}.fits", product)
                       for name, product in products.items())
        remembered.save()
    except WebbflowError as exc:
        print(f"webbflow: {exc}", file=sys.stderr)
        return 1
    return 0


def detector1(argv=None):
    def plan(config, meta):
        from webbflow import planning  # noqa: PLC0415

        stage = planning.detector1_config(config, meta)
        return stage, planning.detector1_reftypes(meta, stage["steps"])

    def run(path, refs, stage, context, args):
        from webbflow.dqflags import PIXEL  # noqa: PLC0415
        from webbflow.pipelines.detector1 import run_stage1  # noqa: PLC0415

        return run_stage1(path, refs, stage, PIXEL, context=context)

    def check(path):
        from webbflow.pipelines.detector1 import check_raw_exposure  # noqa: PLC0415

        check_raw_exposure(path)

    return _one_stage("webbflow-detector1", "uncal", argv, plan, run, check=check, warm=True)


def image2(argv=None):
    from webbflow import planning  # noqa: PLC0415
    from webbflow.dqflags import PIXEL  # noqa: PLC0415

    def plan(config, meta):
        stage = planning.stage_config(config, "image2", meta)
        return stage, planning.image2_reftypes(stage["steps"])

    def run(path, refs, stage, context, args):
        # imported here: its WCS stack (astropy.modeling, coordinates) costs a stage-1
        # process ~0.8 s and ~90 MB
        from webbflow.pipelines.image2 import run_image2

        return run_image2(path, refs, stage, PIXEL, context=context,
                          backgrounds=args.background)

    background = (("--background",), dict(action="append", default=[], metavar="RATE",
                                           help="a background exposure's rate file (the "
                                                "level-2 association's background member); "
                                                "repeat for several"))
    return _one_stage("webbflow-image2", "rate", argv, plan, run, options=[background])


def image3(argv=None):
    """One level-3 imaging association: members' crf, the product's i2d, cat and segm."""
    from webbflow.associations import read_association  # noqa: PLC0415
    from webbflow import planning  # noqa: PLC0415
    from webbflow.dqflags import PIXEL  # noqa: PLC0415
    from webbflow.io import read_product, write_product  # noqa: PLC0415
    from webbflow.pipelines.image3 import run_image3, write_image3_products  # noqa: PLC0415

    quiet_collector()
    args = _parser("webbflow-image3", "asn", "a level-3 association (its members' cal files "
                   "beside it or in its parent directory)").parse_args(argv)
    try:
        config = _setup(args)
        asn_path = Path(args.asn)
        asn = read_association(asn_path)
        members = []
        for expname in asn.members:
            here = asn_path.parent / expname
            members.append(here if here.exists() else asn_path.parent.parent / expname)
        meta = read_product(members[0]).meta if members else {}
        stage = planning.stage_config(config, "image3", meta)
        reftypes = planning.image3_reftypes(stage["steps"])
        outdir = Path(args.outdir) if args.outdir else members[0].parent
        refs, remembered = {}, None
        if members and reftypes:
            refs, remembered = _references(config, *_crds(args, config), meta, reftypes,
                                           members[0], outdir)

        def write_crf(index, crf):
            stem = members[index].name.removesuffix("_cal.fits")
            write_product(outdir / f"{stem}_{asn.asn_id}_crf.fits", crf)

        products = run_image3([str(m) for m in members], stage, PIXEL, asn_id=asn.asn_id,
                              product_name=asn.product, write_crf=write_crf, refs=refs,
                              tweakreg_catalogs=asn.tweakreg_catalogs)
        write_image3_products(products, {
            name: outdir / f"{asn.product}_{planning.IMAGE3_SUFFIXES[name]}"
            for name in products})
        if remembered is not None:
            remembered.save()
    except WebbflowError as exc:
        print(f"webbflow: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    stages = {"image2": image2, "image3": image3}
    if len(sys.argv) > 1 and sys.argv[1] in stages:
        sys.exit(stages[sys.argv[1]](sys.argv[2:]))
    sys.exit(detector1())
