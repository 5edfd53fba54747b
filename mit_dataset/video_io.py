"""mp4 reading and writing with PyAV (it ships its own FFmpeg), shared by every part of the project.

Writers are atomic: frames go to a temporary file beside the target, which is renamed into place only
when the container is closed, so a crash never leaves a truncated mp4 under the final name.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable, Iterator
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
    """Decoded frame count, displayed size and nominal fps (:func:`mit_dataset.media.probe_media`, the one
    rule every part uses); raises ``ValueError`` naming the file when it is not a readable video."""
    from .media import probe_media  # media builds on this module's encoder

    info = probe_media(source)
    return VideoInfo(info.num_frames, info.width, info.height, info.fps)


def regular_frame_step(stream) -> Fraction | None:
    """Pts units per frame when the container's index says frame ``i`` is at ``start + i * step`` (average
    rate equal to the stream's frame rate: no timestamp gap), else ``None``: then frame ``i`` can only be
    found by decoding in order. Files written by :func:`write_video` / normalised at import are regular."""
    rate, average = stream.base_rate, stream.average_rate
    if not (stream.frames and rate and average) or rate != average:
        return None
    return 1 / (rate * stream.time_base)


def display_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB as shown: the display matrix's rotation (counter-clockwise) applied, as the
    FFmpeg CLI and torchcodec do; at ``size = (height, width)`` when given, scaled to cover it and centre-cropped
    (:meth:`FrameTransform.cover`; FFmpeg scales while converting from YUV, as the training view does)."""
    from .frame_decoder import rgb_frame
    from .geometry import FrameTransform

    turns = round(getattr(frame, "rotation", 0) or 0) % 360 // 90
    if size is not None and not turns:
        return rgb_frame(frame, FrameTransform.cover(frame.height, frame.width, *size))
    rgb = frame.to_ndarray(format="rgb24")
    rgb = np.rot90(rgb, turns) if turns else rgb
    if size is None:
        return rgb
    import torch

    transform = FrameTransform.cover(*rgb.shape[:2], *size)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    return transform.apply_frames(tensor)[0].permute(1, 2, 0).numpy()


def iter_decoded_frames(
    source: VideoSource, start: int = 0, count: int | None = None, threads: int = 0
) -> Iterator[av.VideoFrame]:
    """Yield decoded frames ``[start, start + count)`` as the decoder gives them (``av.VideoFrame`` in the
    stream's own pixel format, display rotation not applied), frame ``i`` being the ``i``-th frame that
    decodes (the order every decoder agrees on, also across timestamp gaps), decoded with ``threads`` threads
    (0: FFmpeg's choice). Work that stays in the stream's pixel format (re-encoding: :func:`write_video`;
    scaling with ``frame.reformat``) takes them as they are.

    Regular files (see :func:`regular_frame_step`) are entered by seeking to the keyframe before
    ``start``, so the cost depends on ``count`` and the GOP size; others are decoded from the beginning.
    Raises ``ValueError`` naming the file when it is not a readable video.
    """
    try:
        with _open(source) as container:
            if not container.streams.video:
                raise ValueError(f"{_describe(source)}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "SLICE" if threads == 1 else "AUTO"
            stream.thread_count = threads
            step = regular_frame_step(stream) if start > 0 else None
            first_pts = stream.start_time or 0
            if step is not None:
                container.seek(int(first_pts + start * step), stream=stream, backward=True, any_frame=False)
            index, yielded = -1, 0
            for frame in container.decode(stream):
                if step is not None and frame.pts is not None:
                    index = round((frame.pts - first_pts) / step)
                else:
                    index += 1
                if index < start:
                    continue
                yield frame
                yielded += 1
                if count is not None and yielded == count:
                    return
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{_describe(source)}: not a readable video ({error})") from error


def iter_video_frames(
    source: VideoSource,
    start: int = 0,
    count: int | None = None,
    size: tuple[int, int] | None = None,
    threads: int = 0,
) -> Iterator[np.ndarray]:
    """Yield frames ``[start, start + count)`` (see :func:`iter_decoded_frames`) as displayed ``(H, W, 3)``
    uint8 RGB, at ``size`` when given (:func:`display_rgb`)."""
    for frame in iter_decoded_frames(source, start, count, threads):
        yield display_rgb(frame, size)


def read_video_frames(source: VideoSource, start: int = 0, count: int | None = None) -> np.ndarray:
    """Frames ``[start, start + count)`` (all by default) as ``(n, H, W, 3)`` uint8 RGB; see
    :func:`iter_video_frames`. Raises ``ValueError`` naming the file when none is there."""
    frames = list(iter_video_frames(source, start, count))
    if not frames:
        raise ValueError(f"{_describe(source)}: no frames at or after index {start}")
    return np.stack(frames)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray | av.VideoFrame],
    fps: float = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    crf: int = 18,
) -> Path:
    """Encode uint8 ``(H, W, 3)`` RGB frames to H.264 mp4 (optionally with mono float audio at
    ``sample_rate`` Hz as AAC, stored at :func:`aac_sample_rate`), atomically. Returns the final path.

    Frames may also be decoded ``av.VideoFrame`` (:func:`iter_decoded_frames`): they are encoded from their
    own pixel format (no round trip through RGB, which costs a conversion each way and rounds the colours)
    and a yuv420p first frame's colour description goes into the stream."""
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


#: x264's speed presets, fastest first (``x264 --help``).
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
)  # fmt: skip

#: The sampling frequencies AAC can signal (ISO/IEC 14496-3 table 1.18), the ones FFmpeg's encoder accepts.
AAC_SAMPLE_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def aac_sample_rate(sample_rate: int) -> int:
    """The rate audio given at ``sample_rate`` Hz is stored at as AAC: the same rate when AAC has it, else
    the next higher one (PyAV's encoder resamples with FFmpeg's swresample; e.g. 22222 -> 24000).

    Raises:
        ValueError: ``sample_rate`` is not positive or above 96000 Hz (naming the allowed rates).
    """
    if not 0 < sample_rate <= AAC_SAMPLE_RATES[-1]:
        raise ValueError(
            f"sample_rate {sample_rate} Hz cannot be stored as AAC: expected 1 to {AAC_SAMPLE_RATES[-1]} Hz "
            f"(stored at the next of {AAC_SAMPLE_RATES})"
        )
    return next(rate for rate in AAC_SAMPLE_RATES if rate >= sample_rate)


def _encode(filename, frames, fps, audio, sample_rate, crf, preset: str | None = None) -> None:
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    decoded = isinstance(first, av.VideoFrame)
    height, width = (first.height, first.width) if decoded else np.asarray(first).shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
    with av.open(filename, mode="w", format="mp4") as container:
        # Every stream must exist before the first packet is muxed (the header is written then).
        rate = Fraction(fps).limit_denominator(1001)
        video_stream = container.add_stream("libx264", rate=rate)
        video_stream.width, video_stream.height = width, height
        video_stream.pix_fmt = "yuv420p"
        video_stream.options = {"crf": str(crf), **X264_OPTIONS, **({"preset": preset} if preset else {})}
        if decoded and first.format.name == "yuv420p":  # stored as they are: say what their colours mean
            for name in ("colorspace", "color_range", "color_primaries", "color_trc"):
                setattr(video_stream.codec_context, name, getattr(first, name))
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=aac_sample_rate(sample_rate), layout="mono")
        for index, frame in enumerate(itertools.chain([first], frames)):
            if isinstance(frame, av.VideoFrame):
                frame.pict_type = av.video.frame.PictureType.NONE  # else x264 keeps the decoded I/P/B types
            else:
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24"
                )
            frame.pts, frame.time_base = index, 1 / rate
            container.mux(video_stream.encode(frame))
        container.mux(video_stream.encode())
        if audio_stream is not None:
            _encode_audio(container, audio_stream, np.asarray(audio, dtype=np.float32), sample_rate)


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    chunk = 1024
    for offset in range(0, len(audio), chunk):
        samples = np.ascontiguousarray(audio[None, offset : offset + chunk])
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = sample_rate  # the encoder resamples to the stream's rate when they differ
        frame.pts = offset
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def copy_video_with_audio(
    source: VideoSource,
    filename: str | os.PathLike,
    audio: np.ndarray | None,
    sample_rate: int = 16_000,
    pts_offset: int = 0,
) -> None:
    """Write mp4 ``filename``: the first video stream of ``source`` copied packet by packet (no re-encode; its
    timestamps moved ``pts_offset`` units of the stream's time base earlier) and, unless ``None``, mono float
    ``audio`` at ``sample_rate`` Hz as AAC (at :func:`aac_sample_rate`). Not atomic: pass a temporary name
    (:func:`~mit_dataset.atomic.atomic_path`)."""
    with _open(source) as container, av.open(str(filename), mode="w", format="mp4") as target:
        in_stream = container.streams.video[0]
        out_stream = target.add_stream_from_template(in_stream)
        audio_stream = None
        if audio is not None:
            audio_stream = target.add_stream("aac", rate=aac_sample_rate(sample_rate), layout="mono")
        for packet in container.demux(in_stream):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.pts = None if packet.pts is None else packet.pts - pts_offset
            packet.dts -= pts_offset
            packet.stream = out_stream
            target.mux(packet)
        if audio_stream is not None:
            _encode_audio(target, audio_stream, np.asarray(audio, np.float32), sample_rate)


def _decode_audio(container, sample_rate: int) -> tuple[np.ndarray, float]:
    """Mono float32 samples at ``sample_rate`` of the first audio stream and the first sample's time (s)."""
    chunks, start = [], None
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    for frame in container.decode(container.streams.audio[0]):
        if start is None and frame.pts is not None:
            start = float(frame.pts * frame.time_base)
        chunks.extend(r.to_ndarray()[0] for r in resampler.resample(frame))
    chunks.extend(r.to_ndarray()[0] for r in resampler.resample(None))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return samples, start or 0.0


def _first_video_time(container) -> float | None:
    if not container.streams.video:
        return None
    stream = container.streams.video[0]
    for frame in container.decode(stream):
        if frame.pts is not None:
            return float(frame.pts * frame.time_base)
    return None


def read_audio(source: VideoSource, sample_rate: int = 16_000, align_to_video: bool = True) -> np.ndarray:
    """Decode the first audio stream of a file (mp4, wav, flac...) to mono float32 at ``sample_rate``.

    With ``align_to_video`` (default) and a video stream in the file, sample 0 is played with the first
    video frame: audio before it is dropped and a later audio start is padded with leading silence, so
    ``audio[round(i / fps * sample_rate)]`` is heard with frame ``i`` (the pairing the dataset stores).
    """
    try:
        with _open(source) as container:
            if not container.streams.audio:
                raise ValueError(f"{_describe(source)}: no audio stream")
            samples, start = _decode_audio(container, sample_rate)
        if align_to_video:
            with _open(source) as container:
                video_start = _first_video_time(container)
            if video_start is not None:
                shift = round((start - video_start) * sample_rate)  # > 0: the audio starts late
                samples = (
                    np.concatenate([np.zeros(shift, np.float32), samples]) if shift > 0 else samples[-shift:]
                )
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{_describe(source)}: not readable audio ({error})") from error
    return samples
