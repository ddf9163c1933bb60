"""Faces: dlib HOG detection, 68 landmarks and eye-aligned crops, one face chosen per frame.

The detector is dlib's `get_frontal_face_detector()` (HOG features, linear classifier, image pyramid,
sliding window), the one the First Impressions papers used. Interview clips show one speaker, so each
frame keeps one face: the highest-scoring detection, ties broken by the larger box. Detections under
`min_score` are discarded (with upsampling the detector also fires on shoulders at scores near 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from impressions import media

N_LANDMARKS = 68


@dataclass
class FrameFaces:
    """What the face stage found in one frame.

    `box` is (left, top, right, bottom) in frame pixels; `landmarks` are 68 (x, y) points in frame
    pixels and `landmarks_aligned` the same points in the aligned crop's pixels. All face fields are
    None when `chosen == -1` (no face passed the threshold).
    """

    n_faces: int
    chosen: int
    score: float | None = None
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    landmarks_aligned: np.ndarray | None = None
    crop: np.ndarray | None = None

    @property
    def found(self) -> bool:
        return self.chosen >= 0


SIGNATURE_SIZE = 16
"""Side (px) of the aligned thumbnail whose pixels are a face's appearance signature."""


@dataclass
class Candidate:
    """One detection: box (left, top, right, bottom) and 68 landmarks in frame pixels, detector
    margin, appearance signature (`signature`) and dlib's shape (for alignment and identity)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    signature: np.ndarray
    shape: object = None

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)


def signature(thumbnail: np.ndarray) -> np.ndarray:
    """Unit-norm, zero-mean pixels of a small eye-aligned RGB thumbnail: a cheap appearance cue.

    Cosine similarity of two signatures compares hair, skin and face layout; it is no identity
    model (that is `impressions.data.identity`), but tells two people in one clip apart for tracking at
    ~0.1 ms a face.
    """
    values = np.asarray(thumbnail, dtype=np.float32).ravel()
    values = values - values.mean()
    return values / max(float(np.linalg.norm(values)), 1e-6)


PYRAMID_STEP = 6 / 5
"""Scale between levels of the HOG detector's image pyramid (dlib's pyramid_down<6>)."""

WINDOW_FACTOR = 2.0
"""A tracked search's window side, in widths of the face's last box."""


SMALLEST_BOX = 72
"""Width (px) of the detector's boxes at the pyramid's first level (then 6/5 larger at each)."""


def window(box: tuple, width: int, height: int, factor: float = WINDOW_FACTOR) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) of side `factor` box widths centred on `box`, clipped to a
    `width` x `height` frame (integer pixels; right and bottom exclusive)."""
    side = factor * max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left, top = max(int(np.floor(cx - side / 2)), 0), max(int(np.floor(cy - side / 2)), 0)
    right, bottom = min(int(np.ceil(cx + side / 2)), width), min(int(np.ceil(cy + side / 2)), height)
    return left, top, max(right, left), max(bottom, top)


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def chip_coordinates(points: np.ndarray, details, size: int) -> np.ndarray:
    """Map frame points into the aligned crop described by dlib `chip_details`.

    dlib's chip is the rotated square `details.rect` scaled to `size`; checked against landmarks
    re-predicted on the crop (mean difference 0.6 px at 224 px).
    """
    rect = details.rect
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    scale = size / rect.width()
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    rotation = np.array([[cos, sin], [-sin, cos]])
    return ((points - centre) @ rotation.T * scale + (size - 1) / 2).astype(np.float32)


class FaceDetector:
    """dlib HOG detector + 68-point landmarks + eye-aligned crop of the best face in a frame."""

    def __init__(self, *, upsample: int = 0, min_score: float = 0.0, size: int = 224, padding: float = 0.25):
        import dlib  # heavy import kept local so importing the package stays cheap

        self._dlib = dlib
        self._pyramid = dlib.pyramid_down(6)  # the detector's own (PYRAMID_STEP)
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(media.dlib_landmarks_model(N_LANDMARKS)))
        self.upsample = upsample
        self.min_score = min_score
        self.size = size
        self.padding = padding

    def detect(self, frame: np.ndarray) -> FrameFaces:
        """Detect, choose, landmark and align the face in one RGB uint8 frame (best score wins)."""
        frame = np.ascontiguousarray(frame)
        found = self.candidates(frame)
        if not found:
            return FrameFaces(n_faces=0, chosen=-1)
        chosen = max(range(len(found)), key=lambda i: (found[i].score, found[i].area))
        return self.frame_faces(frame, found, chosen)

    def candidates(self, frame: np.ndarray) -> list[Candidate]:
        """Every detection in a frame with its landmarks and appearance signature, in detector order.

        What tracking needs to link faces across frames (`impressions.data.tracking`); landmarks cost about
        2 ms a face, next to about 40 ms for the detector's pass over a 640x360 frame.
        """
        frame = np.ascontiguousarray(frame)
        rects, scores, _ = self.detector.run(frame, self.upsample, self.min_score)
        boxes = [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in rects]
        return self._describe(frame, boxes, scores)

    def candidates_near(self, frame: np.ndarray, box: tuple, face_px: int) -> list[Candidate]:
        """The detections in a window around `box` (`window`), with the face brought to about
        `face_px` wide first; boxes, landmarks and signatures in frame pixels, as `candidates` gives.

        The window is taken down the detector's own pyramid (dlib's pyramid_down<6>, 6/5 a level) by
        whole levels, and its edges put on the full pass's HOG cell grid at the level that found the
        face, so the detector sees nearly the pixels and cells the full pass saw there: measured, the
        boxes then agree to a pixel or two, unless the face fires at a neighbouring level.
        """
        frame = np.ascontiguousarray(frame)
        width = max(box[2] - box[0], 1.0)
        level = max(round(np.log(width / SMALLEST_BOX) / np.log(PYRAMID_STEP)), 0)  # the full pass's
        skip = max(round(np.log(width / face_px) / np.log(PYRAMID_STEP)), 0)  # levels to go down first
        cell = 8 * PYRAMID_STEP**level  # a HOG cell at `level`, in frame pixels
        left, top, right, bottom = window(box, frame.shape[1], frame.shape[0])
        # edges on the full pass's cell grid at `level`, so that both passes see the same HOG cells
        left, top = (max(int(round(round(v / cell) * cell)), 0) for v in (left, top))
        if right - left < 8 or bottom - top < 8:
            return []
        part = np.ascontiguousarray(frame[top:bottom, left:right])
        for _ in range(skip):  # dlib's own downsampler: the pixels the full pass sees at that level
            part = np.ascontiguousarray(self._pyramid(part))
        rects, scores, _ = self.detector.run(part, self.upsample, self.min_score)
        boxes = []
        for rect in rects:
            for _ in range(skip):
                rect = self._pyramid.rect_up(rect)
            boxes.append((left + rect.left(), top + rect.top(), left + rect.right(), top + rect.bottom()))
        return self._describe(frame, [tuple(float(round(v)) for v in b) for b in boxes], scores)

    def _describe(self, frame: np.ndarray, boxes: list[tuple], scores) -> list[Candidate]:
        """Landmarks and appearance signature of each box (frame pixels) in a frame."""
        out = []
        for box, score in zip(boxes, scores):
            rect = self._dlib.rectangle(*(int(v) for v in box))
            shape = self.predictor(frame, rect)
            details = self._dlib.get_face_chip_details(shape, size=SIGNATURE_SIZE, padding=self.padding)
            out.append(
                Candidate(
                    box=box,
                    score=float(score),
                    landmarks=_points(shape),
                    signature=signature(np.asarray(self._dlib.extract_image_chip(frame, details))),
                    shape=shape,
                )
            )
        return out

    def frame_faces(self, frame: np.ndarray, found: list[Candidate], chosen: int) -> FrameFaces:
        """The FrameFaces record of candidate `chosen` (-1: none), with its eye-aligned crop."""
        if chosen < 0:
            return FrameFaces(n_faces=len(found), chosen=-1)
        face = found[chosen]
        details = self._dlib.get_face_chip_details(face.shape, size=self.size, padding=self.padding)
        crop = self._dlib.extract_image_chip(np.ascontiguousarray(frame), details)
        return FrameFaces(
            n_faces=len(found),
            chosen=chosen,
            score=face.score,
            box=face.box,
            landmarks=face.landmarks,
            landmarks_aligned=chip_coordinates(face.landmarks, details, self.size),
            crop=np.asarray(crop, dtype=np.uint8),
        )


@cache
def detector(
    *, upsample: int = 0, min_score: float = 0.0, size: int = 224, padding: float = 0.25
) -> FaceDetector:
    """A shared FaceDetector per setting: loading dlib's 68-point model costs about a second."""
    return FaceDetector(upsample=upsample, min_score=min_score, size=size, padding=padding)
