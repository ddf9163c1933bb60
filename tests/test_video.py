import numpy as np
import pytest

from impressions import media
from impressions.data import video
from impressions.testing import ffmpeg, out


def test_probe_reads_header_of_real_clip():
    info = video.probe(media.pyfeat_test_media("WolfgangLanger_Pexels.mp4"))
    assert (info.width, info.height) == (640, 360)
    assert info.fps == pytest.approx(23.98)
    assert info.duration_s == pytest.approx(19.69, abs=0.01)
    assert info.has_video and info.has_audio
    assert info.n_frames == 472


@pytest.mark.parametrize("count", [10, 100])
def test_sample_frames_one_pass_evenly_spaced(count):
    path = media.pyfeat_test_media("WolfgangLanger_Pexels.mp4")
    info = video.probe(path)
    sample = video.sample_frames(path, info, count)
    frames, numbers = sample.frames, sample.numbers
    assert frames.shape == (count, 360, 640, 3) and frames.dtype == np.uint8
    # constant rate: the frame on screen at each evenly spaced instant is the evenly spaced frame number
    assert np.array_equal(numbers, video.frame_numbers(472, count))
    assert np.allclose(sample.times, numbers / (24000 / 1001), atol=1e-3)
    gaps = np.diff(numbers)
    assert gaps.min() >= 472 // count - 1 and gaps.max() <= 472 // count + 1
    assert len({frames[i].tobytes() for i in range(count)}) == count  # distinct frames, not one repeated


def test_frame_numbers_never_repeat_when_clip_is_shorter_than_request():
    assert video.frame_numbers(5, 10).tolist() == [0, 1, 2, 3, 4]
    assert video.frame_numbers(0, 10).size == 0


def test_rotation_flag_gives_upright_portrait_frames(tmp_path, bad_media):
    rotated = tmp_path / "-rot.mp4"
    ffmpeg("-display_rotation", "90", "-i", out(bad_media["good"]), "-c", "copy", out(rotated))
    info = video.probe(rotated)
    assert info.rotation == 90 and info.display_size == (360, 640)
    frames = video.sample_frames(rotated, info, 3).frames
    assert frames.shape == (3, 640, 360, 3)


def test_max_side_downscales_keeping_aspect():
    path = media.pyfeat_test_media("WolfgangLanger_Pexels.mp4")
    frames = video.sample_frames(path, video.probe(path), 2, max_side=320).frames
    assert frames.shape == (2, 180, 320, 3)


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_unreadable_files_raise_video_error(bad_media, kind):
    with pytest.raises(video.VideoError):
        info = video.probe(bad_media[kind])
        video.sample_frames(bad_media[kind], info, 10)


@pytest.mark.parametrize("kind", ["good", "portrait", "no_audio", "audio_only", "dash"])
def test_scan_is_probe_and_frame_times_in_one_run(bad_media, kind):
    path = bad_media[kind]
    info, times = video.scan(path)
    assert info == video.probe(path)
    if info.has_video:
        expected = video.frame_times(path)
        assert np.array_equal(times.starts, expected.starts) and times.starts.size > 0
        assert (times.end, times.read_error) == (expected.end, expected.read_error)
        sample = video.sample_frames(path, info, 5, times=times)
        assert np.array_equal(sample.frames, video.sample_frames(path, info, 5).frames)
    else:
        assert times.starts.size == 0 and times.read_error is None


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_scan_of_unreadable_files_raises_or_sampling_does(bad_media, kind):
    """Where the header reads but the packets do not, the error waits for sampling, as before."""
    with pytest.raises(video.VideoError) as by_probe:
        info = video.probe(bad_media[kind])
        video.sample_frames(bad_media[kind], info, 10)
    with pytest.raises(video.VideoError) as by_scan:
        info, times = video.scan(bad_media[kind])
        video.sample_frames(bad_media[kind], info, 10, times=times)
    assert str(by_scan.value) == str(by_probe.value)


def test_audio_window_is_16k_mono():
    samples = video.read_audio(media.pyfeat_test_media("single_face.mp4"), 5.0)
    assert samples.dtype == np.float32
    assert samples.size == pytest.approx(2.42 * 16000, rel=0.02)  # the clip is 2.4 s long
    assert np.abs(samples).max() > 0.01


def _vfr_clip(path):
    """60 fps for the first 3 s, then 5 fps up to 10 s: 180 + 35 frames, a 21.9 fps header average."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=60:duration=10",
           "-vf", "select='lt(t,3)+not(mod(n,12))'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-preset", "ultrafast", out(path))  # fmt: skip
    return path


def test_variable_frame_rate_samples_are_evenly_spaced_in_time(tmp_path):
    path = _vfr_clip(tmp_path / "vfr.mp4")
    times = video.frame_times(path)
    assert times.starts.size == 215 and times.read_error is None
    sample = video.sample_frames(path, video.probe(path), 10)
    assert len(sample.frames) == sample.wanted == 10
    targets = times.starts[0] + (np.arange(10) + 0.5) * times.duration / 10
    # each frame is the one on screen at its target: at or before it, by less than its own interval
    intervals = np.diff(np.append(times.starts, times.end))[sample.numbers]
    assert np.all(sample.times <= targets + 1e-6)
    assert np.all(targets - sample.times < intervals + 1e-6), (sample.times, targets)
    assert np.all(np.abs(sample.times - targets) <= 0.2 + 1e-6)  # 5 fps: 0.2 s frame interval
    assert (sample.times < 3).sum() == 3  # not the 6 of 10 a frame-number spacing gives
    assert np.allclose(sample.times, times.starts[sample.numbers])


def test_many_frames_in_one_pass():
    """A select over hundreds of timestamps still parses (ffmpeg fails on a flat sum of ~100 terms)."""
    path = media.pyfeat_test_media("WolfgangLanger_Pexels.mp4")
    sample = video.sample_frames(path, video.probe(path), 300, max_side=64)
    assert len(sample.frames) == sample.wanted == 300
    assert np.all(np.diff(sample.times) > 0)


def test_still_image_with_audio_yields_its_frame(tmp_path):
    path = tmp_path / "still.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=1:duration=1", "-f", "lavfi", "-t", "5",
           "-i", "sine=frequency=220", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac",
           out(path))  # fmt: skip
    info = video.probe(path)
    assert info.duration_s == pytest.approx(5.0, abs=0.1)  # the header's duration is the audio's
    sample = video.sample_frames(path, info, 10)
    assert len(sample.frames) == sample.wanted == 1 and sample.times.tolist() == [0.0]
    assert sample.read_error is None


def test_video_starting_after_its_audio_is_sampled_from_its_first_frame(tmp_path):
    whole, late = tmp_path / "whole.mp4", tmp_path / "late.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=4", "-f", "lavfi", "-t", "5",
           "-i", "sine=frequency=220", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac",
           out(whole))  # fmt: skip
    ffmpeg("-i", out(whole), "-itsoffset", "0.85", "-i", out(whole), "-map", "1:v", "-map", "0:a",
           "-c", "copy", out(late))  # fmt: skip
    sample = video.sample_frames(late, video.probe(late), 10)
    assert len(sample.frames) == sample.wanted == 10 and sample.read_error is None
    assert np.allclose(sample.times, 0.85 + 0.2 + 0.4 * np.arange(10), atol=0.041)


def test_cut_file_with_index_first_reports_the_read_error(tmp_path, bad_media):
    whole, cut = tmp_path / "fast.mp4", tmp_path / "cut.mp4"
    ffmpeg("-i", out(bad_media["good"]), "-c", "copy", "-movflags", "+faststart", out(whole))
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    sample = video.sample_frames(cut, video.probe(cut), 10)
    assert "partial file" in sample.read_error
    assert 0 < len(sample.frames)
