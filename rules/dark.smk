# Stage 1 of dark exposures (calwebb_dark): uncal -> dark, the detector1 steps up to but
# not including dark_current, kept as a corrected 4-D ramp.


rule dark:
    input:
        unpack(lambda wc: {"uncal": f"{wc.exposure}_uncal.fits", **get_detector1_refs(wc)}),
    output:
        dark="{exposure}_dark.fits",
    params:
        plan=get_detector1_params,
        software=f"webbflow {webbflow.__version__}",
    log:
        "logs/dark/{exposure}.log",
    benchmark:
        "benchmarks/dark/{exposure}.tsv"
    threads: lambda wc: get_detector1_resources(wc)[0]
    resources:
        mem_mb=lambda wc: get_detector1_resources(wc)[1],
    conda:
        "../envs/webbflow.yaml"
    script:
        "../scripts/detector1.py"
