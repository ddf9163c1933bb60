from pathlib import Path

from impressions import logs
from impressions.data import demo_text

with logs.to_file(snakemake.log[0]):
    for path in demo_text.write_transcripts(Path(snakemake.output[0]).parent):
        print(f"wrote {path}")
