"""Reading what the models saw, for the interpretation analyses."""

import numpy as np
import polars as pl

from impressions import schemas
from impressions.explain import images as loader
from impressions.schemas import AUS, EMOTIONS


def tables(tmp_path, size=32):
    """Two clips of 3 frames decoded at 320x160; clip b's frame 1 has no face."""
    frames, faces, expressions = [], [], []
    for clip in ("a", "b"):
        (tmp_path / clip).mkdir()
        np.save(tmp_path / clip / "frames.npy", np.full((3, size, size, 3), ord(clip), np.uint8))
        np.save(tmp_path / clip / "faces.npy", np.full((3, 16, 16, 3), ord(clip) + 1, np.uint8))
        for k in range(3):
            frames.append({"clip_id": clip, "frame_index": k, "width": 320, "height": 160})
            face = not (clip == "b" and k == 1)
            points = np.tile([[160.0, 80.0]], (68, 1))
            points[0] = [32.0, 16.0]
            faces.append({
                "clip_id": clip, "frame_index": k, "has_face": face, "n_faces": int(face),
                "box_left": 80.0 if face else None, "box_top": 40.0 if face else None,
                "box_right": 240.0 if face else None, "box_bottom": 120.0 if face else None,
                "landmarks": points.ravel().tolist() if face else None,
                "landmarks_aligned": (points / 20).ravel().tolist() if face else None,
            })  # fmt: skip
            if face:
                probs = np.eye(len(EMOTIONS))[EMOTIONS.index("happiness" if k else "anger")]
                expressions.append({"clip_id": clip, "frame_index": k, **dict.fromkeys(AUS, float(k)),
                                    **dict(zip(EMOTIONS, probs.tolist()))})  # fmt: skip
    clips = pl.DataFrame({"clip_id": ["a", "b"], "split": ["train", "test"]})
    return (clips, schemas.frame("frames", frames), schemas.frame("faces", faces),
            schemas.frame("expressions", expressions))  # fmt: skip


def test_frames_carry_boxes_and_landmarks_in_stored_pixels(tmp_path):
    clips, frames, faces, expressions = tables(tmp_path)
    images = loader.load_images("frames", clips, frames, faces, expressions, tmp_path)
    assert len(images) == 6 and images.images.shape == (6, 32, 32, 3)
    assert images.clip_ids == ["a"] * 3 + ["b"] * 3 and images.frame_index.tolist() == [0, 1, 2] * 2
    assert images.images[3, 0, 0, 0] == ord("b")
    # 320 x 160 decoded -> 32 x 32 stored: box edges x / 10, y / 5; landmarks are pixel centres, placed
    # as AU guidance places them: (x + 0.5) / 10 - 0.5, (y + 0.5) / 5 - 0.5.
    np.testing.assert_allclose(images.boxes[0], [8, 8, 24, 24])
    np.testing.assert_allclose(images.landmarks[0, 0], [2.75, 2.8], rtol=1e-6)
    assert np.isnan(images.boxes[4]).all() and images.has_face.tolist() == [True] * 4 + [False, True]
    assert images.emotions == ["anger", "happiness", "happiness", "anger", None, "happiness"]
    assert np.isnan(images.aus[4]).all() and images.aus[5, 0] == 2


def test_faces_keep_face_frames_with_aligned_landmarks_splits_and_cap(tmp_path):
    clips, frames, faces, expressions = tables(tmp_path)
    images = loader.load_images("faces", clips, frames, faces, expressions, tmp_path)
    assert len(images) == 5 and images.images.shape[1:] == (16, 16, 3)
    np.testing.assert_allclose(images.landmarks[0, 0], [1.6, 0.8])  # landmarks_aligned, unscaled
    assert np.isnan(images.boxes).all()
    test_only = loader.load_images("faces", clips, frames, faces, None, tmp_path, splits=["test"])
    assert test_only.clip_ids == ["b", "b"] and test_only.emotions == [None, None]
    capped = loader.load_images("frames", clips, frames, faces, expressions, tmp_path, max_frames=3)
    assert list(zip(capped.clip_ids, capped.frame_index.tolist())) == [("a", 0), ("a", 2), ("b", 2)]
