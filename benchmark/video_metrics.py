"""Vectorised per-frame PSNR and SSIM in torch, equal to scikit-image's values (within 1e-4; tested).

Public API (stable; used by ``benchmark/metrics/psnr``, ``benchmark/metrics/ssim`` and the ``mit-bench`` runner):

- ``psnr_frames(predictions, references, data_range=None, compile=False) -> torch.Tensor (N,)`` float64, one
  value per frame.
- ``ssim_frames(predictions, references, data_range=None, convention="gaussian_rgb", compile=False)
  -> torch.Tensor (N,)`` (``compile=True``: ``torch.compile``'d, several times faster on CPU after a one-off
  compilation).
- ``score_video_pair(prediction, reference, metrics=("psnr", "ssim"), ...) -> dict[str, np.ndarray]``: per-frame
  values for two videos (paths or arrays), decoded once and streamed in chunks of ``chunk_frames``.

Frames are ``(N, H, W, 3)`` RGB arrays or tensors (numpy or torch, any device), uint8 or float.

Conventions (see REFERENCE.md "Metric conventions" and the metric cards):

- The data range is explicit: ``data_range`` if given, else 255 for uint8 input and 1.0 for float input (float
  input must then lie in [0, 1]). uint8 is cast to float before subtracting (no uint8 overflow).
- PSNR: ``10 log10(data_range^2 / MSE)`` per frame over all pixels and channels; ``inf`` for identical frames
  (as scikit-image). Videos are scored as the mean over frames, a set as the mean over videos.
- SSIM ``"gaussian_rgb"`` (default, the reference convention): Gaussian window sigma 1.5 truncated at 3.5 sigma
  (11 taps), population covariance, K1 = 0.01, K2 = 0.03, per RGB channel then averaged, border of 5 pixels
  excluded -- scikit-image ``structural_similarity(..., channel_axis=-1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=R)``.
- SSIM ``"grayscale_7x7"`` (what many talking-head papers reported): frames converted to luma
  ``0.299 R + 0.587 G + 0.114 B`` (BT.601, as OpenCV's RGB2GRAY, without rounding), 7x7 uniform window,
  sample covariance (N/(N-1)), border of 3 pixels excluded -- scikit-image's default ``structural_similarity``
  on the grayscale frames.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.video_loading import VideoInput, check_pair, describe, iter_frame_chunks, resize_frames

SSIM_CONVENTIONS = ("gaussian_rgb", "grayscale_7x7")
FRAME_METRICS = ("psnr", "ssim")
K1, K2 = 0.01, 0.03
GAUSSIAN_SIGMA, GAUSSIAN_TRUNCATE = 1.5, 3.5
LUMA_BT601 = (0.299, 0.587, 0.114)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to_tensor(frames, device, dtype) -> tuple[torch.Tensor, bool]:
    is_uint8 = frames.dtype == torch.uint8 if isinstance(frames, torch.Tensor) else frames.dtype == np.uint8
    tensor = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    return tensor.to(device=device, dtype=dtype), is_uint8


def _prepare(predictions, references, data_range, device, dtype=torch.float32, channels_first=True):
    """Validated tensors on ``device`` (cast to ``dtype`` unless it is None) and the explicit data range."""
    if tuple(predictions.shape) != tuple(references.shape):
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and references {tuple(references.shape)} differ"
        )
    if predictions.ndim != 4 or predictions.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(predictions.shape)}")
    device = (
        torch.device(device)
        if device is not None
        else (predictions.device if isinstance(predictions, torch.Tensor) else torch.device("cpu"))
    )
    x, x_uint8 = _to_tensor(predictions, device, dtype)
    y, y_uint8 = _to_tensor(references, device, dtype)
    if data_range is None:
        if x_uint8 != y_uint8:
            raise ValueError(
                "predictions and references have different dtypes (uint8 vs float): pass data_range"
            )
        data_range = 255.0 if x_uint8 else 1.0
        if not x_uint8 and (min(x.min(), y.min()) < 0 or max(x.max(), y.max()) > 1):
            raise ValueError("float frames must lie in [0, 1] unless data_range is given")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    if channels_first:  # (N, H, W, 3) -> (N, 3, H, W)
        x, y = x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)
    return x, y, float(data_range)


@torch.no_grad()
def psnr_frames(
    predictions, references, data_range: float | None = None, device=None, compile: bool = False
) -> torch.Tensor:
    """Per-frame PSNR in dB, float64 ``(N,)``. ``compile`` as for :func:`ssim_frames`.

    Differences and squares are exact in float32 for 8-bit frames; the per-frame sums use torch's pairwise
    summation (relative error ~1e-7, i.e. ~1e-6 dB).
    """
    x, y, data_range = _prepare(predictions, references, data_range, device, dtype=None, channels_first=False)
    squared_error_sums = _compiled(_squared_error_sums) if compile else _squared_error_sums
    mse = squared_error_sums(x, y) / x[0].numel()
    return 10.0 * torch.log10(data_range**2 / mse)


def _squared_error_sums(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).square_().flatten(1).sum(1, dtype=torch.float64)


@functools.cache
def _compiled(function):
    """``torch.compile``'d version of a module function, built once."""
    return torch.compile(function, dynamic=False)


def _gaussian_taps(sigma: float, truncate: float) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)  # scipy.ndimage.gaussian_filter's support
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _window(convention: str) -> tuple[torch.Tensor, float]:
    """1-D separable window taps and the covariance normalisation of a convention."""
    if convention == "gaussian_rgb":
        return _gaussian_taps(GAUSSIAN_SIGMA, GAUSSIAN_TRUNCATE), 1.0
    if convention == "grayscale_7x7":
        size = 7
        return torch.full((size,), 1.0 / size, dtype=torch.float64), size * size / (size * size - 1.0)
    raise ValueError(f"unknown SSIM convention {convention!r}, expected one of {SSIM_CONVENTIONS}")


@torch.no_grad()
def ssim_frames(
    predictions,
    references,
    data_range: float | None = None,
    convention: str = "gaussian_rgb",
    device=None,
    batch_frames: int | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Per-frame SSIM, float64 ``(N,)``; the convention is named in the module docstring.

    Frames are processed ``batch_frames`` at a time (default: 1 on CPU, where small working sets stay in
    cache, 16 on GPU). ``compile=True`` runs the per-batch computation through ``torch.compile``, which fuses
    the filter's shifted sums and the SSIM formula into a few loops: several times faster on CPU
    (``benchmarks/bench_metrics.py``), at the cost of a one-off compilation per frame size (tens of seconds;
    needs a C++ compiler on CPU). Values are the same either way.
    """
    taps, cov_norm = _window(convention)
    # Frames stay in their dtype here: the float conversion happens per batch, inside the (compiled) kernel.
    x, y, data_range = _prepare(predictions, references, data_range, device, dtype=None)
    if convention == "grayscale_7x7":
        luma = torch.tensor(LUMA_BT601, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        x, y = (x.float() * luma).sum(1, keepdim=True), (y.float() * luma).sum(1, keepdim=True)
    h, w = x.shape[-2:]
    if h < taps.numel() or w < taps.numel():
        raise ValueError(f"frames of {h}x{w} are smaller than the {taps.numel()}x{taps.numel()} SSIM window")
    taps = taps.to(device=x.device, dtype=torch.float32)
    step = batch_frames or (1 if x.device.type == "cpu" else 16)
    # Eager mode filters in place (fewer allocations); compiled code fuses out-of-place sums better.
    batch = _compiled(_ssim_batch) if compile else _ssim_batch
    weights = taps.tolist()
    return torch.cat(
        [
            batch(x[i : i + step], y[i : i + step], data_range, taps, weights, cov_norm, not compile)
            for i in range(0, len(x), step)
        ]
    )


def _filter_valid(
    stack: torch.Tensor, taps: torch.Tensor, weights: list[float], inplace: bool
) -> torch.Tensor:
    """Separable "valid" filtering of ``(B, C, H, W)`` maps with 1-D ``taps`` (``weights`` as floats) along H
    and W.

    "valid" filtering equals scikit-image's reflect-padded filter followed by its crop of (size - 1) / 2 pixels.
    On CPU a sum of shifted slices is several times faster than a grouped convolution; on GPU the
    convolution is.
    """
    size = taps.numel()
    if stack.device.type != "cpu":
        channels = stack.shape[1]
        stack = F.conv2d(stack, taps.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
        return F.conv2d(stack, taps.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)
    return _shifted_sum(_shifted_sum(stack, weights, -2, inplace), weights, -1, inplace)


def _shifted_sum(stack: torch.Tensor, weights: list[float], dim: int, inplace: bool) -> torch.Tensor:
    length = stack.shape[dim] - len(weights) + 1
    out = stack.narrow(dim, 0, length) * weights[0]
    for k in range(1, len(weights)):
        term = stack.narrow(dim, k, length)
        out = out.add_(term, alpha=weights[k]) if inplace else out + term * weights[k]
    return out


def _ssim_batch(x, y, data_range, taps, weights, cov_norm, inplace) -> torch.Tensor:
    n, c, h, w = x.shape
    # Work in units of the data range, centred: the filtered second moments then stay O(1) and float32 keeps
    # the variance terms (E[x^2] - E[x]^2) accurate. SSIM is invariant to this affine change once C1, C2
    # are expressed in the same units.
    x = (x.float() / data_range - 0.5).reshape(n * c, 1, h, w)
    y = (y.float() / data_range - 0.5).reshape(n * c, 1, h, w)
    stack = _filter_valid(
        torch.cat([x, y, x * x, y * y, x * y], dim=1), taps, weights, inplace
    )  # (B, 5, H', W')
    ux, uy, uxx, uyy, uxy = stack.unbind(1)
    # With the inputs shifted by -0.5 the true means are ux + 0.5, uy + 0.5, so
    #   2 mu_x mu_y + C1       = 2 ux uy + (ux + uy) + 0.5 + C1
    #   mu_x^2 + mu_y^2 + C1   = ux^2 + uy^2 + (ux + uy) + 0.5 + C1
    #   2 cov_xy + C2          = 2 cov_norm (uxy - ux uy) + C2
    #   var_x + var_y + C2     = cov_norm (uxx + uyy - ux^2 - uy^2) + C2
    c1, c2 = K1**2, K2**2
    uxuy, squares, means = ux * uy, ux * ux + uy * uy, ux + uy + (0.5 + c1)
    numerator = (2 * uxuy + means) * (2 * cov_norm * (uxy - uxuy) + c2)
    denominator = (squares + means) * (cov_norm * (uxx + uyy - squares) + c2)
    ssim_map = numerator / denominator
    return ssim_map.flatten(1).sum(1, dtype=torch.float64).div_(ssim_map[0].numel()).view(n, c).mean(1)


@torch.no_grad()
def score_video_pair(
    prediction: VideoInput,
    reference: VideoInput,
    metrics: Sequence[str] = FRAME_METRICS,
    *,
    data_range: float | None = None,
    ssim_convention: str = "gaussian_rgb",
    truncate: bool = False,
    resize_prediction: bool = False,
    chunk_frames: int = 32,
    device=None,
    compile: bool = False,
) -> dict[str, np.ndarray]:
    """Per-frame metric values of a generated video against its reference, ``{name: (F,) float64}``.

    Both videos are decoded once, in chunks. Frame counts must match (``truncate=True`` compares the common
    prefix). Frame sizes must match unless ``resize_prediction=True``, which resizes the prediction to the
    reference's size (bilinear, antialiased) before scoring. ``compile`` is passed to both metrics.
    """
    unknown = [m for m in metrics if m not in FRAME_METRICS]
    if unknown:
        raise ValueError(f"unknown frame metrics {unknown}, expected a subset of {FRAME_METRICS}")
    _window(ssim_convention)  # fail fast on a bad convention
    device = torch.device(device) if device is not None else default_device()
    num_frames = check_pair(prediction, reference, truncate=truncate)
    values: dict[str, list[torch.Tensor]] = {m: [] for m in metrics}
    chunks = zip(
        iter_frame_chunks(prediction, chunk_frames, num_frames),
        iter_frame_chunks(reference, chunk_frames, num_frames),
    )
    for pred, ref in chunks:
        n = min(len(pred), len(ref))
        pred, ref = pred[:n], ref[:n]
        if pred.shape[1:3] != ref.shape[1:3]:
            if not resize_prediction:
                raise ValueError(
                    f"prediction {describe(prediction)} is {pred.shape[2]}x{pred.shape[1]} but reference "
                    f"{describe(reference)} is {ref.shape[2]}x{ref.shape[1]}; pass resize_prediction=True to "
                    "resize the prediction to the reference size"
                )
            pred = _resize_like(pred, ref.shape[1], ref.shape[2], device)
        if "psnr" in values:
            values["psnr"].append(
                psnr_frames(pred, ref, data_range=data_range, device=device, compile=compile).cpu()
            )
        if "ssim" in values:
            ssim = ssim_frames(
                pred, ref, data_range=data_range, convention=ssim_convention, device=device, compile=compile
            )
            values["ssim"].append(ssim.cpu())
    return {m: torch.cat(v).numpy() for m, v in values.items()}


def _resize_like(frames: np.ndarray, height: int, width: int, device) -> torch.Tensor:
    is_uint8 = frames.dtype == np.uint8
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()
    tensor = resize_frames(tensor, height, width, antialias=True).permute(0, 2, 3, 1)
    return tensor.round().clamp(0, 255).to(torch.uint8) if is_uint8 else tensor


def mean_over_videos(
    metric: str,
    predictions: Sequence[VideoInput],
    references: Sequence[VideoInput],
    max_value: float | None = None,
    **score_kwargs,
) -> dict:
    """The evaluate modules' aggregation: per-frame ``metric`` (capped at ``max_value``), averaged over frames,
    then over videos. ``score_kwargs`` go to :func:`score_video_pair`."""
    per_video, num_frames = [], 0
    for prediction, reference in zip(predictions, references):
        frames = score_video_pair(prediction, reference, (metric,), **score_kwargs)[metric]
        if max_value is not None:
            frames = np.minimum(frames, max_value)
        per_video.append(float(np.mean(frames)))
        num_frames += len(frames)
    return {
        metric: float(np.mean(per_video)) if per_video else float("nan"),
        f"{metric}_per_video": per_video,
        "num_videos": len(per_video),
        "num_frames": num_frames,
    }
