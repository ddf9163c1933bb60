from pathlib import Path

from impressions import demo, logs

with logs.to_file(snakemake.log[0]):
    demo.build_demo(Path(snakemake.params.root))
