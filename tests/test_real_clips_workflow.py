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
from impressions.testing import face_clip, ffmpeg, out, src, write_fi_annotations

pytestmark = [pytest.mark.workflow, pytest.mark.heavy]

MODELS = tiny_models(["image", "face", "audio"], epochs=2, image={"input_size": 32}, face={"input_size": 32})
INTERPRET = {
    "max_frames": 120, "top_k": 2, "unit_top": 5, "au_top_n": 10, "au_top_clips": 2,
    "au_guidance": {"weight": 1.0, "models": ["face"], "sweep": [0, 1]},
    "manifold": {"models": ["image", "face"], "method": "tsne", "perplexity": 5, "neighbors": 2},
}  # fmt: skip


def still(path, image: str, seconds: float = 3.0) -> None:
    """A still image looped into a clip with a tone."""
    ffmpeg("-loop", "1", "-t", str(seconds), "-i", src(image), "-f", "lavfi", "-t", str(seconds), "-i",
           "sine=frequency=330:sample_rate=16000", "-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2,format=yuv420p",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", out(path))  # fmt: skip


def build(root):
    """20 clips in FI layout: (clip id, split) and the videos under nested folders."""
    clips = {}

    def add(name, split, make):
        path = root / split / "batch" / f"{name}.mp4"
        make(path)
        clips[name] = split

    for k, start in enumerate((0, 2, 4, 6, 8, 10, 12, 14)):
        add(f"face{k}.00{k % 3}", ["train", "train", "train", "train", "train", "val", "test", "test"][k],
            lambda p, s=start: face_clip(p, start=s, seconds=3))  # fmt: skip
    for k, split in enumerate(("train", "val", "test")):  # the right half of the face cropped away
        add(
            f"partial{k}.000",
            split,
            lambda p, s=3 * k: face_clip(p, start=s, seconds=3, vf="crop=380:360:0:0"),
        )
    for k, split in enumerate(("train", "test")):  # rotated a quarter turn
        add(f"sideways{k}.000", split, lambda p, s=5 + k: face_clip(p, start=s, seconds=3, vf="transpose=1"))
    for k, split in enumerate(("train", "val")):  # the person twice, side by side
        add(f"twice{k}.000", split,
            lambda p, s=7 + k: face_clip(p, start=s, seconds=3, vf="split[a][b];[a][b]hstack"))  # fmt: skip
    stills = (("still0.000", "train", "single_face.jpg"), ("still1.000", "train", "multi_face.jpg"),
              ("still2.000", "test", "0-f15-hao-ph.jpg"))  # fmt: skip
    for name, split, image in stills:
        add(name, split, lambda p, i=image: still(p, i))
    add("noface.000", "train", lambda p: ffmpeg("-i", src("no_face.mp4"), "-t", "3", "-c:v", "libx264",
                                                "-preset", "ultrafast", "-c:a", "aac", out(p)))  # fmt: skip
    add("short.000", "val", lambda p: face_clip(p, start=9, seconds=1.5))
    assert len(clips) == 20
    write_fi_annotations(root, {s: [c for c, v in clips.items() if v == s] for s in ("train", "val", "test")})
    return clips


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp("fi20")
    clips = build(root)
    work = tmp_path_factory.mktemp("work")
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
