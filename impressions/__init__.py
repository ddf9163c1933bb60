"""Apparent-personality analysis from video: preprocessing, models, interpretation, reports.

One module per workflow stage; no module imports Snakemake, so everything here is importable
and testable on its own.
"""

__version__ = "0.1.0"
