"""Zero-copy access to one MIT row of a loaded split: per-person arrays as NumPy views of the Arrow data, and
the embedded mp4/FLAC bytes as a buffer that decoders read in place.

``dataset[i]`` would turn every per-frame array of the clip into nested Python lists (hundreds of ms for a
60 s clip with 4 people) and open the video in exact-seek mode (a scan of the whole file). Reading the row
as Arrow instead costs the same for a 10 s and a 60 s clip; only the frames and samples asked for are
decoded. Rows whose media are stored as paths (no bytes) fall back to the ``datasets`` decoders.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import soundfile as sf
import torch

from .features import SAMPLING_RATE
from .keypoints import NUM_KEYPOINTS

_PERSON_ARRAYS = {"keypoints": (NUM_KEYPOINTS, 3), "boxes": (4,), "face_boxes": (4,), "speaking_score": ()}
ROW_COLUMNS = ("clip_id", "fps", "num_frames", "width", "height", "video", "audio", "persons")


def _values(array: pa.Array) -> np.ndarray:
    """Flat float32 values of a (nested) list array, honouring slice offsets; zero-copy when possible."""
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    while (
        pa.types.is_list(array.type)
        or pa.types.is_large_list(array.type)
        or pa.types.is_fixed_size_list(array.type)
    ):
        array = array.flatten()
    if array.null_count:
        raise ValueError("per-person arrays must not contain nulls")
    return array.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def _media_bytes(column: pa.ChunkedArray) -> torch.Tensor | None:
    """The embedded bytes of a one-row ``{bytes, path}`` media column as a uint8 tensor (no copy)."""
    struct = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    data = struct.field("bytes")
    if len(data) != 1 or not data.is_valid()[0].as_py():
        return None
    offsets_type = np.int64 if pa.types.is_large_binary(data.type) else np.int32
    offsets = np.frombuffer(data.buffers()[1], dtype=offsets_type)
    start, stop = int(offsets[data.offset]), int(offsets[data.offset + 1])
    payload = np.frombuffer(data.buffers()[2], dtype=np.uint8)[start:stop]
    with warnings.catch_warnings():  # Arrow buffers are read-only; torchcodec only reads them.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(payload)


@dataclass
class ClipArrays:
    """One clip's metadata and per-person arrays (``P`` persons, ``T`` frames of the clip).

    ``keypoints`` (P, T, 59, 3), ``boxes`` / ``face_boxes`` (P, T, 4) and ``speaking_score`` (P, T) are
    float32 read-only views; index them with the frames you need.
    """

    clip_id: str
    fps: float
    num_frames: int
    width: int
    height: int
    person_ids: list[str]
    keypoints: np.ndarray
    boxes: np.ndarray
    face_boxes: np.ndarray
    speaking_score: np.ndarray
    video_bytes: torch.Tensor | None = None
    audio_bytes: torch.Tensor | None = None
    _keepalive: object = field(default=None, repr=False)

    @property
    def num_persons(self) -> int:
        return len(self.person_ids)


def clip_arrays(row: pa.Table) -> ClipArrays:
    """:class:`ClipArrays` of a one-row Arrow table with the MIT columns (``dataset.with_format("arrow")[i]``)."""
    if row.num_rows != 1:
        raise ValueError(f"expected a one-row table, got {row.num_rows} rows")
    missing = [name for name in ROW_COLUMNS if name not in row.column_names]
    if missing:
        raise ValueError(
            f"the dataset has no column(s) {missing}; expected the MIT schema (mit_dataset.features)"
        )
    clip_id = row.column("clip_id")[0].as_py()
    num_frames = int(row.column("num_frames")[0].as_py())
    persons_column = row.column("persons")
    persons = (
        persons_column.combine_chunks() if persons_column.num_chunks != 1 else persons_column.chunk(0)
    ).flatten()
    count = len(persons)
    arrays = {}
    for name, tail in _PERSON_ARRAYS.items():
        values = _values(persons.field(name))
        expected = count * num_frames * int(np.prod(tail, dtype=np.int64))
        if values.size != expected:
            raise ValueError(
                f"clip {clip_id!r}: field 'persons.{name}' has {values.size} values, expected {expected} "
                f"({count} persons x {num_frames} frames x {tail})"
            )
        arrays[name] = values.reshape(count, num_frames, *tail)
    return ClipArrays(
        clip_id=clip_id,
        fps=float(row.column("fps")[0].as_py()),
        num_frames=num_frames,
        width=int(row.column("width")[0].as_py()),
        height=int(row.column("height")[0].as_py()),
        person_ids=[str(p) for p in persons.field("person_id").to_pylist()],
        video_bytes=_media_bytes(row.column("video")),
        audio_bytes=_media_bytes(row.column("audio")),
        _keepalive=row,
        **arrays,
    )


def open_video(clip: ClipArrays, dataset=None, index: int | None = None):
    """A torchcodec ``VideoDecoder`` for the clip: from the embedded bytes (approximate seek: constant cost
    whatever the clip length, exact for constant-frame-rate mp4) or, for path-only rows, through
    ``dataset[index]["video"]`` (``datasets`` resolves relative and ``hf://`` paths)."""
    from torchcodec.decoders import VideoDecoder

    if clip.video_bytes is not None:
        return VideoDecoder(clip.video_bytes, seek_mode="approximate")
    if dataset is None:
        raise ValueError(f"clip {clip.clip_id!r}: the video has no embedded bytes and no dataset was given")
    return dataset.select_columns(["video"])[index]["video"]


def open_audio(clip: ClipArrays, dataset=None, index: int | None = None):
    """A torchcodec ``AudioDecoder`` for the clip (mono, resampled to 16 kHz)."""
    from torchcodec.decoders import AudioDecoder

    if clip.audio_bytes is not None:
        return AudioDecoder(clip.audio_bytes, sample_rate=SAMPLING_RATE, num_channels=1)
    if dataset is None:
        raise ValueError(f"clip {clip.clip_id!r}: the audio has no embedded bytes and no dataset was given")
    return dataset.select_columns(["audio"])[index]["audio"]


def read_audio_span(
    clip: ClipArrays,
    start: int,
    stop: int,
    dataset=None,
    index: int | None = None,
    sample_rate: int = SAMPLING_RATE,
) -> np.ndarray:
    """Mono float32 samples ``[start, stop)`` of the clip's audio (sample indices at ``sample_rate``; zeros
    outside the audio). Only the span is decoded: embedded FLAC/WAV at ``sample_rate`` is read with
    libsndfile, which seeks in constant time; anything else goes through torchcodec."""
    out = np.zeros(max(0, stop - start), np.float32)
    lo = max(start, 0)
    if stop <= lo:
        return out
    if clip.audio_bytes is not None:
        try:
            with sf.SoundFile(io.BytesIO(memoryview(clip.audio_bytes.numpy()))) as audio:
                if audio.samplerate == sample_rate:
                    if lo < audio.frames:
                        audio.seek(lo)
                        data = audio.read(min(stop, audio.frames) - lo, dtype="float32", always_2d=True).mean(
                            1
                        )
                        out[lo - start : lo - start + len(data)] = data
                    return out
        except sf.LibsndfileError:
            pass  # not a format libsndfile reads: torchcodec below
    decoder = open_audio(clip, dataset, index)
    duration = decoder.metadata.duration_seconds
    hi = stop if not duration else min(stop, round(duration * sample_rate))
    if hi <= lo:
        return out
    samples = decoder.get_samples_played_in_range(lo / sample_rate, hi / sample_rate)
    if samples.sample_rate != sample_rate:
        raise ValueError(
            f"clip {clip.clip_id!r}: audio decoded at {samples.sample_rate} Hz, expected {sample_rate}"
        )
    data = samples.data.mean(0).numpy()
    # The decoder may start a little before lo (a frame boundary): align on its reported start time.
    skip = max(0, lo - round(samples.pts_seconds * sample_rate))
    data = data[skip : skip + hi - lo]
    out[lo - start : lo - start + len(data)] = data
    return out
