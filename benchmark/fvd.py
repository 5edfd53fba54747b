"""Frechet Video Distance: I3D (Kinetics-400) features of 16-frame clips and the Frechet distance in float64.

Public API (stable; used by ``benchmark/metrics/fvd`` and the ``mit-bench`` runner):

- ``load_detector(path=None, device=None, features="logits", trust_detector=False) -> I3DDetector``: the
  detector file from ``path`` or the ``MIT_BENCH_I3D`` environment variable. Two formats are recognised from
  the file's structure, before anything in it is loaded (:func:`detector_kind`): the StyleGAN-V TorchScript
  ``i3d_torchscript.pt`` (kind ``"stylegan-v-torchscript"``, the reference) and an ``InceptionI3d`` state dict
  such as ``i3d_pretrained_400.pt`` (kind ``"inception-i3d"``, the DisCo / VideoGPT convention, run through
  :class:`benchmark.i3d.InceptionI3d`). A missing file raises ``FileNotFoundError`` saying what to download.
- ``I3DDetector.__call__(clips) -> torch.Tensor (N, D)``: features of preprocessed clips. ``.name``, ``.kind``,
  ``.feature_dim`` and ``.describe()`` identify it in results.
- ``preprocess_clips(frames) -> torch.Tensor``: ``(N, T, H, W, 3)`` uint8 (or float in [0, 1]) ->
  ``(N, 3, T, 224, 224)`` float in [-1, 1] (bilinear resize of the whole frame to 224x224, no crop, so every
  person of a wide multi-speaker frame stays in view).
- ``video_clip_starts(num_frames, clip_len=16, max_clips=None) -> list[int]``: non-overlapping clip starts.
- ``extract_video_features(videos, detector, clip_len=16, max_clips_per_video=None, batch_size=8,
  progress=False) -> np.ndarray (N, D)`` float64: features of every clip of every video (paths or arrays).
- ``frechet_distance(features_a, features_b) -> float`` and ``gaussian_frechet_distance(mu1, s1, mu2, s2)``.
- ``fvd_from_features(real, generated, detector=None) -> dict``: ``{"fvd", "num_real_clips",
  "num_generated_clips", "feature_dim", "detector"}``. FVD depends strongly on N: compare only at equal N and
  with the same detector.

Trust. A TorchScript file is a program: ``torch.jit.load`` runs the code it contains. It is loaded only when its
sha256 is in :data:`VERIFIED_DETECTORS` or the caller passes ``trust_detector=True`` (``--trust-detector``);
otherwise :class:`UntrustedDetectorError` says so before the file is touched by torch. A state dict is read with
``torch.load(weights_only=True)``, which rebuilds tensors and containers only and cannot run code, so it needs
no trust. Anything else (a random or pickled-code file) is a ``ValueError`` naming the file. The detector's
sha256 is recorded in every result, so two results are comparable only when it is the same.

Detector conventions. Both detectors get the same input: 16-frame clips resized to 224x224, float in [-1, 1].
The TorchScript model is called as ``detector(clips, rescale=False, resize=False, return_features=True)`` and
returns its 400-d pre-softmax logits (what StyleGAN-V and the TF-Hub FVD use). The InceptionI3d state dict
gives its 400-d logits averaged over time (``i3d(clips)``, as DisCo / VideoGPT compute FVD) by default;
``features="pool"`` uses the 1024-d pooled features before the logits instead.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.i3d import InceptionI3d, load_inception_i3d
from benchmark.video_loading import VideoInput, describe, iter_frame_chunks, num_video_frames, resize_frames
from mit_dataset.tensors import tensor_from_array

DETECTOR_ENV = "MIT_BENCH_I3D"
CLIP_LEN = 16
RESOLUTION = 224
TORCHSCRIPT_KIND = "stylegan-v-torchscript"
STATE_DICT_KIND = "inception-i3d"

#: sha256 of the detector files this project has verified -> what the file is. TorchScript files listed here
#: load without ``trust_detector``. EMPTY ON PURPOSE: the sha256 of StyleGAN-V's ``i3d_torchscript.pt`` and of
#: ``i3d_pretrained_400.pt`` could not be established from a source we can cite (their publishers state no
#: checksum, no public code or issue we searched records one, and this project's machines cannot download the
#: files to hash them). To add one, download
#: the file from its publisher (i3d_torchscript.pt: the StyleGAN-V release linked from
#: github.com/universome/stylegan-v), run ``sha256sum``, compare with a second independent copy (e.g. the
#: copy the StyleGAN-V or a FVD-reference repository ships), and add ``"<sha256>": "<file> (<source>)"``
#: with the evidence in the commit message.
VERIFIED_DETECTORS: dict[str, str] = {}

DOWNLOAD_HINT = (
    "FVD needs a Kinetics-400 I3D detector file. Download either the StyleGAN-V TorchScript detector "
    "'i3d_torchscript.pt' (the reference; linked from the StyleGAN-V repository, universome/stylegan-v) or the "
    "InceptionI3d state dict 'i3d_pretrained_400.pt' (used by VideoGPT and DisCo), then pass its path "
    f"(detector_path=... / --i3d PATH) or set the environment variable {DETECTOR_ENV}=PATH."
)


class UntrustedDetectorError(ValueError):
    """A TorchScript detector file that is neither verified (:data:`VERIFIED_DETECTORS`) nor trusted."""


@dataclass
class I3DDetector:
    """A loaded FVD feature extractor: a callable on preprocessed clips plus its identity."""

    model: torch.nn.Module
    kind: str
    path: str
    device: torch.device
    features: str = "logits"
    sha256: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def feature_dim(self) -> int:
        return int(self(torch.zeros(1, 3, CLIP_LEN, RESOLUTION, RESOLUTION, device=self.device)).shape[1])

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "features": self.features, "sha256": self.sha256[:16]}

    @torch.no_grad()
    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """``(N, 3, T, 224, 224)`` float in [-1, 1] -> ``(N, D)`` features."""
        clips = clips.to(self.device, torch.float32)
        if self.kind == TORCHSCRIPT_KIND:
            return self.model(clips, rescale=False, resize=False, return_features=True)
        if self.features == "pool":
            return self.model.extract_features(clips)
        return self.model(clips)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_detector_path(path: str | os.PathLike | None = None) -> Path:
    """The detector file from the argument or ``$MIT_BENCH_I3D``; ``FileNotFoundError`` with a hint otherwise."""
    given = path if path is not None else os.environ.get(DETECTOR_ENV)
    if not given:
        raise FileNotFoundError(f"no I3D detector given. {DOWNLOAD_HINT}")
    resolved = Path(given).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"I3D detector file {str(resolved)!r} does not exist. {DOWNLOAD_HINT}")
    return resolved


def detector_kind(path: str | os.PathLike) -> str:
    """:data:`TORCHSCRIPT_KIND` or :data:`STATE_DICT_KIND`, read from the file's structure without loading it.

    A TorchScript archive is a zip holding a ``code/`` folder (the serialized program); ``torch.save`` writes
    a zip without one (or, before torch 1.6, a bare pickle stream starting with the PROTO opcode).

    Raises:
        ValueError: neither (naming the file).
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in name or name.startswith("code/") for name in names):
            return TORCHSCRIPT_KIND
        if any(name.endswith("data.pkl") for name in names):
            return STATE_DICT_KIND
    else:
        with open(path, "rb") as handle:
            if handle.read(1) == pickle.PROTO:
                return STATE_DICT_KIND
    raise ValueError(
        f"I3D detector {path}: not a TorchScript archive or a torch state dict file; expected "
        "i3d_torchscript.pt or i3d_pretrained_400.pt"
    )


def load_detector(
    path: str | os.PathLike | None = None, device=None, features: str = "logits", trust_detector: bool = False
) -> I3DDetector:
    """Load an FVD detector (TorchScript or InceptionI3d state dict; the format is read from the file).

    Raises:
        FileNotFoundError: no file given or it does not exist (saying what to download).
        UntrustedDetectorError: a TorchScript file whose sha256 is not in :data:`VERIFIED_DETECTORS` and
            ``trust_detector`` is False (TorchScript is code; nothing of the file was run).
        ValueError: not a detector file, or a state dict of another network.
    """
    if features not in ("logits", "pool"):
        raise ValueError(f"features must be 'logits' or 'pool', got {features!r}")
    resolved = resolve_detector_path(path)
    kind = detector_kind(resolved)
    sha256 = _sha256(resolved)
    device = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if kind == TORCHSCRIPT_KIND:
        if sha256 not in VERIFIED_DETECTORS and not trust_detector:
            raise UntrustedDetectorError(
                f"I3D detector {resolved} is TorchScript (a program torch.jit.load would run) with sha256 "
                f"{sha256}, which is not a verified detector file; pass --trust-detector (trust_detector=True) "
                "only if you trust where the file comes from"
            )
        if features != "logits":
            raise ValueError(
                f"{resolved}: the TorchScript detector only gives its logits (features='logits')"
            )
        try:
            model = torch.jit.load(str(resolved), map_location=device).eval()
        except RuntimeError as error:
            raise ValueError(
                f"I3D detector {resolved}: not a loadable TorchScript archive ({error})"
            ) from error
    else:
        model = load_inception_i3d(resolved, device=device)
    return I3DDetector(
        model=model, kind=kind, path=str(resolved), device=device, features=features, sha256=sha256
    )


def preprocess_clips(frames) -> torch.Tensor:
    """``(N, T, H, W, 3)`` uint8 (or float in [0, 1]) -> ``(N, 3, T, 224, 224)`` float32 in [-1, 1]."""
    tensor = frames if isinstance(frames, torch.Tensor) else tensor_from_array(frames)
    if tensor.ndim != 5 or tensor.shape[-1] != 3:
        raise ValueError(f"clips must be (N, T, H, W, 3) RGB, got shape {tuple(tensor.shape)}")
    scale = 255.0 if tensor.dtype == torch.uint8 else 1.0
    n, t, h, w, _ = tensor.shape
    flat = tensor.reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float()
    flat = resize_frames(flat, RESOLUTION, RESOLUTION)
    clips = flat.reshape(n, t, 3, RESOLUTION, RESOLUTION).permute(0, 2, 1, 3, 4)
    return (clips * (2.0 / scale) - 1.0).contiguous()


def video_clip_starts(num_frames: int, clip_len: int = CLIP_LEN, max_clips: int | None = None) -> list[int]:
    """Starts of the non-overlapping ``clip_len``-frame clips of a video (the first ``max_clips`` of them)."""
    starts = list(range(0, num_frames - clip_len + 1, clip_len))
    return starts if max_clips is None else starts[:max_clips]


@torch.no_grad()
def extract_video_features(
    videos: Iterable[VideoInput],
    detector: I3DDetector | torch.nn.Module,
    clip_len: int = CLIP_LEN,
    max_clips_per_video: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
    frame_counts: Sequence[int] | None = None,
) -> np.ndarray:
    """Float64 ``(N, D)`` features of the non-overlapping ``clip_len``-frame clips of every video (of its
    first ``frame_counts[i]`` frames when given, else of all its decoded frames)."""
    features: list[np.ndarray] = []
    pending: list[torch.Tensor] = []

    def flush():
        if pending:
            features.append(detector(torch.cat(pending)).double().cpu().numpy())
            pending.clear()

    videos = list(videos)
    for index, video in enumerate(tqdm(videos, desc="FVD features", unit="video", disable=not progress)):
        num_frames = num_video_frames(video) if frame_counts is None else int(frame_counts[index])
        starts = video_clip_starts(num_frames, clip_len, max_clips_per_video)
        if not starts:
            raise ValueError(
                f"video {describe(video)} has {num_frames} frames, fewer than one {clip_len}-frame clip"
            )
        # Consecutive non-overlapping chunks are exactly the clips; decoding them one at a time keeps a long
        # 1080p reference out of memory.
        for clip in iter_frame_chunks(video, clip_len, num_frames=starts[-1] + clip_len):
            if len(clip) < clip_len:
                raise ValueError(
                    f"video {describe(video)}: decoding stopped before the end of a {clip_len}-frame clip"
                )
            pending.append(preprocess_clips(clip[None]))
            if len(pending) == batch_size:
                flush()
    flush()
    return np.concatenate(features) if features else np.zeros((0, 0))


def gaussian_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2)`` in float64.

    ``Tr (S1 S2)^1/2`` is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``S1^1/2 S2 S1^1/2`` (same spectrum as ``S1 S2``), which avoids the complex round-off of a general
    matrix square root.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    eigvals, eigvecs = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    sqrt1 = (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T
    inner = sqrt1 @ sigma2 @ sqrt1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of ``(N, D)`` features in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, D) features for a covariance, got shape {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two ``(N, D)`` feature sets (float64)."""
    return gaussian_frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def fvd_from_features(real, generated, detector: I3DDetector | None = None) -> dict:
    """FVD result dict; N (clips on each side) and the detector are part of the result."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    return {
        "fvd": frechet_distance(real, generated),
        "num_real_clips": len(real),
        "num_generated_clips": len(generated),
        "feature_dim": int(real.shape[1]),
        "detector": detector.describe() if detector is not None else None,
    }


__all__ = [
    "CLIP_LEN",
    "DETECTOR_ENV",
    "VERIFIED_DETECTORS",
    "I3DDetector",
    "InceptionI3d",
    "UntrustedDetectorError",
    "detector_kind",
    "extract_video_features",
    "feature_statistics",
    "frechet_distance",
    "fvd_from_features",
    "gaussian_frechet_distance",
    "load_detector",
    "preprocess_clips",
    "resolve_detector_path",
    "video_clip_starts",
]
