"""The `openface` expression backend: AUs from OpenFace 2.x `FeatureExtraction`, the papers' AU source.

Per clip it reads `<csv_dir>/<clip_id>.csv` (OpenFace's output for the clip's video, made by the user)
or, without one, runs a `FeatureExtraction` binary (named in config, else found on PATH) on the clip's
video into the clip's folder (`<clip folder>/openface/`, removed with the folder when the clip is
reprocessed). Rows are matched to the sampled frames by timestamp (`openface_csv`). OpenFace gives no
emotions: they come from the builtin fer CNN fused with OpenFace's AUs (`builtin.fuse_emotions`).
A clip with no CSV and no binary, a failed run or an unreadable CSV gets no expression rows and a QC
reason naming the file or binary; it never stops the shard.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np

from impressions.data.shards import Clip
from impressions.devices import resolve_device
from impressions.expressions import openface_csv
from impressions.expressions.detector import COLUMNS, SOURCES, output_table
from impressions.schemas import AUS, EMOTIONS

log = logging.getLogger(__name__)

BINARY = "FeatureExtraction"
"""OpenFace 2's per-video tool, looked up on PATH when `openface_binary` is not set."""

RUN_TIMEOUT_S = 1800
"""A FeatureExtraction run longer than this is stopped (a 15 s FI clip takes well under a minute)."""

OUTPUT_DIR = "openface"
"""FeatureExtraction's output folder inside the clip's folder."""


class OpenFaceBackend:
    """OpenFace AUs per sampled frame from its CSVs (or its binary), emotions from the builtin CNN."""

    name = "openface"
    sources = SOURCES["openface"]

    def __init__(
        self,
        *,
        csv_dir: str | Path | None = None,
        binary: str | Path | None = None,
        tolerance_s: float = openface_csv.TOLERANCE_S,
        min_confidence: float = openface_csv.MIN_CONFIDENCE,
        device: str = "auto",
        batch_size: int = 256,
        baseline: str | None = None,  # the builtin's setting; OpenFace normalises per person itself
        emotions=None,
    ):
        self.csv_dir = Path(csv_dir) if csv_dir else None
        self.binary_setting = str(binary) if binary else None
        self.binary = shutil.which(self.binary_setting or BINARY)
        self.tolerance_s = float(tolerance_s)
        self.min_confidence = float(min_confidence)
        self._emotion_options = {"device": device, "batch_size": batch_size}
        self._emotions = emotions
        self.device = resolve_device(device)  # the emotion CNN's, built on first use

    def _emotion_backend(self):
        if self._emotions is None:
            from impressions.expressions.builtin import BuiltinBackend

            self._emotions = BuiltinBackend(**self._emotion_options)
        return self._emotions

    def user_csv(self, clip_id: str) -> Path | None:
        return self.csv_dir / f"{clip_id}.csv" if self.csv_dir else None

    def clip_inputs(self, clip_id: str) -> dict:
        """What a clip's result depends on beyond the settings: the user CSV's content digest."""
        path = self.user_csv(clip_id)
        if path is None or not path.is_file():
            return {"csv": None, "binary": self.binary}
        return {"csv": hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()}

    def find_csv(self, clip: Clip) -> tuple[Path | None, str]:
        """The clip's OpenFace CSV (the user's, else one made by the binary), or None and why not."""
        path = self.user_csv(clip.clip_id)
        if path is not None and path.is_file():
            return path, ""
        missing = f"no OpenFace CSV {path}" if path is not None else "no openface_csv_dir set"
        if self.binary is None:
            named = self.binary_setting or f"{BINARY} (not on PATH)"
            return None, f"{missing} and no FeatureExtraction binary: {named} not found"
        if clip.video is None or not Path(clip.video).is_file():
            return None, f"{missing}, and the clip's video {clip.video} is not there for {self.binary}"
        return run_feature_extraction(self.binary, Path(clip.video), Path(clip.folder) / OUTPUT_DIR)

    def predict_clip(self, crops: np.ndarray, landmarks: np.ndarray, clip: Clip):
        """(N-row table, usable-row mask, QC reason) for one clip's N face frames."""
        n = len(crops)
        path, reason = self.find_csv(clip)
        if path is None:
            return output_table(np.zeros((n, len(COLUMNS)))), np.zeros(n, bool), f"openface: {reason}"
        try:
            matched = openface_csv.match(
                openface_csv.read_csv(path),
                clip.times,
                tolerance_s=self.tolerance_s,
                min_confidence=self.min_confidence,
            )
        except openface_csv.OpenFaceCSVError as error:
            return output_table(np.zeros((n, len(COLUMNS)))), np.zeros(n, bool), f"openface: {error}"
        keep = matched.usable
        values = np.zeros((n, len(COLUMNS)))
        values[:, : len(AUS)] = np.nan_to_num(matched.aus)
        if keep.any():
            backend = self._emotion_backend()
            from impressions.expressions.builtin import fuse_emotions

            cnn = backend.emotion_cnn(crops[keep], landmarks[keep])
            values[keep, len(AUS) :] = fuse_emotions(cnn, matched.aus[keep], backend.fusion)
        else:
            values[:, len(AUS) :] = 1.0 / len(EMOTIONS)
        reason = matched.reason()
        return output_table(values), keep, f"openface: {reason}" if reason else ""

    def predict(self, crops, landmarks, clip_ids):
        raise TypeError("the openface backend needs each clip's frame times: use predict_clip")


def run_feature_extraction(binary: str, video: Path, out_dir: Path) -> tuple[Path | None, str]:
    """Run OpenFace's FeatureExtraction on `video` into `out_dir`; (the CSV, "") or (None, why not).

    A CSV already there (an earlier run for the same clip folder) is reused. Paths are made absolute,
    so an FI clip id such as `-6otZ7M-Mro.003` can never be read as an option."""
    video, out_dir = video.resolve(), out_dir.resolve()
    expected = out_dir / f"{video.stem}.csv"
    if expected.is_file():
        return expected, ""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [binary, "-f", str(video), "-out_dir", str(out_dir), "-aus"]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"FeatureExtraction {binary} failed on {video.name}: {error}"
    csvs = [expected] if expected.is_file() else sorted(out_dir.glob("*.csv"))
    if run.returncode != 0 or len(csvs) != 1:
        tail = (run.stderr or run.stdout or "").strip().splitlines()[-1:] or ["no output"]
        return (
            None,
            f"FeatureExtraction {binary} exited {run.returncode} on {video.name} without a CSV: {tail[0]}",
        )
    log.info("FeatureExtraction wrote %s", csvs[0])
    return csvs[0], ""
