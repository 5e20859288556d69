# Stage 3 imaging (calwebb_image3): one job per level-3 imaging association, cal files ->
# each member's crf (outliers flagged) and the product's i2d. Jobs are made from the
# associations planned when the DAG is built, since each writes a set of files that only
# the association knows.

IMAGE3_PLANS = _image3_plans()

for _index, (_asn_name, _asn_plan) in enumerate(IMAGE3_PLANS.items()):

    rule:
        name:
            f"image3_{_index + 1}"
        input:
            asn=f"asn/{_asn_name}",
            cal=[f"{stem}_cal.fits" for stem in _asn_plan["stems"]],
        output:
            i2d=f"{_asn_plan['product']}_i2d.fits",
            crf=[f"{stem}_{_asn_plan['asn_id']}_crf.fits" for stem in _asn_plan["stems"]],
        params:
            steps=planning.canonical(image3_config(_asn_plan)),
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
