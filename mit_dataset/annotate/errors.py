"""Why a video is skipped: one exception type with a short reason kind (the report's tally) and a message
naming the file and what was expected."""

from __future__ import annotations

#: Reason kinds, in the order the summary line lists them.
REASONS = (
    "unreadable",  # not a video, undecodable, unsafe name
    "no_audio",  # no audio stream: speaking scores and clips need the conversation's sound
    "variable_frame_rate",  # re-timing by frame order would drift the audio
    "bad_annotation",  # an external annotation file of the wrong shape or hostile content
    "no_poses",  # no Sapiens pose JSON, and no pose estimator with shipped weights exists to run instead
    "no_clip",  # no shot holds 2-4 co-occurring faces long enough (zero or one face, ...)
)


class SkipVideo(ValueError):
    """The video cannot be annotated; nothing is written for it and the run goes on."""

    def __init__(self, reason: str, message: str):
        if reason not in REASONS:
            raise ValueError(f"unknown skip reason {reason!r}, expected one of {REASONS}")
        super().__init__(message)
        self.reason = reason
