"""What each job asks a cluster for: partition, GPU model, memory and wall time, derived in one place.

The rules (rules/*.smk) call these functions from their `resources:` with the job's model (or shard),
the run's config, the run's size (`Work`: from the clip index the rules build at planning) and
Snakemake's `attempt` (1 on the first try, one more on each retry). The SLURM profile
(profiles/slurm/config.yaml) names no rule: it only sets defaults for the jobs no rule sizes.

Every request is ``max(floor, estimate) * attempt``: the floor is the registry's value (a family's
`Family.mem_mb` / `runtime`, an analysis's) or the shard rules' former fixed value, so that
demo-sized jobs keep sane requests, and the estimate grows with what the job holds and does. The
estimates are deliberately simple and round up; the constants below say which are measured on these
machines and which are assumptions. Compare a real run's use with ``--slurm-efficiency-report`` and
change the constants here, not the profile. Nothing here is imported by training itself, and nothing
here imports torch or Snakemake: the rules call it while the workflow is planned. `config` is the
validated one (the Snakefile's `validate` fills in the schema's defaults: the preprocessing sections'
defaults are read from it, not repeated here).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from impressions.data import audio
from impressions.models import registry, variants
from impressions.schemas import TRAITS

TRAINING_DEFAULTS = {"epochs": 10, "batch_size": 32}
"""`impressions.training.settings.Settings`' defaults for a family section that sets neither (repeated:
that module imports torch, which planning must not)."""

FBANK_TIME_BINS = 50
"""`impressions.models.audio.FbankRegressor`'s default `time_bins` (repeated for the same reason)."""

PARTITION = "IMPRESSIONS_SLURM_PARTITION"
GPU_PARTITION = "IMPRESSIONS_SLURM_GPU_PARTITION"
GPU_MODEL = "IMPRESSIONS_SLURM_GPU_MODEL"

MB = 2**20
"""Snakemake's `mem_mb` goes to ``sbatch --mem`` in SLURM's megabytes, which are MiB."""

TORCH_MB = 3000
"""A training or analysis process before its data: importing torch 2.14 took 507 MB here (measured,
CPU); a CUDA context adds about 1-2 GB of host memory (an assumption: not measurable here), and the
model, its optimiser state and the per-split tables come on top."""

WORKER_MB = 300
"""Each DataLoader worker: a forked process whose private pages (decoded JPEGs, its Python heap)
grow as it runs (an assumption; the forked torch libraries are shared, counted once)."""

FRAME_ITEM_BYTES = 1000
"""Bookkeeping per stored frame: its rows of the frames/faces tables and its (clip, frame) item in the
datasets' lists (an upper-bound assumption). Forked workers share these pages until Python's reference
counts touch them, so each worker is counted as holding a copy too."""

PREFETCH = 4
"""Batches each DataLoader worker holds ready (`impressions.training.datasets.loader`
``prefetch_factor``); the main process holds two more (the one on its way to the GPU, pinned)."""

PREDICT_BYTES = 22
"""Host bytes per clip and feature dimension of the final prediction pass
(`impressions.training.epochs.predict_clips` keeps float64 per-clip sums of scores and features, then
their means): measured 44 MB per 100,000 frames at a 2,048-d descriptor and 100 frames per clip,
that is per 1,000 clips, 44e6 / (1,000 x 2,048) = 21.5 bytes (benchmarks/predict_memory.py,
2026-12-07)."""

IMAGES_PER_S = 200
"""Training images per second at 224 px (forward, backward, step) on one GPU: an assumption from
published VGG-16 throughputs (200-400 images/s on a V100/A100, more with AMP), taken at the low end.
Scaled by (224 / input side)^2 for other sizes. The loader is not the limit: decoding a JPEG costs a
worker 0.47 ms of CPU (benchmarks/history/storage.md), so 8 workers feed about 17,000 images/s."""

AUDIO_SAMPLES_PER_S = 500
"""Training audio samples (one clip's window each) per second on one GPU: an assumption (the
waveform CNN and the filterbank regressor are small next to VGG-16)."""

EVAL_COST = 1 / 3
"""An evaluation (forward only) image costs about a third of a training one (forward + backward)."""

SAFETY = 1.5
"""Runtime estimates are multiplied by this before rounding up: queues kill a job at its limit."""

DAN_PLUS_WIDTH = 2048
"""The penultimate width of an image or face model: DAN+ on VGG-16 concatenates max and average
pooling of pool5 and pool4 (2 x 512 + 2 x 512; `impressions.models.dan`). The widest image head here,
used as an upper bound for the others."""

WAVEFORM_WIDTH = 512
"""An upper bound on the raw-waveform CNN's width (``width * 2**(stages - 1)``: 128 by default)."""

HANDCRAFTED_WIDTH = 256
"""An upper bound on the handcrafted features fusion_handcrafted adds (AU statistics, voice)."""

TEXT_CLIP_BYTES = 24_000
"""One clip's transcript as text_linear holds it: up to about 1,000 distinct n-grams per feature block
in the sparse TF-IDF rows (12 bytes each in CSR), for two blocks, and the text itself (an upper-bound
assumption: an FI transcript has about 40 words)."""

AU_ROW_BYTES = 400
"""One frame of the expressions table as ridge training holds it (24 float64 columns plus keys and a
copy for the statistics; an upper-bound assumption)."""

INTERPRET_FRAME_BYTES = 48
"""Bytes per pixel of one frame an analysis holds: the image as float32 RGB (12), its gradient (12),
the CAM, AU maps and overlays (about 24 more): an upper-bound assumption."""

INTERPRET_S_PER_FRAME = 1.0
"""CPU seconds per frame of an analysis at 224 px (a VGG-16 forward and backward on one thread takes
about that; an assumption), divided by the job's threads and scaled by (side / 224)^2."""

PREPROCESS_S_PER_FRAME = 0.045
"""CPU seconds per new frame of a preprocess_shard job: 4.5 CPU-s per clip at 100 frames (measured:
benchmarks/history/preprocessing.md). At 10 frames the measured 0.75 s is mostly per-clip cost, which
this per-frame rate underestimates (0.45 s); the rule's 60-minute floor covers it."""

AUDIO_S_PER_CLIP = 2.0
"""CPU seconds per clip of an audio_shard job (spectral features, pitch): an assumption."""

EXPRESSION_S_PER_FRAME = 0.05
"""CPU seconds per face of an expression_shard job (the expression CNN on 4 threads): an assumption."""

VOICE_S_PER_CLIP = 0.3
"""CPU seconds per clip of a voice_shard job: twice openSMILE's eGeMAPSv02 on a 5 s window (0.13-0.16 s
measured in process on the development machine; the builtin: about 0.05)."""


@dataclass(frozen=True)
class Work:
    """The size of the planned run: clips in all and per split, and the largest shard's clips."""

    clips: int
    train_clips: int
    eval_clips: int
    shard_clips: int

    @classmethod
    def of(cls, clips: Iterable[Mapping], shards: Mapping[int, list]) -> Work:
        """From the clip index's rows (each with a `split`) and the shards (clip ids per shard)."""
        splits = Counter(row["split"] for row in clips)
        total = sum(splits.values())
        return cls(
            clips=total,
            train_clips=splits.get("train", 0),
            eval_clips=total - splits.get("train", 0),
            shard_clips=max((len(ids) for ids in shards.values()), default=0),
        )


def on_gpu(model: str) -> bool:
    """Whether a training job asks for GPUs: its model's family's `gpu` (a sweep model, e.g.
    ``face_w0.5``, is its family's)."""
    return variants.gpu(model)


def partition(model: str) -> str:
    """``-p``: ``$IMPRESSIONS_SLURM_GPU_PARTITION`` for a GPU job (else the default one), the default
    one ``$IMPRESSIONS_SLURM_PARTITION`` otherwise; "" lets the plugin take the cluster's default."""
    default = os.environ.get(PARTITION, "")
    return (os.environ.get(GPU_PARTITION) or default) if on_gpu(model) else default


def gpu_model(model: str) -> str:
    """The GPU model of a GPU job (``sbatch --gpus=<model>:N``); "" for any GPU, and for a CPU job."""
    return os.environ.get(GPU_MODEL, "") if on_gpu(model) else ""


def train_threads(model: str, config: Mapping) -> int:
    """CPUs of a training job (``--cpus-per-task``): on a GPU, its DataLoader workers plus the main
    process, and at least `models.threads` (the torch threads locally: the demo's stay as they were);
    one for the closed-form families."""
    models = config["models"]
    return max(models["threads"], models["num_workers"] + 1) if on_gpu(model) else 1


def _options(model: str, config: Mapping) -> dict:
    settings = variants.settings(model, config)
    return {**settings["common"], **settings["options"]}


def _audio_seconds(config: Mapping) -> float:
    audio_cfg = config["audio"]
    return audio.window_seconds(audio_cfg["seconds"], audio_cfg.get("max_seconds"))


def sample_bytes(model: str, config: Mapping) -> int:
    """Bytes of one training sample as the loader delivers it: a stored frame or face as uint8 RGB
    (``size^2 x 3``; resized to `input_size` on the device), an audio window as float32 (waveform
    ``sample_rate x seconds x 4``, log filterbank ``n_fbank x seconds / hop x 4``); 0 otherwise."""
    kind = registry.get(variants.parse(model).family.name).sample_kind
    if kind in registry.IMAGE_KINDS:
        return config[kind]["size"] ** 2 * 3
    if kind == "waveform":
        return int(config["audio"]["sample_rate"] * _audio_seconds(config) * 4)
    if kind == "logfbank":
        return int(config["audio"]["n_fbank"] * _audio_frames(config) * 4)
    return 0


def _audio_frames(config: Mapping) -> int:
    return math.ceil(_audio_seconds(config) * 1000 / config["audio"]["hop_ms"])


def feature_width(model: str, config: Mapping) -> int:
    """The penultimate feature width a model's prediction pass sums per clip: `DAN_PLUS_WIDTH` for image
    and face models, `WAVEFORM_WIDTH` for the waveform CNN, ``n_fbank x time bins`` for the filterbank
    regressor (``time_bins: null`` keeps every frame: 26 x 1,600 = 41,600 for a 16 s window), the sum
    of the members' widths (and `HANDCRAFTED_WIDTH`) for fusion, one per trait for `text_linear` (what
    it hands a fusion: `impressions.models.text.TextRidge.embed`, its unclipped scores; its n-gram
    width is `text_vocabulary_width`); 0 for the other closed-form families."""
    family = variants.parse(model).family
    kind = family.sample_kind
    if kind in registry.IMAGE_KINDS:
        return DAN_PLUS_WIDTH
    if kind == "waveform":
        return WAVEFORM_WIDTH
    if kind == "logfbank":
        options = _options(model, config)
        bins = options.get("time_bins", FBANK_TIME_BINS)
        return config["audio"]["n_fbank"] * (bins or _audio_frames(config))
    if "features" in family.inputs:
        members = family.settings(config["models"].get(family.name) or {})["inputs"]
        extra = HANDCRAFTED_WIDTH if len(family.inputs) > 1 else 0
        return sum(feature_width(m, config) for m in members) + extra
    if family.trainer == "text":
        return len(TRAITS)
    return 0


def text_vocabulary_width(model: str, config: Mapping) -> int:
    """The widest TF-IDF vector `text_linear` fits a ridge on: over its `feature_sets`, the blocks
    in a set times `max_features` (each block keeps at most that many n-grams)."""
    options = _options(model, config)
    return max(len(blocks) for blocks in options["feature_sets"]) * int(options["max_features"])


def _samples_per_clip(model: str, config: Mapping) -> int:
    """Training samples per clip: its frames (`frames.per_clip`) for image and face models, one window
    for audio models (and one row for the per-clip families)."""
    kind = variants.parse(model).family.sample_kind
    return config["frames"]["per_clip"] if kind in registry.IMAGE_KINDS else 1


def train_mem_mb(model: str, config: Mapping, work: Work, attempt: int = 1) -> int:
    """Memory (MB) of a training job: ``max(family's mem_mb, estimate) * attempt``.

    Network families (a GPU job), with S samples (frames per clip x clips, all splits: training
    builds every split's dataset and predicts every clip), W DataLoader workers, batch B of b bytes
    (`sample_bytes`), n clips and feature width d (`feature_width`):

        TORCH_MB + W x WORKER_MB                          processes
        + S x FRAME_ITEM_BYTES x (1 + W)                  frame bookkeeping, copied into each worker
        + (W x PREFETCH + 2) x B x b                      batches in flight
        + n x d x PREDICT_BYTES                           the prediction pass's per-clip sums

    e.g. ventura2017_100frames' image model on FI (S = 1,000,000, W = 8, B = 32 of 224 px frames,
    n = 10,000, d = 2,048): 3,000 + 2,400 + 8,583 + 162 + 430 = about 14,600 MB. Fusion holds the
    members' per-clip features (n x d float32) and a few copies for its folds: 4 x n x d x 4 bytes.
    Ridge families hold the expressions table: S x AU_ROW_BYTES. `text_linear` holds, for a TF-IDF
    width v (`text_vocabulary_width`), the v x v Gram matrix, its eigenvectors and the solver's
    workspace (4 x v^2 float64) and every clip's sparse rows (n x `TEXT_CLIP_BYTES`): at the default
    4,000 n-grams and FI's 10,000 clips, 3,000 + 488 + 229 = about 3,700 MB (the family's 4,000 hold).
    """
    family = variants.parse(model).family
    frames = _samples_per_clip(model, config) * work.clips
    width = feature_width(model, config)
    if family.trainer == "samples":
        workers = config["models"]["num_workers"]
        batch = _options(model, config).get("batch_size", TRAINING_DEFAULTS["batch_size"])
        estimate = (
            TORCH_MB * MB
            + workers * WORKER_MB * MB
            + frames * FRAME_ITEM_BYTES * (1 + workers)
            + (workers * PREFETCH + 2) * batch * sample_bytes(model, config)
            + work.clips * width * PREDICT_BYTES
        )
    elif family.trainer == "fusion":
        estimate = TORCH_MB * MB + 4 * work.clips * width * 4
    elif family.trainer == "ridge":
        per_clip = config["frames"]["per_clip"]
        estimate = 1000 * MB + per_clip * work.clips * AU_ROW_BYTES
    elif family.trainer == "text":
        vocabulary = text_vocabulary_width(model, config)
        estimate = TORCH_MB * MB + 4 * vocabulary**2 * 8 + work.clips * TEXT_CLIP_BYTES
    else:
        estimate = 0
    return max(family.mem_mb, math.ceil(estimate / MB)) * attempt


def train_runtime(model: str, config: Mapping, work: Work, attempt: int = 1) -> int:
    """Wall time (minutes) of a training job: ``max(family's runtime, estimate) * attempt``.

    Network families: per epoch, the training split's samples (frames per clip x training clips, or
    one window per clip for audio) at the training rate and the other splits' at a third of its cost
    (`EVAL_COST`), for `epochs` epochs (early stopping only shortens it), then one prediction pass
    over every clip; the rate is `IMAGES_PER_S` x (224 / input_size)^2 for images,
    `AUDIO_SAMPLES_PER_S` for audio; times `SAFETY`:

        (train x epochs + EVAL_COST x (eval x epochs + all)) / rate x SAFETY / 60

    e.g. ventura2017_100frames' image model on FI (600,000 training frames, 400,000 others, 10 epochs,
    224 px): (6,000,000 + (4,000,000 + 1,000,000) / 3) / 200 x 1.5 / 60 = 959 minutes (16 h).
    Fusion and ridge fit per clip (seconds to minutes): their family's runtime.
    """
    family = variants.parse(model).family
    estimate = 0.0
    if family.trainer == "samples":
        options = _options(model, config)
        per_clip = _samples_per_clip(model, config)
        if family.sample_kind in registry.IMAGE_KINDS:
            side = options.get("input_size") or config[family.sample_kind]["size"]
            rate = IMAGES_PER_S * (224 / side) ** 2
        else:
            rate = AUDIO_SAMPLES_PER_S
        epochs = options.get("epochs", TRAINING_DEFAULTS["epochs"])
        samples = per_clip * (work.train_clips * epochs + EVAL_COST * (work.eval_clips * epochs + work.clips))
        estimate = samples / rate * SAFETY / 60
    return max(family.runtime, math.ceil(estimate)) * attempt


def interpret_frames(config: Mapping, work: Work) -> int:
    """Frames a per-model analysis reads: `interpret.max_frames`, or fewer where the run has fewer."""
    per_clip = config["frames"]["per_clip"]
    return min(config["interpret"]["max_frames"], per_clip * work.clips)


def _interpret_side(model: str, config: Mapping) -> int:
    family = variants.parse(model).family
    options = config["models"].get(family.name) or {}
    kind = family.sample_kind if family.sample_kind in registry.IMAGE_KINDS else "frames"
    return options.get("input_size") or config[kind]["size"]


def interpret_mem_mb(floor: int, model: str, config: Mapping, work: Work, attempt: int = 1) -> int:
    """Memory (MB) of a per-model analysis (interpret_cam, _units, _au_maps, _cam_overlap):
    ``max(its registry mem_mb, estimate) * attempt``, bounded by `interpret.max_frames` (F, after
    `interpret_frames`) frames of side s (the model's input_size, else the stored size):

        TORCH_MB + F x s^2 x INTERPRET_FRAME_BYTES

    e.g. 2,000 frames at 224 px: 3,000 + 4,593 = about 7,600 MB (the registry's 8,000 holds)."""
    side = _interpret_side(model, config)
    estimate = TORCH_MB * MB + interpret_frames(config, work) * side**2 * INTERPRET_FRAME_BYTES
    return max(floor, math.ceil(estimate / MB)) * attempt


def interpret_runtime(
    floor: int, model: str, config: Mapping, work: Work, threads: int, attempt: int = 1
) -> int:
    """Wall time (minutes) of a per-model analysis: ``max(its registry runtime, estimate) * attempt``,

        F x INTERPRET_S_PER_FRAME x (s / 224)^2 / threads x SAFETY / 60

    e.g. 2,000 frames at 224 px on 2 threads: 25 minutes (the registry's 60 hold)."""
    side = _interpret_side(model, config)
    seconds = interpret_frames(config, work) * INTERPRET_S_PER_FRAME * (side / 224) ** 2
    estimate = seconds / max(threads, 1) * SAFETY / 60
    return max(floor, math.ceil(estimate)) * attempt


SHARD_FLOORS = {
    # rule: (mem_mb, runtime): what the SLURM profile asked for before, per attempt
    "preprocess_shard": (2000, 60),
    "audio_shard": (4000, 60),
    "expression_shard": (8000, 120),
    "voice_shard": (1000, 30),
}


def audio_clip_bytes(config: Mapping) -> int:
    """Bytes of one clip's audio arrays (impressions.data.tables AUDIO_ARRAYS, float32): the waveform
    (``sample_rate x seconds``) and the log-mel and log-filterbank frames (``(n_mels + n_fbank) x
    seconds / hop``). 5 s windows: about 500 KB; ventura2017_100frames' 16 s: about 1.6 MB."""
    audio_cfg = config["audio"]
    bands = audio_cfg["n_mels"] + audio_cfg["n_fbank"]
    return 4 * int(audio_cfg["sample_rate"] * _audio_seconds(config) + bands * _audio_frames(config))


def shard_mem_mb(rule: str, config: Mapping, work: Work, attempt: int = 1) -> int:
    """Memory (MB) of a per-shard job: ``max(floor, estimate) * attempt`` (`SHARD_FLOORS`).

    preprocess_shard works clip by clip (peak 250-330 MB per shard, measured:
    benchmarks/history/preprocessing.md): its floor. expression_shard likewise, one clip's faces at a
    time: its floor. audio_shard keeps its shard's audio arrays until it writes them, with a copy:
    1,000 MB + 2 x C x `audio_clip_bytes` for C clips in the largest shard (about 120 FI clips of 16 s
    in 100 shards: about 1,400 MB, under its floor; about 2,600 clips in 4 shards: about 9,300 MB)."""
    floor, _ = SHARD_FLOORS[rule]
    estimate = 0
    if rule == "audio_shard":
        estimate = 1000 * MB + 2 * work.shard_clips * audio_clip_bytes(config)
    return max(floor, math.ceil(estimate / MB)) * attempt


def gather_audio_mem_mb(config: Mapping, work: Work, attempt: int = 1) -> int:
    """Memory (MB) of gather_audio, which holds every clip's audio arrays and concatenates them one
    kind at a time (impressions.data.tables.gather_audio): ``max(12,000, 1,000 + 2 x clips x
    audio_clip_bytes) * attempt``. FI with 5 s windows: about 10,500 MB (the floor holds); with
    ventura2017_100frames' 16 s windows: about 31,500 MB."""
    estimate = 1000 * MB + 2 * work.clips * audio_clip_bytes(config)
    return max(12000, math.ceil(estimate / MB)) * attempt


def shard_runtime(rule: str, config: Mapping, work: Work, attempt: int = 1) -> int:
    """Wall time (minutes) of a per-shard job: ``max(floor, estimate) * attempt`` (`SHARD_FLOORS`),
    for C clips in the largest shard at f frames per clip, times `SAFETY`:

        preprocess_shard   C x f x PREPROCESS_S_PER_FRAME     (measured: 4.5 CPU-s per clip at 100)
        audio_shard        C x AUDIO_S_PER_CLIP
        expression_shard   C x f x EXPRESSION_S_PER_FRAME
        voice_shard        C x VOICE_S_PER_CLIP

    e.g. FI at 100 frames in 100 shards (C about 120): preprocess 14 minutes (the floor of 60 holds); in
    the default 4 shards (C about 2,600): about 290 minutes."""
    _, floor = SHARD_FLOORS[rule]
    per_clip = config["frames"]["per_clip"]
    seconds = {
        "preprocess_shard": per_clip * PREPROCESS_S_PER_FRAME,
        "audio_shard": AUDIO_S_PER_CLIP,
        "expression_shard": per_clip * EXPRESSION_S_PER_FRAME,
        "voice_shard": VOICE_S_PER_CLIP,
    }[rule] * work.shard_clips
    return max(floor, math.ceil(seconds * SAFETY / 60)) * attempt
