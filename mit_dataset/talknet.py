"""Import TalkNet-ASD demo outputs as per-person, per-frame raw speaking scores.

The TalkNet demo writes ``pywork/tracks.pckl`` (a list of face tracks ``{'track': {'frame': (N,) int,
'bbox': (N, 4)}, 'proc_track': {...}}``) and ``pywork/scores.pckl`` (one float array of raw class-1 logits
per track). A score array can be SHORTER than its track (the demo scores min(audio, video) length).

Smoothing: the score of track position ``i`` is the mean of the raw scores in the window
``[j - w, j + w]`` clipped to the score array, with ``j = min(i, len(scores) - 1)``: positions past the
end of a short score array reuse the window at its last score, so the result is never empty and never NaN
(the demo's own slice ``scores[i - 2 : min(i + 3, len - 1)]`` is empty there and its mean is NaN).

Assignment: each person's frame takes the score of the track whose box overlaps the person's face box most
in that frame (IoU >= ``min_iou``); frames where no track matches get :data:`MISSING_SCORE` (silent).

Loading: the two files are pickles from a stranger's clip folder, and ``pickle.load`` would run whatever code
the file names (a ``__reduce__`` calling ``os.system``, ``open``...). They are read with
:class:`TalkNetUnpickler`, which rebuilds only what the demo writes: lists, dicts, tuples, sets, numbers,
strings, bytes, numpy arrays, dtypes and scalars (:data:`ALLOWED_GLOBALS`); any other global is refused with
an error naming the file and the global, before anything is called.
"""

from __future__ import annotations

import builtins
import codecs
import importlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import SPEAKING_SCORE_SCALE

#: Raw score of frames without any matching face track: "silent" (model input -1).
MISSING_SCORE = -SPEAKING_SCORE_SCALE
#: Half width of the smoothing window, in frames (the demo averages 5 neighbouring frames).
SMOOTHING_HALF_WINDOW = 2


@dataclass
class TalkNetTrack:
    frames: np.ndarray  # (N,) int frame indices of the clip
    boxes: np.ndarray  # (N, 4) xyxy face boxes
    scores: np.ndarray  # (M,) raw logits, M <= N in practice


def load_talknet_outputs(
    tracks_path: str | os.PathLike, scores_path: str | os.PathLike
) -> list[TalkNetTrack]:
    """Read the demo's ``tracks.pckl`` / ``scores.pckl`` with the restricted :class:`TalkNetUnpickler`;
    raises ``ValueError`` naming the file on bad or disallowed content (no code in the files ever runs)."""
    tracks_raw = _load_pickle(tracks_path)
    scores_raw = _load_pickle(scores_path)
    if not isinstance(tracks_raw, list) or not isinstance(scores_raw, list):
        raise ValueError(f"{tracks_path} / {scores_path}: expected two lists (tracks, scores)")  # noqa: TRY004
    if len(tracks_raw) != len(scores_raw):
        raise ValueError(
            f"{tracks_path}: {len(tracks_raw)} tracks but {scores_path} has {len(scores_raw)} score arrays"
        )
    tracks = []
    for index, (entry, scores) in enumerate(zip(tracks_raw, scores_raw)):
        try:
            track = entry["track"]
            frames = np.asarray(track["frame"], dtype=np.int64).reshape(-1)
            boxes = np.asarray(track["bbox"], dtype=np.float32).reshape(-1, 4)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{tracks_path}: track {index} lacks track.frame / track.bbox ({error})"
            ) from error
        if len(frames) != len(boxes):
            raise ValueError(f"{tracks_path}: track {index} has {len(frames)} frames but {len(boxes)} boxes")
        tracks.append(TalkNetTrack(frames, boxes, np.asarray(scores, dtype=np.float32).reshape(-1)))
    return tracks


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (latin-1 only; no other codec runs)."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r} (only latin-1)")
    return codecs.encode(text, "latin-1")


def _numpy(module: str, name: str):
    """A numpy internal by its pickled path (``numpy.core`` in numpy 1 pickles, ``numpy._core`` in numpy 2)."""
    for candidate in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


#: ``(module, name)`` -> how to get it: the only globals a TalkNet pickle may name (any protocol, numpy 1 or 2).
ALLOWED_GLOBALS = {
    **{
        (module, name): getattr(builtins, name)  # protocol < 3 pickles say __builtin__
        for module in ("builtins", "__builtin__")
        for name in ("set", "frozenset", "complex", "bytearray")
    },
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (f"numpy.{core}.{module}", name): (f"numpy.{core}.{module}", name)
        for core in ("core", "_core")
        for module, name in (
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
            ("numeric", "_frombuffer"),
        )
    },
}


class TalkNetUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and refuses every other global."""

    def find_class(self, module: str, name: str):
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a TalkNet file holds only lists, dicts, numbers, strings and "
                "numpy arrays, and anything else could run code"
            )
        return _numpy(*target) if isinstance(target, tuple) else target

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused a persistent id: TalkNet files have none")


def _load_pickle(path: str | os.PathLike):
    """The object in the pickle at ``path``, rebuilt by :class:`TalkNetUnpickler`; ``ValueError`` naming the
    file when it is unreadable or names anything outside :data:`ALLOWED_GLOBALS`."""
    try:
        with open(path, "rb") as handle:
            return TalkNetUnpickler(handle).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a TalkNet pickle ({error})") from error


def smooth_track_scores(
    scores: np.ndarray, track_length: int, half_window: int = SMOOTHING_HALF_WINDOW
) -> np.ndarray:
    """``(track_length,)`` neighbour-mean scores; never NaN, also when ``scores`` is shorter than the track."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) == 0:
        return np.full(track_length, MISSING_SCORE, np.float32)
    if not np.isfinite(scores).all():
        raise ValueError("TalkNet scores contain NaN/inf")
    cumsum = np.concatenate([[0.0], np.cumsum(scores)])
    centre = np.minimum(np.arange(track_length), len(scores) - 1)
    lo = np.maximum(centre - half_window, 0)
    hi = np.minimum(centre + half_window + 1, len(scores))
    return ((cumsum[hi] - cumsum[lo]) / (hi - lo)).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise IoU of broadcastable ``(..., 4)`` xyxy boxes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def person_scores(
    tracks: list[TalkNetTrack],
    face_boxes: np.ndarray,
    min_iou: float = 0.3,
    half_window: int = SMOOTHING_HALF_WINDOW,
) -> np.ndarray:
    """Per-person raw scores ``(P, F)`` for persons with face boxes ``(P, F, 4)``."""
    face_boxes = np.asarray(face_boxes, np.float32)
    num_persons, num_frames = face_boxes.shape[:2]
    best_iou = np.zeros((num_persons, num_frames))
    result = np.full((num_persons, num_frames), MISSING_SCORE, np.float32)
    for track in tracks:
        smoothed = smooth_track_scores(track.scores, len(track.frames), half_window)
        inside = (track.frames >= 0) & (track.frames < num_frames)
        frames, boxes, smoothed = track.frames[inside], track.boxes[inside], smoothed[inside]
        iou = box_iou(face_boxes[:, frames], boxes[None])  # (P, n)
        better = (iou >= min_iou) & (iou > best_iou[:, frames])
        for person in range(num_persons):
            chosen = frames[better[person]]
            best_iou[person, chosen] = iou[person, better[person]]
            result[person, chosen] = smoothed[better[person]]
    return result


def load_person_scores(folder: str | os.PathLike, face_boxes: np.ndarray, **kwargs) -> np.ndarray:
    """:func:`person_scores` from ``folder/tracks.pckl`` and ``folder/scores.pckl``."""
    folder = Path(folder)
    return person_scores(
        load_talknet_outputs(folder / "tracks.pckl", folder / "scores.pckl"), face_boxes, **kwargs
    )
