"""Report sections of the analyses: `Section` (text, figures, tables, saved as JSON), reading them back
for the report, and the not-computed section (with placeholders) an analysis writes when it cannot run."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from impressions.explain import analyses

log = logging.getLogger(__name__)


FIGURE_DPI = 100


# ----------------------------------------------------------------------------------------------------
# Sections: what the report renders


class Section:
    """A report section: text, figures with captions and tables, saved as JSON beside the figures."""

    def __init__(self, title: str, text: str = "", order: int = 50):
        self.title, self.text, self.order = title, text, order
        self.figures: list[dict] = []
        self.tables: list[dict] = []

    def figure(self, path: str | Path, caption: str) -> None:
        self.figures.append({"path": str(path), "caption": caption})

    def table(self, frame, caption: str, path: str | Path, digits: int = 3) -> None:
        """Add `frame` (polars) as a table; it is also written to `path` (.csv or .parquet)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path) if path.suffix == ".parquet" else frame.write_csv(path)
        rows = [[_cell(v, digits) for v in row] for row in frame.iter_rows()]
        self.tables.append({"caption": caption, "path": str(path), "header": frame.columns, "rows": rows})

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        data = {"title": self.title, "text": self.text, "order": self.order, "figures": self.figures,
                "tables": self.tables}  # fmt: skip
        Path(path).write_text(json.dumps(data, indent=1, default=str))


def _cell(value, digits: int):
    if isinstance(value, float):
        return (
            "n/a"
            if np.isnan(value)
            else f"{value:.{digits}g}"
            if abs(value) < 1e-3
            else f"{value:.{digits}f}"
        )
    return "" if value is None else value


def read_sections(paths: Sequence[str | Path]) -> list[dict]:
    """Sections in report order (their `order`, then as given); a missing or unreadable file becomes a
    section saying so, last: an analysis that could not run must not take the report with it."""
    sections = []
    for path in map(Path, paths):
        try:
            section = json.loads(path.read_text())
            if not isinstance(section, dict) or "title" not in section:
                raise ValueError("not a section (no title)")
        except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
            section = {
                "title": f"Analysis not available: {path.parent.name}/{path.name}",
                "text": f"This analysis wrote no readable section ({type(err).__name__}: {err}); "
                "see its log under results/logs/interpret/.", "figures": [], "tables": [], "order": 99,
            }  # fmt: skip
        sections.append(section)
    return sorted(sections, key=lambda s: s.get("order", 50))


class NotComputable(ValueError):
    """The inputs cannot support an analysis (too few clips, no faces in a split ...): its section says
    why instead of failing the workflow, in strict mode too."""


STRICT_KEY = "strict"
"""The top-level config key (``--config strict=true``): an error other than `NotComputable` in an
analysis fails its job instead of becoming a not-computed section."""


def strict(config: Mapping) -> bool:
    """Whether the workflow's `config` asks for strict failures (`STRICT_KEY`, default false)."""
    return bool(config.get(STRICT_KEY, False))


def clips_used(images) -> str:
    """The sentence a section of a per-model analysis says about the clips it read (`images.splits`):
    with training clips it describes what the model learnt from, not a held-out effect."""
    splits = ", ".join(images.splits) or "all"
    if set(images.splits) <= {"test"} and images.splits:
        return "Clips: the test split only (held out)."
    return (
        f"Clips: the {splits} split(s) (interpret.splits); with training clips this section describes the "
        "data the model was trained on, not a held-out effect."
    )


def placeholder(path: Path, reason: str) -> None:
    """A declared output that could not be computed: a figure or a one-row table saying why."""
    import polars as pl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        empty_figure(path, "not computed:\n" + "\n".join(_wrap(reason, 60)))
    elif path.suffix == ".csv":
        pl.DataFrame({"not_computed": [reason]}).write_csv(path)
    elif path.suffix == ".parquet":
        pl.DataFrame({"not_computed": [reason]}).write_parquet(path)
    elif path.suffix != ".json":
        path.write_text(f"not computed: {reason}\n")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)[:6] or [""]


def not_computed(
    analysis: str, model: str, reason: str, files: Mapping[str, Path], failed: bool = False
) -> Section:
    """Write the section of an analysis that could not run, and a placeholder for each declared output
    (so that the rest of the workflow and the report go on and show the gap). Its title and order are
    the analysis's (`impressions.explain.analyses`). `failed`: it raised an error the data do not
    explain (a bug, or an input no check foresaw), and the section says so."""
    spec = analyses.ANALYSES.get(analysis)
    title, order = (spec.title, spec.order) if spec else (analysis, 90)
    text = (
        f"This analysis failed with an error: {reason}. This is not a property of the data: see its log "
        f"under results/logs/interpret/; with --config {STRICT_KEY}=true the run stops on it."
        if failed
        else f"This analysis could not be computed: {reason}."
    )
    section = Section(
        title.format(model=model) + (" (failed)" if failed else " (not computed)"),
        text + " Its figures and tables are placeholders.",
        order=order,
    )
    for kind, path in files.items():
        if kind != "section":
            placeholder(Path(path), reason)
    section.write(files["section"])
    return section


def guarded(
    analysis: str, model: str, files: Mapping[str, Path], fn, *args, strict: bool = False, **kwargs
) -> Section:
    """Run one analysis. Inputs that cannot support it (`NotComputable`) give its not-computed section
    with the reason; any other error is re-raised when `strict`, else logged with its traceback and
    written as a failed section (the report still renders, saying what is missing and why)."""
    try:
        return fn(*args, **kwargs)
    except NotComputable as error:
        log.warning("%s of %s not computed: %s", analysis, model, error)
        return not_computed(analysis, model, str(error), files)
    except Exception as error:
        if strict:
            raise
        log.exception("%s of %s failed", analysis, model)
        return not_computed(analysis, model, f"{type(error).__name__}: {error}", files, failed=True)


def polars_types(spec: Mapping[str, str]) -> dict:
    import polars as pl

    return {k: getattr(pl, v) for k, v in spec.items()}


def empty_figure(path, text: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 1), dpi=FIGURE_DPI)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
