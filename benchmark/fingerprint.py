"""A fingerprint of the test split, so that results are compared only when they were scored on the same clips.

Two results files are comparable only when every ground-truth clip and annotation behind them was the same: the
dataset's name and config say nothing about that (a renamed copy, a corrected annotation, a re-encoded clip).
``mit-bench evaluate`` records :func:`fingerprint_test_split` in every results file and ``mit-bench leaderboard``
ranks only entries with the same one.

Definition (stable across ``load_dataset``, ``load_from_disk`` and machines): for every test row, in order of
``clip_id``, the sha256 of all its columns' *values*, taken column by column in schema order: list lengths, null
masks and the raw little-endian bytes of numbers, the UTF-8 bytes of strings, the bytes of the embedded video and
audio files (their paths when a dataset stores paths instead of bytes). The fingerprint is the sha256 of the
``clip_id``/row-digest lines. Computing it reads the split's bytes once (no decoding): about a second per GB.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

FINGERPRINT_FORMAT = "mit-test-set/1"
ROWS_PER_BATCH = 16


def _update(digest, array: pa.Array) -> None:
    """Feed the values of ``array`` (any nesting) into ``digest``, independent of chunking and offsets."""
    kind = array.type
    if isinstance(kind, pa.ExtensionType):  # datasets' Array2D/Array3D: the values are in the storage
        _update(digest, array.storage)
        return
    digest.update(np.asarray(array.is_null(), dtype=np.uint8).tobytes())
    if pa.types.is_struct(kind):
        for child in array.flatten():
            _update(digest, child)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        lengths = array.value_lengths().fill_null(0)
        digest.update(np.asarray(lengths, dtype="<i8").tobytes())
        _update(digest, array.flatten())
    elif (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or (pa.types.is_large_binary(kind))
    ):
        for value in array.to_pylist():
            data = b"" if value is None else value.encode() if isinstance(value, str) else value
            digest.update(len(data).to_bytes(8, "little") + data)
    else:
        values = array.fill_null(0).to_numpy(zero_copy_only=False)
        digest.update(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes())


def fingerprint_test_split(test) -> dict:
    """``{"format", "fingerprint" (64 hex), "num_clips"}`` of a test split (a ``datasets.Dataset`` with the MIT
    columns; undecoded so no video is decoded)."""
    import datasets

    raw = test
    for column, undecoded in (
        ("video", datasets.Video(decode=False)),
        ("audio", datasets.Audio(decode=False)),
    ):
        if column in raw.column_names:
            raw = raw.cast_column(column, undecoded)
    rows = raw.with_format("arrow")
    lines = []
    for start in range(0, len(rows), ROWS_PER_BATCH):
        table = rows[start : start + ROWS_PER_BATCH]
        for index in range(table.num_rows):
            row = table.slice(index, 1)
            digest = hashlib.sha256()
            for name, column in zip(row.column_names, row.columns):
                digest.update(name.encode() + b"\0")
                _update(digest, column.combine_chunks())
            lines.append(f"{row.column('clip_id')[0].as_py()}\t{digest.hexdigest()}\n")
    return {
        "format": FINGERPRINT_FORMAT,
        "fingerprint": hashlib.sha256("".join(sorted(lines)).encode()).hexdigest(),
        "num_clips": len(lines),
    }
