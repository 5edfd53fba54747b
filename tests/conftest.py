"""Shared fixtures: tiny MIT clips and a written MIT dataset folder.

``synthetic_records`` (session): 8 synthetic clips (128x72, 1.2 s) over both subsets and both splits.
``synthetic_dataset_dir`` (session): those clips written as a script-free dataset folder.
``make_record`` : factory for one tiny, valid :class:`~mit_dataset.clip.ClipRecord` (tests corrupt it).
``real_media`` (session): the folder of real media made by others (``../shared/real`` beside the clone, or
``$MIT_TALK_REAL_MEDIA``); tests using it skip with the reason when it is absent, as in a user's clone.
"""

from __future__ import annotations

import logging
import os

# Tests never reach a hub: set before datasets / huggingface_hub read their config.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest

from mit_dataset.clip import ClipRecord, PersonTrack
from mit_dataset.features import FPS, SAMPLING_RATE
from mit_dataset.keypoints import NUM_KEYPOINTS, NUM_WHOLEBODY_KEYPOINTS, WHOLEBODY_INDICES
from mit_dataset.masks import box_mask_rle
from mit_dataset.video_io import write_video

REPO = Path(__file__).resolve().parents[1]

TINY_WIDTH, TINY_HEIGHT, TINY_SECONDS = 128, 72, 1.2
REAL_MEDIA_DIR = Path(
    os.environ.get("MIT_TALK_REAL_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "real")
)


@pytest.fixture(scope="session")
def real_media() -> Path:
    """``../shared/real`` (see its SOURCES.md): real talking-head videos, speech and portraits, read-only."""
    if not (REAL_MEDIA_DIR / "SOURCES.md").is_file():
        pytest.skip(
            f"real media folder {REAL_MEDIA_DIR} is absent (it lies beside the clone in CI, not in a user's "
            "clone); set MIT_TALK_REAL_MEDIA to run these tests"
        )
    return REAL_MEDIA_DIR


def make_tiny_record(
    folder: Path,
    clip_id: str,
    subset: str = "two_human",
    split: str = "train",
    difficulty: str = "",
    num_people: int = 2,
    width: int = TINY_WIDTH,
    height: int = TINY_HEIGHT,
    seconds: float = TINY_SECONDS,
    seed: int = 0,
    with_133: bool = False,
) -> ClipRecord:
    """A small valid clip: coloured moving frames (mp4 written under ``folder``), a tone, and
    ``num_people`` people standing side by side with confident keypoints inside their boxes."""
    rng = np.random.default_rng(seed)
    num_frames = round(seconds * FPS)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    base = rng.integers(30, 220, size=3)
    for t in range(num_frames):
        frames[t] = (base + 3 * t) % 256
        frames[t, :, (2 * t) % width] = 255
    video_path = write_video(Path(folder) / f"{clip_id}.mp4", frames, fps=FPS)
    samples = round(seconds * SAMPLING_RATE)
    audio = (0.2 * np.sin(2 * np.pi * (200 + 40 * seed) * np.arange(samples) / SAMPLING_RATE)).astype(
        np.float32
    )
    persons = []
    slot = width / num_people
    for i in range(num_people):
        x1, x2 = i * slot + 2, (i + 1) * slot - 2
        box = np.array([x1, 0.2 * height, x2, height - 1], np.float32)
        boxes = np.repeat(box[None], num_frames, 0) + rng.normal(0, 0.5, (num_frames, 4)).astype(np.float32)
        keypoints_133 = np.empty((num_frames, NUM_WHOLEBODY_KEYPOINTS, 3), np.float32)
        keypoints_133[..., 0] = rng.uniform(x1 + 2, x2 - 2, (num_frames, NUM_WHOLEBODY_KEYPOINTS))
        keypoints_133[..., 1] = rng.uniform(0.25 * height, height - 3, (num_frames, NUM_WHOLEBODY_KEYPOINTS))
        keypoints_133[..., 2] = rng.uniform(0.5, 1.0, (num_frames, NUM_WHOLEBODY_KEYPOINTS))
        face = np.array([x1 + slot * 0.3, 0.2 * height, x2 - slot * 0.3, 0.45 * height], np.float32)
        raw = (3.2 * np.sin(np.arange(num_frames) / 5 + i * np.pi)).astype(np.float32)
        persons.append(
            PersonTrack(
                person_id=f"p{i}",
                identity=f"{subset}-identity-{(seed + i) % 5}",
                keypoints=keypoints_133[:, list(WHOLEBODY_INDICES)].copy(),
                boxes=boxes,
                face_boxes=np.repeat(face[None], num_frames, 0),
                speaking_score_raw=raw,
                mask_rle=[box_mask_rle(b, height, width) for b in boxes],
                keypoints_133=keypoints_133 if with_133 else None,
            )
        )
    assert persons[0].keypoints.shape[1] == NUM_KEYPOINTS
    return ClipRecord(
        clip_id=clip_id,
        source="synthetic",
        subset=subset,
        split=split,
        video_path=video_path,
        audio=audio,
        num_frames=num_frames,
        width=width,
        height=height,
        persons=persons,
        difficulty=difficulty,
    )


@pytest.fixture
def make_record(tmp_path):
    """Factory: ``make_record(clip_id="c0", **kwargs)`` -> a tiny valid ClipRecord in ``tmp_path``."""

    def make(clip_id: str = "clip0", **kwargs) -> ClipRecord:
        return make_tiny_record(tmp_path / "videos", clip_id, **kwargs)

    return make


@pytest.fixture(scope="session")
def synthetic_records(tmp_path_factory) -> list[ClipRecord]:
    """8 synthetic clips (:func:`mit_dataset.synthetic.generate_records`, seed 0, 128x72, 1.2 s = 30 frames):
    4 train, 2 test-easy, 2 test-challenging, each group alternating two_human / multi_human, so every
    config and split is non-empty. Shared by the whole session: do not mutate them."""
    from mit_dataset.synthetic import generate_records

    folder = tmp_path_factory.mktemp("synthetic_records")
    return generate_records(
        folder, 8, seed=0, width=TINY_WIDTH, height=TINY_HEIGHT, seconds=TINY_SECONDS, progress=False
    )


@pytest.fixture(scope="session")
def synthetic_dataset_dir(tmp_path_factory, synthetic_records) -> Path:
    """``synthetic_records`` written as a script-free MIT dataset folder (treat as read-only)."""
    from mit_dataset.hub import write_dataset_folder

    return write_dataset_folder(
        synthetic_records, tmp_path_factory.mktemp("mit") / "mit-talking", progress=False
    )


def assert_row_matches_record(row: dict, record: ClipRecord, exact_media: bool = True) -> None:
    """Compare every field of a loaded MIT row (python format, decoded video/audio) with a record.

    ``exact_media``: the row embeds the record's own mp4 (bytes equal) and its audio (FLAC, lossless).
    """
    assert row["clip_id"] == record.clip_id
    for name in ("source", "subset", "split", "difficulty", "num_frames", "width", "height"):
        assert row[name] == getattr(record, name), name
    assert row["num_speakers"] == len(record.persons)
    assert row["fps"] == pytest.approx(record.fps)
    video = row["video"]
    assert video.metadata.num_frames == record.num_frames
    assert (video.metadata.width, video.metadata.height) == (record.width, record.height)
    assert len(video) == record.num_frames and tuple(video[record.num_frames - 1].shape) == (
        3,
        record.height,
        record.width,
    )
    samples = row["audio"].get_all_samples()
    assert samples.sample_rate == SAMPLING_RATE
    if exact_media:
        assert samples.data.shape == (1, len(record.audio))
        np.testing.assert_allclose(samples.data[0].numpy(), record.audio, atol=1e-4)
    else:
        assert abs(samples.data.shape[1] - len(record.audio)) < 2048
    assert len(row["persons"]) == len(record.persons)
    for got, person in zip(row["persons"], record.persons):
        assert got["person_id"] == person.person_id and got["identity"] == person.identity
        np.testing.assert_array_equal(np.asarray(got["keypoints"], np.float32), person.keypoints)
        expected_133 = person.keypoints_133
        if expected_133 is None:
            expected_133 = np.zeros((0, NUM_WHOLEBODY_KEYPOINTS, 3), np.float32)
        np.testing.assert_array_equal(
            np.asarray(got["keypoints_133"], np.float32).reshape(-1, 133, 3), expected_133
        )
        np.testing.assert_array_equal(np.asarray(got["boxes"], np.float32), person.boxes)
        np.testing.assert_array_equal(np.asarray(got["face_boxes"], np.float32), person.face_boxes)
        np.testing.assert_array_equal(
            np.asarray(got["speaking_score_raw"], np.float32), person.speaking_score_raw
        )
        np.testing.assert_array_equal(np.asarray(got["speaking_score"], np.float32), person.speaking_score)
        assert got["mask_rle"] == list(person.mask_rle)


@pytest.fixture(scope="session")
def assert_row_matches():
    """``assert_row_matches(row, record, exact_media=True)``: every field of a loaded row equals the record."""
    return assert_row_matches_record


@pytest.fixture
def diffusers_log():
    """Messages the ``diffusers`` loggers emit during the test (their handler writes wherever stderr was at
    import time, so capture at the logger)."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("diffusers")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


@pytest.fixture
def subprocess_env() -> dict:
    """Environment for subprocesses that must import this checkout: this tree first, one thread, offline."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
