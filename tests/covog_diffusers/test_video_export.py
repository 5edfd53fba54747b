import av
import numpy as np
import pytest
import torch
from PIL import Image

from covog_diffusers.video_export import export_to_video, frames_to_uint8
from mit_dataset.video_io import probe_video, read_audio, read_video_frames

FPS = 25
SR = 16_000


def _gradient_frames(num_frames=10, height=32, width=48):
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    frames = []
    for i in range(num_frames):
        frame = np.concatenate(
            [
                np.broadcast_to(x, (height, width, 1)),
                np.broadcast_to(y, (height, width, 1)),
                np.full((height, width, 1), i / max(num_frames - 1, 1), np.float32),
            ],
            axis=-1,
        )
        frames.append(frame)
    return np.stack(frames)


def _tone(seconds, freq=440.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("kind", ["float_np", "uint8_np", "pil", "torch_fhwc", "torch_fchw", "batch_np"])
def test_export_roundtrip_with_audio(tmp_path, kind):
    frames = _gradient_frames()
    if kind == "uint8_np":
        frames_in = (frames * 255).round().astype(np.uint8)
    elif kind == "pil":
        frames_in = [Image.fromarray((f * 255).round().astype(np.uint8)) for f in frames]
    elif kind == "torch_fhwc":
        frames_in = torch.from_numpy(frames)
    elif kind == "torch_fchw":
        frames_in = torch.from_numpy(frames).permute(0, 3, 1, 2)
    elif kind == "batch_np":
        frames_in = frames[None]
    else:
        frames_in = frames
    audio = _tone(len(frames) / FPS + 0.3)  # longer than the video: trimmed to its duration
    path = export_to_video(frames_in, tmp_path / "out" / "video.mp4", fps=FPS, audio=audio, sample_rate=SR)
    assert path.exists() and path.name == "video.mp4"
    assert not [p for p in path.parent.iterdir() if p.name != "video.mp4"], "temporary file left behind"

    info = probe_video(path)
    assert (info.num_frames, info.height, info.width) == (10, 32, 48)
    assert info.fps == pytest.approx(FPS)
    decoded = read_video_frames(path).astype(np.float32) / 255
    assert decoded.shape == (10, 32, 48, 3)
    assert np.abs(decoded - frames).mean() < 0.03  # lossy H.264, but the content is the same

    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
        assert container.streams.audio[0].codec_context.name == "aac"
    decoded_audio = read_audio(path, sample_rate=SR)
    expected = len(frames) / FPS * SR
    assert abs(len(decoded_audio) - expected) <= 2048  # AAC frame padding
    # the tone survives: dominant frequency 440 Hz
    spectrum = np.abs(np.fft.rfft(decoded_audio[:4000]))
    assert np.fft.rfftfreq(4000, 1 / SR)[spectrum.argmax()] == pytest.approx(440, abs=8)


def test_export_without_audio_and_odd_size(tmp_path):
    frames = (np.random.default_rng(0).random((3, 15, 21, 3)) * 255).astype(np.uint8)
    path = export_to_video(frames, tmp_path / "v.mp4", fps=10)
    info = probe_video(path)
    assert (info.num_frames, info.height, info.width) == (3, 16, 22)  # padded to even sizes
    with av.open(str(path)) as container:
        assert not container.streams.audio


def test_frames_to_uint8_conversions():
    gray = np.zeros((2, 4, 6), np.float32)
    assert frames_to_uint8(gray).shape == (2, 4, 6, 3)
    rgba = np.full((2, 4, 6, 4), 255, np.uint8)
    assert frames_to_uint8(rgba).shape == (2, 4, 6, 3)
    clipped = frames_to_uint8(np.array([[[[2.0, -1.0, 0.5]]]], np.float32))
    assert clipped.tolist() == [[[[255, 0, 128]]]]


@pytest.mark.parametrize(
    "frames, message",
    [
        ([], "empty"),
        (np.zeros((2, 2, 4, 4, 3), np.float32), "batch of 2"),
        (np.zeros((4, 4), np.float32), "expected"),
        (np.full((1, 4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((1, 4, 4, 3), 300, np.int32), r"\[0, 255\]"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((6, 4, 3), np.uint8)], "one size"),
    ],
)
def test_bad_frames_are_rejected(tmp_path, frames, message):
    with pytest.raises(ValueError, match=message):
        export_to_video(frames, tmp_path / "bad.mp4")
    assert not list(tmp_path.iterdir())


def test_bad_audio_is_rejected(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="audio"):
        export_to_video(frames, tmp_path / "bad.mp4", audio=np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="fps"):
        export_to_video(frames, tmp_path / "bad.mp4", fps=0)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("rate", [22_222, 44_100, 7_000])
def test_export_with_a_rate_aac_lacks_resamples_it(tmp_path, rate):
    t = np.arange(int(0.8 * rate)) / rate
    audio = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = export_to_video(_gradient_frames(20), tmp_path / "v.mp4", fps=FPS, audio=audio, sample_rate=rate)
    with av.open(str(path)) as container:
        stored = container.streams.audio[0].sample_rate
    assert stored == {22_222: 24_000, 44_100: 44_100, 7_000: 7_350}[rate]
    decoded = read_audio(path, sample_rate=SR)
    assert abs(len(decoded) - 0.8 * SR) <= 2048
    spectrum = np.abs(np.fft.rfft(decoded[2000:10000]))
    assert np.fft.rfftfreq(8000, 1 / SR)[spectrum.argmax()] == pytest.approx(440, abs=4)


def test_export_with_an_impossible_rate_names_it(tmp_path):
    with pytest.raises(ValueError, match=r"sample_rate 200000 Hz cannot be stored as AAC.*96000"):
        export_to_video(_gradient_frames(3), tmp_path / "v.mp4", audio=np.zeros(100), sample_rate=200_000)
    assert not (tmp_path / "v.mp4").exists()
