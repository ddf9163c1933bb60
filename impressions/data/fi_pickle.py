"""Annotation pickles written byte for byte as the official First Impressions files lay them out.

The reader is `impressions.data.annotations`; this writer serves the demo dataset and tests.
"""

from __future__ import annotations

import struct


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


def fi_pickle_bytes(labels: dict[str, dict[str, float]]) -> bytes:
    """`{label: {name: value}}` as the official annotation pickles lay it out (protocol 2, Python 2 str).

    Written by hand because pickle.dumps under Python 3 and numpy 2 names other globals
    (``numpy._core.multiarray``, ``_codecs.encode``) that a loader restricted to FI's would refuse.
    """
    out = bytearray(b"\x80\x02}(")
    for label, values in labels.items():
        out += _binstring(label.encode("ascii")) + b"}("
        for name, value in values.items():
            out += _binstring(name.encode("ascii")) + _float64(float(value))
        out += b"u"
    out += b"u."
    return bytes(out)
