"""Video decoding with the ffmpeg binary from imageio-ffmpeg: header probe, frame sampling, audio.

There is no ffprobe in that wheel, so `probe` reads the stream header ffmpeg prints for `-i`. Frames
are sampled by presentation timestamp: a demux-only pass lists every video frame's timestamp (no
decoding; the header's duration and average rate are wrong for variable-rate clips and cover the
audio too; that pass prints the header as well, so `scan` reads both from one run), then ONE decode
pass keeps the wanted frames with a `select` filter on their timestamps
and pipes them as raw RGB to numpy (seeking once per frame was 7x slower for 10 frames). Paths are passed
absolute with the `file:` protocol, so clip names starting with `-` or holding `:` are never read as
options or protocols.

ffmpeg is called with explicit argument lists rather than through ffmpeg-python: the three commands
here are short, the one thing a wrapper would add (parsing the output stream's size from stderr) it
does not do, and a dependency fewer is one pin fewer.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impressions import media


class VideoError(RuntimeError):
    """ffmpeg cannot read the file (empty, truncated, not a video...)."""


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts from the container header (no frame is decoded)."""

    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    rotation: float
    has_video: bool
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None

    @property
    def n_frames(self) -> int | None:
        """Frame count estimated from duration and rate (exact for constant-rate FI clips)."""
        if self.duration_s is None or not self.fps:
            return None
        return max(1, round(self.duration_s * self.fps))

    @property
    def display_size(self) -> tuple[int, int] | None:
        """(width, height) after the rotation players apply (portrait phone clips)."""
        if self.width is None or self.height is None:
            return None
        if round(abs(self.rotation)) % 180 == 90:
            return self.height, self.width
        return self.width, self.height


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+) fps")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_OUTPUT_SIZE = re.compile(r"Output #0.*?Stream #\S+.*?: Video: rawvideo.*?, (\d+)x(\d+)", re.S)


def ffmpeg_input(path: str | Path) -> str:
    """An input/output argument ffmpeg reads as a plain file, whatever the name looks like."""
    return "file:" + str(Path(path).resolve())


def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True)
    if check and proc.returncode != 0:
        raise VideoError(_ffmpeg_error(proc.stderr))
    return proc


def _ffmpeg_error(stderr: bytes) -> str:
    """The most telling line of ffmpeg's complaint (its last lines repeat generic failures)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    for needle in (
        "partial file",
        "moov atom not found",
        "Invalid data found",
        "does not contain any stream",
        "No such file",
    ):
        for ln in lines:
            if needle in ln:
                return ln.split("] ", 1)[-1] if "] " in ln else ln
    return lines[-1] if lines else "ffmpeg failed without a message"


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise VideoError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")


def _header(text: str) -> VideoInfo:
    """The stream facts in the header ffmpeg prints on stderr for its input."""
    if "Input #0" not in text:
        raise VideoError(_ffmpeg_error(text.encode()))
    duration = _DURATION.search(text)
    video = _VIDEO.search(text)
    fps = _FPS.search(video.group(0) + text[video.end() : text.find("\n", video.end())]) if video else None
    audio = _AUDIO.search(text)
    rotation = _ROTATION.search(text)
    return VideoInfo(
        duration_s=(int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3]))
        if duration
        else None,
        fps=float(fps[1]) if fps else None,
        width=int(video[2]) if video else None,
        height=int(video[3]) if video else None,
        rotation=float(rotation[1]) if rotation else 0.0,
        has_video=video is not None,
        has_audio=audio is not None,
        video_codec=video[1] if video else None,
        audio_codec=audio[1] if audio else None,
    )


def probe(path: str | Path) -> VideoInfo:
    """Read a clip's stream header; raise VideoError if ffmpeg cannot open it."""
    path = Path(path)
    _check_file(path)
    return _header(_run(["-i", ffmpeg_input(path)], check=False).stderr.decode("utf-8", "replace"))


def frame_numbers(n_frames: int, count: int) -> np.ndarray:
    """`count` evenly spaced frame numbers, each at the centre of its 1/count share of the clip."""
    if n_frames <= 0 or count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(((np.arange(count) + 0.5) * n_frames / count).astype(np.int64))


@dataclass(frozen=True)
class FrameTimes:
    """Presentation timestamps of every frame of the video stream, in presentation order."""

    starts: np.ndarray  # (n,) s, ascending
    end: float  # s: the last frame's start plus its duration
    read_error: str | None  # the demuxer stopped early: packets the index lists are missing

    @property
    def duration(self) -> float:
        return self.end - float(self.starts[0]) if self.starts.size else 0.0


_TIMEBASE = re.compile(r"^#tb 0: (\d+)/(\d+)", re.M)


def _demux(path: str | Path) -> subprocess.CompletedProcess:
    """Copy the video stream's packets to framemd5 lines: their timestamps, without decoding."""
    return _run(
        ["-i", ffmpeg_input(path), "-map", "0:v:0", "-c", "copy", "-f", "framemd5", "pipe:1"], check=False
    )


def _times(proc: subprocess.CompletedProcess) -> FrameTimes:
    """Every frame's timestamp from a `_demux` run; no frames and the error when none could be listed."""
    text = proc.stdout.decode("utf-8", "replace")
    base = _TIMEBASE.search(text)
    if base is None:
        return FrameTimes(np.zeros(0), 0.0, _ffmpeg_error(proc.stderr))
    tb = int(base[1]) / int(base[2])
    pts, durations = [], []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        pts.append(int(fields[2]))
        durations.append(int(fields[3]))
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    starts = np.asarray(pts, dtype=np.float64)[order] * tb
    end = float(max(p + d for p, d in zip(pts, durations)) * tb) if pts else 0.0
    error = None
    if proc.returncode != 0 or b"partial file" in proc.stderr or b"Invalid data" in proc.stderr:
        error = _ffmpeg_error(proc.stderr) + f"; {len(pts)} frames could be read"
    return FrameTimes(starts, max(end, float(starts[-1]) if starts.size else 0.0), error)


def frame_times(path: str | Path) -> FrameTimes:
    """Every video frame's timestamp from the packets alone (demuxing, no decoding: milliseconds).

    The container header's duration covers every stream (a still image with 5 s of audio "lasts" 5 s)
    and its frame rate is an average (wrong for variable-rate clips), so sampling reads the video
    stream's own timestamps instead.
    """
    times = _times(_demux(path))
    if times.starts.size == 0 and times.read_error:
        raise VideoError(times.read_error)
    return times


def scan(path: str | Path) -> tuple[VideoInfo, FrameTimes]:
    """`probe` and `frame_times` from one ffmpeg run (the demux prints the header too).

    One process start fewer per clip than calling both. Raises VideoError only when the header cannot
    be read; a video stream whose packets cannot be listed gives no frame times and their error, which
    `sample_frames` raises. Without a video stream the frame times are empty.
    """
    path = Path(path)
    _check_file(path)
    proc = _demux(path)
    info = _header(proc.stderr.decode("utf-8", "replace"))
    times = _times(proc) if info.has_video else FrameTimes(np.zeros(0), 0.0, None)
    return info, times


def wanted_frames(times: FrameTimes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(frame numbers, targets): the frame on screen at each of `count` evenly spaced instants.

    Targets sit at the centre of each 1/count share of the stream's real span; the frame shown at a
    target is the last one starting at or before it, so its timestamp is within one frame interval
    of the target whatever the frame rate. A frame shown at several targets is taken once.
    """
    n = times.starts.size
    if n == 0 or count <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    targets = times.starts[0] + (np.arange(count) + 0.5) * times.duration / count
    numbers = np.clip(np.searchsorted(times.starts, targets, side="right") - 1, 0, n - 1)
    return np.unique(numbers), targets


@dataclass(frozen=True)
class Sample:
    """Frames decoded in one pass, with their frame numbers and own timestamps."""

    frames: np.ndarray  # (k, H, W, 3) uint8 RGB
    numbers: np.ndarray  # (k,) frame numbers in presentation order
    times: np.ndarray  # (k,) s, each frame's presentation timestamp
    wanted: int  # distinct frames asked for; k < wanted means some could not be decoded
    read_error: str | None = None  # the demuxer stopped early (see FrameTimes)


def _any_of(terms: list[str]) -> str:
    """`a+b+...` as a balanced tree: ffmpeg's expression parser fails on a flat sum of ~100 calls."""
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return f"({_any_of(terms[:half])}+{_any_of(terms[half:])})"


_SHOWINFO = re.compile(r"\[Parsed_showinfo.*?\] n:\s*\d+ pts:\s*-?\d+\s+pts_time:(-?[\d.e+-]+)")


def sample_frames(
    path: str | Path, info: VideoInfo, count: int, max_side: int = 640, times: FrameTimes | None = None
) -> Sample:
    """Decode `count` frames evenly spaced in time over the video stream, in one decode pass.

    Frames come upright (ffmpeg applies the rotation flag) with the longer side at most `max_side`.
    A `select` filter keeps the wanted frames by timestamp and `showinfo` reports each kept frame's
    own timestamp, so a frame that fails to decode is missing from the result, never misdated.
    `times`: the stream's frame times when already read (`scan`), else they are read here.
    The decoder runs on one thread: a shard job is single-threaded work, parallel across jobs, and
    frame threading costs CPU (0.18 vs 0.22 CPU-s for a 15 s 640x360 clip; the frames are identical).
    """
    empty = np.zeros((0, 0, 0, 3), np.uint8)
    if not info.has_video:
        return Sample(empty, np.zeros(0, np.int64), np.zeros(0), 0)
    if times is None:
        times = _times(_demux(path))
    numbers, _ = wanted_frames(times, count)
    if numbers.size == 0:
        raise VideoError(times.read_error or "the video stream has no frames")
    chosen = times.starts[numbers]
    gaps = np.diff(times.starts)
    tol = min(0.5 * float(gaps[gaps > 0].min()), 1e-3) if (gaps > 0).any() else 1e-3
    select = _any_of([f"between(t\\,{t - tol:.6f}\\,{t + tol:.6f})" for t in chosen])
    # iw/ih are the upright size here: autorotation runs before user filters.
    scale = f"scale=w='if(gte(iw,ih),min({max_side},iw),-2)':h='if(gte(iw,ih),-2,min({max_side},ih))'"
    proc = _run(
        ["-threads", "1", "-i", ffmpeg_input(path), "-map", "0:v:0",
         "-vf", f"select='{select}',showinfo,{scale}",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        check=False,
    )  # fmt: skip
    stderr = proc.stderr.decode("utf-8", "replace")
    size = _OUTPUT_SIZE.search(stderr)
    if size is None:
        raise VideoError(_ffmpeg_error(proc.stderr))
    width, height = int(size[1]), int(size[2])
    k = len(proc.stdout) // (width * height * 3)
    if k == 0 and proc.returncode != 0:
        raise VideoError(_ffmpeg_error(proc.stderr))
    frames = np.frombuffer(proc.stdout, np.uint8, count=k * width * height * 3).reshape(k, height, width, 3)
    shown = np.array([float(t) for t in _SHOWINFO.findall(stderr)][:k])
    if shown.size < k:  # no showinfo line (should not happen): fall back to the wanted times
        shown = chosen[:k]
    got = np.searchsorted(times.starts, shown - tol)  # each decoded frame's number, by its timestamp
    got = np.clip(got, 0, times.starts.size - 1)
    return Sample(frames, got.astype(np.int64), shown, int(numbers.size), times.read_error)


def read_audio(path: str | Path, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """The first `seconds` of the first audio stream as float32 mono at `sample_rate` (may be shorter)."""
    proc = _run(
        ["-i", ffmpeg_input(path), "-map", "0:a:0", "-vn", "-t", str(seconds), "-ac", "1",
         "-ar", str(sample_rate), "-f", "f32le", "pipe:1"],
    )  # fmt: skip
    return np.frombuffer(proc.stdout, np.float32).copy()
