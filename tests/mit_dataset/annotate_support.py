"""Helpers for the annotation-pipeline tests: scoring a pipeline run against a synthetic episode's truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mit_dataset.annotate import AnnotateConfig
from mit_dataset.synthetic.episode import EpisodeTruth

#: Tiny episodes: 128x72 frames (faces ~12 px), so the clip thresholds are scaled down with them.
UNIT = 25
TINY_CONFIG = AnnotateConfig(min_clip_frames=UNIT, min_face_size=8)


def expected_names(truth: EpisodeTruth, config: AnnotateConfig = TINY_CONFIG) -> list[str]:
    return sorted(truth.clip_name(c) for c in truth.expected_clips(config.min_clip_frames))


def _speaker_info(folder: Path) -> list[dict]:
    return json.loads((folder / "speaker_info_with_instance_bbox.json").read_text())


def pose_accuracy(truth: EpisodeTruth, clips_dir: Path, config: AnnotateConfig = TINY_CONFIG) -> float:
    """Fraction of (person, frame) of the true clips whose written pose is the one the episode wrote for that
    person (or none where it wrote none), read from the clip folders' pose files (instances in person order)."""
    correct = total = 0
    for clip in truth.expected_clips(config.min_clip_frames):
        folder = clips_dir / truth.clip_name(clip)
        for t in range(clip.start, clip.end):
            instances = json.loads((folder / "pose" / f"{t - clip.start + 1:06d}.json").read_text())[
                "instance_info"
            ]
            for p, index in enumerate(clip.appearances):
                appearance = truth.appearances[index]
                ours = np.column_stack([instances[p]["keypoints"], instances[p]["keypoint_scores"]])
                want = appearance.written_pose[t - appearance.first]
                if np.isnan(want).any():
                    correct += bool((ours[:, 2] == 0).all())
                else:
                    correct += bool(np.allclose(ours, want, atol=0.01))
                total += 1
    return correct / total


#: Transitions between speaking and listening runs at least this long (0.2 s) are scored: a back-channel of
#: two frames ("mm") is below what a 5-frame-smoothed score can resolve.
MIN_RUN_FRAMES = 5


def _transitions(flags: np.ndarray, min_run: int = 1) -> np.ndarray:
    """Frames ``t`` where ``flags[t] != flags[t + 1]`` and the runs on both sides are ``min_run`` long."""
    edges = np.flatnonzero(np.diff(flags.astype(int)))
    bounds = np.concatenate([[-1], edges, [len(flags) - 1]])
    runs = np.diff(bounds)
    return np.asarray([e for k, e in enumerate(edges) if runs[k] >= min_run and runs[k + 1] >= min_run], int)


def transition_errors(
    truth: EpisodeTruth, clips_dir: Path, config: AnnotateConfig = TINY_CONFIG
) -> tuple[np.ndarray, int, int]:
    """Per true speaking/listening transition (between runs of >= :data:`MIN_RUN_FRAMES`), seconds to the nearest
    transition of the written scores (``raw > 0``); plus the numbers of all true and all written transitions."""
    errors, num_true, num_ours = [], 0, 0
    for clip in truth.expected_clips(config.min_clip_frames):
        info = _speaker_info(clips_dir / truth.clip_name(clip))
        for p, index in enumerate(clip.appearances):
            appearance = truth.appearances[index]
            ours = _transitions(np.asarray(info[p]["speaking_score"]) > 0)
            flags = appearance.speaking[clip.start - appearance.first : clip.end - appearance.first]
            true = _transitions(flags, MIN_RUN_FRAMES)
            num_true, num_ours = num_true + len(_transitions(flags)), num_ours + len(ours)
            errors += [np.abs(ours - x).min() / truth.fps if len(ours) else np.inf for x in true]
    return np.asarray(errors), num_true, num_ours
