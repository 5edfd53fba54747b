"""The training view of MIT: a ``torch.utils.data.Dataset`` of fixed-length windows over a loaded split, and
:func:`collate_mit_batch`, which pads persons to the batch maximum.

>>> split = datasets.load_dataset("mit-talking", split="train")      # doctest: +SKIP
>>> view = MITVideoDataset(split, num_frames=16, stride=1, height=384, width=640)
>>> loader = torch.utils.data.DataLoader(view, batch_size=4, collate_fn=collate_mit_batch, num_workers=2)

Each item samples ``F = num_frames`` frames ``start + stride * k`` (``start`` random by default, see
``window``) plus one reference frame, decodes only those frames, resizes them to cover ``height x width``
and crops the centre (:class:`~mit_dataset.geometry.FrameTransform`); keypoints and boxes go through the
very same transform, so pose maps, face masks and pixels stay aligned. ``P`` is the clip's number of
persons (2-4), in the row's order.

Cost does not depend on the clip length: the row is read as Arrow (:mod:`mit_dataset.row_arrays`, no
Python lists of per-frame arrays), frames are decoded from the embedded mp4 in place with a seek
(:mod:`mit_dataset.frame_decoder`, resized by FFmpeg while converting from YUV), the audio span is read
with a seek, and the big output tensors reuse memory (:mod:`mit_dataset.buffer_pool`).
``benchmarks/bench_data.py`` measures it against plain PyAV decoding of the same frames.

Keys of an item (all tensors float32 unless stated):

=========================  ================================  ==================================================
key                        shape                             meaning
=========================  ================================  ==================================================
``pixel_values``           (F, 3, H, W)                      RGB frames in [-1, 1]
``reference_pixel_values`` (3, H, W)                         the reference frame in [-1, 1]
``pose_maps``              (P, F, 3, H, W)                   each person's DWPose-like map in [0, 1]
                                                             (``pose_dtype``; uint8 0..255 if asked)
``reference_pose_maps``    (P, 3, H, W)                      each person's map on the reference frame
``face_masks``             {f: (P, F, ceil(H/f), ceil(W/f))}  1 on cells of the f-times downsampled grid that
                                                             overlap the person's (transformed) face box;
                                                             one entry per ``mask_factors`` value ``f`` (int)
``speaking_scores``        (P, F)                            model input in [-1, 1]; > 0 means speaking
``keypoints``              (P, F, 59, 3)                     x, y in target pixels (continuous coordinates,
                                                             see :mod:`mit_dataset.geometry`), score
``reference_keypoints``    (P, 59, 3)                        the same on the reference frame
``face_boxes``             (P, F, 4)                         xyxy face boxes in target pixels (not clipped)
``boxes``                  (P, F, 4)                         xyxy person boxes in target pixels (not clipped)
``audio``                  (S,)                              mono 16 kHz samples of the window's time span
                                                             ``[start / fps, (start + F * stride) / fps)``,
                                                             ``S = round(F * stride / fps * 16000)``
``audio_windows``          (F, L)                            per frame, ``L = round(audio_window_s * 16000)``
                                                             samples centred on the frame's centre time
                                                             ``(i + 0.5) / fps``; zeros outside the clip
``audio_context``          (S_c,)                            mono 16 kHz samples of frames
                                                             ``[i0 - C, i1 + 1 + C)`` (``i0``, ``i1``: first and
                                                             last sampled frame, ``C = audio_context_frames``);
                                                             zeros outside the clip. wav2vec2's input, built
                                                             as the pipeline builds it
``frame_indices``          (F,) int64                        clip frame index of each sampled frame
``reference_index``        () int64                          clip frame index of the reference frame
``clip_id``                str
``person_ids``             list[str] of length P
``fps``                    float
=========================  ================================  ==================================================

:func:`collate_mit_batch` stacks items into ``(B, ...)`` tensors, pads every per-person tensor to
``Pmax`` persons with zeros (a padded person has score-0 keypoints, empty masks, black pose maps and
speaking score 0), and adds ``person_mask`` (B, Pmax) bool; ``clip_id`` and ``person_ids`` become lists.

Randomness (window start, reference frame) comes from ``numpy.random.default_rng((seed, epoch, index))``:
items are reproducible, differ between epochs (:meth:`MITVideoDataset.set_epoch`) and do not depend on
DataLoader worker assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .buffer_pool import BufferPool, empty_tensor
from .features import SAMPLING_RATE
from .frame_decoder import decode_frames
from .geometry import FrameTransform, box_masks
from .pose_render import render_pose_tensor
from .row_arrays import ROW_COLUMNS, ClipArrays, clip_arrays, open_video, read_audio_span
from .timeseries import frame_to_sample

REFERENCE_MODES = ("random", "first")
WINDOW_MODES = ("random", "first", "center")
#: Per-person keys (first dimension P) that :func:`collate_mit_batch` pads.
PERSON_KEYS = (
    "pose_maps",
    "reference_pose_maps",
    "speaking_scores",
    "keypoints",
    "reference_keypoints",
    "face_boxes",
    "boxes",
)


class ClipTooShortError(ValueError):
    """The clip has fewer frames than one window needs."""


@dataclass(frozen=True)
class WindowPlan:
    """Which frames an item uses: ``frame_indices`` (F,) and ``reference_index``."""

    frame_indices: np.ndarray
    reference_index: int


class MITVideoDataset(Dataset):
    """Fixed-length, pose- and audio-aligned windows over a loaded MIT split (see the module docstring).

    Args:
        split_dataset: a ``datasets.Dataset`` with the MIT columns (``load_dataset(DIR, split=...)``);
            shuffled/selected/filtered datasets are fine. Streaming datasets are not (no random access).
        num_frames: frames per window (F).
        stride: step between sampled frames (1 = consecutive frames).
        height, width: output size; frames are scaled to cover it and centre-cropped.
        mask_factors: downsampling factors of the face masks (8, 16, 32, 64 = the latent pyramid of SD).
        audio_window_s: length of each per-frame audio window (default 0.2 s: +-2 frames at 25 fps,
            the wav2vec2 context window of Hallo2).
        audio_context_frames: frames of audio context ``C`` in ``audio_context`` on each side of the sampled
            frames (0: the frames' own span). CovOG training passes
            :func:`covog_diffusers.models.audio.audio_context_frames`, what the pipeline gives wav2vec2.
        reference: ``"random"`` (any frame of the clip) or ``"first"`` (frame 0 of the clip).
        window: where the window starts: ``"random"``, ``"first"`` (frame 0) or ``"center"``.
        seed: base seed of the per-item random generator.
        min_score: keypoints below this score are not drawn.
        line_width: pose stroke width in pixels (default: scaled with the output size).
        pose_dtype: dtype of ``pose_maps`` / ``reference_pose_maps``: float ([0, 1]) or ``torch.uint8``.
        drop_short: leave out clips shorter than a window (otherwise such an item raises
            :class:`ClipTooShortError`).
        decode_threads: FFmpeg threads per video decoder (keep 1 with several DataLoader workers).
        reuse_buffers: recycle the memory of the large tensors (frames, pose maps) once every tensor of an
            earlier item built on it has been dropped (:mod:`mit_dataset.buffer_pool`); items you still
            hold are never touched. Saves the kernel's page-fault and zeroing work on every item.
    """

    def __init__(
        self,
        split_dataset,
        num_frames: int = 16,
        stride: int = 1,
        height: int = 384,
        width: int = 640,
        mask_factors: tuple[int, ...] = (8, 16, 32, 64),
        audio_window_s: float = 0.2,
        audio_context_frames: int = 0,
        reference: str = "random",
        window: str = "random",
        seed: int = 0,
        min_score: float = 0.3,
        line_width: int | None = None,
        pose_dtype: torch.dtype = torch.float32,
        drop_short: bool = False,
        decode_threads: int = 1,
        reuse_buffers: bool = True,
    ):
        import datasets

        if isinstance(split_dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            raise TypeError(
                f"expected one split (a datasets.Dataset), got a dict of splits {list(split_dataset.keys())}; "
                "pass e.g. dataset['train']"
            )
        if not isinstance(split_dataset, datasets.Dataset):
            raise TypeError(
                f"expected a map-style datasets.Dataset, got {type(split_dataset).__name__} "
                "(streaming datasets have no random access: load without streaming=True)"
            )
        missing = [name for name in ROW_COLUMNS if name not in split_dataset.column_names]
        if missing:
            raise ValueError(f"the dataset has no column(s) {missing}; expected the MIT schema")
        _check_positive(num_frames=num_frames, stride=stride, height=height, width=width)
        for factor in mask_factors:
            _check_positive(mask_factor=factor)
        if audio_window_s <= 0:
            raise ValueError(f"audio_window_s must be positive, got {audio_window_s}")
        if int(audio_context_frames) != audio_context_frames or audio_context_frames < 0:
            raise ValueError(
                f"audio_context_frames must be a non-negative integer, got {audio_context_frames!r}"
            )
        if reference not in REFERENCE_MODES:
            raise ValueError(f"reference must be one of {REFERENCE_MODES}, got {reference!r}")
        if window not in WINDOW_MODES:
            raise ValueError(f"window must be one of {WINDOW_MODES}, got {window!r}")
        self.dataset = split_dataset
        self.num_frames, self.stride = int(num_frames), int(stride)
        self.height, self.width = int(height), int(width)
        self.mask_factors = tuple(int(f) for f in mask_factors)
        self.audio_window_s = float(audio_window_s)
        self.audio_context_frames = int(audio_context_frames)
        self.reference, self.window = reference, window
        self.seed, self.epoch = int(seed), 0
        self.min_score, self.line_width = float(min_score), line_width
        self.pose_dtype = pose_dtype
        self.decode_threads = int(decode_threads)
        self._pool = BufferPool(max_per_key=2 if reuse_buffers else 0)
        self._arrow = split_dataset.with_format("arrow", columns=list(ROW_COLUMNS))
        self._indices = np.arange(len(split_dataset))
        if drop_short:
            lengths = np.asarray(split_dataset.with_format("numpy", columns=["num_frames"])["num_frames"])
            self._indices = np.nonzero(lengths >= self.span)[0]
            if not len(self._indices):
                raise ClipTooShortError(
                    f"no clip has the {self.span} frames a window needs (num_frames={num_frames}, stride={stride}); "
                    f"the longest has {int(lengths.max()) if len(lengths) else 0}"
                )

    @property
    def span(self) -> int:
        """Frames of the clip one window covers: ``(num_frames - 1) * stride + 1``."""
        return (self.num_frames - 1) * self.stride + 1

    def __len__(self) -> int:
        return len(self._indices)

    def set_epoch(self, epoch: int) -> None:
        """Draw different windows/reference frames in each epoch (call before iterating)."""
        self.epoch = int(epoch)

    def plan(self, index: int, num_clip_frames: int, clip_id: str = "?") -> WindowPlan:
        """The frames item ``index`` uses for a clip of ``num_clip_frames`` frames."""
        if num_clip_frames < self.span:
            raise ClipTooShortError(
                f"clip {clip_id!r} has {num_clip_frames} frames, but num_frames={self.num_frames} at "
                f"stride={self.stride} needs {self.span}; use a shorter window, or drop_short=True"
            )
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        last_start = num_clip_frames - self.span
        start = {"random": lambda: int(rng.integers(0, last_start + 1)), "first": lambda: 0,
                 "center": lambda: last_start // 2}[self.window]()  # fmt: skip
        reference = int(rng.integers(0, num_clip_frames)) if self.reference == "random" else 0
        return WindowPlan(start + self.stride * np.arange(self.num_frames, dtype=np.int64), reference)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = int(index) % len(self)
        row_index = int(self._indices[index])
        clip = clip_arrays(self._arrow[row_index])
        return self.load(clip, self.plan(index, clip.num_frames, clip.clip_id), row_index=row_index)

    def load_window(self, index: int, start: int, reference_index: int | None = None) -> dict:
        """Item ``index`` with an explicit window start (and reference frame, default: the first window frame)."""
        row_index = int(self._indices[index])
        clip = clip_arrays(self._arrow[row_index])
        frames = start + self.stride * np.arange(self.num_frames, dtype=np.int64)
        if start < 0 or frames[-1] >= clip.num_frames:
            if clip.num_frames < self.span:
                self.plan(index, clip.num_frames, clip.clip_id)  # raises ClipTooShortError
            raise ValueError(
                f"clip {clip.clip_id!r}: a window at start={start} needs frames up to {frames[-1]}, "
                f"the clip has {clip.num_frames}"
            )
        reference = int(frames[0]) if reference_index is None else int(reference_index)
        if not 0 <= reference < clip.num_frames:
            raise ValueError(
                f"clip {clip.clip_id!r}: reference_index {reference} outside 0..{clip.num_frames - 1}"
            )
        return self.load(clip, WindowPlan(frames, reference), row_index=row_index)

    def load(self, clip: ClipArrays, plan: WindowPlan, row_index: int | None = None) -> dict:
        """Build the item for ``clip`` and a :class:`WindowPlan` (decodes only the planned frames)."""
        frames, reference = plan.frame_indices, plan.reference_index
        transform = FrameTransform.cover(clip.height, clip.width, self.height, self.width)
        pixels = self._decode(clip, transform, frames, reference, row_index)

        # Per-person arrays at the sampled frames (+ the reference frame last), in target pixels.
        needed = np.append(frames, reference)
        keypoints = transform.apply_points(clip.keypoints[:, needed])  # (P, F + 1, 59, 3)
        face_boxes = transform.apply_boxes(clip.face_boxes[:, frames])
        boxes = transform.apply_boxes(clip.boxes[:, frames])
        pose = render_pose_tensor(
            keypoints,
            self.height,
            self.width,
            self.min_score,
            self.line_width,
            dtype=self.pose_dtype,
            pool=self._pool,
        )  # (P, F + 1, 3, H, W)
        audio, windows, context = self._audio(clip, frames, row_index)
        return {
            "pixel_values": pixels[:-1],
            "reference_pixel_values": pixels[-1],
            "pose_maps": pose[:, :-1],
            "reference_pose_maps": pose[:, -1],
            "face_masks": {
                factor: torch.from_numpy(box_masks(face_boxes, self.height, self.width, factor))
                for factor in self.mask_factors
            },
            "speaking_scores": torch.from_numpy(np.array(clip.speaking_score[:, frames], np.float32)),
            "keypoints": torch.from_numpy(np.ascontiguousarray(keypoints[:, :-1])),
            "reference_keypoints": torch.from_numpy(np.ascontiguousarray(keypoints[:, -1])),
            "face_boxes": torch.from_numpy(face_boxes),
            "boxes": torch.from_numpy(boxes),
            "audio": torch.from_numpy(audio),
            "audio_windows": torch.from_numpy(windows),
            "audio_context": torch.from_numpy(context),
            "frame_indices": torch.from_numpy(np.array(frames, np.int64)),
            "reference_index": torch.tensor(reference, dtype=torch.int64),
            "clip_id": clip.clip_id,
            "person_ids": list(clip.person_ids),
            "fps": clip.fps,
        }

    def _decode(self, clip, transform, frames, reference, row_index) -> torch.Tensor:
        """(F + 1, 3, H, W) float in [-1, 1]: the window frames then the reference frame."""
        indices = np.append(frames, reference)
        out = self._pool.empty((len(indices), 3, self.height, self.width), np.float32)
        if clip.video_bytes is not None:
            decode_frames(
                clip.video_bytes.numpy(), indices, transform, out, name=f"clip {clip.clip_id!r}",
                threads=self.decode_threads,
            )  # fmt: skip
            return torch.from_numpy(out)
        # Media stored as paths: the datasets decoder (resolves relative and hf:// paths), resize in torch.
        unique, inverse = np.unique(indices, return_inverse=True)
        decoded = open_video(clip, self.dataset, row_index).get_frames_at(unique.tolist()).data
        decoded = transform.apply_frames(decoded)[torch.from_numpy(inverse)]
        torch.mul(decoded, 2.0 / 255.0, out=torch.from_numpy(out)).sub_(1.0)
        return torch.from_numpy(out)

    def _audio(self, clip: ClipArrays, frames: np.ndarray, row_index) -> tuple[np.ndarray, ...]:
        """The window's audio (S,), the per-frame windows (F, L) and the audio with context (S_c,), from one
        ranged decode."""
        rate, fps = SAMPLING_RATE, clip.fps
        span_start = frame_to_sample(frames[0], fps, rate)
        span_length = round(self.num_frames * self.stride / fps * rate)
        window_length = round(self.audio_window_s * rate)
        centres = np.round((frames + 0.5) / fps * rate).astype(np.int64)
        window_starts = centres - window_length // 2
        context_start = frame_to_sample(frames[0] - self.audio_context_frames, fps, rate)
        context_end = frame_to_sample(frames[-1] + 1 + self.audio_context_frames, fps, rate)
        lo = min(span_start, int(window_starts[0]), context_start)
        hi = max(span_start + span_length, int(window_starts[-1]) + window_length, context_end)
        samples = read_audio_span(clip, lo, hi, self.dataset, row_index, rate)
        audio = samples[span_start - lo : span_start - lo + span_length].copy()
        gather = (window_starts - lo)[:, None] + np.arange(window_length)
        context = samples[context_start - lo : context_end - lo].copy()
        context[max(0, frame_to_sample(clip.num_frames, fps, rate) - context_start) :] = 0  # past the clip
        return audio, samples[gather], context


def _check_positive(**values) -> None:
    for name, value in values.items():
        if int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def collate_mit_batch(items: list[dict]) -> dict:
    """Batch :class:`MITVideoDataset` items: stack, pad persons to the batch maximum, add ``person_mask``.

    Every per-person tensor ``(P, ...)`` becomes ``(B, Pmax, ...)`` padded with zeros, ``face_masks``
    becomes ``{factor: (B, Pmax, F, h, w)}``, ``person_mask`` is ``(B, Pmax)`` bool (True = real person),
    ``audio`` and ``audio_context`` are zero-padded to the longest item (clips at other frame rates) with
    ``audio_lengths`` / ``audio_context_lengths`` (B,), and ``clip_id`` / ``person_ids`` / ``fps`` become
    lists.
    """
    if not items:
        raise ValueError("collate_mit_batch needs at least one item")
    for key in ("pixel_values", "audio_windows"):
        shapes = {tuple(item[key].shape) for item in items}
        if len(shapes) > 1:
            raise ValueError(f"items disagree on the shape of {key!r}: {sorted(shapes)}")
    counts = [item["speaking_scores"].shape[0] for item in items]
    pmax = max(counts)
    batch: dict = {}
    for key in PERSON_KEYS:
        batch[key] = _pad_persons([item[key] for item in items], pmax)
    batch["face_masks"] = {
        factor: _pad_persons([item["face_masks"][factor] for item in items], pmax)
        for factor in items[0]["face_masks"]
    }
    batch["person_mask"] = torch.arange(pmax)[None, :] < torch.tensor(counts)[:, None]
    for key in (
        "pixel_values",
        "reference_pixel_values",
        "audio_windows",
        "frame_indices",
        "reference_index",
    ):
        batch[key] = _stack([item[key] for item in items])
    for key in ("audio", "audio_context"):
        lengths = [item[key].shape[0] for item in items]
        audio = torch.zeros((len(items), max(lengths)), dtype=items[0][key].dtype)
        for row, item in enumerate(items):
            audio[row, : lengths[row]] = item[key]
        batch[key], batch[f"{key}_lengths"] = audio, torch.tensor(lengths, dtype=torch.int64)
    for key in ("clip_id", "person_ids", "fps"):
        batch[key] = [item[key] for item in items]
    return batch


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    out = empty_tensor((len(tensors), *tensors[0].shape), tensors[0].dtype)
    for row, tensor in enumerate(tensors):
        out[row].copy_(tensor)
    return out


def _pad_persons(tensors: list[torch.Tensor], pmax: int) -> torch.Tensor:
    tail = tensors[0].shape[1:]
    for tensor in tensors:
        if tensor.shape[1:] != tail:
            raise ValueError(
                f"items disagree on a per-person shape: {tuple(tensor.shape[1:])} vs {tuple(tail)}"
            )
    out = empty_tensor((len(tensors), pmax, *tail), tensors[0].dtype)
    for row, tensor in enumerate(tensors):
        count = tensor.shape[0]
        out[row, :count].copy_(tensor)
        out[row, count:].zero_()
    return out
