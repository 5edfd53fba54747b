"""mp4 reading and writing with PyAV (it ships its own FFmpeg), shared by every part of the project.

Writers are atomic: frames go to a temporary file beside the target, which is renamed into place only
when the container is closed, so a crash never leaves a truncated mp4 under the final name.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .atomic import atomic_path

VideoSource = str | os.PathLike | bytes


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    width: int
    height: int
    fps: float


def _open(source: VideoSource):
    return av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))


def _describe(source: VideoSource) -> str:
    return "<video bytes>" if isinstance(source, bytes) else str(source)


def probe_video(source: VideoSource) -> VideoInfo:
    """Frame count, size and fps; raises ``ValueError`` naming the file when it is not a readable video."""
    try:
        with _open(source) as container:
            if not container.streams.video:
                raise ValueError(f"{_describe(source)}: no video stream")
            stream = container.streams.video[0]
            num_frames = stream.frames or sum(1 for _ in container.decode(stream))
            fps = float(stream.average_rate or stream.base_rate or 0)
            return VideoInfo(num_frames, stream.codec_context.width, stream.codec_context.height, fps)
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{_describe(source)}: not a readable video ({error})") from error


def read_video_frames(source: VideoSource, start: int = 0, count: int | None = None) -> np.ndarray:
    """Decode frames ``[start, start + count)`` as ``(n, H, W, 3)`` uint8 RGB, seeking to the nearest
    keyframe first so the cost depends on ``count`` and the GOP size, not on ``start``."""
    frames = []
    try:
        with _open(source) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.base_rate
            if start > 0 and rate:
                target_pts = int(Fraction(start) / rate / stream.time_base)
                container.seek(target_pts, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                index = round(float(frame.pts * stream.time_base * rate)) if frame.pts is not None else None
                if index is not None and index < start:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if count is not None and len(frames) == count:
                    break
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{_describe(source)}: not a readable video ({error})") from error
    if not frames:
        raise ValueError(f"{_describe(source)}: no frames at or after index {start}")
    return np.stack(frames)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    crf: int = 18,
) -> Path:
    """Encode uint8 ``(H, W, 3)`` RGB frames to H.264 mp4 (optionally with mono float audio as AAC),
    atomically. Returns the final path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _encode(str(tmp), frames, fps, audio, sample_rate, crf)
    return path


def _cpu_has_avx512() -> bool:
    """Whether numpy's runtime CPU detection (what ``numpy.show_runtime()`` reports) found AVX-512F."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return False
    return bool(__cpu_features__.get("AVX512F"))


#: libx264 options of every encode. On CPUs with AVX-512, x264 (core 165, as bundled with PyAV 18) now and
#: then writes a different bitstream from the same frames: its AVX-512 macroblock-tree code is not
#: deterministic (one 192x128 clip gave 17 different files in 200 encodes; with mbtree off, or with ``asm``
#: limited to AVX2, 600 of 600 were identical). A resumed ``mit-bench predict`` then regenerated a clip that
#: differed from the first run's. ``asm=AVX2`` keeps mbtree (static content stays sharp: without it a still
#: frame drifts by up to 14 levels over 12 frames) and only drops the AVX-512 kernels, a negligible cost.
#: tests/mit_dataset/test_video_io.py::test_encoding_is_deterministic measures it.
X264_OPTIONS = {"preset": "veryfast", **({"x264-params": "asm=AVX2"} if _cpu_has_avx512() else {})}


def _encode(filename, frames, fps, audio, sample_rate, crf) -> None:
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    height, width = np.asarray(first).shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
    with av.open(filename, mode="w", format="mp4") as container:
        # Every stream must exist before the first packet is muxed (the header is written then).
        video_stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video_stream.width, video_stream.height = width, height
        video_stream.pix_fmt = "yuv420p"
        video_stream.options = {"crf": str(crf), **X264_OPTIONS}
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        for frame in itertools.chain([first], frames):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            container.mux(video_stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video_stream.encode())
        if audio_stream is not None:
            _encode_audio(container, audio_stream, np.asarray(audio, dtype=np.float32), sample_rate)


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    chunk = 1024
    for offset in range(0, len(audio), chunk):
        samples = np.ascontiguousarray(audio[None, offset : offset + chunk])
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = offset
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def read_audio(source: VideoSource, sample_rate: int = 16_000) -> np.ndarray:
    """Decode the first audio stream of a file (mp4, wav, flac...) to mono float32 at ``sample_rate``."""
    chunks = []
    try:
        with _open(source) as container:
            if not container.streams.audio:
                raise ValueError(f"{_describe(source)}: no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(container.streams.audio[0]):
                chunks.extend(r.to_ndarray()[0] for r in resampler.resample(frame))
            chunks.extend(r.to_ndarray()[0] for r in resampler.resample(None))
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{_describe(source)}: not readable audio ({error})") from error
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
