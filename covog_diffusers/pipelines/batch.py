"""Batches of videos for :class:`~covog_diffusers.pipelines.CovOGPipeline`: one call, several conditioning sets.

A batch is a ``reference_image`` given as a list/tuple of images (or one ``(B, H, W, 3)`` array / ``(B, 3, H, W)``
tensor). Every other per-video argument is then either **per video** (a list/tuple with one entry per reference
image) or **shared** by all videos (a single array/tensor). Two arguments are lists even for one video and are
per video only when their entries are lists themselves: ``speaker_audios`` (a list of tracks per video) and
``keypoint_size`` (an ``(H0, W0)`` pair per video).

Each video is validated on its own by :func:`~covog_diffusers.pipelines.inputs.prepare_inputs` (errors name the
video: ``"video 1: poses ..."``); all videos must have the same number of frames and are brought to one output
size. Videos may have different numbers of persons: they are padded to the largest count with persons whose
``person_mask`` is False, which the pose encoders and the IADs ignore exactly, so a video's result does not
depend on the batch it is in (``tests/covog_diffusers/test_pipeline_conformance.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .inputs import CovOGInputs, prepare_inputs

#: Arguments given once per video (a list in a batch) or shared by the batch.
PER_VIDEO_ARGUMENTS = (
    "reference_poses",
    "poses",
    "audio",
    "speaking_scores",
    "speaker_audios",
    "face_boxes",
    "keypoint_size",
)
#: Per-video arguments that are lists for a single video already.
_LIST_VALUED = ("speaker_audios", "keypoint_size")


def batch_size_of(reference_image) -> int | None:
    """Number of videos if ``reference_image`` is a batch, None for a single image."""
    if isinstance(reference_image, (list, tuple)):
        return len(reference_image)
    if isinstance(reference_image, (np.ndarray, torch.Tensor)) and reference_image.ndim == 4:
        return reference_image.shape[0]
    return None


def _is_per_video(name: str, value) -> bool:
    if not isinstance(value, (list, tuple)):
        return False
    if name in _LIST_VALUED:
        return all(item is None or isinstance(item, (list, tuple)) for item in value)
    return True


def split_videos(reference_image, arguments: dict) -> list[dict]:
    """Per-video argument dicts (``reference_image`` plus :data:`PER_VIDEO_ARGUMENTS`); ValueError naming an
    argument whose list length differs from the number of reference images."""
    batch = batch_size_of(reference_image)
    if batch is None:
        return [{"reference_image": reference_image, **arguments}]
    if batch == 0:
        raise ValueError("reference_image is an empty list: give at least one reference image")
    videos = [{"reference_image": image} for image in reference_image]
    for name, value in arguments.items():
        per_video = _is_per_video(name, value)
        if per_video and len(value) != batch:
            raise ValueError(
                f"{name} has {len(value)} entries for a batch of {batch} reference images: give one per video "
                "(a list) or one shared by all (an array)"
            )
        for index, video in enumerate(videos):
            video[name] = value[index] if per_video else value
    return videos


def _pad_persons(array: np.ndarray, persons: int) -> np.ndarray:
    """Zero-pad axis 0 (persons) to ``persons``."""
    missing = persons - array.shape[0]
    return (
        array if missing == 0 else np.concatenate([array, np.zeros((missing, *array.shape[1:]), array.dtype)])
    )


@dataclass
class VideoBatch:
    """Validated inputs of ``B`` videos with one frame count and output size (see the module docstring)."""

    videos: list[CovOGInputs]

    @classmethod
    def prepare(cls, reference_image, per_video: dict, **shared) -> VideoBatch:
        """:func:`prepare_inputs` for every video of :func:`split_videos`; ``shared`` keyword arguments
        (size, frame count, sample rate, ...) apply to all."""
        split = split_videos(reference_image, per_video)
        videos = []
        for index, arguments in enumerate(split):
            try:
                videos.append(prepare_inputs(**arguments, **shared))
            except ValueError as error:
                if len(split) == 1 and batch_size_of(reference_image) is None:
                    raise
                raise ValueError(f"video {index}: {error}") from error
        frames = [video.num_frames for video in videos]
        if len(set(frames)) > 1:
            raise ValueError(
                f"the videos of a batch must have the same number of frames, got {frames}: pass num_frames to "
                "cut them to a common length"
            )
        sizes = {(video.height, video.width) for video in videos}
        if len(sizes) > 1:
            raise ValueError(
                f"the videos of a batch need one output size, got {sorted(sizes)}: pass height and width"
            )
        return cls(videos)

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def num_frames(self) -> int:
        return self.videos[0].num_frames

    @property
    def height(self) -> int:
        return self.videos[0].height

    @property
    def width(self) -> int:
        return self.videos[0].width

    @property
    def num_persons(self) -> int:
        """Persons per video after padding (the most any video has)."""
        return max(video.num_persons for video in self.videos)

    @property
    def person_mask(self) -> torch.Tensor:
        """``(B, P)`` bool, False for padded persons."""
        persons = self.num_persons
        return torch.tensor([[i < video.num_persons for i in range(persons)] for video in self.videos])

    def reference_images(self) -> np.ndarray:
        """``(B, H, W, 3)`` uint8."""
        return np.stack([video.reference_image for video in self.videos])

    def reference_pose_maps(self) -> torch.Tensor:
        """``(B, P, 3, H, W)`` float32 in [0, 1], zero for padded persons."""
        persons = self.num_persons
        return torch.from_numpy(np.stack([_pad_persons(v.reference_pose_maps, persons) for v in self.videos]))

    def pose_maps_for(self, start: int, end: int) -> torch.Tensor:
        """``(B, P, end - start, 3, H, W)`` float32 pose maps, zero for padded persons (the layout of
        :meth:`MultiHumanPoseEncoder.encode_frames`)."""
        persons = self.num_persons
        maps = []
        for video in self.videos:
            window = video.pose_maps_for(start, end).transpose(0, 1)  # (P_i, n, 3, H, W)
            missing = persons - window.shape[0]
            if missing:
                window = torch.cat([window, window.new_zeros(missing, *window.shape[1:])])
            maps.append(window)
        return torch.stack(maps)

    def speaking_scores_for(self, start: int, end: int) -> torch.Tensor:
        """``(B, P, end - start)`` float32 in [-1, 1], zero for padded persons."""
        persons = self.num_persons
        return torch.from_numpy(
            np.stack([_pad_persons(v.speaking_scores[:, start:end], persons) for v in self.videos])
        )

    def face_masks_for(self, start: int, end: int, grid_h: int, grid_w: int) -> torch.Tensor:
        """``(B, P, end - start, grid_h, grid_w)`` soft face masks, zero for padded persons."""
        persons = self.num_persons
        masks = []
        for video in self.videos:
            mask = video.face_masks_for(start, end, grid_h, grid_w)
            missing = persons - mask.shape[0]
            if missing:
                mask = torch.cat([mask, mask.new_zeros(missing, *mask.shape[1:])])
            masks.append(mask)
        return torch.stack(masks)
