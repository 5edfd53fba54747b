"""Decode chosen frames of an in-memory mp4, resized and cropped, straight into model-ready float planes.

Why PyAV here rather than torchcodec: FFmpeg's swscale can scale the YUV planes and convert them to planar
RGB (``gbrp``) in one pass, at the output size. torchcodec's ``Resize`` decoder transform costs ~15x more
per 720p frame on CPU, and resizing full-size RGB frames afterwards (torch or Pillow) is several times
slower again. With ``gbrp`` no interleaved-RGB-to-channels-first shuffle is needed either.

swscale's bilinear scaler widens its filter when downscaling (it is antialiased) and maps pixel centres
like ``align_corners=False``, i.e. continuous coordinates scale by ``out / in``: the convention of
:class:`~mit_dataset.geometry.FrameTransform` (checked to sub-pixel accuracy by the tests).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import av
import numpy as np

from .geometry import FrameTransform
from .video_io import regular_frame_step

#: ``gbrp`` plane order -> RGB channel.
_GBRP_CHANNELS = (1, 2, 0)


class _BufferReader(io.RawIOBase):
    """Read-only, seekable file over a buffer, without copying the whole buffer (``io.BytesIO`` would)."""

    def __init__(self, buffer):
        self._view = memoryview(buffer).cast("B")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        count = min(len(target), len(self._view) - self._position)
        target[:count] = self._view[self._position : self._position + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


#: Requested frames at most this far apart are reached by decoding on rather than seeking: a seek restarts
#: at the keyframe before the target, which may be up to a GOP back (libx264's default GOP, used by
#: :func:`mit_dataset.video_io.write_video`, is 250 frames).
MAX_SEQUENTIAL_GAP = 250


def decode_frames(
    source,
    indices: Sequence[int],
    transform: FrameTransform,
    out: np.ndarray,
    name: str = "<video>",
    threads: int = 1,
) -> np.ndarray:
    """Decode frames ``indices`` (any order, repeats allowed) of the mp4 in ``source`` (a buffer: bytes,
    NumPy array, ...) into ``out[k]`` = frame ``indices[k]`` resized and cropped by ``transform``, as float
    ``(3, H, W)`` in [-1, 1]. ``out`` must be float32 ``(len(indices), 3, H, W)``.

    Only the requested frames are converted; frames between a keyframe and a requested frame are decoded
    (that is how inter-frame codecs work). Frame ``i`` is the ``i``-th frame that decodes, the order every
    decoder agrees on: in a regular file (frame ``i`` at ``start + i / fps``, as import writes them, see
    :func:`~mit_dataset.video_io.regular_frame_step`) it is found by seeking; a file with timestamp gaps is
    decoded in order from its first frame instead (no frame is skipped or repeated).
    """
    indices = [int(i) for i in indices]
    if out.shape != (len(indices), 3, transform.height, transform.width) or out.dtype != np.float32:
        raise ValueError(
            f"out must be float32 {(len(indices), 3, transform.height, transform.width)}, got {out.shape}"
        )
    rows: dict[int, list[int]] = {}
    for row, index in enumerate(indices):
        rows.setdefault(index, []).append(row)
    pending = sorted(rows)
    if pending and pending[0] < 0:
        raise ValueError(f"{name}: negative frame index {pending[0]}")
    with av.open(_BufferReader(source), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE" if threads == 1 else "AUTO"
        stream.thread_count = threads
        start = stream.start_time or 0
        step = regular_frame_step(stream)
        if step is None:  # timestamp gaps: frame i is the i-th decoded frame
            for index, frame in enumerate(container.decode(stream)):
                if index in rows:
                    _convert(frame, transform, out, rows[index])
                    pending.remove(index)
                if not pending:
                    break
            if pending:
                raise ValueError(f"{name}: frames {pending[:5]} not found (the video has fewer frames)")
            return out
        step = float(step)

        def frames_from(pts: int):
            container.seek(int(pts), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is not None:
                    yield round((frame.pts - start) / step), frame

        while pending:
            target = pending[0]
            frames = frames_from(start + target * step)
            index, frame = next(frames, (None, None))
            if index is not None and index > target:  # landed past the target (odd index): from the start
                frames = frames_from(start)
                index, frame = next(frames, (None, None))
            while index is not None:
                if index in rows and index in pending:
                    _convert(frame, transform, out, rows[index])
                    pending.remove(index)
                if not pending or pending[0] - index > MAX_SEQUENTIAL_GAP:
                    break
                index, frame = next(frames, (None, None))
            if index is None and pending:
                raise ValueError(f"{name}: frames {pending[:5]} not found (the video has fewer frames)")
    return out


def _convert(frame: av.VideoFrame, transform: FrameTransform, out: np.ndarray, rows: list[int]) -> None:
    """Scale + convert ``frame`` to planar RGB at the resized size, crop, store as floats in [-1, 1]."""
    if (frame.height, frame.width) != (transform.src_height, transform.src_width):
        raise ValueError(
            f"frame is {frame.width}x{frame.height}, the clip says {transform.src_width}x{transform.src_height}"
        )
    planar = frame.reformat(
        width=transform.resized_width,
        height=transform.resized_height,
        format="gbrp",
        interpolation="BILINEAR",
    )
    top, left = transform.offset_y, transform.offset_x
    first = rows[0]
    for plane, channel in zip(planar.planes, _GBRP_CHANNELS, strict=True):
        pixels = np.frombuffer(plane, np.uint8).reshape(transform.resized_height, plane.line_size)
        crop = pixels[top : top + transform.height, left : left + transform.width]
        target = out[first, channel]
        np.multiply(crop, np.float32(2.0 / 255.0), out=target, casting="unsafe")
        target -= np.float32(1.0)
    for row in rows[1:]:
        out[row] = out[first]


def iter_frames(source, transform: FrameTransform, name: str = "<video>", threads: int = 0):
    """Yield every frame of the mp4 in ``source`` in order, resized and cropped by ``transform``, as
    ``(H, W, 3)`` uint8 RGB (FFmpeg scales while converting from YUV)."""
    with av.open(_BufferReader(source), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE" if threads == 1 else "AUTO"
        stream.thread_count = threads
        for frame in container.decode(stream):
            if (frame.height, frame.width) != (transform.src_height, transform.src_width):
                raise ValueError(f"{name}: frame is {frame.width}x{frame.height}, expected "
                                 f"{transform.src_width}x{transform.src_height}")  # fmt: skip
            yield rgb_frame(frame, transform)


def rgb_frame(frame: av.VideoFrame, transform: FrameTransform) -> np.ndarray:
    """One decoded frame resized and cropped by ``transform`` as ``(H, W, 3)`` uint8 RGB (FFmpeg scales while
    converting from YUV; a view into the converted frame)."""
    rgb = frame.reformat(
        width=transform.resized_width,
        height=transform.resized_height,
        format="rgb24",
        interpolation="BILINEAR",
    ).to_ndarray()
    top, left = transform.offset_y, transform.offset_x
    return rgb[top : top + transform.height, left : left + transform.width]
