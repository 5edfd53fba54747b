"""Official MIT per-clip folders: read them into :class:`~mit_dataset.clip.ClipRecord`, and write them.

Layout of a folder of clips (what ``mit-talking export CLIPS`` reads)::

    CLIPS/
      splits.json          optional, ours: {"<clip name>": {"split": "test", "difficulty": "easy"}, ...}
                           (a bare "train" / "test" string is accepted as the value; a test clip needs a
                           difficulty, "easy" or "challenging"; an optional "subset"). Clips absent from it
                           are train clips.
      <clip name>/         {source}_{video}_{start:06d}to{end:06d}; any sub-folder holding one of these files
                           is a clip and must be readable (a missing meta.json is an error, not a skip)
        video.mp4          the clip with its audio track (any codec FFmpeg decodes; normalised on import)
        meta.json          {"source", "video", "period": [t0, t1] (s), "num_speaker", "url"}; the subset is
                           meta.json's optional "subset", else splits.json's, else the show (TonightShow ->
                           two_human, LateLateShow -> multi_human), else num_speaker (2 -> two_human, 3-4 ->
                           multi_human: the released code writes source "test")
        speaker_info_with_instance_bbox.json   (preferred) or speaker_info.json: one entry per person
                           {"face_track": [[x1, y1, x2, y2], ...], "speaking_score": [...],
                            "speak": [[s, e], ...], "listen": [[s, e], ...],
                            "instance_bbox": [x1, y1, x2, y2] (static), "clip_range": [first, last]}
                           plus optional "person_id" / "identity" (defaults "p{i}" and
                           "{source}_{video}_p{i}"); other fields ("period_num") and a
                           speaker_info_merged.json beside it are ignored (see :mod:`mit_dataset.speaker_info`)
        pose/*.json        one Sapiens file per frame of video.mp4, in order of the number in the name;
                           {"instance_info": [{"keypoints": [[x, y] x 133], "keypoint_scores": [133],
                           ("bbox": [[x1, y1, x2, y2]], "bbox_score")}]}, both variants
        pywork/tracks.pckl, pywork/scores.pckl   optional TalkNet-ASD demo outputs, used for persons
                           without "speaking_score" (see :mod:`mit_dataset.talknet`)

Known hazards of the partial release, and what the reader does:

- ``clip_range`` (1-based, inclusive) selects the clip's entries of a person's per-frame arrays
  (``face_track``, ``speaking_score``); without it the arrays are taken from index 0.
- Media: ``video.mp4`` is probed once by decoding it (:func:`~mit_dataset.media.probe_media`). Unless it already
  is constant-rate H.264 from time 0 with 16 kHz mono audio aligned to its first frame, it is rewritten into a
  work folder (:func:`~mit_dataset.media.normalize_media`: re-timed by frame order at the nominal fps, display
  rotation applied, audio trimmed/padded to the first video frame) and that copy is what the dataset embeds.
- Arrays and pose files are realigned to the decoded frames (:mod:`mit_dataset.realign`): one entry per
  decoded frame is taken in order, exactly ONE short is repaired by repeating the last value, other lengths
  are read on the clip's timeline (a cut that lost frames at the start or has timestamp gaps); anything else
  is an error naming the clip, person and field. Coordinates follow the display rotation.
- Pose-to-person assignment: per frame, the pose with the most keypoints (score >= 0.4) inside the
  person's box; each pose goes to at most one person (most keypoints first). A person with no such pose in
  a frame gets zero keypoints (score 0) there.
- The person box is ``instance_bbox``; ``speaker_info.json`` has none, so the stand-in is the face box
  widened to 3 face widths and extended down to the bottom of the frame.
- Masks: real clips have no segmentation, so the stored mask is the documented stand-in
  :func:`mit_dataset.masks.box_mask_rle` of the person box.
- ``speaking_score`` values are taken as raw TalkNet logits (``speaking_score_raw``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from .atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from .clip import ClipRecord, ClipValidationError, PersonTrack
from .features import DIFFICULTIES, SAMPLING_RATE, SPLITS, SUBSETS
from .keypoints import NUM_WHOLEBODY_KEYPOINTS, WHOLEBODY_INDICES, wholebody_to_mit
from .masks import box_mask_rle
from .media import MediaInfo, normalize_media, probe_media, read_aligned_audio
from .realign import annotations_need_rotation, rotate_boxes, rotate_points, source_indices
from .safe_names import child_path
from .speaker_info import parse_speaker_entry
from .talknet import load_person_scores
from .video_io import _encode_audio

SPLITS_FILE = "splits.json"
SPEAKER_INFO_FILES = ("speaker_info_with_instance_bbox.json", "speaker_info.json")
TALKNET_DIR = "pywork"
#: Keypoints with at least this score count for pose-to-person assignment.
ASSIGN_MIN_SCORE = 0.4
#: Show -> subset (the paper's Table 2).
SOURCE_SUBSETS = {"TonightShow": "two_human", "LateLateShow": "multi_human"}


#: Files and folders of a clip folder: a sub-folder holding any of them is a clip (and must be readable).
CLIP_FILES = ("meta.json", "video.mp4", *SPEAKER_INFO_FILES, "pose")
#: Number of speakers -> subset, when neither meta.json, splits.json nor the show says (the released
#: collection code writes ``source`` "test"): TonightShow clips have 2 speakers, LateLateShow 2-4.
SPEAKER_COUNT_SUBSETS = {2: "two_human", 3: "multi_human", 4: "multi_human"}


class ClipSplit(NamedTuple):
    split: str
    difficulty: str
    subset: str | None = None  # optional in splits.json


def is_clip_folder(path: Path) -> bool:
    """A visible sub-folder holding any of :data:`CLIP_FILES` (whether or not it is complete)."""
    return (
        path.is_dir() and not path.name.startswith(".") and any((path / name).exists() for name in CLIP_FILES)
    )


def check_not_clip_folders(dataset) -> None:
    """Raise ``ValueError`` when ``dataset`` (a path given where a dataset folder or Hub id belongs) is a folder of
    official clip folders, or one clip folder, rather than a dataset folder: ``load_dataset`` would read their
    JSON files as a table and fail with a bare ``DatasetGenerationError``."""
    if not isinstance(dataset, (str, os.PathLike)):
        return
    path = Path(dataset)
    if not path.is_dir() or (path / "data").is_dir():
        return
    if is_clip_folder(path) or any(is_clip_folder(child) for child in path.iterdir()):
        raise ValueError(
            f"{path} holds official clip folders, not a dataset folder: write one with "
            f"`mit-talking export {path} --out DATASET_DIR` and pass DATASET_DIR"
        )


def list_clip_folders(clips_dir: str | os.PathLike) -> list[Path]:
    clips_dir = Path(clips_dir)
    if not clips_dir.is_dir():
        raise FileNotFoundError(f"{clips_dir}: no such folder of clips")
    return sorted(path for path in clips_dir.iterdir() if is_clip_folder(path))


def read_splits(clips_dir: str | os.PathLike) -> dict[str, ClipSplit]:
    """``splits.json`` of a folder of clips as ``{clip name: ClipSplit}`` ({} when absent).

    Raises:
        ClipValidationError: naming the file (and the clip) for unreadable JSON or a bad entry.
    """
    path = Path(clips_dir) / SPLITS_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClipValidationError(f"{path}: not valid UTF-8 JSON ({error})") from error
    if not isinstance(raw, dict):
        raise ClipValidationError(f"{path}: expected an object {{clip name: {{'split', 'difficulty'}}}}")
    splits = {}
    for name, value in raw.items():
        if isinstance(value, str):
            value = {"split": value}
        if not isinstance(value, dict):
            raise ClipValidationError(
                f"{path}: clip {name!r}: entry must be a split name or {{'split', 'difficulty'}}"
            )
        split, difficulty = value.get("split", "train"), value.get("difficulty", "")
        subset = value.get("subset")
        if split not in SPLITS:
            raise ClipValidationError(
                f"{path}: clip {name!r} field 'split' is {split!r}, expected one of {SPLITS}"
            )
        if split == "test" and difficulty not in DIFFICULTIES:
            raise ClipValidationError(
                f"{path}: test clip {name!r} needs a difficulty in {DIFFICULTIES}, got {difficulty!r}"
            )
        if subset is not None and subset not in SUBSETS:
            raise ClipValidationError(
                f"{path}: clip {name!r} field 'subset' is {subset!r}, expected one of {SUBSETS}"
            )
        splits[name] = ClipSplit(split, difficulty if split == "test" else "", subset)
    return splits


def read_meta(folder: Path) -> dict:
    meta = _read_json(folder, "meta.json")
    if not isinstance(meta, dict):
        raise ClipValidationError(f"clip {folder.name!r}: meta.json must be an object")
    return meta


def clip_subset(folder: Path, meta: dict, listed: str | None = None) -> str:
    """The clip's subset: meta.json ``subset``, else ``listed`` (splits.json), else the show
    (:data:`SOURCE_SUBSETS`), else the number of speakers (:data:`SPEAKER_COUNT_SUBSETS`)."""
    subset = meta.get("subset") or listed or SOURCE_SUBSETS.get(meta.get("source", ""))
    if subset is None and isinstance(meta.get("num_speaker"), int):
        subset = SPEAKER_COUNT_SUBSETS.get(meta["num_speaker"])
    if subset is None:
        raise ClipValidationError(
            f"clip {folder.name!r}: meta.json field 'source' is {meta.get('source')!r}: not one of "
            f"{sorted(SOURCE_SUBSETS)}, and no 'subset' (meta.json or splits.json) nor a 'num_speaker' of 2-4 given"
        )
    if subset not in SUBSETS:
        raise ClipValidationError(
            f"clip {folder.name!r}: meta.json field 'subset' is {subset!r}, expected one of {SUBSETS}"
        )
    return subset


def _read_json(folder: Path, name: str):
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ClipValidationError(f"clip {folder.name!r}: missing {name}") from error
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClipValidationError(f"clip {folder.name!r}: {name} is not valid JSON ({error})") from error


def stand_in_person_boxes(face_boxes: np.ndarray, height: int) -> np.ndarray:
    """Person box without ``instance_bbox``: face box widened to 3 face widths, down to the frame bottom."""
    centre = (face_boxes[:, 0] + face_boxes[:, 2]) / 2
    half = 1.5 * (face_boxes[:, 2] - face_boxes[:, 0])
    bottom = np.full(len(face_boxes), height, np.float32)
    return np.stack([centre - half, face_boxes[:, 1], centre + half, bottom], axis=1).astype(np.float32)


def _pose_files(folder: Path) -> list[Path]:
    files = list((folder / "pose").glob("*.json"))

    def frame_number(path: Path):
        digits = re.findall(r"\d+", path.stem)
        return (int(digits[-1]) if digits else -1, path.name)

    return sorted(files, key=frame_number)


#: The two layouts of a Sapiens pose file (the lite demo's and the full one's), as error messages state them.
SAPIENS_LAYOUTS = (
    '{"instance_info": [{"keypoints": [[x, y] x 133], "keypoint_scores": [133 numbers]}, ...]} (lite), or the '
    'same with "meta_info" at the top and "bbox": [[x1, y1, x2, y2]], "bbox_score" in each instance (full)'
)


def read_sapiens_file(path: Path, name: str, kind: str = "clip") -> list[np.ndarray]:
    """The (133, 3) poses of one Sapiens file (either of :data:`SAPIENS_LAYOUTS`).

    Raises:
        ClipValidationError: unreadable, not JSON or another shape; the message names the ``kind`` (``clip`` or
            ``video``) ``name``, the file and both expected layouts.
    """
    try:
        poses = []
        for instance in _sapiens_instances(json.loads(path.read_text())):
            xy = np.asarray(instance["keypoints"], np.float32).reshape(-1, 2)
            scores = np.asarray(instance["keypoint_scores"], np.float32).reshape(-1)
            if len(xy) != NUM_WHOLEBODY_KEYPOINTS or len(scores) != NUM_WHOLEBODY_KEYPOINTS:
                raise ValueError(f"{len(xy)} points / {len(scores)} scores, expected 133")
            poses.append(np.concatenate([xy, scores[:, None]], axis=1))
        return poses
    except (OSError, ValueError, TypeError) as error:
        raise ClipValidationError(
            f"{kind} {name!r}: field 'pose' file {path} is not a Sapiens pose ({error}); expected {SAPIENS_LAYOUTS}"
        ) from error


def _sapiens_instances(document: object) -> list[dict]:
    """The ``instance_info`` entries of a parsed Sapiens file, each checked to be an object with keypoints."""
    if not isinstance(document, dict) or not isinstance(document.get("instance_info"), list):
        raise TypeError(f"top level is a JSON {_json_kind(document)} without an 'instance_info' list")
    for index, instance in enumerate(document["instance_info"]):
        if not isinstance(instance, dict) or not {"keypoints", "keypoint_scores"} <= instance.keys():
            raise TypeError(
                f"instance_info[{index}] is a JSON {_json_kind(instance)}, not an object with "
                "'keypoints' and 'keypoint_scores'"
            )
    return document["instance_info"]


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null")


def assign_poses(
    poses: list[np.ndarray],
    person_boxes: np.ndarray,
    min_score: float = ASSIGN_MIN_SCORE,
    min_fraction: float = 0.0,
) -> list[int]:
    """For one frame: index into ``poses`` per person (-1 if none): the pose with most confident keypoints
    inside the person's box, each pose used at most once (pairs with the most keypoints first). With
    ``min_fraction`` a pair also needs that fraction of the pose's confident keypoints inside the box."""
    assignment = [-1] * len(person_boxes)
    if not poses:
        return assignment
    stacked = np.stack(poses)  # (N, 133, 3)
    x, y, confident = stacked[..., 0], stacked[..., 1], stacked[..., 2] >= min_score
    counts = np.zeros((len(person_boxes), len(poses)), np.int64)
    for i, (x1, y1, x2, y2) in enumerate(person_boxes):
        counts[i] = (confident & (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2)).sum(-1)
    counts[counts < min_fraction * confident.sum(-1)[None]] = 0
    used = set()
    for flat in np.argsort(-counts, axis=None, kind="stable"):
        person, pose = divmod(int(flat), len(poses))
        if counts[person, pose] == 0:
            break
        if assignment[person] == -1 and pose not in used:
            assignment[person] = pose
            used.add(pose)
    return assignment


def prepare_clip_media(folder: Path, work_dir: str | os.PathLike | None) -> tuple[Path, MediaInfo, MediaInfo]:
    """``(video to embed, its MediaInfo, the source's MediaInfo)`` for a clip folder's ``video.mp4``: the file
    itself when it already is what the dataset stores, else its :func:`~mit_dataset.media.normalize_media`
    copy in ``work_dir`` (required then)."""
    clip, video_path = folder.name, folder / "video.mp4"
    try:
        source = probe_media(video_path)
    except ValueError as error:
        raise ClipValidationError(
            f"clip {clip!r}: field 'video': video.mp4 is missing or unreadable ({error})"
        ) from error
    if not source.has_audio:
        raise ClipValidationError(f"clip {clip!r}: field 'audio': {video_path}: no audio stream")
    reasons = source.normalization_reasons(SAMPLING_RATE)
    if not reasons:
        return video_path, source, source
    if work_dir is None:
        raise ClipValidationError(
            f"clip {clip!r}: field 'video': {'; '.join(reasons)}; pass work_dir to re-encode it frame-accurately"
        )
    target = child_path(work_dir, clip, ".mp4", what="clip name")
    normalized = normalize_media(video_path, target, sample_rate=SAMPLING_RATE)
    return Path(normalized.path), normalized, source


def _speaker_file(folder: Path) -> str:
    for name in SPEAKER_INFO_FILES:
        if (folder / name).is_file():
            return name
    raise ClipValidationError(f"clip {folder.name!r}: missing {' or '.join(SPEAKER_INFO_FILES)}")


def read_clip_folder(
    folder: str | os.PathLike,
    split: str = "train",
    difficulty: str = "",
    work_dir: str | os.PathLike | None = None,
    subset: str | None = None,
) -> ClipRecord:
    """Read one official clip folder into a validated :class:`ClipRecord`.

    The video is probed once (:func:`~mit_dataset.media.probe_media`); one that is not already constant-rate
    H.264 with 16 kHz mono audio aligned to its first frame is normalised into ``work_dir`` (without it such
    a clip is an error) and the annotations are realigned and rotated with it (:mod:`mit_dataset.realign`).
    ``subset`` (from ``splits.json``) is used when meta.json has none (see :func:`clip_subset`)."""
    folder = Path(folder)
    clip = folder.name
    meta = read_meta(folder)
    subset = clip_subset(folder, meta, subset)
    speaker_file = _speaker_file(folder)
    speakers = _read_json(folder, speaker_file)
    if not isinstance(speakers, list):
        raise ClipValidationError(f"clip {clip!r}: {speaker_file} must be a list of per-person objects")
    entries = [parse_speaker_entry(entry, index, clip, speaker_file) for index, entry in enumerate(speakers)]
    video_path, info, source_info = prepare_clip_media(folder, work_dir)
    num_frames, width, height = info.num_frames, info.width, info.height
    audio = read_aligned_audio(video_path, SAMPLING_RATE, round(num_frames / info.fps * SAMPLING_RATE))

    points = [e.face_track.reshape(-1, 2) for e in entries] + [
        e.instance_bbox.reshape(-1, 2) for e in entries if e.instance_bbox is not None
    ]
    rotate = annotations_need_rotation(
        source_info, np.concatenate(points) if points else np.zeros((0, 2)), f"clip {clip!r}: {speaker_file}"
    )
    stored_faces, face_boxes, person_boxes, raw_scores = [], [], [], []
    for entry in entries:
        face = entry.face_track[
            source_indices(
                len(entry.face_track), num_frames, source_info, f"{entry.where}, field 'face_track'"
            )
        ]
        stored_faces.append(face)
        face = rotate_boxes(face, source_info) if rotate else face
        face_boxes.append(face)
        if entry.instance_bbox is not None:
            box = rotate_boxes(entry.instance_bbox, source_info) if rotate else entry.instance_bbox
            person_boxes.append(np.repeat(box[None], num_frames, 0))
        else:
            person_boxes.append(stand_in_person_boxes(face, height))
        scores = entry.speaking_score
        if scores is not None:
            where = f"{entry.where}, field 'speaking_score'"
            scores = scores[source_indices(len(scores), num_frames, source_info, where)]
        raw_scores.append(scores)
    if any(score is None for score in raw_scores):
        talknet = folder / TALKNET_DIR
        if not (talknet / "tracks.pckl").is_file():
            raise ClipValidationError(
                f"clip {clip!r}: field 'speaking_score' missing and no {TALKNET_DIR}/tracks.pckl to derive it from"
            )
        try:  # TalkNet boxes are in the stored frames' coordinates
            derived = load_person_scores(talknet, np.stack(stored_faces))
        except ValueError as error:
            raise ClipValidationError(
                f"clip {clip!r}: field 'speaking_score' (TalkNet import): {error}"
            ) from error
        raw_scores = [derived[i] if score is None else score for i, score in enumerate(raw_scores)]

    boxes = np.stack(person_boxes) if person_boxes else None
    keypoints_133 = _read_poses(folder, num_frames, boxes, source_info, rotate)
    source, video_id = str(meta.get("source", "")), str(meta.get("video", ""))
    persons = [
        PersonTrack(
            person_id=entry.person_id,
            identity=entry.identity or f"{source}_{video_id}_p{index}",
            keypoints=wholebody_to_mit(keypoints_133[index]),
            boxes=person_boxes[index],
            face_boxes=face_boxes[index],
            speaking_score_raw=raw_scores[index],
            mask_rle=[box_mask_rle(box, height, width) for box in person_boxes[index]],
            keypoints_133=keypoints_133[index],
        )
        for index, entry in enumerate(entries)
    ]
    record = ClipRecord(
        clip_id=clip,
        source=source,
        subset=subset,
        split=split,
        difficulty=difficulty,
        video_path=video_path,
        audio=audio,
        num_frames=num_frames,
        width=width,
        height=height,
        persons=persons,
        fps=info.fps,
        metadata={k: meta[k] for k in ("video", "period", "num_speaker", "url") if k in meta},
    )
    return record.validate()


def _read_poses(
    folder: Path, num_frames: int, person_boxes: np.ndarray | None, info: MediaInfo, rotate: bool
) -> np.ndarray:
    """``(P, F, 133, 3)`` assigned poses (zeros where a person has none), realigned like the arrays."""
    clip = folder.name
    num_persons = 0 if person_boxes is None else len(person_boxes)
    files = _pose_files(folder)
    picks = source_indices(
        len(files), num_frames, info, f"clip {clip!r}: field 'pose' (pose/*.json)", "files"
    )
    result = np.zeros((num_persons, num_frames, NUM_WHOLEBODY_KEYPOINTS, 3), np.float32)
    for t, index in enumerate(picks):
        if t > 0 and index == picks[t - 1]:
            result[:, t] = result[:, t - 1]
            continue
        poses = read_sapiens_file(files[index], clip)
        if rotate:
            poses = [rotate_points(pose, info) for pose in poses]
        for person, pose in enumerate(assign_poses(poses, person_boxes[:, t]) if num_persons else []):
            if pose >= 0:
                result[person, t] = poses[pose]
    return result


def iter_clip_records(
    clips_dir: str | os.PathLike, subsets=None, clip_names=None, work_dir: str | os.PathLike | None = None
) -> Iterator[ClipRecord]:
    """Read the clip folders under ``clips_dir`` one at a time (only those of ``subsets`` / named in
    ``clip_names`` when given), with split, difficulty (and optionally subset) from ``splits.json``.
    Normalised videos go to ``work_dir`` (a temporary folder, removed when the iteration ends, when not
    given). A sub-folder holding clip files that cannot be read is an error naming it."""
    splits = read_splits(clips_dir)
    folders = list_clip_folders(clips_dir)
    if not folders:
        raise FileNotFoundError(f"{clips_dir}: no clip folders (sub-folders with meta.json, video.mp4, ...)")
    unknown = sorted(set(splits) - {folder.name for folder in folders})
    if unknown:
        raise ClipValidationError(f"{Path(clips_dir) / SPLITS_FILE}: clips {unknown[:5]} have no clip folder")
    if clip_names is not None:
        folders = [folder for folder in folders if folder.name in set(clip_names)]
    listed = {name: entry.subset for name, entry in splits.items()}
    if subsets is not None:
        folders = [
            folder
            for folder in folders
            if clip_subset(folder, read_meta(folder), listed.get(folder.name)) in subsets
        ]
    with tempfile.TemporaryDirectory(prefix="mit-reencode-") as default_work_dir:
        for folder in folders:
            split, difficulty, subset = splits.get(folder.name, ClipSplit("train", ""))
            yield read_clip_folder(
                folder, split, difficulty, work_dir=work_dir or default_work_dir, subset=subset
            )


# ----------------------------------------------------------------------------------------------- writer


def _segments(mask: np.ndarray) -> list[list[int]]:
    """``[[start, end], ...]`` inclusive frame ranges where ``mask`` is true."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [[int(s), int(e) - 1] for s, e in zip(edges[::2], edges[1::2])]


def _mux_with_audio(video: Path, audio: np.ndarray, dest: Path) -> None:
    """Copy the video stream's packets (no re-encode) and add ``audio`` as AAC."""
    with av.open(str(video)) as source, av.open(str(dest), mode="w", format="mp4") as target:
        in_stream = source.streams.video[0]
        out_stream = target.add_stream_from_template(in_stream)
        audio_stream = target.add_stream("aac", rate=SAMPLING_RATE, layout="mono")
        for packet in source.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            target.mux(packet)
        _encode_audio(target, audio_stream, np.asarray(audio, np.float32), SAMPLING_RATE)


def _pose_133(person: PersonTrack) -> np.ndarray:
    if person.keypoints_133 is not None:
        return np.asarray(person.keypoints_133, np.float32)
    full = np.zeros((len(person.keypoints), NUM_WHOLEBODY_KEYPOINTS, 3), np.float32)
    full[:, list(WHOLEBODY_INDICES)] = person.keypoints
    return full


def _floats(array: np.ndarray) -> list:
    return np.asarray(array, np.float32).tolist()


def write_clip_folder(
    record: ClipRecord, clips_dir: str | os.PathLike, with_instance_bbox: bool = True
) -> Path:
    """Write ``record`` as an official clip folder ``clips_dir/<clip_id>`` (atomically) and return it.

    The video stream is copied as is and the audio muxed in; poses go to ``pose/{t + 1:06d}.json``
    (133 points; the 74 points outside the MIT subset get score 0 when the record has no raw 133 points);
    with ``with_instance_bbox`` the speaker info is ``speaker_info_with_instance_bbox.json`` carrying a
    static ``instance_bbox`` (the union of the person's boxes) and ``clip_range`` [1, F], otherwise
    ``speaker_info.json``. The split is not written here: see :func:`write_clip_folders`."""
    record.validate()
    clips_dir = Path(clips_dir)
    clips_dir.mkdir(parents=True, exist_ok=True)
    target = child_path(clips_dir, record.clip_id, what="clip id")
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    with atomic_path(target, directory=True, overwrite=False) as tmp:
        _mux_with_audio(Path(record.video_path), record.audio, tmp / "video.mp4")
        meta = {
            "source": record.source,
            "video": record.metadata.get("video", record.clip_id),
            "period": record.metadata.get("period", [0.0, record.num_frames / record.fps]),
            "num_speaker": len(record.persons),
            "url": record.metadata.get("url", ""),
            "subset": record.subset,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        speakers = []
        for person in record.persons:
            raw = np.asarray(person.speaking_score_raw, np.float32)
            entry = {
                "person_id": person.person_id,
                "identity": person.identity,
                "face_track": _floats(person.face_boxes),
                "speaking_score": _floats(raw),
                "speak": _segments(raw > 0),
                "listen": _segments(raw <= 0),
            }
            if with_instance_bbox:
                boxes = np.asarray(person.boxes, np.float32)
                entry["instance_bbox"] = _floats(np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)]))
                entry["clip_range"] = [1, record.num_frames]
            speakers.append(entry)
        name = SPEAKER_INFO_FILES[0] if with_instance_bbox else SPEAKER_INFO_FILES[1]
        (tmp / name).write_text(json.dumps(speakers))
        (tmp / "pose").mkdir()
        poses = [_pose_133(person) for person in record.persons]
        for t in range(record.num_frames):
            instances = [
                {
                    "keypoints": _floats(pose[t, :, :2]),
                    "keypoint_scores": _floats(pose[t, :, 2]),
                    "bbox": [_floats(person.boxes[t])],
                    "bbox_score": 1.0,
                }
                for person, pose in zip(record.persons, poses)
            ]
            (tmp / "pose" / f"{t + 1:06d}.json").write_text(json.dumps({"instance_info": instances}))
    return target


def write_clip_folders(records, clips_dir: str | os.PathLike, with_instance_bbox: bool = True) -> Path:
    """Write every record as a clip folder under ``clips_dir`` plus ``splits.json`` (test clips only)."""
    clips_dir = Path(clips_dir)
    remove_stale_temporaries(clips_dir)
    splits = {}
    for record in records:
        write_clip_folder(record, clips_dir, with_instance_bbox=with_instance_bbox)
        if record.split != "train":
            splits[record.clip_id] = {"split": record.split, "difficulty": record.difficulty}
    atomic_write_text(clips_dir / SPLITS_FILE, json.dumps(splits, indent=1))
    return clips_dir
