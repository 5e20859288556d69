# webbflow: the JWST calibration pipeline as a Snakemake workflow.
#
#   snakemake --cores 16 -s /path/to/webbflow/Snakefile --directory /data/jw01234
#
# Products are written next to their inputs with only the suffix changed; see README.md.
from snakemake.utils import min_version

min_version("9.19")


configfile: f"{workflow.basedir}/config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/detector1.smk"
include: "rules/dark.smk"
include: "rules/image2.smk"
include: "rules/image3.smk"
include: "rules/associations.smk"
include: "rules/spectra.smk"


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
