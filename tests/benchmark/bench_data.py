"""Tiny MIT test splits for the benchmark tests (built with the real schema, no generator needed)."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np

from benchmark.protocol import EvaluationSize
from mit_dataset.clip import ClipRecord, PersonTrack
from mit_dataset.features import MIT_FEATURES, SAMPLING_RATE
from mit_dataset.masks import box_mask_rle
from mit_dataset.video_io import write_video

#: (clip_id, subset, difficulty) of the default tiny test split: every Table 2 cell has at least one clip.
DEFAULT_CLIPS = (
    ("easy_two_0", "two_human", "easy"),
    ("easy_multi_0", "multi_human", "easy"),
    ("hard_two_0", "two_human", "challenging"),
    ("hard_multi_0", "multi_human", "challenging"),
)


#: The default tiny clips' own size (32x24) as the evaluation size: every transform is the identity, so these
#: tests score exactly the frames they wrote. Tests of the protocol itself use other sizes.
CLIP_SIZE = EvaluationSize(height=24, width=32)


def clip_frames(seed: int, num_frames: int, height: int, width: int) -> np.ndarray:
    """Smooth moving texture (uint8), so that SSIM and PSNR have something to measure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    frames = []
    for t in range(num_frames):
        channels = [0.5 + 0.4 * np.sin(xx / (3 + c) + yy / (5 + c) + phases[c] + 0.3 * t) for c in range(3)]
        frames.append(np.stack(channels, axis=-1))
    return (np.clip(np.stack(frames), 0, 1) * 255).round().astype(np.uint8)


def make_record(
    directory: Path, clip_id: str, subset: str, difficulty: str, seed: int, num_frames=8, width=32, height=24
) -> ClipRecord:
    rng = np.random.default_rng(seed)
    audio = (0.1 * rng.standard_normal(int(num_frames / 25 * SAMPLING_RATE) + 400)).astype(np.float32)
    video = write_video(directory / f"{clip_id}.mp4", clip_frames(seed, num_frames, height, width), fps=25)
    persons = []
    num_persons = 2 if subset == "two_human" else 3
    for index in range(num_persons):
        x0 = width * index / num_persons
        box = np.array([x0, 2, x0 + width / num_persons - 1, height - 2], np.float32)
        keypoints = np.zeros((num_frames, 59, 3), np.float32)
        keypoints[..., 0] = rng.uniform(box[0], box[2], size=(num_frames, 59))
        keypoints[..., 1] = rng.uniform(box[1], box[3], size=(num_frames, 59))
        keypoints[..., 2] = 0.9
        face = np.array([box[0] + 1, box[1], box[2] - 1, box[1] + height / 3], np.float32)
        persons.append(
            PersonTrack(
                person_id=f"p{index}",
                identity=f"id{seed}_{index}",
                keypoints=keypoints,
                boxes=np.tile(box, (num_frames, 1)),
                face_boxes=np.tile(face, (num_frames, 1)),
                speaking_score_raw=rng.uniform(-3, 3, num_frames).astype(np.float32),
                mask_rle=[box_mask_rle(box, height, width)] * num_frames,
            )
        )
    return ClipRecord(
        clip_id=clip_id,
        source="synthetic",
        subset=subset,
        split="test",
        difficulty=difficulty,
        video_path=video,
        audio=audio,
        num_frames=num_frames,
        width=width,
        height=height,
        persons=persons,
    ).validate()


def make_test_split(directory: Path, clips=DEFAULT_CLIPS, **sizes) -> datasets.Dataset:
    """A test split with one row per ``(clip_id, subset, difficulty)``; ground-truth mp4s go to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = [
        make_record(directory, clip_id, subset, difficulty, seed, **sizes).to_row()
        for seed, (clip_id, subset, difficulty) in enumerate(clips)
    ]
    return datasets.Dataset.from_list(rows, features=MIT_FEATURES)


def write_tiny_detector(path: Path) -> Path:
    """A TorchScript file with the StyleGAN-V I3D call signature whose features are per-frame channel means
    (fast stand-in for the user-supplied detector)."""
    import torch

    class TinyDetector(torch.nn.Module):
        def forward(
            self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
        ):
            return x.mean(dim=(3, 4)).flatten(1)

    torch.jit.script(TinyDetector()).save(str(path))
    return Path(path)


def ground_truth_submission(dataset: datasets.Dataset, out: Path) -> Path:
    """A predictions folder whose every mp4 is the ground-truth file itself (a perfect submission)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for row in dataset.cast_column("video", datasets.Video(decode=False)):
        (out / f"{row['clip_id']}.mp4").write_bytes(row["video"]["bytes"])
    return out
