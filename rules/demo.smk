if DEMO_ROOT is not None:

    rule build_demo:
        """Render the demo dataset from media shipped in PyPI packages, in the FI layout."""
        output:
            videos=[CLIP_PATHS[clip_id] for clip_id in CLIP_PATHS],
            annotations=[
                str(DEMO_ROOT / name)
                for name in clip_index.annotations.ANNOTATION_FILES.values()
            ],
        log:
            LOGS / "build_demo.log",
        benchmark:
            BENCH / "build_demo.tsv"
        conda:
            "../envs/preprocess.yaml"
        script:
            "../workflow_scripts/build_demo.py"

    rule demo_transcripts:
        """The demo's transcription pickles: words drawn from its labels (impressions/data/demo_text.py); renders nothing."""
        output:
            [str(DEMO_ROOT / name) for name in transcripts.TRANSCRIPT_FILES.values()],
        log:
            LOGS / "demo_transcripts.log",
        benchmark:
            BENCH / "demo_transcripts.tsv"
        conda:
            "../envs/preprocess.yaml"
        script:
            "../workflow_scripts/demo_transcripts.py"
