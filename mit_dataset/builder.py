"""``MITClipFolderBuilder``: the MIT schema as a ``datasets`` builder over official clip folders.

This is a normal Python class, not a loading script (``datasets`` >= 4 refuses scripts)::

    builder = MITClipFolderBuilder(config_name="two_human", data_dir="clips/", cache_dir="cache/")
    builder.download_and_prepare()
    ds = builder.as_dataset()          # DatasetDict with the splits that have clips

``data_dir`` is a folder of clip folders laid out as described in :mod:`mit_dataset.clip_folder`
(``splits.json`` assigns splits; absent clips are train clips).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import datasets

from .card import CONFIG_SUBSETS
from .clip import ClipRecord
from .clip_folder import clip_subset, iter_clip_records, list_clip_folders, read_meta, read_splits
from .features import DEFAULT_CONFIG, MIT_FEATURES, SPLITS

_DESCRIPTION = "MIT: multi-human interactive talking clips with poses, speaking scores, masks and audio."


@dataclass
class MITConfig(datasets.BuilderConfig):
    """A config of the MIT builder: which subsets it holds."""

    subsets: tuple[str, ...] = ()


class MITClipFolderBuilder(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIGS: ClassVar[list[MITConfig]] = [
        MITConfig(name=name, subsets=subsets, description=f"MIT clips of {' + '.join(subsets)}")
        for name, subsets in CONFIG_SUBSETS.items()
    ]
    BUILDER_CONFIG_CLASS = MITConfig
    DEFAULT_CONFIG_NAME = DEFAULT_CONFIG
    # One clip per Arrow record batch: rows embed whole videos.
    DEFAULT_WRITER_BATCH_SIZE = 1

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description=_DESCRIPTION, features=MIT_FEATURES)

    def _split_generators(self, dl_manager):
        data_dir = self.config.data_dir
        if data_dir is None:
            raise ValueError("MITClipFolderBuilder needs data_dir=<folder of MIT clip folders>")
        splits = read_splits(data_dir)
        folders = {split: [] for split in SPLITS}
        for folder in list_clip_folders(data_dir):
            listed = splits.get(folder.name)
            if clip_subset(folder, read_meta(folder), listed and listed.subset) in self.config.subsets:
                folders[listed.split if listed else "train"].append(folder.name)
        if not any(folders.values()):
            raise ValueError(f"{data_dir}: no clip folders of {self.config.subsets}")
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"data_dir": data_dir, "clip_names": names})
            for split, names in folders.items()
            if names
        ]

    def _generate_examples(self, data_dir, clip_names) -> Iterator[tuple[str, dict]]:
        for record in self.iter_records(data_dir, clip_names=clip_names):
            yield record.clip_id, record.to_row()

    @staticmethod
    def iter_records(data_dir: str | os.PathLike, subsets=None, clip_names=None) -> Iterator[ClipRecord]:
        """Validated clip records of the clip folders under ``data_dir``, one at a time: what
        ``_generate_examples`` turns into rows and :func:`mit_dataset.hub.export_clip_folders` writes."""
        return iter_clip_records(data_dir, subsets=subsets, clip_names=clip_names)
