"""normalize_media keeps the video stream of a source that already is what the dataset stores (constant-rate
H.264 yuv420p at the wanted rate): the packets are copied, the decoded frames are the source's, the timing is
constant from 0, and only the audio is rewritten (16 kHz mono, aligned to the first frame)."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
from media_samples import coded_frame, frame_codes, issue_gap_repro, needs_ffmpeg_cli, tone, write_sample
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


def ms_clock_sample(path, times_ms, pix_fmt: str = "yuv420p", container: str = "mp4"):
    """H.264 coded frames (:func:`media_samples.coded_frame`) at the given times on a millisecond clock."""
    with av.open(str(path), "w", format=container) as output:
        video = output.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 128, 72, pix_fmt
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        for index, time_ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(coded_frame(index), format="rgb24")
            frame.pts, frame.time_base = int(time_ms), Fraction(1, 1000)
            output.mux(video.encode(frame))
        output.mux(video.encode())
    return path


def ffmpeg_copy(source, target, *args: str):
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", *args, "-i", str(source), "-c", "copy", str(target)],
        check=True,
    )
    return target


@needs_ffmpeg_cli
def test_sources_that_are_not_stored_as_they_are_are_re_encoded(tmp_path):
    h264 = write_sample(tmp_path / "h264.mp4", num_frames=50, audio=tone(2.0, 44_100, 2, onset=0.5))
    reasons = {
        # timestamp gap (the issue's repro): re-timed by frame order, which only a re-encode does
        issue_gap_repro(tmp_path): ["video frame times are up to 1.00 frames off a constant 25 fps"],
        # variable frame rate: steps of 28 and 52 ms, 40 ms on average
        ms_clock_sample(tmp_path / "vfr.mp4", np.cumsum([0] + [28, 52] * 20)): [
            "video frame times are up to 0.30 frames off a constant 25 fps"
        ],
        write_sample(tmp_path / "30fps.mp4", num_frames=30, fps=30): ["video runs at 30 fps, not 25"],
        write_sample(tmp_path / "rotated.mp4", num_frames=5, rotation=90): ["90-degree display rotation"],
        write_sample(tmp_path / "odd.mp4", num_frames=5, width=127, height=71, video_codec="mpeg4"): [
            "video is mpeg4 yuv420p, not h264 yuv420p",
            "odd size 127x71",
        ],
        ms_clock_sample(tmp_path / "444.mp4", np.arange(30) * 40, pix_fmt="yuv444p"): [
            "video is h264 yuv444p, not h264 yuv420p"
        ],
        # a -c copy cut that starts between keyframes: the edit list hides the B/P frames before the cut,
        # which a packet copy would bring back
        ffmpeg_copy(h264, tmp_path / "cut.mp4", "-ss", "0.52"): [
            "container says 50 frames but 37 decode",
            "video packets do not decode to one frame each at their own timestamps",
        ],
        ffmpeg_copy(h264, tmp_path / "h264.mkv"): ["container is matroska,webm, not mp4/mov"],
        ffmpeg_copy(h264, tmp_path / "h264.ts"): ["container is mpegts, not mp4/mov"],
    }
    for path, expected in reasons.items():
        info = probe_media(path)
        assert info.stream_copy_reasons(25) == expected, path.name
        out = normalize_media(path, tmp_path / f"out-{path.stem}-{path.suffix[1:]}.mp4", fps=25, info=info)
        assert video_packets(out.path) != video_packets(path), path.name  # re-encoded
        assert out.is_normalized() and out == probe_media(out.path), path.name
        assert out.num_frames == round(info.num_frames * out.fps / info.fps), path.name


def test_the_copy_is_refused_when_the_muxer_moves_its_frames(tmp_path, monkeypatch):
    """The copy's packet times are checked before the file is renamed into place: frames moved before 0 (which
    decoders would drop) leave nothing behind."""
    source = write_sample(tmp_path / "ok.mp4", num_frames=20)
    copy = media.copy_video_with_audio
    monkeypatch.setattr(
        media,
        "copy_video_with_audio",
        lambda *args, pts_offset, **kw: copy(*args, pts_offset=pts_offset + 3, **kw),
    )
    with pytest.raises(
        media.MediaError, match=r"out\.mp4: the written video packets are not at the frame times"
    ):
        normalize_media(source, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]


def assert_paths_agree(source, tmp_path, num_frames: int, fps: float = 25.0) -> tuple:
    """Normalise ``source`` by stream copy (:func:`assert_copied`) and by re-encoding; both have the same
    frame count, size, duration and timing from 0 for every decoder, and the same audio at the same place."""
    info = probe_media(source)
    assert info.stream_copy_reasons(fps) == []
    copied = normalize_media(source, tmp_path / "copied.mp4", fps=fps, info=info)
    encoded = normalize_media(source, tmp_path / "encoded.mp4", fps=fps, info=info, stream_copy=False)
    assert_copied(source, copied, num_frames, fps)
    assert video_packets(encoded.path) != video_packets(source)
    assert encoded == probe_media(encoded.path) and encoded.is_normalized()
    assert (encoded.num_frames, encoded.duration, encoded.width, encoded.height) == (
        copied.num_frames, copied.duration, copied.width, copied.height,
    )  # fmt: skip
    np.testing.assert_allclose(copied.frame_times, encoded.frame_times, atol=1e-3)
    decoders = VideoDecoder(copied.path), VideoDecoder(encoded.path)  # what row["video"] uses
    assert len(decoders[1]) == num_frames
    durations = [d.metadata.duration_seconds for d in decoders]
    assert durations[0] == pytest.approx(durations[1], abs=1e-3)
    assert decoders[0].metadata.begin_stream_seconds == decoders[1].metadata.begin_stream_seconds == 0
    if info.has_audio:
        assert (copied.sample_rate, copied.audio_channels) == (encoded.sample_rate, encoded.audio_channels)
        assert copied.audio_offset == encoded.audio_offset == pytest.approx(0, abs=1e-3)
        audio = read_audio(copied.path, 16_000), read_audio(encoded.path, 16_000)
        np.testing.assert_array_equal(*audio)  # the same aligned samples, the same AAC encode
        assert len(audio[0]) == pytest.approx(copied.duration * 16_000, abs=1024)
    return copied, encoded, decoders


@pytest.mark.parametrize("video_start_frames", [0, 9])
def test_copy_and_re_encode_agree_on_generated_files(tmp_path, video_start_frames):
    # B-frames (x264's defaults), 44.1 kHz stereo AAC from 0 (as downloads come) and a late video start
    # (9 frames: 0.36 s), re-timed to 0 with the audio following the first frame
    source = write_sample(
        tmp_path / "download.mp4", num_frames=50, video_start_frames=video_start_frames,
        audio=tone(2.5, 44_100, 2, onset=0.8),
    )  # fmt: skip
    copied, encoded, decoders = assert_paths_agree(source, tmp_path, 50)
    codes = [frame_codes(d[:].data.permute(0, 2, 3, 1).numpy()) for d in decoders]
    assert codes[0] == codes[1] == list(range(50))
    # the tone's time after the first video frame, on the source's container clock
    info = probe_media(source)
    assert info.video_start == pytest.approx(video_start_frames / 25)
    expected = (
        info.audio_start + onset(read_audio(source, 16_000, align_to_video=False), 16_000) - info.video_start
    )
    for out in (copied, encoded):
        assert onset(read_audio(out.path, 16_000), 16_000) == pytest.approx(expected, abs=0.004)


def test_copy_and_re_encode_agree_on_a_real_talking_head(real_media, tmp_path):
    path = real_media / "moore-animateanyone" / "1.mp4"  # H.264 512x512 25 fps, AAC 44.1 kHz stereo
    copied, _, decoders = assert_paths_agree(path, tmp_path, 299)
    for index in (0, 150, 298):
        a, b = (d[index].data.float() for d in decoders)
        assert 10 * np.log10(255**2 / float(((a - b) ** 2).mean())) > 35
    expected = read_audio(path, 16_000)  # aligned to the first frame, resampled
    got = read_audio(copied.path, 16_000)[: len(expected)]
    assert np.corrcoef(got[8000:-8000], expected[8000 : len(got) - 8000])[0, 1] > 0.95


def test_real_clip_whose_container_miscounts_is_re_encoded(real_media, tmp_path):
    path = real_media / "moore-animateanyone" / "2.mp4"
    assert probe_media(path).stream_copy_reasons() == [
        "container says 352 frames but 351 decode",
        "video packets do not decode to one frame each at their own timestamps",
    ]
