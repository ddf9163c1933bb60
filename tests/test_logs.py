"""The usage line every workflow step's log ends with (impressions/logs.py)."""

import subprocess
import sys
import types

import pytest

from impressions import logs

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass"


def test_usage_line_counts_waited_children(tmp_path, monkeypatch):
    """A child's CPU (as ffmpeg's in a shard job) is in children_cpu_s, the rule name comes from the
    script job's `snakemake` object, and the line is the log's last."""
    monkeypatch.setattr(
        sys.modules["__main__"], "snakemake", types.SimpleNamespace(rule="demo_rule"), raising=False
    )
    log = tmp_path / "step.log"
    before = logs.parse_usage(logs.usage_line())
    with logs.to_file(log):
        print("working")
        subprocess.run([sys.executable, "-c", BURN.format(s=0.4)], check=True)
        exec(BURN.format(s=0.2))
    text = log.read_text()
    assert text.splitlines()[-1].startswith(logs.USAGE_PREFIX)
    usage = logs.parse_usage(text)
    assert usage["rule"] == "demo_rule"
    assert usage["children_cpu_s"] - before["children_cpu_s"] >= 0.35
    assert usage["self_cpu_s"] - before["self_cpu_s"] >= 0.18
    assert usage["cpu_s"] == pytest.approx(usage["self_cpu_s"] + usage["children_cpu_s"], abs=0.002)
    assert usage["self_peak_mb"] > 1 and usage["children_peak_mb"] > 1
    assert usage["wall_s"] >= 0.5  # since this (test) process started


def test_usage_line_written_when_the_step_fails(tmp_path):
    log = tmp_path / "failed.log"
    with pytest.raises(ValueError), logs.to_file(log):
        raise ValueError("bad clip")
    text = log.read_text()
    assert "step failed" in text and "ValueError: bad clip" in text
    usage = logs.parse_usage(text)
    assert usage is not None and usage["cpu_s"] > 0


def test_parse_usage_without_a_line():
    assert logs.parse_usage("2026 INFO x: nothing measured\n") is None


def test_usage_by_rule_sums_jobs_and_names_a_log_without_a_line(tmp_path):
    line = (
        "impressions-usage: rule={r} wall_s={w} self_cpu_s=0 children_cpu_s=0 cpu_s={c} "
        "self_peak_mb={m} children_peak_mb=5"
    )
    (tmp_path / "shard").mkdir()
    (tmp_path / "shard" / "0.log").write_text("work\n" + line.format(r="shard", w=2, c=1.5, m=100) + "\n")
    (tmp_path / "shard" / "1.log").write_text(line.format(r="shard", w=3, c=2.5, m=300) + "\n")
    (tmp_path / "gather.log").write_text(line.format(r="gather", w=1, c=0.25, m=2) + "\n")
    totals = logs.usage_by_rule(tmp_path)
    assert totals["shard"] == {"rule": "shard", "jobs": 2, "wall_s": 5.0, "cpu_s": 4.0, "peak_mb": 300.0}
    assert totals["gather"]["peak_mb"] == 5.0  # the child was the larger process
    by_file = logs.usage_by_rule(tmp_path, key=lambda path, usage: path.stem)
    assert sorted(by_file) == ["0", "1", "gather"]
    (tmp_path / "crashed.log").write_text("Traceback ...\n")
    with pytest.raises(ValueError, match="crashed.log"):
        logs.usage_by_rule(tmp_path)
    assert logs.usage_by_rule(tmp_path, strict=False) == totals
