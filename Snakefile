# webbflow: the JWST calibration pipeline as a Snakemake workflow.
#
#   snakemake --cores 16 -s /path/to/webbflow/Snakefile --directory /data/jw01234
#
# Products are written next to their inputs with only the suffix changed; see README.md.
import gc

from snakemake.utils import min_version

min_version("9.19")

# Planning a 1,000-exposure program makes ~3,000 jobs of Snakemake objects, and CPython's
# cycle collector kept rescanning them as they piled up: 0.9 s of a 4.7 s CPU dry run
# (1,053 young, 96 middle and 8 full collections). Young collections every 20,000
# allocations instead of every 700; cycles are still collected (this process only: jobs
# run in their own interpreters).
gc.set_threshold(20000, 10, 10)


configfile: f"{workflow.basedir}/config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/detector1.smk"
include: "rules/dark.smk"
include: "rules/image2.smk"
include: "rules/image3.smk"
include: "rules/associations.smk"
include: "rules/spectra.smk"


# What the plan is made of (config, headers, associations, rules) lives to the end of the
# run: out of the cycle collector's view (see gc.set_threshold above).
gc.freeze()


rule all:
    default_target: True
    input:
        get_final_outputs(),


rule detector1_all:
    input:
        get_detector1_outputs(),


rule image2_all:
    input:
        get_image2_outputs(),


rule image3_all:
    input:
        get_image3_outputs(),


rule associations_all:
    input:
        get_association_outputs(),


rule spectra_all:
    input:
        get_spectrum_plot_outputs(),
