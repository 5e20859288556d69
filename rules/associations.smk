# Associations generated from the headers (when MAST delivered none): the plan of the
# stage-2 and stage-3 products, as standard association JSON in asn/.


rule association:
    output:
        "asn/{association}",
    params:
        content=lambda wc: ASSOCIATIONS[wc.association],
    log:
        "logs/association/{association}.log",
    localrule: True
    conda:
        "../envs/webbflow.yaml"
    script:
        "../scripts/association.py"
