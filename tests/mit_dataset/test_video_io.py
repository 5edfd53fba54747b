import numpy as np
import pytest

from mit_dataset.masks import box_mask_rle, decode_mask, encode_mask
from mit_dataset.video_io import probe_video, read_audio, read_video_frames, write_video


def _ramp_frames(count, height=48, width=64):
    return [np.full((height, width, 3), (7 * i) % 250, np.uint8) for i in range(count)]


def test_write_probe_and_window_read(tmp_path):
    path = write_video(tmp_path / "clip.mp4", _ramp_frames(60), fps=25)
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (60, 64, 48, 25.0)
    window = read_video_frames(path, start=40, count=5)
    assert window.shape == (5, 48, 64, 3)
    np.testing.assert_allclose(window[:, 10, 10, 0], [(7 * i) % 250 for i in range(40, 45)], atol=3)


def test_audio_is_muxed_and_decoded_at_16k(tmp_path):
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)
    path = write_video(tmp_path / "talk.mp4", _ramp_frames(50), fps=25, audio=audio)
    decoded = read_audio(path)
    assert abs(len(decoded) - len(audio)) < 2048  # AAC frames pad the end
    spectrum = np.abs(np.fft.rfft(decoded[4000:12000]))
    assert np.argmax(spectrum) * 16000 / 8000 == pytest.approx(220, abs=4)


def test_failed_write_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((48, 64, 3), np.uint8)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_video(tmp_path / "broken.mp4", frames())
    assert list(tmp_path.iterdir()) == []


def test_unreadable_and_odd_inputs_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.mp4"):
        probe_video(bad)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", [np.zeros((5, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [])


def test_mask_rle_round_trip():
    mask = np.zeros((20, 30), bool)
    mask[3:9, 4:20] = True
    assert (decode_mask(encode_mask(mask), 20, 30) == mask).all()
    box_mask = decode_mask(box_mask_rle(np.array([4, 3, 20, 9]), 20, 30), 20, 30)
    assert (box_mask == mask).all()


def _textured_frames(count=8, height=128, width=192, seed=0):
    """Moving texture with noise: enough detail for x264's rate control to have decisions to make."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = [
        128 + 60 * np.sin(xx / 7 + yy / 11 + t)[..., None] + rng.normal(0, 25, (height, width, 3))
        for t in range(count)
    ]
    return np.clip(frames, 0, 255).astype(np.uint8)


def test_encoding_is_deterministic(tmp_path):
    # The same frames give the same file, byte for byte (a resumed benchmark run regenerates identical clips).
    # x264's AVX-512 macroblock-tree kernels gave up to 17 different files in 200 encodes of such a clip.
    frames = _textured_frames()
    encodes = {write_video(tmp_path / f"{i}.mp4", frames, fps=25).read_bytes() for i in range(40)}
    assert len(encodes) == 1


def test_a_still_video_stays_still(tmp_path):
    # The determinism fix keeps x264's macroblock-tree: without it a static frame drifts from frame to frame.
    still = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8), 12, axis=0)
    frames = read_video_frames(write_video(tmp_path / "still.mp4", still)).astype(int)
    assert np.abs(frames - frames[0]).max() == 0


def test_frames_are_read_by_decode_order_across_timestamp_gaps(tmp_path):
    from media_samples import frame_codes, write_sample

    kept = [i for i in range(40) if i not in (6, 20)]
    path = write_sample(tmp_path / "gap.mp4", num_frames=40, drop=(6, 20), video_start_frames=9)
    assert frame_codes(read_video_frames(path)) == kept
    assert frame_codes(read_video_frames(path, start=5, count=4)) == kept[5:9]  # no "not found", no shift
    assert probe_video(path).num_frames == len(kept)


def test_frames_are_read_as_displayed(tmp_path):
    from media_samples import coded_frame, write_sample

    path = write_sample(tmp_path / "rotated.mp4", num_frames=4, rotation=90)
    frames = read_video_frames(path, start=2, count=1)
    assert frames.shape == (1, 128, 72, 3)  # what torchcodec and the FFmpeg CLI show
    assert np.abs(frames[0].astype(np.float32) - np.rot90(coded_frame(2))).mean() < 3


def test_box_mask_rle_is_the_rle_of_the_filled_box_mask():
    """Run lengths written down directly must give the very string encoding the dense mask gives: boxes
    leaving the frame, full-height / full-width boxes, empty boxes."""
    rng = np.random.default_rng(0)
    boxes = [[-3, -2, 40, 40], [0, 0, 30, 20], [5, 0, 9, 20], [0, 4, 30, 7], [7, 7, 7, 12], [29.6, 3, 31, 9]]
    boxes += [np.sort(rng.uniform(-8, 38, (2, 2)), axis=0).reshape(-1)[[0, 2, 1, 3]] for _ in range(300)]
    for box in boxes:
        x1, y1, x2, y2 = np.round(np.asarray(box, np.float64)).astype(int)
        dense = np.zeros((20, 30), bool)
        dense[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
        assert box_mask_rle(np.asarray(box), 20, 30) == encode_mask(dense), box
