"""probe_media / normalize_media on generated files with the defects of real clips, and on the real files."""

from __future__ import annotations

import av
import numpy as np
import pytest
from media_samples import (
    authors_style_clip,
    coded_frame,
    frame_codes,
    issue_gap_repro,
    needs_ffmpeg_cli,
    tone,
    write_sample,
)
from torchcodec.decoders import VideoDecoder

from mit_dataset.media import MediaError, normalize_media, probe_media
from mit_dataset.video_io import read_audio


def decode_all(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def onset(audio: np.ndarray, rate: int) -> float:
    """Seconds until the first sample louder than 0.1."""
    return float(np.flatnonzero(np.abs(audio) > 0.1)[0] / rate)


def assert_normalized(info, num_frames: int, width: int, height: int, fps: float) -> None:
    assert info == probe_media(info.path)  # normalize_media reports the file without decoding it again
    assert (info.num_frames, info.width, info.height, info.fps) == (num_frames, width, height, fps)
    assert info.is_normalized() and not info.has_gaps and info.rotation == 0
    np.testing.assert_allclose(info.frame_times, np.arange(num_frames) / fps, atol=1e-6)
    decoder = VideoDecoder(info.path)  # what row["video"] uses
    assert (decoder.metadata.width, decoder.metadata.height, len(decoder)) == (width, height, num_frames)
    assert decoder.metadata.average_fps == pytest.approx(fps)


@needs_ffmpeg_cli
def test_issue_gap_repro_keeps_nominal_fps_and_retimes_by_order(tmp_path):
    source = issue_gap_repro(tmp_path)
    info = probe_media(source)
    assert (info.num_frames, info.fps, info.has_gaps) == (49, 25.0, True)  # not the average 24.5
    out = normalize_media(source, tmp_path / "out.mp4")
    assert_normalized(out, 49, 128, 72, 25.0)
    source_frames, out_frames = decode_all(source), decode_all(out.path)
    # frame i is source frame i (its nearest source frame): no duplicate in the gap, no shift after it
    error = np.abs(source_frames[None].astype(np.float32) - out_frames[:, None]).mean(axis=(2, 3, 4))
    assert error.argmin(axis=1).tolist() == list(range(49)) and error.diagonal().max() < 6


def test_gap_and_late_start_keep_every_frame_once(tmp_path):
    source = write_sample(tmp_path / "gap.mp4", num_frames=50, drop=(6, 20, 21), video_start_frames=9)
    info = probe_media(source)
    assert (info.num_frames, info.fps, info.has_gaps, info.video_start) == (
        47,
        25.0,
        True,
        pytest.approx(0.36),
    )
    expected = [i for i in range(50) if i not in (6, 20, 21)]
    # annotations on the uncut timeline: frame k sits at entry (9 + its source index)
    assert info.timeline_indices().tolist() == [9 + i for i in expected]
    out = normalize_media(source, tmp_path / "out.mp4")
    assert_normalized(out, 47, 128, 72, 25.0)
    assert frame_codes(decode_all(out.path)) == expected
    assert frame_codes(VideoDecoder(out.path)[:].data.permute(0, 2, 3, 1).numpy()) == expected


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_display_rotation_is_applied_to_the_pixels(tmp_path, rotation):
    source = write_sample(tmp_path / "rotated.mp4", num_frames=10, rotation=rotation)
    info = probe_media(source)
    portrait = rotation in (90, 270)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((72, 128) if portrait else (128, 72))
    decoder = VideoDecoder(str(source))  # torchcodec shows the rotated frame: the row must say so
    assert (decoder.metadata.width, decoder.metadata.height) == (info.width, info.height)
    out = normalize_media(source, tmp_path / "out.mp4")
    assert_normalized(out, 10, info.width, info.height, 25.0)
    frames = decode_all(out.path)
    for index in range(10):
        expected = np.rot90(coded_frame(index), rotation // 90)
        assert np.abs(frames[index].astype(np.float32) - expected).mean() < 3
    np.testing.assert_allclose(
        VideoDecoder(str(source))[3].permute(1, 2, 0).numpy(), frames[3], atol=40
    )  # same orientation as torchcodec on the source


def test_streams_starting_apart_are_aligned_to_the_first_video_frame(tmp_path):
    # video at 0.36 s, audio at 0.01 s (the authors' clips); the tone starts 0.6 s into the audio
    source = write_sample(
        tmp_path / "apart.mp4", num_frames=50, video_start_frames=9, audio=tone(2.5, 44_100, 2, onset=0.6),
        audio_start=0.01, audio_codec="libmp3lame",
    )  # fmt: skip
    info = probe_media(source)
    assert info.video_start == pytest.approx(0.36) and info.audio_start == pytest.approx(0.01)
    assert (info.sample_rate, info.audio_channels, info.audio_codec) == (44_100, 2, "mp3float")
    raw = read_audio(source, 16_000, align_to_video=False)
    source_onset = info.audio_start + onset(raw, 16_000)  # on the container clock
    out = normalize_media(source, tmp_path / "out.mp4")
    assert_normalized(out, 50, 128, 72, 25.0)
    assert (out.sample_rate, out.audio_channels, out.audio_offset) == (16_000, 1, pytest.approx(0, abs=1e-3))
    audio = read_audio(out.path, 16_000)
    assert abs(len(audio) - 2.0 * 16_000) <= 1024  # AAC frame padding at most
    assert onset(audio, 16_000) == pytest.approx(source_onset - 0.36, abs=0.004)
    # read_audio pairs sample 0 with the first video frame on the source too
    assert onset(read_audio(source, 16_000), 16_000) == pytest.approx(source_onset - 0.36, abs=0.001)


def test_late_audio_is_padded_with_leading_silence(tmp_path):
    source = write_sample(
        tmp_path / "late_audio.mp4", num_frames=25, audio=tone(1.0, 16_000, 1, onset=0.0), sample_rate=16_000,
        audio_start=0.2,
    )  # fmt: skip
    info = probe_media(source)
    assert info.audio_start == pytest.approx(0.2)
    out = normalize_media(source, tmp_path / "out.mp4")
    audio = read_audio(out.path, 16_000)
    assert np.abs(audio[: int(0.19 * 16_000)]).max() < 0.02
    assert onset(audio, 16_000) == pytest.approx(
        info.audio_start + onset(read_audio(source, align_to_video=False), 16_000), abs=0.004
    )


@needs_ffmpeg_cli
def test_authors_style_mpeg4_mp3_stream_copy_cut(tmp_path):
    clip, _ = authors_style_clip(tmp_path)
    info = probe_media(clip)
    assert (info.video_codec, info.audio_codec, info.fps, info.has_gaps) == ("mpeg4", "mp3float", 25.0, True)
    assert info.video_start > info.audio_start  # the cut lost the frames before the next keyframe
    source_codes = frame_codes(decode_all(clip))
    assert 40 not in source_codes and source_codes == sorted(source_codes)
    out = normalize_media(clip, tmp_path / "out.mp4")
    assert_normalized(out, info.num_frames, 128, 72, 25.0)
    assert frame_codes(decode_all(out.path)) == source_codes
    assert abs(out.audio_offset) < 1e-3


def test_fps_conversion_picks_the_nearest_frame(tmp_path):
    source = write_sample(tmp_path / "30fps.mp4", num_frames=30, fps=30)
    out = normalize_media(source, tmp_path / "out.mp4", fps=25)
    assert_normalized(out, 25, 128, 72, 25.0)
    assert frame_codes(decode_all(out.path)) == [round(j * 30 / 25) for j in range(25)]


def test_bad_media_errors_name_the_file(tmp_path):
    wav = tmp_path / "speech.wav"
    import soundfile as sf

    sf.write(wav, tone(0.5, 16_000)[0], 16_000)
    with pytest.raises(MediaError, match=r"speech\.wav: no video stream"):
        probe_media(wav)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(MediaError, match=r"garbage\.mp4: not a readable video"):
        probe_media(garbage)
    with pytest.raises(MediaError, match="fps must be positive"):
        normalize_media(write_sample(tmp_path / "ok.mp4", num_frames=3), tmp_path / "out.mp4", fps=0)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(("writer", "drop"), [("_encode", (2,)), ("copy_video_with_audio", ())])
def test_failed_normalisation_leaves_nothing(tmp_path, monkeypatch, writer, drop):
    source = write_sample(tmp_path / "ok.mp4", num_frames=5, drop=drop)  # a gap: re-encoded, else copied
    from mit_dataset import media

    def broken(*args, **kwargs):
        raise RuntimeError(f"{writer} died")

    monkeypatch.setattr(media, writer, broken)
    with pytest.raises(RuntimeError):
        normalize_media(source, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]


# --------------------------------------------------------------------------------------- real files


def test_real_talking_head_with_late_video_start(real_media, tmp_path):
    path = real_media / "moore-animateanyone" / "2.mp4"
    info = probe_media(path)
    assert (info.num_frames, info.container_frames) == (351, 352)
    assert (info.width, info.height, info.fps) == (300, 350, 30.0)
    assert info.video_start == pytest.approx(8.333, abs=1e-3) and info.audio_start == 0.0
    assert (info.sample_rate, info.audio_channels) == (44_100, 2)
    out = normalize_media(path, tmp_path / "2.mp4")
    assert_normalized(out, 351, 300, 350, 30.0)
    # audio: the source from the first video frame on, at 16 kHz mono
    raw = read_audio(path, 16_000, align_to_video=False)
    expected = raw[round(info.video_start * 16_000) :][: round(351 / 30 * 16_000)]
    np.testing.assert_array_equal(read_audio(path, 16_000)[: len(expected)], expected)
    got = read_audio(out.path, 16_000)[: len(expected)]
    lag = np.argmax(np.correlate(got[8000:24000], expected[8000 - 400 : 24000 + 400], mode="valid")) - 400
    assert abs(lag) <= 16  # within 1 ms
    assert np.corrcoef(got[8000:-8000], expected[8000:-8000])[0, 1] > 0.95


def test_real_talking_head_already_regular(real_media, tmp_path):
    info = probe_media(real_media / "moore-animateanyone" / "1.mp4")
    assert (info.num_frames, info.width, info.height, info.fps, info.has_gaps) == (299, 512, 512, 25.0, False)
    assert not info.is_normalized()  # 44.1 kHz stereo audio: rewritten for the dataset
    out = normalize_media(real_media / "moore-animateanyone" / "1.mp4", tmp_path / "1.mp4")
    assert_normalized(out, 299, 512, 512, 25.0)


def test_real_speech_is_not_a_video(real_media):
    with pytest.raises(MediaError, match=r"1\.wav: no video stream"):
        probe_media(real_media / "hallo2" / "1.wav")
