"""The train/val/test assignment, computed once: `results/tables/splits.parquet` (rule `splits`).

`assign_splits` is the algorithm (`models.split`: official, identity, identity_faces; seeded by
`models.seed`), `split_table` the table the workflow writes, and `read_clips` what training, the
analyses and the report call: the clips table with the stored split. Imported by the workflow's rules,
so polars is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

SPLIT_MODES = ("official", "identity", "identity_faces")
"""`models.split`: the clips table's split column, or an identity-disjoint re-split of it (by YouTube
id, or by face clusters joined with YouTube ids: `impressions.data.identity.identity_groups`)."""


def assign_splits(clips, mode: str = "official", seed: int = 0):
    """The clips table with the split every model and the report use (`models.split`).

    ``official`` returns the table unchanged (First Impressions' own split, in which clips of one
    YouTube id, one person, can sit in train and test). ``identity`` re-assigns train/val/test so that
    all clips of one ``youtube_id`` land in one split, keeping the official proportions:

    1. Clips with a split (train, val or test) are grouped by ``youtube_id`` (a clip without one is a
       group of its own). Target sizes are the official split sizes (they already sum to the total).
    2. Groups are ordered by size, largest first, ties broken by a SHA-256 hash of ``"{seed}:{id}"``:
       deterministic for a seed, independent of the table's row order, different per seed.
    3. Greedily, each group goes to the split furthest below its target (most clips missing; ties
       in train, val, test order). A split only overshoots when it received a group while furthest
       below target, and then by less than that group, so each final size is within one group of its
       target; placing large groups first keeps the last, small groups for the fine balance.

    Clips without a split (unlabelled) keep it. `polars` is imported here so that the workflow's rules
    can import this module cheaply.
    """
    import hashlib

    import polars as pl

    if mode == "official":
        return clips
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown split mode {mode!r}; known: {SPLIT_MODES}")
    order = ("train", "val", "test")
    labelled = clips.filter(pl.col("split").is_in(order))
    key = (
        pl.coalesce(pl.col("youtube_id"), pl.col("clip_id"))
        if "youtube_id" in clips.columns
        else pl.col("clip_id")
    )
    if mode == "identity_faces":  # the groups come with the table: identity.identity_groups
        if "identity_group" not in clips.columns:
            raise ValueError("split identity_faces needs the clips joined with identity.identity_groups")
        key = pl.col("identity_group")
    groups = labelled.group_by(key.alias("_group")).len()
    targets = {s: labelled.filter(pl.col("split") == s).height for s in order}

    def rank(row):
        digest = hashlib.sha256(f"{seed}:{row[0]}".encode()).hexdigest()
        return (-row[1], digest)

    sizes = dict.fromkeys(order, 0)
    chosen = {}
    for group, n in sorted(groups.iter_rows(), key=rank):
        split = max(order, key=lambda s: (targets[s] - sizes[s], -order.index(s)))
        chosen[group] = split
        sizes[split] += n
    new = key.replace_strict(chosen, default=None, return_dtype=pl.String)
    return clips.with_columns(
        pl.when(pl.col("split").is_in(order)).then(new).otherwise(pl.col("split")).alias("split")
    )


def split_clips(clips_path: str | Path, mode: str = "official", seed: int = 0):
    """The clips table at `clips_path` with the split of `assign_splits` (what the splits rule stores).

    ``identity_faces`` first joins the face clusters of the identities table beside it
    (`identities.parquet`, written with the faces table; `impressions.data.identity.identity_groups`).
    """
    import polars as pl

    clips = pl.read_parquet(clips_path)
    if mode == "identity_faces":
        from impressions.data import identity

        path = Path(clips_path).with_name("identities.parquet")
        if not path.is_file():
            raise FileNotFoundError(f"models.split identity_faces needs {path} (written by gather_clips)")
        clips = identity.identity_groups(clips, pl.read_parquet(path, columns=["clip_id", "person"]))
    return assign_splits(clips, mode, seed)


def split_table(clips_path: str | Path, mode: str = "official", seed: int = 0):
    """The splits table (`schemas.OUTPUTS["splits"]`): one row per clip of the clips table, in order."""
    import polars as pl

    from impressions.schemas import polars_schema

    clips = split_clips(clips_path, mode, seed)
    table = clips.select("clip_id", "split").with_columns(mode=pl.lit(mode), seed=pl.lit(seed))
    return table.cast(dict(polars_schema("splits")))


def read_clips(
    clips_path: str | Path, splits_path: str | Path | None = None, mode: str = "official", seed: int = 0
):
    """The clips table with the split every model, analysis and the report use.

    With `splits_path` (the workflow's splits.parquet, made once by the splits rule with `models.split`
    and `models.seed`) the stored split replaces the clips table's, whatever `mode` and `seed` say: a
    seed copy of a model (`models.seeds`) trains, is fused and is scored on the same split as the
    others, so only its initialisation, data order and augmentation change with its seed. Without a
    path, the split is computed from `mode` and `seed` (`split_clips`)."""
    import polars as pl

    if splits_path is None:
        return split_clips(clips_path, mode, seed)
    stored = pl.read_parquet(splits_path)
    clips = pl.read_parquet(clips_path)
    if set(stored["clip_id"]) != set(clips["clip_id"]):
        raise ValueError(f"{splits_path} does not list the clips of {clips_path}: re-run the splits rule")
    split = dict(zip(stored["clip_id"], stored["split"]))
    return clips.with_columns(
        pl.col("clip_id").replace_strict(split, default=None, return_dtype=pl.String).alias("split")
    )


def made_with(splits_path: str | Path) -> tuple[str, int]:
    """(mode, seed) the splits table was made with (`split_table`), for the report's split note."""
    import polars as pl

    rows = pl.read_parquet(splits_path, columns=["mode", "seed"]).unique().rows()
    if len(rows) != 1:
        raise ValueError(f"{splits_path}: expected one (mode, seed), found {rows}: re-run the splits rule")
    return rows[0][0], int(rows[0][1])
