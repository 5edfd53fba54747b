"""One truth about a media file: probe it by decoding, and normalise it to what the dataset stores.

Real clips disagree with their own containers (DESIGN decision 9): stream-copy cuts lose frames at the start
and leave timestamp gaps (the MIT authors' clips: 112 frames over 4.68 s, average 23.9 fps where 25 is
nominal; video starting at 0.36 s while the audio starts at 0.01 s), containers count frames that do not
decode (Moore-AnimateAnyone's ``2.mp4``: 352 said, 351 decode) and phones store portrait video as landscape
pixels plus a display rotation. :func:`probe_media` measures what a decoder really gives;
:func:`normalize_media` rewrites a file so that every reader (torchcodec rows, the PyAV training view,
the metrics) agrees with that measurement:

- video: H.264 ``yuv420p`` at a constant frame rate, frame ``i`` of the output being decoded frame ``i`` of
  the source (re-timed *by frame order*: a missing timestamp does not become a duplicated frame), the
  display rotation applied to the pixels, odd sizes cropped by one row/column at the bottom/right;
- audio: mono at ``sample_rate`` (16 kHz, the dataset's rate), its first sample at the first video frame's
  presentation time (leading audio trimmed, missing audio padded with silence), exactly as long as the video.

A source whose video already is what the dataset stores keeps its video stream as it is: the packets are
copied (their timestamps moved so that the first frame is at 0) and only the audio is rewritten. Downloaded
episodes usually are such files; copying them is exact (the decoded frames are the source's) and saves a
decode and an encode per frame. The copy is taken only when it provably decodes like the re-encode
(:meth:`MediaInfo.stream_copy_reasons` lists what forbids it): H.264 ``yuv420p`` in an mp4/mov container,
every packet decoding to exactly one displayed frame at its own timestamp (no packets an edit list hides,
none without a timestamp or that does not decode), frame times on the constant grid of the wanted rate, no rotation,
even size. Anything else is re-encoded from the decoded frames (no RGB round trip unless the pixels change).

Conventions: times are seconds on the container's clock (the clock that annotations of a cut clip use);
``rotation`` is the display matrix angle in degrees counter-clockwise, as FFmpeg and PyAV report it (the
pixels are shown after ``np.rot90(frame, rotation // 90)``, what the FFmpeg CLI and torchcodec do).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .atomic import atomic_path
from .video_io import (
    VideoSource,
    _describe,
    _encode,
    _open,
    copy_video_with_audio,
    display_rgb,
    iter_decoded_frames,
    read_audio,
)

#: A frame step longer than this many nominal frame durations is a timestamp gap.
GAP_TOLERANCE = 1.5
#: Audio starting within this many seconds of the first video frame counts as aligned.
ALIGNED_TOLERANCE_S = 0.002
#: Denominator limit when turning a measured frame rate into a nominal one (keeps 30000/1001).
MAX_RATE_DENOMINATOR = 1001
#: A video stream is copied only when every frame time is within this many frames of the constant-rate grid
#: from the first frame (timestamps rounded to a millisecond clock at 30000/1001 fps stay within 0.015).
STREAM_COPY_GRID_TOLERANCE = 0.05
#: ``av.container.format.name`` of the containers a video stream is copied from (FFmpeg's mov/mp4 demuxer).
STREAM_COPY_CONTAINERS = ("mov,mp4,m4a,3gp,3g2,mj2",)


class MediaError(ValueError):
    """A media file cannot be used as it is; the message starts with the file's name."""


@dataclass(frozen=True)
class MediaInfo:
    """What decoding a media file gives (see :func:`probe_media`).

    ``width`` x ``height`` are the displayed size (after ``rotation``); ``num_frames`` counts the frames
    that decode; ``fps`` is the nominal rate (the common frame step, not ``frames / duration``);
    ``frame_times`` holds each decoded frame's presentation time in seconds (shape ``(num_frames,)``).
    ``packets_match_frames``: every video packet the demuxer gives decodes to exactly one displayed frame
    at the packet's own presentation time (false with packets an edit list hides, packets without
    timestamps or that do not decode). ``container_format`` is FFmpeg's demuxer name.
    Audio fields are ``None`` / 0 when the file has no audio stream.
    """

    path: str
    num_frames: int
    width: int
    height: int
    fps: float
    rotation: int
    video_start: float
    has_gaps: bool
    container_frames: int
    video_codec: str
    pix_fmt: str
    packets_match_frames: bool
    container_format: str
    audio_start: float | None
    sample_rate: int | None
    audio_channels: int
    audio_codec: str | None
    frame_times: tuple[float, ...] = field(repr=False, default=())

    @property
    def has_audio(self) -> bool:
        return self.sample_rate is not None

    @property
    def duration(self) -> float:
        """Seconds the frames last at the nominal rate (``num_frames / fps``)."""
        return self.num_frames / self.fps

    @property
    def audio_offset(self) -> float | None:
        """Seconds the audio starts after the first video frame (negative: before it)."""
        return None if self.audio_start is None else self.audio_start - self.video_start

    def timeline_indices(self, fps: float | None = None) -> np.ndarray:
        """``(num_frames,)`` int: for each decoded frame, the index of the entry at its presentation time
        in a per-frame annotation array sampled at ``fps`` (default the nominal rate) from time 0.

        This realigns annotations made on the uncut timeline (the authors' per-period arrays) with the
        frames that survived a stream-copy cut: late start and gaps skip entries."""
        rate = fps or self.fps
        return np.rint(np.asarray(self.frame_times, np.float64) * rate).astype(np.int64)

    def _coding_reasons(self) -> list[str]:
        reasons = []
        if (self.video_codec, self.pix_fmt) != ("h264", "yuv420p"):
            reasons.append(f"video is {self.video_codec} {self.pix_fmt}, not h264 yuv420p")
        if self.container_frames not in (0, self.num_frames):
            reasons.append(f"container says {self.container_frames} frames but {self.num_frames} decode")
        if not self.packets_match_frames:
            reasons.append("video packets do not decode to one frame each at their own timestamps")
        return reasons

    def _geometry_reasons(self) -> list[str]:
        reasons = []
        if self.rotation:
            reasons.append(f"{self.rotation}-degree display rotation")
        if self.width % 2 or self.height % 2:
            reasons.append(f"odd size {self.width}x{self.height}")
        return reasons

    def stream_copy_reasons(self, fps: float | None = None) -> list[str]:
        """Why :func:`normalize_media` (at ``fps``, default the nominal rate) must re-encode the video instead
        of copying its stream (empty: it copies it; see the module docstring). A late start is no reason: the
        copy is re-timed to 0."""
        reasons = self._coding_reasons()
        if self.container_format not in STREAM_COPY_CONTAINERS:
            reasons.append(f"container is {self.container_format}, not mp4/mov")
        times = np.asarray(self.frame_times, np.float64)
        off_grid = np.abs((times - times[0]) * self.fps - np.arange(len(times))).max(initial=0.0)
        if off_grid > STREAM_COPY_GRID_TOLERANCE:
            reasons.append(
                f"video frame times are up to {off_grid:.2f} frames off a constant {self.fps:g} fps"
            )
        reasons += self._geometry_reasons()
        if fps is not None and _as_rate(fps) != _as_rate(self.fps):
            reasons.append(f"video runs at {self.fps:g} fps, not {fps:g}")
        return reasons

    def normalization_reasons(self, sample_rate: int = 16_000) -> list[str]:
        """Why the file is not what :func:`normalize_media` writes (empty: it is, no rewrite needed)."""
        reasons = self._coding_reasons()
        if self.has_gaps:
            reasons.append("video timestamps have gaps")
        if abs(self.video_start) >= 0.5 / self.fps:
            reasons.append(f"video starts at {self.video_start:.3f} s")
        reasons += self._geometry_reasons()
        if self.has_audio:
            if (self.sample_rate, self.audio_channels) != (sample_rate, 1):
                reasons.append(f"audio is {self.sample_rate} Hz with {self.audio_channels} channels")
            if abs(self.audio_offset) > ALIGNED_TOLERANCE_S:
                reasons.append(f"audio starts {self.audio_offset:+.3f} s from the first video frame")
        return reasons

    def is_normalized(self, sample_rate: int = 16_000) -> bool:
        """Whether the file already is what :func:`normalize_media` writes (no rewrite needed)."""
        return not self.normalization_reasons(sample_rate)


def _as_rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(MAX_RATE_DENOMINATOR)


def _fail(source: VideoSource, what: str) -> MediaError:
    return MediaError(f"{_describe(source)}: {what}")


def _rotation(frame: av.VideoFrame, source: VideoSource) -> int:
    angle = round(getattr(frame, "rotation", 0) or 0) % 360
    if angle % 90:
        raise _fail(source, f"display rotation of {angle} degrees is not a multiple of 90; not supported")
    return angle


def _nominal_rate(pts: np.ndarray, time_base: Fraction, header_rate: Fraction | None) -> Fraction:
    """The common frame step's rate: the median step between presentation times, snapped to the header's
    ``r_frame_rate`` when that agrees within 0.5% (it is exact, e.g. 30000/1001)."""
    steps = np.diff(pts)
    steps = steps[steps > 0]
    if len(steps) == 0:
        if header_rate:
            return header_rate
        raise MediaError("cannot tell the frame rate of a single-frame video without a header rate")
    measured = 1 / (Fraction(int(np.median(steps))) * time_base)
    if header_rate and abs(float(header_rate) / float(measured) - 1) < 0.005:
        return header_rate
    return measured.limit_denominator(MAX_RATE_DENOMINATOR)


def _decode_video(container, source: VideoSource, packet_pts: list[int | None]) -> Iterator[av.VideoFrame]:
    """Decode the first video stream (what ``container.decode`` does), appending each non-empty packet's pts
    to ``packet_pts`` (``None`` for one without a timestamp or that an edit list marks as discarded)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size:  # not the demuxer's empty flush packet
                packet_pts.append(None if packet.is_discard else packet.pts)
            for frame in packet.decode():
                count += 1
                yield frame
    except av.error.FFmpegError as error:
        raise _fail(source, f"video is undecodable after {count} frames ({error})") from error


def _audio_probe(source: VideoSource) -> tuple[float | None, int | None, int, str | None]:
    """(start s, sample rate, channels, codec) of the first decodable audio frame; Nones without audio."""
    with _open(source) as container:
        if not container.streams.audio:
            return None, None, 0, None
        stream = container.streams.audio[0]
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as error:
            raise _fail(source, f"audio is undecodable ({error})") from error
        if first is None:
            return None, None, 0, None
        start = float(first.pts * first.time_base) if first.pts is not None else float(stream.start_time or 0)
        return start, first.sample_rate, first.layout.nb_channels, stream.codec_context.name


def probe_media(path: VideoSource) -> MediaInfo:
    """Decode the whole video stream of ``path`` (and the first audio frame) and report what a decoder gives.

    Cost: one decode of the video (about the time of playing it back at a few hundred fps for small clips).

    Raises:
        MediaError: (a ``ValueError``) naming the file: unreadable, no video stream, no decodable frame,
            undecodable part way, a rotation that is not a multiple of 90 degrees.
    """
    try:
        with _open(path) as container:
            if not container.streams.video:
                raise _fail(path, "no video stream")
            stream = container.streams.video[0]
            time_base = stream.time_base
            pts, frame_pts, packet_pts, first = [], [], [], None
            for frame in _decode_video(container, path, packet_pts):
                if first is None:
                    first = frame
                    rotation = _rotation(frame, path)
                    size = (frame.width, frame.height)
                    pix_fmt = frame.format.name
                frame_pts.append(frame.pts)
                pts.append(frame.pts if frame.pts is not None else (pts[-1] + 1 if pts else 0))
            if first is None:
                raise _fail(path, "no video frame decodes")
            known = None not in packet_pts + frame_pts
            packets_match_frames = known and sorted(packet_pts) == sorted(frame_pts)
            pts = np.asarray(pts, np.int64)
            rate = _nominal_rate(pts, time_base, stream.base_rate)
            step = 1 / (rate * time_base)  # one nominal frame, in pts units
            steps = np.diff(pts)
            has_gaps = bool((steps > GAP_TOLERANCE * step).any() or (steps <= 0).any())
            width, height = size if rotation in (0, 180) else size[::-1]
            return _info(
                path, path, container, pts.tolist(), width=width, height=height, fps=float(rate),
                rotation=rotation, has_gaps=has_gaps, video_codec=stream.codec_context.name, pix_fmt=pix_fmt,
                packets_match_frames=packets_match_frames,
            )  # fmt: skip
    except (av.error.FFmpegError, OSError) as error:
        raise _fail(path, f"not a readable video ({error})") from error


def _display_frames(
    source: VideoSource, info: MediaInfo, picks: np.ndarray
) -> Iterator[np.ndarray | av.VideoFrame]:
    """Decoded frames ``picks`` (non-decreasing indices, repeats allowed) as displayed, cropped to even sizes:
    the decoded ``av.VideoFrame`` itself when neither applies (the encoder takes its pixels as they are: no
    RGB round trip), else ``(H, W, 3)`` uint8 RGB. Frames not picked are never converted."""
    height, width = info.height - info.height % 2, info.width - info.width % 2
    as_decoded = not info._geometry_reasons()
    position = 0
    for index, frame in enumerate(iter_decoded_frames(source)):
        if position == len(picks):
            return
        if picks[position] != index:
            continue
        image = frame if as_decoded else display_rgb(frame)[:height, :width]
        while position < len(picks) and picks[position] == index:
            yield image
            position += 1


def read_aligned_audio(source: VideoSource, sample_rate: int, num_samples: int) -> np.ndarray:
    """``(num_samples,)`` float32 mono audio at ``sample_rate`` whose sample 0 plays with the first video
    frame (:func:`~mit_dataset.video_io.read_audio`), its end trimmed or padded with silence to
    ``num_samples``. Raises ``ValueError`` naming the file when it has no readable audio."""
    aligned = np.zeros(num_samples, np.float32)
    audio = read_audio(source, sample_rate)[:num_samples]
    aligned[: len(audio)] = audio
    return aligned


def _info(name: VideoSource, source: VideoSource, container, pts: list[int], **video) -> MediaInfo:
    """:class:`MediaInfo` named ``name`` of ``source`` (open as ``container``) whose decoded frames are at
    ``pts`` (presentation order, in the first video stream's time base); ``video``: the other video fields."""
    stream = container.streams.video[0]
    audio_start, sample_rate, channels, audio_codec = _audio_probe(source)
    return MediaInfo(
        path=_describe(name),
        num_frames=len(pts),
        video_start=float(pts[0] * stream.time_base),
        container_frames=int(stream.frames or 0),
        container_format=container.format.name,
        audio_start=audio_start,
        sample_rate=sample_rate,
        audio_channels=channels,
        audio_codec=audio_codec,
        frame_times=tuple(float(p * stream.time_base) for p in pts),
        **video,
    )


def _written_info(
    written: Path, path: Path, rate: Fraction, width: int, height: int, frame_times: np.ndarray
) -> MediaInfo:
    """:func:`probe_media` of ``written``, just written by :func:`normalize_media` (to be renamed to ``path``),
    without decoding it: its frames are known (the ones encoded, or the source's packets copied), and its
    video packets (demuxed, not decoded) must sit at ``frame_times`` (seconds, presentation order) within
    0.1 ms, else the file is refused. tests/mit_dataset/test_media*.py check the result against a probe of
    every file they normalise.

    Raises:
        MediaError: the packets' times are not ``frame_times`` (the muxer moved them).
    """
    with _open(written) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
        times = np.asarray(pts, np.int64) * float(stream.time_base)
        if len(times) != len(frame_times) or np.abs(times - frame_times).max(initial=0.0) > 1e-4:
            raise _fail(path, "the written video packets are not at the frame times meant for them")
        return _info(
            path, written, container, pts, width=width, height=height, fps=float(rate), rotation=0,
            has_gaps=False, video_codec="h264", pix_fmt="yuv420p", packets_match_frames=True,
        )  # fmt: skip


def normalize_media(
    src: VideoSource,
    dst: str | os.PathLike,
    *,
    fps: float | None = None,
    sample_rate: int = 16_000,
    crf: int = 18,
    preset: str | None = None,
    info: MediaInfo | None = None,
    stream_copy: bool = True,
) -> MediaInfo:
    """Rewrite ``src`` as the dataset stores media and return :func:`probe_media` of the result.

    Output (written atomically to ``dst``): H.264 ``yuv420p`` mp4 at constant ``fps`` (default: the
    source's nominal rate) with AAC mono audio at ``sample_rate`` Hz, when the source has audio.
    ``info`` is :func:`probe_media` of ``src`` when the caller has it already (saves decoding it again).

    - Stream copy: with ``stream_copy`` (default) and :meth:`MediaInfo.stream_copy_reasons` empty, the video
      packets are copied as they are (no re-encode: the output decodes to exactly the source's frames), their
      timestamps moved so that the first frame is at 0; the audio is rewritten as below. Frame count,
      duration and audio alignment are those of the re-encode (tests/mit_dataset/test_media_stream_copy.py).
    - Re-encode (every other source, or ``stream_copy=False``): the decoded frames go to x264 as they are,
      or through RGB when rotated or cropped, with:
    - Re-timing by frame order: the source's decoded frames get times ``i / nominal_fps`` (gaps and a late
      start removed). With ``fps`` different from the nominal rate, output frame ``j`` is the source frame
      nearest in that timeline (``round(j * nominal / fps)``), as FFmpeg's ``fps`` filter picks frames.
    - Geometry: the display rotation is applied to the pixels; an odd width/height loses its last
      column/row (H.264 4:2:0 needs even sizes), so annotations in display coordinates stay valid.
    - Audio: :func:`read_aligned_audio`, exactly ``round(num_frames * sample_rate / fps)`` samples.

    ``num_frames`` of the result is ``round(source frames * fps / nominal)`` (the source's decoded frames
    when ``fps`` is omitted). ``crf`` is x264's constant quality (18: visually lossless), ``preset`` its
    speed preset (default :data:`~mit_dataset.video_io.X264_OPTIONS`'s; a file that is only cut again later
    may take ``"ultrafast"``: larger, faster to write and to decode).

    Raises:
        MediaError: naming ``src`` (see :func:`probe_media`), or ``fps`` / ``sample_rate`` not positive.
        ValueError: ``info`` describes another file than ``src``.
    """
    if fps is not None and not fps > 0:
        raise _fail(src, f"fps must be positive, got {fps}")
    if not sample_rate > 0:
        raise _fail(src, f"sample_rate must be positive, got {sample_rate}")
    if info is None:
        info = probe_media(src)
    elif info.path != _describe(src):
        raise ValueError(f"info describes {info.path}, not {_describe(src)}")
    nominal = _as_rate(info.fps)
    rate = _as_rate(fps) if fps else nominal
    num_frames = max(1, round(info.num_frames * rate / nominal))
    audio = None
    if info.has_audio:
        audio = read_aligned_audio(src, sample_rate, round(num_frames * sample_rate / rate))
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        if stream_copy and not info.stream_copy_reasons(fps):
            time_base = _video_time_base(src)
            pts = np.rint(np.asarray(info.frame_times) / float(time_base)).astype(np.int64)
            copy_video_with_audio(src, tmp, audio, sample_rate, pts_offset=int(pts[0]))
            size, times = (info.width, info.height), (pts - pts[0]) * float(time_base)
        else:
            picks = np.rint(np.arange(num_frames) * float(nominal / rate)).astype(np.int64)
            picks = np.minimum(picks, info.num_frames - 1)
            _encode(str(tmp), _display_frames(src, info, picks), rate, audio, sample_rate, crf, preset)
            size = (info.width - info.width % 2, info.height - info.height % 2)
            times = np.arange(num_frames) / float(rate)
        return _written_info(tmp, dst, rate, *size, times)


def _video_time_base(source: VideoSource) -> Fraction:
    with _open(source) as container:
        return container.streams.video[0].time_base


__all__ = ["MediaError", "MediaInfo", "normalize_media", "probe_media", "read_aligned_audio"]
