"""Stage 2, shots: camera cuts found by PySceneDetect's ``ContentDetector`` (HSV change between consecutive
frames above ``shot_threshold``), on frames scaled to ``shot_analysis_width`` (PySceneDetect's own default
downscale for speed; a hard cut changes the whole frame, which survives any scale).

Why PySceneDetect 0.6 (``scenedetect>=0.6.5,<0.7``): 0.7 requires the GUI build ``opencv-python``, which
fails to import on headless machines without libGL and conflicts with ``opencv-python-headless``; 0.6 takes
the headless build. Frames are decoded once by FFmpeg (PyAV) and scaled while converting from YUV straight to
the detector's BGR with swscale's area filter, so PySceneDetect's own video backends are not used. Area
averaging is the right filter for a downscale (no aliasing) and the cheapest here: 0.5 ms per 640x360 frame
against 0.9-1.3 ms for the bilinear scaler (whose downscale path widens its filter) plus a channel swap
(``benchmarks/bench_annotate.py``, stage ``shots``).

Output: every shot ``[start, end)`` in frames of the normalised video (they tile it). Shots shorter than
``min_shot_frames`` cannot hold a clip; they are kept here so that face tracks are still cut at their
boundaries, and rejected by :func:`long_shots`.
"""

from __future__ import annotations

from itertools import pairwise

from ..geometry import FrameTransform
from ..video_io import iter_decoded_frames
from .config import AnnotateConfig
from .normalize import NormalizedVideo

#: Cuts closer than this to the previous one are merged by the detector (0.3 s: flashes, not shots).
DETECTOR_MIN_SCENE_FRAMES = 8


def analysis_transform(video: NormalizedVideo, width: int) -> FrameTransform:
    """Scale the whole frame (no crop) to ``width`` pixels wide (never up), even height."""
    scale = min(1.0, width / video.width)
    out_w = max(2, round(video.width * scale / 2) * 2)
    out_h = max(2, round(video.height * scale / 2) * 2)
    return FrameTransform(video.height, video.width, out_h, out_w, 0, 0, out_h, out_w)


def detect_shots(video: NormalizedVideo, config: AnnotateConfig) -> list[tuple[int, int]]:
    """Shots ``[start, end)`` tiling ``video`` (at least one)."""
    from scenedetect import ContentDetector

    detector = ContentDetector(threshold=config.shot_threshold, min_scene_len=DETECTOR_MIN_SCENE_FRAMES)
    transform = analysis_transform(video, config.shot_analysis_width)
    size = {"width": transform.width, "height": transform.height}
    cuts: set[int] = set()
    index = -1
    for index, frame in enumerate(iter_decoded_frames(video.path)):
        bgr = frame.reformat(**size, format="bgr24", interpolation="AREA").to_ndarray()
        cuts.update(detector.process_frame(index, bgr))
    if index >= 0:
        cuts.update(detector.post_process(index) or [])
    bounds = sorted({0, video.num_frames} | {c for c in cuts if 0 < c < video.num_frames})
    return [(int(a), int(b)) for a, b in pairwise(bounds)]


def long_shots(shots: list[tuple[int, int]], min_frames: int) -> list[tuple[int, int]]:
    return [(a, b) for a, b in shots if b - a >= min_frames]
