"""Resize-to-cover and centre-crop of frames, and the *same* transform applied to keypoints and boxes.

Coordinates are continuous image coordinates: pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``,
so a point at ``(x, y)`` lies in pixel ``(floor(y), floor(x))`` and an xyxy box ``[x1, y1, x2, y2]`` covers
columns ``x1 .. x2`` (the convention of :func:`mit_dataset.masks.box_mask_rle`). A bilinear resize with
``align_corners=False`` (torch, PIL, FFmpeg's swscale) maps continuous coordinates by a plain multiplication
``x' = x * out / in``, so after a crop at integer offset ``ox`` a point moves to ``x * sx - ox``. Every
keypoint -> pixel mapping in the project (pose rendering, face masks, overlays) goes through
:class:`FrameTransform`, so frames, poses and masks stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional


@dataclass(frozen=True)
class FrameTransform:
    """Scale a ``(src_height, src_width)`` frame to ``(resized_height, resized_width)``, then crop the
    ``(height, width)`` window whose top-left corner is at ``(offset_y, offset_x)`` of the resized frame."""

    src_height: int
    src_width: int
    resized_height: int
    resized_width: int
    offset_y: int
    offset_x: int
    height: int
    width: int

    @classmethod
    def cover(cls, src_height: int, src_width: int, height: int, width: int) -> FrameTransform:
        """Scale to cover ``(height, width)`` keeping the aspect ratio, then crop the centre."""
        for name, value in (
            ("src_height", src_height),
            ("src_width", src_width),
            ("height", height),
            ("width", width),
        ):
            if int(value) <= 0:
                raise ValueError(f"{name} must be a positive number of pixels, got {value}")
        scale = max(height / src_height, width / src_width)
        # Round, but never below the target (float error must not make the crop larger than the frame).
        resized_height = max(height, round(src_height * scale))
        resized_width = max(width, round(src_width * scale))
        return cls(
            src_height=int(src_height),
            src_width=int(src_width),
            resized_height=resized_height,
            resized_width=resized_width,
            offset_y=(resized_height - height) // 2,
            offset_x=(resized_width - width) // 2,
            height=int(height),
            width=int(width),
        )

    @classmethod
    def fit(cls, src_height: int, src_width: int, max_width: int, even: bool = True) -> FrameTransform:
        """Downscale (never upscale) to at most ``max_width`` keeping the aspect ratio, with no crop;
        ``even`` rounds both sides down to even numbers (H.264) by cropping at most one pixel."""
        scale = min(1.0, max_width / src_width)
        width = max(2, round(src_width * scale))
        height = max(2, round(src_height * scale))
        out_width, out_height = (width - width % 2, height - height % 2) if even else (width, height)
        return cls(src_height, src_width, height, width, 0, 0, out_height, out_width)

    @property
    def scale_x(self) -> float:
        return self.resized_width / self.src_width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.src_height

    @property
    def is_identity(self) -> bool:
        return (self.resized_height, self.resized_width, self.offset_x, self.offset_y) == (
            self.src_height,
            self.src_width,
            0,
            0,
        ) and (self.height, self.width) == (self.src_height, self.src_width)

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2+)`` points (x, y, extra channels kept) into the output frame."""
        points = np.array(points, dtype=np.float32, copy=True)
        points[..., 0] = points[..., 0] * self.scale_x - self.offset_x
        points[..., 1] = points[..., 1] * self.scale_y - self.offset_y
        return points

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(..., 4)`` xyxy boxes into the output frame (not clipped; NaN boxes stay NaN)."""
        boxes = np.array(boxes, dtype=np.float32, copy=True)
        boxes[..., 0::2] = boxes[..., 0::2] * self.scale_x - self.offset_x
        boxes[..., 1::2] = boxes[..., 1::2] * self.scale_y - self.offset_y
        return boxes

    def crop(self, frames: torch.Tensor) -> torch.Tensor:
        """Crop already-resized ``(..., resized_height, resized_width)`` frames to the output window."""
        if tuple(frames.shape[-2:]) != (self.resized_height, self.resized_width):
            raise ValueError(
                f"expected frames resized to {(self.resized_height, self.resized_width)}, got {tuple(frames.shape[-2:])}"
            )
        return frames[
            ..., self.offset_y : self.offset_y + self.height, self.offset_x : self.offset_x + self.width
        ]

    def apply_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Resize (bilinear, antialiased) and crop ``(N, C, src_height, src_width)`` frames.

        uint8 input gives uint8 output, floating input keeps its dtype."""
        if tuple(frames.shape[-2:]) != (self.src_height, self.src_width):
            raise ValueError(
                f"expected frames of size {(self.src_height, self.src_width)}, got {tuple(frames.shape[-2:])}"
            )
        if (self.resized_height, self.resized_width) != (self.src_height, self.src_width):
            is_uint8 = frames.dtype == torch.uint8
            resized = functional.interpolate(
                frames.float() if is_uint8 else frames,
                size=(self.resized_height, self.resized_width),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            frames = resized.round_().clamp_(0, 255).to(torch.uint8) if is_uint8 else resized
        return self.crop(frames)


def resize_and_crop_keypoints(
    keypoints: np.ndarray, src_size: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """``(..., 59, 3)`` keypoints of a ``src_size = (height, width)`` frame mapped into the frame that
    :meth:`FrameTransform.cover` makes for ``size = (height, width)``; scores are kept."""
    return FrameTransform.cover(*src_size, *size).apply_points(keypoints)


def resize_and_crop_boxes(boxes: np.ndarray, src_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """``(..., 4)`` xyxy boxes mapped like :func:`resize_and_crop_keypoints` (not clipped)."""
    return FrameTransform.cover(*src_size, *size).apply_boxes(boxes)


def box_masks(boxes: np.ndarray, height: int, width: int, factor: int = 1) -> np.ndarray:
    """Binary masks ``(..., ceil(height / factor), ceil(width / factor))`` float32 of xyxy ``boxes`` given in
    ``(height, width)`` output pixels, at ``factor``-times downsampled resolution.

    A cell ``(i, j)`` covers pixels ``[j f, (j + 1) f) x [i f, (i + 1) f)`` and is 1 when it overlaps the
    box, so the mask covers the whole box at every factor. NaN or empty boxes give all-zero masks.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    mask_h, mask_w = -(-height // factor), -(-width // factor)
    valid = np.isfinite(boxes).all(-1) & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    safe = np.where(valid[..., None], boxes, 0.0) / factor
    x1 = np.floor(safe[..., 0])[..., None]
    y1 = np.floor(safe[..., 1])[..., None]
    x2 = np.ceil(safe[..., 2])[..., None]
    y2 = np.ceil(safe[..., 3])[..., None]
    cols = np.arange(mask_w, dtype=np.float32)
    rows = np.arange(mask_h, dtype=np.float32)
    in_x = (cols >= x1) & (cols < x2) & valid[..., None]
    in_y = (rows >= y1) & (rows < y2)
    return (in_y[..., :, None] & in_x[..., None, :]).astype(np.float32)
