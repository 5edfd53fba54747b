"""Speaker sync separates videos whose mouths follow each speaker's own voice from swapped speaking scores."""

from __future__ import annotations

from pathlib import Path

import evaluate
import numpy as np
import pytest
from talking_video import render_conversation, turn_schedule

import benchmark.metrics
from benchmark.protocol import EvaluationSize
from benchmark.speaker_sync import clip_speaker_sync, mouth_motion_energy, score_video, speaker_sync_scores
from mit_dataset.frame_decoder import iter_frames
from mit_dataset.synthetic import generate_records
from mit_dataset.video_io import write_video


def _swapped(scores: np.ndarray) -> np.ndarray:
    """Each person gets the next person's speaking scores."""
    return np.roll(scores, 1, axis=0)


@pytest.fixture(scope="module")
def conversation():
    scores = turn_schedule(3, 100)
    frames, boxes = render_conversation(scores, seed=3)
    return frames, boxes, scores


@pytest.fixture(scope="module")
def synthetic_records(tmp_path_factory):
    return generate_records(tmp_path_factory.mktemp("synthetic"), num_clips=4, seed=0, progress=False)


def test_hand_made_conversation_separates_true_from_swapped_scores(conversation):
    frames, boxes, scores = conversation
    truth = score_video(frames, boxes, scores)
    swapped = score_video(frames, boxes, _swapped(scores))
    assert truth["speaker_sync"] > 0.8 and swapped["speaker_sync"] < 0.0
    assert truth["false_talking_rate"] < 0.1 and swapped["false_talking_rate"] > 0.5
    assert truth["num_speaking_frames"] == 100 and truth["num_listening_frames"] == 200


def test_synthetic_clips_separate_true_from_swapped_scores(synthetic_records):
    truth, swapped = [], []
    for record in synthetic_records:
        boxes = np.stack([p.face_boxes for p in record.persons])
        scores = np.stack([p.speaking_score for p in record.persons])
        truth.append(score_video(record.video_path, boxes, scores))
        swapped.append(score_video(record.video_path, boxes, _swapped(scores)))
    sync_truth = np.array([r["speaker_sync"] for r in truth])
    sync_swapped = np.array([r["speaker_sync"] for r in swapped])
    defined = np.isfinite(sync_truth) & np.isfinite(sync_swapped)
    assert defined.sum() >= 2
    assert (sync_truth[defined] > sync_swapped[defined] + 0.3).all()
    assert np.nanmean(sync_truth) > 0.5
    false_truth = np.nanmean([r["false_talking_rate"] for r in truth])
    false_swapped = np.nanmean([r["false_talking_rate"] for r in swapped])
    assert false_truth < 0.25 and false_swapped > false_truth + 0.4


def test_chunking_does_not_change_the_energy(conversation):
    frames, boxes, _ = conversation
    np.testing.assert_allclose(
        mouth_motion_energy(frames, boxes, chunk_frames=7), mouth_motion_energy(frames, boxes), atol=1e-6
    )


def test_person_without_turns_is_left_out():
    energy = np.random.default_rng(0).random((2, 40))
    scores = np.stack([np.full(40, 0.9), np.linspace(-1, 1, 40)])  # person 0 speaks throughout
    result = speaker_sync_scores(energy, scores)
    assert np.isnan(result["per_person"][0]) and np.isfinite(result["per_person"][1])
    assert result["speaker_sync"] == pytest.approx(result["per_person"][1])


def test_bad_shapes_raise(conversation):
    frames, boxes, scores = conversation
    with pytest.raises(ValueError, match="face_boxes"):
        score_video(frames, boxes[..., :3], scores)
    with pytest.raises(ValueError, match="speaking_scores"):
        score_video(frames, boxes, scores[:, :50])


def test_mit_row_with_boxes_in_annotation_pixels(synthetic_records, tmp_path):
    record = synthetic_records[0]
    row = {
        "width": record.width * 2,
        "height": record.height * 2,
        "persons": [
            {"face_boxes": p.face_boxes * 2, "speaking_score": p.speaking_score} for p in record.persons
        ],
    }
    boxes = np.stack([p.face_boxes for p in record.persons])
    scores = np.stack([p.speaking_score for p in record.persons])
    expected = score_video(record.video_path, boxes, scores)["speaker_sync"]
    assert clip_speaker_sync(record.video_path, row) == pytest.approx(expected, abs=1e-6)


def test_evaluate_load_speaker_sync_on_video_paths(conversation, tmp_path, monkeypatch):
    frames, boxes, scores = conversation
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    video = str(write_video(tmp_path / "conversation.mp4", frames))
    metric = evaluate.load(benchmark.metrics.path("speaker_sync"))
    result = metric.compute(
        predictions=[video, video],
        face_boxes=[boxes, boxes.tolist()],
        speaking_scores=[scores, _swapped(scores)],
    )
    truth, swapped = result["speaker_sync_per_video"]
    assert truth > 0.8 and swapped < 0.0
    assert result["false_talking_rate_per_video"][0] < result["false_talking_rate_per_video"][1]
    assert result["num_videos"] == 2 and result["num_persons_scored"] == 6
    half = metric.compute(
        predictions=[video], face_boxes=[boxes / 2], speaking_scores=[scores], annotation_size=(96, 48)
    )
    assert half["speaker_sync"] == pytest.approx(truth, abs=1e-5)


def test_boxes_follow_the_cover_transform_of_the_evaluation_size(synthetic_records):
    """A video brought to the evaluation size (here another aspect ratio: columns cropped) is scored with the
    row's boxes mapped by the same transform, so the same mouths are measured."""
    record = synthetic_records[0]  # 128x72
    row = {
        "width": record.width,
        "height": record.height,
        "persons": [{"face_boxes": p.face_boxes, "speaking_score": p.speaking_score} for p in record.persons],
    }
    transform = EvaluationSize(height=64, width=96).transform(record.height, record.width)
    assert transform.offset_x > 0  # a crop, not a plain rescale
    frames = np.stack(list(iter_frames(Path(record.video_path).read_bytes(), transform)))
    boxes = np.stack([p.face_boxes for p in record.persons])
    scores = np.stack([p.speaking_score for p in record.persons])
    expected = score_video(frames, transform.apply_boxes(boxes), scores)["speaker_sync"]
    assert clip_speaker_sync(frames, row) == pytest.approx(expected, abs=1e-9)
    native = score_video(record.video_path, boxes, scores)["speaker_sync"]
    assert clip_speaker_sync(frames, row) == pytest.approx(native, abs=0.1)
