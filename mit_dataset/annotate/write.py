"""Stage 9, cut and write: every aligned clip re-encoded frame-accurately from the normalised video (one decode
pass over the video for all its clips; never ``-c copy``, whose cuts start at keyframes and lose frames) and
written as an official clip folder (:func:`mit_dataset.clip_folder.write_clip_folder`) into a staging folder;
:func:`mit_dataset.annotate.pipeline.annotate_video` publishes them once every clip of the video is written.

Per person: ``person_id`` ``p0, p1, ...`` left to right, ``identity`` ``{source}_{video}_face{track id}`` (no
face recognition is run: the same person in two shots has two identities, see
:mod:`mit_dataset.annotate.splits`), the 59-point subset of the assigned Sapiens pose plus its 133 points,
the person and face boxes, the raw speaking score and the stand-in box mask. ``subset`` follows the show
(TonightShow: two-human, LateLateShow: multi-human) and otherwise the number of people (2: two-human, 3-4:
multi-human).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from ..clip import ClipRecord, PersonTrack
from ..clip_folder import SOURCE_SUBSETS, write_clip_folder
from ..keypoints import wholebody_to_mit
from ..masks import box_mask_rle
from ..video_io import iter_decoded_frames, write_video
from .align import AlignedClip
from .config import AnnotateConfig
from .layout import RawVideo
from .normalize import NormalizedVideo


def clip_subset(source: str, num_people: int) -> str:
    return SOURCE_SUBSETS.get(source) or ("two_human" if num_people == 2 else "multi_human")


def cut_videos(
    normalized: NormalizedVideo, spans: list[tuple[int, int]], paths: list[Path], crf: int
) -> None:
    """Re-encode frames ``[start, end)`` of the normalised video to each path (spans sorted, disjoint). The
    decoded frames go to the encoder as they are (yuv420p: no RGB round trip)."""
    frames = enumerate(iter_decoded_frames(normalized.path))

    def take(start: int, end: int) -> Iterator[av.VideoFrame]:
        for index, frame in frames:
            if index >= start:
                yield frame
            if index >= end - 1:
                return

    for (start, end), path in zip(spans, paths):
        write_video(path, take(start, end), fps=normalized.fps, crf=crf)


def clip_record(
    aligned: AlignedClip, video: RawVideo, normalized: NormalizedVideo, clip_path: Path, audio: np.ndarray,
    track_ids: tuple[int, ...], config: AnnotateConfig,
) -> ClipRecord:  # fmt: skip
    """The :class:`ClipRecord` of one aligned clip whose video is ``clip_path``; ``audio`` is the whole
    normalised video's track."""
    span = aligned.span
    samples_per_frame = config.sample_rate / normalized.fps
    clip_audio = audio[round(span.start * samples_per_frame) : round(span.end * samples_per_frame)]
    height, width = normalized.height, normalized.width
    persons = []
    for p, track_id in enumerate(track_ids):
        keypoints_133 = aligned.keypoints_133[p]
        persons.append(
            PersonTrack(
                person_id=f"p{p}",
                identity=f"{video.source}_{video.video}_face{track_id:04d}",
                keypoints=wholebody_to_mit(keypoints_133),
                boxes=aligned.person_boxes[p],
                face_boxes=aligned.face_boxes[p],
                speaking_score_raw=aligned.speaking_score_raw[p],
                mask_rle=[box_mask_rle(box, height, width) for box in aligned.person_boxes[p]],
                keypoints_133=keypoints_133,
            )
        )
    return ClipRecord(
        clip_id=span.name(video.source, video.video),
        source=video.source,
        subset=clip_subset(video.source, len(persons)),
        split="train",
        video_path=clip_path,
        audio=np.ascontiguousarray(clip_audio, np.float32),
        num_frames=span.num_frames,
        width=width,
        height=height,
        persons=persons,
        fps=normalized.fps,
        metadata={
            "video": video.video,
            "period": [span.start / normalized.fps, span.end / normalized.fps],
            "url": "",
        },
    )


def write_clips(
    aligned: list[AlignedClip], video: RawVideo, normalized: NormalizedVideo, audio: np.ndarray,
    staging: Path, work: Path, config: AnnotateConfig,
) -> list[Path]:  # fmt: skip
    """Cut and write every aligned clip as a clip folder under ``staging``; returns the folders."""
    work.mkdir(parents=True, exist_ok=True)
    names = [a.span.name(video.source, video.video) for a in aligned]
    paths = [work / f"{name}.mp4" for name in names]
    cut_videos(normalized, [(a.span.start, a.span.end) for a in aligned], paths, config.crf)
    folders = []
    for clip, path in zip(aligned, paths):
        record = clip_record(clip, video, normalized, path, audio, clip.span.track_ids, config)
        folders.append(write_clip_folder(record, staging))
        path.unlink()
    return folders
