"""A tiny synthetic dataset for the interpretation analyses (frames with a face drawn by landmarks,
expressions) and a tiny CAM-head image checkpoint: shared by the analysis tests."""

import numpy as np
import polars as pl
import torch

from impressions import schemas
from impressions.models import networks as models
from impressions.schemas import AUS, EMOTIONS, TRAITS

SIZE = 32


def landmarks(size=SIZE):
    """A frontal 68-point layout in a size x size image (as in tests/test_units.py, coarser)."""
    pts = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    pts[0:17] = np.c_[0.5 - 0.4 * np.cos(t), 0.35 + 0.6 * np.sin(t)]
    pts[17:27] = np.c_[np.r_[np.linspace(0.2, 0.42, 5), np.linspace(0.58, 0.8, 5)], np.full(10, 0.28)]
    pts[27:36] = np.c_[
        np.r_[np.full(4, 0.5), np.linspace(0.42, 0.58, 5)], np.r_[np.linspace(0.4, 0.56, 4), [0.6] * 5]
    ]
    e = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    pts[36:42] = np.c_[0.32 - 0.06 * np.cos(e), 0.42 - 0.02 * np.sin(e)]
    pts[42:48] = np.c_[0.68 - 0.06 * np.cos(e), 0.42 - 0.02 * np.sin(e)]
    m = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    pts[48:68] = np.c_[0.5 - 0.12 * np.cos(m), 0.78 - 0.05 * np.sin(m)]
    return pts * size


def dataset(tmp_path, splits, faces_in_test=True, frames_per_clip=3, seed=0):
    """Clips with the given splits, random frames, a face on every frame (none in the test split when
    `faces_in_test` is False), expressions on the frames with a face. Returns the run() inputs."""
    rng = np.random.default_rng(seed)
    frames, faces, expressions, clip_rows = [], [], [], []
    lm = landmarks()
    for c, split in enumerate(splits):
        clip = f"clip{c:02d}"
        (tmp_path / "clips" / clip).mkdir(parents=True)
        images = rng.integers(0, 255, (frames_per_clip, SIZE, SIZE, 3), dtype=np.uint8)
        np.save(tmp_path / "clips" / clip / "frames.npy", images)
        np.save(tmp_path / "clips" / clip / "faces.npy", images)
        clip_rows.append({"clip_id": clip, "split": split, **{t: float(rng.random()) for t in TRAITS},
                          "gender": ["male", "female"][c % 2]})  # fmt: skip
        for k in range(frames_per_clip):
            face = faces_in_test or split != "test"
            frames.append({"clip_id": clip, "frame_index": k, "width": SIZE, "height": SIZE})
            faces.append({
                "clip_id": clip, "frame_index": k, "has_face": face, "n_faces": int(face),
                "box_left": 4.0 if face else None, "box_top": 4.0 if face else None,
                "box_right": 27.0 if face else None, "box_bottom": 30.0 if face else None,
                "landmarks": lm.ravel().tolist() if face else None,
                "landmarks_aligned": lm.ravel().tolist() if face else None,
            })  # fmt: skip
            if face:
                probs = np.eye(len(EMOTIONS))[EMOTIONS.index("happiness")]
                expressions.append({"clip_id": clip, "frame_index": k,
                                    **{a: float(rng.random()) for a in AUS},
                                    **dict(zip(EMOTIONS, probs.tolist()))})  # fmt: skip
    paths = {}
    for name, rows in (("frames", frames), ("faces", faces), ("expressions", expressions)):
        paths[name] = tmp_path / f"{name}.parquet"
        schemas.frame(name, rows).write_parquet(paths[name])
    paths["clips"] = tmp_path / "clips.parquet"
    pl.DataFrame(clip_rows).write_parquet(paths["clips"])
    return paths


def checkpoint(tmp_path, dead=False):
    """A tiny GAP (cam head) image model; `dead`: every conv weight and bias zero, so no unit fires."""
    torch.manual_seed(0)
    options = {"backbone": "small", "head": "cam", "width": 4}
    model = models.build("image", **options)
    if dead:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    path = tmp_path / "checkpoint.pt"
    models.save_checkpoint(path, model, "image", options)
    return path
