"""VBench-style consistency: the formula, and tiny local DINO-like (ViT) and CLIP-like feature models."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
import torch
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

import benchmark.metrics
from benchmark.consistency import FrameFeatureExtractor, consistency_from_features, video_consistency
from mit_dataset.video_io import write_video

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature_models")
    torch.manual_seed(0)
    vit = root / "tiny-dino"
    ViTModel(ViTConfig(image_size=32, patch_size=8, **TINY), add_pooling_layer=False).save_pretrained(vit)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)
    clip = root / "tiny-clip"
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(image_size=32, patch_size=8, projection_dim=16, **TINY)
    ).save_pretrained(clip)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        clip
    )
    return vit, clip


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("consistency_videos")
    rng = np.random.default_rng(0)
    still = np.repeat(rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8), 12, axis=0)
    flicker = rng.integers(0, 256, (12, 48, 64, 3), dtype=np.uint8)
    return str(write_video(folder / "still.mp4", still)), str(write_video(folder / "flicker.mp4", flicker))


def test_formula_on_known_features():
    f0, f1, f2 = [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]
    # t=1: prev cos(f1, f0) = 0, first 0 -> 0; t=2: prev cos(f2, f1) = first cos(f2, f0) = 1/sqrt(2).
    assert consistency_from_features([f0, f1, f2]) == pytest.approx((0 + 1 / np.sqrt(2)) / 2)
    assert consistency_from_features([[1.0, 0.0], [-1.0, 0.0]]) == 0.0  # negative similarity clipped at 0
    assert consistency_from_features(np.ones((5, 3))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="F >= 2"):
        consistency_from_features(np.ones((1, 3)))


@pytest.mark.parametrize("which", [0, 1])
def test_static_video_is_fully_consistent_and_flicker_is_not(models, videos, which):
    extractor = FrameFeatureExtractor(models[which])
    still, flicker = videos
    assert video_consistency(still, extractor, batch_size=5) == pytest.approx(1.0, abs=1e-5)
    assert video_consistency(flicker, extractor) < 0.999
    # Strided scoring uses frames 0, 3, 6, 9, whatever the batch size.
    assert video_consistency(flicker, extractor, frame_stride=3, batch_size=1) == pytest.approx(
        video_consistency(flicker, extractor, frame_stride=3, batch_size=4), abs=1e-6
    )


def test_clip_like_model_uses_projected_embeddings(models):
    extractor = FrameFeatureExtractor(models[1])
    assert extractor(np.zeros((2, 40, 40, 3), np.uint8)).shape == (2, 16)


def test_missing_model_folder_says_what_to_save(tmp_path):
    with pytest.raises(FileNotFoundError, match="dino-vitb16"):
        FrameFeatureExtractor(tmp_path / "missing")


def test_evaluate_load_vbench_consistency(models, videos, monkeypatch):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    metric = evaluate.load(benchmark.metrics.path("vbench_consistency"))
    result = metric.compute(predictions=list(videos), model_path=str(models[0]))
    still, flicker = result["consistency_per_video"]
    assert still == pytest.approx(1.0, abs=1e-5) and flicker < still
    assert result["num_videos"] == 2 and "ViTModel" in result["model"]


def test_mit_bench_evaluate_scores_vbench_consistency(models, tmp_path, monkeypatch, capsys):
    """``--metrics vbench_consistency`` (the README's metric table) is selectable in the runner."""
    from bench_data import CLIP_SIZE, ground_truth_submission, make_test_split

    from benchmark.scoring import CONSISTENCY_MODEL_ENV, evaluate_submission
    from mit_dataset.video_io import read_video_frames
    from mit_talk.cli import mit_bench

    monkeypatch.delenv(CONSISTENCY_MODEL_ENV, raising=False)
    split = make_test_split(tmp_path / "gt", num_frames=8)
    split.save_to_disk(str(tmp_path / "dataset"))
    predictions = ground_truth_submission(split, tmp_path / "pred")
    args = ["evaluate", "--dataset", str(tmp_path / "dataset"), "--predictions", str(predictions),
            "--metrics", "psnr,vbench_consistency", "--eval-size", str(CLIP_SIZE), "--no-progress"]  # fmt: skip
    assert mit_bench([*args, "--out", str(tmp_path / "r.json"), "--consistency-model", str(models[0])]) == 0
    assert "Consistency ↑" in capsys.readouterr().out
    results, _ = evaluate_submission(
        str(tmp_path / "dataset"), predictions, metrics=["vbench_consistency"], consistency_model=str(models[0]),
        progress=False, evaluation_size=CLIP_SIZE,  # the clips' own size: the frames read below
    )  # fmt: skip
    extractor = FrameFeatureExtractor(models[0])
    for clip in results.per_clip:
        frames = read_video_frames(predictions / f"{clip['clip_id']}.mp4")
        assert clip["vbench_consistency"] == pytest.approx(video_consistency(frames, extractor), abs=1e-9)
    assert "tiny-dino" in results.conventions["vbench_consistency"]

    assert mit_bench([*args, "--out", str(tmp_path / "r2.json")]) == 0  # no model: skipped, and said so
    assert f"${CONSISTENCY_MODEL_ENV}" in capsys.readouterr().out
