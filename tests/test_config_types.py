"""Config values given on the command line are typed by the schema, as in config.yaml."""

import subprocess

import pytest
from workflow import REPO, SNAKEMAKE

from impressions.config_types import coerce, coerce_file

SCHEMA = REPO / "impressions" / "config.schema.yaml"


def test_nested_strings_become_the_schema_types():
    config = {"frames": {"per_clip": "20", "size": "64"}, "faces": {"min_score": "0.5"},
              "models": {"amp": "true", "families": ["image"]}, "shards": 3}  # fmt: skip
    coerce_file(config, SCHEMA)
    assert config["frames"] == {"per_clip": 20, "size": 64}
    assert config["faces"]["min_score"] == 0.5
    assert config["models"]["amp"] is True
    assert config["models"]["families"] == ["image"]


def test_values_that_do_not_read_as_the_type_stay_for_validation_to_report():
    schema = {"properties": {"n": {"type": "integer"}, "s": {"type": "string"}}}
    assert coerce({"n": "twenty", "s": "20"}, schema) == {"n": "twenty", "s": "20"}
    assert coerce({"n": "2.5"}, schema) == {"n": "2.5"}  # not an integer: validation names it


def test_nullable_integer_accepts_null():
    schema = {"properties": {"x": {"type": ["integer", "null"]}}}
    assert coerce({"x": "null"}, schema) == {"x": None}
    assert coerce({"x": "7"}, schema) == {"x": 7}


@pytest.mark.parametrize(
    "value, ok", [("{per_clip: 20}", True), ("{per_clip: 0}", False), ("{per_clip: lots}", False)]
)
def test_snakemake_accepts_nested_command_line_values(tmp_path, value, ok):
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--dry-run",
         "--config", f"frames={value}", f"results_dir={tmp_path / 'results'}", "models={families: []}",
         "--", "clip_index"],
        capture_output=True, text=True,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, out
        assert "is not of type" not in out
    else:
        assert proc.returncode != 0
        assert "per_clip" in out and ("minimum" in out or "is not of type 'integer'" in out), out
