from impressions import logs
from impressions.data import demo_text

with logs.to_file(snakemake.log[0]):
    for path in demo_text.write_transcripts(snakemake.params.root):
        print(f"wrote {path}")
