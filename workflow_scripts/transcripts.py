from impressions import logs
from impressions.data import clip_index, transcripts

with logs.to_file(snakemake.log[0]):
    texts = transcripts.for_config(snakemake.config, clip_index.demo_root(snakemake.config))
    counts = transcripts.write_table(snakemake.input.clips, texts, snakemake.output[0])
    print(", ".join(f"{n} {what}" for what, n in counts.items()))
