"""The evaluation report: model results, then every interpretation section (impressions/report/render.py)."""

# The configured families and the AU-guided twins the interpretation trains.
REPORTED = (
    list(MODELS_CFG["families"])
    + [m for m in GUIDED if m not in MODELS_CFG["families"]]
    + SEEDED
)


rule report:
    """Metrics with bootstrap CIs, baselines, breakdowns, the bias audit and curves: results/report/index.html + .md."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        splits=TABLES_DIR / "splits.parquet",
        qc=TABLES_DIR / "qc.parquet",
        faces=TABLES_DIR / "faces.parquet",
        expressions=TABLES_DIR / "expressions.parquet",
        predictions=[model_files(m)["predictions"] for m in REPORTED],
        summaries=[model_files(m)["summary"] for m in REPORTED],
        curves=[model_files(m)["curve"] for m in REPORTED],
        sections=interpret_sections(),
    output:
        html=report(
            REPORT_DIR / "index.html",
            caption="../docs/report_caption.rst",
            category="Report",
        ),
        markdown=REPORT_DIR / "report.md",
        metrics=REPORT_DIR / "metrics.parquet",
        breakdowns=REPORT_DIR / "breakdowns.parquet",
        comparisons=REPORT_DIR / "comparisons.parquet",
        forest=REPORT_DIR / "forest.png",
        bias_groups=REPORT_DIR / "bias_groups.parquet",
        bias_gaps=REPORT_DIR / "bias_gaps.parquet",
        bias_figure=REPORT_DIR / "bias.png",
    log:
        LOGS / "report.log",
    benchmark:
        BENCH / "report.tsv"
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        n_boot=MODELS_CFG["bootstrap"],
        seed=MODELS_CFG["seed"],
        dataset=DATASET_NOTE,
        reproduce=(config.get("experiment") or {}).get("reproduce", []),
        experiment=(config.get("experiment") or {}).get("title", ""),
        bias=config["bias"],
    script:
        "../workflow_scripts/report.py"
