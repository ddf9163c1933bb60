"""Apparent-personality workflow: clips -> frames, faces, audio, expressions -> dataset tables."""

import os
import sys

from snakemake.utils import min_version, validate

from impressions import config_sources
from impressions.config_types import coerce_file as coerce_config
from impressions.explain import analyses as analysis_registry
from impressions.models import registry as model_registry

min_version("9.0")


# Defaults live beside the Snakefile, so `--directory`/`-s` runs from elsewhere find them too.
configfile: os.path.join(workflow.basedir, "config.yaml")


# Nested `--config` values arrive as strings ('{per_clip: 20}' gives '20'): type them by the schema first.
coerce_config(config, os.path.join(workflow.basedir, "impressions/config.schema.yaml"))
validate(config, "impressions/config.schema.yaml")
# Family names are checked against the model registry, not listed in the schema; the sub-sections of
# interpret against the analysis registry.
model_registry.check_config(config)
analysis_registry.check_config(config)
# An experiment preset that leaves a result-shaping key to config.yaml (the demo's) or to code says so.
_inherited = config_sources.inherited_warning(
    config,
    workflow.config_settings.configfiles,
    base=os.path.join(workflow.basedir, "config.yaml"),
)
if _inherited:
    print(f"Warning: {_inherited}", file=sys.stderr)


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/preprocess.smk"
include: "rules/tables.smk"
include: "rules/models.smk"
include: "rules/interpret.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        dataset_tables(),
        model_targets(),


onsuccess:
    print(f"\nDone. Dataset tables: {TABLES_DIR}/  (QC: {TABLES_DIR}/qc.parquet)")
    if model_targets():
        print(f"Models: {MODELS_DIR}/  Report: {REPORT_DIR}/index.html")
    print()
