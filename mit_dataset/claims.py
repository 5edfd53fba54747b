"""Per-output claims, so that concurrent workers writing into one folder share the work instead of each
producing every output (two ``mit-bench predict`` runs on one ``--out``, workers on a shared filesystem).

A claim on ``folder/name`` is an exclusive ``flock`` on the hidden file ``folder/.name.lock``:

- the kernel releases it when its holder exits in any way (SIGKILL, power loss of a client), so a dead worker
  never blocks the others and there is no timeout to tune;
- the holder deletes the lock file before releasing it; a process that locked a file which was deleted
  meanwhile sees that the name now points elsewhere and tries again, so two holders never coexist;
- a lock file left by a killed holder is empty, hidden, and removed by the next claim of the same output or by
  :func:`remove_stale_claims`.

``flock`` works between processes of one host and on NFSv4 and most cluster filesystems (POSIX only).
Claims decide who works; outputs are still written atomically (:mod:`mit_dataset.atomic`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_SUFFIX = ".lock"


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file that guards ``path``."""
    path = Path(path)
    return path.parent / f".{path.name}{LOCK_SUFFIX}"


def _acquire(lock: Path, blocking: bool) -> int | None:
    """A descriptor holding the lock on ``lock`` (by the name as it is now), or ``None`` when it is taken."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder deleted this file after we opened it: lock the new one


@contextmanager
def claim(path: str | os.PathLike, *, blocking: bool = False) -> Iterator[bool]:
    """Claim ``path`` for this process for the duration of the block; yields whether the claim was obtained.

    ``blocking=False`` returns at once (``False``: another live worker holds it); ``blocking=True`` waits until
    the holder finishes or dies. Check whether the output is already done *after* obtaining the claim: the
    previous holder may just have written it.
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, blocking)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            lock.unlink(missing_ok=True)  # while still holding it (see the module docstring)
            os.close(fd)


def remove_stale_claims(folder: str | os.PathLike) -> list[Path]:
    """Delete the lock files in ``folder`` that no live process holds (left by killed workers); returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for lock in folder.glob(f".*{LOCK_SUFFIX}"):
        fd = _acquire(lock, blocking=False)
        if fd is not None:
            lock.unlink(missing_ok=True)
            os.close(fd)
            removed.append(lock)
    return removed
