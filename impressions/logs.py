"""Logging for workflow steps: everything a step prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path


@contextlib.contextmanager
def to_file(path: str | Path):
    """Route logging, warnings, stdout and stderr (progress bars included) to `path` for the block."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1, encoding="utf-8") as f, contextlib.redirect_stderr(f), \
            contextlib.redirect_stdout(f):  # fmt: skip
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            yield
        except BaseException:
            logging.exception("step failed")
            raise
        finally:
            root.removeHandler(handler)


def clip_dirs(files) -> dict[str, Path]:
    """Per-clip folders by clip id, from a list of per-clip output files (results/clips/<id>/<file>)."""
    return {Path(f).parent.name: Path(f).parent for f in files}
