"""The demo's transcripts: word choice drawn from its labels, written as FI's transcription pickles.

Like the demo's pictures and sounds (`impressions.data.demo`), the transcripts carry label signal by
construction. For each of the five traits t of a clip, with its label y_t and the label's intercept
a_t (`demo.WEIGHTS`):

    z_t = (y_t - a_t) / 0.12       (0.12: about the demo labels' standard deviation)
    k_t = min(4, round(2 * |z_t|)) words drawn from HIGH[t] when z_t > 0, else from LOW[t]

plus `N_FILLER` words from `FILLER` (no trait signal), all shuffled; every draw comes from a
`random.Random` seeded with the demo's seed, the clip and the trait, so the text is the same on every
build. A clip with no voice has no speech to transcribe: the clips of `no_face.mp4` (music only) get
an empty transcript, the clip without an audio stream is not listed at all, as a clip FI's files
lack would be. Nothing is rendered: the transcripts follow from `demo.demo_clips` and
`demo.demo_labels` alone, so writing them takes milliseconds and never re-renders a video.
"""

from __future__ import annotations

import os
from pathlib import Path
from random import Random

from impressions.data import demo
from impressions.data.fi_pickle import fi_transcript_bytes
from impressions.data.transcripts import TRANSCRIPT_FILES
from impressions.schemas import TRAITS

SCALE = 0.12
MAX_WORDS = 4
N_FILLER = 10
HIGH = {
    "extraversion": ("party", "friends", "talking", "excited", "crowd", "fun"),
    "neuroticism": ("worried", "nervous", "stress", "afraid", "upset", "anxious"),
    "agreeableness": ("kind", "thank", "help", "lovely", "together", "share"),
    "conscientiousness": ("plan", "schedule", "careful", "organized", "finish", "prepared"),
    "openness": ("art", "imagine", "travel", "ideas", "curious", "music"),
}
LOW = {
    "extraversion": ("quiet", "alone", "home", "reading", "shy", "calm"),
    "neuroticism": ("relaxed", "fine", "steady", "easy", "confident", "okay"),
    "agreeableness": ("whatever", "annoying", "stupid", "argue", "hate", "rude"),
    "conscientiousness": ("later", "forgot", "messy", "lazy", "random", "skip"),
    "openness": ("usual", "routine", "normal", "same", "simple", "traditional"),
}
FILLER = ("so", "i", "the", "and", "you", "know", "we", "really", "think", "video", "today", "like",
          "this", "is", "about", "my", "a", "to", "that", "was")  # fmt: skip


def transcript(clip_id: str, labels: dict[str, float]) -> str:
    """The demo transcript of a clip with these labels (the module docstring's definition)."""
    chosen = []
    for t in TRAITS:
        a = demo.WEIGHTS[t][0]
        z = (labels[t] - a) / SCALE
        k = min(MAX_WORDS, round(2 * abs(z)))
        rng = Random(f"{demo.SEED}:words:{clip_id}:{t}")
        chosen += [rng.choice(HIGH[t] if z > 0 else LOW[t]) for _ in range(k)]
    rng = Random(f"{demo.SEED}:filler:{clip_id}")
    chosen += [rng.choice(FILLER) for _ in range(N_FILLER)]
    rng.shuffle(chosen)
    return " ".join(chosen)


def demo_transcripts() -> dict[str, str]:
    """clip_id -> transcript for every listed clip (see the module docstring for who is left out)."""
    labels = demo.demo_labels()
    out = {}
    for clip in demo.demo_clips():
        if clip.audio == "none":
            continue  # no audio stream: FI would have no transcript to list
        out[clip.clip_id] = transcript(clip.clip_id, labels[clip.clip_id]) if clip.person else ""
    return out


def write_transcripts(root: str | Path) -> list[Path]:
    """FI's three transcription pickles for the demo under `root`; returns their paths."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    texts = demo_transcripts()
    paths = []
    for clip_split, name in TRANSCRIPT_FILES.items():
        chosen = {
            c.name: texts[c.clip_id]
            for c in demo.demo_clips()
            if c.split == clip_split and c.clip_id in texts
        }
        path = root / name
        part = path.with_name(path.name + ".part")
        part.write_bytes(fi_transcript_bytes(chosen))
        os.replace(part, path)
        paths.append(path)
    return paths
