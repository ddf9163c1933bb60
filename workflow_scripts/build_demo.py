from pathlib import Path

from impressions import logs
from impressions.data import demo

with logs.to_file(snakemake.log[0]):
    # the annotation pickles sit at the demo root
    demo.build_demo(Path(snakemake.output.annotations[0]).parent)
