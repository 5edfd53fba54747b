"""One validation for every name that comes from data and becomes a path.

Clip ids, person ids, video names, file names inside archives or JSON files are written by strangers. Before
any of them is joined to a folder it goes through :func:`check_name` (a single path component: no separators,
no ``..``, no NUL or control characters, not hidden, not absolute, at most 255 bytes) and :func:`child_path`
(the joined path, resolved, still lies inside the folder, so a symlink planted in the folder cannot lead
out either). Hidden names are refused because the project's temporaries are hidden (:mod:`mit_dataset.atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_NAME_BYTES = 255  # the usual filesystem limit for one path component


class UnsafeNameError(ValueError):
    """A name from data cannot be used as a file name."""


def check_name(name: object, *, what: str) -> str:
    """Return ``name`` when it is safe as one path component, else raise :class:`UnsafeNameError`.

    Args:
        name: the candidate (any object: non-strings are refused).
        what: what the name is, for the error (``"clip id"``, ``"person id"``, ``"archive member"``).
    """
    problem = None
    if not isinstance(name, str):
        problem = f"must be a string, got {type(name).__name__}"
    elif not name:
        problem = "is empty"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        problem = "contains a path separator"
    elif name in (".", ".."):
        problem = "is a relative path reference"
    elif name.startswith("."):
        problem = "starts with '.' (hidden names are reserved for temporaries)"
    elif any(ord(char) < 32 or ord(char) == 127 for char in name):
        problem = "contains a NUL or control character"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    if problem is not None:
        raise UnsafeNameError(f"{what} {name!r} {problem}: it cannot be used as a file name")
    return name


def child_path(folder: str | os.PathLike, name: object, suffix: str = "", *, what: str) -> Path:
    """``folder / (name + suffix)`` after checking ``name`` and that the result stays inside ``folder``.

    Raises:
        UnsafeNameError: the name is unsafe, or the path resolves outside ``folder`` (e.g. through a symlink).
    """
    folder = Path(folder)
    path = folder / (check_name(name, what=what) + suffix)
    root = folder.resolve()
    if not path.resolve().is_relative_to(root) or path.resolve() == root:
        raise UnsafeNameError(f"{what} {name!r} leads outside {folder}")
    return path
