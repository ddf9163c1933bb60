"""Transcripts, the third modality: First Impressions' transcription pickles or a manifest column.

FI v2 ships ``transcription_training.pkl``, ``transcription_validation.pkl`` and
``transcription_test.pkl`` beside the annotation files: Python 2 pickles of ``{"name.mp4": "text"}``.
They are read with the annotations' restricted unpickler (`impressions.data.annotations`) allowed no
class at all: a dict of strings needs none, so any class a file asks for is refused before it is
built. A manifest gives transcripts in an optional ``transcript`` column instead.

A clip without a transcript (not listed, or empty text) is not an error: it gets the note
`NO_TRANSCRIPT` in the transcripts table, and text models give it the training mean, flagged.

Language is guessed without a language-identification dependency: the share of a transcript's words
that are common function words of each language in `STOPWORDS` (articles, pronouns, auxiliaries);
the best language is named when at least `MIN_STOPWORDS` of its words and `MIN_SHARE` of all words
are its function words, else the language is left null (too short or another language).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from impressions.data import annotations

TRANSCRIPT_FILES = {
    "train": "transcription_training.pkl",
    "val": "transcription_validation.pkl",
    "test": "transcription_test.pkl",
}
NO_TRANSCRIPT = "no transcript"
EMPTY_TRANSCRIPT = "empty transcript"

STOPWORDS = {
    "en": "the a an and or but i you he she we they it is are was were be been have has had do does did "
    "to of in on at for with that this my your not just so like what about me",
    "es": "el la los las un una y o pero yo tu él ella nosotros es son era fue ser estar de en con que "
    "por para no mi lo se muy",
    "fr": "le la les un une et ou mais je tu il elle nous vous ils est sont était être avoir de du des en "
    "dans avec que pour pas mon ce",
    "de": "der die das ein eine und oder aber ich du er sie wir ihr ist sind war sein haben zu von in mit "
    "dass für nicht mein auch",
    "it": "il lo la gli le un una e o ma io tu lui lei noi è sono era essere avere di da in con che per "
    "non mio anche",
    "pt": "o a os as um uma e ou mas eu tu ele ela nós é são era ser estar de do da em com que por para "
    "não meu também",
    "nl": "de het een en of maar ik jij hij zij wij is zijn was hebben van in met dat voor niet mijn ook",
}
STOPWORDS = {lang: frozenset(words.split()) for lang, words in STOPWORDS.items()}
"""Function words per language (ISO 639-1), the whole basis of `language`."""
MIN_STOPWORDS = 3
MIN_SHARE = 0.15

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


class TranscriptError(ValueError):
    """A transcription file is unreadable or not a dict of ``{"<clip>.mp4": text}``."""


class _TextOnly(annotations._ScalarsOnly):
    allowed = frozenset()  # dicts and strings need no class
    holds = "strings in dicts"
    kind = "transcription"


def words(text: str | None) -> list[str]:
    """The words of a transcript, lower case (letters and inner apostrophes)."""
    return _WORD.findall(text.lower()) if text else []


def language(text: str | None) -> str | None:
    """The transcript's language by its function words (`STOPWORDS`), or None when undetermined."""
    found = words(text)
    if not found:
        return None
    hits = {lang: sum(w in stop for w in found) for lang, stop in STOPWORDS.items()}
    best = max(hits, key=hits.get)
    if hits[best] < MIN_STOPWORDS or hits[best] < MIN_SHARE * len(found):
        return None
    return best


def _text(value) -> str:
    """A Python 2 str read as latin-1 holds UTF-8 bytes in FI's files: decode them as UTF-8 when they are."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def read_file(path: str | Path) -> dict[str, str]:
    """One transcription pickle as ``{clip_id: text}``; raises UnsafePickleError or TranscriptError."""
    path = Path(path)
    try:
        data = annotations._unpickle(path, _TextOnly)
    except annotations.AnnotationError as err:
        raise TranscriptError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise TranscriptError(f"{path}: expected a dict {{'<clip>.mp4': text}}, got {type(data).__name__}")
    out, bad = {}, []
    for name, text in data.items():
        clip_id = annotations._clip_name(name)
        if clip_id is None or not isinstance(text, str):
            bad.append(repr(name))
        else:
            out[clip_id] = _text(text)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise TranscriptError(f"{path}: entries that are not '<clip>.mp4': text pairs: {shown}")
    return out


def read_fi(root: str | Path) -> dict[str, str]:
    """``{clip_id: text}`` from whichever transcription pickles lie in `root` (none: empty)."""
    out: dict[str, str] = {}
    for name in TRANSCRIPT_FILES.values():
        path = Path(root) / name
        if path.is_file():
            out.update(read_file(path))
    return out


def from_manifest(path: str | Path) -> dict[str, str]:
    """``{clip_id: text}`` from a manifest's optional ``transcript`` column (clip ids as the index
    gives them: the ``clip_id`` column, else the file name without suffix)."""
    from impressions.data import manifest

    out = {}
    for row in manifest.read(path):
        if row.get("transcript"):
            out[row.get("clip_id") or Path(row["path"]).stem] = row["transcript"]
    return out


def note(text: str | None) -> str | None:
    """The QC note of a clip's transcript: `NO_TRANSCRIPT`, `EMPTY_TRANSCRIPT` or None (usable)."""
    if text is None:
        return NO_TRANSCRIPT
    return EMPTY_TRANSCRIPT if not words(text) else None


def table_rows(clips: list[Mapping], texts: Mapping[str, str]) -> list[dict]:
    """The transcripts table's rows (`impressions.schemas.TABLES["transcripts"]`), one per clip."""
    rows = []
    for clip in clips:
        text = texts.get(clip["clip_id"])
        rows.append({
            "clip_id": clip["clip_id"], "split": clip.get("split"), "has_transcript": note(text) is None,
            "n_words": len(words(text)), "language": language(text), "qc_note": note(text),
            "transcript": text,
        })  # fmt: skip
    return rows


def for_config(config: Mapping, index_root: str | Path | None = None) -> dict[str, str]:
    """The transcripts a workflow config's dataset has: the manifest's column, else the FI pickles
    under the data root (or `index_root`, the demo's folder)."""
    if config.get("manifest"):
        return from_manifest(config["manifest"])
    return read_fi(index_root or config["data_root"])


def source_files(config: Mapping, index_root: str | Path | None = None) -> list[str]:
    """The files `for_config` reads, for the rule's inputs: the manifest, else the FI pickles that
    exist under the data root; under `index_root` (the demo, whose rule writes them) all three."""
    if config.get("manifest"):
        return [str(config["manifest"])]
    root = Path(index_root or config["data_root"])
    return [str(root / name) for name in TRANSCRIPT_FILES.values() if index_root or (root / name).exists()]


def write_table(clips_path: str | Path, texts: Mapping[str, str], out: str | Path) -> dict[str, int]:
    """Write the transcripts table for the clips table's clips; return counts for the log."""
    import polars as pl

    from impressions.schemas import frame

    clips = pl.read_parquet(clips_path, columns=["clip_id", "split"]).to_dicts()
    rows = table_rows(clips, texts)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    frame("transcripts", rows).write_parquet(out)
    notes = [r["qc_note"] for r in rows]
    counts = {"clips": len(rows), "with transcript": notes.count(None)}
    return counts | {n: notes.count(n) for n in (NO_TRANSCRIPT, EMPTY_TRANSCRIPT)}
