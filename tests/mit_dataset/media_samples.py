"""Small media files with the defects real clips have, made with PyAV (and the FFmpeg CLI where the issue
gives the exact command): timestamp gaps, late video starts, streams starting apart, display rotation,
MPEG-4 Part 2 + MP3 cut with ``-c copy``.

Every frame carries its source index as 8 bars across the top half (white = bit set), so a test can read
back which source frame a decoder returned (:func:`frame_codes`); the bottom half is grey, which makes a
rotation visible.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

BARS = 8

needs_ffmpeg_cli = pytest.mark.skipif(
    shutil.which("ffmpeg") is None,
    reason="the FFmpeg command-line tool is not installed (the issue's repro uses it)",
)


def coded_frame(index: int, width: int = 128, height: int = 72) -> np.ndarray:
    """``(height, width, 3)`` uint8: frame ``index``'s bit bars on top, grey below."""
    frame = np.full((height, width, 3), 128, np.uint8)
    bar = width // BARS
    for bit in range(BARS):
        frame[: height // 2, bit * bar : (bit + 1) * bar] = 235 if (index >> bit) & 1 else 16
    return frame


def frame_codes(frames: np.ndarray) -> list[int]:
    """Source indices read back from ``(N, H, W, 3)`` display-oriented frames made by :func:`coded_frame`."""
    codes = []
    for frame in np.asarray(frames):
        height, width = frame.shape[:2]
        bar = width // BARS
        top = frame[: height // 2, :, :].astype(np.float32).mean(-1)
        bits = [top[:, bit * bar + bar // 4 : (bit + 1) * bar - bar // 4].mean() > 128 for bit in range(BARS)]
        codes.append(sum(int(b) << k for k, b in enumerate(bits)))
    return codes


def tone(
    seconds: float, rate: int, channels: int = 1, onset: float = 0.0, frequency: float = 440.0
) -> np.ndarray:
    """``(channels, samples)`` float32: silence until ``onset`` s, then a sine."""
    t = np.arange(round(seconds * rate)) / rate
    wave = np.where(t >= onset, 0.5 * np.sin(2 * np.pi * frequency * t), 0.0).astype(np.float32)
    return np.repeat(wave[None], channels, 0)


def write_sample(
    path: Path,
    num_frames: int = 50,
    fps: int = 25,
    width: int = 128,
    height: int = 72,
    drop: tuple[int, ...] = (),
    video_start_frames: int = 0,
    video_codec: str = "libx264",
    audio: np.ndarray | None = None,
    sample_rate: int = 44_100,
    audio_start: float = 0.0,
    audio_codec: str = "aac",
    rotation: int = 0,
    container: str = "mp4",
) -> Path:
    """Frames ``0..num_frames-1`` (minus ``drop``) at their own timestamps ``(i + video_start_frames) / fps``
    (passthrough: a dropped frame leaves a gap), optional audio starting at ``audio_start`` s, and a
    display rotation (degrees counter-clockwise) in the stream's display matrix."""
    with av.open(str(path), mode="w", format=container) as output:
        video = output.add_stream(video_codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = Fraction(1, fps)
        video.codec_context.time_base = Fraction(1, fps)
        if video_codec == "mpeg4":
            video.codec_context.qscale = 2
            video.codec_context.gop_size = 12
            video.codec_context.options = {"qscale": "2"}
        if rotation:
            video.set_display_rotation(rotation)
        stream_audio = None
        if audio is not None:
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            stream_audio = output.add_stream(audio_codec, rate=sample_rate, layout=layout)
        for index in range(num_frames):
            if index in drop:
                continue
            frame = av.VideoFrame.from_ndarray(coded_frame(index, width, height), format="rgb24")
            frame.pts = index + video_start_frames
            frame.time_base = Fraction(1, fps)
            output.mux(video.encode(frame))
        output.mux(video.encode())
        if stream_audio is not None:
            target, shift = round(audio_start * sample_rate), []

            def shifted(packets):  # the first packet (encoder priming included) starts at audio_start
                for packet in packets:
                    if packet.pts is not None:
                        if not shift:
                            shift.append(target - packet.pts)
                        packet.pts += shift[0]
                        packet.dts += shift[0]
                    yield packet

            for start in range(0, audio.shape[1], 1152):
                block = np.ascontiguousarray(audio[:, start : start + 1152], np.float32)
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=stream_audio.layout.name)
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
                output.mux(list(shifted(stream_audio.encode(frame))))
            output.mux(list(shifted(stream_audio.encode())))
    return path


def issue_gap_repro(folder: Path) -> Path:
    """The issue's command: testsrc 128x72 at 25 fps for 2 s, frame 6 removed, timestamps passed through."""
    path = folder / "gap.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=128x72:rate=25:duration=2",
         "-vf", r"select='not(eq(n\,6))'", "-fps_mode", "passthrough", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def authors_style_clip(folder: Path, cut_start: float = 1.37, cut_end: float = 5.0) -> tuple[Path, Path]:
    """Like the MIT authors' clips: a 25 fps MPEG-4 Part 2 (``-qscale:v 2``) + MP3 AVI with one frame missing
    (frame 40), cut to mp4 with ``ffmpeg -ss -to -c copy``. Returns ``(clip, source avi)``."""
    source = write_sample(
        folder / "episode.avi", num_frames=150, drop=(40,), video_codec="mpeg4", audio=tone(6.0, 44_100, 1, 0.0),
        audio_codec="libmp3lame", container="avi",
    )  # fmt: skip
    clip = folder / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-ss", str(cut_start), "-to", str(cut_end),
         "-c", "copy", str(clip)],
        check=True,
    )  # fmt: skip
    return clip, source


# ------------------------------------------------------------------------------------- clip folders


SCORE_STEP = 0.01  # speaking_score[j] = j * SCORE_STEP: the entry's index on the clip's timeline


def face_box(j: int, person: int) -> list[float]:
    """Face box of timeline entry ``j`` (moves 0.1 px per entry, so the entry can be read back)."""
    x = 10.0 + 60 * person + 0.1 * j
    return [x, 5.0, x + 20, 30.0]


def pose_instance(j: int, person: int) -> dict:
    x1, y1 = face_box(j, person)[:2]
    keypoints = [[x1 + 1 + (k % 18), y1 + 1 + (k % 20)] for k in range(133)]
    return {"keypoints": keypoints, "keypoint_scores": [0.9] * 133}


def released_clip_folder(folder: Path, video: Path, entries: int, num_poses: int | None = None) -> Path:
    """A clip folder as the authors' released collection code writes it: meta.json with source "test",
    speaker_info.json with period_num and without instance_bbox/clip_range, a speaker_info_merged.json
    beside it, pose/output_%04d.json. Arrays have ``entries`` values on the clip's timeline."""
    folder.mkdir(parents=True)
    shutil.copy(video, folder / "video.mp4")
    meta = {"source": "test", "video": "abc", "period": [10.0, 12.0], "num_speaker": 2, "url": ""}
    (folder / "meta.json").write_text(json.dumps(meta))
    speakers = [
        {
            "face_track": [face_box(j, person) for j in range(entries)],
            "speak": [[0, entries - 1]],
            "listen": [],
            "period_num": 0,
            "speaking_score": [SCORE_STEP * j for j in range(entries)],
        }
        for person in range(2)
    ]
    (folder / "speaker_info.json").write_text(json.dumps(speakers))
    (folder / "speaker_info_merged.json").write_text(json.dumps([speakers]))
    (folder / "pose").mkdir()
    for j in range(entries if num_poses is None else num_poses):
        pose = {"instance_info": [pose_instance(j, person) for person in range(2)]}
        (folder / "pose" / f"output_{j + 1:04d}.json").write_text(json.dumps(pose))
    return folder


def assert_row_agrees_with_media(row: dict, record) -> None:
    """The row's numbers equal what torchcodec decodes from its embedded mp4."""
    video = row["video"]
    assert (row["num_frames"], row["width"], row["height"]) == (
        record.num_frames,
        record.width,
        record.height,
    )
    assert len(video) == row["num_frames"] == video.metadata.num_frames
    assert (video.metadata.width, video.metadata.height) == (row["width"], row["height"])
    assert tuple(video[row["num_frames"] - 1].shape) == (3, row["height"], row["width"])
    assert video.metadata.average_fps == pytest.approx(row["fps"])
    assert video.metadata.begin_stream_seconds == 0
    samples = row["audio"].get_all_samples()
    assert samples.data.shape[1] == round(row["num_frames"] / row["fps"] * 16_000)
