"""Safe extraction of a submission archive (zip or tar) into a flat predictions folder.

An archive comes from a stranger, and ``zipfile.extractall``/``tarfile.extractall`` trust it: member names with
``..`` or an absolute path write anywhere, tar symlinks and hard links point anywhere, and a few kilobytes can
expand to terabytes (a zip bomb) or to millions of files. :func:`extract_submission` reads the member list,
refuses the whole archive at the first member that is not exactly what a submission holds, and copies file data
while counting bytes:

- members are regular files named ``<clip_id>.mp4`` for a clip of the test split (or ``predict_config.json``,
  which is skipped), at the top level or inside ONE top-level folder, plus that folder's own entry; every name
  goes through :func:`mit_dataset.safe_names.check_name`;
- no links, devices or other special members, no duplicates, no encrypted zip members;
- at most :attr:`ExtractionLimits.max_members` members, :attr:`~ExtractionLimits.max_member_bytes` per file and
  :attr:`~ExtractionLimits.max_total_bytes` in all, and at most :attr:`~ExtractionLimits.max_ratio` bytes out per
  archive byte in: a member is refused when its declared size OR the bytes actually decompressed so far pass a
  limit (headers can lie), and the partial file goes with the refused folder. The limits come from the test
  split (:meth:`ExtractionLimits.for_clips`): no valid prediction is larger than its raw frames.

The folder is written under a writer-marked temporary name and renamed into place only when complete
(:mod:`mit_dataset.atomic`), so a refused or interrupted extraction leaves nothing behind.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mit_dataset.atomic import atomic_path
from mit_dataset.safe_names import UnsafeNameError, check_name, child_path

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: Files a predictions folder may hold besides the clips; skipped when extracting.
IGNORED_NAMES = ("predict_config.json",)
_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive that is not a safe, well-formed submission; the message names the archive and member."""


#: Container overhead allowed on top of a clip's raw frames (mp4 boxes, audio track), in bytes.
CONTAINER_SLACK_BYTES = 2**20
#: Members a submission may hold besides its clips: one top-level folder entry and :data:`IGNORED_NAMES`.
_EXTRA_MEMBERS = 1 + len(IGNORED_NAMES)


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on what one archive may unpack to (counts, bytes per member, bytes in all, expansion ratio)."""

    max_members: int
    max_member_bytes: int
    max_total_bytes: int
    #: Decompressed bytes per archive byte: an mp4 is already compressed, so zip/gzip barely shrink it
    #: (ratio ~1); a bomb of zeros reaches ~1000.
    max_ratio: float = 50.0

    @classmethod
    def for_clips(cls, specs, evaluation_size) -> ExtractionLimits:
        """The limits for a submission of ``specs`` (:class:`~benchmark.submission.ClipSpec`): a prediction is
        never larger than its raw RGB frames (``num_frames x H x W x 3`` bytes, at the larger of the
        evaluation size and the clip's own size, the two sizes ``validate`` accepts) plus
        :data:`CONTAINER_SLACK_BYTES`; in all, one such file per expected clip."""
        specs = list(specs)
        if not specs:
            raise ValueError("no test clips to derive archive limits from")
        pixels = evaluation_size.height * evaluation_size.width
        per_member = CONTAINER_SLACK_BYTES + max(
            spec.num_frames * max(pixels, spec.height * spec.width) * 3 for spec in specs
        )
        return cls(len(specs) + _EXTRA_MEMBERS, per_member, per_member * len(specs))


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(path: Path) -> str:
    """The archive's name without its archive suffix (``team.tar.gz`` -> ``team``)."""
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass
class _Member:
    name: str
    is_dir: bool
    size: int  # declared size (checked again while copying)
    open: object  # () -> binary stream of the member's data


def _zip_members(archive: zipfile.ZipFile, where: str, max_members: int) -> Iterator[_Member]:
    infos = archive.infolist()  # the central directory: counted before anything is read
    if len(infos) > max_members:
        raise ArchiveError(f"{where}: more than {max_members} members")
    for info in infos:
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool stored no Unix file type
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"{where}: member {info.filename!r} is a link or special file")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{where}: member {info.filename!r} is encrypted")
        yield _Member(info.filename, info.is_dir(), info.file_size, lambda info=info: archive.open(info))


def _tar_members(archive: tarfile.TarFile, where: str) -> Iterator[_Member]:
    for info in archive:  # lazily: a tar with millions of members is refused after max_members
        if not (info.isfile() or info.isdir()):
            raise ArchiveError(f"{where}: member {info.name!r} is a link or special file")
        yield _Member(info.name, info.isdir(), info.size, lambda info=info: archive.extractfile(info))


def _parts(name: str, where: str) -> tuple[str, ...]:
    """The path components of a member name, refusing absolute paths, ``..``, backslashes and drive letters."""
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{where}: member {name!r} has an absolute or Windows path")
    parts = tuple(part for part in PurePosixPath(name).parts if part != ".")
    if not parts or any(part == ".." for part in parts):
        raise ArchiveError(f"{where}: member {name!r} leads outside the archive")
    return parts


def extract_submission(
    archive_path: str | os.PathLike,
    dest: str | os.PathLike,
    clip_ids,
    limits: ExtractionLimits,
) -> Path:
    """Extract the clips of a submission archive into the new folder ``dest`` (``<clip_id>.mp4`` files) within
    ``limits`` (usually :meth:`ExtractionLimits.for_clips` of the test split).

    Raises:
        ArchiveError: the archive is unreadable or holds anything but the expected clips (see the module
            docstring); nothing is left at ``dest`` then.
    """
    archive_path, dest = Path(archive_path), Path(dest)
    where = f"archive {archive_path.name}"
    expected = {f"{clip_id}.mp4" for clip_id in clip_ids}
    try:
        # Bytes out allowed for the archive's size; the slack keeps archives of tiny clips from being refused.
        max_expanded = limits.max_ratio * archive_path.stat().st_size + CONTAINER_SLACK_BYTES
        if zipfile.is_zipfile(archive_path):
            with (
                zipfile.ZipFile(archive_path) as archive,
                atomic_path(dest, directory=True, overwrite=False) as tmp,
            ):
                members = _zip_members(archive, where, limits.max_members)
                _extract(members, tmp, expected, limits, max_expanded, where)
        elif tarfile.is_tarfile(archive_path):
            with (
                tarfile.open(archive_path, "r:*") as archive,
                atomic_path(dest, directory=True, overwrite=False) as tmp,
            ):
                members = _tar_members(archive, where)
                _extract(members, tmp, expected, limits, max_expanded, where)
        else:
            raise ArchiveError(f"{where}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, RuntimeError) as error:
        if isinstance(error, FileExistsError):
            raise
        raise ArchiveError(f"{where}: unreadable ({error})") from error
    return dest


def _extract(
    members: Iterator[_Member],
    out: Path,
    expected: set[str],
    limits: ExtractionLimits,
    max_expanded: float,
    where: str,
) -> None:
    top, seen, total = None, set(), 0
    for count, member in enumerate(members, start=1):
        if count > limits.max_members:
            raise ArchiveError(f"{where}: more than {limits.max_members} members")
        parts = _parts(member.name, where)
        if member.is_dir:
            if len(parts) != 1 or top not in (None, parts[0]):
                raise ArchiveError(f"{where}: member {member.name!r}: only one top-level folder is allowed")
            top = parts[0]
            continue
        if len(parts) > 2 or (len(parts) == 2 and top not in (None, parts[0])):
            raise ArchiveError(f"{where}: member {member.name!r}: clips must be at the top or in one folder")
        if len(parts) == 2:
            top = parts[0]
        name = parts[-1]
        try:
            check_name(name, what=f"{where}: member")
        except UnsafeNameError as error:
            raise ArchiveError(str(error)) from error
        if name in IGNORED_NAMES:
            continue
        if name not in expected:
            raise ArchiveError(f"{where}: member {member.name!r} is not <clip_id>.mp4 for a test clip")
        if name in seen:
            raise ArchiveError(f"{where}: member {member.name!r} appears twice")
        seen.add(name)
        budget = _budget(limits, max_expanded, total)
        if member.size > budget:
            raise ArchiveError(
                f"{where}: member {member.name!r} is too large ({member.size} bytes declared, at most {budget} "
                "allowed: a valid prediction is never larger than its raw frames)"
            )
        total += _copy(
            member, child_path(out, name, what=f"{where}: member"), min(budget, member.size), where
        )


def _budget(limits: ExtractionLimits, max_expanded: float, total: int) -> int:
    """Bytes the next member may hold, given ``total`` bytes already extracted."""
    return int(min(limits.max_member_bytes, limits.max_total_bytes - total, max_expanded - total))


def _copy(member: _Member, target: Path, budget: int, where: str) -> int:
    """Copy ``member`` to ``target`` counting bytes; refused at the first chunk past ``budget`` (the partial
    file is in the temporary folder the refusal removes)."""
    written = 0
    with member.open() as source, open(target, "xb") as sink:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise ArchiveError(
                    f"{where}: member {member.name!r} expands past its declared size or the limits "
                    f"({budget} bytes allowed)"
                )
            sink.write(chunk)
    return written


__all__ = [
    "ARCHIVE_SUFFIXES",
    "ArchiveError",
    "ExtractionLimits",
    "archive_stem",
    "extract_submission",
    "is_archive",
]
