"""Checkpoints of a run: ``accelerator.save_state`` made atomic, ``--resume latest``, retention.

Layout: ``{output}/checkpoints/checkpoint-{step}/`` holds accelerate's state (model as safetensors, optimizer,
scheduler, RNG states, EMA) plus ``training_state.json`` (step, config, model fingerprint). Every process
writes into one temporary folder named by :func:`mit_dataset.atomic.temporary_name`; the main process adds
``training_state.json`` last and renames the folder into place, so a checkpoint is complete or invisible: a
run killed mid-save leaves a temporary that :func:`latest_checkpoint` never picks and the next save clears.

Resuming checks the checkpoint's config and model fingerprint against the current ones and refuses a
different config (except :data:`training.config.RESUMABLE_CHANGES`) or model. Checkpoints hold pickled
optimizer/RNG state written by accelerate: resume only from your own runs' folders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from mit_dataset.atomic import atomic_write_text, remove_stale_temporaries, temporary_name

from .config import incompatible_changes

STATE_FILE = "training_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoints_dir(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir) -> list[tuple[int, Path]]:
    """Complete checkpoints ``(step, path)`` sorted by step (temporaries and folders without state skipped)."""
    folder = checkpoints_dir(output_dir)
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _NAME.match(entry.name)
            if match and (entry / STATE_FILE).is_file():
                found.append((int(match[1]), entry))
    return sorted(found)


def latest_checkpoint(output_dir) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_resume(resume: str | None, output_dir) -> Path | None:
    """``None``, ``"latest"`` (None when the run has no checkpoint yet) or a checkpoint folder."""
    if resume is None:
        return None
    if resume == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume: {resume} is not a complete checkpoint (no {STATE_FILE})")
    return path


def read_state(checkpoint: Path) -> dict:
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


def check_resumable(checkpoint: Path, config: dict, fingerprint: str) -> dict:
    """The checkpoint's state, after checking it was made by the same config and model (ValueError)."""
    state = read_state(checkpoint)
    if state.get("model_fingerprint") != fingerprint:
        raise ValueError(
            f"--resume: {checkpoint} was trained from another model (fingerprint {state.get('model_fingerprint')} "
            f"!= {fingerprint}): model.pretrained/model.vae/LoRA differ"
        )
    changes = incompatible_changes(state.get("config", {}), config)
    if changes:
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(changes.items())[:6])
        raise ValueError(
            f"--resume: {checkpoint} was made with another config ({listed}); resume with the same config or "
            "start a new output.dir"
        )
    return state


def save_checkpoint(accelerator, output_dir, step: int, state: dict, limit: int | None) -> Path:
    """``accelerator.save_state`` into ``checkpoint-{step}`` atomically; keep the ``limit`` newest."""
    from accelerate.utils import broadcast_object_list

    folder = checkpoints_dir(output_dir)
    final = folder / f"checkpoint-{step}"
    names = [None]
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        names = [temporary_name(final.name)]
    if accelerator.num_processes > 1:
        broadcast_object_list(names)
    tmp = folder / names[0]
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(tmp / STATE_FILE, json.dumps({**state, "step": step}, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        if limit is not None:
            for _, old in list_checkpoints(output_dir)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
