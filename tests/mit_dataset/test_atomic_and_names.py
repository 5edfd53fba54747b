import os
import subprocess
import sys

import pytest

from mit_dataset.atomic import (
    TEMP_MARK,
    atomic_path,
    atomic_write_text,
    is_temporary,
    remove_stale_temporaries,
    temporary_name,
)
from mit_dataset.safe_names import UnsafeNameError, check_name, child_path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_mode_a_plain_write_would(tmp_path, umask_022):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = atomic_write_text(tmp_path / "atomic.txt", "x")
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644
    with atomic_path(tmp_path / "folder", directory=True) as tmp:
        (tmp / "inside.txt").write_text("y")
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def test_a_failed_write_leaves_the_old_output_and_no_temporary(tmp_path):
    target = atomic_write_text(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


@pytest.mark.parametrize("where", ["/proc/x", "{tmp}/file.txt/sub", "{tmp}/file.txt/sub/out"])
def test_unwritable_destinations_are_named_not_the_temporary(tmp_path, where):
    """Tests run as root, where chmod does not stop a write: /proc and a path under a regular file do."""
    (tmp_path / "file.txt").write_text("a file, not a folder")
    target = where.format(tmp=tmp_path)
    for write in (
        lambda: atomic_write_text(target, "x"),
        lambda: atomic_path(target, directory=True).__enter__(),
    ):
        with pytest.raises(OSError) as raised:
            write()
        assert TEMP_MARK not in str(raised.value) and str(raised.value.filename) in target, raised.value
    assert os.listdir(tmp_path) == ["file.txt"]


def test_errors_inside_the_temporary_name_the_final_path(tmp_path):
    with pytest.raises(FileNotFoundError) as raised, atomic_path(tmp_path / "out", directory=True) as tmp:
        (tmp / "missing" / "x.parquet").write_text("x")
    assert raised.value.filename == str(tmp_path / "out" / "missing" / "x.parquet")
    assert TEMP_MARK not in str(raised.value) and os.listdir(tmp_path) == []


def test_folder_replacement_keeps_the_suffix_and_refuses_without_overwrite(tmp_path):
    assert temporary_name("clip.mp4").endswith(".mp4") and is_temporary(temporary_name("clip.mp4"))
    with atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "v1").write_text("1")
    with atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "v2").write_text("2")
    assert os.listdir(tmp_path / "d") == ["v2"] and os.listdir(tmp_path) == ["d"]
    with pytest.raises(FileExistsError, match="already exists"), atomic_path(tmp_path / "d", overwrite=False):
        pass


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    code = (
        "import os, sys; from mit_dataset.atomic import temporary_name; "
        "open(os.path.join(sys.argv[1], temporary_name('x.mp4')), 'w').write('partial')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)  # a writer that is gone now
    mine = tmp_path / temporary_name("y.mp4")
    mine.write_text("in progress")
    (tmp_path / ".hidden-but-not-ours").write_text("keep")
    removed = remove_stale_temporaries(tmp_path)
    assert len(removed) == 1 and removed[0].name.startswith(".x.mp4.tmp~")
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, ".hidden-but-not-ours"])


@pytest.mark.parametrize(
    "name", ["../../x", "a/b", "a\\b", "..", ".", "", "/abs", "x\x00y", ".hidden", "a\nb", "x" * 256, 5, None]
)
def test_unsafe_names_are_refused_with_the_name(tmp_path, name):
    with pytest.raises(UnsafeNameError, match="clip id"):
        child_path(tmp_path, name, ".mp4", what="clip id")


def test_safe_names_and_symlinks_out(tmp_path):
    assert check_name("TonightShow_ep1_000010to000200", what="clip id")
    assert child_path(tmp_path, "a b-é", ".mp4", what="clip id") == tmp_path / "a b-é.mp4"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(UnsafeNameError, match="leads outside"):
        child_path(tmp_path, "link", what="clip id")
