"""OpenFace-compatible export: one CSV per clip with OpenFace 2's column names.

`impressions export-openface RESULTS OUT` reads the dataset tables under RESULTS/tables (frames,
faces, expressions) and writes OUT/<clip_id>.csv, one row per sampled frame, so that analysis scripts
written for OpenFace's FeatureExtraction output run on it. Columns, in OpenFace's order:

- ``frame`` (1-based, as OpenFace counts), ``face_id`` (always 0: one tracked person per clip),
  ``timestamp`` (s, the sampled frame's time in the video), ``confidence`` (0..1, our
  detector-margin mapping, `impressions.data.head_pose`), ``success`` (1/0, `head_pose.success`);
- ``pose_Rx``, ``pose_Ry``, ``pose_Rz``: head rotation in radians, Euler angles with
  R = Rx @ Ry @ Rz in camera axes (x right, y down, z away from the camera), OpenFace's convention;
  pitch, yaw and roll of the faces table. OpenFace's translation (pose_Tx..Tz, mm) needs a
  calibrated camera and is not written;
- ``x_0`` .. ``x_67``, ``y_0`` .. ``y_67``: the 68 landmarks in frame pixels (OpenFace's 2D
  landmarks; dlib and OpenFace share the iBUG 68-point layout);
- ``AUxx_r`` for OpenFace's 17 intensity AUs (0..5) and ``AUxx_c`` (0/1) for its occurrence AUs but
  AU28, which no backend here estimates. Occurrence is intensity >= `PRESENCE` (1.0: FACS trace
  "A" level on OpenFace's 0..5 scale; OpenFace's own _c come from separate classifiers, so ours are
  a thresholded proxy). Change it with `--threshold`.

Frames without a successful face get success 0 and zeros elsewhere, as OpenFace writes for frames it
failed to track. The CSV has plain comma separators; OpenFace 2.2 writes ", " (a space after each
comma), so scripts that index columns by name should strip header whitespace (most do).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impressions.schemas import AUS

PRESENCE = 1.0
"""AU intensity (0..5) at or above which AUxx_c is 1."""

OCCURRENCE_AUS = AUS
"""OpenFace's occurrence AUs are these 17 plus AU28, which is not estimated here."""


def columns() -> list[str]:
    """The CSV header."""
    return [
        "frame", "face_id", "timestamp", "confidence", "success", "pose_Rx", "pose_Ry", "pose_Rz",
        *[f"x_{i}" for i in range(68)], *[f"y_{i}" for i in range(68)],
        *[f"{au}_r" for au in AUS], *[f"{au}_c" for au in OCCURRENCE_AUS],
    ]  # fmt: skip


def clip_frame(faces, expressions, threshold: float = PRESENCE):
    """One clip's OpenFace-style table from its faces rows (with time_s) and expression rows."""
    import polars as pl

    faces = faces.sort("frame_index")
    expr = expressions.select("frame_index", *AUS) if expressions is not None else None
    table = faces.join(expr, on="frame_index", how="left") if expr is not None else faces
    ok = (
        table["success"].fill_null(False).to_numpy()
        if "success" in table.columns
        else np.zeros(table.height, bool)
    )
    n = table.height
    landmarks = np.zeros((n, 68, 2))
    for i, value in enumerate(table["landmarks"].to_list()):
        if value is not None and ok[i]:
            landmarks[i] = np.asarray(value, float).reshape(68, 2)

    def values(name: str) -> np.ndarray:
        if name not in table.columns:
            return np.zeros(n)
        return np.where(ok, table[name].cast(pl.Float64).fill_null(0.0).to_numpy(), 0.0)

    data = {
        "frame": table["frame_index"].to_numpy() + 1,
        "face_id": np.zeros(n, np.int64),
        "timestamp": table["time_s"].cast(pl.Float64).fill_null(0.0).to_numpy(),
        "confidence": values("confidence"),
        "success": ok.astype(np.int64),
        "pose_Rx": np.deg2rad(values("pitch")),
        "pose_Ry": np.deg2rad(values("yaw")),
        "pose_Rz": np.deg2rad(values("roll")),
    }
    for i in range(68):
        data[f"x_{i}"] = landmarks[:, i, 0]
    for i in range(68):
        data[f"y_{i}"] = landmarks[:, i, 1]
    intensity = {au: values(au) for au in AUS}
    for au in AUS:
        data[f"{au}_r"] = intensity[au]
    for au in OCCURRENCE_AUS:
        data[f"{au}_c"] = (intensity[au] >= threshold).astype(np.int64)
    return pl.DataFrame(data).select(columns())


def export(results: Path, out: Path, threshold: float | None = None) -> list[Path]:
    """Write OUT/<clip_id>.csv for every clip of RESULTS/tables/frames.parquet; return the paths."""
    import polars as pl

    tables = Path(results) / "tables"
    needed = [tables / f"{name}.parquet" for name in ("frames", "faces")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise SystemExit(f"export-openface: missing dataset tables {missing}; run the workflow first")
    frames = pl.read_parquet(tables / "frames.parquet", columns=["clip_id", "frame_index", "time_s"])
    faces = pl.read_parquet(tables / "faces.parquet").join(frames, on=["clip_id", "frame_index"], how="left")
    expr_path = tables / "expressions.parquet"
    expressions = pl.read_parquet(expr_path) if expr_path.is_file() else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    by_clip = {} if expressions is None else {k[0]: v for k, v in expressions.group_by("clip_id")}
    for (clip_id,), rows in faces.group_by("clip_id", maintain_order=True):
        path = out / f"{clip_id}.csv"
        table = clip_frame(rows, by_clip.get(clip_id), PRESENCE if threshold is None else threshold)
        table.write_csv(path, float_precision=6)
        written.append(path)
    return written
