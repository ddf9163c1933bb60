"""Logging for workflow steps: everything a step prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import re
import resource
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

# The last line of every step's log: what the whole process cost (see `usage_line`).
USAGE_PREFIX = "impressions-usage:"
_USAGE_FIELD = re.compile(r"(\w+)=(\S+)")


def _process_start() -> float | None:
    """The epoch second this process started (psutil comes with Snakemake), or None."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - only the wall field is lost
        return None


def _rule_name() -> str:
    """The rule of the Snakemake `script:` job running this process, or "-" outside one."""
    job = getattr(sys.modules.get("__main__"), "snakemake", None)
    return str(getattr(job, "rule", None) or "-")


def usage_line() -> str:
    """One line with what this process and its waited-for children cost so far.

    Format (space-separated key=value after the prefix, seconds and MB as decimals):

        impressions-usage: rule=<name> wall_s=<s> self_cpu_s=<s> children_cpu_s=<s> cpu_s=<s>
            self_peak_mb=<MB> children_peak_mb=<MB>

    (one line). cpu_s = self_cpu_s + children_cpu_s, each user + system time from getrusage:
    RUSAGE_SELF counts the whole process since it began (so Snakemake's script wrapper start-up too),
    RUSAGE_CHILDREN the child processes it has waited for (ffmpeg), which Snakemake's `benchmark:`
    files miss when they are short-lived. Peaks are ru_maxrss (for children: the largest one).
    wall_s is since the process started (-1 when unknown). `parse_usage` reads it back."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    self_cpu, kids_cpu = me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime
    started = _process_start()
    wall = time.time() - started if started is not None else -1.0
    kb = 1 if sys.platform != "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return (
        f"{USAGE_PREFIX} rule={_rule_name()} wall_s={wall:.3f} self_cpu_s={self_cpu:.3f} "
        f"children_cpu_s={kids_cpu:.3f} cpu_s={self_cpu + kids_cpu:.3f} "
        f"self_peak_mb={me.ru_maxrss / kb / 1024:.1f} children_peak_mb={kids.ru_maxrss / kb / 1024:.1f}"
    )


def parse_usage(text: str) -> dict[str, str | float] | None:
    """The fields of the last usage line in a log's text (numbers as floats), or None if it has none."""
    lines = [line for line in text.splitlines() if line.startswith(USAGE_PREFIX)]
    if not lines:
        return None
    fields = dict(_USAGE_FIELD.findall(lines[-1][len(USAGE_PREFIX) :]))
    return {k: v if k == "rule" else float(v) for k, v in fields.items()}


def usage_by_rule(logs_dir: str | Path, key=None, strict: bool = True) -> dict[str, dict]:
    """The usage lines of every job log below `logs_dir`, summed per rule.

    Per key (`key(log_path, usage)`, default the rule's name): `rule`, `jobs`, `wall_s` and `cpu_s`
    summed over its jobs, and `peak_mb`, the largest process of any of them. A log without a usage line
    raises ValueError naming it, or is skipped when not `strict`.
    """
    out: dict[str, dict] = {}
    for path in sorted(Path(logs_dir).rglob("*.log")):
        usage = parse_usage(path.read_text(errors="replace"))
        if usage is None:
            if strict:
                raise ValueError(f"{path}: no usage line (a step without impressions.logs.to_file?)")
            continue
        name = str(usage["rule"]) if key is None else key(path, usage)
        acc = out.setdefault(
            name, {"rule": usage["rule"], "jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "peak_mb": 0.0}
        )
        acc["jobs"] += 1
        acc["wall_s"] += float(usage["wall_s"])
        acc["cpu_s"] += float(usage["cpu_s"])
        acc["peak_mb"] = max(acc["peak_mb"], float(usage["self_peak_mb"]), float(usage["children_peak_mb"]))
    return out


@contextlib.contextmanager
def to_file(path: str | Path):
    """Route logging, warnings, stdout and stderr (progress bars included) to `path` for the block.

    The log's last line, written even when the block fails, is the process's `usage_line`."""
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
            f.write(usage_line() + "\n")


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
