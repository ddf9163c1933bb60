"""Domain constants and every table's schema, defined once; all writers and readers use these."""

from __future__ import annotations

TRAITS = ("extraversion", "neuroticism", "agreeableness", "conscientiousness", "openness")
"""The Big Five, in the order the challenge lists them."""

LABELS = (*TRAITS, "interview")
"""Every annotated target in the First Impressions pickles."""

SPLITS = ("train", "val", "test")

DEMOGRAPHICS = ("gender", "age_group", "ethnicity")
"""The clips table's attributes of the person on screen: the report's accuracy breakdowns and the
bias audit group by them (impressions.bias)."""

AUS = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)  # fmt: skip
"""The 17 intensity AUs OpenFace estimates, in its order."""

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")

QC_STATUSES = (
    "ok",
    "partial_face",  # some sampled frames have no face
    "short",  # shorter than the audio window: audio zero-padded
    "truncated",  # frames the video stream lists could not be read or decoded (ends early, damaged)
    "no_audio",  # no audio stream: silent features
    "no_face",  # no sampled frame has a face
    "no_video",  # audio-only file
    "corrupt",  # ffmpeg cannot decode it (empty, truncated, not a video)
    "error",  # an unexpected failure while processing; the log holds the traceback
    "missing_file",  # annotated, but no video file under the data root
    "unannotated",  # a video file that no annotation file lists (not processed)
    "partial_labels",  # its annotation file lists it under some labels only (not processed)
)
"""QC statuses from least to most severe; a clip's `status` is the most severe that applies."""

# Every table's columns and polars dtypes, by name. Dtypes are strings so this module needs no polars
# import; `polars_schema` resolves them.
TABLES: dict[str, dict[str, str]] = {
    "clips": {
        "clip_id": "str", "path": "str", "split": "str",
        **{label: "f64" for label in LABELS},
        "gender": "str", "ethnicity": "str", "age_group": "str", "youtube_id": "str",
    },
    "frames": {
        "clip_id": "str", "frame_index": "i32", "source_frame": "i64", "time_s": "f64",
        "width": "i32", "height": "i32",
    },
    "faces": {
        "clip_id": "str", "frame_index": "i32", "has_face": "bool", "n_faces": "i16", "chosen_face": "i16",
        "score": "f32", "box_left": "f32", "box_top": "f32", "box_right": "f32", "box_bottom": "f32",
        "landmarks": "list[f32]", "landmarks_aligned": "list[f32]",
    },
    "audio": {
        "clip_id": "str", "has_audio": "bool", "padded": "bool", "n_samples": "i64", "sample_rate": "i32",
        "rms": "f32", "loudness_db": "f32", "pitch_hz": "f32",
    },
    "expressions": {
        "clip_id": "str", "frame_index": "i32", **{au: "f32" for au in AUS}, **{e: "f32" for e in EMOTIONS},
    },
    "qc": {
        "clip_id": "str", "status": "str", "reason": "str", "split": "str",
        "duration_s": "f64", "fps": "f64", "width": "i32", "height": "i32", "has_video": "bool",
        "has_audio": "bool", "frames_requested": "i32", "frames_decoded": "i32", "frames_with_face": "i32",
        "audio_samples": "i64", "seconds": "f64", "peak_mb": "f64",
    },
}  # fmt: skip
"""Per-frame tables are keyed by (clip_id, frame_index); the others by clip_id."""

UNITS: dict[str, str] = {
    "time_s": "s", "duration_s": "s", "seconds": "s (processing wall time)",
    "peak_mb": "MB (peak resident memory of the process that ran the clip)", "fps": "frames/s",
    "width": "px", "height": "px", "box_left": "px", "box_top": "px", "box_right": "px", "box_bottom": "px",
    "landmarks": "px, 68 (x, y) pairs flattened, frame coordinates",
    "landmarks_aligned": "px, 68 (x, y) pairs flattened, aligned-crop coordinates",
    "score": "dlib HOG detector margin", "rms": "full scale", "loudness_db": "dBFS", "pitch_hz": "Hz",
    "sample_rate": "Hz", "n_samples": "samples", "audio_samples": "samples",
    **{label: "0..1" for label in LABELS}, **{au: "0..5 intensity" for au in AUS},
    **{e: "probability" for e in EMOTIONS},
}  # fmt: skip


# Per-frame head pose, confidence and tracking; per-clip tracking flags; identities; voice
# (docs/preprocessing.md).
TABLES["faces"].update({
    "track_id": "i16", "top_face": "bool", "confidence": "f32", "success": "bool",
    "pitch": "f32", "yaw": "f32", "roll": "f32", "fit_error": "f32",
})  # fmt: skip
TABLES["qc"].update({
    "n_tracks": "i16", "multi_person": "bool", "top_face_frames": "i32", "frames_success": "i32",
})  # fmt: skip
TABLES["identities"] = {
    "clip_id": "str", "youtube_id": "str", "split": "str", "has_identity": "bool", "person": "i32",
    "descriptor": "list[f32]",
}  # fmt: skip
VOICE = (
    "f0_mean_hz", "f0_sd_st", "f0_range_st", "jitter_local", "shimmer_local_db", "hnr_db",
    "loudness_mean_db", "loudness_sd_db", "loudness_range_db", "voiced_ratio", "pause_ratio",
    "voiced_segment_mean_s", "pause_mean_s", "voiced_segments_per_s",
)  # fmt: skip
"""Per-clip voice descriptors of the builtin backend (impressions.data.voice defines each)."""
VOICE_KEYS = ("clip_id", "voice_seconds")
"""The voice table's columns under every `voice.backend`; the others are the backend's descriptors."""
TABLES["voice"] = {"clip_id": "str", "voice_seconds": "f32", **{name: "f32" for name in VOICE}}
"""With `voice.backend: opensmile` the descriptors are openSMILE's 88 eGeMAPSv02 functionals instead,
under openSMILE's names (f32; impressions.data.egemaps); readers take the descriptors as the columns
that are not `VOICE_KEYS` (`voice_descriptors`) and the backend from the file (`VOICE_BACKEND_KEY`)."""
VOICE_BACKEND_KEY = "voice_backend"
"""Parquet key-value metadata of the voice table (and its shards): the backend that wrote it."""
EXPRESSION_SOURCE_KEYS = ("expressions_backend", "au_source", "emotion_source")
"""Parquet key-value metadata of the expressions table (and its shards): the backend that wrote it and
where its AU and emotion columns come from (a backend's `sources`; per clip in `expression_qc`)."""


def voice_descriptors(columns) -> list[str]:
    """The descriptor columns of a voice table with these columns, in their order."""
    return [c for c in columns if c not in VOICE_KEYS]


# Per clip, what made its expression rows (impressions.expressions.detector: each backend's `sources`)
# and why face frames have none (openface: no CSV, no binary, frames OpenFace did not track).
TABLES["expression_qc"] = {
    "clip_id": "str", "backend": "str", "au_source": "str", "emotion_source": "str", "frames_scored": "i32",
    "reason": "str",
}  # fmt: skip
UNITS.update({
    "track_id": "id of the tracked person's face track within the clip",
    "top_face": "true when the tracked face was the detector's top-scoring face",
    "confidence": "0..1, logistic of the detector margin (impressions.data.head_pose)",
    "success": "face found, landmark fit error <= 0.15 IOD, off-axis pose <= 45 deg",
    "pitch": "deg, + head down", "yaw": "deg, + face turned to image left", "roll": "deg, + clockwise",
    "fit_error": "IOD (rigid-landmark RMS residual of the 3D template fit)",
    "n_tracks": "people (face tracks in >= 2 sampled frames)", "multi_person": "n_tracks >= 2",
    "top_face_frames": "frames", "frames_success": "frames",
    "person": "identity cluster across clips (-1: no face)", "descriptor": "128-d dlib face descriptor",
    "backend": "expressions.backend", "au_source": "where the AU values come from",
    "emotion_source": "where the emotion probabilities come from", "frames_scored": "frames",
    "voice_seconds": "s", "f0_mean_hz": "Hz", "f0_sd_st": "semitones",
    "f0_range_st": "semitones (20-80th pct)", "jitter_local": "ratio (mean period change / mean period)",
    "shimmer_local_db": "dB", "hnr_db": "dB", "loudness_mean_db": "dBFS", "loudness_sd_db": "dB",
    "loudness_range_db": "dB (20-80th pct)",
    "voiced_ratio": "share of the window", "pause_ratio": "share of the window",
    "voiced_segment_mean_s": "s", "pause_mean_s": "s", "voiced_segments_per_s": "1/s",
})  # fmt: skip

# Per-clip transcripts (impressions.data.transcripts): the text, its word count, the language guessed from
# its function words, and the QC note of a clip without one.
TABLES["transcripts"] = {
    "clip_id": "str", "split": "str", "has_transcript": "bool", "n_words": "i32", "language": "str",
    "qc_note": "str", "transcript": "str",
}  # fmt: skip
UNITS.update({
    "n_words": "words", "language": "ISO 639-1, guessed from function words (null: undetermined)",
    "qc_note": "'no transcript' or 'empty transcript'; null when usable",
})  # fmt: skip
GATHERED = {"qc": {"transcript_note": "str"}}
"""Columns a dataset table gets when it is gathered, from another dataset table rather than from any
clip's own record: the qc table's `transcript_note` (the transcripts table's `qc_note`, joined in by
`impressions.data.tables.gather_clips`). Per-clip records and their cache keys (`fingerprint`) leave
them out: a column gathered in reprocesses no clip."""
for _table, _columns in GATHERED.items():
    TABLES[_table].update(_columns)
UNITS["transcript_note"] = "the transcripts table's qc_note: 'no transcript', 'empty transcript' or null"


# Model outputs, not dataset tables (so not in TABLES): each model's predictions.parquet, one row per
# val and test clip, and `impressions predict`'s table, the same columns (split null: a new video has
# none) and what a prediction needs said about its clip.
OUTPUTS: dict[str, dict[str, str]] = {
    "predictions": {"clip_id": "str", "split": "str", "model": "str", **{t: "f64" for t in TRAITS}},
}
# results/tables/splits.parquet: each clip's train/val/test assignment and the `models.split` mode and
# seed that made it (impressions.data.splits).
OUTPUTS["splits"] = {"clip_id": "str", "split": "str", "mode": "str", "seed": "i64"}
# The report's bias audit (impressions.bias): per group, the mean label (kind "label") or the signed
# bias, prediction minus label (kind "model"), and per attribute and trait the largest gap between two
# groups with its permutation p-value, corrected across traits x attributes (Holm, Benjamini-Hochberg).
OUTPUTS["bias_groups"] = {
    "split": "str", "kind": "str", "model": "str", "attribute": "str", "group": "str", "trait": "str",
    "value": "f64", "ci_low": "f64", "ci_high": "f64", "people": "i64", "clips": "i64", "tested": "bool",
}  # fmt: skip
OUTPUTS["bias_gaps"] = {
    "split": "str", "kind": "str", "model": "str", "attribute": "str", "trait": "str", "high": "str",
    "low": "str", "gap": "f64", "ci_low": "f64", "ci_high": "f64", "p_value": "f64", "p_holm": "f64",
    "p_bh": "f64", "groups_tested": "i64", "people": "i64",
}  # fmt: skip
OUTPUTS["predict"] = {
    **OUTPUTS["predictions"], "has_input": "bool", "note": "str", "status": "str", "qc_reason": "str",
}  # fmt: skip


def record_columns(table: str) -> dict[str, str]:
    """A dataset table's columns that a clip's own record holds: `TABLES` less the `GATHERED` ones."""
    gathered = GATHERED.get(table, {})
    return {column: dtype for column, dtype in TABLES[table].items() if column not in gathered}


def fingerprint(*tables: str) -> str:
    """A digest of the named tables' (`TABLES`, `OUTPUTS`) column names and dtypes, in order.

    Cache keys hold it for the tables their stored results are rows of, so that a column added,
    removed, renamed, retyped or moved in one of them changes every key that names the table.
    """
    import hashlib
    import json

    columns = {table: record_columns(table) if table in TABLES else OUTPUTS[table] for table in tables}
    return hashlib.blake2b(json.dumps(columns).encode(), digest_size=8).hexdigest()


def polars_schema(table: str):
    """The polars schema of a named table (`TABLES`) or model output (`OUTPUTS`)."""
    import polars as pl

    simple = {"str": pl.String, "f64": pl.Float64, "f32": pl.Float32, "i64": pl.Int64, "i32": pl.Int32,
              "i16": pl.Int16, "bool": pl.Boolean, "list[f32]": pl.List(pl.Float32)}  # fmt: skip
    columns = TABLES[table] if table in TABLES else OUTPUTS[table]
    return pl.Schema({col: simple[dtype] for col, dtype in columns.items()})


def frame(table: str, rows):
    """A polars DataFrame of `table` from a list of row dicts or a dict of columns, cast to its schema."""
    import polars as pl

    return pl.DataFrame(rows, schema=polars_schema(table))


def empty(table: str):
    """A zero-row DataFrame of `table`."""
    return frame(table, [])


def markdown() -> str:
    """The tables, columns, dtypes and units as a Markdown table (docs/tables.md embeds this)."""
    lines = ["| table | column | dtype | unit |", "|---|---|---|---|"]
    for table, columns in TABLES.items():
        for column, dtype in columns.items():
            lines.append(f"| {table} | `{column}` | {dtype} | {UNITS.get(column, '')} |")
    return "\n".join(lines)
