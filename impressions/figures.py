"""Writing a matplotlib figure: its title, layout, folder and closing, in one place.

A base module below the stages: the analyses (explain) write their figures with it, and explain sits
below the report, so it cannot live there."""

from __future__ import annotations

from pathlib import Path


def save(fig, path: str | Path, title: str | None = None) -> Path:
    """Title `fig` (a suptitle), lay it out, write it to `path` (making the folder) and close it."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)  # figures are written by the hundred in one process: free each one
    return path
