"""Pipeline inputs from a loaded MIT row (``load_dataset(...)[i]``, schema :data:`mit_dataset.features.MIT_FEATURES`).

``row["video"]`` is a torchcodec ``VideoDecoder`` (or a path / ``{"path", "bytes"}`` dict), ``row["audio"]`` an
``AudioDecoder`` (or ``{"array", "sampling_rate"}``); ``row["persons"]`` lists the persons with ``keypoints``
``(F, 59, 3)`` in clip pixels and ``speaking_score`` ``(F,)`` in [-1, 1].

Geometry: the inputs stay in clip pixels (``keypoint_size`` = the clip's size) and the pipeline brings frame,
poses and face boxes to the output size with the project's one transform (scale to cover, centre crop:
:class:`mit_dataset.geometry.FrameTransform`), the transform the training view applies, so a keypoint lands on
the same latent cell in training and in generation (``tests/training/test_train_geometry.py``).
"""

from __future__ import annotations

import numpy as np

from mit_dataset.timeseries import frame_to_sample

#: Default output size: the longer side, and the shorter side rounded to this multiple (1920x1080 -> 640x384,
#: the paper's training size).
DEFAULT_LONG_SIDE = 640
SIZE_MULTIPLE = 64


def default_size(clip_height: int, clip_width: int) -> tuple[int, int]:
    """``(height, width)`` with the long side 640 and the short side a multiple of 64 (aspect kept roughly)."""

    def short(long_px, a, b):
        return max(SIZE_MULTIPLE, round(long_px * a / b / SIZE_MULTIPLE) * SIZE_MULTIPLE)

    if clip_width >= clip_height:
        return short(DEFAULT_LONG_SIDE, clip_height, clip_width), DEFAULT_LONG_SIDE
    return DEFAULT_LONG_SIDE, short(DEFAULT_LONG_SIDE, clip_width, clip_height)


def _video_decoder(video):
    if hasattr(video, "get_frame_at"):
        return video
    from torchcodec.decoders import VideoDecoder

    if isinstance(video, dict):
        video = video.get("bytes") or video.get("path")
    return VideoDecoder(video)


def _audio(audio) -> tuple[np.ndarray, int]:
    """Mono float32 waveform and its sample rate."""
    if hasattr(audio, "get_all_samples"):
        samples = audio.get_all_samples()
        data, rate = samples.data.numpy(), int(samples.sample_rate)
    elif isinstance(audio, dict) and "array" in audio:
        data, rate = np.asarray(audio["array"]), int(audio["sampling_rate"])
    else:
        from torchcodec.decoders import AudioDecoder

        if isinstance(audio, dict):
            audio = audio.get("bytes") or audio.get("path")
        samples = AudioDecoder(audio).get_all_samples()
        data, rate = samples.data.numpy(), int(samples.sample_rate)
    data = np.asarray(data, dtype=np.float32)
    return (data.mean(0) if data.ndim == 2 else data), rate


def inputs_from_mit_row(
    row: dict,
    num_frames: int | None = None,
    start_frame: int = 0,
    reference_frame: int = 0,
    height: int | None = None,
    width: int | None = None,
) -> dict:
    """``pipe(**inputs_from_mit_row(row))`` regenerates frames ``[start_frame, start_frame + num_frames)`` of the
    clip from its frame ``reference_frame``, the persons' poses and speaking scores and the clip's audio.

    Defaults: all frames from ``start_frame``; size from :func:`default_size` (for the side not given).
    """
    total = int(row["num_frames"])
    fps = float(row.get("fps") or 25.0)
    clip_h, clip_w = int(row["height"]), int(row["width"])
    if not 0 <= start_frame < total:
        raise ValueError(f"clip {row.get('clip_id')!r}: start_frame={start_frame} outside [0, {total})")
    if not 0 <= reference_frame < total:
        raise ValueError(
            f"clip {row.get('clip_id')!r}: reference_frame={reference_frame} outside [0, {total})"
        )
    num_frames = total - start_frame if num_frames is None else int(num_frames)
    if num_frames <= 0 or start_frame + num_frames > total:
        raise ValueError(
            f"clip {row.get('clip_id')!r} has {total} frames: cannot take {num_frames} from frame {start_frame}"
        )
    persons = row["persons"]
    if not persons:
        raise ValueError(f"clip {row.get('clip_id')!r} has no persons")
    end = start_frame + num_frames
    keypoints = [np.asarray(p["keypoints"], dtype=np.float32) for p in persons]
    scores = [np.asarray(p["speaking_score"], dtype=np.float32) for p in persons]
    reference = _video_decoder(row["video"]).get_frame_at(reference_frame).data.permute(1, 2, 0).numpy()
    audio, rate = _audio(row["audio"])
    a, b = frame_to_sample(start_frame, fps, rate), frame_to_sample(end, fps, rate)
    default_height, default_width = default_size(clip_h, clip_w)
    height = default_height if height is None else height  # one side given alone keeps it
    width = default_width if width is None else width
    return {
        "reference_image": reference,
        "reference_poses": np.stack([k[reference_frame] for k in keypoints]),
        "poses": np.stack([k[start_frame:end] for k in keypoints]),
        "speaking_scores": np.stack([s[start_frame:end] for s in scores]),
        "audio": audio[a:b],
        "sample_rate": rate,
        "keypoint_size": (clip_h, clip_w),
        "height": height,
        "width": width,
        "num_frames": num_frames,
        "fps": fps,
    }
