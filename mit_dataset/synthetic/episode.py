"""Synthetic raw talk-show *episodes*: what the collection pipeline (:mod:`mit_dataset.annotate`) starts from,
with exact truth for every decision it makes.

An episode is a sequence of shots joined by hard camera cuts (:func:`plan_episode`):

- ``wide`` shots of 2-4 people on a couch (the synthetic MIT scene of :func:`~mit_dataset.synthetic.build_scene`),
  where people may *enter* or *leave* (drawn and heard only while on screen);
- ``closeup`` shots: a crop around one person's head scaled to the frame (one face: must be rejected);
- short wide shots, shorter than the minimum clip length (must be rejected).

The raw video imitates the authors' stream-copy cuts (REFERENCE.md): MPEG-4 Part 2 video + MP3 audio in mp4,
the first video frame at ``video_start`` (0.36 s) while the audio starts at ``audio_start`` (0.01 s), and the
presentation timestamps skipping one frame every ``gap_every`` frames (no picture is lost: the frame order is
the truth, which is why the pipeline re-times by frame order). The audio is laid out on that frame-order
timeline: the sound of frame ``i`` plays ``i / 25`` s after the first frame's sound. ``timestamps="vfr"``
writes a truly variable frame rate instead (frame steps drawn between 0.5 and 1.5 frames), which the pipeline
must refuse. ``codec="h264"`` with ``timestamps="constant"`` writes a video as downloads of whole episodes come
(H.264 ``yuv420p`` + AAC 44.1 kHz stereo, constant rate, both streams from time 0), which the pipeline stores
without re-encoding the video. Beside the video, :func:`write_episode` writes the external annotation files the authors' pipeline
reads, with documented noise (:mod:`mit_dataset.synthetic.external`).

Truth (:class:`EpisodeTruth`): shot boundaries, every on-screen appearance (:class:`Appearance`: shot, slot,
identity, frames, per-frame face box, person box, speaking flag, the pose instance written for it) and the
clips a correct pipeline must find (:meth:`EpisodeTruth.expected_clips`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
from PIL import Image

from ..features import FPS, SAMPLING_RATE
from ..keypoints import head_box, wholebody_to_mit
from .generator import SyntheticClipSpec, _mask_box, _pick, build_scene, render_scene
from .identity import make_identity

#: The authors' sample clips: video starts 0.36 s after the container origin, audio at 0.01 s.
VIDEO_START_S = 0.36
AUDIO_START_S = 0.01
#: ``codec`` of :func:`encode_raw_video` -> (video encoder, audio encoder, audio rate, audio layout).
RAW_CODECS = {
    "mpeg4": ("mpeg4", "libmp3lame", SAMPLING_RATE, "mono"),
    "h264": ("libx264", "aac", 44_100, "stereo"),
}
#: One skipped timestamp every this many frames (the authors' sample: 5 skipped in 117).
GAP_EVERY = 40
#: A close-up crop is this many head sizes high.
CLOSEUP_HEAD_SIZES = 2.6


@dataclass(frozen=True)
class ShotPlan:
    """One shot: ``kind`` ``"wide"`` or ``"closeup"``, its length, the roster indices of its people (left to
    right) and, per person, the ``[first, end)`` frames (within the shot) they are on screen. A close-up
    shows person ``focus`` only."""

    kind: str
    num_frames: int
    identity_indices: tuple[int, ...]
    on_screen: tuple[tuple[int, int], ...]
    focus: int = 0
    seed: int = 0


@dataclass
class Appearance:
    """One person on screen in one shot (global frame indices ``first .. end - 1``)."""

    shot: int
    slot: int  # left-to-right position in the shot
    identity: str
    first: int
    end: int
    face_boxes: np.ndarray  # (n, 4) xyxy, the dataset's head box of the true keypoints
    person_boxes: np.ndarray  # (n, 4) xyxy, the drawn silhouette's box
    speaking: np.ndarray  # (n,) bool
    keypoints_133: np.ndarray  # (n, 133, 3) true keypoints (pixels, score)
    written_pose: np.ndarray | None = None  # (n, 133, 3) the noisy instance written to pose JSON (NaN: none)

    @property
    def frames(self) -> np.ndarray:
        return np.arange(self.first, self.end)


@dataclass(frozen=True)
class TrueClip:
    """A clip a correct pipeline must find: frames ``[start, end)`` and its people left to right."""

    start: int
    end: int
    shot: int
    appearances: tuple[int, ...]  # indices into EpisodeTruth.appearances, left to right


@dataclass
class EpisodeTruth:
    source: str
    video: str
    video_path: Path
    width: int
    height: int
    num_frames: int
    fps: float
    shots: list[tuple[int, int]]  # [start, end) global frames
    shot_kinds: list[str]
    appearances: list[Appearance]
    audio: np.ndarray  # (num_frames * 640,) float32, frame-order timeline
    metadata: dict = field(default_factory=dict)

    def expected_clips(self, min_frames: int, min_people: int = 2, max_people: int = 4) -> list[TrueClip]:
        """Maximal runs inside one wide shot where the same ``min_people..max_people`` people are on screen,
        at least ``min_frames`` long (close-ups never qualify: one face)."""
        clips = []
        for shot, ((start, end), kind) in enumerate(zip(self.shots, self.shot_kinds)):
            if kind != "wide":
                continue
            members = [i for i, a in enumerate(self.appearances) if a.shot == shot]
            cuts = sorted(
                {start, end}
                | {b for i in members for b in (self.appearances[i].first, self.appearances[i].end)}
            )
            for a, b in pairwise(cuts):
                present = [
                    i for i in members if self.appearances[i].first <= a and self.appearances[i].end >= b
                ]
                if b - a >= min_frames and min_people <= len(present) <= max_people:
                    present.sort(key=lambda i: self.appearances[i].slot)
                    clips.append(TrueClip(a, b, shot, tuple(present)))
        return clips

    def clip_name(self, clip: TrueClip) -> str:
        return f"{self.source}_{self.video}_{clip.start:06d}to{clip.end:06d}"


def plan_episode(unit_frames: int = 25, seed: int = 0, repeats: int = 1) -> list[ShotPlan]:
    """The reference episode, ``repeats`` times (new people and motion each time). With ``L = unit_frames``:

    ====  ========  ======  =====================================  =======================================
    shot  kind      frames  people                                 clips (min length L)
    ====  ========  ======  =====================================  =======================================
    0     wide      2.5 L   2                                      1 (2 people)
    1     wide      3 L     3, the third enters at 1.2 L           2 (2 people, then 3)
    2     closeup   1.5 L   1 face                                 0
    3     wide      2.7 L   4, the first leaves at 1.5 L           2 (4 people, then 3)
    4     wide      0.6 L   2                                      0 (too short)
    5     wide      2.2 L   2, the second leaves at 1.5 L          1 (2 people; then 1 person: none)
    ====  ========  ======  =====================================  =======================================
    """
    if unit_frames < 10:
        raise ValueError(f"unit_frames must be >= 10, got {unit_frames}")
    rng = np.random.default_rng([seed, 0xE915])
    L = unit_frames
    shots = []

    def always(count: int, frames: int) -> tuple[tuple[int, int], ...]:
        return ((0, frames),) * count

    for _ in range(repeats):
        order = [int(i) for i in rng.permutation(24)]

        def people(count: int, order: list[int] = order) -> tuple[int, ...]:
            chosen = _pick(order, count)
            for i in chosen:  # the next shot shows other people
                order.remove(i)
                order.append(i)
            return tuple(chosen)

        n = round(2.5 * L)
        shots.append(ShotPlan("wide", n, people(2), always(2, n)))
        n = 3 * L
        shots.append(ShotPlan("wide", n, people(3), ((0, n), (0, n), (round(1.2 * L), n))))
        n = round(1.5 * L)
        shots.append(ShotPlan("closeup", n, people(2), always(2, n), focus=1))
        n = round(2.7 * L)
        shots.append(ShotPlan("wide", n, people(4), ((0, round(1.5 * L)),) + always(3, n)))
        n = round(0.6 * L)
        shots.append(ShotPlan("wide", n, people(2), always(2, n)))
        n = round(2.2 * L)
        shots.append(ShotPlan("wide", n, people(2), ((0, n), (0, round(1.5 * L)))))
    return [
        ShotPlan(
            s.kind, s.num_frames, s.identity_indices, s.on_screen, s.focus, seed=int(rng.integers(2**31))
        )
        for s in shots
    ]


def _scene(plan: ShotPlan, index: int, width: int, height: int):
    count = len(plan.identity_indices)
    visible = np.zeros((count, plan.num_frames), bool)
    for j, (first, end) in enumerate(plan.on_screen):
        visible[j, first:end] = True
    spec = SyntheticClipSpec(
        index=index,
        clip_id=f"shot{index:03d}",
        source="episode",
        video="episode",
        start_frame=0,
        num_frames=plan.num_frames,
        subset="two_human" if count == 2 else "multi_human",
        split="train",
        difficulty="",
        identity_indices=plan.identity_indices,
        style="talk",
        seed=plan.seed,
    )
    return build_scene(spec, width, height, visible=visible)


def _closeup_transform(scene, focus: int, width: int, height: int) -> tuple[float, float, float]:
    """``(x0, y0, scale)``: crop origin and scale of the close-up on person ``focus`` (fixed for the shot)."""
    pose = scene.poses[focus]
    centre = pose.head_center.mean(0)
    crop_h = min(CLOSEUP_HEAD_SIZES * pose.head_size, height)
    crop_w = crop_h * width / height
    x0 = float(np.clip(centre[0] - crop_w / 2, 0, width - crop_w))
    y0 = float(np.clip(centre[1] - crop_h / 2, 0, height - crop_h))
    return x0, y0, height / crop_h


def _box(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(0), points.max(0)]).astype(np.float32)


def _shot_frames(
    plan: ShotPlan, scene, width: int, height: int, offset: int, shot: int, out: list[Appearance]
):
    """Yield the shot's RGB frames; fill ``out`` with its appearances (truth) once the shot is rendered."""
    count = len(plan.identity_indices)
    n = plan.num_frames
    kp = np.stack([p.keypoints_133 for p in scene.poses])  # (P, n, 133, 3)
    boxes = np.full((count, n, 4), np.nan, np.float32)
    if plan.kind == "closeup":
        x0, y0, scale = _closeup_transform(scene, plan.focus, width, height)
        kp = kp[plan.focus : plan.focus + 1].copy()
        kp[..., 0] = (kp[..., 0] - x0) * scale
        kp[..., 1] = (kp[..., 1] - y0) * scale
        outside = (kp[..., 0] < 0) | (kp[..., 0] > width) | (kp[..., 1] < 0) | (kp[..., 1] > height)
        kp[..., 2] = np.where(outside, 0.0, kp[..., 2])
        crop = (x0, y0, x0 + width / scale, y0 + height / scale)
        for t, (rgb, label, _) in enumerate(render_scene(scene)):
            mask = label == plan.focus + 1
            box = _mask_box(mask)
            if box is not None:
                boxes[0, t] = np.clip((box - [x0, y0, x0, y0]) * scale, 0, [width, height, width, height])
            yield np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR, box=crop))
        people = [plan.focus]
        boxes = boxes[:1]
    else:
        for t, (rgb, label, _) in enumerate(render_scene(scene)):
            for j in range(count):
                box = _mask_box(label == j + 1)
                if box is not None:
                    boxes[j, t] = box
            yield rgb
        people = list(range(count))
    for k, j in enumerate(people):
        first, end = plan.on_screen[j] if plan.kind == "wide" else (0, n)
        person_kp = kp[k, first:end]
        faces = head_box(wholebody_to_mit(person_kp))
        person_boxes = boxes[k, first:end]
        missing = np.isnan(person_boxes).any(1)  # fully occluded: keypoint extent (as the generator does)
        for t in np.flatnonzero(missing):
            person_boxes[t] = _box(person_kp[t, :, :2])
        out.append(
            Appearance(
                shot=shot,
                slot=j,
                identity=make_identity(plan.identity_indices[j]).identity_id,
                first=offset + first,
                end=offset + end,
                face_boxes=faces,
                person_boxes=person_boxes,
                speaking=scene.speaking[j, first:end].copy(),
                keypoints_133=person_kp.astype(np.float32),
            )
        )


def _frame_times(num_frames: int, timestamps: str, rng: np.random.Generator) -> np.ndarray:
    """Presentation times in frame units (1/25 s) from the first frame: gaps or a variable rate."""
    if timestamps == "gaps":
        return np.arange(num_frames) + np.arange(num_frames) // GAP_EVERY
    if timestamps == "vfr":
        return np.round(np.cumsum(np.concatenate([[0.0], rng.uniform(0.5, 1.5, num_frames - 1)])) * 8) / 8
    if timestamps == "constant":
        return np.arange(num_frames, dtype=np.float64)
    raise ValueError(f"timestamps must be 'gaps', 'vfr' or 'constant', got {timestamps!r}")


def encode_raw_video(
    path: Path,
    frames: Iterator[np.ndarray],
    width: int,
    height: int,
    audio: np.ndarray | None,
    frame_times: np.ndarray,
    video_start: float = VIDEO_START_S,
    audio_start: float = AUDIO_START_S,
    codec: str = "mpeg4",
) -> None:
    """mp4 with the given frame times (in 1/25 s from ``video_start``): ``codec`` ``"mpeg4"`` (MPEG-4 Part 2
    + MP3, the authors' clips) or ``"h264"`` (H.264 ``yuv420p`` + AAC 44.1 kHz stereo, a downloaded episode).
    ``audio`` is laid out on the frame-order timeline; it is prefixed with ``video_start - audio_start`` s of
    room tone so that it plays in sync with the first frame."""
    if codec not in RAW_CODECS:
        raise ValueError(f"codec must be one of {sorted(RAW_CODECS)}, got {codec!r}")
    video_codec, audio_codec, audio_rate, layout = RAW_CODECS[codec]
    tick = Fraction(1, 200)  # 1/8 frame: fine enough for the variable-rate steps
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream(video_codec, rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = tick
        video.bit_rate = 4_000_000
        sound = None
        if audio is not None:
            sound = container.add_stream(audio_codec, rate=audio_rate, layout=layout)
        for t, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = round((video_start + frame_times[t] / FPS) / tick)
            frame.time_base = tick
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            lead = round((video_start - audio_start) * SAMPLING_RATE)
            rng = np.random.default_rng(0)
            samples = np.concatenate([rng.normal(0, 1e-3, lead).astype(np.float32), audio])
            first = round(audio_start * SAMPLING_RATE)
            for offset in range(0, len(samples), 1152):
                chunk = np.ascontiguousarray(samples[None, offset : offset + 1152])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = SAMPLING_RATE  # the encoder resamples to its rate and layout
                frame.pts = first + offset
                frame.time_base = Fraction(1, SAMPLING_RATE)
                container.mux(sound.encode(frame))
            container.mux(sound.encode())


def write_episode(
    raw_dir: str | os.PathLike,
    plan: list[ShotPlan],
    source: str = "SyntheticLateLateShow",
    video: str = "episode0",
    width: int = 128,
    height: int = 72,
    seed: int = 0,
    timestamps: str = "gaps",
    with_audio: bool = True,
    annotations: bool = True,
    noise=None,
    codec: str = "mpeg4",
) -> EpisodeTruth:
    """Render ``plan`` to ``raw_dir/source/video.mp4`` and, with ``annotations``, write the TalkNet, Sapiens and
    YOLO files beside it (``raw_dir/source/video/``; see :mod:`mit_dataset.synthetic.external`, ``noise`` an
    :class:`~mit_dataset.synthetic.external.AnnotationNoise`). Returns the truth.

    ``codec="mpeg4"`` imitates the authors' stream-copy cuts (starting at 0.36 s, audio at 0.01 s);
    ``codec="h264"`` a downloaded episode (both streams from time 0; see :func:`encode_raw_video`)."""
    from .external import AnnotationNoise, write_external_annotations

    folder = Path(raw_dir) / source
    folder.mkdir(parents=True, exist_ok=True)
    scenes = [_scene(shot, i, width, height) for i, shot in enumerate(plan)]
    offsets = np.concatenate([[0], np.cumsum([s.num_frames for s in plan])]).astype(int)
    appearances: list[Appearance] = []

    def frames() -> Iterator[np.ndarray]:
        for i, (shot, scene) in enumerate(zip(plan, scenes)):
            yield from _shot_frames(shot, scene, width, height, int(offsets[i]), i, appearances)

    num_frames = int(offsets[-1])
    audio = np.concatenate([scene.audio for scene in scenes]).astype(np.float32)
    rng = np.random.default_rng([seed, 0x7153])
    path = folder / f"{video}.mp4"
    encode_raw_video(
        path,
        frames(),
        width,
        height,
        audio if with_audio else None,
        _frame_times(num_frames, timestamps, rng),
        *((VIDEO_START_S, AUDIO_START_S) if codec == "mpeg4" else (0.0, 0.0)),
        codec=codec,
    )
    truth = EpisodeTruth(
        source=source,
        video=video,
        video_path=path,
        width=width,
        height=height,
        num_frames=num_frames,
        fps=FPS,
        shots=[(int(a), int(b)) for a, b in pairwise(offsets)],
        shot_kinds=[shot.kind for shot in plan],
        appearances=appearances,
        audio=audio,
    )
    if annotations:
        write_external_annotations(folder / video, truth, noise or AnnotationNoise(), seed=seed)
    return truth
