"""What an MIT dataset holds (``mit-talking info DATASET``), read without decoding any video.

Only the per-clip scalar columns are read (``load_dataset(..., columns=INFO_COLUMNS, streaming=True)``: Parquet
column projection, no Arrow cache is built), so an overview of a large folder or Hub dataset costs seconds. The
same overview gives the summary line ``synth`` and ``export`` end with.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .clip_folder import check_not_clip_folders
from .features import DEFAULT_CONFIG, SPLITS, SUBSETS

#: The columns an overview reads, in the order of its table.
INFO_COLUMNS = (
    "clip_id",
    "split",
    "subset",
    "difficulty",
    "num_speakers",
    "num_frames",
    "width",
    "height",
    "fps",
)


@dataclass
class DatasetOverview:
    """The configs of a dataset and one dict of :data:`INFO_COLUMNS` per clip (``config``'s clips)."""

    dataset: str
    config: str | None
    configs: list[str]
    clips: list[dict]

    def counts(self) -> Counter:
        """Clips per ``(split, subset)``."""
        return Counter((clip["split"], clip["subset"]) for clip in self.clips)

    def summary(self) -> str:
        """``8 clips: train 4 (two_human 2, multi_human 2), test 4 (...)``."""
        counts = self.counts()
        parts = []
        for split in [s for s in SPLITS if any(k[0] == s for k in counts)]:
            subsets = ", ".join(
                f"{subset} {counts[split, subset]}" for subset in SUBSETS if counts[split, subset]
            )
            parts.append(f"{split} {sum(counts[split, subset] for subset in SUBSETS)} ({subsets})")
        return f"{len(self.clips)} clips: " + ", ".join(parts)

    def format(self) -> str:
        """The summary, the configs and a table of every clip (split, subset, difficulty, speakers, frames,
        size, fps)."""
        header = ("clip_id", "split", "subset", "difficulty", "speakers", "frames", "size", "fps")
        rows = [
            (
                clip["clip_id"],
                clip["split"],
                clip["subset"],
                clip["difficulty"] or "-",
                str(clip["num_speakers"]),
                str(clip["num_frames"]),
                f"{clip['width']}x{clip['height']}",
                f"{clip['fps']:g}",
            )
            for clip in self.clips
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            f"{self.dataset} (config {self.config or DEFAULT_CONFIG}): {self.summary()}",
            f"configs: {', '.join(self.configs)}",
            "",
            *(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                for row in [header, *rows]
            ),
        ]
        return "\n".join(lines)


def dataset_overview(dataset: str | os.PathLike, config: str | None = None) -> DatasetOverview:
    """The overview of a dataset folder or Hub id (clips of every split, in dataset order).

    Raises ``FileNotFoundError`` for a local path that does not exist, ``ValueError`` for an unknown config."""
    import datasets

    name = str(dataset)
    if not Path(name).exists() and (os.sep in name or name.startswith(".")):
        raise FileNotFoundError(f"{name}: no such dataset folder")
    check_not_clip_folders(name)
    configs = datasets.get_dataset_config_names(name)
    if config is not None and config not in configs:
        raise ValueError(f"{name}: unknown config {config!r}, expected one of {configs}")
    loaded = datasets.load_dataset(name, config, columns=list(INFO_COLUMNS), streaming=True)
    clips = [dict(row) for split in SPLITS if split in loaded for row in loaded[split]]
    return DatasetOverview(dataset=name, config=config, configs=list(configs), clips=clips)
