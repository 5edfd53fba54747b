"""FVD: Frechet distance properties, both detector formats (tiny stand-ins built here), evaluate.load."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
import scipy.linalg
import torch

import benchmark.metrics
from benchmark.fvd import (
    DETECTOR_ENV,
    extract_video_features,
    frechet_distance,
    gaussian_frechet_distance,
    load_detector,
    preprocess_clips,
    video_clip_starts,
)
from benchmark.i3d import InceptionI3d
from mit_dataset.video_io import write_video


class StyleGANVStandIn(torch.nn.Module):
    """Same call signature as StyleGAN-V's i3d_torchscript.pt; refuses any other calling convention."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 4, 400)

    def forward(
        self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False
    ):
        if rescale or resize or not return_features:
            raise RuntimeError("expected rescale=False, resize=False, return_features=True")
        if x.shape[1] != 3 or x.shape[3] != 224 or x.shape[4] != 224:
            raise RuntimeError("expected (N, 3, T, 224, 224)")
        if bool(x.min() < -1.0) or bool(x.max() > 1.0):
            raise RuntimeError("expected values in [-1, 1]")
        pooled = torch.nn.functional.adaptive_avg_pool3d(x, (1, 4, 4)).flatten(1)
        return self.proj(pooled)


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detectors")
    torch.manual_seed(0)
    torchscript = folder / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(StyleGANVStandIn()), str(torchscript))
    state_dict = folder / "i3d_pretrained_400.pt"
    torch.save(InceptionI3d(width=1 / 32).state_dict(), state_dict)
    return torchscript, state_dict


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two 'real' and two 'generated' 32-frame videos (2 clips each)."""
    folder = tmp_path_factory.mktemp("fvd_videos")
    rng = np.random.default_rng(0)
    paths = {"real": [], "fake": []}
    for kind, level in (("real", 60), ("fake", 200)):
        for i in range(2):
            frames = np.clip(rng.normal(level, 30, (32, 48, 64, 3)), 0, 255).astype(np.uint8)
            paths[kind].append(str(write_video(folder / f"{kind}{i}.mp4", frames)))
    return paths


def test_identical_feature_sets_give_zero():
    features = np.random.default_rng(0).normal(size=(64, 16))
    assert abs(frechet_distance(features, features)) < 1e-8


def test_closed_form_for_two_known_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert gaussian_frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(
        expected, rel=1e-12
    )
    # A shared rotation leaves the distance unchanged (non-diagonal covariances).
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    rotated = gaussian_frechet_distance(q @ mu1, q @ np.diag(var1) @ q.T, q @ mu2, q @ np.diag(var2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-10)
    # Samples of those Gaussians converge to it.
    a = rng.normal(mu1, np.sqrt(var1), size=(200_000, 5))
    b = rng.normal(mu2, np.sqrt(var2), size=(200_000, 5))
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("n, d", [(300, 8), (100, 40)])
def test_agrees_with_scipy_sqrtm(n, d):
    rng = np.random.default_rng(d)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(0.3, 1.0, size=(n, d)) @ rng.normal(size=(d, d))
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_preprocess_and_clip_layout():
    frames = np.random.default_rng(0).integers(0, 256, (2, 16, 36, 64, 3), dtype=np.uint8)
    clips = preprocess_clips(frames)
    assert clips.shape == (2, 3, 16, 224, 224) and clips.dtype == torch.float32
    assert -1.0 <= clips.min() and clips.max() <= 1.0
    assert video_clip_starts(50) == [0, 16, 32] and video_clip_starts(50, max_clips=1) == [0]
    assert video_clip_starts(15) == []


def test_torchscript_detector_is_called_with_the_stylegan_v_convention(detector_files, videos):
    detector = load_detector(detector_files[0], device="cpu", trust_detector=True)
    assert detector.kind == "stylegan-v-torchscript" and detector.feature_dim == 400
    features = extract_video_features(videos["real"], detector)  # the stand-in raises on any other convention
    assert features.shape == (4, 400) and features.dtype == np.float64


def test_inception_i3d_state_dict_detector(detector_files, videos):
    detector = load_detector(detector_files[1], device="cpu")
    assert detector.kind == "inception-i3d"
    features = extract_video_features(videos["real"][:1], detector, max_clips_per_video=1)
    assert features.shape == (1, 400)
    pooled = load_detector(detector_files[1], device="cpu", features="pool")
    assert extract_video_features(videos["real"][:1], pooled, max_clips_per_video=1).shape == (1, 32)


def test_full_size_inception_i3d_layout():
    model = InceptionI3d()
    keys = model.state_dict().keys()
    assert {"Conv3d_1a_7x7.conv3d.weight", "Mixed_5c.b3b.bn.running_var", "logits.conv3d.bias"} <= set(keys)
    assert model.feature_dim == 1024 and model.logits.conv3d.out_channels == 400


def test_missing_detector_names_what_to_download(monkeypatch, tmp_path):
    monkeypatch.delenv(DETECTOR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="i3d_torchscript.pt.*i3d_pretrained_400.pt.*MIT_BENCH_I3D"):
        load_detector()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_detector(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an InceptionI3d state dict"):
        load_detector(bad)


def test_too_short_video_is_rejected(detector_files, tmp_path):
    short = write_video(tmp_path / "short.mp4", np.zeros((10, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="fewer than one 16-frame clip"):
        extract_video_features([short], load_detector(detector_files[0], device="cpu", trust_detector=True))


def test_evaluate_load_fvd(detector_files, videos, monkeypatch):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    fvd = evaluate.load(benchmark.metrics.path("fvd"))
    same = fvd.compute(
        predictions=videos["real"],
        references=videos["real"],
        detector_path=str(detector_files[0]),
        trust_detector=True,
    )
    assert abs(same["fvd"]) < 1e-6
    assert same["num_real_clips"] == same["num_generated_clips"] == 4 and same["clip_len"] == 16
    assert (
        same["detector"]["kind"] == "stylegan-v-torchscript"
        and same["detector"]["name"] == "i3d_torchscript.pt"
    )
    different = fvd.compute(
        predictions=videos["fake"],
        references=videos["real"],
        detector_path=str(detector_files[0]),
        trust_detector=True,
    )
    assert different["fvd"] > 1.0

    monkeypatch.setenv(DETECTOR_ENV, str(detector_files[0]))  # the environment variable gives the detector
    result = fvd.compute(
        predictions=videos["fake"], references=videos["real"], max_clips_per_video=1, trust_detector=True
    )
    assert result["num_real_clips"] == result["num_generated_clips"] == 2
    assert np.isfinite(result["fvd"]) and result["fvd"] >= 0
