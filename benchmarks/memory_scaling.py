"""Does each training and interpretation job's peak memory grow with the number of frames?

    .venv/bin/python benchmarks/memory_scaling.py                 (1x, 2x, 4x of 40 clips x 100 frames)
    .venv/bin/python benchmarks/memory_scaling.py --quick         (tiny sizes: the smoke test's run)
    .venv/bin/python benchmarks/memory_scaling.py --tables 200000 1000000   (the table reads at FI size)

Writes an FI-shaped synthetic results tree at each size with the project's own writers: per-clip
frames and faces (`impressions.data.image_store.write`, the config's storage and JPEG quality), the
clips, frames, faces (box and 68 landmarks per face, as the real table), expressions and splits
tables (`schemas.frame`, `data.splits.split_table`), and the audio table and arrays from one audio
shard (`data.tables.gather_audio`). Clips are split 60/20/20 as FI's 6,000/2,000/2,000. Then runs, each
in a fresh child process, the package function the workflow's script calls for the job:

- ``image``, ``face``, ``audio``, ``fusion``: `training.loop.train_family` with the inputs the rule
  names (`Inputs.from_files`, the clips folder as in rules/models_common.smk) and the config's
  settings (`models.variants.settings`) made tiny: 16 px images, 1 epoch, the config's batch sizes (audio
  scores in batches of 4 clips), one thread, CPU; ``guided`` is the face family with AU guidance
  (`au_guidance_weight` 0.1: its AU maps built from the faces and expressions tables);
  fusion fuses the image, face and audio models just trained at that size (their features.npz);
- ``cam``: `explain.interpret.run("cam", "image", ...)` on the image model, with the options the
  rule passes (`Analysis.job_options` of the config's `interpret` section: `max_frames` 2,000).

The image and face networks are the `small` backbone with the `dan_plus` head at width 86: its
descriptor is 24 x width = 2,064 wide, the nearest the small body gets to DAN+'s 2,048 (85 gives
2,040), so that everything sized by the descriptor (per-clip feature sums, features.npz, the fusion's
input) is as wide as the real model's, at a cost of seconds on a CPU (VGG-16 would take hours). Its
weights are a few MB and constant; what grows with the frames is the job's own bookkeeping. Audio
windows are the config's (`audio.seconds`, 5 s at 16 kHz: 320 KB a clip in audio_waveform.npy).

Each job's peak is `ru_maxrss` of its child process. The slope is a least-squares fit of the peaks
against the training frames (per 100,000), and the projection is the peak at FI's 600,000 training
frames (10,000 clips at 100 frames): the fitted line, evaluated there. The request is what the job
asks a cluster for in the FI run at 100 frames (experiments/ventura2017_100frames.yaml,
10,000 clips, first attempt): `impressions.cluster.train_mem_mb` for training, `interpret_mem_mb`
for interpretation; the registry's floor (`Family.mem_mb`, `Analysis.mem_mb`) is printed beside it.
The goal (the issue's): slope at most 50 MB per 100,000 frames and the projected peak under the job's
request; the last column says PASS or FAIL.

`--tables FRAMES...` measures instead what the parts that read the dataset tables add to a fresh
process's peak at FI-sized tables (no images written): training's `_frame_sets` (image: frames table,
face: faces table) and the cam job's `interpret.read_tables` + `images.load_images` (its image reads
stubbed with blank images), and AU guidance's training maps of the face family, written block by
block to a file as the training job does (`guided`) and held whole in memory as it did before
(`guided_whole`). They run once at a job's start, so at the sizes above they sit under the
training plateau and the fit cannot see them; at FI's 1,000,000 frames they can set the peak.

The machine this ran on has 2 cores shared with other work: peaks move by a few MB from run to run,
which at these sizes is a large share of the growth; the slope's sign and order of magnitude are the
figures to read, not its last digit.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
JOBS = ("image", "face", "guided", "audio", "fusion", "cam")
FAMILY = {"guided": "face"}  # a job that trains a family under other settings
FI_TRAIN_FRAMES = 600_000
GOAL_SLOPE_MB = 50.0  # per 100,000 training frames
SIZE = 16  # px, frames and faces
WIDTH = 86  # small backbone, dan_plus head: 24 * 86 = 2,064-d descriptor
FULL = {"clips": 40, "frames": 100}  # 1x: 4,000 frames, 2,400 of them training frames
QUICK = {"clips": 10, "frames": 4}
TABLES = ("clips", "splits", "frames", "faces", "expressions")  # what the interpretation rules name


def config() -> dict:
    """config.yaml with the schema's defaults filled in, as the workflow sees it."""
    from impressions import config_sources

    return config_sources.resolve().config


def write_tree(root: Path, n_clips: int, per_clip: int, seed: int = 0) -> dict:
    """The synthetic results tree (see the module docstring); returns its counts by split."""
    import polars as pl

    from impressions import schemas, testing
    from impressions.data import image_store, splits, tables

    frames_cfg = config()["frames"]
    rng = np.random.default_rng(seed)
    ids = [f"synth{i:05d}.000" for i in range(n_clips)]
    split_of = testing.splits_by_share(ids)
    clip_rows, frame_rows, face_rows, expr_rows = [], [], [], []
    for clip in ids:
        grey = rng.uniform(40, 215)
        images = np.clip(grey + rng.normal(0, 20, (per_clip, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        folder = root / "clips" / clip
        folder.mkdir(parents=True)
        for kind in ("frames", "faces"):
            image_store.write(folder, kind, images, frames_cfg["storage"], frames_cfg["jpeg_quality"])
        (folder / "qc.json").write_text("{}")  # a finished clip job's marker (logs.ClipFolders)
        clip_rows.append({"clip_id": clip, "path": f"{clip}.mp4", "split": split_of[clip],
                          "youtube_id": clip[:-4], "gender": "female", "age_group": "25-32",
                          **{label: float(grey / 255) for label in schemas.LABELS}})  # fmt: skip
        frames, faces = testing.synthetic_frame_rows(clip, per_clip, SIZE)
        frame_rows += frames
        face_rows += faces
        for k in range(per_clip):
            expr_rows.append({"clip_id": clip, "frame_index": k,
                              **{a: float(rng.uniform(0, 3)) for a in schemas.AUS},
                              **{e: 1 / len(schemas.EMOTIONS) for e in schemas.EMOTIONS}})  # fmt: skip
    t = root / "tables"
    t.mkdir()
    schemas.frame("clips", clip_rows).write_parquet(t / "clips.parquet")
    schemas.frame("frames", frame_rows).write_parquet(t / "frames.parquet")
    schemas.frame("faces", face_rows).write_parquet(t / "faces.parquet")
    schemas.frame("expressions", expr_rows).write_parquet(t / "expressions.parquet")
    splits.split_table(t / "clips.parquet", "official", 0).write_parquet(t / "splits.parquet")
    # one audio shard (table and arrays, as an audio shard job writes them), gathered by the project's gather
    audio_cfg = config()["audio"]  # the stored window: 5 s at 16 kHz by default (320 KB a clip)
    rate = int(audio_cfg["sample_rate"])
    n = int(rate * audio_cfg["seconds"])
    shard = root / "audio_shard"
    shard.mkdir()
    wave = (0.1 * rng.standard_normal((n_clips, n))).astype(np.float32)
    np.savez(shard / "arrays.npz", clip_id=np.array(ids), waveform=wave,
             logmel=rng.normal(size=(n_clips, 8, 10)).astype(np.float32),
             logfbank=rng.normal(size=(n_clips, 4, 10)).astype(np.float32))  # fmt: skip
    audio_rows = [{"clip_id": c, "has_audio": True, "padded": False, "n_samples": n,
                   "sample_rate": rate, "rms": 0.1, "loudness_db": -20.0, "pitch_hz": 150.0}
                  for c in ids]  # fmt: skip
    schemas.frame("audio", audio_rows).write_parquet(shard / "audio.parquet")
    tables.gather_audio(
        [shard / "audio.parquet"], [shard / "arrays.npz"], t / "audio.parquet", root / "arrays"
    )
    counts = pl.DataFrame(clip_rows).group_by("split").len()
    return {s: int(n) * per_clip for s, n in counts.iter_rows()}


def training_files(root: Path, family: str) -> dict:
    """What the train_model rule names for `family` (rules/models_common.smk `train_inputs`)."""
    from impressions.models import registry

    t, arrays = root / "tables", root / "arrays"
    kinds = {
        "frames": {"frames": t / "frames.parquet"},
        "faces": {"frames": t / "faces.parquet"},
        "waveform": {"audio_table": t / "audio.parquet", "audio_array": arrays / "audio_waveform.npy"},
    }
    files = {"clips": t / "clips.parquet", "splits": t / "splits.parquet"}
    for kind in registry.get(family).inputs:
        files |= kinds.get(kind, {})
    if family == "fusion":
        files["features"] = [root / "models" / m / "features.npz" for m in ("image", "face", "audio")]
    return {k: v if isinstance(v, list) else str(v) for k, v in files.items()}


def child(job: str, root: Path) -> dict:
    """Run one job in this process; its peak RSS (MB) and seconds."""
    start = time.perf_counter()
    cfg = config()
    if job == "cam":
        from impressions.explain import analyses, interpret

        spec = analyses.get("cam")
        t = root / "tables"
        inputs = {
            "checkpoint": str(root / "models" / "image" / "checkpoint.pt"),
            **{name: str(t / f"{name}.parquet") for name in TABLES},
        }
        outputs = {k: str(root / "interpret" / "cam" / "image" / v) for k, v in spec.files.items()}
        options = spec.job_options(cfg["interpret"], {"dataset": "synthetic"}) | {
            "clips_dir": str(root / "clips")
        }
        import torch

        torch.set_num_threads(1)
        interpret.run("cam", "image", inputs, outputs, options)
    else:
        from impressions import layout
        from impressions.models import variants
        from impressions.training import loop as training

        family = FAMILY.get(job, job)
        sides = variants.settings(family, cfg)
        common = {**sides["common"], "device": "cpu", "threads": 1, "num_workers": 0}
        options = {**sides["options"], "epochs": 1}  # the config's batch sizes
        if family in ("image", "face"):
            options |= {"backbone": "small", "head": "dan_plus", "width": WIDTH, "weights": None,
                        "input_size": SIZE}  # fmt: skip
            if job == "guided":
                options |= {"au_guidance_weight": 0.1}
        elif job == "audio":
            # scoring batches full at every size (the job's 128 clips outnumber these splits' clips;
            # FI's 2,000 do not): else the batch, not the frames, would grow with the size
            options |= {"width": 4, "stages": 2, "crop_seconds": None, "eval_batch_size": 4}
        else:
            options |= {"inputs": ["image", "face", "audio"]}
        files = training_files(root, family)
        if job == "guided":
            files["expressions"] = str(root / "tables" / "expressions.parquet")
        inputs = training.Inputs.from_files(files, root / "clips")
        training.train_family(
            family, inputs, layout.Outputs.in_folder(root / "models" / job), common, options
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak, "seconds": time.perf_counter() - start}


def write_tables(root: Path, n_frames: int, per_clip: int) -> None:
    """The clips, frames, faces and expressions tables alone (no images) of `n_frames` frames."""
    import polars as pl

    from impressions import schemas, testing
    from impressions.data import tables as data_tables

    ids = np.array([f"synth{i:06d}.000" for i in range(n_frames // per_clip)])
    split = np.array(["train", "train", "train", "val", "test"])[np.arange(len(ids)) % 5]  # 60/20/20
    _, flat = testing.synthetic_face(SIZE)
    constants = {
        "frames": {"source_frame": 0, "time_s": 0.0, "width": SIZE, "height": SIZE},
        "faces": {"has_face": True, "n_faces": 1, "chosen_face": 0, "score": 1.0,
                  **dict.fromkeys(testing.BOX_COLUMNS, 4.0), "landmarks": flat, "landmarks_aligned": flat},
        "expressions": {**dict.fromkeys(schemas.AUS, 1.0), **dict.fromkeys(schemas.EMOTIONS, 0.1)},
    }  # fmt: skip
    keys = {"clip_id": np.repeat(ids, per_clip), "frame_index": np.tile(np.arange(per_clip), len(ids))}
    (root / "tables").mkdir(parents=True)
    for name, values in constants.items():
        schema = schemas.polars_schema(name)
        table = pl.DataFrame(keys).with_columns(
            pl.lit(values.get(c), dtype).alias(c) for c, dtype in schema.items() if c not in keys
        )
        table.select(schema.names()).cast(dict(schema)).write_parquet(
            root / "tables" / f"{name}.parquet", row_group_size=data_tables.ROW_GROUP_ROWS
        )  # as the gathers write them
    clips = {"clip_id": ids, "path": ids, "split": split, "youtube_id": ids,
             **{label: np.full(len(ids), 0.5) for label in schemas.LABELS},
             **dict.fromkeys(("gender", "ethnicity", "age_group"), np.full(len(ids), None))}  # fmt: skip
    schemas.frame("clips", clips).write_parquet(root / "tables" / "clips.parquet")


class _NoImages:
    """Stands in for a clip's stored images in `--tables` runs: blank 16 px images, nothing read."""

    size = (SIZE, SIZE)

    def batch(self, index):
        return np.zeros((len(index), SIZE, SIZE, 3), np.uint8)


def table_part(part: str, root: Path) -> dict:
    """MB that one table-reading part adds to this process's peak (RSS before and after it)."""
    import inspect

    import polars as pl

    t = root / "tables"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if part in ("image", "face"):
        from impressions.training import loop as training

        clips = pl.read_parquet(t / "clips.parquet")
        ids = clips["clip_id"].to_list()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        table = t / ("faces.parquet" if part == "face" else "frames.parquet")
        inputs = training.Inputs(
            clips=t / "clips.parquet", frames=table, clip_dirs={c: root / c for c in ids}
        )
        sets = training._frame_sets(part, inputs, training._clips_by_split(clips))
        items = sum(len(s) for s in sets.values())
    elif part in ("guided", "guided_whole"):  # AU guidance's training maps of the face family
        from impressions.training import datasets, guidance
        from impressions.training import loop as training

        datasets.image_store.read = lambda folder, kind: _NoImages()
        clips = pl.read_parquet(t / "clips.parquet")
        inputs = training.Inputs(
            clips=t / "clips.parquet", frames=t / "faces.parquet", faces=t / "faces.parquet",
            expressions=t / "expressions.parquet", clip_dirs={c: root / c for c in clips["clip_id"]},
        )  # fmt: skip
        train = training._frame_sets("face", inputs, training._clips_by_split(clips))["train"]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if part == "guided":  # what the training job does: blocks written to a file
            guidance.write_guidance_maps(root / "au_maps.npy", "face", inputs, train)
        else:  # the same blocks held in memory, as the job held its maps before
            guidance.guidance_maps("face", inputs, train)
        items = len(train)
    else:  # cam's tables: interpret._run's read_tables and load_images, every split, max_frames 2,000
        from impressions.explain import images, interpret
        from impressions.expressions import au_maps  # noqa: F401 - load_images imports it (and torch)

        images.image_store.read = lambda folder, kind: _NoImages()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after the imports
        lazy = {"lazy": True} if "lazy" in inspect.signature(interpret.read_tables).parameters else {}
        tables = interpret.read_tables(t / "clips.parquet", None, t / "frames.parquet", t / "faces.parquet",
                                       t / "expressions.parquet", **lazy)  # fmt: skip
        items = len(images.load_images("frames", *tables, root / "clips", max_frames=2000))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"added_mb": after - before, "items": items}


FI_PRESET = REPO / "experiments" / "ventura2017_100frames.yaml"
"""The run whose requests the projections are set against: FI at 100 frames, VGG-16 DAN+."""


def request_mb(job: str) -> tuple[int, int]:
    """(what the job asks a cluster for in the FI run at 100 frames, first attempt: impressions/cluster.py
    on FI_PRESET and FI's 10,000 clips; the registry's floor for the job)."""
    from impressions import cluster, config_sources
    from impressions.explain import analyses
    from impressions.models import registry

    config = config_sources.resolve([FI_PRESET]).config
    work = cluster.Work(clips=10_000, train_clips=6_000, eval_clips=4_000, shard_clips=100)
    if job == "cam":
        floor = analyses.get("cam").mem_mb
        return cluster.interpret_mem_mb(floor, "image", config, work), floor
    family = FAMILY.get(job, job)
    return cluster.train_mem_mb(family, config, work), registry.get(family).mem_mb


def run_child(job: str, root: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", job, str(root)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"{job} failed at {root}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit(train_frames: list[int], peaks: list[float]) -> tuple[float, float, float]:
    """(slope in MB per 100,000 training frames, its standard error, projected peak MB at FI's 600,000
    training frames): least squares; the error is NaN with fewer than 3 sizes."""
    x, y = np.array(train_frames, float), np.array(peaks, float)
    slope, intercept = np.polyfit(x, y, 1)
    error = float("nan")
    if len(x) > 2:
        residual = y - (intercept + slope * x)
        error = np.sqrt(residual @ residual / (len(x) - 2) / ((x - x.mean()) ** 2).sum())
    return slope * 100_000, error * 100_000, intercept + slope * FI_TRAIN_FRAMES


def tables_main(sizes: list[int], per_clip: int) -> int:
    """`--tables`: MB each table-reading part adds (a fresh child each) at each frame count."""
    parts = {"image": "training _frame_sets, frames table", "face": "training _frame_sets, faces table",
             "cam": "interpret: read_tables + load_images (max_frames 2,000)",
             "guided": "AU guidance maps, blocks written to a file (the job)",
             "guided_whole": "AU guidance maps held whole in memory (before)"}  # fmt: skip
    rows = {p: [] for p in parts}
    with tempfile.TemporaryDirectory(prefix="memory_tables_") as tmp:
        for n in sizes:
            root = Path(tmp) / str(n)
            write_tables(root, n, per_clip)
            for part in parts:
                cmd = [sys.executable, __file__, "--child-table", part, str(root)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                if out.returncode:
                    raise RuntimeError(f"{part} failed at {n} frames:\n{out.stderr[-3000:]}")
                rows[part].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"{'part':<6} {'what':<56} "
        + "  ".join(f"{f'{n:,} fr MB':>14}" for n in sizes)
        + "  MB/100k train fr"
    )
    for part, what in parts.items():
        added = [r["added_mb"] for r in rows[part]]
        train = [0.6 * n for n in sizes]
        slope = np.polyfit(train, added, 1)[0] * 100_000 if len(sizes) > 1 else float("nan")
        cells = "  ".join(f"{a:>14.0f}" for a in added)
        print(f"{part:<6} {what:<56} {cells}  {slope:>16.1f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, help="clips at 1x (default 40; --quick 10)")
    parser.add_argument("--frames", type=int, help="frames per clip (default 100; --quick 4)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--jobs",
        nargs="+",
        choices=JOBS,
        default=list(JOBS),
        help="these and the jobs they need (fusion: image, face, audio; cam: image)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs, in seconds")
    parser.add_argument("--keep", type=Path, help="write the trees here and keep them (default: a temp dir)")
    parser.add_argument("--tables", type=int, nargs="+", metavar="FRAMES",
                        help="instead: what the table-reading parts add at these frame counts")  # fmt: skip
    parser.add_argument("--child", nargs=2, metavar=("JOB", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-table", nargs=2, metavar=("PART", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0
    if args.child_table:
        print(json.dumps(table_part(args.child_table[0], Path(args.child_table[1]))))
        return 0
    if args.tables:
        return tables_main(args.tables, args.frames or FULL["frames"])
    base = QUICK if args.quick else FULL
    n_clips, per_clip = args.clips or base["clips"], args.frames or base["frames"]
    jobs = list(args.jobs)
    need = {"fusion": ["image", "face", "audio"], "cam": ["image"]}
    run_jobs = [j for j in JOBS if j in jobs or any(j in need.get(k, []) for k in jobs)]
    top = args.keep or Path(tempfile.mkdtemp(prefix="memory_scaling_"))
    start = time.perf_counter()
    results = {j: [] for j in run_jobs}
    sizes = []
    try:
        for scale in args.scales:
            root = top / f"x{scale}"
            if root.exists():
                shutil.rmtree(root)
            t0 = time.perf_counter()
            counts = write_tree(root, n_clips * scale, per_clip)
            sizes.append(counts)
            print(f"x{scale}: {n_clips * scale} clips x {per_clip} frames ({counts.get('train', 0)} training "
                  f"frames), written in {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
            for job in run_jobs:
                got = run_child(job, root)
                results[job].append(got)
                print(f"  {job}: peak {got['peak_mb']:.0f} MB in {got['seconds']:.1f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(top, ignore_errors=True)
    train = [s.get("train", 0) for s in sizes]
    head = "  ".join(f"{f'x{s} MB':>8}" for s in args.scales)
    print(
        f"\ntraining frames at each size: {', '.join(f'{n:,}' for n in train)} ({per_clip} frames per clip)"
    )
    print(f"{'job':<7} {head}  {'MB/100k frames':>14}  {'s.e.':>6}  {'FI projected MB':>15}  "
          f"{'request MB':>10}  {'rule MB':>7}  goal")  # fmt: skip
    for job in run_jobs:  # with the jobs a requested one needs (fusion: image, face, audio)
        peaks = [r["peak_mb"] for r in results[job]]
        slope, error, projected = fit(train, peaks) if len(peaks) > 1 else (float("nan"),) * 3
        request, rule = request_mb(job)
        ok = slope <= GOAL_SLOPE_MB and projected < request
        cells = "  ".join(f"{p:>8.0f}" for p in peaks)
        print(f"{job:<7} {cells}  {slope:>14.1f}  {error:>6.1f}  {projected:>15.0f}  {request:>10}  "
              f"{rule:>7}  {'PASS' if ok else 'FAIL'}")  # fmt: skip
    print(f"goal: at most {GOAL_SLOPE_MB:.0f} MB per 100,000 training frames and the projected peak at "
          f"{FI_TRAIN_FRAMES:,} training frames under the request; "
          f"whole run {time.perf_counter() - start:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
