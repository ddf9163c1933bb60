"""Labels and manifests are checked before any work, every problem reported at once."""

import pickle

import polars as pl
import pytest
from workflow import REPO, SNAKEMAKE

from impressions.data import clip_index, manifest
from impressions.schemas import LABELS, TRAITS


def _labels(value):
    return {t: [value] for t in TRAITS}


def _write(tmp_path, rows: list[dict], name="m.csv"):
    path = tmp_path / name
    text = ",".join(rows[0]) + "\n" + "\n".join(",".join(str(v) for v in r.values()) for r in rows) + "\n"
    path.write_text(text)
    return path


def _row(clip, split="train", **labels):
    return {"path": f"{clip}.mp4", "split": split, **{t: labels.get(t, 0.5) for t in TRAITS}}


def test_every_bad_label_is_reported_at_once_with_line_clip_and_column(tmp_path):
    path = _write(tmp_path, [
        _row("a", openness=1.7), _row("b", neuroticism=-0.2), _row("c", extraversion="NaN"),
        _row("d", agreeableness=""), _row("e", conscientiousness="high"), _row("ok"),
    ])  # fmt: skip
    with pytest.raises(clip_index.IndexError_) as err:
        clip_index.build(manifest=path)
    msg = str(err.value)
    assert msg.startswith(f"5 problem(s) in manifest {path}; nothing was processed")
    assert f"{path}: line 2, clip 'a', column 'openness': 1.7 is outside [0, 1]" in msg
    assert "line 3, clip 'b', column 'neuroticism': -0.2 is outside [0, 1]" in msg
    assert "line 4, clip 'c', column 'extraversion': nan is not a label (leave the cell empty" in msg
    assert "line 5, clip 'd', column 'agreeableness': empty, but a train clip needs every trait" in msg
    assert "line 6, clip 'e', column 'conscientiousness': 'high' is not a number" in msg
    assert "'ok'" not in msg


def test_test_split_may_be_unlabelled_but_not_partly(tmp_path):
    for clip in ("p", "q", "r"):
        (tmp_path / f"{clip}.mp4").write_bytes(b"")
    rows = [_row("p"), _row("q", "test", **dict.fromkeys(TRAITS, ""))]
    index = clip_index.build(manifest=_write(tmp_path, rows))
    assert {r["clip_id"]: r["extraversion"] for r in index.clips} == {"p": 0.5, "q": None}
    rows.append(_row("r", "test", openness=""))
    with pytest.raises(clip_index.IndexError_, match="clip 'r', column 'openness': empty while other"):
        clip_index.build(manifest=_write(tmp_path, rows))


def test_val_split_needs_labels(tmp_path):
    path = _write(tmp_path, [_row("v", "val", extraversion="")])
    with pytest.raises(clip_index.IndexError_, match="empty, but a val clip needs every trait"):
        clip_index.build(manifest=path)


def test_missing_trait_column_is_named_once(tmp_path):
    pl.DataFrame({"path": ["a.mp4", "b.mp4"], "split": ["train", "val"], "openness": [0.1, 0.2]}).write_csv(
        tmp_path / "m.csv"
    )
    with pytest.raises(clip_index.IndexError_) as err:
        clip_index.build(manifest=tmp_path / "m.csv")
    assert str(err.value).startswith("4 problem(s)")
    assert "column 'extraversion': missing, but train/val clips need every trait" in str(err.value)


def test_prediction_only_manifest_needs_no_label_columns(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    pl.DataFrame({"path": ["a.mp4"], "split": ["test"]}).write_csv(tmp_path / "m.csv")
    assert clip_index.build(manifest=tmp_path / "m.csv").clips[0]["openness"] is None


def test_parquet_rows_are_numbered_and_typed_columns_accepted(tmp_path):
    table = pl.DataFrame({"path": ["a.mp4", "b.mp4"], "split": ["train", "bogus"], "gender": [1, 2]}
                         | {t: [0.5, 0.5] for t in TRAITS} | {"interview": [2.0, None]})  # fmt: skip
    table.write_parquet(tmp_path / "m.parquet")
    with pytest.raises(clip_index.IndexError_) as err:
        clip_index.build(manifest=tmp_path / "m.parquet")
    assert "row 1, clip 'a', column 'interview': 2 is outside [0, 1]" in str(err.value)
    assert "row 2, clip 'b', column 'split': 'bogus' is not a split" in str(err.value)


def test_schema_is_a_json_schema_and_names_every_label():
    import jsonschema

    schema = manifest.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(LABELS) <= set(schema["properties"])


def test_fi_annotation_out_of_range_is_named_with_its_file(tmp_path):
    data = {label: {"x.000.mp4": 0.5, "y.000.mp4": 0.5} for label in LABELS}
    data["openness"]["y.000.mp4"] = 1.3
    (tmp_path / "annotation_training.pkl").write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(clip_index.IndexError_) as err:
        clip_index.build(tmp_path)
    assert f"{tmp_path / 'annotation_training.pkl'}: clip 'y.000', column 'openness': 1.3 is outside" in str(
        err.value
    )


def test_workflow_stops_before_any_job_with_the_list(tmp_path):
    import subprocess

    path = _write(tmp_path, [_row("a", openness=1.7), _row("b", extraversion="high")])
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
         "--config", f"manifest={path}", "results_dir=results"],
        capture_output=True, text=True,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "2 problem(s) in manifest" in out
        and "1.7 is outside [0, 1]" in out
        and "'high' is not a number" in out
    )
    assert not (tmp_path / "results").exists()
