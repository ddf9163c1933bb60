"""eGeMAPSv02 functionals (88 per window) from openSMILE, the field's standard voice feature set.

The `opensmile` wheel (audEERING; installed with --no-deps, requirements-nodeps.txt) ships the
openSMILE library (`libSMILEapi.so`), a ctypes wrapper for it (`opensmile/core/lib.py`, numpy only)
and the standard configs. Its Python front end (`opensmile.Smile`) would pull in audinterface,
audformat, pandas and pyarrow for resampling and file handling the workflow does not need, so this
module never imports the `opensmile` package: it finds it with `importlib.util.find_spec`, loads the
ctypes wrapper by file path, and feeds the clip's 16 kHz mono window to the eGeMAPSv02 config through
openSMILE's external audio source (16-bit PCM, as `opensmile.Smile` does). Column names are
openSMILE's own (`F0semitoneFrom27.5Hz_sma3nz_amean`, `jitterLocal_sma3nz_amean`, ...), read from the
config's output component, never written out here.

Licence: openSMILE is under audEERING's research licence, not this package's: non-commercial use and
commercial research are free; use in a product, features extracted with it included, needs a
commercial licence from audEERING (README, "Third-party tools and their licences").
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

FEATURE_SET = "eGeMAPSv02"
CONFIG = "egemaps/v02/eGeMAPSv02.conf"
"""The feature set's config, relative to the wheel's `core/config` folder."""
N_FEATURES = 88
"""Functionals in eGeMAPSv02 (Eyben et al. 2016; openSMILE's config lists them)."""
SOURCE, SINK = "extsource", "extsink"
"""openSMILE's component names for external input and output in the wheel's shared configs."""


class OpenSmileMissing(RuntimeError):
    """The `opensmile` wheel is not installed (or lacks its library or configs)."""


def _root() -> Path:
    spec = importlib.util.find_spec("opensmile")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise OpenSmileMissing(
            "voice.backend opensmile needs the opensmile wheel: pip install --no-deps opensmile==2.6.0 "
            "(pinned in requirements-nodeps.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "core"


@functools.cache
def _lib() -> ModuleType:
    """openSMILE's ctypes wrapper from the wheel, loaded by path (it imports numpy and ctypes only)."""
    path = _root() / "lib.py"
    if not path.is_file():
        raise OpenSmileMissing(f"the opensmile wheel has no {path.name}; reinstall opensmile==2.6.0")
    spec = importlib.util.spec_from_file_location("_impressions_smileapi", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _options(sample_rate: int) -> tuple[str, dict]:
    config = _root() / "config"
    path = config / CONFIG
    if not path.is_file():
        raise OpenSmileMissing(f"the opensmile wheel has no {CONFIG}; reinstall opensmile==2.6.0")
    return str(path), {
        "source": config / "shared/standard_external_wave_input.conf.inc",
        "sink": config / "shared/standard_external_data_output_single.conf.inc",
        "sinkLevel": "func",
        "bufferModeRbConf": config / "shared/BufferModeRb.conf.inc",
        "frameModeFunctionalsConf": config / "shared/FrameModeFunctionals.conf.inc",
        "sampleRate": sample_rate,
        "nBits": 16,
    }


def _smile(sample_rate: int):
    config, options = _options(sample_rate)
    smile = _lib().OpenSMILE()
    smile.initialize(config, options, loglevel=0)  # 0: no log lines on stderr per clip
    return smile


@functools.cache
def feature_names() -> tuple[str, ...]:
    """The 88 functionals' names, as openSMILE's eGeMAPSv02 config gives them."""
    smile = _smile(16000)
    try:
        return tuple(smile.external_sink_get_element_name(SINK, i)
                     for i in range(smile.external_sink_get_num_elements(SINK)))  # fmt: skip
    finally:
        smile.free()


def describe(samples: np.ndarray, sample_rate: int = 16000) -> dict[str, float]:
    """eGeMAPSv02 functionals of one mono window (floats in [-1, 1]); NaN for every one when openSMILE
    gives no output (a window shorter than its first analysis frame)."""
    pcm = (np.clip(np.asarray(samples, np.float64), -1.0, 32767 / 32768) * 32768).astype("<i2")
    rows: list[np.ndarray] = []
    smile = _smile(sample_rate)
    try:
        smile.external_sink_set_callback_ex(SINK, lambda data, meta: rows.append(np.array(data)))
        smile.external_audio_source_write_data(SOURCE, pcm.tobytes())
        smile.external_audio_source_set_eoi(SOURCE)
        smile.run()
    finally:
        smile.free()
    names = feature_names()
    values = np.ravel(rows[-1]) if rows else np.full(len(names), np.nan)
    return {name: float(v) for name, v in zip(names, values)}
