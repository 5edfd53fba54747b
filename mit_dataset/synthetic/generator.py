"""Synthetic MIT clips: split plan, scene assembly, rendering to mp4 and validated :class:`ClipRecord`s.

Split plan (:func:`plan_clips`), for ``N`` clips:

* test-easy and test-challenging get ``max(2, round(0.2 N))`` clips each when ``N >= 8`` (``N // 4`` each
  below that), train gets the rest; inside each of the three groups the subsets alternate
  ``two_human``, ``multi_human``, ... so every (split, difficulty, subset) combination has a clip as soon
  as ``N >= 8``.
* Identities: roster entries ``0 .. num_seen-1`` are the *seen* pool, the next ``num_unseen`` the *unseen*
  pool (16 and 8, growing with ``N``); people in one clip are picked to look distinct (shirt colours).
  Train clips cycle through the seen pool; test-easy clips use only identities that appear in this plan's
  train clips (new motion/audio seeds); test-challenging clips use only unseen identities and the
  ``"heated"`` conversation style (short turns, over-talking, rapid switches) instead of ``"talk"``.
* ``two_human`` clips ("SyntheticTonightShow") have 2 people, ``multi_human`` ("SyntheticLateLateShow") 2-4.

Everything is a deterministic function of ``(num_clips, seed)`` (and of the size/length arguments).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from tqdm.auto import tqdm

from ..clip import ClipRecord, PersonTrack
from ..features import FPS, SAMPLING_RATE
from ..keypoints import head_box, wholebody_to_mit
from ..masks import encode_mask
from ..safe_names import child_path
from ..video_io import write_video
from .conversation import current_speaker, make_schedule
from .identity import Identity, make_identity
from .render import SceneRenderer, make_background
from .skeleton import BODY_BOTTOM, BODY_HALF_WIDTH, BODY_TOP, MAX_YAW, PoseTrack, animate_person, smooth_noise
from .voice import mix_tracks, synthesize_speech

SOURCES = {"two_human": "SyntheticTonightShow", "multi_human": "SyntheticLateLateShow"}
STYLE_BY_DIFFICULTY = {"": "talk", "easy": "talk", "challenging": "heated"}
NUM_SEEN_IDENTITIES = 16
NUM_UNSEEN_IDENTITIES = 8
#: Smallest L1 RGB distance between the shirts of two people in one clip (when the pool allows).
MIN_SHIRT_DISTANCE = 90
#: Raw TalkNet-like logit while speaking / silent.
SPEAKING_LOGIT = 2.5
MIN_SIZE = 32


@dataclass(frozen=True)
class SyntheticClipSpec:
    """One planned clip: where it goes and what is in it (everything else follows from ``seed``)."""

    index: int
    clip_id: str
    source: str
    video: str
    start_frame: int
    num_frames: int
    subset: str
    split: str
    difficulty: str
    identity_indices: tuple[int, ...]  # left to right
    style: str
    seed: int

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(make_identity(i).identity_id for i in self.identity_indices)

    @property
    def num_people(self) -> int:
        return len(self.identity_indices)


def _split_counts(num_clips: int) -> tuple[int, int, int]:
    if num_clips >= 8:
        easy = challenging = max(2, round(0.2 * num_clips))
    else:
        easy = challenging = num_clips // 4
    return num_clips - easy - challenging, easy, challenging


def num_frames_for(seconds: float, fps: float = FPS) -> int:
    frames = round(seconds * fps)
    if frames < 1:
        raise ValueError(f"seconds must give at least one frame at {fps} fps, got {seconds}")
    return frames


def looks_distinct(a: int, b: int) -> bool:
    """Whether roster entries ``a`` and ``b`` are easy to tell apart in one frame (shirt colours far apart)."""
    shirt_a, shirt_b = make_identity(a).shirt, make_identity(b).shirt
    return sum(abs(x - y) for x, y in zip(shirt_a, shirt_b)) >= MIN_SHIRT_DISTANCE


def _pick(order: list[int], count: int) -> list[int]:
    """The first ``count`` entries of ``order`` that look distinct from those already picked (relaxed to
    any distinct entries when the pool is too small for that)."""
    chosen: list[int] = []
    for strict in (True, False):
        for i in order:
            if len(chosen) == count:
                return chosen
            if i not in chosen and (not strict or all(looks_distinct(i, c) for c in chosen)):
                chosen.append(i)
    return chosen


def plan_clips(
    num_clips: int,
    seed: int = 0,
    seconds: float = 3.0,
    num_seen_identities: int | None = None,
    num_unseen_identities: int | None = None,
) -> list[SyntheticClipSpec]:
    """Deterministic split/subset/identity plan for ``num_clips`` clips (rules in the module docstring).

    The identity pools default to ``max(16, num_clips // 2)`` seen and ``max(8, num_clips // 6)`` unseen
    roster entries.
    """
    if num_clips < 0:
        raise ValueError(f"num_clips must be >= 0, got {num_clips}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    num_seen = (
        max(NUM_SEEN_IDENTITIES, num_clips // 2) if num_seen_identities is None else num_seen_identities
    )
    num_unseen = (
        max(NUM_UNSEEN_IDENTITIES, num_clips // 6) if num_unseen_identities is None else num_unseen_identities
    )
    if num_seen < 4 or num_unseen < 4:
        raise ValueError(
            f"need >= 4 seen and >= 4 unseen identities (4 people per clip at most), got {num_seen} and {num_unseen}"
        )
    num_frames = num_frames_for(seconds)
    rng = np.random.default_rng([seed, 0x9A17])
    seen = list(range(num_seen))
    unseen = list(range(num_seen, num_seen + num_unseen))
    queue: list[int] = []  # train clips walk through shuffled rounds of the seen pool

    n_train, n_easy, n_challenging = _split_counts(num_clips)
    groups = (
        [("train", "")] * n_train + [("test", "easy")] * n_easy + [("test", "challenging")] * n_challenging
    )
    specs: list[SyntheticClipSpec] = []
    seen_in_train: list[int] = []
    position_in_group: dict[str, int] = {}
    for index, (split, difficulty) in enumerate(groups):
        k = position_in_group.get(difficulty, 0)
        position_in_group[difficulty] = k + 1
        subset = ("two_human", "multi_human")[k % 2]
        count = 2 if subset == "two_human" else int(rng.integers(2, 5))
        if split == "train":
            while len(queue) < 2 * count + 4:
                queue.extend(int(i) for i in rng.permutation(seen))
            people = _pick(queue, count)
            for i in people:
                queue.remove(i)
            seen_in_train.extend(i for i in people if i not in seen_in_train)
        elif difficulty == "easy":
            pool = seen_in_train or seen
            people = _pick([int(i) for i in rng.permutation(pool)], min(count, len(pool)))
        else:
            people = _pick([int(i) for i in rng.permutation(unseen)], count)
        clip_seed = int(np.random.SeedSequence([seed, index, 0xC11B]).generate_state(1)[0])
        start = int(rng.integers(0, 200_000))
        source = SOURCES[subset]
        video = f"seed{seed}clip{index:04d}"
        specs.append(
            SyntheticClipSpec(
                index=index,
                clip_id=f"{source}_{video}_{start:06d}to{start + num_frames:06d}",
                source=source,
                video=video,
                start_frame=start,
                num_frames=num_frames,
                subset=subset,
                split=split,
                difficulty=difficulty,
                identity_indices=tuple(people),
                style=STYLE_BY_DIFFICULTY[difficulty],
                seed=clip_seed,
            )
        )
    return specs


@dataclass
class SyntheticScene:
    """Everything about a clip except its pixels (which :func:`render_scene` draws frame by frame)."""

    spec: SyntheticClipSpec
    width: int
    height: int
    identities: list[Identity]
    poses: list[PoseTrack]
    background: np.ndarray  # (H, W, 3) uint8
    audio: np.ndarray  # (S,) float32 mix
    speaker_audio: list[np.ndarray]  # P x (S,) float32, sum == audio
    speaking: np.ndarray  # (P, F) bool schedule
    mouth: np.ndarray  # (P, F) float32 in [0, 1]
    speaking_score_raw: np.ndarray  # (P, F) float32
    metadata: dict = field(default_factory=dict)
    visible: np.ndarray | None = None  # (P, F) bool: who is on screen (None: everybody, always)


def _gaze_yaw(xs: np.ndarray, slot: float, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(P, F)`` yaw targets: listeners look at the floor holder, the holder at the previous speaker
    (or, now and then, the camera); before anyone spoke, at a neighbour."""
    num_people, num_frames = active.shape
    floor = current_speaker(active)
    yaw = np.zeros((num_people, num_frames))
    for i in range(num_people):
        others = floor.copy()
        others[others == i] = -1
        # Forward-fill the last floor holder other than i.
        idx = np.where(others >= 0, np.arange(num_frames), -1)
        idx = np.maximum.accumulate(idx)
        last_other = np.where(idx >= 0, others[np.maximum(idx, 0)], -1)
        neighbour = i + 1 if i + 1 < num_people else i - 1
        default = int(rng.choice([p for p in range(num_people) if p != i])) if num_people > 2 else neighbour
        target = np.where((floor >= 0) & (floor != i), floor, np.where(last_other >= 0, last_other, default))
        dx = xs[target] - xs[i]
        magnitude = 0.75 + 0.25 * np.clip((np.abs(dx) / slot - 1.0) / 2.0, 0.0, 1.0)
        yaw[i] = np.sign(dx) * MAX_YAW * magnitude
        camera = (floor == i) & (smooth_noise(rng, num_frames, 15) > 0.9)
        yaw[i, camera] = 0.0
    return yaw


def build_scene(
    spec: SyntheticClipSpec, width: int = 256, height: int = 144, visible: np.ndarray | None = None
) -> SyntheticScene:
    """Schedule, voices, layout and animation of one planned clip (deterministic given ``spec``).

    ``visible`` ``(P, F)`` bool marks who is on screen per frame (people entering and leaving a shot, see
    :mod:`mit_dataset.synthetic.episode`); an off-screen person is silent and not drawn. Default: all."""
    if width % 2 or height % 2 or width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"width/height must be even and >= {MIN_SIZE} (H.264), got {width}x{height}")
    streams = np.random.SeedSequence(spec.seed).spawn(4 + 2 * spec.num_people)
    rng_conversation, rng_layout, rng_scores, rng_background = (np.random.default_rng(s) for s in streams[:4])
    people = [make_identity(i) for i in spec.identity_indices]
    count, frames = len(people), spec.num_frames

    speaking = make_schedule(count, frames, spec.style, rng_conversation)
    if visible is not None:
        visible = np.asarray(visible, bool)
        if visible.shape != (count, frames):
            raise ValueError(f"visible must have shape {(count, frames)}, got {visible.shape}")
        speaking &= visible
    tracks, mouths = [], []
    for j, identity in enumerate(people):
        track, mouth = synthesize_speech(identity.voice, speaking[j], np.random.default_rng(streams[4 + j]))
        tracks.append(track)
        mouths.append(mouth)
    audio, tracks = mix_tracks(tracks)
    mouth = np.stack(mouths)

    # Side by side: each person owns a slot of the width, 10% wider than their largest reach.
    slot, half_width = width / count, 1.1 * BODY_HALF_WIDTH
    unit = min(0.92 * height / (BODY_BOTTOM - BODY_TOP), slot / (2 * half_width))
    free = max(0.0, slot / 2 - half_width * unit)
    xs = slot * (np.arange(count) + 0.5) + rng_layout.uniform(-0.5, 0.5, count) * free
    y0 = height / 2 - (BODY_TOP + BODY_BOTTOM) / 2 * unit
    yaw_target = _gaze_yaw(xs, slot, speaking, rng_layout)
    poses = [
        animate_person(
            identity,
            xs[j],
            y0,
            unit,
            speaking[j],
            mouth[j],
            yaw_target[j],
            np.random.default_rng(streams[4 + count + j]),
        )
        for j, identity in enumerate(people)
    ]
    target = np.where(speaking, SPEAKING_LOGIT, -SPEAKING_LOGIT)
    raw = (
        gaussian_filter1d(target, 1.5, axis=1, mode="nearest")
        + 0.2 * smooth_noise(rng_scores, frames, 2, (count,)).T
    )
    return SyntheticScene(
        spec=spec,
        width=width,
        height=height,
        identities=people,
        poses=poses,
        background=make_background(width, height, y0, unit, rng_background),
        audio=audio,
        speaker_audio=tracks,
        speaking=speaking,
        mouth=mouth.astype(np.float32),
        speaking_score_raw=raw.astype(np.float32),
        metadata={
            "style": spec.style,
            "layout_x": xs.tolist(),
            "unit": float(unit),
            "yaw_target": yaw_target,
        },
        visible=visible,
    )


def render_scene(
    scene: SyntheticScene, with_heads: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Yield ``(rgb, label, head_label)`` per frame (see :class:`~mit_dataset.synthetic.render.SceneRenderer`)."""
    renderer = SceneRenderer(scene.background, list(zip(scene.identities, scene.poses)))
    for f in range(scene.spec.num_frames):
        hidden = (
            frozenset() if scene.visible is None else frozenset(np.flatnonzero(~scene.visible[:, f]).tolist())
        )
        yield renderer(f, with_heads=with_heads, hidden=hidden)


def _mask_box(mask: np.ndarray) -> np.ndarray | None:
    rows, cols = mask.any(1), mask.any(0)
    if not rows.any():
        return None
    y1, y2 = rows.argmax(), rows.size - rows[::-1].argmax()
    x1, x2 = cols.argmax(), cols.size - cols[::-1].argmax()
    return np.array([x1, y1, x2, y2], np.float32)


def write_clip(scene: SyntheticScene, out_dir: str | os.PathLike) -> ClipRecord:
    """Render ``scene`` to ``out_dir/videos/{clip_id}.mp4`` (mixed audio muxed in) and return its validated record."""
    spec = scene.spec
    count, frames = len(scene.poses), spec.num_frames
    rles: list[list[str]] = [[] for _ in range(count)]
    boxes = np.zeros((count, frames, 4), np.float32)

    def rgb_frames() -> Iterator[np.ndarray]:
        for f, (rgb, label, _) in enumerate(render_scene(scene)):
            for j in range(count):
                # Built transposed so the (H, W) mask is Fortran-ordered: the RLE encoder then needs no copy.
                mask = (label.T == j + 1).view(np.uint8).T
                rles[j].append(encode_mask(mask))
                box = _mask_box(mask)
                if box is None:  # fully occluded: fall back to the keypoint extent
                    pts = scene.poses[j].keypoints_133[f, :, :2]
                    box = np.concatenate([pts.min(0), pts.max(0)])
                boxes[j, f] = box
            yield rgb

    video_path = write_video(
        child_path(Path(out_dir) / "videos", spec.clip_id, ".mp4", what="clip id"),
        rgb_frames(),
        fps=FPS,
        audio=scene.audio,
        sample_rate=SAMPLING_RATE,
    )
    persons = []
    for j, (identity, pose) in enumerate(zip(scene.identities, scene.poses)):
        keypoints = wholebody_to_mit(pose.keypoints_133)
        persons.append(
            PersonTrack(
                person_id=f"p{j}",
                identity=identity.identity_id,
                keypoints=keypoints,
                boxes=boxes[j],
                face_boxes=head_box(keypoints),
                speaking_score_raw=scene.speaking_score_raw[j],
                mask_rle=rles[j],
                keypoints_133=pose.keypoints_133,
            )
        )
    metadata = dict(scene.metadata)
    metadata.update(
        generator="mit_dataset.synthetic",
        seed=spec.seed,
        speaker_audio=scene.speaker_audio,
        speaking=scene.speaking,
        mouth_open=scene.mouth,
    )
    record = ClipRecord(
        clip_id=spec.clip_id,
        source=spec.source,
        subset=spec.subset,
        split=spec.split,
        difficulty=spec.difficulty,
        video_path=video_path,
        audio=scene.audio,
        num_frames=frames,
        width=scene.width,
        height=scene.height,
        persons=persons,
        fps=FPS,
        metadata=metadata,
    )
    return record.validate()


def generate_records(
    out_dir: str | os.PathLike,
    num_clips: int,
    seed: int = 0,
    width: int = 256,
    height: int = 144,
    seconds: float = 3.0,
    progress: bool = True,
) -> list[ClipRecord]:
    """Plan, render and write ``num_clips`` synthetic MIT clips; returns their validated records.

    Videos go to ``out_dir/videos/{clip_id}.mp4``. Per-speaker audio tracks are in
    ``record.metadata["speaker_audio"]`` (their sum is ``record.audio``), the speaking schedule in
    ``metadata["speaking"]`` and the per-frame mouth opening in ``metadata["mouth_open"]``.
    """
    specs = plan_clips(num_clips, seed=seed, seconds=seconds)
    records = []
    for spec in tqdm(specs, desc="synthetic MIT clips", unit="clip", disable=not progress):
        records.append(write_clip(build_scene(spec, width, height), out_dir))
    return records
