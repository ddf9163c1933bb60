import json

import polars as pl
import pytest

from impressions import schemas
from impressions.data import shards, tables, transcripts
from impressions.data.preprocess import ClipRecord, _write_table, output_paths
from impressions.schemas import TABLES, frame

CLIPS = {"-dash.000": "train", "b.001": "train", "c.002": "val", "d.003": "test", "e.004": "test"}


@pytest.fixture
def clip_folders(tmp_path):
    """Five processed clips (clip k has k + 1 frames) and the index's QC row for a missing one."""
    folders = {}
    for k, clip_id in enumerate(CLIPS):
        folder = tmp_path / "clips" / clip_id
        folder.mkdir(parents=True)
        rows = [{"clip_id": clip_id, "frame_index": i, "has_face": i % 2 == 0} for i in range(k + 1)]
        _write_table(rows, output_paths(folder)["table"])
        record = {"clip_id": clip_id, "status": "ok", "reason": "fine", "seconds": 1.5, "peak_mb": 100.0 + k}
        output_paths(folder)["qc"].write_text(json.dumps(record))
        folders[clip_id] = folder
    pl.DataFrame({"clip_id": [*CLIPS, "gone.005"], "split": [*CLIPS.values(), "val"]}).write_parquet(
        tmp_path / "clips.parquet"
    )
    missing = {"clip_id": "gone.005", "status": "missing_file", "reason": "no file", "split": "val"}
    # as an earlier version wrote it, without the newest QC column
    frame("qc", [missing]).drop("peak_mb").write_parquet(tmp_path / "index_qc.parquet")
    return tmp_path, folders


def gathered(root, folders, n_shards):
    out = root / f"shards{n_shards}"
    out.mkdir()
    frame_shards, qc_shards = [], []
    for k, ids in shards.assign(folders, n_shards).items():
        frame_shards.append(out / f"frames{k}.parquet")
        qc_shards.append(out / f"qc{k}.parquet")
        tables.clip_shard({c: folders[c] for c in ids}, frame_shards[-1], qc_shards[-1])
        # what the audio and expression shards read their clips from
        assert shards.clip_folders(qc_shards[-1], root / "clips") == {c: folders[c] for c in ids}
    names = ("frames", "faces", "qc")
    tables.gather_clips(frame_shards, qc_shards, root / "clips.parquet", root / "index_qc.parquet",
                        *(out / f"{n}.parquet" for n in names))  # fmt: skip
    return {n: pl.read_parquet(out / f"{n}.parquet") for n in names}


def test_gathered_tables_do_not_depend_on_the_shard_count(clip_folders):
    root, folders = clip_folders
    one, three, seven = (gathered(root, folders, n) for n in (1, 3, 7))  # 7 shards: some are empty
    assert sum(1 for ids in shards.assign(folders, 7).values() if not ids) > 0
    for name in one:
        assert one[name].equals(three[name]) and one[name].equals(seven[name]), name
    frames, faces, qc = one["frames"], one["faces"], one["qc"]
    assert frames.columns == list(TABLES["frames"]) and faces.columns == list(TABLES["faces"])
    assert frames.height == 1 + 2 + 3 + 4 + 5
    keys = frames.select("clip_id", "frame_index").rows()
    assert keys == sorted(keys)
    # every processed clip's record with its split from the clips table, plus the index's row
    assert qc.columns == list(TABLES["qc"])
    assert dict(qc.select("clip_id", "split").iter_rows()) == {**CLIPS, "gone.005": "val"}
    assert qc["clip_id"].to_list() == sorted(qc["clip_id"])
    assert qc.filter(pl.col("clip_id") == "e.004")["peak_mb"].item() == 104.0
    assert qc.filter(pl.col("clip_id") == "gone.005")["peak_mb"].item() is None


def test_each_clips_transcript_note_joins_its_qc_row(clip_folders):
    root, folders = clip_folders
    out = root / "noted"
    out.mkdir()
    tables.clip_shard(folders, out / "frames0.parquet", out / "qc0.parquet")
    texts = {"-dash.000": "so good to be here", "b.001": "  ", "d.003": "a word or two"}  # c, e: none
    clips = [{"clip_id": c, "split": s} for c, s in CLIPS.items()]
    frame("transcripts", transcripts.table_rows(clips, texts)).write_parquet(out / "transcripts.parquet")
    names = ("frames", "faces", "qc")
    tables.gather_clips([out / "frames0.parquet"], [out / "qc0.parquet"], root / "clips.parquet",
                        root / "index_qc.parquet", *(out / f"{n}.parquet" for n in names),
                        transcripts=out / "transcripts.parquet")  # fmt: skip
    qc = pl.read_parquet(out / "qc.parquet")
    assert qc.columns == list(TABLES["qc"])
    notes = dict(qc.select("clip_id", "transcript_note").iter_rows())
    none, empty = transcripts.NO_TRANSCRIPT, transcripts.EMPTY_TRANSCRIPT
    assert notes == {"-dash.000": None, "b.001": empty, "c.002": none, "d.003": None, "e.004": none,
                     "gone.005": None}  # fmt: skip
    # a clip's own record and its cache key leave the gathered column out: adding it reprocesses no clip
    assert list(ClipRecord("x", 3).row) == list(schemas.record_columns("qc")) == list(TABLES["qc"])[:-1]


def test_the_expressions_table_names_its_shards_sources(tmp_path):
    """gather_expressions carries the shards' backend and AU and emotion sources into the table's
    metadata; shards that disagree (a backend changed, some shards not re-run) are all named."""
    keys = schemas.EXPRESSION_SOURCE_KEYS
    shard_paths = []
    for i, sources in enumerate([("builtin", "geometry", "cnn"), ("builtin", "geometry", "cnn"),
                                 ("pyfeat", "xgb", "resmasknet"), None]):  # fmt: skip
        path = tmp_path / f"shard{i}.parquet"
        metadata = (
            dict(zip(keys, sources, strict=True)) if sources else None
        )  # None: a shard from before the keys
        frame("expressions", []).write_parquet(path, metadata=metadata)
        shard_paths.append(path)
    tables.gather_expressions(shard_paths[:2], tmp_path / "one.parquet")
    assert tables.expression_sources(tmp_path / "one.parquet") == dict(
        zip(keys, ("builtin", "geometry", "cnn"))
    )
    tables.gather_expressions(shard_paths, tmp_path / "mixed.parquet")
    assert tables.expression_sources(tmp_path / "mixed.parquet") == {
        "expressions_backend": "builtin; pyfeat; unknown", "au_source": "geometry; unknown; xgb",
        "emotion_source": "cnn; resmasknet; unknown",
    }  # fmt: skip
