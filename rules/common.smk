# Validation, discovery and the input/param functions the rules use. The decisions are
# made in webbflow.planning, from primary headers only, once per DAG build.
import os
from pathlib import Path

from snakemake.utils import validate

import webbflow
from webbflow import associations
from webbflow import crds as webbflow_crds
from webbflow import planning
from webbflow.errors import WebbflowError

# A program directory may carry its own config/config.yaml with only what it changes.
if Path("config/config.yaml").resolve() != Path(workflow.basedir, "config/config.yaml").resolve():
    if Path("config/config.yaml").exists():

        configfile: "config/config.yaml"


validate(config, schema=f"{workflow.basedir}/config/schema.yaml")

PROGRAM = Path.cwd()
HEADERS = planning.HeaderCache(PROGRAM)
UNCAL = planning.discover(PROGRAM, "uncal")
for _exposure in UNCAL:
    HEADERS.get(f"{_exposure}_uncal.fits")
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


def header(exposure, suffix="uncal"):
    return HEADERS.get(f"{exposure}_{suffix}.fits")


# Snakemake calls input, params and resource functions several times per job: each
# exposure's plan is worked out once and kept.
_CONFIGS = {}
_PLANS = {}


def detector1_config(exposure):
    if exposure not in _CONFIGS:
        _CONFIGS[exposure] = planning.detector1_config(config, header(exposure)["meta"])
    return _CONFIGS[exposure]


def get_detector1_plan(wildcards):
    """Reference files and the problem (if any) of one stage-1 job, decided once."""
    if wildcards.exposure not in _PLANS:
        _PLANS[wildcards.exposure] = _detector1_plan(wildcards)
    return _PLANS[wildcards.exposure]


def _detector1_plan(wildcards):
    entry = header(wildcards.exposure)
    if entry["problem"]:
        return {"refs": {}, "problem": entry["problem"]}
    meta = entry["meta"]
    steps = detector1_config(wildcards.exposure)["steps"]
    reftypes = planning.detector1_reftypes(meta, steps)
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
                exposure=f"{wildcards.exposure}_uncal.fits",
                overrides=config["crds"].get("overrides"),
            ),
        )
    except WebbflowError as exc:
        return {"refs": {}, "problem": str(exc)}
    return {"refs": refs, "problem": None}


def get_detector1_refs(wildcards):
    refs = get_detector1_plan(wildcards)["refs"]
    return {name: path for name, path in refs.items() if path != "N/A"}


def get_detector1_params(wildcards):
    """Everything a stage-1 product depends on, as plain strings Snakemake compares."""
    plan = get_detector1_plan(wildcards)
    return {
        "steps": planning.canonical(detector1_config(wildcards.exposure)),
        "references": planning.canonical(
            {k: Path(v).name if v != "N/A" else v for k, v in plan["refs"].items()}
        ),
        "problem": plan["problem"] or "",
    }


def get_detector1_resources(wildcards):
    entry = header(wildcards.exposure)
    return planning.detector1_resources(entry["meta"], entry["size"], config.get("resources", {}))


def get_detector1_optional_outputs():
    """The calibrated ramp and the ramp-fit details, when the config asks for them."""
    optional = {}
    if config["detector1"].get("save_calibrated_ramp"):
        optional["ramp"] = "{exposure}_ramp.fits"
    if config["detector1"]["steps"]["ramp_fit"].get("save_opt"):
        optional["fitopt"] = "{exposure}_fitopt.fits"
    return optional


def is_dark(exposure):
    """Dark exposures go through calwebb_dark (uncal -> dark), not detector1."""
    return planning.stage1_pipeline(header(exposure)["meta"]) == "dark"


def get_detector1_outputs():
    outputs = []
    optional = get_detector1_optional_outputs()
    for exposure in UNCAL:
        if is_dark(exposure):
            continue
        outputs += [f"{exposure}_rate.fits", f"{exposure}_rateints.fits"]
        outputs += [path.format(exposure=exposure) for path in optional.values()]
    return outputs


def _associations():
    """Level-2 and level-3 associations from the headers, unless MAST delivered some."""
    if planning.delivered_associations(PROGRAM):
        return {}
    exposures = [associations.Exposure(stem, header(stem)["meta"]) for stem in UNCAL
                 if not header(stem)["problem"]]
    made = associations.level2_associations(exposures)
    made.update(associations.level3_associations(exposures))
    return {name: associations.dumps(content) for name, content in made.items()}


ASSOCIATIONS = _associations()


def get_association_outputs():
    return [f"asn/{name}" for name in sorted(ASSOCIATIONS)]


def get_dark_outputs():
    return [f"{exposure}_dark.fits" for exposure in UNCAL if is_dark(exposure)]


def get_final_outputs():
    return get_detector1_outputs() + get_dark_outputs() + get_association_outputs()


onsuccess:
    HEADERS.save()
    if REFERENCES is not None:
        REFERENCES.save()


onerror:
    HEADERS.save()
    if REFERENCES is not None:
        REFERENCES.save()
