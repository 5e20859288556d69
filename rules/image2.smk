# Stage 2 imaging (calwebb_image2): rate -> cal (bkg_subtract of the level-2
# association's background members, assign_wcs, flat_field, photom) and the exposure
# drizzled alone -> i2d, with a preview of each for the report. References are chosen
# from the exposure's header.


rule image2:
    input:
        unpack(lambda wc: {"rate": f"{wc.exposure}_rate.fits", **get_image2_refs(wc)}),
        backgrounds=lambda wc: IMAGE2_BACKGROUNDS.get(wc.exposure, []),
    output:
        **image2_outputs(),
    params:
        plan=get_image2_params,
        software=f"webbflow {webbflow.__version__}",
    log:
        "logs/image2/{exposure}.log",
    benchmark:
        "benchmarks/image2/{exposure}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc: planning.image2_mem_mb(header(wc.exposure)["meta"]),
    conda:
        "../envs/webbflow.yaml"
    script:
        "../scripts/image2.py"
