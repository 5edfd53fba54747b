"""VBench-style temporal consistency of a video in the feature space of a user-supplied image model.

VBench's *subject consistency* uses DINO ViT-B/16 features and its *background consistency* CLIP ViT-B/32
image features; both score a video as the mean over frames t >= 1 of

    1/2 [max(0, cos(f_t, f_{t-1})) + max(0, cos(f_t, f_0))]

(similarity to the previous frame and to the first one). No weights are downloaded: the model is a local
``transformers`` folder the user gives (e.g. a saved ``facebook/dino-vitb16`` for subject consistency, a saved
``openai/clip-vit-base-patch32`` for background consistency), preprocessed by the folder's own image processor.

Public API:

- ``consistency_from_features(features) -> float``: the formula above for ``(F, D)`` features.
- ``FrameFeatureExtractor(model_path, device=None)``: ``__call__(frames (N, H, W, 3) uint8) -> (N, D)``.
  Features: ``get_image_features`` for full CLIP-like models, ``image_embeds`` for vision models with a
  projection, otherwise the final-layer CLS token (``last_hidden_state[:, 0]``, what DINO's hub model returns).
- ``video_consistency(video, extractor, frame_stride=1, batch_size=16) -> float`` for a path or array.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoImageProcessor, AutoModel

from benchmark.video_loading import VideoInput, describe, iter_frame_chunks


def consistency_from_features(features) -> float:
    """Mean over t >= 1 of ``(max(0, cos(f_t, f_{t-1})) + max(0, cos(f_t, f_0))) / 2`` for ``(F, D)``."""
    features = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(
            f"need (F >= 2, D) features for a consistency score, got shape {tuple(features.shape)}"
        )
    unit = torch.nn.functional.normalize(features, dim=1)
    to_previous = (unit[1:] * unit[:-1]).sum(1).clamp_min(0)
    to_first = (unit[1:] @ unit[0]).clamp_min(0)
    return float(((to_previous + to_first) / 2).mean())


class FrameFeatureExtractor:
    """Per-frame features from a local ``transformers`` image model folder (model + image processor)."""

    def __init__(self, model_path: str | os.PathLike, device=None):
        if not os.path.isdir(model_path):
            raise FileNotFoundError(
                f"model folder {str(model_path)!r} does not exist: save the feature model locally first, e.g. "
                "facebook/dino-vitb16 (subject consistency) or openai/clip-vit-base-patch32 (background "
                "consistency) with save_pretrained, and pass that folder"
            )
        config = AutoConfig.from_pretrained(model_path)
        architecture = (config.architectures or [None])[0]
        model_class = getattr(transformers, architecture, None) if architecture else None
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = (model_class or AutoModel).from_pretrained(model_path).eval().to(self.device)
        self.processor = AutoImageProcessor.from_pretrained(model_path)
        self.name = f"{os.path.basename(os.path.normpath(model_path))} ({type(self.model).__name__})"

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        pixels = self.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(self.device)
        if hasattr(self.model, "get_image_features"):
            output = self.model.get_image_features(pixel_values=pixels)
            return output if isinstance(output, torch.Tensor) else output.pooler_output
        output = self.model(pixel_values=pixels)
        if getattr(output, "image_embeds", None) is not None:
            return output.image_embeds
        return output.last_hidden_state[:, 0]


def video_consistency(
    video: VideoInput, extractor: FrameFeatureExtractor, frame_stride: int = 1, batch_size: int = 16
) -> float:
    """Consistency score of one video (every ``frame_stride``-th frame)."""
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    features = []
    # Chunks are a multiple of the stride long, so chunk[::stride] keeps global frames 0, s, 2s, ...
    for chunk in iter_frame_chunks(video, batch_size * frame_stride):
        features.append(extractor(chunk[::frame_stride]).double().cpu())
    features = torch.cat(features) if features else torch.zeros(0, 0)
    if len(features) < 2:
        raise ValueError(f"video {describe(video)} has fewer than 2 frames at stride {frame_stride}")
    return consistency_from_features(features)
