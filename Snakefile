"""Apparent-personality workflow: clips -> frames, faces, audio, expressions -> dataset tables."""


from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "impressions/config.schema.yaml")


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/preprocess.smk"
include: "rules/tables.smk"


rule all:
    input:
        dataset_tables(),
    default_target: True


onsuccess:
    print(f"\nDone. Dataset tables: {TABLES_DIR}/  (QC: {TABLES_DIR}/qc.parquet)\n")
