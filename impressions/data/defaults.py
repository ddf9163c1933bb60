"""The preprocessing defaults, in one place.

`config.yaml` ships the same values (tests/test_defaults.py fails when they drift), the per-clip
`preprocess.Settings` takes its defaults from here, and `impressions predict` uses them for a
checkpoint that carries no preprocessing settings (trained outside the workflow).
"""

from __future__ import annotations

import copy

PREPROCESSING = {
    "frames": {"per_clip": 10, "size": 224, "max_side": 640, "storage": "jpeg", "jpeg_quality": 90},
    "faces": {"upsample": 0, "min_score": 0.0, "size": 224, "padding": 0.25, "identity": "auto"},
    "audio": {
        "seconds": 5.0,
        "sample_rate": 16000,
        "n_mels": 64,
        "n_fbank": 26,
        "win_ms": 25.0,
        "hop_ms": 10.0,
    },
    "expressions": {"backend": "builtin", "device": "auto", "batch_size": 64},
}
"""Config sections `frames`, `faces`, `audio` and `expressions` as config.yaml sets them."""


def preprocessing() -> dict:
    """A deep copy of `PREPROCESSING`, safe to change."""
    return copy.deepcopy(PREPROCESSING)
