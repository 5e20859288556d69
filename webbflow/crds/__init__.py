"""CRDS access: configuration, context, best references, provenance."""

from webbflow.crds.references import (  # noqa: F401
    best_references,
    configure,
    crds_parameters,
    provenance,
    resolve_context,
)
