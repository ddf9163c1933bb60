"""The `impressions` command: quick facts about a First Impressions annotation folder, and predictions.

impressions baseline ANNOTATION_DIR     train-mean baseline accuracy per split and trait
impressions leakage ANNOTATION_DIR      YouTube ids of each split that also occur in training
impressions leakage --faces IDENTITIES  people (face clusters across YouTube ids) also in training
impressions export-openface RESULTS OUT one OpenFace-style CSV per clip from the dataset tables
impressions predict CLIP.mp4|FOLDER ... trait scores of new clips from trained models
impressions bias RESULTS                the report's bias audit tables from a finished run
impressions config show [--configfile F ...]  the resolved config, each value with its source
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from impressions import metrics
from impressions.schemas import SPLITS, TRAITS


def _labels_by_split(root: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    from impressions.data.annotations import load_split_labels

    clips = load_split_labels(root)
    if not clips:
        raise SystemExit(f"no annotation_*.pkl files in {root}")
    out = {}
    for split in SPLITS:
        ids = sorted(c for c, (s, _) in clips.items() if s == split)
        if ids:
            out[split] = (ids, np.array([[clips[c][1][t] for t in TRAITS] for c in ids]))
    return out


def baseline_rows(root: str | Path, n_boot: int = 0, seed: int = 0) -> list[dict]:
    """Accuracy of always predicting the training mean, per split: {split, n, trait..., mean[, CI]}."""
    from impressions.data.clip_index import youtube_id

    splits = _labels_by_split(Path(root))
    if "train" not in splits:
        raise SystemExit(f"{root}: no training annotations, so no training mean")
    train_mean = metrics.train_mean(splits["train"][1])
    rows = []
    for split, (ids, y) in splits.items():
        pred = np.broadcast_to(train_mean, y.shape)
        acc = metrics.accuracy(y, pred)
        row = {"split": split, "n": len(ids), **dict(zip(TRAITS, acc)), "mean": float(acc.mean())}
        if n_boot:
            groups = [youtube_id(c) for c in ids]
            est = metrics.bootstrap(y, pred, n_boot=n_boot, seed=seed, groups=groups)["accuracy"]
            row["ci_low"], row["ci_high"] = float(est.low[-1]), float(est.high[-1])
        rows.append(row)
    return rows


def leakage_rows(root: str | Path) -> list[dict]:
    """Per split: distinct YouTube ids, how many also occur in training, and the clips they cover."""
    from impressions.data.clip_index import youtube_id

    splits = _labels_by_split(Path(root))
    train_ids = {youtube_id(c) for c in splits.get("train", ([], None))[0]}
    rows = []
    for split, (ids, _) in splits.items():
        people = [youtube_id(c) for c in ids]
        shared = {p for p in people if p in train_ids}
        rows.append({
            "split": split, "clips": len(ids), "youtube_ids": len(set(people)), "in_train": len(shared),
            "clips_in_train": sum(p in shared for p in people),
        })  # fmt: skip
    return rows


def _print_baseline(rows: list[dict]) -> None:
    short = [metrics.SHORT[t] for t in TRAITS]
    ci = "ci_low" in rows[0]
    print("Train-mean baseline: accuracy (1 - MAE) of always predicting the training mean")
    print(f"{'split':<6} {'clips':>6}  " + "  ".join(f"{s:>6}" for s in short) + f"  {'mean':>6}"
          + ("  95% CI (clusters: YouTube ids)" if ci else ""))  # fmt: skip
    for r in rows:
        line = (
            f"{r['split']:<6} {r['n']:>6,}  "
            + "  ".join(f"{r[t]:.4f}" for t in TRAITS)
            + f"  {r['mean']:.4f}"
        )
        if ci:
            line += f"  [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        print(line)


def _print_leakage(rows: list[dict]) -> None:
    print("YouTube ids (people) of each split that also occur in the training split")
    for r in rows:
        if r["split"] == "train":
            print(f"train: {r['youtube_ids']:,} YouTube ids in {r['clips']:,} clips")
            continue
        share = r["in_train"] / r["youtube_ids"] if r["youtube_ids"] else 0.0
        print(
            f"{r['split']}: {r['in_train']:,} of {r['youtube_ids']:,} YouTube ids ({share:.1%}) also "
            f"occur in train; they cover {r['clips_in_train']:,} of {r['clips']:,} clips"
        )


def _print_face_leakage(path: str | Path, threshold: float | None = None) -> None:
    """People by face: identity clusters of each split that also occur in training."""
    import polars as pl

    from impressions.data import identity

    table = pl.read_parquet(path)
    if not table["has_identity"].any():
        raise SystemExit(
            f"impressions leakage --faces: no clip in {path} has an identity descriptor; run the workflow "
            "with faces.identity: true (the default, auto, computes them only for "
            "models.split: identity_faces)"
        )
    if threshold is not None:
        descriptors = np.array(
            [d if d is not None else [np.nan] * identity.DIM for d in table["descriptor"].to_list()], float
        ).reshape(-1, identity.DIM)
        people = identity.cluster_people(descriptors, table["youtube_id"].to_list(), threshold)
        table = table.with_columns(person=pl.Series(people, dtype=pl.Int32))
    used = identity.THRESHOLD if threshold is None else threshold
    print(f"People by face (YouTube ids' mean dlib descriptors linked below distance {used:g})")
    for r in identity.leakage_rows(table):
        if r["split"] == "train":
            print(f"train: {r['people']:,} people in {r['clips_with_face']:,} clips with a face")
            continue
        share = r["in_train"] / r["people"] if r["people"] else 0.0
        print(
            f"{r['split']}: {r['in_train']:,} of {r['people']:,} people ({share:.1%}) also appear in train; "
            f"they cover {r['clips_in_train']:,} of {r['clips_with_face']:,} clips with a face"
        )
    several, people = identity.multi_id_people(table)
    print(f"{several:,} of {people:,} people appear under more than one YouTube id")


BIAS_TABLES = ("bias_groups.parquet", "bias_gaps.parquet")
"""What the report rule writes to results/report/ for `impressions bias` (rules/report.smk)."""


def bias_tables(results: str | Path, split: str = "test", models: Sequence[str] = ()) -> tuple[list, list]:
    """(significant gaps, tables) of a finished run's bias audit, as the report shows them
    (`impressions.report.bias`), read from RESULTS/report/ (or RESULTS itself when it holds them);
    `models` keeps only those models."""
    import polars as pl

    from impressions.report import bias as bias_report

    folder = Path(results)
    folder = folder if (folder / BIAS_TABLES[0]).is_file() else folder / "report"
    missing = [name for name in BIAS_TABLES if not (folder / name).is_file()]
    if missing:
        raise SystemExit(
            f"impressions bias: no {', '.join(missing)} in {folder}; run the workflow up to its report "
            "(`snakemake --cores N`) first"
        )
    groups, gaps = (pl.read_parquet(folder / name) for name in BIAS_TABLES)
    if models:
        unknown = sorted(set(models) - set(groups["model"]))
        if unknown:
            raise SystemExit(f"impressions bias: no model {', '.join(unknown)} in {folder} "
                             f"(models: {', '.join(dict.fromkeys(groups['model'].to_list()))})")  # fmt: skip
        keep = pl.col("model").is_in(["labels", *models])
        groups, gaps = groups.filter(keep), gaps.filter(keep)
    if split not in set(groups["split"]):
        raise SystemExit(f"impressions bias: no {split} rows in {folder}")
    return bias_report.significant(gaps, split), bias_report.tables(groups, gaps, split)


def _print_bias(summary: list[str], tables: list) -> None:
    from impressions.report.document import md_table

    print("Gaps significant after Holm correction:\n" + "\n".join(f"- {line}" for line in summary) + "\n")
    for title, header, rows in tables:
        print(f"{title}\n\n{md_table(header, rows)}\n")


def _predict(args) -> int:
    """Scores per clip and model with the clip's QC status; one line per unusable input; exit 1 if any."""
    from impressions import predict

    def progress(i: int, n: int, clip_id: str) -> None:
        print(f"[{i}/{n}] {clip_id}: preprocessing", file=sys.stderr, flush=True)

    result = predict.predict_paths(
        args.videos, Path(args.models), names=args.model or None, device=args.device, progress=progress,
        transcript=predict.read_transcript(args.transcript),
    )  # fmt: skip
    table = result.table
    if args.output and args.output.endswith(".parquet"):
        table.write_parquet(args.output)
    elif args.output:
        table.write_csv(args.output)
    for row in table.iter_rows(named=True):
        if row["has_input"]:
            shown = "  ".join(f"{metrics.SHORT[t]} {row[t]:.3f}" for t in TRAITS)
            shown += f"  ({row['note']})" if row["note"] else ""
        else:
            shown = f"{row['note']}: no scores"
        print(f"{row['clip_id']}  {row['model']:<20} {shown}  [qc: {row['status']}]")
    for video, reason in result.failures:
        print(f"{video}: cannot predict: {reason}", file=sys.stderr)
    return 1 if result.failures else 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="impressions", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("baseline", help="train-mean baseline accuracy per split and trait")
    b.add_argument("annotation_dir", help="folder holding annotation_{training,validation,test}.pkl")
    b.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="add a 95%% CI of the mean from N bootstrap replicates over YouTube ids")  # fmt: skip
    b.add_argument("--seed", type=int, default=0)
    lk = sub.add_parser("leakage", help="YouTube ids of each split that also occur in training")
    lk.add_argument("annotation_dir", nargs="?", help="folder of annotation_*.pkl (YouTube-id leakage)")
    lk.add_argument(
        "--faces", metavar="IDENTITIES",
        help="the identities table (results/tables/identities.parquet): leakage of people by face",
    )  # fmt: skip
    lk.add_argument(
        "--threshold", type=float, default=None,
        help="re-cluster the descriptors at this distance (default: the clusters stored in the table)",
    )  # fmt: skip
    ox = sub.add_parser("export-openface", help="one OpenFace-style CSV per clip (impressions.data.openface)")
    ox.add_argument("results", help="the workflow's results folder (its tables/ are read)")
    ox.add_argument("out", help="folder for the CSV files (created)")
    ox.add_argument(
        "--threshold", type=float, default=None,
        help="AU presence threshold on the 0..5 intensity (default: impressions.data.openface.PRESENCE)",
    )  # fmt: skip
    p = sub.add_parser("predict", help="trait scores of video clips from trained models")
    p.add_argument("videos", nargs="+", help="video files, or folders searched for video files")
    p.add_argument(
        "--models", default="results/models", help="folder of trained models (default: %(default)s)"
    )
    p.add_argument("--model", action="append", help="use only this model (repeatable); default: all found")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--transcript", metavar="TEXT|FILE",
        help="what is said in the clip (the text, or a UTF-8 file holding it): scores text_linear and the "
        "text fusions; without it their rows say 'no transcript'",
    )  # fmt: skip
    p.add_argument(
        "--output",
        help="also write the table to this .csv or .parquet file (models without input: empty scores, "
        "has_input false and a note)",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    bi = sub.add_parser("bias", help="the report's bias audit tables from a finished run (docs/bias.md)")
    bi.add_argument("results", help="the workflow's results folder (its report/bias_*.parquet are read)")
    bi.add_argument("--split", default="test", choices=["val", "test"], help="default: %(default)s")
    bi.add_argument("--model", action="append", help="only this model (repeatable); default: all")
    _add_convert_vggface(sub)
    c = sub.add_parser("config", help="the configuration the workflow resolves (impressions.config_sources)")
    c.add_argument("action", choices=["show"], help="show: every value with the file it came from")
    c.add_argument("--configfile", nargs="+", action="extend", default=[], metavar="F",
                   help="config files layered over the default config in order, as snakemake's")  # fmt: skip
    c.add_argument("--base", help="the default config (default: config.yaml beside the Snakefile)")
    return ap


def _add_convert_vggface(sub) -> None:
    from impressions.models import vggface

    v = sub.add_parser(
        "convert-vggface",
        help="convert a published VGG-Face file (vgg_face_dag.pth, ...) to torchvision vgg16 layout",
        description=vggface.__doc__.split("\n\n")[0],
    )
    v.add_argument(
        "source", help="e.g. vgg_face_dag.pth (" + vggface.KNOWN_FILES["vgg_face_dag.pth"]["url"] + ")"
    )
    v.add_argument(
        "-o", "--output", default=vggface.DEFAULT_OUTPUT, help="converted file (default: %(default)s)"
    )
    v.add_argument("--channel-order", choices=["rgb", "bgr"], help="input order the source weights expect")
    v.add_argument("--sha256", help="refuse the source unless its SHA-256 is this")


def _convert_vggface(args) -> None:
    from impressions.models import vggface

    meta = vggface.convert(args.source, args.output, args.channel_order, args.sha256)
    src = meta["source"]
    print(f"{args.output}: torchvision vgg16 keys, input transform {meta['input_transform']}")
    verified = "verified" if src["checksum_verified"] else "not verified: no checksum given"
    print(f"source {src['file']} sha256 {src['sha256']} ({verified})")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "baseline":
        _print_baseline(baseline_rows(args.annotation_dir, n_boot=args.bootstrap, seed=args.seed))
    elif args.command == "leakage":
        if args.annotation_dir is None and args.faces is None:
            raise SystemExit("impressions leakage: give ANNOTATION_DIR, --faces IDENTITIES, or both")
        if args.annotation_dir is not None:
            _print_leakage(leakage_rows(args.annotation_dir))
        if args.faces is not None:
            _print_face_leakage(args.faces, args.threshold)
    elif args.command == "export-openface":
        from impressions.data import openface

        written = openface.export(Path(args.results), Path(args.out), threshold=args.threshold)
        print(f"{len(written)} OpenFace-style CSV files written to {args.out}")
    elif args.command == "predict":
        try:
            return _predict(args)
        except Exception as err:  # one clear line; the traceback only on request
            if args.debug:
                raise
            print(f"impressions predict: error: {err}", file=sys.stderr)
            return 2
    elif args.command == "bias":
        _print_bias(*bias_tables(args.results, args.split, args.model or ()))
    elif args.command == "convert-vggface":
        _convert_vggface(args)
    elif args.command == "config":
        from impressions import config_sources

        base = args.base or config_sources.BASE
        print(config_sources.show(config_sources.resolve(args.configfile, base=base), base=base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
