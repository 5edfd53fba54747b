"""The MIT (Multi-human Interactive Talking) dataset: schema, clips, Hub layout, builder and tools.

Names are imported lazily (``mit_dataset.write_dataset_folder`` imports :mod:`mit_dataset.hub` on first
use), so ``import mit_dataset`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    # schema
    "MIT_FEATURES": "features",
    "CONFIG_NAMES": "features",
    "SUBSETS": "features",
    "SPLITS": "features",
    "speaking_score_from_raw": "features",
    # clips
    "ClipRecord": "clip",
    "PersonTrack": "clip",
    "ClipValidationError": "clip",
    # Hub layout
    "write_dataset_folder": "hub",
    "write_synthetic_dataset": "hub",
    "export_clip_folders": "hub",
    "push_dataset_folder": "hub",
    "build_dataset_card": "card",
    # raw clip folders and their builder
    "read_clip_folder": "clip_folder",
    "iter_clip_records": "clip_folder",
    "write_clip_folder": "clip_folder",
    "write_clip_folders": "clip_folder",
    "MITClipFolderBuilder": "builder",
    "load_talknet_outputs": "talknet",
    # synthetic data
    "generate_records": "synthetic",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mit_dataset' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
