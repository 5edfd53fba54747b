"""Atomic writes: build an output under a temporary name beside it, then rename it into place.

Every writer in the project (dataset folders, clip folders, videos, plots, predictions, results, checkpoints,
caches) goes through this module so that three promises hold everywhere:

1. a reader never sees half an output: the final name appears only through ``os.replace``/``os.rename``,
   which is atomic within one filesystem (the temporary lives in the target's folder for that reason);
2. an output gets the mode a plain ``open(path, "w")`` or ``mkdir`` would give it under the current umask.
   ``tempfile.mkstemp``/``mkdtemp`` create 0600 files and 0700 folders, which would make shared datasets and
   served leaderboards unreadable to others; temporaries here are made with ``os.open(..., 0o666)`` and
   ``os.mkdir(..., 0o777)`` so the umask applies as usual;
3. a writer killed mid-way (SIGKILL, power loss) leaves a temporary whose name says who made it:
   ``.{name}.tmp~{host}~{pid}~{random}{suffix}``. :func:`remove_stale_temporaries` deletes the ones whose
   writer process is gone (same host, pid not alive) or that are older than :data:`STALE_AFTER_SECONDS`
   (another host's writer); writers call it on their folder before they start.

The suffix of the final name is repeated at the end of the temporary name so that tools choosing a format
from the extension (FFmpeg muxers, matplotlib) write the right format.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".tmp~"
STALE_AFTER_SECONDS = 24 * 3600  # a temporary of another host's writer is stale after a day
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp~(?P<host>[^~/]*)~(?P<pid>\d+)~(?P<token>[0-9a-f]{8})")


def _host() -> str:
    return socket.gethostname().replace("~", "-").replace("/", "-")


def temporary_name(name: str) -> str:
    """The temporary name for an output called ``name`` written by this process."""
    suffix = Path(name).suffix
    return f".{name}{TEMP_MARK}{_host()}~{os.getpid()}~{secrets.token_hex(4)}{suffix}"


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary made by :func:`temporary_name`."""
    return _TEMP_NAME.match(name) is not None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _is_stale(path: Path) -> bool:
    match = _TEMP_NAME.match(path.name)
    if match is None:
        return False
    if match["host"] == _host():
        return not _process_alive(int(match["pid"]))
    try:
        return time.time() - path.lstat().st_mtime > STALE_AFTER_SECONDS
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries in ``folder`` (not recursive) left by writers that are gone; returns them.

    A temporary of a live writer (this or another process on this host) is never touched, so concurrent
    writers can share a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [entry for entry in folder.iterdir() if _is_stale(entry)]
    for entry in stale:
        _remove(entry)
    return stale


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception, rename it to ``path``.

    With ``directory=True`` the temporary is an empty folder (mode from the umask) that replaces ``path``
    as a whole: an existing folder is moved aside first, deleted only once the new one is in place, and put
    back if the rename fails. Otherwise the temporary is a path that does not exist yet (the block creates
    the file, e.g. an encoder opening it by name). On an exception the temporary is removed and ``path`` is
    left as it was.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (checked before and after the block).
        OSError: the temporary cannot be made, written or renamed; the error names ``path`` (and files
            below it), never the temporary, so every writer reports the path its user gave.
    """
    path = Path(path)
    _make_parent(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    tmp = path.parent / temporary_name(path.name)
    try:
        with _errors_name_final_path(tmp, path):
            if directory:
                os.mkdir(tmp, 0o777)
            yield tmp
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path} already exists")
            if directory:
                _replace_folder(tmp, path)
            else:
                os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def _make_parent(path: Path) -> None:
    """Create ``path``'s folder; a file where a folder belongs is reported as "Not a directory" (pathlib says
    "File exists", which reads as if ``path`` itself were in the way)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), error.filename) from None


@contextmanager
def _errors_name_final_path(tmp: Path, path: Path) -> Iterator[None]:
    """Re-raise an ``OSError`` that names the temporary ``tmp`` (or a file inside it) with ``path`` in its
    place: the user asked for ``path`` and has never heard of ``.{name}.tmp~...``. Same type and errno."""
    try:
        yield
    except OSError as error:
        names = (error.filename, error.filename2)
        renamed = tuple(_final_name(name, tmp, path) for name in names)
        if renamed != names:
            raise type(error)(error.errno, error.strerror, renamed[0], None, renamed[1]) from error
        if error.filename is None and str(tmp) in str(error):  # a library's message-only error
            try:
                replacement = type(error)(str(error).replace(str(tmp), str(path)))
            except TypeError:  # a constructor that wants other arguments: keep the original
                raise error from None
            raise replacement from error
        raise


def _final_name(name: object, tmp: Path, path: Path) -> object:
    if not isinstance(name, (str, os.PathLike)):
        return name
    text, temporary = os.fspath(name), os.fspath(tmp)
    if text == temporary or text.startswith(temporary + os.sep):
        return os.fspath(path) + text[len(temporary) :]
    return name


@contextmanager
def work_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder beside ``path`` named as a temporary of ``path``; it is always removed at the
    end of the block (scratch space: re-encodes, generated clips). A killed writer's work folder is removed by
    the next :func:`remove_stale_temporaries` of its parent."""
    path = Path(path)
    _make_parent(path)
    work = path.parent / temporary_name(path.name)
    with _errors_name_final_path(work, path):
        os.mkdir(work, 0o777)
    try:
        yield work
    finally:
        _remove(work)


def _replace_folder(tmp: Path, path: Path) -> None:
    if not (path.exists() or path.is_symlink()):
        os.rename(tmp, path)
        return
    aside = path.parent / temporary_name(path.name + ".old")
    os.rename(path, aside)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(aside, path)
        raise
    _remove(aside)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))
