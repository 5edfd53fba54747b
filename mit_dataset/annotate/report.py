"""The per-run report: one entry per video (done or skipped, why, clips, seconds per stage) and a summary line."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..atomic import atomic_write_text
from .errors import REASONS

REPORT_FORMAT = "mit-annotate-report/1"
REPORT_FILE = "annotate_report.json"


@dataclass
class VideoReport:
    """What happened to one video. ``seconds`` holds the wall-clock time of each stage run now and
    ``cpu_seconds`` the CPU time of this process in it (all threads; stages loaded from the cache are listed in
    ``cached``); ``video_seconds`` is the normalised video's length."""

    source: str
    video: str
    path: str
    status: str = "done"  # "done" or "skipped"
    reason: str = ""  # a kind from mit_dataset.annotate.errors.REASONS when skipped
    message: str = ""
    clips: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)
    video_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str, message: str) -> VideoReport:
        self.status, self.reason, self.message, self.clips = "skipped", reason, message, []
        return self


@dataclass
class AnnotateReport:
    raw_dir: str
    out: str
    config: dict
    videos: list[VideoReport]
    num_processes: int = 1
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def clips(self) -> list[str]:
        return [clip for video in self.videos for clip in video.clips]

    @property
    def done(self) -> list[VideoReport]:
        return [v for v in self.videos if v.status == "done"]

    @property
    def skipped(self) -> list[VideoReport]:
        return [v for v in self.videos if v.status == "skipped"]

    def skip_reasons(self) -> dict[str, int]:
        counts = Counter(v.reason for v in self.skipped)
        return {reason: counts[reason] for reason in REASONS if counts[reason]}

    def summary(self) -> str:
        """``annotate: 5 videos, 3 done, 2 skipped (no_audio: 1, bad_annotation: 1), 7 clips -> OUT``."""
        reasons = ", ".join(f"{reason}: {count}" for reason, count in self.skip_reasons().items())
        skipped = f"{len(self.skipped)} skipped" + (f" ({reasons})" if reasons else "")
        return (
            f"annotate: {len(self.videos)} videos, {len(self.done)} done, {skipped}, {len(self.clips)} clips "
            f"-> {self.out}"
        )

    def to_dict(self) -> dict:
        return {
            "format": REPORT_FORMAT,
            "created": self.created,
            "raw_dir": self.raw_dir,
            "out": self.out,
            "num_processes": self.num_processes,
            "summary": self.summary(),
            "num_videos": len(self.videos),
            "num_done": len(self.done),
            "num_skipped": len(self.skipped),
            "skip_reasons": self.skip_reasons(),
            "num_clips": len(self.clips),
            "config": self.config,
            "videos": [asdict(video) for video in self.videos],
        }

    def write(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
