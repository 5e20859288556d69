# Stage 3 imaging (calwebb_image3): one job per level-3 imaging association, cal files
# -> each member's crf (outliers flagged), the product's i2d (and its preview) and,
# unless switched off, its source catalog (cat.ecsv) and segmentation map (segm). Jobs
# are made from the associations known when the DAG is built (MAST's delivered ones, or
# else the generated ones in asn/), since each writes a set of files that only the
# association knows. Configuration and references (APCORR, ABVEGAOFFSET) follow the
# first member's header.

IMAGE3_PLANS = _image3_plans()

for _index, (_asn_path, _asn_plan) in enumerate(IMAGE3_PLANS.items()):

    rule:
        name:
            f"image3_{_index + 1}"
        input:
            unpack(lambda wildcards, stem=_asn_plan["stems"][0]: plan_refs("image3", stem)),
            asn=_asn_path,
            cal=[f"{stem}_cal.fits" for stem in _asn_plan["stems"]],
            **image3_refcat(_asn_plan),
        output:
            **image3_products(_asn_plan),
            i2d_preview=preview(
                image3_products(_asn_plan)["i2d"], "image3_i2d.rst", "Stage 3",
                product=_asn_plan["product"]
            ),
            crf=[f"{stem}_{_asn_plan['asn_id']}_crf.fits" for stem in _asn_plan["stems"]],
        params:
            plan=lambda wildcards, stem=_asn_plan["stems"][0]: plan_params("image3", stem),
            product=_asn_plan["product"],
            asn_id=_asn_plan["asn_id"],
            software=f"webbflow {webbflow.__version__}",
        log:
            f"logs/image3/{_asn_plan['product']}.log",
        benchmark:
            f"benchmarks/image3/{_asn_plan['product']}.tsv"
        threads: 1
        resources:
            mem_mb=planning.image3_mem_mb([header(stem)["meta"] for stem in _asn_plan["stems"]]),
        conda:
            "../envs/webbflow.yaml"
        script:
            "../scripts/image3.py"
