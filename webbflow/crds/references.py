"""Best reference files through the real ``crds`` client, online or from a cache alone.

The workflow resolves every exposure's references once, before any job runs; step
scripts only open the paths they are given. A reftype whose rule says N/A comes back as
the string ``"N/A"`` and its step is recorded as SKIPPED. Every failure (no cache, no
server, unknown reftype, a chosen file missing from an offline cache) is one
:class:`WebbflowError` line naming the exposure, the reftype and the context.
"""

import ast
import logging
import os
import sys
from pathlib import Path

from webbflow.errors import WebbflowError
from webbflow.io.products import flatten_meta, get_meta

OBSERVATORY = "jwst"
SERVERLESS_URL = "https://crds-serverless-mode.stsci.edu"

# config key -> environment variable read by crds at import time
ENVIRONMENT = {
    "path": "CRDS_PATH",
    "server_url": "CRDS_SERVER_URL",
    "mode": "CRDS_MODE",
    "context": "CRDS_CONTEXT",
}


def configure(settings=None):
    """Export the CRDS settings (config keys win over the environment) before crds loads.

    Returns the effective settings. With no server URL at all, the cache is used alone
    (server-less mode), which is what a machine without network needs.
    """
    settings = dict(settings or {})
    previous_path = os.environ.get("CRDS_PATH")
    effective = {}
    for key, variable in ENVIRONMENT.items():
        value = settings.get(key) or os.environ.get(variable)
        if value:
            effective[key] = str(value)
            os.environ[variable] = str(value)
    if "path" in effective:
        effective["path"] = str(Path(effective["path"]).expanduser().resolve())
        os.environ["CRDS_PATH"] = effective["path"]
    if "server_url" not in effective:
        effective["server_url"] = SERVERLESS_URL
        os.environ["CRDS_SERVER_URL"] = SERVERLESS_URL
    if effective["server_url"] == SERVERLESS_URL:
        effective["mode"] = "local"
        os.environ["CRDS_MODE"] = "local"
    if "crds" in sys.modules and previous_path != os.environ.get("CRDS_PATH"):
        # rules are cached by file name, and another cache may reuse the same names
        from crds.core import rmap  # noqa: PLC0415

        rmap._load_mapping.cache.clear()
    # the science code must not ask CRDS for step parameters behind the user's back
    os.environ.setdefault("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    logging.getLogger("CRDS").setLevel(logging.WARNING)
    return effective


def offline(settings):
    return settings.get("server_url", SERVERLESS_URL) == SERVERLESS_URL or \
        settings.get("mode") == "local"


def _crds():
    import crds  # noqa: PLC0415 - must follow configure(): crds reads the environment on import
    from crds.core import log as crds_log  # noqa: PLC0415

    crds_log.set_verbose(False)
    return crds


def resolve_context(settings):
    """The pipeline mapping to use: pinned in settings, else the operational one (read
    from the cache's server configuration when offline, asked of the server online)."""
    if settings.get("context"):
        return settings["context"]
    if offline(settings):
        server_config = Path(settings.get("path", "")) / "config" / OBSERVATORY / "server_config"
        try:
            return ast.literal_eval(server_config.read_text())["operational_context"]
        except (OSError, ValueError, SyntaxError, KeyError) as exc:
            raise WebbflowError(server_config, "cannot read the operational CRDS context of "
                                               f"an offline cache ({exc})") from None
    crds = _crds()
    from crds.core import heavy_client  # noqa: PLC0415

    try:
        context = heavy_client.get_context_name(OBSERVATORY)
    except Exception as exc:
        raise WebbflowError(settings.get("server_url", "CRDS_SERVER_URL"),
                            f"cannot determine the CRDS context: {exc}") from None
    return crds.core.config.pop_crds_uri(context) if "://" in context else context


def known_reftypes(context, instrument):
    crds = _crds()
    try:
        pmap = crds.get_cached_mapping(context)
        return set(pmap.get_imap(instrument.lower()).selections)
    except Exception as exc:
        raise WebbflowError(context, f"cannot read CRDS rules for {instrument}: {exc}") from None


def crds_parameters(meta):
    """The flat ``META.*`` dict CRDS matches rules against."""
    return flatten_meta(meta)


def best_references(meta, reftypes, *, context, settings, exposure, overrides=None):
    """{reftype: local path or "N/A"} for one exposure.

    ``overrides`` maps reftype to a path or "N/A", like the official ``override_<reftype>``.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v}
    wanted = [r for r in reftypes if r not in overrides]
    chosen = {r: str(overrides[r]) if overrides[r] != "N/A" else "N/A"
              for r in reftypes if r in overrides}
    if not wanted:
        return chosen
    instrument = get_meta(meta, "instrument.name")
    if not instrument:
        raise WebbflowError(exposure, "no INSTRUME keyword: cannot choose reference files")
    known = known_reftypes(context, instrument)
    for reftype in wanted:
        if reftype not in known:
            raise WebbflowError(exposure, f"unknown reference type {reftype!r} for "
                                          f"{instrument} in CRDS context {context}")
    crds = _crds()
    try:
        names = crds.getrecommendations(crds_parameters(meta), reftypes=wanted,
                                        context=context, observatory=OBSERVATORY, fast=True)
    except Exception as exc:
        raise WebbflowError(exposure, f"CRDS cannot choose {', '.join(wanted)} under "
                                      f"{context}: {exc}") from None
    for reftype in wanted:
        name = names.get(reftype, "NOT FOUND no answer")
        if name.upper().startswith("NOT FOUND"):
            if "N/A" in name.upper():
                chosen[reftype] = "N/A"
                continue
            raise WebbflowError(exposure, f"no {reftype} reference under {context}: "
                                          f"{name[len('NOT FOUND'):].strip()}")
        chosen[reftype] = _locate(name, reftype, context, settings, exposure)
    return chosen


def _locate(name, reftype, context, settings, exposure):
    crds = _crds()
    path = Path(crds.core.config.locate_file(name, OBSERVATORY))
    if path.exists():
        return str(path)
    if offline(settings):
        raise WebbflowError(exposure, f"{reftype} reference {name} (context {context}) is not "
                                      f"in the CRDS cache {settings.get('path')} and CRDS is offline")
    try:
        crds.api.dump_references(context, baserefs=[name])
    except Exception as exc:
        raise WebbflowError(exposure, f"cannot download {reftype} reference {name} "
                                      f"(context {context}): {exc}") from None
    return str(path)


def _crds_version():
    """The installed crds version, from its package metadata: a job that only records
    it need not import crds (~0.25 s)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("crds")
    except importlib.metadata.PackageNotFoundError:
        return _crds().__version__


def provenance(meta, refs, context):
    """Record the context and the reference files used, as the official finalize_result."""
    crds_meta = meta.setdefault("ref_file", {}).setdefault("crds", {})
    crds_meta["context_used"] = context
    crds_meta["sw_version"] = _crds_version()
    for reftype, path in refs.items():
        name = "N/A" if path == "N/A" else f"crds://{Path(path).name}"
        meta["ref_file"].setdefault(reftype, {})["name"] = name
