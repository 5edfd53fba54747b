"""PSNR / SSIM: equal to scikit-image per frame, on arrays and on mp4 files, and through evaluate.load."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import benchmark.metrics
from benchmark.video_metrics import LUMA_BT601, psnr_frames, score_video_pair, ssim_frames
from mit_dataset.video_io import read_video_frames, write_video

TOLERANCE = 1e-4


def _pair(seed=0, shape=(5, 48, 64, 3)):
    """A textured frame stack and a degraded copy (noise, a shift, one unrelated frame)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[1], 0 : shape[2]]
    base = 128 + 60 * np.sin(xx[..., None] / 5.0 + np.arange(3)) * np.cos(yy[..., None] / 7.0)
    reference = np.clip(base[None] + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
    prediction = np.clip(np.roll(reference, 1, axis=2).astype(int) + rng.integers(-30, 30, shape), 0, 255)
    prediction[2] = rng.integers(0, 256, shape[1:])
    return prediction.astype(np.uint8), reference


def _skimage_ssim_rgb(pred, ref, data_range=255):
    return [
        structural_similarity(
            r,
            p,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=data_range,
        )
        for p, r in zip(pred, ref)
    ]


def _skimage_ssim_gray7(pred, ref, data_range=255):
    luma = np.asarray(LUMA_BT601)
    return [
        structural_similarity(
            r.astype(np.float64) @ luma, p.astype(np.float64) @ luma, win_size=7, data_range=data_range
        )
        for p, r in zip(pred, ref)
    ]


def test_psnr_equals_skimage_per_frame():
    pred, ref = _pair()
    expected = [peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(pred, ref)]
    np.testing.assert_allclose(psnr_frames(pred, ref).numpy(), expected, atol=TOLERANCE, rtol=0)


def test_ssim_gaussian_rgb_equals_skimage_per_frame():
    pred, ref = _pair(1)
    values = ssim_frames(pred, ref).numpy()
    np.testing.assert_allclose(values, _skimage_ssim_rgb(pred, ref), atol=TOLERANCE, rtol=0)
    assert values[2] < values[0] - 0.05  # the unrelated frame scores lowest


def test_ssim_grayscale_7x7_equals_skimage_uniform_window_on_grayscale():
    pred, ref = _pair(2)
    values = ssim_frames(pred, ref, convention="grayscale_7x7").numpy()
    np.testing.assert_allclose(values, _skimage_ssim_gray7(pred, ref), atol=TOLERANCE, rtol=0)
    assert not np.allclose(values, ssim_frames(pred, ref).numpy(), atol=1e-3)  # a different convention


def test_float_input_uses_unit_range_and_matches_uint8():
    pred, ref = _pair(3)
    pred_f, ref_f = pred / 255.0, ref / 255.0
    np.testing.assert_allclose(psnr_frames(pred_f, ref_f).numpy(), psnr_frames(pred, ref).numpy(), atol=1e-9)
    np.testing.assert_allclose(ssim_frames(pred_f, ref_f).numpy(), ssim_frames(pred, ref).numpy(), atol=1e-6)
    expected = _skimage_ssim_rgb(pred_f, ref_f, data_range=1.0)
    np.testing.assert_allclose(
        ssim_frames(torch.from_numpy(pred_f), torch.from_numpy(ref_f)).numpy(),
        expected,
        atol=TOLERANCE,
        rtol=0,
    )


def test_explicit_data_range_is_used():
    pred, ref = _pair(4)
    expected = [peak_signal_noise_ratio(r, p, data_range=200) for p, r in zip(pred, ref)]
    np.testing.assert_allclose(psnr_frames(pred, ref, data_range=200).numpy(), expected, atol=TOLERANCE)
    expected = _skimage_ssim_rgb(pred, ref, data_range=200)
    np.testing.assert_allclose(ssim_frames(pred, ref, data_range=200).numpy(), expected, atol=TOLERANCE)


def test_bad_inputs_raise_clear_errors():
    pred, ref = _pair()
    with pytest.raises(ValueError, match="differ"):
        ssim_frames(pred[:, :40], ref)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr_frames(pred * 2.0, ref / 255.0)
    with pytest.raises(ValueError, match="convention"):
        ssim_frames(pred, ref, convention="7x7")


@pytest.fixture(scope="module")
def video_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    pred, ref = _pair(5, shape=(12, 64, 96, 3))
    return write_video(folder / "pred.mp4", pred), write_video(folder / "ref.mp4", ref), folder


def test_score_video_pair_on_files_matches_skimage_on_decoded_frames(video_pair):
    pred_path, ref_path, _ = video_pair
    pred, ref = read_video_frames(pred_path), read_video_frames(ref_path)
    values = score_video_pair(pred_path, ref_path, chunk_frames=5)  # chunks do not change the values
    np.testing.assert_allclose(values["ssim"], _skimage_ssim_rgb(pred, ref), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(
        values["psnr"],
        [peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(pred, ref)],
        atol=TOLERANCE,
    )


def test_score_video_pair_checks_frame_counts_and_sizes(video_pair, tmp_path):
    pred_path, ref_path, _ = video_pair
    short = write_video(tmp_path / "short.mp4", read_video_frames(pred_path)[:7])
    with pytest.raises(ValueError, match="truncate=True"):
        score_video_pair(short, ref_path)
    assert len(score_video_pair(short, ref_path, truncate=True)["psnr"]) == 7
    small = write_video(tmp_path / "small.mp4", read_video_frames(pred_path)[:, ::2, ::2])
    with pytest.raises(ValueError, match="resize_prediction=True"):
        score_video_pair(small, ref_path)
    assert len(score_video_pair(small, ref_path, resize_prediction=True)["ssim"]) == 12


def test_evaluate_load_offline_from_folder_on_video_paths(video_pair, monkeypatch):
    pred_path, ref_path, folder = video_pair
    monkeypatch.chdir(folder)  # loading must not depend on the working directory
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    pred, ref = read_video_frames(pred_path), read_video_frames(ref_path)

    psnr = evaluate.load(benchmark.metrics.path("psnr"))
    result = psnr.compute(
        predictions=[str(pred_path), str(ref_path)], references=[str(ref_path), str(ref_path)]
    )
    expected = np.mean([peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(pred, ref)])
    assert result["num_videos"] == 2 and result["num_frames"] == 24
    assert result["psnr_per_video"][0] == pytest.approx(expected, abs=TOLERANCE)
    assert result["psnr_per_video"][1] == 100.0  # identical video: clamped at max_db
    assert result["psnr"] == pytest.approx((expected + 100.0) / 2, abs=TOLERANCE)

    ssim = evaluate.load(benchmark.metrics.path("ssim"))
    result = ssim.compute(predictions=[str(pred_path)], references=[str(ref_path)])
    assert result["convention"] == "gaussian_rgb"
    assert result["ssim"] == pytest.approx(np.mean(_skimage_ssim_rgb(pred, ref)), abs=TOLERANCE)
    result = ssim.compute(
        predictions=[str(pred_path)], references=[str(ref_path)], convention="grayscale_7x7"
    )
    assert result["ssim"] == pytest.approx(np.mean(_skimage_ssim_gray7(pred, ref)), abs=TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("convention", ["gaussian_rgb", "grayscale_7x7"])
def test_compiled_metrics_equal_eager(convention):
    pred, ref = _pair(6, shape=(3, 40, 56, 3))
    eager = ssim_frames(pred, ref, convention=convention).numpy()
    compiled = ssim_frames(pred, ref, convention=convention, compile=True).numpy()
    np.testing.assert_allclose(compiled, eager, atol=1e-6, rtol=0)
    compiled = psnr_frames(pred, ref, compile=True).numpy()
    np.testing.assert_allclose(compiled, psnr_frames(pred, ref).numpy(), atol=1e-6, rtol=0)
