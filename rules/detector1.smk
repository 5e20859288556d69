# Stage 1 (calwebb_detector1 / calwebb_tso1): uncal -> rate + rateints, all steps in one job.


rule detector1:
    input:
        unpack(lambda wc: {"uncal": f"{wc.exposure}_uncal.fits", **get_detector1_refs(wc)}),
    output:
        rate="{exposure}_rate.fits",
        rateints="{exposure}_rateints.fits",
        rate_preview=preview(
            "{exposure}_rate.fits", "rate.rst", "Stage 1", exposure="{exposure}"
        ),
        **get_detector1_optional_outputs(),
    params:
        plan=get_detector1_params,
        software=f"webbflow {webbflow.__version__}",
    log:
        "logs/detector1/{exposure}.log",
    benchmark:
        "benchmarks/detector1/{exposure}.tsv"
    threads: lambda wc: get_detector1_resources(wc)[0]
    resources:
        mem_mb=lambda wc: get_detector1_resources(wc)[1],
    conda:
        "../envs/webbflow.yaml"
    script:
        "../scripts/detector1.py"
