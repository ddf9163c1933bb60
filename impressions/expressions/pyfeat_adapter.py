"""The py-feat expression backend: py-feat 2.1.5 `Detectorv1` (xgb AUs, resmasknet emotions), an optional
extra (`pip install -r requirements-pyfeat.txt`) whose weights come from the Hugging Face hub."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from impressions.devices import resolve_device
from impressions.expressions.detector import COLUMNS, SOURCES, check_inputs, output_table
from impressions.expressions.geometry import BASELINE, geometric_aus
from impressions.schemas import AUS, EMOTIONS

PYFEAT_AUS = tuple(au for au in AUS if au != "AU45")
"""The 16 of our AUs that py-feat's xgb model gives (it has no AU45; ours comes from geometry)."""

PYFEAT_WEIGHTS = (
    ("py-feat/retinaface_r34", ("model.safetensors", "retinaface_r34.safetensors")),
    ("py-feat/mobilefacenet", ("mobilefacenet_model_best.pth.tar",)),
    ("py-feat/xgb_au", ("xgb_au_classifier_v2.skops", "xgb_au_classifier.skops")),
    ("py-feat/resmasknet", ("config.json",)),
    ("py-feat/resmasknet", ("ResMaskNet_Z_resmasking_dropout1_rot30.pth",)),
)
"""Hugging Face files `Detectorv1` loads for retinaface + mobilefacenet + xgb + resmasknet (any one of
the alternatives of an entry will do)."""


class PyFeatUnavailableError(RuntimeError):
    """py-feat, its dependencies or its model weights are missing."""


def _pyfeat_resources() -> Path:
    from impressions import media

    return media.package_dir("feat") / "resources"


def _import_pyfeat():
    """py-feat's Detectorv1 class and huggingface_hub, or a clear error saying how to install them."""
    try:
        import huggingface_hub
        from feat.detector import Detectorv1
    except ImportError as error:  # py-feat missing, or installed without its dependencies
        raise PyFeatUnavailableError(
            f"the 'pyfeat' expression backend needs py-feat and its dependencies ({error}); "
            "install them with `pip install -r requirements-pyfeat.txt`, or use the 'builtin' backend"
        ) from error
    return Detectorv1, huggingface_hub


def missing_pyfeat_weights(huggingface_hub, cache_dir: Path) -> list[str]:
    """'repo/file' for each weight file `Detectorv1` needs that is not in the local cache."""
    missing = []
    for repo, names in PYFEAT_WEIGHTS:
        found = any(
            isinstance(huggingface_hub.try_to_load_from_cache(repo, name, cache_dir=str(cache_dir)), str)
            for name in names
        )
        if not found:
            missing.append(f"{repo}/{names[0]}")
    return missing


def _weights_error(missing: list[str], cache_dir: Path) -> PyFeatUnavailableError:
    return PyFeatUnavailableError(
        "py-feat model weights are missing from its cache "
        f"{cache_dir}: {', '.join(missing)}. py-feat downloads them from the Hugging Face hub at run "
        "time, which offline cluster nodes cannot do. On a machine with internet and the same "
        'requirements, run `python -c "from impressions.expressions.pyfeat_adapter import '
        "download_pyfeat_weights; download_pyfeat_weights('pyfeat-weights')\"`, copy that folder to "
        "the cluster and set expressions.pyfeat.weights_dir to it (or, leaving weights_dir unset, "
        "download without an argument and copy that machine's site-packages/feat/resources folder to "
        "the same place in the cluster environment)."
    )


def download_pyfeat_weights(cache_dir: str | Path | None = None) -> Path:
    """Fetch every file of `PYFEAT_WEIGHTS` into `cache_dir` (default: py-feat's own cache; needs
    internet); return it. A folder given here is what `expressions.pyfeat.weights_dir` names."""
    _, huggingface_hub = _import_pyfeat()
    cache_dir = Path(cache_dir) if cache_dir else _pyfeat_resources()
    for repo, names in PYFEAT_WEIGHTS:
        error = None
        for name in names:
            try:
                huggingface_hub.hf_hub_download(repo_id=repo, filename=name, cache_dir=str(cache_dir))
                break
            except Exception as failure:  # noqa: BLE001 - try the alternative name first
                error = failure
        else:
            raise PyFeatUnavailableError(f"could not download {repo}/{names[0]} into {cache_dir}") from error
    return cache_dir


def pyfeat_table(detections, n: int, au45: np.ndarray) -> pl.DataFrame:
    """Map py-feat detections (pandas, one row per face, `frame` = input index) to our N-row table.

    Each frame keeps its highest-scoring face. py-feat's xgb AU outputs are occurrence
    probabilities (0..1), scaled by 5 to share the 0..5 range (a monotone proxy, not a calibrated
    intensity). AU45 comes from our landmark blink measure. Frames where py-feat found no face get
    NaN AUs (but AU45) and NaN emotions.
    """
    out = np.full((n, len(COLUMNS)), np.nan)
    out[:, AUS.index("AU45")] = au45
    if len(detections):
        # np.asarray(... .to_numpy()) works for pandas (py-feat's Fex) and polars alike
        frame = np.asarray(detections["frame"].to_numpy())
        score = (
            np.asarray(detections["FaceScore"].to_numpy(), np.float64) if "FaceScore" in detections else None
        )
        au_values = np.asarray(detections[list(PYFEAT_AUS)].to_numpy(), np.float64)
        emo_values = np.asarray(detections[list(EMOTIONS)].to_numpy(), np.float64)
        for i in range(n):
            rows = np.flatnonzero(frame == i)
            rows = rows[~np.isnan(au_values[rows]).all(axis=1) | ~np.isnan(emo_values[rows]).all(axis=1)]
            if len(rows) == 0:
                continue
            scored = score is not None and not np.isnan(score[rows]).all()
            best = rows[np.nanargmax(score[rows])] if scored else rows[0]
            for j, au in enumerate(PYFEAT_AUS):
                out[i, AUS.index(au)] = 5.0 * au_values[best, j]
            out[i, len(AUS) :] = emo_values[best]
    return output_table(out)


class PyFeatBackend:
    """py-feat 2.1.5 `Detectorv1` (retinaface, mobilefacenet, xgb AUs, resmasknet emotions).

    py-feat re-detects the face inside each aligned crop (it needs its own landmarks for its HOG
    features). Weights must already be in py-feat's cache: this backend never downloads (see
    `download_pyfeat_weights`), so cluster jobs fail fast with a message instead of hanging.
    """

    name = "pyfeat"
    sources = SOURCES["pyfeat"]

    column_sources = {
        **{column: "py-feat" for column in (*PYFEAT_AUS, *EMOTIONS)},
        "AU45": "builtin landmark geometry",
    }
    """Where each output column comes from: py-feat's xgb AUs and resmasknet emotions, or our AU45."""

    def __init__(
        self,
        *,
        device: str = "auto",
        batch_size: int = 16,
        baseline: str = BASELINE,
        weights_dir: str | Path | None = None,
        detector=None,
    ):
        self.batch_size = int(batch_size)
        self.baseline = baseline  # for the landmark AU45 (geometry.BASELINES)
        if detector is None:
            device = resolve_device(device)
            detector = _load_pyfeat_detector(device, Path(weights_dir) if weights_dir else None)
        self.device = getattr(detector, "device", device)
        self.detector = detector

    def predict(self, crops: np.ndarray, landmarks: np.ndarray, clip_ids: Sequence[str]) -> pl.DataFrame:
        import torch

        crops, landmarks, ids = check_inputs(crops, landmarks, clip_ids)
        if len(crops) == 0:
            return output_table(np.zeros((0, len(COLUMNS))))
        au45 = geometric_aus(landmarks, ids, self.baseline)[:, AUS.index("AU45")]
        images = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float()
        # detect() loads py-feat's pose MLP from the hub on first use: offline, it gets NaN pose
        # (unused here) at once instead of a network timeout per job.
        with _hub_offline():
            detections = self.detector.detect(
                images, data_type="tensor", batch_size=self.batch_size, progress_bar=False
            )
        return pyfeat_table(detections, len(crops), au45)


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """huggingface_hub never goes to the network inside: it reads HF_HUB_OFFLINE at import, so its
    constant is set as well as the variable (both restored after), and it mounts its offline adapter
    when it makes a thread's cached HTTP session, so the cache is cleared on the way in and out."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import reset_sessions
    except ImportError:  # a test's fake detector without py-feat installed: nothing can download
        yield
        return
    previous, previous_constant = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    reset_sessions()
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous_constant
        reset_sessions()
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


@contextlib.contextmanager
def _weights_at(weights_dir: Path) -> Iterator[None]:
    """py-feat looks for its hub files in `weights_dir` while its models load.

    py-feat 2.1.5 passes `cache_dir=get_resource_path()` (its package's resources folder) to every
    hub call, so the hub's own HF_HUB_CACHE variable is ignored; `Detectorv1.__init__` finds that
    function in `feat.detector` and, for the face detector, in `feat.utils.io`. Only model loading is
    redirected: py-feat's bundled resources (face template, region maps) are read from the package.
    """
    import feat.detector
    import feat.utils.io

    originals = feat.detector.get_resource_path, feat.utils.io.get_resource_path
    feat.detector.get_resource_path = feat.utils.io.get_resource_path = lambda: str(weights_dir)
    try:
        yield
    finally:
        feat.detector.get_resource_path, feat.utils.io.get_resource_path = originals


def _load_pyfeat_detector(device: str, weights_dir: Path | None = None):
    Detectorv1, huggingface_hub = _import_pyfeat()
    cache_dir = weights_dir or _pyfeat_resources()
    missing = missing_pyfeat_weights(huggingface_hub, cache_dir)
    if missing:
        raise _weights_error(missing, cache_dir)
    # Everything is cached: stay offline so nothing can stall a job on the network.
    where = _weights_at(cache_dir) if weights_dir else contextlib.nullcontext()
    try:
        with _hub_offline(), where:
            return Detectorv1(
                face_model="retinaface",
                landmark_model="mobilefacenet",
                au_model="xgb",
                emotion_model="resmasknet",
                identity_model=None,
                gaze_model=None,
                device=device,
            )
    except Exception as error:  # noqa: BLE001 - any load failure here means an incomplete cache
        raise _weights_error([f"({type(error).__name__}: {error})"], cache_dir) from error
