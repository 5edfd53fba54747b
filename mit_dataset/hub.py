"""The script-free Hub layout of MIT: write it, make it from synthetic data or raw clip folders, push it.

Layout of a dataset folder::

    README.md                                   dataset card; YAML header = configs + typed features
    data/{subset}/{split}-{i:05d}-of-{n:05d}-{fingerprint}.parquet

One Parquet row per clip with the columns of :data:`~mit_dataset.features.MIT_FEATURES`; the mp4 and
audio bytes are embedded (``datasets`` resolves paths inside Parquet against the current directory, so
paths would break as soon as the folder is loaded from elsewhere). Configs: ``all`` (default, both
subsets), ``two_human`` and ``multi_human``; splits ``train`` and ``test``. ``load_dataset(folder)``,
``load_dataset(folder, "two_human")`` and ``streaming=True`` all work without a loading script.

Every writer here is atomic (:mod:`mit_dataset.atomic`): the folder is built in a temporary directory beside
``out`` and renamed into place only when complete; on any failure nothing is left at ``out`` and the
temporary directory is removed (a killed writer's is removed by the next one).

Every shard's name ends with a fingerprint of its bytes (:func:`content_fingerprint`). The card lists the
shard names, and ``datasets`` keys its cache on the card (configs, data files, split sizes), not on the shards'
content or modification time: without the fingerprint a folder rewritten with the same split sizes (a
corrected annotation, an ``export --overwrite`` of the same clips) would load the OLD rows from the cache
(tests/mit_dataset/test_hub.py::test_a_rewritten_folder_loads_the_new_rows_not_the_cache). A shard edited in
place by another tool (e.g. pyarrow) keeps its name, so ``datasets``' cache may return the old rows: rewrite the
folder with ``mit-talking export --overwrite`` (new content-fingerprinted names) or load it with
``download_mode="force_redownload"``.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from datasets.arrow_writer import ParquetWriter
from tqdm.auto import tqdm

from .atomic import atomic_path, remove_stale_temporaries, work_folder
from .card import build_dataset_card
from .clip import ClipRecord, ClipValidationError
from .features import MIT_FEATURES, SPLITS, SUBSETS

#: Shards are cut when the next clip would take a shard's embedded video/audio/array bytes past this.
DEFAULT_MAX_SHARD_BYTES = 500 * 2**20


#: Hex digits of the content fingerprint in shard names (64 bits: a collision needs ~4e9 versions of a shard).
FINGERPRINT_CHARS = 16


def content_fingerprint(path: str | os.PathLike) -> str:
    """The first :data:`FINGERPRINT_CHARS` hex digits of the sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def shard_name(split: str, index: int, count: int, fingerprint: str) -> str:
    return f"{split}-{index:05d}-of-{count:05d}-{fingerprint}.parquet"


def write_dataset_folder(
    records: Iterable[ClipRecord],
    out: str | os.PathLike,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: bool = True,
    total: int | None = None,
) -> Path:
    """Write clips as a script-free MIT dataset folder at ``out`` and return its path.

    A list or tuple of records is validated completely before anything is written; any other iterable
    (e.g. a generator reading clip folders one at a time, to keep memory bounded) is validated record by
    record just before each is written. Either way a bad record raises
    :class:`~mit_dataset.clip.ClipValidationError` naming the clip and field, and leaves nothing behind.
    An existing ``out`` is an error unless ``overwrite``; then it is replaced once the new folder is
    complete (only a folder that looks like a dataset folder, or an empty one, is ever replaced).
    ``total``: the number of records of an iterable without a length, for the progress bar.
    """
    out = Path(out)
    _check_target(out, overwrite)
    remove_stale_temporaries(out.parent)
    # A sequence is validated completely up front (fail before writing); other iterables lazily.
    if isinstance(records, (list, tuple)):
        records, total = list(_validated(records)), len(records)
    else:
        records = _validated(records)
    with atomic_path(out, directory=True) as tmp:
        _write_shards(records, tmp, max_shard_bytes, progress, total)
        _check_target(out, overwrite)  # again: another writer may have made ``out`` meanwhile
    return out


def _validated(records: Iterable[ClipRecord]) -> Iterator[ClipRecord]:
    """Validate each record and check clip ids are unique, lazily."""
    seen: set[str] = set()
    for record in records:
        record.validate()
        if record.clip_id in seen:
            raise ClipValidationError(f"clip {record.clip_id!r}: field 'clip_id' is not unique")
        seen.add(record.clip_id)
        yield record


def _row_bytes(record: ClipRecord) -> int:
    """Size estimate of a clip's row: embedded video bytes + 4 bytes per audio sample + the arrays."""
    size = Path(record.video_path).stat().st_size + 4 * len(record.audio)
    for person in record.persons:
        size += sum(np.asarray(a).nbytes for a in (person.keypoints, person.boxes, person.face_boxes))
        size += 8 * len(person.speaking_score_raw) + sum(len(m) for m in person.mask_rle)
        if person.keypoints_133 is not None:
            size += np.asarray(person.keypoints_133).nbytes
    return size


class _ShardSet:
    """Shards of one (subset, split): written under temporary names, named ``-of-n`` at the end."""

    def __init__(self, folder: Path, split: str, max_bytes: int):
        self.folder, self.split, self.max_bytes = folder, split, max_bytes
        self.paths: list[Path] = []
        self.writer: ParquetWriter | None = None
        self.shard_bytes = 0
        self.num_examples = 0
        self.num_bytes = 0

    def write(self, record: ClipRecord) -> None:
        size = _row_bytes(record)
        if self.writer is not None and self.shard_bytes + size > self.max_bytes:
            self._finish_shard()
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f".{self.split}-{len(self.paths):05d}.partial"
            self.paths.append(path)
            self.writer = ParquetWriter(features=MIT_FEATURES, path=str(path), writer_batch_size=1)
        self.writer.write(MIT_FEATURES.encode_example(record.to_row()))
        self.shard_bytes += size

    def _finish_shard(self) -> None:
        num_examples, num_bytes = self.writer.finalize()
        self.writer.close()
        self.writer = None
        self.shard_bytes = 0
        self.num_examples += num_examples
        self.num_bytes += num_bytes

    def close(self, root: Path) -> list[str]:
        """Finish the last shard, give every shard its final name (with its content fingerprint); returns
        paths relative to ``root``."""
        if self.writer is not None:
            self._finish_shard()
        final = []
        for index, path in enumerate(self.paths):
            target = path.with_name(shard_name(self.split, index, len(self.paths), content_fingerprint(path)))
            path.rename(target)
            final.append(target.relative_to(root).as_posix())
        return final

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _write_shards(
    records: Iterable[ClipRecord], root: Path, max_shard_bytes: int, progress: bool, total: int | None
) -> None:
    shard_sets: dict[tuple[str, str], _ShardSet] = {}
    try:
        for record in tqdm(records, desc="writing MIT clips", unit="clip", total=total, disable=not progress):
            key = (record.subset, record.split)
            if key not in shard_sets:
                shard_sets[key] = _ShardSet(root / "data" / record.subset, record.split, max_shard_bytes)
            shard_sets[key].write(record)
    except BaseException:
        for shard_set in shard_sets.values():
            shard_set.abort()
        raise
    if not shard_sets:
        raise ValueError("no clips to write: a dataset folder needs at least one clip")
    shards: dict[str, dict[str, list[str]]] = defaultdict(dict)
    counts: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for subset in SUBSETS:
        for split in SPLITS:
            shard_set = shard_sets.get((subset, split))
            if shard_set is not None:
                shards[subset][split] = shard_set.close(root)
                counts[subset][split] = (shard_set.num_examples, shard_set.num_bytes)
    build_dataset_card(shards, counts).save(root / "README.md")


def _looks_like_dataset_folder(path: Path) -> bool:
    return path.is_dir() and (
        not any(path.iterdir()) or ((path / "README.md").is_file() and (path / "data").is_dir())
    )


def _check_target(out: Path, overwrite: bool, clip_folders: bool = False) -> None:
    """FileExistsError unless ``out`` is absent, or ``overwrite`` and ``out`` holds the layout to be written."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
        if clip_folders:
            from .clip_folder import SPLITS_FILE

            if not out.is_dir() or (any(out.iterdir()) and not (out / SPLITS_FILE).is_file()):
                raise FileExistsError(
                    f"{out} exists and is not a folder of clip folders ({SPLITS_FILE}); refusing"
                )
        elif not _looks_like_dataset_folder(out):
            raise FileExistsError(
                f"{out} exists and is not an MIT dataset folder (README.md + data/); refusing to replace it"
            )


def write_synthetic_dataset(
    out: str | os.PathLike,
    num_clips: int = 12,
    seed: int = 0,
    width: int = 256,
    height: int = 144,
    seconds: float = 3.0,
    overwrite: bool = False,
    progress: bool = True,
    clip_folders: bool = False,
) -> Path:
    """Generate ``num_clips`` synthetic MIT clips (:func:`mit_dataset.synthetic.generate_records`) and write
    them at ``out``: a dataset folder (the Hub layout: ``mit-talking synth --out``) or, with ``clip_folders``,
    official per-clip folders plus ``splits.json`` (``mit-talking synth --clip-folders``), the raw layout
    :func:`export_clip_folders` reads, so the export path can be tried without the real data. The same clips
    either way. ``out`` appears complete or not at all; an existing folder is replaced only with ``overwrite``
    and only when it is empty or holds that layout."""
    from .synthetic import generate_records

    out = Path(out)
    _check_target(out, overwrite, clip_folders)
    remove_stale_temporaries(out.parent)
    with work_folder(out.parent / f"{out.name}.work") as work:
        records = generate_records(
            work, num_clips, seed=seed, width=width, height=height, seconds=seconds, progress=progress
        )
        if not clip_folders:
            return write_dataset_folder(records, out, overwrite=overwrite, progress=progress)
        from .clip_folder import write_clip_folders

        with atomic_path(out, directory=True) as tmp:
            write_clip_folders(records, tmp)
    return out


def export_clip_folders(
    clips_dir: str | os.PathLike,
    out: str | os.PathLike,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: bool = True,
) -> Path:
    """Export official per-clip folders (see :mod:`mit_dataset.clip_folder`) under ``clips_dir`` to a
    dataset folder at ``out`` (the ``mit-talking export`` command). Clips are read one at a time through
    :class:`~mit_dataset.builder.MITClipFolderBuilder`'s reader, so memory stays bounded."""
    from .builder import MITClipFolderBuilder
    from .clip_folder import list_clip_folders

    out = Path(out)
    _check_target(out, overwrite)
    total = len(list_clip_folders(clips_dir))  # the progress bar's total; a missing folder fails here
    records = MITClipFolderBuilder.iter_records(clips_dir)
    return write_dataset_folder(
        records, out, overwrite=overwrite, max_shard_bytes=max_shard_bytes, progress=progress, total=total
    )


def push_dataset_folder(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload MIT dataset folder",
):
    """Create (if needed) the dataset repo ``repo_id`` and upload a dataset folder to it in one commit.
    Returns the commit info of :meth:`huggingface_hub.HfApi.upload_folder`."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not ((folder / "README.md").is_file() and (folder / "data").is_dir()):
        raise ValueError(f"{folder} is not an MIT dataset folder (README.md + data/)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(folder),
        commit_message=commit_message,
        allow_patterns=["README.md", "data/**"],
    )
