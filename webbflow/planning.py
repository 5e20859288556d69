"""What the workflow runs: exposures found in a program directory, their headers, the
parameters and reference files of each job, and the resources it needs.

Everything here is decided once, while Snakemake builds the DAG, from primary headers
only (cached on disk by path, size and mtime), so a 1,000-exposure program plans in
seconds and no job ever talks to CRDS.
"""

import copy
import functools
import hashlib
import json
import os
import re
from pathlib import Path

from webbflow.errors import WebbflowError
from webbflow.io import datamodels
from webbflow.io.products import set_meta

# MAST exposure names: jw<ppppp><ooo><vvv>_<gg><s><aa>_<eeeee>[-seg<NNN>]_<detector>
EXPOSURE_PATTERN = r"jw\d{11}_\d{5}_\d{5}(?:-seg\d{3})?_[a-z0-9]+"
# an exposure wildcard may carry the sub-directory it was delivered in
EXPOSURE_WILDCARD = r"(?:[^/]+/)*" + EXPOSURE_PATTERN
_EXPOSURE_RE = re.compile(EXPOSURE_PATTERN + "$")

STATE_DIR = ".webbflow"
CONTEXT_PIN = "webbflow_crds_context.txt"

# the datamodel keywords a plan needs from a primary header
_PLAN_KEYWORDS = (
    "meta.instrument.name", "meta.instrument.detector", "meta.instrument.filter",
    "meta.instrument.pupil", "meta.instrument.channel", "meta.instrument.module",
    "meta.instrument.band", "meta.instrument.grating", "meta.instrument.fixed_slit",
    "meta.instrument.coronagraph", "meta.exposure.type", "meta.exposure.readpatt",
    "meta.exposure.nints", "meta.exposure.ngroups", "meta.exposure.nframes",
    "meta.exposure.groupgap", "meta.exposure.noutputs", "meta.exposure.integration_start",
    "meta.exposure.integration_end", "meta.subarray.name", "meta.subarray.xstart",
    "meta.subarray.ystart", "meta.subarray.xsize", "meta.subarray.ysize",
    "meta.observation.date", "meta.observation.time", "meta.observation.program_number",
    "meta.observation.observation_number", "meta.observation.visit_number",
    "meta.visit.tsovisit", "meta.exposure.gain_factor", "meta.target.catalog_name",
    "meta.observation.bkgdtarg",
)
# part of each cached header's key: a new keyword above re-reads the headers
_PLAN_KEYWORDS_TAG = hashlib.sha1(" ".join(_PLAN_KEYWORDS).encode()).hexdigest()[:8]

DETECTOR1_STEPS_NIR = (
    "group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
    "dark_current", "charge_migration", "jump", "clean_flicker_noise", "persistence",
    "ramp_fit", "gain_scale",
)
DETECTOR1_STEPS_MIRI = (
    "group_scale", "dq_init", "emicorr", "saturation", "ipc", "firstframe", "lastframe",
    "reset", "linearity", "rscd", "dark_current", "refpix", "charge_migration", "jump",
    "clean_flicker_noise", "persistence", "ramp_fit", "gain_scale",
)
# reference types per step, as the official steps declare them
STEP_REFTYPES = {
    "dq_init": ("mask",),
    "emicorr": ("emicorr",),
    "saturation": ("saturation", "superbias"),
    "ipc": ("ipc",),
    "superbias": ("superbias",),
    "refpix": ("refpix", "sirskernel"),
    "linearity": ("linearity",),
    "reset": ("reset",),
    "rscd": ("rscd",),
    "dark_current": ("dark",),
    "jump": ("gain", "readnoise"),
    "ramp_fit": ("readnoise", "gain"),
    "gain_scale": ("gain",),
}


IMAGE2_STEPS = ("bkg_subtract", "assign_wcs", "flat_field", "photom", "resample")
IMAGE2_STEP_REFTYPES = {"assign_wcs": ("distortion", "filteroffset"), "flat_field": ("flat",),
                        "photom": ("photom", "area")}
# exposures calwebb_image2 calibrates (imaging, not time series), and resamples to i2d
IMAGE2_EXP_TYPES = ("MIR_IMAGE", "NRC_IMAGE", "NIS_IMAGE", "FGS_IMAGE")
RESAMPLED_EXP_TYPES = ("MIR_IMAGE", "NRC_IMAGE", "NIS_IMAGE", "FGS_IMAGE")


# tweakreg abs_refcat names of online astrometric catalogs (jwst/stcal GSSS and S3
# catalogs): not files, they need the network
ONLINE_REFCATS = ("GAIAREFCAT", "GAIADR3", "GAIADR2", "GAIADR1", "GAIADR3_S3")
IMAGE3_STEPS = ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")
IMAGE3_STEP_REFTYPES = {"source_catalog": ("apcorr", "abvegaoffset")}
# calwebb_image3's products (besides each member's crf) -> file-name suffix
IMAGE3_SUFFIXES = {"i2d": "i2d.fits", "cat": "cat.ecsv", "segm": "segm.fits"}


def _reftypes(steps, order, by_step):
    wanted = []
    for step in order:
        if not steps.get(step, {}).get("skip", False):
            wanted += [r for r in by_step.get(step, ()) if r not in wanted]
    return wanted


def image2_reftypes(steps):
    return _reftypes(steps, IMAGE2_STEPS, IMAGE2_STEP_REFTYPES)


def image3_reftypes(steps):
    """Chosen from the first member's header, as the official step chooses them from the
    combined product (whose metadata is the first member's)."""
    return _reftypes(steps, IMAGE3_STEPS, IMAGE3_STEP_REFTYPES)


def image2_mem_mb(meta):
    """A cal job holds the rate's five images, the flat and area cut-outs, the pixel map
    (16 bytes a pixel) and the i2d: about 80 bytes a pixel, plus the interpreter."""
    sub = meta.get("subarray", {})
    pixels = (sub.get("xsize") or 2048) * (sub.get("ysize") or 2048)
    return int(700 + 80 * pixels / 2**20)


def image3_mem_mb(metas):
    """An image3 job holds every member's cal arrays and pixel map (about 60 bytes a
    pixel each) and the output grid's arrays (about the members' total area)."""
    pixels = sum((m.get("subarray", {}).get("xsize") or 2048) *
                 (m.get("subarray", {}).get("ysize") or 2048) for m in metas)
    return int(800 + 100 * pixels / 2**20)


def runs_image2(meta):
    """calwebb_image2 here: the imaging exposures (TSO and coronagraphy come later)."""
    return (meta.get("exposure", {}).get("type") in IMAGE2_EXP_TYPES
            and not meta.get("visit", {}).get("tsovisit"))


# exposures calwebb_dark takes instead of calwebb_detector1
DARK_EXP_TYPES = ("FGS_DARK", "MIR_DARKALL", "MIR_DARKIMG", "MIR_DARKMRS", "NIS_DARK",
                  "NRC_DARK", "NRS_DARK")


def detector1_steps(instrument):
    return DETECTOR1_STEPS_MIRI if instrument == "MIRI" else DETECTOR1_STEPS_NIR


def stage1_pipeline(meta):
    """"dark" (calwebb_dark) for dark exposures, else "detector1" (calwebb_detector1,
    calwebb_tso1 through the config's TSO override)."""
    return "dark" if meta.get("exposure", {}).get("type") in DARK_EXP_TYPES else "detector1"


def stage1_steps(meta):
    """The steps an exposure's stage-1 pipeline runs, in order: calwebb_dark is
    calwebb_detector1 stopped just before dark_current."""
    steps = detector1_steps(meta.get("instrument", {}).get("name"))
    if stage1_pipeline(meta) == "dark":
        return steps[:steps.index("dark_current")]
    return steps


# ---------------------------------------------------------------------------- discovery


def delivered_associations(root):
    """Association files MAST delivered with the program (anywhere but ``asn/``)."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*_asn.json")
                  if not p.relative_to(root).as_posix().startswith(("asn/", ".")))


# the products a program directory may start from, earliest first, and the stage that
# reads each: an exposure starts at the earliest one present beside it, its stages from
# there on run, and the later products are theirs
STARTS = ("uncal", "rate", "cal")
STAGE_INPUTS = {"detector1": "uncal", "image2": "rate", "image3": "cal"}


def discover(root, suffixes=STARTS):
    """{exposure stem: the earliest of ``suffixes`` present for it}, stems being relative
    paths without ``_<suffix>.fits``, sorted."""
    root = Path(root)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("logs", "benchmarks")]
        for name in filenames:
            stem, _, suffix = name.removesuffix(".fits").rpartition("_")
            if suffix not in suffixes or name != f"{stem}_{suffix}.fits":
                continue
            if not _EXPOSURE_RE.match(stem):
                continue
            rel = Path(dirpath, stem).relative_to(root).as_posix()
            if rel not in found or suffixes.index(suffix) < suffixes.index(found[rel]):
                found[rel] = suffix
    return dict(sorted(found.items()))


def find_products(root, suffixes):
    """Paths (relative to ``root``, sorted) of the ``<stem>_<suffix>.fits`` files present
    for any of ``suffixes``, in the directories ``discover`` looks in: e.g. the x1d
    spectra MAST delivered with a program."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("logs", "benchmarks")]
        for name in filenames:
            stem, _, suffix = name.removesuffix(".fits").rpartition("_")
            if stem and suffix in suffixes and name == f"{stem}_{suffix}.fits":
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def runs_stage(start, stage):
    """Whether an exposure that starts at ``start`` runs ``stage`` here."""
    return STARTS.index(start) <= STARTS.index(STAGE_INPUTS[stage])


# ---------------------------------------------------------------------------- headers


@functools.lru_cache(maxsize=1)
def _plan_cards():
    """(meta path, FITS keyword) of the plan keywords that live in the primary header."""
    keywords = datamodels.model_layout("Level1bModel")["keywords"]
    return tuple((dotted, keywords[dotted][0]) for dotted in _PLAN_KEYWORDS
                 if keywords[dotted][1] == "PRIMARY")


def _read_plan_header(path):
    cards = _plan_cards()
    values = _quick_primary_values(path, {keyword for _, keyword in cards})
    if values is None:
        values = _astropy_primary_values(path, cards)
    meta = {}
    for dotted, keyword in cards:
        if keyword in values:
            set_meta(meta, dotted, values[keyword])
    return meta


def _astropy_primary_values(path, cards):
    from astropy.io import fits  # noqa: PLC0415 - only for headers the quick reader leaves

    try:
        header = fits.getheader(path, 0)
    except Exception as exc:
        raise WebbflowError(path, f"unreadable FITS header ({exc})") from None
    values = {}
    for _, keyword in cards:
        if keyword in header:
            value = header[keyword]
            if isinstance(value, (str, int, float, bool)):
                values[keyword] = value
    return values


# A first run reads 1,000 primary headers; astropy's open and card parsing cost ~0.7 ms
# a file, reading the cards we need ourselves ~0.05 ms. Only the plain forms of values
# are read here (quoted strings without doubled quotes or CONTINUE, T/F, integers, fixed
# and exponent floats): anything else, and any header that is not plain FITS, is left to
# astropy, so the values are astropy's in every case.
_CARD_BYTES = 80
_BLOCK_BYTES = 2880
_MAX_HEADER_BLOCKS = 1000
_END_CARD = "END" + " " * 77
_INTEGER = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[ED][+-]?[0-9]+)?")


class _NotPlain(Exception):
    """A header or value the quick reader leaves to astropy."""


def _quick_primary_values(path, wanted):
    """{keyword: value} of the ``wanted`` keywords present in the primary header, as
    astropy reads them (undefined and complex values left out), or None when the header
    is not one the quick reader handles."""
    try:
        with open(path, "rb") as stream:
            fields = _primary_value_fields(stream, wanted)
        return {keyword: value for keyword, field in fields.items()
                if (value := _plain_value(field)) is not None}
    except (OSError, _NotPlain):
        return None


def _primary_value_fields(stream, wanted):
    fields = {}
    first = True
    for _ in range(_MAX_HEADER_BLOCKS):
        block = stream.read(_BLOCK_BYTES)
        if len(block) != _BLOCK_BYTES:
            raise _NotPlain
        try:
            text = block.decode("ascii")
        except UnicodeDecodeError:
            raise _NotPlain from None
        for start in range(0, _BLOCK_BYTES, _CARD_BYTES):
            card = text[start:start + _CARD_BYTES]
            if first:
                if not card.startswith("SIMPLE  = ") or _plain_value(card[10:]) is not True:
                    raise _NotPlain
                first = False
            if card == _END_CARD:
                return fields
            misplaced = 0 <= card.find("=") < 8 or (card[0] == " " and card[:8].strip())
            if misplaced or not card.isprintable():
                raise _NotPlain  # a keyword or value indicator out of place: astropy's
                # lenient parse
            keyword = card[:8].rstrip().upper()
            if keyword == "CONTINUE" or keyword.startswith("HIERARCH"):
                raise _NotPlain
            if keyword in wanted and keyword not in fields:
                if card[8:10] != "= ":
                    raise _NotPlain
                fields[keyword] = card[10:]
    raise _NotPlain


def _plain_value(field):
    """The value of a card's value field (after ``= ``): str, bool, int or float; None
    when undefined or complex. Raises _NotPlain for forms astropy parses specially."""
    text = field.lstrip(" ")
    if text.startswith("'"):
        end = text.find("'", 1)
        if end < 0 or text[end + 1:end + 2] == "'":
            raise _NotPlain  # unterminated, or a doubled quote
        rest = text[end + 1:].lstrip(" ")
        value = text[1:end]
        if (rest and not rest.startswith("/")) or ": " in value or value.rstrip(" ").endswith("&"):
            raise _NotPlain  # not a plain string; a record-valued or CONTINUE'd one
        return value.rstrip(" ")
    token = text.split("/", 1)[0].strip(" ")
    if token in ("T", "F"):
        return token == "T"
    if not token:
        return None
    if _INTEGER.fullmatch(token):
        return int(token)
    if _REAL.fullmatch(token):
        return float(token.replace("D", "E"))
    raise _NotPlain


class HeaderCache:
    """Primary-header metadata per file, kept in ``.webbflow/headers.json``."""

    def __init__(self, root):
        self.root = Path(root)
        self.path = self.root / STATE_DIR / "headers.json"
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def get(self, relpath):
        full = self.root / relpath
        stat = full.stat()
        key = f"{stat.st_size}:{stat.st_mtime_ns}:{_PLAN_KEYWORDS_TAG}"
        entry = self.entries.get(relpath)
        if entry is None or entry["key"] != key:
            try:
                entry = {"key": key, "meta": _read_plan_header(full), "problem": None}
            except WebbflowError as exc:
                entry = {"key": key, "meta": {}, "problem": str(exc)}
            entry["size"] = stat.st_size
            self.entries[relpath] = entry
            self.dirty = True
        return entry

    def save(self):
        if self.dirty:
            _atomic_json(self.path, self.entries)
            self.dirty = False


def _atomic_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def is_tso(meta):
    value = meta.get("visit", {}).get("tsovisit")
    return value is True or str(value).upper() in ("T", "TRUE")


# ---------------------------------------------------------------------------- parameters


def _deep_merge(base, update):
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# the header values the ``when`` of a per-mode override can test
OVERRIDE_KEYS = ("instrument", "detector", "exp_type", "tso")


def override_key(meta):
    """The values of ``OVERRIDE_KEYS`` for one header: exposures with the same key get the
    same config blocks (``stage_config``, ``detector1_config``)."""
    instrument = meta.get("instrument", {})
    return (instrument.get("name"), instrument.get("detector"),
            meta.get("exposure", {}).get("type"), is_tso(meta))


def _matches(when, meta):
    checks = dict(zip(OVERRIDE_KEYS, override_key(meta)))
    for key, wanted in when.items():
        have = checks[key]
        if key in ("exp_type", "detector"):
            if not re.fullmatch(str(wanted), str(have or "")):
                return False
        elif have != wanted:
            return False
    return True


def stage_config(config, stage, meta):
    """The ``config[stage]`` block with every matching per-mode override applied."""
    merged = copy.deepcopy(config.get(stage, {}))
    for override in config.get("overrides", []):
        if _matches(override["when"], meta) and stage in override["set"]:
            _deep_merge(merged, override["set"][stage])
    return merged


def detector1_config(config, meta):
    """The detector1 block for one exposure, holding only the steps its instrument runs,
    so that editing a MIRI-only step does not rerun near-IR exposures."""
    merged = stage_config(config, "detector1", meta)
    instrument = meta.get("instrument", {}).get("name")
    merged["steps"] = {step: block for step, block in merged.get("steps", {}).items()
                       if step in detector1_steps(instrument)}
    return merged


def detector1_reftypes(meta, steps):
    instrument = meta.get("instrument", {}).get("name")
    wanted = []
    for step in stage1_steps(meta):
        if steps.get(step, {}).get("skip", False):
            continue
        reftypes = STEP_REFTYPES.get(step, ())
        block = steps.get(step, {})
        if step == "clean_flicker_noise" and (block.get("apply_flat_field")
                                              or block.get("autoparam")):
            reftypes = ("flat",)
        for reftype in reftypes:
            if reftype == "superbias" and instrument == "MIRI":
                continue
            if reftype not in wanted:
                wanted.append(reftype)
    return wanted


def canonical(value):
    """A parameter block as a string Snakemake compares exactly (key order irrelevant)."""
    return json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------------------- CRDS


def crds_settings(config, root):
    settings = dict(config.get("crds") or {})
    if not settings.get("path") and not os.environ.get("CRDS_PATH"):
        settings["path"] = str(Path(root) / "crds_cache")
    return settings


def pinned_context(root, requested, resolve):
    """The CRDS context of this program: the requested one, else the pinned one, else
    the cache's operational context; the choice is written to the pin file."""
    pin = Path(root) / CONTEXT_PIN
    if requested:
        context = requested
    elif pin.exists():
        context = pin.read_text().strip()
    else:
        context = resolve()
    if not pin.exists() or pin.read_text().strip() != context:
        pin.write_text(context + "\n")
    return context


class ReferenceCache:
    """Best references per (context, reftypes, CRDS-relevant header, overrides), on disk.

    An entry whose chosen files are no longer where it says (a moved or pruned CRDS
    cache) is asked again."""

    def __init__(self, root, context):
        self.path = Path(root) / STATE_DIR / f"refs_{context}.json"
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def lookup(self, meta, reftypes, compute, overrides=None):
        key = json.dumps([meta, sorted(reftypes), overrides or {}], sort_keys=True, default=str)
        refs = self.entries.get(key)
        if refs is None or any(path != "N/A" and not os.path.exists(path)
                               for path in refs.values()):
            refs = self.entries[key] = compute()
            self.dirty = True
        return refs

    def save(self):
        if self.dirty:
            _atomic_json(self.path, self.entries)
            self.dirty = False


# ---------------------------------------------------------------------------- resources


def ramp_gigabytes(meta, file_size):
    exposure = meta.get("exposure", {})
    subarray = meta.get("subarray", {})
    try:
        pixels = (int(exposure["nints"]) * int(exposure["ngroups"])
                  * int(subarray["xsize"]) * int(subarray["ysize"]))
        return pixels * 2 / 1e9
    except (KeyError, TypeError, ValueError):
        return file_size / 1e9


def detector1_resources(meta, file_size, limits):
    gigabytes = ramp_gigabytes(meta, file_size)
    mem_mb = int(600 + limits.get("mem_mb_per_gb_of_ramp", 3000) * gigabytes)
    if str(meta.get("exposure", {}).get("readpatt", "")).startswith("NRSIRS2"):
        # NIRSpec IRS2: 3200 rows where the header says 2048, run on the whole cube with
        # the per-output time streams of one integration beside it (measured: 1.08 GB
        # peak for 4 groups, 1 integration)
        gigabytes *= 3200 / 2048
        mem_mb = int(1200 + 2 * limits.get("mem_mb_per_gb_of_ramp", 3000) * gigabytes)
    threads = max(1, min(int(limits.get("max_threads_per_job", 4)), 1 + int(gigabytes / 0.1)))
    return threads, mem_mb
