"""normalize_media keeps the video stream of a source that already is what the dataset stores (constant-rate
H.264 yuv420p at the wanted rate): the packets are copied, the decoded frames are the source's, the timing is
constant from 0, and only the audio is rewritten (16 kHz mono, aligned to the first frame)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from media_samples import frame_codes, issue_gap_repro, needs_ffmpeg_cli, tone, write_sample
from torchcodec.decoders import VideoDecoder

from mit_dataset import media
from mit_dataset.media import normalize_media, probe_media
from mit_dataset.video_io import read_audio, regular_frame_step


def video_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def decoded(path) -> tuple[list[np.ndarray], list[str]]:
    """Every decoded frame's planes (yuv420p, as stored) and picture type."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="yuv420p") for f in frames], [
        av.video.frame.PictureType(f.pict_type).name for f in frames
    ]


def onset(audio: np.ndarray, rate: int) -> float:
    return float(np.flatnonzero(np.abs(audio) > 0.1)[0] / rate)


def assert_copied(source, out_info, num_frames: int, fps: float = 25.0) -> None:
    """Same packets, the same decoded frames in the same order, constant timing from 0, a regular file."""
    assert video_packets(out_info.path) == video_packets(source)
    source_frames, types = decoded(source)
    out_frames, _ = decoded(out_info.path)
    assert len(source_frames) == len(out_frames) == num_frames
    assert all(np.array_equal(a, b) for a, b in zip(source_frames, out_frames))
    assert "B" in types  # reordered frames: the copy keeps presentation order through the re-timing
    probed = probe_media(out_info.path)
    assert out_info == probed  # what normalize_media returns without decoding the copy is what a probe says
    np.testing.assert_allclose(probed.frame_times, np.arange(num_frames) / fps, atol=1e-9)
    assert probed.is_normalized() and probed.video_start == 0.0
    with av.open(out_info.path) as container:
        assert regular_frame_step(container.streams.video[0]) is not None  # frame i found by seeking
    decoder = VideoDecoder(out_info.path)  # what row["video"] uses
    assert len(decoder) == num_frames and decoder.metadata.average_fps == pytest.approx(fps)
    assert frame_codes(decoder[:].data.permute(0, 2, 3, 1).numpy()) == frame_codes(
        np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(source)).decode(video=0)])
    )


@pytest.mark.parametrize("video_start_frames", [0, 9])
def test_constant_rate_h264_keeps_its_video_stream(tmp_path, video_start_frames):
    # 44.1 kHz stereo AAC (as downloads come): the audio is rewritten, the video copied; a late start
    # (9 frames: 0.36 s) is re-timed to 0 with the audio following the first frame
    source = write_sample(
        tmp_path / "download.mp4", num_frames=60, video_start_frames=video_start_frames,
        audio=tone(3.0, 44_100, 2, onset=0.8),
    )  # fmt: skip
    info = probe_media(source)
    assert info.stream_copy_reasons(25) == [] and info.video_start == pytest.approx(video_start_frames / 25)
    out = normalize_media(source, tmp_path / "out.mp4", fps=25, info=info)
    assert_copied(source, out, 60)
    assert (out.sample_rate, out.audio_channels, out.audio_offset) == (16_000, 1, pytest.approx(0, abs=1e-3))
    # the tone's time after the first video frame, on the source's container clock
    expected_onset = info.audio_start + onset(read_audio(source, 16_000, align_to_video=False), 16_000)
    expected_onset -= info.video_start
    assert onset(read_audio(out.path, 16_000), 16_000) == pytest.approx(expected_onset, abs=0.004)
    assert len(read_audio(out.path, 16_000)) == pytest.approx(60 / 25 * 16_000, abs=1024)


def test_a_copy_without_audio_stays_without_audio(tmp_path):
    source = write_sample(tmp_path / "silent.mp4", num_frames=30)
    out = normalize_media(source, tmp_path / "out.mp4")
    assert_copied(source, out, 30)
    assert not out.has_audio


def test_the_probe_passed_in_saves_decoding_the_source(tmp_path, monkeypatch):
    source = write_sample(tmp_path / "download.mp4", num_frames=30, audio=tone(1.2, 44_100, 2))
    info = probe_media(source)

    def no_probe(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(media, "probe_media", no_probe)
    out = normalize_media(source, tmp_path / "out.mp4", fps=25, info=info)
    assert out.num_frames == 30
    with pytest.raises(ValueError, match=r"info describes .*download\.mp4, not .*other\.mp4"):
        normalize_media(tmp_path / "other.mp4", tmp_path / "out2.mp4", info=info)


@needs_ffmpeg_cli
def test_sources_that_are_not_stored_as_they_are_are_re_encoded(tmp_path):
    gap = probe_media(issue_gap_repro(tmp_path))
    assert gap.stream_copy_reasons(25) == ["video frame times are not evenly spaced"]
    thirty = probe_media(write_sample(tmp_path / "30fps.mp4", num_frames=30, fps=30))
    assert thirty.stream_copy_reasons(25) == ["video runs at 30 fps, not 25"]
    assert thirty.stream_copy_reasons() == []  # its own rate: copied
    rotated = probe_media(write_sample(tmp_path / "rotated.mp4", num_frames=5, rotation=90))
    assert rotated.stream_copy_reasons(25) == ["90-degree display rotation"]
    odd = probe_media(
        write_sample(tmp_path / "odd.mp4", num_frames=5, width=127, height=71, video_codec="mpeg4")
    )
    assert odd.stream_copy_reasons(25) == ["video is mpeg4 yuv420p, not h264 yuv420p", "odd size 127x71"]
    out = normalize_media(gap.path, tmp_path / "out.mp4")
    assert video_packets(out.path) != video_packets(gap.path)  # re-encoded (frame-order re-timing)
    assert out.is_normalized() and out.num_frames == gap.num_frames


def test_a_failed_copy_leaves_nothing(tmp_path, monkeypatch):
    source = write_sample(tmp_path / "ok.mp4", num_frames=5)

    def broken(*args, **kwargs):
        raise RuntimeError("muxer died")

    monkeypatch.setattr(media, "copy_video_with_audio", broken)
    with pytest.raises(RuntimeError):
        normalize_media(source, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]


def test_real_constant_rate_talking_head_is_copied(real_media, tmp_path):
    path = real_media / "moore-animateanyone" / "1.mp4"  # H.264 512x512 25 fps, AAC 44.1 kHz stereo
    out = normalize_media(path, tmp_path / "1.mp4", fps=25)
    assert_copied(path, out, 299)
    expected = read_audio(path, 16_000)  # aligned to the first frame, resampled
    got = read_audio(out.path, 16_000)[: len(expected)]
    assert np.corrcoef(got[8000:-8000], expected[8000 : len(got) - 8000])[0, 1] > 0.95


def test_real_clip_whose_container_miscounts_is_re_encoded(real_media, tmp_path):
    path = real_media / "moore-animateanyone" / "2.mp4"
    assert probe_media(path).stream_copy_reasons() == ["container says 352 frames but 351 decode"]
