import numpy as np
import pytest
from media import ffmpeg, out

from impressions import media, video


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
    frames, numbers = video.sample_frames(path, info, count)
    assert frames.shape == (count, 360, 640, 3) and frames.dtype == np.uint8
    assert np.array_equal(numbers, video.frame_numbers(472, count))
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
    frames, _ = video.sample_frames(rotated, info, 3)
    assert frames.shape == (3, 640, 360, 3)


def test_max_side_downscales_keeping_aspect():
    path = media.pyfeat_test_media("WolfgangLanger_Pexels.mp4")
    frames, _ = video.sample_frames(path, video.probe(path), 2, max_side=320)
    assert frames.shape == (2, 180, 320, 3)


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_unreadable_files_raise_video_error(bad_media, kind):
    with pytest.raises(video.VideoError):
        info = video.probe(bad_media[kind])
        video.sample_frames(bad_media[kind], info, 10)


def test_audio_window_is_16k_mono():
    samples = video.read_audio(media.pyfeat_test_media("single_face.mp4"), 5.0)
    assert samples.dtype == np.float32
    assert samples.size == pytest.approx(2.42 * 16000, rel=0.02)  # the clip is 2.4 s long
    assert np.abs(samples).max() > 0.01
