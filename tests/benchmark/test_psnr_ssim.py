"""PSNR / SSIM: equal to scikit-image per frame, on arrays and on mp4 files, and through evaluate.load."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import benchmark.metrics
from benchmark import video_metrics
from benchmark.video_metrics import LUMA_BT601, frame_metrics, psnr_frames, score_video_pair, ssim_frames
from mit_dataset.frame_decoder import iter_frames
from mit_dataset.geometry import FrameTransform
from mit_dataset.video_io import read_video_frames, write_video

TOLERANCE = 1e-4
#: float32 against scikit-image's float64 on 8-bit frames: the moment maps are exact, only filtering rounds.
UINT8_TOLERANCE = 1e-6
#: Saturated flat areas (all 255 against nearly 255): variances of ~0 from second moments of ~65000.
SATURATED_TOLERANCE = 1e-5


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
    np.testing.assert_allclose(psnr_frames(pred, ref).numpy(), expected, atol=1e-9, rtol=0)


def test_ssim_gaussian_rgb_equals_skimage_per_frame():
    pred, ref = _pair(1)
    values = ssim_frames(pred, ref).numpy()
    np.testing.assert_allclose(values, _skimage_ssim_rgb(pred, ref), atol=UINT8_TOLERANCE, rtol=0)
    assert values[2] < values[0] - 0.05  # the unrelated frame scores lowest


@pytest.mark.parametrize("height", [11, 12, 43, 42 + 32 + 3])  # one output row; strips of 32 with remainders
def test_strip_boundaries_and_both_metrics_at_once(height):
    pred, ref = _pair(7, shape=(3, height, 23, 3))
    values = frame_metrics(pred, ref)  # PSNR taken from the SSIM pass's squared differences
    np.testing.assert_allclose(values["ssim"].numpy(), _skimage_ssim_rgb(pred, ref), atol=UINT8_TOLERANCE)
    expected = [peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(pred, ref)]
    np.testing.assert_allclose(values["psnr"].numpy(), expected, atol=1e-9, rtol=0)


def test_extreme_frames_match_skimage():
    """Identical, flat, black-vs-white and saturated frames: where cancellation would show."""
    rng = np.random.default_rng(8)
    textured = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    black, white = np.zeros_like(textured), np.full_like(textured, 255)
    pred = np.stack([textured, black, black, white, np.full_like(textured, 128)])
    ref = np.stack([textured, black, white, np.clip(textured.astype(int) + 200, 0, 255).astype(np.uint8),
                    np.full_like(textured, 129)])  # fmt: skip
    values = frame_metrics(pred, ref)
    assert values["ssim"][0] == 1.0 and values["ssim"][1] == 1.0  # identical frames: exactly 1
    assert torch.isinf(values["psnr"][:2]).all()  # as scikit-image
    np.testing.assert_allclose(values["ssim"].numpy(), _skimage_ssim_rgb(pred, ref), atol=SATURATED_TOLERANCE)
    expected = [peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(pred[2:], ref[2:])]
    np.testing.assert_allclose(values["psnr"][2:].numpy(), expected, atol=1e-9, rtol=0)


def test_gpu_layout_single_strip_batches_equal_cpu_strips():
    """The GPU configuration (a batch of whole frames as one strip) computed on CPU gives the same values."""
    pred, ref = _pair(9, shape=(4, 80, 50, 3))
    strips = frame_metrics(pred, ref, compile=False)
    ssim_sums, squared_errors = video_metrics._strip_sums(
        torch.from_numpy(pred), torch.from_numpy(ref), 255.0, "gaussian_rgb", strip_rows=80
    )
    np.testing.assert_allclose(ssim_sums.numpy() / (70 * 40 * 3), strips["ssim"].numpy(), atol=1e-7, rtol=0)
    mse = squared_errors / pred[0].size
    np.testing.assert_allclose(10 * np.log10(255.0**2 / mse.numpy()), strips["psnr"].numpy(), atol=1e-9)


@pytest.mark.parametrize("convention", ["gaussian_rgb", "grayscale_7x7"])
def test_compiled_kernel_equals_eager(convention):
    """The default for large frames on CPU (compile=None compiles from COMPILE_MIN_PIXELS up)."""
    pred, ref = _pair(6, shape=(3, 40, 56, 3))
    eager = frame_metrics(pred, ref, ssim_convention=convention, compile=False)
    compiled = frame_metrics(pred, ref, ssim_convention=convention, compile=True)
    np.testing.assert_allclose(compiled["ssim"].numpy(), eager["ssim"].numpy(), atol=1e-7, rtol=0)
    np.testing.assert_array_equal(compiled["psnr"].numpy(), eager["psnr"].numpy())


def test_failed_compilation_falls_back_to_the_eager_kernel(monkeypatch):
    def no_compiler():
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(video_metrics, "_compiled_kernel", lambda: lambda *args: no_compiler())
    monkeypatch.setattr(video_metrics, "_compile_failed", False)
    pred, ref = _pair(10, shape=(3, 24, 32, 3))
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler found.*eager kernel"):
        values = frame_metrics(pred, ref, compile=True)
    np.testing.assert_allclose(values["ssim"].numpy(), _skimage_ssim_rgb(pred, ref), atol=UINT8_TOLERANCE)
    assert video_metrics._compile_failed  # not retried for every frame


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
    with pytest.raises(ValueError, match=r"size=\(height, width\)"):
        score_video_pair(small, ref_path)
    assert len(score_video_pair(small, ref_path, size=(32, 48))["ssim"]) == 12


def test_size_brings_both_videos_there_with_the_cover_transform(video_pair):
    """``size`` decodes both mp4s through FrameTransform.cover (FFmpeg scaling), as the training view does."""
    pred_path, ref_path, _ = video_pair  # 96x64
    transform = FrameTransform.cover(64, 96, 40, 48)  # scale 0.625 -> 60x40, crop 6 columns each side
    assert (transform.resized_width, transform.offset_x) == (60, 6)
    pred = np.stack(list(iter_frames(pred_path.read_bytes(), transform)))
    ref = np.stack(list(iter_frames(ref_path.read_bytes(), transform)))
    values = score_video_pair(pred_path, ref_path, size=(40, 48), chunk_frames=5)
    expected = frame_metrics(pred, ref)
    np.testing.assert_allclose(values["ssim"], expected["ssim"].numpy(), atol=1e-12)
    np.testing.assert_allclose(values["psnr"], expected["psnr"].numpy(), atol=1e-12)
    arrays = score_video_pair(read_video_frames(pred_path), read_video_frames(ref_path), size=(40, 48))
    np.testing.assert_allclose(arrays["ssim"], values["ssim"], atol=0.02)  # torch vs FFmpeg bilinear


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
