"""Per-frame PSNR and SSIM in torch, equal to scikit-image's values (within 1e-6 at 8 bits; tested).

Public API (stable; used by ``benchmark/metrics/psnr``, ``benchmark/metrics/ssim`` and the ``mit-bench`` runner):

- ``frame_metrics(predictions, references, metrics=("psnr", "ssim"), data_range=None,
  ssim_convention="gaussian_rgb", device=None) -> dict[str, torch.Tensor (N,)]`` float64, one value per frame.
- ``psnr_frames(...)`` / ``ssim_frames(..., convention=...)``: one metric of ``frame_metrics``.
- ``score_video_pair(prediction, reference, metrics=("psnr", "ssim"), ..., size=None) -> dict[str, np.ndarray]``:
  per-frame values for two videos (paths, bytes or arrays), decoded once and streamed in chunks of
  ``chunk_frames``; ``size=(height, width)`` first brings both to that size with the project's geometry.

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

How it is computed, and why this way (``benchmarks/bench_metrics.py`` measures it against scikit-image):
pixel values are centred on half the data range (``x - R/2``), and four moment maps are filtered instead of
the usual five: ``s = x + y``, ``d = x - y``, ``s^2`` and ``d^2`` give every statistic SSIM needs
(``4 mu_x mu_y = S^2 - D^2``, ``4 sigma_xy = E[s^2] - E[d^2] - (S^2 - D^2)``, ...), and at 8 bits they are exact
in float32 (integers below 2^24), which keeps float32 within 1e-6 of scikit-image's float64 (1e-5 in
saturated flat areas). PSNR's squared errors are ``d^2``, summed in float64 (exact). The separable window is
applied as sums of shifted slices ("valid" filtering, which equals scikit-image's reflect-padded filter
followed by its border crop). On CPU the kernel is compiled with ``torch.compile`` for large frames (one
fused loop nest; 5.5x scikit-image's frames/s at one thread each at 640x384), else run eagerly over strips of
``CPU_STRIP_ROWS`` rows that stay in the core's cache (2.6x); on GPU a batch of whole frames runs eagerly.
Figures: ``python benchmarks/bench_metrics.py --only kernel`` (2-core CPU).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from benchmark.video_loading import VideoInput, check_pair, describe, iter_frame_chunks

SSIM_CONVENTIONS = ("gaussian_rgb", "grayscale_7x7")
FRAME_METRICS = ("psnr", "ssim")
K1, K2 = 0.01, 0.03
GAUSSIAN_SIGMA, GAUSSIAN_TRUNCATE = 1.5, 3.5
LUMA_BT601 = (0.299, 0.587, 0.114)

#: Output rows per strip of the eager CPU kernel: a 640x384 RGB strip's four maps (4 x (32 + 10) rows x 640 x 3
#: float32) stay in a core's L2 cache; 16 to 64 rows measure alike.
CPU_STRIP_ROWS = 32
#: Frames per batch on GPU, where a batch of whole frames is one strip.
GPU_BATCH_FRAMES = 16
#: ``compile=None`` compiles the CPU kernel for frames of at least this many pixels (below, a compilation of
#: tens of seconds would not pay off; 640x384 is 245,760).
COMPILE_MIN_PIXELS = 100_000


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_tensor(frames) -> torch.Tensor:
    return frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))


def _check_frames(predictions, references, data_range) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Validated ``(N, H, W, 3)`` tensors (their dtype and device) and the explicit data range."""
    if tuple(predictions.shape) != tuple(references.shape):
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and references {tuple(references.shape)} differ"
        )
    if predictions.ndim != 4 or predictions.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(predictions.shape)}")
    x, y = _as_tensor(predictions), _as_tensor(references)
    if data_range is None:
        if (x.dtype == torch.uint8) != (y.dtype == torch.uint8):
            raise ValueError(
                "predictions and references have different dtypes (uint8 vs float): pass data_range"
            )
        data_range = 255.0 if x.dtype == torch.uint8 else 1.0
        if x.dtype != torch.uint8 and (min(x.min(), y.min()) < 0 or max(x.max(), y.max()) > 1):
            raise ValueError("float frames must lie in [0, 1] unless data_range is given")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return x, y, float(data_range)


def _gaussian_taps(sigma: float, truncate: float) -> tuple[float, ...]:
    radius = int(truncate * sigma + 0.5)  # scipy.ndimage.gaussian_filter's support
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return tuple((taps / taps.sum()).tolist())


#: Convention -> (1-D separable window taps, covariance normalisation).
WINDOWS = {
    "gaussian_rgb": (_gaussian_taps(GAUSSIAN_SIGMA, GAUSSIAN_TRUNCATE), 1.0),
    "grayscale_7x7": ((1.0 / 7,) * 7, 49 / 48),  # uniform 7x7, sample covariance N / (N - 1)
}


def _window(convention: str) -> tuple[tuple[float, ...], float]:
    """1-D separable window taps and the covariance normalisation of a convention."""
    if convention not in WINDOWS:
        raise ValueError(f"unknown SSIM convention {convention!r}, expected one of {SSIM_CONVENTIONS}")
    return WINDOWS[convention]


@torch.no_grad()
def frame_metrics(
    predictions,
    references,
    metrics: Sequence[str] = FRAME_METRICS,
    data_range: float | None = None,
    ssim_convention: str = "gaussian_rgb",
    device=None,
    compile: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Per-frame PSNR (dB) and/or SSIM, ``{name: (N,) float64}`` on CPU; conventions in the module docstring.

    ``device``: where to compute (default: the frames' device; numpy frames on CPU). ``compile``: run the CPU
    kernel through ``torch.compile`` (one fused loop nest instead of ~40 passes over memory; 2-3x the eager
    kernel, ``benchmarks/bench_metrics.py``). ``None`` (default) compiles on CPU for frames of at least
    :data:`COMPILE_MIN_PIXELS`; the compiled code is cached on disk by inductor (``$TORCHINDUCTOR_CACHE_DIR``,
    default ``/tmp/torchinductor_$USER``), so only the first run on a machine pays the compilation. Without a
    working C++ compiler the eager kernel is used, with a warning. Values are the same either way (1e-7).

    Raises ``ValueError`` for frames of different shapes or dtypes, float frames outside [0, 1] without
    ``data_range``, an unknown metric or convention, or frames smaller than the SSIM window.
    """
    unknown = [m for m in metrics if m not in FRAME_METRICS]
    if unknown:
        raise ValueError(f"unknown frame metrics {unknown}, expected a subset of {FRAME_METRICS}")
    window, _ = _window(ssim_convention)
    x, y, data_range = _check_frames(predictions, references, data_range)
    device = torch.device(device) if device is not None else x.device
    num, height, width = x.shape[:3]
    if "ssim" in metrics and min(height, width) < len(window):
        raise ValueError(f"frames of {width}x{height} are smaller than the {len(window)}-pixel SSIM window")
    if compile is None:
        compile = device.type == "cpu" and height * width >= COMPILE_MIN_PIXELS
    batch = 1 if device.type == "cpu" else GPU_BATCH_FRAMES
    ssim, squared_errors = [], []
    for start in range(0, num, batch):
        xs, ys = x[start : start + batch].to(device), y[start : start + batch].to(device)
        if "ssim" not in metrics:
            squared_errors.append(_squared_error_sums(xs, ys))
            continue
        if compile and not _compile_failed:
            ssim_sums, errors = _compiled_frame_sums(xs, ys, data_range, ssim_convention)
        else:
            strip_rows = CPU_STRIP_ROWS if device.type == "cpu" else height
            ssim_sums, errors = _strip_sums(xs, ys, data_range, ssim_convention, strip_rows)
        channels = 1 if ssim_convention == "grayscale_7x7" else 3
        ssim.append(ssim_sums / ((height - len(window) + 1) * (width - len(window) + 1) * channels))
        squared_errors.append(errors)
    values = {}
    if "psnr" in metrics:
        mse = torch.cat(squared_errors) / (height * width * 3)
        values["psnr"] = (10.0 * torch.log10(data_range**2 / mse)).cpu()
    if "ssim" in metrics:
        values["ssim"] = torch.cat(ssim).cpu()
    return values


def psnr_frames(predictions, references, data_range: float | None = None, device=None) -> torch.Tensor:
    """Per-frame PSNR in dB, float64 ``(N,)`` (:func:`frame_metrics`)."""
    return frame_metrics(predictions, references, ("psnr",), data_range, device=device)["psnr"]


def ssim_frames(
    predictions,
    references,
    data_range: float | None = None,
    convention: str = "gaussian_rgb",
    device=None,
    compile: bool | None = None,
) -> torch.Tensor:
    """Per-frame SSIM, float64 ``(N,)`` (:func:`frame_metrics`; conventions in the module docstring)."""
    return frame_metrics(predictions, references, ("ssim",), data_range, convention, device, compile)["ssim"]


def _squared_error_sums(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).square_().flatten(1).sum(1, dtype=torch.float64)


def _strip_sums(x, y, data_range, convention, strip_rows):
    """:func:`_frame_sums` strip by strip: ``strip_rows`` output rows at a time (their inputs overlap by the
    window size - 1 rows, of which each strip's first ``strip_rows`` count towards the squared errors)."""
    size = len(WINDOWS[convention][0])
    out_height = x.shape[1] - size + 1
    ssim_sums, squared_errors = 0.0, 0.0
    for top in range(0, out_height, strip_rows):
        bottom = min(top + strip_rows, out_height)
        last = bottom == out_height  # the last strip owns the bottom size - 1 rows too
        rows = slice(top, bottom + size - 1)
        strip_ssim, strip_errors = _frame_sums(
            x[:, rows], y[:, rows], data_range, convention, None if last else bottom - top
        )
        ssim_sums, squared_errors = ssim_sums + strip_ssim, squared_errors + strip_errors
    return ssim_sums, squared_errors


def _frame_sums(x, y, data_range: float, convention: str, error_rows: int | None = None):
    """SSIM summed over the valid pixels (and channels) of ``(B, rows, W, 3)`` frames, and the squared errors
    of their first ``error_rows`` rows (all by default), both ``(B,)`` float64.

    Written functionally so that ``torch.compile`` fuses it into a few loops (over planar ``(B, C, rows, W)``
    maps, so that the innermost loop runs along a row: about 20 % faster than interleaved RGB); the eager
    caller runs it on cache-sized strips (:func:`_strip_sums`).
    """
    window, cov_norm = WINDOWS[convention]
    x, y = x.float() - data_range / 2, y.float() - data_range / 2  # centred: small, exact at 8 bits
    d = x - y
    squared_errors = d[:, :error_rows].square().sum((1, 2, 3), dtype=torch.float64)
    if convention == "grayscale_7x7":
        luma = torch.tensor(LUMA_BT601, device=x.device)
        x, y = (x * luma).sum(-1, keepdim=True), (y * luma).sum(-1, keepdim=True)
        d = x - y
    x, d = x.permute(0, 3, 1, 2), d.permute(0, 3, 1, 2)
    s = x + y.permute(0, 3, 1, 2)
    filtered = _filter_valid(torch.stack([s, d, s * s, d * d]), window)  # (4, B, C, H', W')
    ssim_map = _ssim_map(filtered, data_range, cov_norm)
    return ssim_map.sum(-1).sum((-1, -2), dtype=torch.float64), squared_errors


def _filter_valid(maps: torch.Tensor, window: tuple[float, ...]) -> torch.Tensor:
    """Separable "valid" filtering of ``(..., rows, W)`` maps along rows, then along W: sums of shifted
    slices."""
    size = len(window)
    rows, cols = maps.shape[-2] - size + 1, maps.shape[-1] - size + 1
    vertical = maps.narrow(-2, 0, rows) * window[0]
    for k in range(1, size):
        vertical = torch.add(vertical, maps.narrow(-2, k, rows), alpha=window[k])
    out = vertical.narrow(-1, 0, cols) * window[0]
    for k in range(1, size):
        out = torch.add(out, vertical.narrow(-1, k, cols), alpha=window[k])
    return out


def _ssim_map(filtered: torch.Tensor, data_range: float, cov_norm: float) -> torch.Tensor:
    """SSIM per pixel from the filtered maps ``(4, ...)`` of ``s, d, s^2, d^2``.

    With ``S, D, P, Q`` those means and inputs centred by ``c = R / 2`` (``mu = u + c``), each factor of
    ``(2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))`` doubled:
    ``2 (2 mu_x mu_y + C1) = S^2 - D^2 + 2 R S + R^2 + 2 C1``, ``2 (mu_x^2 + mu_y^2 + C1) = S^2 + D^2 + 2 R S +
    R^2 + 2 C1``, ``2 (2 sigma_xy + C2) = n (P - Q - (S^2 - D^2)) + 2 C2``, ``2 (sigma_x^2 + sigma_y^2 + C2)
    = n (P + Q - (S^2 + D^2)) + 2 C2`` (``n``: the covariance normalisation).
    """
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mean_sum, mean_diff, second_sum, second_diff = filtered.unbind(0)
    plus = mean_sum * mean_sum + mean_diff * mean_diff
    minus = mean_sum * mean_sum - mean_diff * mean_diff
    mean_terms = mean_sum * (2 * data_range) + (data_range**2 + 2 * c1)
    numerator = (minus + mean_terms) * ((second_sum - second_diff - minus) * cov_norm + 2 * c2)
    denominator = (plus + mean_terms) * ((second_sum + second_diff - plus) * cov_norm + 2 * c2)
    return numerator / denominator


_compile_failed = False


@functools.cache
def _compiled_kernel():
    return torch.compile(_frame_sums, dynamic=False)


def _compiled_frame_sums(x, y, data_range, convention):
    """:func:`_frame_sums` compiled; on a failed compilation (no C++ compiler, ...) the eager kernel takes over
    for the rest of the process, with a warning."""
    global _compile_failed
    try:
        return _compiled_kernel()(x, y, data_range, convention)
    except Exception as error:  # noqa: BLE001 (inductor raises many kinds; the eager kernel is always right)
        _compile_failed = True
        warnings.warn(
            f"torch.compile of the SSIM kernel failed ({type(error).__name__}: {str(error)[:200]}); using the "
            "eager kernel (same values, about half the speed)",
            stacklevel=3,
        )
        return _strip_sums(x, y, data_range, convention, CPU_STRIP_ROWS)


@torch.no_grad()
def score_video_pair(
    prediction: VideoInput,
    reference: VideoInput,
    metrics: Sequence[str] = FRAME_METRICS,
    *,
    data_range: float | None = None,
    ssim_convention: str = "gaussian_rgb",
    truncate: bool = False,
    size: tuple[int, int] | None = None,
    chunk_frames: int = 32,
    device=None,
) -> dict[str, np.ndarray]:
    """Per-frame metric values of a generated video against its reference, ``{name: (F,) float64}``.

    Both videos are decoded once, in chunks. Frame counts must match (``truncate=True`` compares the common
    prefix). ``size=(height, width)`` brings both videos to that size first with the project's one geometry
    (scale to cover, centre crop: :meth:`mit_dataset.geometry.FrameTransform.cover`), e.g. the MIT
    benchmark's evaluation size; without it, frame sizes must match.
    """
    unknown = [m for m in metrics if m not in FRAME_METRICS]
    if unknown:
        raise ValueError(f"unknown frame metrics {unknown}, expected a subset of {FRAME_METRICS}")
    _window(ssim_convention)  # fail fast on a bad convention
    device = torch.device(device) if device is not None else default_device()
    num_frames = check_pair(prediction, reference, truncate=truncate)
    values: dict[str, list[torch.Tensor]] = {m: [] for m in metrics}
    chunks = zip(
        iter_frame_chunks(prediction, chunk_frames, num_frames, size=size),
        iter_frame_chunks(reference, chunk_frames, num_frames, size=size),
    )
    for pred, ref in chunks:
        n = min(len(pred), len(ref))
        if pred.shape[1:3] != ref.shape[1:3]:
            raise ValueError(
                f"prediction {describe(prediction)} is {pred.shape[2]}x{pred.shape[1]} but reference "
                f"{describe(reference)} is {ref.shape[2]}x{ref.shape[1]}; pass size=(height, width) to compare "
                "both at one size"
            )
        chunk_values = frame_metrics(pred[:n], ref[:n], metrics, data_range, ssim_convention, device)
        for name, frame_values in chunk_values.items():
            values[name].append(frame_values)
    return {m: torch.cat(v).numpy() for m, v in values.items()}


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
