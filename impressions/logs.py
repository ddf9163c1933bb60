"""Logging for workflow steps: everything a step prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
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


class ClipFolders(Mapping):
    """Per-clip folders under `root` by clip id: the clips whose job finished (their qc.json exists).

    What model rules read the per-clip arrays through: they name the gathered tables, which are rebuilt
    whenever a clip's job re-runs, instead of 10,000 per-clip files (each costs planning time)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __getitem__(self, clip_id: str) -> Path:
        if clip_id not in self:
            raise KeyError(clip_id)
        return self.root / clip_id

    def __contains__(self, clip_id: object) -> bool:
        return isinstance(clip_id, str) and (self.root / clip_id / "qc.json").is_file()

    def __iter__(self) -> Iterator[str]:
        return (p.parent.name for p in sorted(self.root.glob("*/qc.json")))

    def __len__(self) -> int:
        return sum(1 for _ in self)
