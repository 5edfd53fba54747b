"""Training data: the MIT training view (:class:`mit_dataset.torch_view.MITVideoDataset`) in a DataLoader that
``accelerator.prepare`` shards over processes.

Sharding: the split is a map-style ``datasets.Dataset`` read by random access, so every process builds the
same view and accelerate's prepared DataLoader gives each process its own batches of one global shuffled order
(``BatchSamplerShard``, seeded per epoch): a process decodes only its own samples, every process gets the
same number of batches (DDP's all-reduce never waits on a process that ran out), each epoch reshuffles
across all clips, and ``accelerator.skip_first_batches`` resumes mid-epoch. ``datasets.distributed.
split_dataset_by_node`` is the tool for *streaming* (iterable) datasets; on a map-style one it would pin each
process to a fixed 1/N of the clips forever and give processes unequal batch counts.

Checks before the first step (errors name the dataset and the clips): the split exists, it has the MIT
columns the view reads, and every clip has the frames a sample needs (``data.drop_short`` leaves short clips
out instead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from covog_diffusers.models.audio import audio_context_frames
from mit_dataset.clip_folder import check_not_clip_folders
from mit_dataset.torch_view import MITVideoDataset, collate_mit_batch


def load_split(dataset: str, name: str | None, split: str, cache_dir: str | None = None):
    """``load_dataset(dataset, name, split=split)`` with errors that name the config key."""
    import datasets

    if not Path(dataset).exists() and "/" not in dataset:
        raise FileNotFoundError(f"data.dataset: {dataset} is not a folder (an MIT dataset in the Hub layout)")
    try:
        check_not_clip_folders(dataset)
        loaded = datasets.load_dataset(dataset, name, cache_dir=cache_dir)
    except (ValueError, FileNotFoundError) as error:
        raise ValueError(f"data.dataset: cannot load {dataset} (config {name!r}): {error}") from error
    if split not in loaded:
        raise ValueError(f"data.split: {dataset} has no split {split!r}; splits: {sorted(loaded)}")
    return loaded[split], loaded


def check_clip_lengths(split_dataset, span: int, dataset: str) -> None:
    """ValueError listing the clips shorter than ``span`` frames (``data.drop_short`` leaves them out instead:
    the view then raises only when no clip is long enough)."""
    lengths = np.asarray(split_dataset["num_frames"])
    short = np.nonzero(lengths < span)[0]
    if len(short) == 0:
        return
    ids = [split_dataset[int(i)]["clip_id"] for i in short[:5]]
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    raise ValueError(
        f"data.dataset {dataset}: clip(s) {ids}{more} have {int(lengths[short[0]])} frames, fewer than the "
        f"{span} a sample needs (num_frames x stride); use fewer data.num_frames, or data.drop_short: true"
    )


def view_audio_context(pipe, config) -> int:
    """``audio_context_frames`` of the training view: the frames of context the pipeline gives wav2vec2 on each
    side of a window (:func:`covog_diffusers.models.audio.audio_context_frames`) when the run trains with
    audio (stage 2, a pipeline with audio components), else 0."""
    if config.stage == 2 and pipe.uses_audio:
        return audio_context_frames(pipe.audio_projection.config.window)
    return 0


def build_view(split_dataset, config, seed: int, audio_context_frames: int = 0) -> MITVideoDataset:
    """The training view for ``config`` (:class:`~training.config.TrainConfig`): pose maps as uint8 (made float
    on the device, :func:`training.step.pose_maps_to_float`); face masks are not taken from the view, training
    derives them from the keypoints the way the pipeline does; ``audio_context`` with ``audio_context_frames``
    of context (:func:`view_audio_context`)."""
    data = config.data
    try:
        return MITVideoDataset(
            split_dataset,
            num_frames=config.num_frames,
            stride=data.stride,
            height=data.height,
            width=data.width,
            mask_factors=(),
            audio_context_frames=audio_context_frames,
            pose_dtype=torch.uint8,  # 4x less to render, pass between processes and copy to the device
            reference="random",
            window="random",
            seed=seed,
            drop_short=data.drop_short,
        )
    except ValueError as error:
        raise ValueError(f"data.dataset {data.dataset} (split {data.split!r}): {error}") from error


def build_loader(view: MITVideoDataset, batch_size: int, num_workers: int, num_processes: int) -> DataLoader:
    """A shuffled DataLoader of whole batches; ValueError when the split holds fewer clips than one step."""
    if len(view) < batch_size * num_processes:
        raise ValueError(
            f"the training split has {len(view)} usable clips, fewer than one step needs "
            f"(training.batch_size {batch_size} x {num_processes} processes)"
        )
    return DataLoader(
        view,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_mit_batch,
        num_workers=num_workers,
        persistent_workers=False,  # workers must see set_epoch's new window draws
    )


def validation_row(loaded, config):
    """``(split name, row)`` of the validation clip: ``data.validation_clip`` in ``data.validation_split``
    (default: the first split that is not the training split, else the training split)."""
    data = config.data
    splits = (
        [data.validation_split]
        if data.validation_split
        else [s for s in loaded if s != data.split] + [data.split]
    )
    for split in splits:
        if split not in loaded:
            raise ValueError(f"data.validation_split: no split {split!r}; splits: {sorted(loaded)}")
        part = loaded[split]
        if data.validation_clip is None:
            return split, part[0]
        ids = part["clip_id"]
        if data.validation_clip in ids:
            return split, part[ids.index(data.validation_clip)]
    raise ValueError(f"data.validation_clip: {data.validation_clip!r} is not in split(s) {splits}")
