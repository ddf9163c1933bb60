"""The clip index: one row per clip with its video path, split, labels and demographics.

Built from a First Impressions layout (videos anywhere below a root plus the annotation files) or
from a manifest (CSV or Parquet). Building it never opens a video, so it is cheap enough to run when
Snakemake plans the workflow: 10,000 FI clips index in well under a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from impressions.data import annotations, manifest
from impressions.schemas import LABELS, TABLES, frame

VIDEO_SUFFIXES = (".mp4",)


class IndexError_(ValueError):
    """The dataset cannot be indexed (duplicate clip names, a bad manifest...)."""


@dataclass
class ClipIndex:
    """Clips to process plus what the index found wrong (reported as QC rows, never silently dropped)."""

    clips: list[dict] = field(default_factory=list)  # rows of the `clips` table; every one has a file
    missing_files: list[dict] = field(default_factory=list)  # annotated clips with no video file
    unannotated: list[str] = field(default_factory=list)  # video files no annotation lists (paths)
    partially_labelled: list[annotations.PartialClip] = field(default_factory=list)  # excluded (QC)

    @property
    def paths(self) -> dict[str, str]:
        return {row["clip_id"]: row["path"] for row in self.clips}

    def table(self):
        """The `clips` table (clips with a file)."""
        return frame("clips", self.clips)

    def summary(self) -> str:
        text = (
            f"{len(self.clips)} clips with a video file, {len(self.missing_files)} annotated clips without "
            f"one, {len(self.unannotated)} video files without annotations"
        )
        if self.partially_labelled:
            text += f", {len(self.partially_labelled)} clips excluded as listed under some labels only"
        return text


def youtube_id(clip_id: str) -> str:
    """FI clip names are `<YouTube id>.<3-digit index>`; the id groups clips of one person."""
    head, _, tail = clip_id.rpartition(".")
    return head if head and tail.isdigit() else clip_id


def find_videos(root: str | Path) -> dict[str, str]:
    """Every video below root by clip id (file name without suffix); duplicate names are an error.

    Paths are plain strings: this runs whenever the workflow is planned, and a `Path` per file is a
    third of the walk's time at 100,000 clips.
    """
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() not in VIDEO_SUFFIXES or name.startswith("._"):
                continue  # `._name` files are macOS resource forks shipped in some zips
            path = os.path.join(folder, name)
            if stem in found:
                raise IndexError_(f"clip {stem!r} appears twice: {found[stem]} and {path}")
            found[stem] = path
    return found


def from_fi_layout(root: str | Path) -> ClipIndex:
    """Index a First Impressions layout: annotation pickles (and optional CSVs) plus videos below root.

    The pickles are checked as a whole first (`annotations.read_split_files`): a bad file stops
    indexing with every problem listed, before any video is looked for; clips listed under some labels
    only are kept out and recorded in `partially_labelled`.
    """
    root = Path(root)
    if not root.is_dir():
        raise IndexError_(f"data_root {root} is not a folder")
    try:
        found = annotations.read_split_files(root)  # every file checked before anything else is read
    except manifest.ManifestError as err:
        raise IndexError_(str(err)) from None
    if not found.files:
        names = ", ".join(annotations.ANNOTATION_FILES.values())
        raise IndexError_(f"no annotation file in {root}: expected at least one of {names}")
    labelled = found.clips
    demographics = annotations.load_demographics(root)
    videos = find_videos(root)
    index = ClipIndex(partially_labelled=found.partial)
    for clip_id, (split, labels) in labelled.items():
        demo = demographics.get(clip_id, {})
        row = {
            "clip_id": clip_id,
            "path": videos.get(clip_id),
            "split": split,
            **labels,
            "gender": demo.get("gender"),
            "ethnicity": demo.get("ethnicity"),
            "age_group": demo.get("age_group"),
            "youtube_id": demo.get("youtube_id") or youtube_id(clip_id),
        }
        (index.clips if row["path"] else index.missing_files).append(row)
    excluded = {p.clip_id for p in found.partial}
    index.unannotated = sorted(p for c, p in videos.items() if c not in labelled and c not in excluded)
    index.clips.sort(key=lambda row: row["clip_id"])
    return index


def from_manifest(path: str | Path) -> ClipIndex:
    """Index a manifest: CSV or Parquet with `path` and `split` per clip, and label columns.

    Every row is checked first (`impressions.data.manifest`, `manifest.schema.yaml`): a bad label stops
    indexing with a list of every problem.

    Relative paths are relative to the manifest's folder. Optional columns: `clip_id` (default: the
    file name without suffix), the six FI labels, `gender`, `ethnicity`, `age_group`, `youtube_id`.
    """
    path = Path(path)
    try:
        rows = manifest.read(path)
    except manifest.ManifestError as err:
        raise IndexError_(str(err)) from None
    index = ClipIndex()
    seen: set[str] = set()
    for row in rows:
        video = Path(row["path"])
        video = video if video.is_absolute() else path.parent / video
        clip_id = row.get("clip_id") or video.stem
        if clip_id in seen:
            raise IndexError_(f"manifest {path}: clip {clip_id!r} is listed twice")
        seen.add(clip_id)
        out = {col: row.get(col) for col in TABLES["clips"]}
        out.update(clip_id=clip_id, path=str(video) if video.is_file() else None)
        out.update({label: row.get(label) for label in LABELS})  # checked floats or None
        out["youtube_id"] = row.get("youtube_id") or youtube_id(clip_id)
        (index.clips if out["path"] else index.missing_files).append(out)
    index.clips.sort(key=lambda row: row["clip_id"])
    return index


def build(data_root: str | Path | None = None, manifest: str | Path | None = None) -> ClipIndex:
    """The index from a manifest when one is given, else from the FI layout under data_root."""
    if manifest:
        return from_manifest(manifest)
    if data_root is None:
        raise IndexError_("give a data_root (FI layout) or a manifest")
    return from_fi_layout(data_root)


def demo_root(config: dict) -> Path | None:
    """Where the demo dataset lives when the config asks for it (data_root: demo), else None."""
    return Path(config["demo_dir"]) if config["data_root"] == "demo" and not config["manifest"] else None


def for_config(config: dict) -> ClipIndex:
    """The index a workflow config describes.

    For the demo before it is built, the clip list comes from the demo's own specification (so the
    workflow can plan the build); once built, the demo is indexed like any FI layout.
    """
    if config["manifest"]:
        return from_manifest(config["manifest"])
    root = demo_root(config)
    if root is None:
        return from_fi_layout(config["data_root"])
    if all((root / name).is_file() for name in annotations.ANNOTATION_FILES.values()):
        return from_fi_layout(root)
    from impressions.data import demo

    index = ClipIndex()
    for clip in demo.demo_clips():
        index.clips.append({col: None for col in TABLES["clips"]} | {
            "clip_id": clip.clip_id, "path": str(root / clip.relpath), "split": clip.split,
            "youtube_id": youtube_id(clip.clip_id),
        })  # fmt: skip
    return index
