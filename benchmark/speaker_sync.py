"""Per-speaker audio-visual interaction score with no pretrained weights ("speaker sync").

Existing lip-sync metrics (SyncNet Sync-C/D) score every face against the *mixed* audio; in a conversation
only the current speaker should move their lips. This metric asks, per person: does the mouth move when this
person speaks, and stay still when they listen?

For each person ``p`` and frame ``t`` (``F`` frames):

1. Mouth box: the lower-middle part of the face box -- rows ``[0.5, 0.85]`` of its height and columns
   ``[0.25, 0.75]`` of its width (``MOUTH_REGION``; it holds the mouth both for tight face boxes and for the
   enlarged head boxes of MIT annotations, where the face spans about the middle 60 %); boxes are given in the
   pixels of the video scored, or in those of an ``annotation_size = (width, height)`` frame, mapped to the
   video by the project's geometry (:meth:`FrameTransform.cover`: the video is that frame scaled to cover
   and centre-cropped, as the benchmark's evaluation size makes it; a plain rescale at equal aspect ratios).
2. Motion energy ``e[p, t]``: mean absolute difference of luma (0..1) between frames ``t`` and ``t - 1`` inside
   the mouth box of frame ``t``, both sampled with the same box at ``CROP_SIZE`` (bilinear);
   ``e[p, 0] = e[p, 1]``. Then a centred moving average over ``smooth_frames`` frames (mouth motion alternates
   with still open/closed poses). Subtracting the motion of the upper face (to discount nodding) was tried
   and lowered the ground-truth score on the synthetic set (eye and hair motion), so it is not done.
3. Speaker sync of ``p``: the Pearson correlation over frames between ``e[p]`` and the speaking score ``s[p]``
   (in [-1, 1], > 0 speaking). Defined only for persons who both speak (some ``s > 0``) and listen (some
   ``s < 0``) in the clip -- otherwise the correlation would follow score noise, not turn-taking -- and when
   the energy is not constant; undefined values are NaN and left out of means. The video's value is the mean
   over persons; a set's value the mean over videos.
4. False-talking rate: the fraction of listening frames (``s < 0``, all persons) whose energy exceeds a
   threshold calibrated on the same video's speaking frames (``s > 0``): the ``threshold_quantile`` (0.25)
   quantile of their energies, i.e. a level three quarters of real speaking frames exceed. NaN when the video
   has no speaking or no listening frame.

Public API (stable; used by ``benchmark/metrics/speaker_sync`` and the ``mit-bench`` runner):

- ``mouth_motion_energy(video, face_boxes, ...) -> np.ndarray (P, F)``.
- ``speaker_sync_scores(energy, speaking_scores, ...) -> dict`` (the statistics above from energies).
- ``score_video(video, face_boxes, speaking_scores, annotation_size=None, ...) -> dict``: ``{"speaker_sync",
  "per_person", "false_talking_rate", "threshold", "num_listening_frames", "num_speaking_frames"}``.
- ``clip_speaker_sync(prediction, row) -> float | None``: the speaker-sync value of a generated video (path or
  ``(F, H, W, 3)`` array, at the row's size or the evaluation size) against an MIT dataset row
  (``persons[*].face_boxes`` / ``speaking_score`` in the row's ``width x height`` pixels); None when no
  person's value is defined.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.video_loading import (
    VideoInput,
    check_frame_counts,
    describe,
    iter_frame_chunks,
    num_video_frames,
)
from mit_dataset.geometry import FrameTransform
from mit_dataset.timeseries import centred_moving_average

#: Mouth band as (top, bottom, left, right) fractions of the face box.
MOUTH_REGION = (0.5, 0.85, 0.25, 0.75)
#: (height, width) at which each region is resampled before differencing.
CROP_SIZE = (16, 24)
LUMA_BT601 = (0.299, 0.587, 0.114)


def _as_float_array(values, name: str, shape_tail: tuple) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 + len(shape_tail) + 1 or tuple(array.shape[2:]) != shape_tail:
        raise ValueError(
            f"{name} must have shape (P, F{''.join(f', {d}' for d in shape_tail)}), got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array


def region_boxes(face_boxes: np.ndarray, region: Sequence[float]) -> np.ndarray:
    """Sub-boxes ``(..., 4)`` xyxy of face boxes: ``region`` = (top, bottom, left, right) fractions."""
    top, bottom, left, right = region
    x1, y1, x2, y2 = np.moveaxis(np.asarray(face_boxes, np.float64), -1, 0)
    w, h = x2 - x1, y2 - y1
    return np.stack([x1 + left * w, y1 + top * h, x1 + right * w, y1 + bottom * h], axis=-1)


def _sampling_grid(boxes: torch.Tensor, height: int, width: int, size: tuple[int, int]) -> torch.Tensor:
    """``grid_sample`` grids ``(N, h, w, 2)`` covering xyxy pixel boxes ``(N, 4)`` (align_corners=False)."""
    h, w = size
    ty = (torch.arange(h, dtype=boxes.dtype, device=boxes.device) + 0.5) / h
    tx = (torch.arange(w, dtype=boxes.dtype, device=boxes.device) + 0.5) / w
    x = boxes[:, 0, None] + tx[None] * (boxes[:, 2] - boxes[:, 0])[:, None]  # (N, w) pixel coordinates
    y = boxes[:, 1, None] + ty[None] * (boxes[:, 3] - boxes[:, 1])[:, None]  # (N, h)
    gx = (2 * x / width - 1)[:, None, :].expand(-1, h, -1)
    gy = (2 * y / height - 1)[:, :, None].expand(-1, -1, w)
    return torch.stack([gx, gy], dim=-1)


@torch.no_grad()
def _region_motion(luma_prev, luma_cur, boxes, size) -> torch.Tensor:
    """Mean |cur - prev| inside each frame's box (sampled with the same box in both frames): ``(N,)``."""
    height, width = luma_cur.shape[-2:]
    grid = _sampling_grid(boxes, height, width, size)
    cur = F.grid_sample(luma_cur, grid, mode="bilinear", padding_mode="border", align_corners=False)
    prev = F.grid_sample(luma_prev, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (cur - prev).abs().flatten(1).mean(1)


@torch.no_grad()
def mouth_motion_energy(
    video: VideoInput,
    face_boxes,
    annotation_size: tuple[float, float] | None = None,
    chunk_frames: int = 64,
    device=None,
    truncate: bool = False,
) -> np.ndarray:
    """Unsmoothed mouth motion energy ``(P, F)`` of a video (path or ``(F, H, W, 3)`` array).

    ``face_boxes``: ``(P, F, 4)`` xyxy in video pixels, or in pixels of an ``annotation_size = (width, height)``
    frame (mapped by the cover transform to the video's size). The video must have ``F`` decoded frames, the rule psnr/ssim apply
    (:func:`~benchmark.video_loading.check_frame_counts`); with ``truncate`` the common prefix is scored.
    """
    boxes = _as_float_array(face_boxes, "face_boxes", (4,))
    num_frames = check_frame_counts(
        f"prediction {describe(video)}", num_video_frames(video), "its annotations (face_boxes)",
        boxes.shape[1], truncate,
    )  # fmt: skip
    boxes = boxes[:, :num_frames]
    num_persons = boxes.shape[0]
    if num_frames < 2:
        raise ValueError(f"speaker sync needs at least 2 frames, got {num_frames}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    luma_weights = torch.tensor(LUMA_BT601, device=device).view(1, 3, 1, 1)
    energy = torch.zeros(num_persons, num_frames, device=device)
    previous = None  # last luma frame of the previous chunk
    start = 0
    for chunk in iter_frame_chunks(video, chunk_frames, num_frames):
        if previous is None:
            if annotation_size is not None:
                transform = FrameTransform.cover(annotation_size[1], annotation_size[0], *chunk.shape[1:3])
                boxes = transform.apply_boxes(boxes).astype(np.float64)
            mouths = torch.from_numpy(region_boxes(boxes, MOUTH_REGION)).float().to(device)  # (P, F, 4)
        frames = torch.from_numpy(np.ascontiguousarray(chunk)).to(device)
        scale = 255.0 if frames.dtype == torch.uint8 else 1.0
        luma = (frames.permute(0, 3, 1, 2).float() / scale * luma_weights).sum(
            1, keepdim=True
        )  # (n, 1, H, W)
        sequence = luma if previous is None else torch.cat([previous, luma])
        first = start if previous is None else start - 1  # frame index of sequence[0]
        prev, cur = sequence[:-1], sequence[1:]  # pairs (t - 1, t) for t = first + 1 ...
        indices = torch.arange(first + 1, first + 1 + len(cur), device=device)
        for p in range(num_persons):
            energy[p, indices] = _region_motion(prev, cur, mouths[p, indices], CROP_SIZE)
        previous = luma[-1:]
        start += len(chunk)
    energy = energy.cpu().numpy().astype(np.float64)
    energy[:, 0] = energy[:, 1]
    return energy


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 1e-12 else float("nan")


def speaker_sync_scores(
    energy, speaking_scores, smooth_frames: int = 5, threshold_quantile: float = 0.25
) -> dict:
    """The metric's statistics from mouth motion energies ``(P, F)`` and speaking scores ``(P, F)``."""
    energy = centred_moving_average(energy, smooth_frames)
    scores = _as_float_array(speaking_scores, "speaking_scores", ())
    if scores.shape != energy.shape:
        raise ValueError(f"speaking_scores {scores.shape} and face_boxes {energy.shape[:2]} (P, F) differ")
    per_person = [
        _pearson(e, s) if (s > 0).any() and (s < 0).any() else float("nan") for e, s in zip(energy, scores)
    ]
    defined = [v for v in per_person if np.isfinite(v)]
    speaking, listening = energy[scores > 0], energy[scores < 0]
    threshold = float(np.quantile(speaking, threshold_quantile)) if speaking.size else float("nan")
    false_talking = (
        float((listening > threshold).mean()) if speaking.size and listening.size else float("nan")
    )
    return {
        "speaker_sync": float(np.mean(defined)) if defined else float("nan"),
        "per_person": per_person,
        "false_talking_rate": false_talking,
        "threshold": threshold,
        "num_speaking_frames": int(speaking.size),
        "num_listening_frames": int(listening.size),
    }


def score_video(
    video: VideoInput,
    face_boxes,
    speaking_scores,
    annotation_size: tuple[float, float] | None = None,
    smooth_frames: int = 5,
    threshold_quantile: float = 0.25,
    device=None,
    truncate: bool = False,
) -> dict:
    """Speaker sync, per-person correlations and false-talking rate of one video (see the module docstring).
    A video whose frame count differs from the annotations' is an error unless ``truncate``."""
    energy = mouth_motion_energy(
        video, face_boxes, annotation_size=annotation_size, device=device, truncate=truncate
    )
    scores = _as_float_array(speaking_scores, "speaking_scores", ())[:, : energy.shape[1]]
    return speaker_sync_scores(energy, scores, smooth_frames, threshold_quantile)


def clip_speaker_sync(prediction: VideoInput, row: dict, **kwargs) -> float | None:
    """Speaker sync of a generated video against an MIT row; boxes are mapped from the row's size to the
    prediction's by the cover transform. None when no person's correlation is defined."""
    persons = row["persons"]
    face_boxes = np.stack([np.asarray(p["face_boxes"], np.float64) for p in persons])
    scores = np.stack([np.asarray(p["speaking_score"], np.float64) for p in persons])
    size = (int(row["width"]), int(row["height"]))
    value = score_video(prediction, face_boxes, scores, annotation_size=size, **kwargs)["speaker_sync"]
    return value if np.isfinite(value) else None
