"""First Impressions annotation files: trait pickles, gender/ethnicity and age-group CSVs.

The trait files are pickle protocol 2 dicts ``{label: {"name.mp4": value}}`` written by Python 2:
floats for the five traits, numpy float64 scalars for `interview` (`impressions.data.fi_pickle`).
Unpickling runs whatever the file asks for, so they are read with an unpickler that may build only
floats, strings, numpy scalars and dtypes; any other class stops the load before it is constructed.

The three pickles are checked as a whole before any work (`read_split_files`), every problem
collected and reported at once through `impressions.data.manifest` (file, clip and label in each
line): an unreadable file, a label missing or unknown, a key that is not a ``<clip>.mp4`` name, a
value that is not a number in [0, 1] (a string, None, NaN), a clip in two splits' files.

A clip listed under some labels of its file but not all (DeepPersonality's users report FI's
``xyWpSrfFlQw.004`` missing from the annotations; the public copies checked here list it under every
label) is not an error: it is left out of the index, so it is never processed, trained on or scored,
and recorded as a `partial_labels` QC row. That holds while such clips are a small share of a file
(`PARTIAL_TOLERANCE`); beyond it the file is taken to be damaged and each such clip is an error.
"""

from __future__ import annotations

import io
import numbers
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from impressions.data.manifest import Problem, check_rows, raise_problems
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
PARTIAL_TOLERANCE = 0.01
"""Clips listed under only some labels are excluded (QC) while at most this share of their file's clips
(one is always tolerated); more, and each is an error: the file looks truncated or mis-merged."""

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
    """Builds only the classes in `allowed`; every other class request is refused before it is made."""

    allowed = frozenset(_ALLOWED)
    holds = "numpy scalars"
    kind = "annotation"

    def find_class(self, module: str, name: str):
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: {self.kind} pickles may only hold {self.holds} "
            f"(a pickle can run code when loaded; this file is not a First Impressions {self.kind} file)"
        )


@dataclass(frozen=True)
class PartialClip:
    """A clip its file lists under some labels only: excluded from the index, reported in QC."""

    clip_id: str
    split: str
    source: str  # the annotation file
    missing: tuple[str, ...]  # the labels that do not list it


@dataclass
class SplitLabels:
    """What the annotation files under a root hold, checked."""

    clips: dict[str, tuple[str, dict]] = field(default_factory=dict)  # clip_id: (split, {label: value})
    partial: list[PartialClip] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the files read


def _unpickle(path: Path, unpickler: type[_ScalarsOnly] = _ScalarsOnly):
    """The pickle at `path` read by `unpickler` (a restricted one), Python 2 strings as latin-1."""
    try:
        with path.open("rb") as f:
            return unpickler(io.BytesIO(f.read()), encoding="latin1").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise AnnotationError(f"not a readable pickle ({err})") from None


def _number(value):
    """A numeric value (float, numpy scalar) as a float; anything else as it is, for the schema to name."""
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value


def _clip_name(name) -> str | None:
    """The clip id of a ``<clip>.mp4`` key, else None."""
    if (
        isinstance(name, str)
        and name[-4:].lower() == ".mp4"
        and len(name) > 4
        and not {"/", "\\"} & set(name)
    ):
        return name[:-4]
    return None


def _check_file(data, source: str, split: str) -> tuple[dict, list[PartialClip], list[Problem]]:
    """({clip_id: {label: value}} of fully listed clips, partly listed clips, problems) of one file."""
    if not isinstance(data, dict) or not data:
        shape = "an empty dict" if isinstance(data, dict) else type(data).__name__
        expected = f"expected a dict {{label: {{'<clip>.mp4': value}}}}, got {shape}"
        return {}, [], [Problem(source, "", None, None, expected)]
    problems = [
        Problem(source, "", None, str(key), f"unknown label; the labels are {', '.join(LABELS)}")
        for key in data
        if key not in LABELS
    ]
    entries: dict[str, dict] = {}
    for label in LABELS:
        if label not in data:
            problems.append(
                Problem(source, "", None, label, "missing: the file lists no clip under this label")
            )
        elif not isinstance(data[label], dict):
            problems.append(Problem(source, "", None, label, (
                f"expected a dict {{'<clip>.mp4': value}}, got {type(data[label]).__name__}"
            )))  # fmt: skip
        else:
            entries[label] = data[label]
    by_clip: dict[str, dict] = {}
    bad_keys: dict[str, list[str]] = {}
    for label, values in entries.items():
        for name, value in values.items():
            clip_id = _clip_name(name)
            if clip_id is None:
                bad_keys.setdefault(repr(name) if not isinstance(name, str) else name, []).append(label)
            else:
                by_clip.setdefault(clip_id, {})[label] = _number(value)
    for name, labels in bad_keys.items():
        problems.append(
            Problem(source, "", name, ", ".join(labels), "the key is not a '<clip>.mp4' file name")
        )
    partial = [
        PartialClip(clip_id, split, source, tuple(label for label in entries if label not in labels))
        for clip_id, labels in by_clip.items()
        if len(labels) < len(entries)
    ]
    allowed = max(1, int(PARTIAL_TOLERANCE * len(by_clip)))
    if len(partial) > allowed:
        problems.append(Problem(source, "", None, None, (
            f"{len(partial)} of {len(by_clip)} clips are listed under some labels only, more than the "
            f"{allowed} tolerated (PARTIAL_TOLERANCE): the file looks damaged"
        )))  # fmt: skip
        problems += [
            Problem(
                source, "", p.clip_id, ", ".join(p.missing), "not listed under this label, unlike the others"
            )
            for p in partial
        ]
    for p in partial:
        del by_clip[p.clip_id]
    return by_clip, partial, problems


def _problems_of(path: Path, split: str) -> tuple[dict, list[PartialClip], list[Problem]]:
    """One file read and checked: structure (`_check_file`) and values (the manifest's schema)."""
    source = str(path)
    try:
        data = _unpickle(path)
    except AnnotationError as err:
        return {}, [], [Problem(source, "", None, None, str(err))]
    by_clip, partial, problems = _check_file(data, source, split)
    absent = dict.fromkeys(LABELS, 0.5)  # a label the file lacks is one problem above, not one per clip
    rows = [{"path": c, "split": split, "clip_id": c, **absent, **labels} for c, labels in by_clip.items()]
    problems += check_rows(rows, source, [""] * len(rows))
    return by_clip, partial, problems


def load_pickle(path: str | Path) -> dict[str, dict[str, float]]:
    """One FI annotation pickle as ``{label: {clip_id: float}}`` (clip ids without `.mp4`), checked.

    Raises ManifestError listing every problem (checked as its split's file, by name; else as training
    labels); clips listed under some labels only are left out.
    """
    path = Path(path)
    split = {name: split for split, name in ANNOTATION_FILES.items()}.get(path.name, "train")
    by_clip, _, problems = _problems_of(path, split)
    raise_problems(problems, f"annotation file {path}")
    return {label: {c: labels[label] for c, labels in by_clip.items()} for label in LABELS}


def read_split_files(root: str | Path) -> SplitLabels:
    """Whichever of the three pickles exist under root, checked together before any work.

    Raises ManifestError listing every problem of every file (`raise_problems`); clips listed under
    some labels only come back in `partial` (see the module docstring), not in `clips`.
    """
    root = Path(root)
    out = SplitLabels()
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for split, name in ANNOTATION_FILES.items():
        path = root / name
        if not path.is_file():
            continue
        out.files.append(str(path))
        by_clip, partial, found = _problems_of(path, split)
        problems += found
        for clip_id in [*by_clip, *(p.clip_id for p in partial)]:
            if clip_id in seen:
                problems.append(Problem(str(path), "", clip_id, None, (
                    f"also annotated in {seen[clip_id]}: a clip belongs to one split"
                )))  # fmt: skip
            seen.setdefault(clip_id, str(path))
        out.clips.update({c: (split, labels) for c, labels in by_clip.items() if c not in out.clips})
        out.partial += partial
    raise_problems(problems, "the annotation files")
    return out


def load_split_labels(root: str | Path) -> dict[str, tuple[str, dict[str, float]]]:
    """``{clip_id: (split, {label: value})}`` of the fully labelled clips (`read_split_files`)."""
    return read_split_files(root).clips


def _clip_id(name: str) -> str:
    return name[:-4] if name.endswith(".mp4") else name


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
