# Validation, discovery and the input/param functions the rules use. The decisions are
# made in webbflow.planning, from primary headers only, once per DAG build.
import atexit
import os
from pathlib import Path

from snakemake.utils import validate

import webbflow
from webbflow import associations
from webbflow import crds as webbflow_crds
from webbflow import planning
from webbflow.errors import WebbflowError
from webbflow.io.preview import SPECTRAL_SUFFIXES

# A program directory may carry its own config/config.yaml with only what it changes.
if Path("config/config.yaml").resolve() != Path(workflow.basedir, "config/config.yaml").resolve():
    if Path("config/config.yaml").exists():

        configfile: "config/config.yaml"


validate(config, schema=f"{workflow.basedir}/config/schema.yaml")


PROGRAM = Path.cwd()
HEADERS = planning.HeaderCache(PROGRAM)
# {exposure: the product it starts from (uncal, rate or cal)}: its stages from there on run
EXPOSURES = planning.discover(PROGRAM)


def start_file(exposure):
    """The file an exposure starts from: its plan is read from its primary header (uncal,
    rate and cal carry the same primary keywords)."""
    return f"{exposure}_{EXPOSURES[exposure]}.fits"


def header(exposure):
    # input, params and resource functions ask for the same header many times per job
    entry = _HEADER_ENTRIES.get(exposure)
    if entry is None:
        entry = _HEADER_ENTRIES[exposure] = HEADERS.get(start_file(exposure))
    return entry


_HEADER_ENTRIES = {}


def runs_stage(exposure, stage):
    """Whether ``stage`` runs for the exposure here: it starts at the stage's input or
    earlier (an unknown name runs nothing)."""
    return exposure in EXPOSURES and planning.runs_stage(EXPOSURES[exposure], stage)


def exposures_running(stage):
    return [exposure for exposure in EXPOSURES if runs_stage(exposure, stage)]


for _exposure in EXPOSURES:
    header(_exposure)
HEADERS.save()
CRDS_SETTINGS = webbflow_crds.configure(planning.crds_settings(config, PROGRAM))
CRDS_CONTEXT = None
REFERENCES = None


wildcard_constraints:
    exposure=planning.EXPOSURE_WILDCARD,
    association=r"[a-z0-9_\-]+_asn\.json",


def crds_context():
    global CRDS_CONTEXT, REFERENCES
    if CRDS_CONTEXT is None:
        try:
            CRDS_CONTEXT = planning.pinned_context(
                PROGRAM,
                CRDS_SETTINGS.get("context"),
                lambda: webbflow_crds.resolve_context(CRDS_SETTINGS),
            )
        except WebbflowError as exc:
            raise WorkflowError(str(exc))
        REFERENCES = planning.ReferenceCache(PROGRAM, CRDS_CONTEXT)
        # scripts record it as provenance; deliberately not a param, so a new context
        # reruns only the jobs whose chosen reference files changed
        config["crds"]["context_used"] = CRDS_CONTEXT
    return CRDS_CONTEXT


# Snakemake calls input, params and resource functions several times per job: each
# exposure's plan for each stage is worked out once and kept.
_CONFIGS = {}
_PLANS = {}
_PLAN_REFS = {}
_PLAN_PARAMS = {}
_RESOURCES = {}

# stage -> (its config block for one exposure's meta, the reftypes that block needs)
STAGES = {
    "detector1": (
        lambda meta: planning.detector1_config(config, meta),
        lambda meta, block: planning.detector1_reftypes(meta, block["steps"]),
    ),
    "image2": (
        lambda meta: planning.stage_config(config, "image2", meta),
        lambda meta, block: planning.image2_reftypes(block["steps"]),
    ),
    # keyed by an association's first member
    "image3": (
        lambda meta: planning.stage_config(config, "image3", meta),
        lambda meta, block: planning.image3_reftypes(block["steps"]),
    ),
}


def _config_key(stage, exposure):
    """What decides an exposure's config block of ``stage``: the keywords the per-mode
    overrides match on and, for image2, whether it has background members. Exposures
    with the same key share one block (read-only) and its canonical string."""
    meta = header(exposure)["meta"]
    return (stage, planning.override_key(meta),
            stage == "image2" and bool(IMAGE2_BACKGROUNDS.get(exposure)))


def _stage_config_entry(stage, exposure):
    key = _config_key(stage, exposure)
    if key not in _CONFIGS:
        block = STAGES[stage][0](header(exposure)["meta"])
        if stage == "image2" and not key[2]:
            # without background members bkg_subtract does not run: its parameters do
            # not decide this product (an edit of them reruns only the exposures it hits)
            steps = {k: v for k, v in block["steps"].items() if k != "bkg_subtract"}
            block = {**block, "steps": steps}
        _CONFIGS[key] = (block, planning.canonical(block))
    return _CONFIGS[key]


def stage_config(stage, exposure):
    return _stage_config_entry(stage, exposure)[0]


def detector1_config(exposure):
    return stage_config("detector1", exposure)


def get_plan(stage, exposure):
    """Reference files and the problem (if any) of one job, decided once. References are
    chosen from the exposure's header, which carries every keyword CRDS selects on. An
    exposure that does not run the stage here (it starts later) has none: the rule's
    input is then its delivered product."""
    if (stage, exposure) not in _PLANS:
        _PLANS[stage, exposure] = _plan(stage, exposure)
    return _PLANS[stage, exposure]


def _plan(stage, exposure):
    if not runs_stage(exposure, stage):
        return {"refs": {}, "problem": f"{exposure}: no {stage} here"}
    entry = header(exposure)
    if entry["problem"]:
        return {"refs": {}, "problem": entry["problem"]}
    meta = entry["meta"]
    reftypes = STAGES[stage][1](meta, stage_config(stage, exposure))
    context = crds_context()
    try:
        refs = REFERENCES.lookup(
            meta,
            reftypes,
            lambda: webbflow_crds.best_references(
                meta,
                reftypes,
                context=context,
                settings=CRDS_SETTINGS,
                exposure=start_file(exposure),
                overrides=config["crds"].get("overrides"),
            ),
            overrides=config["crds"].get("overrides"),
        )
    except WebbflowError as exc:
        return {"refs": {}, "problem": str(exc)}
    return {"refs": refs, "problem": None}


def plan_refs(stage, exposure):
    """A job's reference files (N/A ones left out)."""
    if (stage, exposure) not in _PLAN_REFS:
        chosen = get_plan(stage, exposure)["refs"]
        _PLAN_REFS[stage, exposure] = {name: path for name, path in chosen.items()
                                       if path != "N/A"}
    return dict(_PLAN_REFS[stage, exposure])


def plan_params(stage, exposure):
    """Everything a product depends on, as plain strings Snakemake compares, so a changed
    step parameter or reference reruns exactly its jobs."""
    if (stage, exposure) not in _PLAN_PARAMS:
        plan = get_plan(stage, exposure)
        _PLAN_PARAMS[stage, exposure] = {
            "steps": _stage_config_entry(stage, exposure)[1],
            "references": planning.canonical(
                {k: os.path.basename(v) if v != "N/A" else v for k, v in plan["refs"].items()}
            ),
            "problem": plan["problem"] or "",
        }
    return dict(_PLAN_PARAMS[stage, exposure])


def stage_refs(stage):
    """Input function of a per-exposure rule: its reference files."""
    return lambda wildcards: plan_refs(stage, wildcards.exposure)


def stage_params(stage):
    """Params function of a per-exposure rule."""
    return lambda wildcards: plan_params(stage, wildcards.exposure)


get_detector1_refs = stage_refs("detector1")
get_detector1_params = stage_params("detector1")
get_image2_refs = stage_refs("image2")
get_image2_params = stage_params("image2")


def get_detector1_resources(wildcards):
    exposure = wildcards.exposure
    if exposure not in _RESOURCES:
        entry = header(exposure)
        _RESOURCES[exposure] = planning.detector1_resources(
            entry["meta"], entry["size"], config.get("resources", {}))
    return _RESOURCES[exposure]


def get_detector1_optional_outputs():
    """The calibrated ramp and the ramp-fit details, when the config asks for them."""
    optional = {}
    if config["detector1"].get("save_calibrated_ramp"):
        optional["ramp"] = "{exposure}_ramp.fits"
    fit = config["detector1"]["steps"]["ramp_fit"]
    if fit.get("save_opt"):
        # LIKELY's optional product is its chi square image (OLS_C's the fit details)
        if str(fit.get("algorithm", "OLS_C")).upper() == "LIKELY":
            optional["likely_chisq"] = "{exposure}_likely_chisq.fits"
        else:
            optional["fitopt"] = "{exposure}_fitopt.fits"
    return optional


def is_dark(exposure):
    """Dark exposures go through calwebb_dark (uncal -> dark), not detector1."""
    return planning.stage1_pipeline(header(exposure)["meta"]) == "dark"


def get_detector1_outputs():
    outputs = []
    optional = get_detector1_optional_outputs()
    for exposure in exposures_running("detector1"):
        if is_dark(exposure):
            continue
        outputs += [f"{exposure}_rate.fits", f"{exposure}_rateints.fits"]
        outputs += [path.format(exposure=exposure) for path in optional.values()]
    return outputs


def _associations():
    """Level-2 and level-3 associations from the headers, unless MAST delivered some:
    level 2 of the exposures that run stage 2 here, level 3 of all (those that start at
    cal too)."""
    if planning.delivered_associations(PROGRAM):
        return {}
    exposures = [associations.Exposure(stem, header(stem)["meta"]) for stem in EXPOSURES
                 if not header(stem)["problem"]]
    made = associations.level2_associations(
        [e for e in exposures if runs_stage(e.stem, "image2")])
    made.update(associations.level3_associations(exposures))
    return {name: associations.dumps(content) for name, content in made.items()}


ASSOCIATIONS = _associations()


def _program_associations():
    """{association file (relative to the program): its JSON}: the ones MAST delivered,
    or else the ones generated into asn/."""
    delivered = planning.delivered_associations(PROGRAM)
    if delivered:
        return {path: (Path(PROGRAM) / path).read_text() for path in delivered}
    return {f"asn/{name}": content for name, content in ASSOCIATIONS.items()}


def _read_associations():
    found = {}
    for path, content in sorted(_program_associations().items()):
        try:
            found[path] = associations.read_association(Path(PROGRAM) / path, content)
        except WebbflowError as error:
            raise WorkflowError(str(error))
    return found


PROGRAM_ASSOCIATIONS = _read_associations()


def _image2_backgrounds():
    """{exposure: its level-2 association's background rate files}. A background that
    is not an exposure of this program is looked for beside the association."""
    by_name = {Path(stem).name: stem for stem in EXPOSURES}
    found = {}
    for path, asn in PROGRAM_ASSOCIATIONS.items():
        if not asn.asn_type.startswith("image2") or not asn.backgrounds:
            continue
        rates = []
        for name in asn.backgrounds:
            stem = by_name.get(Path(name).name.removesuffix("_rate.fits"))
            rates.append(f"{stem}_rate.fits" if stem else (Path(path).parent / name).as_posix())
        for member in asn.members:
            stem = by_name.get(Path(member).name.removesuffix("_rate.fits"))
            if stem:
                found[stem] = rates
    return found


IMAGE2_BACKGROUNDS = _image2_backgrounds()


def _image3_plans():
    """{association file: what its calwebb_image3 job reads and writes} for the imaging
    level-3 associations whose members all have a cal file here (made by image2, or the
    one they start from). Products are written in the program directory."""
    by_name = {Path(stem).name: stem for stem in EXPOSURES}
    plans = {}
    for path, asn in PROGRAM_ASSOCIATIONS.items():
        if asn.asn_type != "image3":
            continue
        stems = [by_name.get(Path(m).name.removesuffix("_cal.fits")) for m in asn.members]
        if not stems or None in stems or not all(has_cal(stem) for stem in stems):
            continue
        plans[path] = {"asn_id": asn.asn_id, "product": asn.product, "stems": stems}
    return plans


def image3_products(plan):
    """An image3 job's products besides the crf files: i2d, and cat + segm unless
    source_catalog is switched off."""
    names = ["i2d"]
    if not stage_config("image3", plan["stems"][0])["steps"]["source_catalog"].get("skip"):
        names += ["cat", "segm"]
    return {name: f"{plan['product']}_{planning.IMAGE3_SUFFIXES[name]}" for name in names}


def image3_refcat(plan):
    """An image3 job's absolute reference catalog (tweakreg ``abs_refcat``) as an input,
    so that a new catalog reruns the job: the file the job itself will read. None when
    unset or tweakreg is skipped, and when the value names no file here (an online
    catalog, a missing file): the job then fails with its one-line error."""
    tweakreg = stage_config("image3", plan["stems"][0])["steps"].get("tweakreg", {})
    value = str(tweakreg.get("abs_refcat") or "").strip()
    if tweakreg.get("skip") or not value:
        return {}
    from webbflow.steps.tweakreg import resolve_refcat  # only for the jobs that align

    try:
        return {"abs_refcat": str(resolve_refcat(value, [f"{plan['stems'][0]}_cal.fits"]))}
    except WebbflowError:
        return {}


def get_image3_outputs():
    outputs = []
    for plan in IMAGE3_PLANS.values():
        outputs += list(image3_products(plan).values())
        outputs += [f"{stem}_{plan['asn_id']}_crf.fits" for stem in plan["stems"]]
    return outputs


def runs_image2(exposure):
    if not runs_stage(exposure, "image2"):
        return False
    entry = header(exposure)
    return not entry["problem"] and not is_dark(exposure) and planning.runs_image2(entry["meta"])


def has_cal(exposure):
    """A cal file for stage 3: delivered, or made by image2."""
    return EXPOSURES.get(exposure) == "cal" or runs_image2(exposure)


def preview(path, caption, category=None, **labels):
    """A product's preview PNG (``<path stem>.png``) as a report item of ``category``,
    subcategory the product's suffix. Spectra (x1d, x1dints, c1d: their plot, see
    webbflow.io.spectra) are all in category "Spectra"; an image product names its
    stage. Declared as the output ``<product>_preview`` of the rule writing ``<product>``,
    ``write_previews`` in its script draws it."""
    stem = path.removesuffix(".fits")
    suffix = stem.rsplit("_", 1)[-1]
    if category is None:
        if suffix not in SPECTRAL_SUFFIXES:
            raise WorkflowError(f"preview of {path}: an image product needs its report category")
        category = "Spectra"
    return report(f"{stem}.png", caption=f"../report/{caption}", category=category,
                  subcategory=suffix, labels=labels)


def image2_outputs():
    """The image2 rule's products: cal, and i2d unless resample is switched off, each
    with its preview."""
    outputs = {"cal": "{exposure}_cal.fits"}
    if not config["image2"]["steps"]["resample"].get("skip"):
        outputs["i2d"] = "{exposure}_i2d.fits"
    for name, path in list(outputs.items()):
        outputs[f"{name}_preview"] = preview(path, f"image2_{name}.rst", "Stage 2",
                                             exposure="{exposure}")
    return outputs


def get_image2_outputs():
    products = [path for name, path in image2_outputs().items()
                if not name.endswith("_preview")]
    return [path.format(exposure=exposure) for exposure in EXPOSURES if runs_image2(exposure)
            for path in products]


def get_association_outputs():
    return [f"asn/{name}" for name in sorted(ASSOCIATIONS)]


def get_dark_outputs():
    return [f"{exposure}_dark.fits" for exposure in exposures_running("detector1")
            if is_dark(exposure)]


def get_made_outputs():
    """The products the rules make here (not their previews)."""
    return (get_detector1_outputs() + get_dark_outputs() + get_image2_outputs()
            + get_image3_outputs())


# Target rules name every product, not one product per job: Snakemake checks a job's
# outputs for missing files only where a target asks for them, so a deleted rateints or
# crf would otherwise not be remade.
def get_final_outputs():
    return get_made_outputs() + get_association_outputs() + get_spectrum_plot_outputs()


def _save_reference_cache():
    # also after a dry run, which runs neither onsuccess nor onerror: the next dry run
    # of a large program then asks CRDS nothing (a finished test's program may be gone)
    if REFERENCES is not None and PROGRAM.is_dir():
        REFERENCES.save()


atexit.register(_save_reference_cache)


onsuccess:
    HEADERS.save()
    if REFERENCES is not None:
        REFERENCES.save()


onerror:
    HEADERS.save()
    if REFERENCES is not None:
        REFERENCES.save()
