"""Box tracks over frames: the one representation face tracks and person tracks share, an IoU tracker that
links per-frame detections into tracks, gap interpolation, and packing for the on-disk cache.

A :class:`Track` covers a contiguous run of frames ``start .. start + n - 1`` with one xyxy box per frame:
gaps up to ``max_gap`` frames between observations are filled by linear interpolation of the box corners
(what the TalkNet demo does between detections), longer gaps split the track. The tracker is the greedy IoU
association of the TalkNet demo's ``track_shot`` generalised to any detections: a detection continues the
track whose last box overlaps it most (IoU >= ``min_iou``), provided that track was seen at most ``max_gap``
frames earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..talknet import box_iou


@dataclass
class Track:
    """Boxes ``(n, 4)`` xyxy float32 on frames ``start .. end - 1``; ``track_id`` names it in its video,
    ``source_index`` is the index of the external track it came from (imported tracks; -1 otherwise)."""

    start: int
    boxes: np.ndarray
    track_id: int = -1
    source_index: int = -1

    @property
    def end(self) -> int:
        return self.start + len(self.boxes)

    @property
    def frames(self) -> np.ndarray:
        return np.arange(self.start, self.end)

    def box_at(self, frames: np.ndarray) -> np.ndarray:
        """Boxes ``(len(frames), 4)`` at the given frames (which must lie inside the track)."""
        return self.boxes[np.asarray(frames) - self.start]

    def slice(self, start: int, end: int) -> Track:
        start, end = max(start, self.start), min(end, self.end)
        return Track(
            start, self.boxes[start - self.start : end - self.start], self.track_id, self.source_index
        )


def interpolate_track(
    frames: np.ndarray, boxes: np.ndarray, max_gap: int, source_index: int = -1
) -> list[Track]:
    """Contiguous tracks from observations at ``frames`` (any order; repeats keep the first): gaps of at most
    ``max_gap`` missing frames are interpolated linearly, longer gaps start a new track."""
    frames = np.asarray(frames, np.int64).reshape(-1)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} boxes")
    if len(frames) == 0:
        return []
    frames, first = np.unique(frames, return_index=True)
    boxes = boxes[first]
    pieces = np.split(np.arange(len(frames)), np.flatnonzero(np.diff(frames) > max_gap + 1) + 1)
    tracks = []
    for piece in pieces:
        f, b = frames[piece], boxes[piece]
        full = np.arange(f[0], f[-1] + 1)
        filled = np.stack([np.interp(full, f, b[:, k]) for k in range(4)], axis=1).astype(np.float32)
        tracks.append(Track(int(f[0]), filled, source_index=source_index))
    return tracks


def link_detections(
    frames: Sequence[int], detections: Sequence[np.ndarray], min_iou: float, max_gap: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Greedy IoU tracking. ``detections[k]`` ``(m_k, 4)`` are the boxes found at frame ``frames[k]`` (frames
    increasing). Returns ``(frames, boxes)`` observations per track, in order of their first frame."""
    open_tracks: list[tuple[list[int], list[np.ndarray]]] = []
    closed = []
    for frame, boxes in zip(frames, detections):
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        alive = [t for t in open_tracks if frame - t[0][-1] <= max_gap + 1]
        closed += [t for t in open_tracks if frame - t[0][-1] > max_gap + 1]
        open_tracks = alive
        if len(boxes) and open_tracks:
            last = np.stack([t[1][-1] for t in open_tracks])
            iou = box_iou(last[:, None], boxes[None])  # (tracks, detections)
            taken_tracks, taken_boxes = set(), set()
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                i, j = divmod(int(flat), len(boxes))
                if iou[i, j] < min_iou:
                    break
                if i in taken_tracks or j in taken_boxes:
                    continue
                open_tracks[i][0].append(int(frame))
                open_tracks[i][1].append(boxes[j])
                taken_tracks.add(i)
                taken_boxes.add(j)
            boxes = boxes[[j for j in range(len(boxes)) if j not in taken_boxes]]
        open_tracks += [([int(frame)], [box]) for box in boxes]
    closed += open_tracks
    closed.sort(key=lambda t: (t[0][0], t[1][0][0]))
    return [(np.asarray(f, np.int64), np.stack(b)) for f, b in closed]


def split_at_cuts(tracks: list[Track], shots: Sequence[tuple[int, int]]) -> list[Track]:
    """Each track cut into its pieces inside each shot ``[start, end)`` (a track never spans a camera cut)."""
    pieces = []
    for track in tracks:
        for start, end in shots:
            if start < track.end and end > track.start:
                pieces.append(track.slice(start, end))
    return pieces


def smooth_boxes(track: Track, frames: int) -> Track:
    """Centred moving average of the box corners over ``frames`` frames (edges held)."""
    from ..timeseries import centred_moving_average

    smoothed = centred_moving_average(track.boxes.T, frames).T.astype(np.float32)
    return Track(track.start, smoothed, track.track_id, track.source_index)


def pack_tracks(tracks: Sequence[Track]) -> dict[str, np.ndarray]:
    """Arrays for ``np.savez`` (no pickling): starts, lengths, ids and the concatenated boxes."""
    return {
        "track_start": np.asarray([t.start for t in tracks], np.int64),
        "track_length": np.asarray([len(t.boxes) for t in tracks], np.int64),
        "track_id": np.asarray([t.track_id for t in tracks], np.int64),
        "track_source": np.asarray([t.source_index for t in tracks], np.int64),
        "track_boxes": np.concatenate([t.boxes for t in tracks]).astype(np.float32)
        if tracks
        else np.zeros((0, 4), np.float32),
    }


def unpack_tracks(arrays) -> list[Track]:
    offsets = np.concatenate([[0], np.cumsum(arrays["track_length"])])
    return [
        Track(int(start), arrays["track_boxes"][offsets[i] : offsets[i + 1]], int(track_id), int(source))
        for i, (start, track_id, source) in enumerate(
            zip(arrays["track_start"], arrays["track_id"], arrays["track_source"])
        )
    ]


def pack_ragged(values: Sequence[np.ndarray], name: str) -> dict[str, np.ndarray]:
    """A list of arrays with equal trailing shapes as ``{name}_offsets`` + ``{name}_values``."""
    lengths = [len(v) for v in values]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = np.concatenate(values) if values else np.zeros(0, np.float32)
    return {f"{name}_offsets": offsets, f"{name}_values": data}


def unpack_ragged(arrays, name: str) -> list[np.ndarray]:
    offsets, data = arrays[f"{name}_offsets"], arrays[f"{name}_values"]
    return [data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
