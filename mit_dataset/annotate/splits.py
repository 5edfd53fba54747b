"""Train / test-easy / test-challenging assignment of annotated clips, identities held out (the paper's rule:
"easy" test cases show identities seen in training, "challenging" ones unseen identities).

The pipeline runs no face recognition, so an identity is known only inside one video (an episode's guests).
The rule therefore holds out whole videos:

- a video whose hash ``u = sha256("{source}/{video}")`` (as a fraction in [0, 1)) is below
  ``challenging_fraction`` gives all its clips to test-challenging: none of its people is in any training clip;
- in the other videos a clip whose hash ``sha256(clip name)`` is below ``easy_fraction`` goes to test-easy
  (its people also appear in that video's training clips), the rest to train; a video left without a training
  clip gives its first clip back to train, so every easy clip's people are seen in training.

Hashes, not ranks: adding videos later never moves an existing clip to another split. Known limitation: a host
who appears in every episode is not recognised across videos, so in "challenging" clips the guests are unseen
but the host may not be.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..atomic import atomic_write_text
from ..clip_folder import SPLITS_FILE, list_clip_folders, read_meta
from .config import AnnotateConfig


def _fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def assign_splits(clips: list[tuple[str, str, str]], config: AnnotateConfig) -> dict[str, tuple[str, str]]:
    """``{clip name: (split, difficulty)}`` for ``(clip name, source, video)`` triples (module docstring)."""
    assigned: dict[str, tuple[str, str]] = {}
    by_video: dict[tuple[str, str], list[str]] = {}
    for name, source, video in sorted(clips):
        by_video.setdefault((source, video), []).append(name)
    for (source, video), names in by_video.items():
        if _fraction(f"{source}/{video}") < config.challenging_fraction:
            assigned.update({name: ("test", "challenging") for name in names})
            continue
        chosen = {
            name: ("test", "easy") if _fraction(name) < config.easy_fraction else ("train", "")
            for name in names
        }
        if all(split == "test" for split, _ in chosen.values()):
            chosen[names[0]] = ("train", "")
        assigned.update(chosen)
    return assigned


def write_splits(clips_dir: str | os.PathLike, config: AnnotateConfig) -> dict[str, tuple[str, str]]:
    """Assign every clip folder under ``clips_dir`` and write ``splits.json`` (test clips only; the others are
    train clips), atomically. Returns the full assignment."""
    clips = []
    for folder in list_clip_folders(clips_dir):
        meta = read_meta(folder)
        clips.append((folder.name, str(meta.get("source", "")), str(meta.get("video", ""))))
    assigned = assign_splits(clips, config)
    tests = {name: {"split": s, "difficulty": d} for name, (s, d) in sorted(assigned.items()) if s == "test"}
    atomic_write_text(Path(clips_dir) / SPLITS_FILE, json.dumps(tests, indent=1) + "\n")
    return assigned
