"""Input preparation for :class:`~covog_diffusers.pipelines.CovOGPipeline`: validation first, rendering later.

:func:`prepare_inputs` checks every argument (persons, lengths, sizes, NaN, audio) and raises ``ValueError`` with a
message that names the argument *before* any model runs, then returns a :class:`CovOGInputs` that renders pose
maps and face masks window by window, so memory does not grow with the video length.

Geometry: the project's one transform (:class:`mit_dataset.geometry.FrameTransform`, DESIGN decision 8) brings
every input to the output ``height x width``: scale to cover it keeping the aspect ratio, then crop the centre,
exactly what the training view (:class:`mit_dataset.torch_view.MITVideoDataset`) does. Keypoints and face boxes
are in the pixel space of ``keypoint_size = (H0, W0)`` (by default the reference image's original size, i.e.
the clip's pixels for MIT data) and go through ``FrameTransform.cover(H0, W0, height, width)``; the reference
image and pre-rendered pose maps go through the cover transform of their own size. A model trained on cropped
frames is thus never run on stretched ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from mit_dataset.geometry import FrameTransform
from mit_dataset.keypoints import NUM_KEYPOINTS, head_box
from mit_dataset.tensors import tensor_from_array
from mit_dataset.timeseries import frame_to_sample

#: Audio may differ from the poses by at most this many frames (mp4 encoder padding) before it is an error.
AUDIO_TOLERANCE_FRAMES = 2


def _array(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().float().numpy()
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists
        raise ValueError(f"{name} could not be read as an array: {error}") from error
    if array.dtype == object:
        raise ValueError(f"{name} must be a numeric array, got a ragged/object array")
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        first = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(f"{name} contains NaN/inf (first at index {first})")


def image_to_uint8(image, name: str = "reference_image") -> np.ndarray:
    """``(H, W, 3)`` uint8 from a PIL image, an ``(H, W, 3)`` array (uint8 or float in [0, 1]) or a ``(3, H, W)``
    float tensor in [0, 1]."""
    if image is None:
        raise ValueError(f"{name} is required")
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    channels_first = isinstance(image, torch.Tensor) and image.ndim == 3 and image.shape[0] == 3
    array = _array(image, name)
    if channels_first:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name} must be an RGB image (H, W, 3), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    _check_finite(array, name)
    return (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _pose_kind(array: np.ndarray, name: str, per_frame: bool) -> str:
    """ "keypoints" or "maps" from the shape; ValueError otherwise."""
    lead = 2 if per_frame else 1
    if array.ndim == lead + 2 and array.shape[-2:] == (NUM_KEYPOINTS, 3):
        return "keypoints"
    if array.ndim == lead + 3 and array.shape[lead] == 3:
        return "maps"
    expect = (
        "(P, F, 59, 3) keypoints or (P, F, 3, H, W) maps"
        if per_frame
        else "(P, 59, 3) keypoints or (P, 3, H, W) maps"
    )
    raise ValueError(f"{name} must be {expect}, got shape {array.shape}")


def _maps_to_float(maps: np.ndarray) -> np.ndarray:
    """Pose maps as float32 in [0, 1] (uint8 maps are divided by 255)."""
    return maps.astype(np.float32) / 255.0 if maps.dtype == np.uint8 else maps.astype(np.float32)


def cover_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(N, C, h, w)`` frames (uint8 or float) brought to ``height x width`` by the project's cover + centre
    crop (:meth:`mit_dataset.geometry.FrameTransform.cover`)."""
    return FrameTransform.cover(*frames.shape[-2:], height, width).apply_frames(frames)


def box_coverage_masks(boxes: np.ndarray, height: int, width: int, grid_h: int, grid_w: int) -> np.ndarray:
    """Soft masks ``(..., grid_h, grid_w)``: the fraction of each grid cell covered by xyxy ``boxes`` (``(..., 4)``,
    pixels of a ``height x width`` image). NaN boxes (face not visible) give empty masks."""
    boxes = np.asarray(boxes, dtype=np.float32)
    valid = np.isfinite(boxes).all(-1)
    boxes = np.nan_to_num(boxes)
    sx, sy = grid_w / width, grid_h / height
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    cells_x = np.arange(grid_w, dtype=np.float32)
    cells_y = np.arange(grid_h, dtype=np.float32)
    cover_x = np.clip(
        np.minimum(x2[..., None] * sx, cells_x + 1) - np.maximum(x1[..., None] * sx, cells_x), 0, 1
    )
    cover_y = np.clip(
        np.minimum(y2[..., None] * sy, cells_y + 1) - np.maximum(y1[..., None] * sy, cells_y), 0, 1
    )
    return cover_y[..., :, None] * cover_x[..., None, :] * valid[..., None, None]


@dataclass
class CovOGInputs:
    """Validated inputs at the output size; pose maps and masks are made per window."""

    reference_image: np.ndarray  # (H, W, 3) uint8 at (height, width): cover + centre crop
    reference_pose_maps: np.ndarray  # (P, 3, H, W) float32 in [0, 1]
    speaking_scores: np.ndarray  # (P, F) float32 in [-1, 1]
    audio: np.ndarray  # (S,) float32 mono, covering num_frames
    sample_rate: int
    num_frames: int
    height: int
    width: int
    fps: float
    pose_keypoints: np.ndarray | None = None  # (P, F, 59, 3) in output pixels
    pose_maps: np.ndarray | None = None  # (P, F, 3, h', w') as given (uint8, or float in [0, 1]), any size
    face_boxes: np.ndarray | None = None  # (P, F, 4) in output pixels, NaN = invisible

    @property
    def num_persons(self) -> int:
        return self.speaking_scores.shape[0]

    def pose_maps_for(self, start: int, end: int) -> torch.Tensor:
        """``(end - start, P, 3, H, W)`` float32 pose maps for frames ``[start, end)``."""
        if self.pose_keypoints is not None:
            from mit_dataset.pose_render import render_pose_maps

            maps = render_pose_maps(
                self.pose_keypoints[:, start:end], self.height, self.width
            )  # (P, n, H, W, 3)
            maps = torch.from_numpy(maps).permute(1, 0, 4, 2, 3).float() / 255.0
        else:
            maps = torch.from_numpy(_maps_to_float(self.pose_maps[:, start:end])).transpose(0, 1)
        if tuple(maps.shape[-2:]) != (self.height, self.width):
            n, p = maps.shape[:2]
            maps = cover_frames(maps.flatten(0, 1), self.height, self.width)
            maps = maps.reshape(n, p, 3, self.height, self.width)
        return maps

    def face_masks_for(self, start: int, end: int, grid_h: int, grid_w: int) -> torch.Tensor:
        """``(P, end - start, grid_h, grid_w)`` soft face masks; all ones when no face boxes are known."""
        if self.face_boxes is None:
            return torch.ones(self.num_persons, end - start, grid_h, grid_w)
        masks = box_coverage_masks(self.face_boxes[:, start:end], self.height, self.width, grid_h, grid_w)
        return torch.from_numpy(masks.astype(np.float32))

    def audio_span(self, start: int, end: int) -> np.ndarray:
        """Samples of frames ``[start, end)`` (:func:`~mit_dataset.timeseries.frame_to_sample`); frames before
        0 or past the audio are silence (zeros), as the training view pads outside a clip."""
        a = frame_to_sample(start, self.fps, self.sample_rate)
        b = frame_to_sample(end, self.fps, self.sample_rate)
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, 0), min(b, self.audio.shape[0])
        if hi > lo:
            out[lo - a : hi - a] = self.audio[lo:hi]
        return out


def prepare_inputs(
    reference_image,
    reference_poses,
    poses,
    audio=None,
    sample_rate: int | None = None,
    speaking_scores=None,
    speaker_audios=None,
    face_boxes=None,
    keypoint_size: tuple[int, int] | None = None,
    height: int | None = None,
    width: int | None = None,
    num_frames: int | None = None,
    vae_scale_factor: int = 8,
    max_speakers: int | None = None,
    fps: float = 25.0,
    need_face_boxes: bool = True,
) -> CovOGInputs:
    """Validate and normalise the pipeline's inputs (see :meth:`CovOGPipeline.__call__`)."""
    image = image_to_uint8(reference_image)
    src_h, src_w = image.shape[:2]
    height = src_h if height is None else int(height)
    width = src_w if width is None else int(width)
    if height <= 0 or width <= 0 or height % vae_scale_factor or width % vae_scale_factor:
        raise ValueError(
            f"height and width must be positive multiples of the VAE factor {vae_scale_factor}, "
            f"got height={height}, width={width}"
        )
    kp_h, kp_w = (src_h, src_w) if keypoint_size is None else (int(keypoint_size[0]), int(keypoint_size[1]))
    if kp_h <= 0 or kp_w <= 0:
        raise ValueError(f"keypoint_size must be a positive (height, width), got {keypoint_size}")
    to_output = FrameTransform.cover(kp_h, kp_w, height, width)  # keypoints and boxes -> output pixels

    # Poses.
    if poses is None:
        raise ValueError("poses are required: (P, F, 59, 3) keypoints or (P, F, 3, H, W) pose maps")
    if reference_poses is None:
        raise ValueError("reference_poses are required: (P, 59, 3) keypoints or (P, 3, H, W) pose maps")
    poses = _array(poses, "poses")
    reference_poses = _array(reference_poses, "reference_poses")
    pose_kind = _pose_kind(poses, "poses", per_frame=True)
    ref_kind = _pose_kind(reference_poses, "reference_poses", per_frame=False)
    _check_finite(poses, "poses")
    _check_finite(reference_poses, "reference_poses")
    persons, pose_frames = poses.shape[:2]
    if persons == 0:
        raise ValueError("poses have no persons (P = 0)")
    if pose_frames == 0:
        raise ValueError("poses have no frames (F = 0)")
    if reference_poses.shape[0] != persons:
        raise ValueError(
            f"reference_poses have {reference_poses.shape[0]} persons but poses have {persons}: "
            "give one reference pose per person, in the same order"
        )
    if max_speakers is not None and persons > max_speakers:
        raise ValueError(
            f"{persons} persons given, but the model supports at most max_speakers={max_speakers}"
        )

    # Speaking scores and audio.
    if sample_rate is None or int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    sample_rate = int(sample_rate)
    tracks = None
    if speaker_audios is not None:
        from mit_dataset.vad import check_speaker_tracks

        tracks = check_speaker_tracks(speaker_audios)
        if len(tracks) != persons:
            raise ValueError(f"speaker_audios has {len(tracks)} tracks but poses have {persons} persons")
    if speaking_scores is None and tracks is None:
        raise ValueError("pass speaking_scores (P, F) in [-1, 1], or speaker_audios (one track per speaker)")
    if audio is None:
        if tracks is None:
            raise ValueError("audio is required (a mono waveform), or speaker_audios to mix it from")
        from mit_dataset.vad import mix_tracks

        audio = mix_tracks(tracks)
    audio = _array(audio, "audio")
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"audio must be a mono waveform (S,), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("audio is empty")
    audio = audio.astype(np.float32)
    _check_finite(audio, "audio")

    if speaking_scores is not None:
        speaking_scores = _array(speaking_scores, "speaking_scores").astype(np.float32)
        if speaking_scores.ndim != 2:
            raise ValueError(f"speaking_scores must be (P, F), got shape {speaking_scores.shape}")
        if speaking_scores.shape[0] != persons:
            raise ValueError(
                f"speaking_scores have {speaking_scores.shape[0]} persons but poses have {persons}"
            )
        if speaking_scores.shape[1] != pose_frames:
            diff = speaking_scores.shape[1] - pose_frames
            raise ValueError(
                f"speaking_scores have {speaking_scores.shape[1]} frames but poses have {pose_frames} "
                f"({'+' if diff > 0 else ''}{diff} frames)"
            )
        _check_finite(speaking_scores, "speaking_scores")

    audio_frames = audio.shape[0] / sample_rate * fps
    if abs(audio_frames - pose_frames) > AUDIO_TOLERANCE_FRAMES:
        diff = audio_frames - pose_frames
        raise ValueError(
            f"audio lasts {audio.shape[0] / sample_rate:.3f} s = {audio_frames:.1f} frames at {fps:g} fps but poses "
            f"have {pose_frames} frames ({'+' if diff > 0 else ''}{diff:.1f} frames, {diff / fps:+.3f} s; "
            f"tolerance {AUDIO_TOLERANCE_FRAMES} frames)"
        )
    if num_frames is None:
        num_frames = pose_frames
    num_frames = int(num_frames)
    if not 0 < num_frames <= pose_frames:
        raise ValueError(
            f"num_frames={num_frames} must lie in [1, {pose_frames}] (the number of pose frames)"
        )
    needed = round(num_frames / fps * sample_rate)
    audio = np.pad(audio[:needed], (0, max(0, needed - audio.shape[0])))

    # Face boxes (IAD masks) from the head keypoints, or given with pre-rendered maps.
    if face_boxes is not None:
        face_boxes = _array(face_boxes, "face_boxes").astype(np.float32)
        if face_boxes.shape != (persons, pose_frames, 4):
            raise ValueError(
                f"face_boxes must be ({persons}, {pose_frames}, 4), got shape {face_boxes.shape}"
            )
        face_boxes = to_output.apply_boxes(face_boxes[:, :num_frames])
    elif pose_kind == "keypoints":
        face_boxes = None  # computed below from the scaled keypoints
    elif need_face_boxes:
        raise ValueError(
            "pre-rendered pose maps carry no head keypoints: pass face_boxes (P, F, 4) xyxy for the IAD face masks"
        )

    pose_keypoints = pose_maps = None
    if pose_kind == "keypoints":
        pose_keypoints = to_output.apply_points(poses[:, :num_frames])
        if face_boxes is None:
            face_boxes = head_box(pose_keypoints)
    else:
        pose_maps = poses[:, :num_frames]  # converted to float window by window
    if ref_kind == "keypoints":
        from mit_dataset.pose_render import render_pose_maps

        ref_kp = to_output.apply_points(reference_poses)
        ref_maps = render_pose_maps(ref_kp, height, width).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    else:
        ref_maps = _maps_to_float(reference_poses)
        if ref_maps.shape[-2:] != (height, width):
            ref_maps = cover_frames(torch.from_numpy(ref_maps), height, width).numpy()

    if speaking_scores is None:
        from mit_dataset.vad import speaking_scores_from_tracks

        speaking_scores = speaking_scores_from_tracks(tracks, sample_rate, pose_frames, fps=fps)
    speaking_scores = np.clip(speaking_scores[:, :num_frames], -1.0, 1.0).astype(np.float32)

    if (src_h, src_w) != (height, width):
        frame = tensor_from_array(image).permute(2, 0, 1)[None]
        image = cover_frames(frame, height, width)[0].permute(1, 2, 0).numpy()
    return CovOGInputs(
        reference_image=image,
        reference_pose_maps=ref_maps,
        speaking_scores=speaking_scores,
        audio=audio,
        sample_rate=sample_rate,
        num_frames=num_frames,
        height=height,
        width=width,
        fps=fps,
        pose_keypoints=pose_keypoints,
        pose_maps=pose_maps,
        face_boxes=face_boxes,
    )
