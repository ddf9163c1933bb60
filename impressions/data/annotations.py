"""First Impressions annotation files: trait pickles, gender/ethnicity and age-group CSVs.

The trait files are pickle protocol 2 dicts ``{label: {"name.mp4": value}}`` written by Python 2:
floats for the five traits, numpy float64 scalars for `interview` (`impressions.data.fi_pickle`).
Unpickling runs whatever the file asks for, so they are read with an unpickler that may build only
floats, strings, numpy scalars and dtypes; any other class stops the load before it is constructed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from impressions.schemas import LABELS

ANNOTATION_FILES = {
    "train": "annotation_training.pkl",
    "val": "annotation_validation.pkl",
    "test": "annotation_test.pkl",
}
GENDER_FILES = ("eth_gender_annotations_dev.csv", "eth_gender_annotations_test.csv")
AGE_FILE_GLOB = "*age*.csv"

ETHNICITY = {1: "asian", 2: "caucasian", 3: "african_american"}
GENDER = {1: "male", 2: "female"}
AGE_GROUPS = {1: "0-6", 2: "7-13", 3: "14-18", 4: "19-24", 5: "25-32", 6: "33-45", 7: "46-60", 8: "61+"}

# (module, name) pairs a FI pickle legitimately needs: numpy float64 scalars and their dtype, and
# `_codecs.encode`, which Python 3 uses to write the scalars' raw bytes under protocol 2.
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
}


class UnsafePickleError(ValueError):
    """An annotation pickle asked to build something other than numpy scalars."""


class AnnotationError(ValueError):
    """An annotation file is missing, malformed or inconsistent."""


class _ScalarsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: annotation pickles may only hold numpy scalars "
            "(a pickle can run code when loaded; this file is not a First Impressions annotation file)"
        )


def load_pickle(path: str | Path) -> dict[str, dict[str, float]]:
    """Load one FI annotation pickle as ``{label: {clip_id: float}}`` (clip ids without `.mp4`)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = _ScalarsOnly(io.BytesIO(f.read()), encoding="latin1").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError) as err:
        raise AnnotationError(f"{path}: not a readable pickle ({err})") from None
    if not isinstance(data, dict) or not data:
        raise AnnotationError(f"{path}: expected a dict of labels, got {type(data).__name__}")
    missing = [label for label in LABELS if label not in data]
    if missing:
        raise AnnotationError(f"{path}: missing labels {missing}; has {sorted(data)}")
    out: dict[str, dict[str, float]] = {}
    for label in LABELS:
        out[label] = {_clip_id(name): float(value) for name, value in data[label].items()}
    return out


def _clip_id(name: str) -> str:
    return name[:-4] if name.endswith(".mp4") else name


def load_split_labels(root: str | Path) -> dict[str, tuple[str, dict[str, float]]]:
    """``{clip_id: (split, {label: value})}`` from whichever of the three pickles exist under root."""
    root = Path(root)
    clips: dict[str, tuple[str, dict[str, float]]] = {}
    for split, name in ANNOTATION_FILES.items():
        path = root / name
        if not path.is_file():
            continue
        data = load_pickle(path)
        for clip_id in data[LABELS[0]]:
            if clip_id in clips:
                raise AnnotationError(
                    f"clip {clip_id!r} is annotated in both {clips[clip_id][0]} and {split}"
                )
            clips[clip_id] = (split, {label: data[label][clip_id] for label in LABELS})
    return clips


def _read_semicolon_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8-sig") as f:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f, delimiter=";")
        ]


def load_demographics(root: str | Path) -> dict[str, dict[str, object]]:
    """Gender, ethnicity, YouTube id and age group per clip, from the optional FI CSVs under root."""
    root = Path(root)
    out: dict[str, dict[str, object]] = {}
    for name in GENDER_FILES:
        path = root / name
        if not path.is_file():
            continue
        for row in _read_semicolon_csv(path):
            try:
                entry = out.setdefault(_clip_id(row["VideoName"]), {})
                entry["youtube_id"] = row.get("YouTubeID") or None
                entry["ethnicity"] = ETHNICITY.get(int(row["Ethnicity"]))
                entry["gender"] = GENDER.get(int(row["Gender"]))
            except (KeyError, ValueError) as err:
                raise AnnotationError(f"{path}: bad row {row} ({err})") from None
    for path in sorted(root.glob(AGE_FILE_GLOB)):
        for row in _read_semicolon_csv(path):
            try:
                group = int(row["AgeGroup"])
                out.setdefault(_clip_id(row["VideoName"]), {})["age_group"] = AGE_GROUPS[group]
            except (KeyError, ValueError) as err:
                raise AnnotationError(
                    f"{path}: bad row {row} ({err}); expected VideoName;AgeGroup 1..8"
                ) from None
    return out
