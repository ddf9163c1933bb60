"""One tracked person per clip: link faces across the sampled frames, then choose the target person.

Choosing the highest-scoring face in each frame independently lets the chosen face jump between
people in a clip with two (an interviewer, a photo on the wall). Instead:

1. Linking. Frames are visited in order; every detection is compared with every track so far
   (including tracks missing from the previous frame) by
   ``similarity = IOU_WEIGHT * IoU(track's last box, box) + APPEARANCE_WEIGHT * max(0, cos)``, where
   cos is the cosine similarity of the detection's appearance signature (`faces.signature`: a 16 px
   eye-aligned thumbnail) and the track's running mean signature. Pairs are linked greedily, most
   similar first, one detection per track and frame, when similarity >= LINK_MIN; any detection left
   over starts a new track. Sampled frames are seconds apart, so box overlap alone breaks when a
   person moves; appearance alone confuses similar faces; together they keep a still interview apart.
2. Target person: the track seen in the most frames; ties go to the larger mean box, then to the
   box centre nearest the frame centre (mean distance), then to the leftmost, then the topmost (mean
   box centre). Sizes and distances that differ by less than the detector's own jitter are ties
   (`SIZE_TIE`, `CENTRE_TIE`): otherwise which of two equal faces wins (the same person twice side by
   side) would follow a pixel of box noise, and `full` and `tracked` searches could pick different
   ones. Every frame then uses the target's face, and a frame where the target is not found has no
   face, even if someone else is visible.
3. Flags: ``n_tracks`` counts tracks seen in at least ``min(2, frames)`` sampled frames (a one-frame
   false positive does not count as a person); ``multi_person`` is n_tracks >= 2. Per frame,
   ``top_face`` says whether the target was the detector's highest-scoring face (what the old
   per-frame rule would have picked).

Where the detector looks (`search`, setting `faces.search`): `full` runs its pass over every whole
frame. `tracked` runs it over the whole frame on the first sampled frame, on every `full_every`-th
one, and wherever a window finds nothing; in the frames between, it searches only a window around
each face of the frame before (`faces.window`), scaled so the face is about `window_face` px wide:
a quarter of the cost or less. Linking above is the same either way. What the windows cannot see is
a person who enters between full passes: they are found at the next full pass (and counted as a
person when seen in two frames, as always).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from impressions.data.faces import PYRAMID_STEP

IOU_WEIGHT = 0.5
APPEARANCE_WEIGHT = 0.5
LINK_MIN = 0.4
"""Smallest similarity that links a detection to a track (0..1)."""


SIZE_TIE = PYRAMID_STEP**0.5
"""Mean box sides within this ratio are the same size: the detector's boxes come in pyramid steps of
6/5, and a face between two levels fires at either, so the same face's mean box moves by a fraction
of a step (the doubled-person test clips: 3 %)."""

CENTRE_TIE = 0.1
"""Mean distances to the frame centre within this many face sides are equally central (the two
searches' mean box centres in the doubled-person test clips: within 2 px of a 120 px face)."""


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    box: tuple
    signature: np.ndarray
    members: dict = field(default_factory=dict)  # frame index -> detection index

    def add(self, frame: int, index: int, detection) -> None:
        self.members[frame] = index
        self.box = detection.box
        total = self.signature * (len(self.members) - 1) + detection.signature
        self.signature = total / max(float(np.linalg.norm(total)), 1e-6)


@dataclass
class ClipTracks:
    """Linking result: `track_of[t][i]` is detection i's track in frame t; `chosen[t]` the target's
    detection index in frame t (-1: not found)."""

    track_of: list[list[int]]
    target: int | None
    chosen: list[int]
    n_tracks: int
    top_face: list[bool | None]

    @property
    def multi_person(self) -> bool:
        return self.n_tracks >= 2


def similarity(track: _Track, detection) -> float:
    cos = float(np.dot(track.signature, detection.signature))
    return IOU_WEIGHT * iou(track.box, detection.box) + APPEARANCE_WEIGHT * max(0.0, cos)


def link(frames: Sequence[Sequence]) -> tuple[list[list[int]], list[_Track]]:
    """Track id of every detection (`faces.Candidate`-like: box, signature), frame by frame."""
    tracks: list[_Track] = []
    track_of: list[list[int]] = []
    for t, detections in enumerate(frames):
        pairs = sorted(
            (
                (similarity(track, d), k, i)
                for k, track in enumerate(tracks)
                for i, d in enumerate(detections)
            ),
            key=lambda p: -p[0],
        )
        assigned = [-1] * len(detections)
        used = set()
        for sim, k, i in pairs:
            if sim < LINK_MIN:
                break
            if k in used or assigned[i] >= 0:
                continue
            assigned[i] = k
            used.add(k)
        for i, d in enumerate(detections):
            if assigned[i] < 0:
                tracks.append(_Track(box=d.box, signature=np.zeros_like(d.signature)))
                assigned[i] = len(tracks) - 1
            tracks[assigned[i]].add(t, i, d)
        track_of.append(assigned)
    return track_of, tracks


DUPLICATE_IOU = 0.5
"""Two windows' detections overlapping by more than this are one face (the higher score is kept)."""


def search(images: Sequence, detector, *, tracked: bool, full_every: int, face_px: int):
    """Every frame's detections (`faces.FaceDetector.candidates`-like) and whether each frame got the
    full pass; `tracked` searches windows around the last frame's faces in between (module docstring).

    `detector` needs `candidates(frame)` and `candidates_near(frame, box, face_px)`."""
    frames, full = [], []
    previous: list = []
    for t, image in enumerate(images):
        found = None
        if tracked and previous and t % full_every:
            found, missed = [], False
            for face in previous:
                near = detector.candidates_near(image, face.box, face_px)
                missed |= not near
                found += near
            found = None if missed else _distinct(found)
        full.append(found is None)
        if found is None:  # first frame, the K-th, or a window that lost its face
            found = detector.candidates(image)
        frames.append(found)
        previous = found
    return frames, full


def _distinct(detections: list) -> list:
    """Drop detections that repeat a higher-scoring one (overlapping windows find the same face)."""
    kept: list = []
    for d in sorted(detections, key=lambda d: -d.score):
        if all(iou(d.box, k.box) <= DUPLICATE_IOU for k in kept):
            kept.append(d)
    return kept


def track_clip(frames: Sequence[Sequence], width: int, height: int) -> ClipTracks:
    """Link a clip's detections and choose its target person (module docstring)."""
    track_of, tracks = link(frames)
    if not tracks:
        return ClipTracks(track_of, None, [-1] * len(frames), 0, [None] * len(frames))
    target = _target(frames, tracks, width, height)
    chosen = [tracks[target].members.get(t, -1) for t in range(len(frames))]
    top = []
    for t, i in enumerate(chosen):
        if i < 0:
            top.append(None)
        else:
            best = max(range(len(frames[t])), key=lambda j: (frames[t][j].score, frames[t][j].area))
            top.append(best == i)
    min_frames = min(2, len(frames))
    n_tracks = sum(len(track.members) >= min_frames for track in tracks)
    return ClipTracks(track_of, target, chosen, n_tracks, top)


def _target(frames: Sequence[Sequence], tracks: list[_Track], width: int, height: int) -> int:
    """The target track (module docstring, 2): each rule keeps the tracks that tie with its best."""
    stats = []
    for track in tracks:
        boxes = np.array([frames[t][i].box for t, i in track.members.items()], dtype=float)
        middles = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = float(np.sqrt(np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))
        distance = float(np.linalg.norm(middles - (width / 2, height / 2), axis=1).mean())
        stats.append((len(boxes), side, distance, *middles.mean(axis=0)))
    most = max(s[0] for s in stats)
    keep = [k for k, s in enumerate(stats) if s[0] == most]
    largest = max(stats[k][1] for k in keep)
    keep = [k for k in keep if stats[k][1] * SIZE_TIE > largest]
    nearest = min(stats[k][2] for k in keep)
    keep = [k for k in keep if stats[k][2] <= nearest + CENTRE_TIE * largest]
    return min(keep, key=lambda k: (stats[k][3], stats[k][4], k))
