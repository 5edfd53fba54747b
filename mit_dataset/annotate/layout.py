"""Where things are: the raw folder the pipeline reads and the per-video cache it keeps.

Raw folder (``RAW_DIR``)::

    RAW_DIR/<source>/<video>.mp4           one raw episode (.mp4 .mkv .avi .mov .webm .m4v), any frame rate
    RAW_DIR/<source>/<video>/              optional annotations made by external tools, all indexed by the
                                           raw video's decoded frames in order (0-based, or the 1-based number
                                           in a file name, as FFmpeg's ``output_%04d.png`` extraction counts):
        pywork/tracks.pckl, scores.pckl    TalkNet-ASD / WhisperV demo outputs (face tracks, speaking logits)
        pose/*_0001.json ...               Sapiens pose JSON per frame (both layouts; the last number in the
                                           name is the 1-based frame number)
        labels/*_0001.txt ...              YOLO person detections per frame (``cls xc yc w h [conf]``,
                                           normalised; a frame without a file has no detection)

``<source>`` is the show (``TonightShow`` and ``LateLateShow`` map to the paper's subsets); clip names are
``{source}_{video}_{start:06d}to{end:06d}`` (frames of the normalised video, end exclusive), so source and
video names must be safe file names (:func:`mit_dataset.safe_names.check_name`).

Cache (``CACHE_DIR/<source>/<video>/``): one file per stage (``normalized.mp4`` + ``normalize.npz``,
``shots.npz``, ``faces.npz``, ``speaking.npz``, ``selection.npz``, ``poses.npz``, ``persons.npz``,
``aligned.npz``), each written atomically with the key of the inputs and settings that made it; ``done.json``
when the video's clips are published. A stage whose key changed is recomputed, and so is everything after it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, atomic_write_text
from ..safe_names import UnsafeNameError, check_name

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")


@dataclass(frozen=True)
class RawVideo:
    """One raw episode and the folder of its external annotations (which may not exist)."""

    source: str
    video: str
    path: str
    annotations: str

    @property
    def key(self) -> str:
        return f"{self.source}/{self.video}"

    @property
    def talknet_dir(self) -> Path:
        return Path(self.annotations) / "pywork"

    @property
    def pose_dir(self) -> Path:
        return Path(self.annotations) / "pose"

    @property
    def labels_dir(self) -> Path:
        return Path(self.annotations) / "labels"

    def has_talknet(self) -> bool:
        return (self.talknet_dir / "tracks.pckl").is_file() and (self.talknet_dir / "scores.pckl").is_file()

    def to_dict(self) -> dict:
        return asdict(self)


def find_raw_videos(raw_dir: str | os.PathLike) -> tuple[list[RawVideo], list[tuple[str, str]]]:
    """The raw videos under ``raw_dir`` (sorted by source, then video) and ``(path, reason)`` of entries that
    cannot be used (unsafe names).

    Raises:
        FileNotFoundError: ``raw_dir`` is not a folder.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(
            f"{raw_dir}: no such folder of raw videos (expected RAW_DIR/<source>/<video>.mp4)"
        )
    videos, refused = [], []
    for source_dir in sorted(p for p in raw_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(
            p for p in source_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        ):
            try:
                source = check_name(source_dir.name, what="source folder name")
                video = check_name(path.stem, what="video name")
            except UnsafeNameError as error:
                refused.append((str(path), str(error)))
                continue
            videos.append(RawVideo(source, video, str(path), str(source_dir / video)))
    return videos, refused


def file_fingerprint(*paths: str | os.PathLike) -> str:
    """Size and modification time of files (absent ones count as absent): changes when an input changes."""
    parts = []
    for path in paths:
        try:
            stat = os.stat(path)
            parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        except FileNotFoundError:
            parts.append(f"{path}:absent")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """:func:`file_fingerprint` of every file directly in ``folder`` (none when it does not exist)."""
    folder = Path(folder)
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return file_fingerprint(folder, *files)


class VideoCache:
    """The cache folder of one video: stage results as ``.npz`` (arrays only, loaded without pickle) whose
    ``__key__`` entry says which inputs made them."""

    def __init__(self, root: str | os.PathLike, video: RawVideo):
        self.folder = Path(root) / video.source / video.video

    def path(self, name: str) -> Path:
        return self.folder / name

    def load(self, stage: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stage ``stage`` saved under ``key``; None when absent, stale or unreadable."""
        path = self.path(f"{stage}.npz")
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["__key__"]) != key:
                    return None
                return {name: data[name] for name in data.files if name != "__key__"}
        except (OSError, ValueError, KeyError, EOFError):
            return None

    def save(self, stage: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(f"{stage}.npz")) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, __key__=np.asarray(key), **arrays)

    def read_json(self, name: str) -> dict | None:
        try:
            return json.loads(self.path(name).read_text())
        except (OSError, ValueError):
            return None

    def write_json(self, name: str, value: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(name), json.dumps(value, indent=1))


def meta_array(value) -> np.ndarray:
    """JSON-able metadata as a 0-d string array (an ``.npz`` entry that needs no pickle)."""
    return np.asarray(json.dumps(value))


def read_meta_array(array: np.ndarray):
    return json.loads(str(array))
