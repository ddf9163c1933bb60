"""Annotation pickles laid out as the official First Impressions files are.

The released files are Python 2 protocol-2 pickles of ``{label: {"name.mp4": value}}`` with the labels
in `FI_LABEL_ORDER`; the five traits' values are floats and `interview`'s are numpy float64 scalars
(read from the files). A numpy scalar costs the unpickler more than ten times a float (100,000 values:
0.75 against 0.06 CPU-s), so a writer that made every value one would overstate what reading FI's
files costs. Unlike the originals, names are not memoised across labels. The reader is
`impressions.data.annotations`; this writer serves the demo dataset, tests and benchmarks.
"""

from __future__ import annotations

import struct

FI_LABEL_ORDER = (
    "extraversion", "neuroticism", "agreeableness", "conscientiousness", "interview", "openness",
)  # fmt: skip
"""The labels in the order the released pickles hold them."""
NUMPY_LABELS = frozenset({"interview"})
"""Labels whose values the released pickles hold as numpy float64 scalars (the traits are floats)."""


def _binstring(data: bytes) -> bytes:
    """SHORT_BINSTRING, or BINSTRING when longer: how Python 2 pickled a str."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _float64(value: float) -> bytes:
    """numpy.float64 pickled as numpy 1.x under Python 2 did: scalar(dtype('f8'), <8 raw bytes>)."""
    dtype = (b"cnumpy\ndtype\n" + _binstring(b"f8") + b"K\x00K\x01\x87R"
             + b"(K\x03" + _binstring(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")  # fmt: skip
    return b"cnumpy.core.multiarray\nscalar\n" + dtype + _binstring(struct.pack("<d", value)) + b"\x86R"


def _name(text: str) -> bytes:
    """A clip or label name: a Python 2 str (FI's names are ASCII), else BINUNICODE (a Python 2 unicode)."""
    if text.isascii():
        return _binstring(text.encode("ascii"))
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def _binfloat(value: float) -> bytes:
    """BINFLOAT: how Python 2 pickled a float (8 bytes, big-endian)."""
    return b"G" + struct.pack(">d", value)


def fi_pickle_bytes(labels: dict[str, dict[str, float]]) -> bytes:
    """`{label: {name: value}}` as the official annotation pickles lay it out (protocol 2, Python 2 str).

    Labels go in `FI_LABEL_ORDER` (any others after them, in the given order); values are floats, or
    numpy float64 scalars for `NUMPY_LABELS`.

    Written by hand because pickle.dumps under Python 3 and numpy 2 names other globals
    (``numpy._core.multiarray``, ``_codecs.encode``) that a loader restricted to FI's would refuse.
    """
    out = bytearray(b"\x80\x02}(")
    order = [x for x in FI_LABEL_ORDER if x in labels] + [x for x in labels if x not in FI_LABEL_ORDER]
    for label in order:
        encode = _float64 if label in NUMPY_LABELS else _binfloat
        out += _name(label) + b"}("
        for name, value in labels[label].items():
            out += _name(name) + encode(float(value))
        out += b"u"
    out += b"u."
    return bytes(out)


def fi_transcript_bytes(texts: dict[str, str]) -> bytes:
    """`{"name.mp4": text}` as FI's transcription pickles lay it out (protocol 2, Python 2 str / unicode)."""
    out = bytearray(b"\x80\x02}(")
    for name, text in texts.items():
        out += _name(name) + _name(text)
    out += b"u."
    return bytes(out)
