from impressions import logs
from impressions.training import fusion

with logs.to_file(snakemake.log[0]):
    fusion.write_late_average(
        list(snakemake.input.predictions),
        snakemake.input.clips,
        dict(snakemake.output.items()),
    )
