"""Stage 1, normalise: raw episode -> constant 25 fps H.264 + 16 kHz mono audio aligned to the first frame.

The work is :func:`mit_dataset.media.normalize_media` (frame-order re-timing, rotation applied, audio trimmed
or padded to start with the first video frame; a constant-rate H.264 source at ``fps``, as downloads usually
are, keeps its video stream and only the audio is rewritten). The source is decoded once, by the probe that
both this stage's checks and ``normalize_media`` use. This stage adds what the pipeline refuses:

- no audio stream (speaking scores and clips need the conversation's sound);
- a *variable* frame rate: re-timing by frame order is right for the stream-copy cuts of the authors' clips,
  whose frame steps are whole multiples of the nominal step (a missing timestamp is a skipped slot), but it
  would drift the sound of a recording whose frames really are unevenly spaced. A video is variable-rate
  when more than ``max_irregular_steps`` of its frame steps are not within a quarter step of a whole
  multiple of the nominal step;
- an unreadable or undecodable file.

Annotations made on the raw video index its decoded frames; after a rate change output frame ``j`` shows
source frame ``round(j * source_fps / fps)`` (the rule :func:`~mit_dataset.media.normalize_media` documents),
which :meth:`NormalizedVideo.source_frames` and :meth:`NormalizedVideo.output_frames` apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..media import MediaInfo, normalize_media, probe_media
from .config import AnnotateConfig
from .errors import SkipVideo


@dataclass(frozen=True)
class NormalizedVideo:
    """The normalised video of one episode: ``num_frames`` frames of ``width`` x ``height`` at ``fps``."""

    path: Path
    num_frames: int
    width: int
    height: int
    fps: float
    source_fps: float
    source_frames: int

    def source_frames_of(self, frames: np.ndarray) -> np.ndarray:
        """Raw-video frame shown by each output frame in ``frames``."""
        picks = np.rint(np.asarray(frames, np.float64) * self.source_fps / self.fps).astype(np.int64)
        return np.minimum(picks, self.source_frames - 1)

    def output_frames_of(self, source_frames: np.ndarray) -> np.ndarray:
        """Output frame that shows each raw-video frame (annotations made on the raw video land there)."""
        return np.rint(np.asarray(source_frames, np.float64) * self.fps / self.source_fps).astype(np.int64)

    def to_meta(self) -> dict:
        return {
            "num_frames": self.num_frames,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "source_fps": self.source_fps,
            "source_frames": self.source_frames,
        }

    @classmethod
    def from_meta(cls, path: Path, meta: dict) -> NormalizedVideo:
        return cls(path=Path(path), **meta)


def irregular_step_fraction(info: MediaInfo) -> float:
    """Fraction of frame steps not within a quarter step of a whole (>= 1) multiple of the nominal step."""
    times = np.asarray(info.frame_times, np.float64)
    if len(times) < 2:
        return 0.0
    steps = np.diff(times) * info.fps
    whole = np.maximum(np.rint(steps), 1)
    return float(np.mean(np.abs(steps - whole) > 0.25))


def check_source(info: MediaInfo, config: AnnotateConfig) -> None:
    """Raise :class:`SkipVideo` for sources the pipeline refuses (see the module docstring)."""
    if not info.has_audio:
        raise SkipVideo(
            "no_audio", f"{info.path}: no audio stream (speaking scores need the conversation's sound)"
        )
    irregular = irregular_step_fraction(info)
    if irregular > config.max_irregular_steps:
        raise SkipVideo(
            "variable_frame_rate",
            f"{info.path}: variable frame rate ({irregular:.0%} of frame steps are not whole multiples of "
            f"1/{info.fps:g} s, at most {config.max_irregular_steps:.0%} allowed); re-encode it at a constant "
            "rate first",
        )


def normalize_video(source: str | Path, dst: Path, config: AnnotateConfig) -> NormalizedVideo:
    """Check ``source`` and write its normalised copy to ``dst`` (atomically).

    Raises:
        SkipVideo: unreadable (``"unreadable"``), no audio, variable frame rate.
    """
    try:
        info = probe_media(source)
        check_source(info, config)
        result = normalize_media(
            source, dst, fps=config.fps, sample_rate=config.sample_rate, crf=config.crf,
            preset=config.normalize_preset, info=info,
        )  # fmt: skip
    except SkipVideo:
        raise
    except ValueError as error:  # MediaError and friends: the message names the file
        raise SkipVideo("unreadable", str(error)) from error
    return NormalizedVideo(
        path=Path(dst),
        num_frames=result.num_frames,
        width=result.width,
        height=result.height,
        fps=result.fps,
        source_fps=info.fps,
        source_frames=info.num_frames,
    )
