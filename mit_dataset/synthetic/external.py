"""The external annotation files of a raw episode, in the exact formats of the tools the authors ran, with
documented detector noise (:class:`AnnotationNoise`).

Written under ``raw_dir/<source>/<video>/`` (the raw layout :mod:`mit_dataset.annotate` reads):

- ``pywork/tracks.pckl``, ``pywork/scores.pckl``: the TalkNet-ASD demo's outputs. ``tracks.pckl`` is a list of
  ``{'track': {'frame': (N,) int array, 'bbox': (N, 4) float array}, 'proc_track': {'x', 'y', 's'}}`` (one
  face track per on-screen appearance, frames global); ``scores.pckl`` one float array of raw class-1 logits
  per track, up to ``score_short`` entries SHORTER than the track. Tracks are listed in shuffled order.
- ``pose/output_%04d.json``: Sapiens, one file per frame named after the frames the official pipeline extracts
  (``frames/output_%04d.png``, 1-based). Layout ``"full"`` (``meta_info`` + per instance ``bbox`` as
  ``[[x1, y1, x2, y2]]`` and ``bbox_score``) or ``"lite"`` (keypoints and scores only); ``"mixed"``
  alternates per shot. Instances are shuffled in every frame.
- ``labels/output_%04d.txt``: YOLO(v7) ``detect.py --save-txt --save-conf`` lines ``class xc yc w h conf``
  normalised to [0, 1]; class 0 is a person; a frame without detections has no file.

The noise model, per field (every probability independent per frame / keypoint):

======================  ======================================================================================
face track boxes        Gaussian jitter of ``face_jitter`` x the face size; ``track_missing`` of a track's
                        inner frames are absent from ``frame``/``bbox`` (the importer interpolates them)
TalkNet scores          the truth (+2 speaking / -2 silent) blurred over ``score_blur`` frames, plus Gaussian
                        noise of std ``score_noise``; arrays cut 0..``score_short`` frames short
Sapiens keypoints       Gaussian jitter of ``keypoint_jitter`` x the head size; ``unsure_keypoints`` of the
                        points moved up to one head size with a score in [0.05, 0.35); ``pose_missing``: a
                        person's instance is absent; ``spurious_pose``: an extra instance of low-score points
                        scattered over the frame; ``pose_file_missing``: the frame's file is absent
YOLO person boxes       jitter of ``box_jitter`` x the box size; ``box_missing``: a person is not detected;
                        ``spurious_box``: a false person box (any score) in the backdrop above the heads;
                        ``other_class``: a non-person detection (class 56, chair) on the couch
======================  ======================================================================================

:meth:`AnnotationNoise.clean` turns every kind of noise off (truth written exactly, full layout).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..atomic import atomic_path
from .episode import Appearance, EpisodeTruth

#: The COCO-WholeBody dataset description Sapiens puts in ``meta_info`` (abridged: names only).
SAPIENS_META_INFO = {"dataset_name": "coco_wholebody", "num_keypoints": 133}
YOLO_PERSON, YOLO_CHAIR = 0, 56


@dataclass(frozen=True)
class AnnotationNoise:
    face_jitter: float = 0.03
    track_missing: float = 0.05
    score_blur: float = 1.0
    score_noise: float = 0.3
    score_short: int = 3
    keypoint_jitter: float = 0.05
    unsure_keypoints: float = 0.05
    pose_missing: float = 0.02
    spurious_pose: float = 0.05
    pose_file_missing: float = 0.005
    box_jitter: float = 0.02
    box_missing: float = 0.03
    spurious_box: float = 0.05
    other_class: float = 0.1
    pose_layout: str = "mixed"

    @classmethod
    def clean(cls) -> AnnotationNoise:
        zero = {name: 0 for name in cls.__dataclass_fields__ if name not in ("pose_layout",)}
        return replace(cls(), **zero, pose_layout="full")


def _size(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def _talknet(truth: EpisodeTruth, noise: AnnotationNoise, rng: np.random.Generator) -> tuple[list, list]:
    tracks, scores = [], []
    for appearance in truth.appearances:
        n = appearance.end - appearance.first
        boxes = (
            appearance.face_boxes
            + rng.normal(0, 1, (n, 4)) * noise.face_jitter * _size(appearance.face_boxes)[:, None]
        )
        keep = np.ones(n, bool)
        if n > 2:
            keep[1:-1] = rng.uniform(size=n - 2) >= noise.track_missing
        frames = appearance.frames[keep]
        boxes = boxes[keep]
        target = np.where(appearance.speaking, 2.0, -2.0)
        if noise.score_blur > 0:
            target = gaussian_filter1d(target, noise.score_blur, mode="nearest")
        logits = (target + rng.normal(0, noise.score_noise, n))[keep]
        short = int(rng.integers(0, noise.score_short + 1)) if noise.score_short else 0
        centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        tracks.append(
            {
                "track": {"frame": frames.astype(np.int64), "bbox": boxes.astype(np.float64)},
                "proc_track": {"x": centre_x, "y": centre_y, "s": _size(boxes) / 2},
            }
        )
        scores.append(logits[: max(len(logits) - short, 1)].astype(np.float32))
    order = rng.permutation(len(tracks))
    return [tracks[i] for i in order], [scores[i] for i in order]


def _noisy_pose(
    appearance: Appearance, t: int, noise: AnnotationNoise, rng: np.random.Generator, size
) -> np.ndarray:
    pose = appearance.keypoints_133[t].astype(np.float64).copy()
    head = max(float(_size(appearance.face_boxes[t : t + 1])[0]) / 2.8, 1.0)
    pose[:, :2] += rng.normal(0, noise.keypoint_jitter * head, (133, 2))
    unsure = rng.uniform(size=133) < noise.unsure_keypoints
    pose[unsure, :2] += rng.uniform(-head, head, (int(unsure.sum()), 2))
    pose[unsure, 2] = rng.uniform(0.05, 0.35, int(unsure.sum()))
    pose[:, 0] = np.clip(pose[:, 0], 0, size[0])
    pose[:, 1] = np.clip(pose[:, 1], 0, size[1])
    return np.round(pose, 2)


def _instance(pose: np.ndarray, layout: str) -> dict:
    instance = {"keypoints": pose[:, :2].tolist(), "keypoint_scores": pose[:, 2].tolist()}
    if layout == "full":
        confident = pose[pose[:, 2] >= 0.3, :2]
        box = np.concatenate([confident.min(0), confident.max(0)]) if len(confident) else np.zeros(4)
        instance["bbox"] = [np.round(box, 2).tolist()]
        instance["bbox_score"] = round(float(pose[:, 2].mean()), 4)
    return instance


def _on_screen(truth: EpisodeTruth) -> list[list[tuple[int, int]]]:
    """Per global frame: ``(appearance index, frame within the appearance)`` of everyone on screen."""
    frames: list[list[tuple[int, int]]] = [[] for _ in range(truth.num_frames)]
    for index, appearance in enumerate(truth.appearances):
        for k, t in enumerate(range(appearance.first, appearance.end)):
            frames[t].append((index, k))
    return frames


def _layout(noise: AnnotationNoise, shot: int) -> str:
    if noise.pose_layout == "mixed":
        return ("full", "lite")[shot % 2]
    if noise.pose_layout not in ("full", "lite"):
        raise ValueError(f"pose_layout must be 'full', 'lite' or 'mixed', got {noise.pose_layout!r}")
    return noise.pose_layout


def _shot_of(truth: EpisodeTruth, t: int) -> int:
    return next(i for i, (start, end) in enumerate(truth.shots) if start <= t < end)


def _write_poses(folder: Path, truth: EpisodeTruth, noise: AnnotationNoise, rng: np.random.Generator) -> None:
    size = (truth.width, truth.height)
    for appearance in truth.appearances:
        appearance.written_pose = np.full(appearance.keypoints_133.shape, np.nan, np.float32)
    for t, present in enumerate(_on_screen(truth)):
        if rng.uniform() < noise.pose_file_missing:
            continue
        layout = _layout(noise, _shot_of(truth, t))
        poses = []
        for index, k in present:
            if rng.uniform() < noise.pose_missing:
                continue
            appearance = truth.appearances[index]
            pose = _noisy_pose(appearance, k, noise, rng, size)
            appearance.written_pose[k] = pose
            poses.append(pose)
        if rng.uniform() < noise.spurious_pose:
            spurious = np.stack(
                [rng.uniform(0, size[0], 133), rng.uniform(0, size[1], 133), rng.uniform(0.05, 0.3, 133)], 1
            )
            poses.append(np.round(spurious, 2))
        order = rng.permutation(len(poses))
        document = {"instance_info": [_instance(poses[i], layout) for i in order]}
        if layout == "full":
            document = {"meta_info": SAPIENS_META_INFO, **document}
        (folder / f"output_{t + 1:04d}.json").write_text(json.dumps(document))


def _yolo_line(cls: int, box: np.ndarray, conf: float, size: tuple[int, int]) -> str:
    width, height = size
    x1, y1, x2, y2 = np.clip(box, 0, [width, height, width, height])
    xc, yc, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
    return f"{cls} {xc:.6f} {yc:.6f} {w:.6f} {h:.6f} {conf:.4f}"


def _write_labels(
    folder: Path, truth: EpisodeTruth, noise: AnnotationNoise, rng: np.random.Generator
) -> None:
    size = (truth.width, truth.height)
    for t, present in enumerate(_on_screen(truth)):
        lines = []
        for index, k in present:
            if rng.uniform() < noise.box_missing:
                continue
            box = truth.appearances[index].person_boxes[k].astype(np.float64)
            box = box + rng.normal(0, noise.box_jitter, 4) * (box[2:] - box[:2]).repeat(2)[[0, 2, 1, 3]]
            lines.append(_yolo_line(YOLO_PERSON, box, rng.uniform(0.6, 0.95), size))
        tops = [truth.appearances[i].face_boxes[k, 1] for i, k in present]
        if tops and rng.uniform() < noise.spurious_box:  # a false person in the backdrop, above every head
            ceiling = max(min(tops), 4.0)
            w, h = rng.uniform(0.03, 0.08) * size[0], rng.uniform(0.2, 0.6) * ceiling
            x = rng.uniform(0, size[0] - w)
            lines.append(_yolo_line(YOLO_PERSON, np.array([x, 0, x + w, h]), rng.uniform(0.3, 0.9), size))
        if rng.uniform() < noise.other_class:
            x = rng.uniform(0, 0.7 * size[0])
            box = np.array([x, 0.7 * size[1], x + 0.3 * size[0], size[1]])
            lines.append(_yolo_line(YOLO_CHAIR, box, rng.uniform(0.3, 0.9), size))
        if lines:
            order = rng.permutation(len(lines))
            (folder / f"output_{t + 1:04d}.txt").write_text("\n".join(lines[i] for i in order) + "\n")


def write_external_annotations(
    folder: Path, truth: EpisodeTruth, noise: AnnotationNoise, seed: int = 0
) -> None:
    """Write ``pywork/``, ``pose/`` and ``labels/`` for ``truth`` under ``folder``, each folder atomically
    (fills ``Appearance.written_pose``)."""
    rng = np.random.default_rng([seed, 0xA770])
    tracks, scores = _talknet(truth, noise, rng)
    with atomic_path(folder / "pywork", directory=True) as pywork:
        (pywork / "tracks.pckl").write_bytes(pickle.dumps(tracks))
        (pywork / "scores.pckl").write_bytes(pickle.dumps(scores))
    with atomic_path(folder / "pose", directory=True) as pose:
        _write_poses(pose, truth, noise, rng)
    with atomic_path(folder / "labels", directory=True) as labels:
        _write_labels(labels, truth, noise, rng)
