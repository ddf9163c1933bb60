"""The whole workflow on a 20-clip First Impressions layout of real face video: partial faces, sideways
and multi-person clips, still images, a clip without a face. The interpretation stage once crashed on
such data (a units table typed from its first rows); every analysis must now complete or say why not,
and the report must be written."""

import json

import polars as pl
import pytest
from model_data import tiny_models
from workflow import run, write_config

from impressions.explain import analyses
from impressions.testing import real_clips, write_fi_annotations

pytestmark = [pytest.mark.workflow, pytest.mark.heavy]

MODELS = tiny_models(["image", "face", "audio"], epochs=2, image={"input_size": 32}, face={"input_size": 32})
INTERPRET = {
    "max_frames": 120, "top_k": 2, "unit_top": 5, "au_top_n": 10, "au_top_clips": 2,
    "au_guidance": {"weight": 1.0, "models": ["face"], "sweep": [0, 1]},
    "manifold": {"models": ["image", "face"], "method": "tsne", "perplexity": 5, "neighbors": 2},
}  # fmt: skip


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp("fi20")
    clips = real_clips(root)
    assert len(clips) == 20
    write_fi_annotations(root, {s: [c for c, v in clips.items() if v == s] for s in ("train", "val", "test")})
    work = tmp_path_factory.mktemp("work")
    # faces.search: the default, full; tests/test_tracking.py compares both searches on these kinds
    write_config(work, data_root=str(root), results_dir="out", models=MODELS, interpret=INTERPRET)
    run(work)
    return clips, work / "out"


def test_twenty_real_clips_complete_end_to_end(done):
    _, out_dir = done
    report = (out_dir / "report" / "report.md").read_text()
    assert "What the networks look at" in report
    for model in ("image", "face"):
        for analysis in ("cam", "units", "au_maps"):
            section = json.loads((out_dir / "interpret" / analysis / model / "section.json").read_text())
            assert section["title"] in report
    units = pl.read_parquet(out_dir / "interpret" / "units" / "face" / "units.parquet")
    assert units.schema["part"] == pl.String
    for name in analyses.get("cam_overlap").files.values():
        assert (out_dir / "interpret" / "cam_overlap" / "image_cam" / name).stat().st_size > 0
    assert (out_dir / "interpret" / "au_guidance_sweep" / "au_guidance_sweep.csv").is_file()
    assert "Manifold view" in report
