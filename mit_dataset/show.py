"""``mit-talking show CLIP``: look at one clip's annotations.

Writes two files into ``out_dir``:

- ``{clip_id}_overlay.mp4``: the clip (scaled to at most ``max_width`` pixels wide) with every person's pose
  drawn in the pose-map style, their instance box and face box in red while speaking
  (``speaking_score > 0``) and blue while listening, labelled with the person id, state and score (white text
  on the person's colour, font scaled to the frame, laid out inside the frame without overlaps by
  :mod:`mit_dataset.label_layout`, shortened where the frame is too small); the clip's audio is muxed in.
- ``{clip_id}_speaking.png``: the audio waveform and every person's speaking score over time.

Frames are decoded, drawn and encoded one at a time, so memory does not grow with the clip length. Both
files are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from .atomic import atomic_path, remove_stale_temporaries
from .clip_folder import check_not_clip_folders
from .features import SAMPLING_RATE
from .frame_decoder import iter_frames
from .geometry import FrameTransform
from .label_layout import PlacedLabel, layout_labels
from .pose_render import draw_pose
from .row_arrays import ClipArrays, clip_arrays, open_video, read_audio_span
from .safe_names import child_path
from .video_io import write_video

SPEAKING_COLOR = (230, 30, 30)
LISTENING_COLOR = (40, 90, 235)
CHUNK_FRAMES = 32


def find_clip(dataset: str | os.PathLike, clip_id: str, cache_dir: str | os.PathLike | None = None):
    """``(split_dataset, row_index)`` of ``clip_id`` in a dataset folder or Hub id (all splits searched);
    ``cache_dir``: the ``datasets`` cache folder (default: datasets')."""
    import datasets

    check_not_clip_folders(dataset)
    loaded = datasets.load_dataset(str(dataset), cache_dir=str(cache_dir) if cache_dir else None)
    splits = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    available = []
    for split in splits.values():
        ids = split.select_columns(["clip_id"]).with_format("arrow")["clip_id"].to_pylist()
        if clip_id in ids:
            return split, ids.index(clip_id)
        available.extend(ids)
    shown = ", ".join(sorted(available)[:10]) + (" ..." if len(available) > 10 else "")
    raise ValueError(f"clip {clip_id!r} is not in dataset {str(dataset)!r}; its clips: {shown or '(none)'}")


def show_clip(
    dataset: str | os.PathLike,
    clip_id: str,
    out_dir: str | os.PathLike,
    max_width: int = 960,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write ``{clip_id}_overlay.mp4`` and ``{clip_id}_speaking.png`` into ``out_dir``; returns their paths."""
    split, index = find_clip(dataset, clip_id, cache_dir)
    clip = clip_arrays(split.with_format("arrow")[index])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    audio = read_audio_span(clip, 0, round(clip.num_frames / clip.fps * SAMPLING_RATE), split, index)
    video_path = write_video(
        child_path(out_dir, clip_id, "_overlay.mp4", what="clip id"),
        _overlay_frames(clip, split, index, max_width, progress),
        fps=clip.fps,
        audio=audio,
        sample_rate=SAMPLING_RATE,
    )
    plot_path = plot_speaking_scores(
        clip, audio, child_path(out_dir, clip_id, "_speaking.png", what="clip id")
    )
    return video_path, plot_path


def _overlay_frames(clip: ClipArrays, split, index: int, max_width: int, progress: bool):
    """Yield the overlay frames (H, W, 3) uint8, decoding and drawing one frame at a time."""
    transform = FrameTransform.fit(clip.height, clip.width, max_width)
    keypoints = transform.apply_points(clip.keypoints)
    boxes = transform.apply_boxes(clip.boxes)
    face_boxes = transform.apply_boxes(clip.face_boxes)
    line_width = max(2, transform.width // 320)
    labeller = LabelStyle.for_frame(transform.height, transform.width)
    frames = tqdm(
        _frames(clip, split, index, transform),
        total=clip.num_frames,
        desc=f"overlay {clip.clip_id}",
        unit="frame",
        disable=not progress,
    )
    count = 0
    for t, frame in enumerate(frames):
        if t >= clip.num_frames:
            break
        image = Image.fromarray(np.ascontiguousarray(frame))
        draw_pose(image, keypoints[:, t], line_width=line_width)
        draw = ImageDraw.Draw(image)
        scores = [float(clip.speaking_score[p, t]) for p in range(len(clip.person_ids))]
        colours = [SPEAKING_COLOR if score > 0 else LISTENING_COLOR for score in scores]
        for p in range(len(clip.person_ids)):
            draw.rectangle(_box(boxes[p, t]), outline=colours[p], width=line_width + 1)
            if np.isfinite(face_boxes[p, t]).all():
                draw.rectangle(_box(face_boxes[p, t]), outline=colours[p], width=max(1, line_width - 1))
        labels = person_labels(
            [_box(boxes[p, t]) for p in range(len(clip.person_ids))], clip.person_ids, scores, labeller
        )
        for label, colour in zip(labels, colours):
            if label is not None:
                labeller.draw(draw, label, colour)
        count += 1
        yield np.asarray(image)
    if count != clip.num_frames:
        raise ValueError(
            f"clip {clip.clip_id!r}: the video has {count} frames, the annotations {clip.num_frames}"
        )


class LabelStyle:
    """Font, padding and frame size of the person labels: the font is ``height / 30`` pixels (at least 8), the
    default font of Pillow (scalable with FreeType)."""

    def __init__(self, height: int, width: int, font_size: int):
        self.height, self.width = height, width
        self.font = ImageFont.load_default(size=font_size)
        self.padding = max(1, font_size // 6)

    @classmethod
    def for_frame(cls, height: int, width: int) -> LabelStyle:
        return cls(height, width, max(8, round(height / 30)))

    def measure(self, text: str) -> tuple[int, int]:
        left, top, right, bottom = self.font.getbbox(text)
        return right - left + 2 * self.padding, bottom - top + 2 * self.padding

    def draw(self, draw: ImageDraw.ImageDraw, label: PlacedLabel, colour) -> None:
        x1, y1, x2, y2 = label.box
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=colour)
        left, top, _, _ = self.font.getbbox(label.text)
        draw.text(
            (x1 + self.padding - left, y1 + self.padding - top), label.text, fill="white", font=self.font
        )


def person_labels(
    boxes: list[list[float]], person_ids: list[str], scores: list[float], style: LabelStyle
) -> list[PlacedLabel | None]:
    """One label per person (``p0 speaking +0.53``, shortened to ``p0 +0.53`` or ``p0`` where the frame is too
    small), laid out inside the frame without overlaps next to each person's box."""
    texts = [
        [f"{pid} {'speaking' if score > 0 else 'listening'} {score:+.2f}", f"{pid} {score:+.2f}", str(pid)]
        for pid, score in zip(person_ids, scores)
    ]
    return layout_labels(boxes, texts, style.width, style.height, style.measure)


def _frames(clip: ClipArrays, split, index: int, transform: FrameTransform):
    """The clip's frames in order, (H, W, 3) uint8, resized by ``transform``."""
    if clip.video_bytes is not None:
        yield from iter_frames(clip.video_bytes.numpy(), transform, name=f"clip {clip.clip_id!r}")
        return
    decoder = open_video(clip, split, index)  # path-only rows: the datasets decoder, resize in torch
    for start in range(0, clip.num_frames, CHUNK_FRAMES):
        chunk = decoder.get_frames_in_range(start, min(start + CHUNK_FRAMES, clip.num_frames)).data
        yield from transform.apply_frames(chunk).permute(0, 2, 3, 1).numpy()


def _box(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


def plot_speaking_scores(clip: ClipArrays, audio: np.ndarray, path: str | os.PathLike) -> Path:
    """PNG of the audio waveform and every person's speaking score over time (written atomically)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    seconds = np.arange(clip.num_frames) / clip.fps
    figure, (wave_axis, score_axis) = plt.subplots(
        2, 1, figsize=(10, 5), sharex=True, gridspec_kw={"height_ratios": [1, 2]}, constrained_layout=True
    )
    wave_axis.plot(np.arange(len(audio)) / SAMPLING_RATE, audio, color="0.35", linewidth=0.4)
    wave_axis.set_ylabel("audio")
    wave_axis.set_title(f"{clip.clip_id}: speaking scores (> 0 = speaking)")
    for p, person_id in enumerate(clip.person_ids):
        score_axis.plot(seconds, clip.speaking_score[p], label=person_id, linewidth=1.4)
    score_axis.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
    score_axis.set_ylim(-1.05, 1.05)
    score_axis.set_xlabel("time (s)")
    score_axis.set_ylabel("speaking score")
    score_axis.legend(loc="upper right", ncols=min(4, len(clip.person_ids)))
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(figure)
    return path
