"""Check a GPU node: train the Ventura preset's image model on synthetic FI-shaped data and explain it.

    .venv/bin/python benchmarks/gpu_check.py [--preset experiments/ventura2017.yaml] [--dry]
    bash benchmarks/gpu_check.sh [--dry]            (the same, through the project's .venv)

Resolves the preset as the workflow does (config.yaml, then the preset on top, then the schema's
defaults) and reads the image model's settings from it: backbone, head, input size, loss, batch size,
AMP and num_workers. Writes synthetic clips in the real per-clip layout (`clips/<id>/frames.tar`, the
preset's storage and JPEG quality, by `impressions.data.image_store.write`) with the clips, frames and
faces tables, and then, through the project's own code:

- the loader alone: `training.inputs._frame_sets` and `training.datasets.loader` (what `fit` uses),
  images per second with no model;
- training: `training.epochs._train_epoch` (the step `fit` runs: Prepare, autocast, loss, GradScaler,
  AdamW) for a fixed number of steps; images per second, the peak of `torch.cuda.max_memory_allocated`
  and the GPU's utilisation sampled while it trains;
- CPU against GPU: `save_checkpoint`, then `load_checkpoint` on each device and `predict_clips` on the
  same test clips; the largest absolute difference of the per-clip scores (fp32, and with AMP);
- interpretation: the per-model analyses `cam`, `cam_overlap` and `units` (their registry functions)
  with the model and inputs on the GPU (`impressions.explain.images.on_device`), and the largest
  difference of the class activation maps between CPU and GPU.

Weights are random (no download: VGG-Face and ImageNet weights are user-supplied files); the check
measures speed and correctness, not accuracy. `--dry` runs the same code on the CPU with the `small`
backbone, tiny images, a few steps and no loader workers; GPU-only figures print as "n/a (cpu)".
Exits non-zero when any part fails.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Runtime budget (at most 8 minutes on one GPU). FI has 10,000 clips (6,000 / 2,000 / 2,000); the check
# writes FRAMES frames in all at the preset's frames per clip: 1,000 clips at ventura2017's 10 (a tenth
# of FI; about 20 s of JPEG encoding on one core), 100 clips at ventura2017_100frames' 100. It trains
# WARMUP + STEPS batches (220 x 32 = 7,040 images: under a minute even at 150 images/s), times
# LOADER_BATCHES batches of the loader alone, compares CPU and GPU on COMPARE_CLIPS test clips (80
# VGG-16 passes on the CPU at 10 frames: seconds) and runs the analyses on INTERPRET_FRAMES test frames.
FULL = {"frames_in_all": 10_000, "warmup": 20, "steps": 200, "loader_batches": 200, "compare_clips": 8,
        "interpret_frames": 64}  # fmt: skip
# --dry: the same path on the CPU in well under a minute.
DRY = {"frames_in_all": 40, "warmup": 1, "steps": 3, "loader_batches": 3, "compare_clips": 2,
       "interpret_frames": 8, "frames": 4, "size": 32, "batch_size": 4, "num_workers": 0,
       "backbone": "small", "width": 8}  # fmt: skip
ANALYSES = ("cam", "cam_overlap", "units")
NA_CPU = "n/a (cpu)"
# Largest CPU-vs-device differences accepted: absolute on the sigmoid scores, relative on the maps. Not
# measured on a GPU yet: set loose (float32 kernels differ by ~1e-6, fp16 by ~1e-3); tighten after a run.
TOLERANCE = {"fp32": 1e-3, "amp": 5e-2, "cam": 1e-2}


def resolve_config(preset: Path) -> dict:
    """config.yaml with the preset on top and the schema's defaults filled in, as the workflow sees it."""
    from impressions import config_sources

    return config_sources.resolve([preset]).config


def line(name: str, value) -> None:
    """One figure of the output: `name: value` (the format tests/test_gpu_check.py reads)."""
    print(f"{name}: {value}", flush=True)


def write_dataset(
    root: Path, n_clips: int, n_frames: int, size: int, storage: str, quality: int, seed: int = 0
):
    """Synthetic clips (smooth random images, a face box and template landmarks per frame) in the real
    per-clip layout, and the clips, frames and faces tables; returns (Inputs, clips, frames, faces)."""
    import polars as pl
    import torch
    import torch.nn.functional as F

    from impressions import schemas, testing
    from impressions.data import image_store
    from impressions.training import loop as training

    rng = np.random.default_rng(seed)
    ids = [f"synthetic{i:05d}.000" for i in range(n_clips)]
    split_of = testing.splits_by_share(ids)
    clip_dirs, frames, faces = {}, [], []
    for clip in ids:
        base = torch.from_numpy(rng.uniform(0, 255, (1, 3, 7, 7)).astype(np.float32))
        noise = torch.from_numpy(rng.normal(0, 12, (n_frames, 3, 28, 28)).astype(np.float32))
        coarse = F.interpolate(base, size=(28, 28), mode="bilinear", align_corners=False) + noise
        smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
        images = smooth.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
        folder = root / "clips" / clip
        folder.mkdir(parents=True)
        image_store.write(folder, "frames", images, storage=storage, quality=quality)
        clip_dirs[clip] = folder
        frame_rows, face_rows = testing.synthetic_frame_rows(clip, n_frames, size)
        frames += frame_rows
        faces += face_rows
    labels = rng.uniform(0.2, 0.8, (n_clips, len(schemas.LABELS)))
    clips = schemas.frame(
        "clips",
        [{"clip_id": c, "path": f"{c}.mp4", "split": split_of[c], "youtube_id": c.split(".")[0],
          **dict(zip(schemas.LABELS, row))} for c, row in zip(ids, labels)],
    )  # fmt: skip
    frames, faces = schemas.frame("frames", frames), schemas.frame("faces", faces)
    tables = root / "tables"
    tables.mkdir()
    for name, table in (("clips", clips), ("frames", frames), ("faces", faces)):
        table.write_parquet(tables / f"{name}.parquet")
    inputs = training.Inputs(
        clips=tables / "clips.parquet", frames=tables / "frames.parquet", clip_dirs=clip_dirs
    )
    assert clips.filter(pl.col("split") == "test").height > 0
    return inputs, clips, frames, faces


def nvidia_smi_utilisation(csv: str, uuid: str, index: int) -> float | None:
    """Utilisation (%) of one GPU from `nvidia-smi --query-gpu=uuid,utilization.gpu --format=csv,noheader,
    nounits` output: the row of `uuid` (torch's device; CUDA_VISIBLE_DEVICES renumbers indices), else
    the only row, else row `index`; None where it reports none (e.g. [N/A] on a MIG slice)."""
    rows = [[part.strip() for part in row.split(",")] for row in csv.strip().splitlines() if "," in row]
    want = uuid.removeprefix("GPU-")
    match = [r for r in rows if want and r[0].removeprefix("GPU-") == want]
    row = match[0] if match else rows[0] if len(rows) == 1 else rows[index] if index < len(rows) else None
    try:
        return float(row[1]) if row else None
    except ValueError:
        return None


class UtilisationSampler:
    """GPU utilisation (%) sampled in a thread: `torch.cuda.utilization` (nvidia-ml-py), else nvidia-smi."""

    def __init__(self, device: str, interval: float = 0.2):
        self.device, self.interval, self.samples, self.source = device, interval, [], None
        self.problem = "neither nvidia-ml-py nor nvidia-smi is available"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        import torch

        if self.source in (None, "torch.cuda.utilization"):
            try:
                value = float(torch.cuda.utilization(torch.device(self.device)))
                self.source = "torch.cuda.utilization"
                return value
            except Exception:  # noqa: BLE001 - no nvidia-ml-py: fall back to nvidia-smi
                self.source = "nvidia-smi"
        if shutil.which("nvidia-smi") is None:
            return None
        query = ["--query-gpu=uuid,utilization.gpu", "--format=csv,noheader,nounits"]
        out = subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, timeout=5)
        index = torch.device(self.device).index or torch.cuda.current_device()
        uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
        value = nvidia_smi_utilisation(out.stdout, uuid, index) if out.returncode == 0 else None
        if value is None:
            self.problem = f"nvidia-smi gave no utilisation: {(out.stdout or out.stderr).strip()[:200]!r}"
        return value

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = self._read()
            except Exception as error:  # noqa: BLE001 - sampling must never stop the check
                self.problem, value = f"sampling failed: {error}", None
            if value is None:
                return
            self.samples.append(value)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> str:
        if not self.samples:
            return f"n/a ({self.problem})"
        n, mean, peak = len(self.samples), np.mean(self.samples), max(self.samples)
        return f"mean {mean:.1f}, max {peak:.0f} ({n} samples every {self.interval} s, {self.source})"


def _cycle(loader):
    """Batches of `loader`, epoch after epoch."""
    while True:
        yield from loader


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _amp_dtype():
    """The autocast dtype `training.settings._autocast` picks on this GPU."""
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def measure_loader(train_set, settings, device: str, batches: int) -> float:
    """Images per second the training loader delivers alone (after its first batch: worker start-up)."""
    from impressions.training import datasets

    loader = datasets.loader(
        train_set, settings.batch_size, shuffle=True, seed=settings.seed, device=device,
        num_workers=settings.num_workers,
    )  # fmt: skip
    stream = _cycle(loader)
    next(stream)
    start, images = time.perf_counter(), 0
    for x, _, _ in itertools.islice(stream, batches):
        images += len(x)
    seconds = time.perf_counter() - start
    del stream, loader  # ends persistent workers
    return images / seconds


def train_steps(model, train_set, settings, device: str, warmup: int, steps: int) -> dict:
    """`warmup` then `steps` timed training steps of `fit`'s own step (`epochs._train_epoch`)."""
    import torch

    from impressions.training import epochs

    prepare = epochs.Prepare("frames", model.transform, settings.augment, settings.seed)
    # the optimiser (the preset's), loss, autocast, scaler and loader as `epochs.fit` sets them up
    optimizer, schedule, criterion, autocast, scaler, loader = epochs.training_parts(
        model, train_set, settings, device
    )
    stream = _cycle(loader)
    step = (prepare, device, optimizer, schedule, criterion, autocast, scaler, settings, None)
    epochs._train_epoch(model, itertools.islice(stream, warmup), *step)
    cuda = device.startswith("cuda")
    _sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    sampler = UtilisationSampler(device) if cuda else None
    start = time.perf_counter()
    if sampler:
        with sampler:
            total, seen, *_ = epochs._train_epoch(model, itertools.islice(stream, steps), *step)
            _sync(device)
    else:
        total, seen, *_ = epochs._train_epoch(model, itertools.islice(stream, steps), *step)
    seconds = time.perf_counter() - start
    del stream, loader
    loss = total / max(seen, 1)
    if not math.isfinite(loss):
        raise RuntimeError(f"training loss is {loss}")
    return {
        "rate": seen / seconds, "loss": loss, "images": seen, "seconds": seconds,
        "peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "utilisation": sampler.summary() if sampler else None,
        "dtype": str(_amp_dtype()).removeprefix("torch.") if cuda and settings.amp else "off",
    }  # fmt: skip


def compare_devices(checkpoint: Path, dataset, n_clips: int, settings, device: str) -> dict:
    """Largest |CPU - device| of per-clip scores of one checkpoint on the same clips (fp32; AMP on a GPU)."""
    from impressions.models import networks as models
    from impressions.training import epochs

    def scores(on: str, amp: bool) -> np.ndarray:
        model, _ = models.load_checkpoint(checkpoint, map_location=on)
        model.to(on)
        prepare = epochs.Prepare("frames", model.transform)
        got, _, counts = epochs.predict_clips(
            model, dataset, n_clips, prepare, on, settings.eval_batch_size, amp
        )
        assert (counts > 0).all(), "a compared clip has no frames"
        return got

    cpu = scores("cpu", False)
    fp32 = float(np.abs(scores(device, False) - cpu).max())
    amp = (
        float(np.abs(scores(device, True) - cpu).max())
        if device.startswith("cuda") and settings.amp
        else None
    )
    return {"fp32": fp32, "amp": amp}


def interpret_on(
    device: str, checkpoint: Path, config: dict, clips, frames, faces, clips_dir, out: Path, n: int
):
    """The per-model analyses on `device`, and the largest |CPU - device| of the class activation maps."""
    from impressions.explain import analyses, cam
    from impressions.explain import images as explain_images

    images = explain_images.load_images("frames", clips, frames, faces, None, clips_dir, splits=("test",),
                                        max_frames=n)  # fmt: skip
    results = {}
    with explain_images.on_device(device):
        for name in ANALYSES:
            spec = analyses.get(name)
            files = {k: out / name / v for k, v in spec.files.items()}
            (out / name).mkdir(parents=True, exist_ok=True)
            options = spec.job_options(config["interpret"], {"dataset": "synthetic"})
            start = time.perf_counter()
            analyses.function(name)("image", checkpoint, images, files, **spec.arguments(options))
            results[name] = time.perf_counter() - start

    def maps(on: str) -> np.ndarray:
        with explain_images.on_device(on):
            model, transform, _ = explain_images.load_model(checkpoint)
            placed = str(next(model.parameters()).device)
            assert placed.split(":")[0] == on.split(":")[0], f"model on {placed}, not {on}"
            return cam.class_activation_maps(model, explain_images.model_input(images.images[:8], transform))[
                0
            ]

    on_cpu = maps("cpu")  # relative to the maps' own range: CAMs are logit contributions, not 0..1
    results["cam_diff"] = float(np.abs(maps(device) - on_cpu).max() / max(float(np.abs(on_cpu).max()), 1e-12))
    results["cam_frames"] = min(8, len(images))
    return results, len(images)


def run(args) -> None:
    import torch

    from impressions import schemas
    from impressions.models import networks as models
    from impressions.models import transforms, variants
    from impressions.training import loop as training

    budget = {**FULL, **(DRY if args.dry else {})}
    config = resolve_config(args.preset)
    sides = variants.settings("image", config)
    common, options = dict(sides["common"]), dict(sides["options"], weights=None)  # random init
    frames_cfg = config["frames"]
    n_frames, size = frames_cfg["per_clip"], frames_cfg["size"]
    if args.dry:
        common.update(device="cpu", num_workers=budget["num_workers"])
        options.update(backbone=budget["backbone"], width=budget["width"], input_size=budget["size"],
                       batch_size=budget["batch_size"])  # fmt: skip
        n_frames, size = budget["frames"], budget["size"]
    n_clips = max(10, budget["frames_in_all"] // n_frames)
    settings, builder = training.Settings.from_options(common, options)
    training.seed_everything(settings.seed, settings.threads)
    device = training.resolve_device(settings.device)
    cuda = device.startswith("cuda")
    if not args.dry and not cuda:
        raise SystemExit("no GPU visible to torch: run this on a GPU node, or pass --dry for the CPU check")
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    kind = "dry run (cpu, small network)" if args.dry else "full check"
    preset = args.preset.relative_to(REPO) if args.preset.is_relative_to(REPO) else args.preset
    line("gpu_check", f"{kind} on {device} ({name}), torch {torch.__version__}, preset {preset}")
    line("weights", "random init, nothing downloaded (VGG-Face / ImageNet weights are user-supplied "
                    "files): this check measures speed and correctness, not accuracy")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        storage, quality = frames_cfg["storage"], frames_cfg["jpeg_quality"]
        inputs, clips, frames, faces = write_dataset(root, n_clips, n_frames, size, storage, quality)
        counts = {s: clips.filter(clips["split"] == s).height for s in schemas.SPLITS}
        shares = "/".join(map(str, counts.values()))
        line("data", f"{n_clips} synthetic clips x {n_frames} frames, {size} px, {storage} "
                     f"(q{quality}) in clips/<id>/ ({shares} train/val/test), "
                     f"written in {time.perf_counter() - start:.1f} s")  # fmt: skip
        splits = training._clips_by_split(clips)
        sets = training._frame_sets("image", inputs, splits)
        model = transforms.attach(models.build("image", **builder), settings.input_size)
        line("model", f"image: {builder.get('backbone')} {builder.get('head')}, input "
                      f"{settings.input_size} px, batch {settings.batch_size}, num_workers "
                      f"{settings.num_workers}, loss {settings.loss}, optimizer {settings.optimizer} "
                      f"({settings.lr_schedule} lr), "
                      f"amp {'on' if settings.amp and cuda else 'off'}")  # fmt: skip
        line(
            "loader images/s",
            f"{measure_loader(sets['train'], settings, device, budget['loader_batches']):.1f}",
        )
        trained = train_steps(model, sets["train"], settings, device, budget["warmup"], budget["steps"])
        line("train images/s", f"{trained['rate']:.1f}")
        line("train steps", f"{budget['steps']} timed after {budget['warmup']} warm-up, "
                            f"{trained['images']} images in {trained['seconds']:.1f} s, mean loss "
                            f"{trained['loss']:.4f}, autocast {trained['dtype']}")  # fmt: skip
        line("gpu memory peak MB", f"{trained['peak_mb']:.1f}" if cuda else NA_CPU)
        line("gpu utilisation %", trained["utilisation"] if cuda else NA_CPU)
        checkpoint = root / "checkpoint.pt"
        models.save_checkpoint(checkpoint, model, "image", builder)
        compared = splits["test"].ids[: budget["compare_clips"]]
        subset = training.datasets.Clips(compared, splits["test"].labels[: len(compared)])
        dataset = training._frame_sets("image", inputs, {"test": subset})["test"]
        diff = compare_devices(checkpoint, dataset, len(compared), settings, device)
        where = f"{len(compared)} test clips, {len(dataset)} frames"
        line(
            "cpu vs device max abs diff",
            f"{diff['fp32']:.3g} (cpu vs {device}, fp32, per-clip scores, {where})",
        )
        line("cpu vs device max abs diff (amp)", f"{diff['amp']:.3g}" if diff["amp"] is not None else NA_CPU)
        if not all(math.isfinite(v) and v <= TOLERANCE[k] for k, v in diff.items() if v is not None):
            raise RuntimeError(f"CPU and {device} predictions differ by {diff} (tolerance {TOLERANCE})")
        results, n = interpret_on(device, checkpoint, config, clips, frames, faces, root / "clips",
                                  root / "interpret", budget["interpret_frames"])  # fmt: skip
        times = ", ".join(f"{a} {results[a]:.1f} s" for a in ANALYSES)
        line("interpretation", f"ok on {device} ({n} test frames): {times}")
        line(
            "cam cpu vs device max abs diff",
            f"{results['cam_diff']:.3g} (cpu vs {device}, relative to the largest map value, "
            f"{results['cam_frames']} test frames)",
        )
        if not (math.isfinite(results["cam_diff"]) and results["cam_diff"] <= TOLERANCE["cam"]):
            raise RuntimeError(f"CPU and {device} activation maps differ by {results['cam_diff']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", type=Path, default=REPO / "experiments" / "ventura2017.yaml")
    parser.add_argument("--dry", action="store_true", help="the same code on the CPU, small network, seconds")
    args = parser.parse_args(argv)
    args.preset = args.preset.resolve()
    start = time.perf_counter()
    try:
        run(args)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - any failure is the check's answer: print it, exit non-zero
        traceback.print_exc()
        line("gpu_check", f"FAILED after {time.perf_counter() - start:.1f} s")
        return 1
    line("gpu_check", f"ok in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
