"""Regenerate webbflow/io/datamodel_tables.json from the installed stdatamodels schemas.

A development tool (stdatamodels is a test-only dependency): it records, for every
datamodel class webbflow reads or writes, which FITS keyword in which HDU carries each
``meta`` attribute and which extension holds each array, so that our products put every
value where the official readers look for it. Run after upgrading the oracle:

    .venv/bin/python tools/make_datamodel_tables.py
"""

import json
from pathlib import Path

from stdatamodels import schema as schema_util
from stdatamodels.jwst import datamodels

MODELS = [
    "Level1bModel", "RampModel", "ImageModel", "CubeModel", "IFUImageModel", "IFUCubeModel",
    "RampFitOutputModel", "SlitModel", "MultiSlitModel", "SpecModel", "MultiSpecModel",
    "SegmentationMapModel", "QuadModel", "TSOMultiSpecModel",
    "MaskModel", "SaturationModel", "SuperBiasModel", "LinearityModel", "DarkModel",
    "DarkMIRIModel", "GainModel", "ReadnoiseModel", "IPCModel", "ResetModel", "RSCDModel",
    "FlatModel", "PixelAreaModel", "NrcImgPhotomModel", "MirImgPhotomModel",
    "NisImgPhotomModel", "FgsImgPhotomModel", "DistortionModel", "FilteroffsetModel",
    "GuiderRawModel", "GuiderCalModel",
]


def walk(model_name):
    model = getattr(datamodels, model_name)()
    keywords, arrays, tables = {}, {}, {}

    def visit(sub, path, combiner, ctx, recurse):
        if not isinstance(sub, dict):
            return
        dotted = ".".join(str(p) for p in path)
        if "fits_keyword" in sub:
            entry = {"keyword": sub["fits_keyword"], "hdu": sub.get("fits_hdu", "PRIMARY")}
            kind = sub.get("type")
            if isinstance(kind, list):
                kind = [k for k in kind if k != "null"][0] if len(kind) > 1 else kind[0]
            if kind:
                entry["type"] = kind
            if "enum" in sub:
                entry["enum"] = [v for v in sub["enum"] if v is not None]
            keywords[dotted] = entry
        elif "fits_hdu" in sub and not dotted.startswith("meta"):
            dtype = sub.get("datatype")
            if isinstance(dtype, list):
                tables[dotted] = {"hdu": sub["fits_hdu"]}
            else:
                arrays[dotted] = {
                    "hdu": sub["fits_hdu"],
                    "dtype": dtype,
                    "ndim": sub.get("ndim"),
                    "default": sub.get("default"),
                }

    schema_util.walk_schema(model.schema, visit)
    return keywords, arrays, tables


def main():
    types, enums, models = {}, {}, {}
    for name in MODELS:
        keywords, arrays, tables = walk(name)
        for path, entry in keywords.items():
            if entry.get("type"):
                types.setdefault(path, entry["type"])
            if entry.get("enum"):
                enums.setdefault(path, sorted(set(enums.get(path, [])) | set(entry["enum"])))
        # the same attribute may live in different HDUs in different models
        # (PIXAR_SR: SCI of an ImageModel, PRIMARY of a PixelAreaModel), so per model
        models[name] = {
            "arrays": arrays,
            "tables": tables,
            "keywords": {path: [e["keyword"], e["hdu"]] for path, e in keywords.items()},
        }
    out = Path(__file__).resolve().parents[1] / "webbflow" / "io" / "datamodel_tables.json"
    out.write_text(json.dumps({"types": types, "enums": enums, "models": models}, sort_keys=True, separators=(",", ":")))
    print(f"{len(types)} typed keywords, {len(models)} models -> {out}")


if __name__ == "__main__":
    main()
