"""Submissions re-scored by ``mit-bench leaderboard``: prediction folders and archives (verified), results files
(self-reported, tied to the test set by its fingerprint), and archives that try to escape or explode."""

import io
import json
import re
import tarfile
import zipfile

import numpy as np
import pytest
from bench_data import CLIP_SIZE, ground_truth_submission, make_test_split, write_tiny_detector

from benchmark import archives
from benchmark.archives import CONTAINER_SLACK_BYTES, ArchiveError, ExtractionLimits, extract_submission
from benchmark.fingerprint import fingerprint_test_split
from benchmark.leaderboard import build_leaderboard
from benchmark.scoring import BenchmarkResults, evaluate_submission
from benchmark.submission import clip_specs, load_test_split
from mit_dataset.hub import write_dataset_folder
from mit_dataset.video_io import read_video_frames, write_video
from mit_talk.cli import mit_bench

CLIPS = ("easy_two_0", "easy_multi_0", "hard_two_0", "hard_multi_0")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A saved test split (16 frames, so FVD has windows), a perfect and a noisy predictions folder."""
    root = tmp_path_factory.mktemp("world")
    split = make_test_split(root / "gt", num_frames=16)
    split.save_to_disk(str(root / "dataset"))
    perfect = ground_truth_submission(split, root / "perfect")
    rng = np.random.default_rng(0)
    for path in sorted(perfect.iterdir()):
        frames = read_video_frames(path).astype(np.float32)
        noisy = np.clip(frames + rng.normal(0, 30, frames.shape), 0, 255).astype(np.uint8)
        write_video(root / "noisy" / path.name, noisy)
    return root, split


def _zip(folder, target, prefix="", extra=()):
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.glob("*.mp4")):
            archive.write(path, prefix + path.name)
        for name, data in extra:
            archive.writestr(name, data)
    return target


def _tar(folder, target, prefix=""):
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(folder.glob("*.mp4")):
            archive.add(path, prefix + path.name)
    return target


def test_results_survive_their_own_integrity_check(world, tmp_path, monkeypatch):
    # What evaluate writes (FVD with a trusted stand-in detector, speaker sync, partial) loads back unchanged.
    monkeypatch.delenv("MIT_BENCH_I3D", raising=False)
    root, split = world
    detector = write_tiny_detector(tmp_path / "tiny.pt")
    (tmp_path / "partial").mkdir()
    for name in CLIPS[:3]:
        (tmp_path / "partial" / f"{name}.mp4").write_bytes((root / "noisy" / f"{name}.mp4").read_bytes())
    for folder in (root / "noisy", tmp_path / "partial"):
        results, _ = evaluate_submission(
            split,
            folder,
            i3d_path=str(detector),
            trust_detector=True,
            progress=False,
            evaluation_size=CLIP_SIZE,
        )
        assert results.test_set == fingerprint_test_split(split)
        loaded = BenchmarkResults.load(results.write_json(tmp_path / "r.json"))
        assert loaded.to_dict() == json.loads(json.dumps(results.to_dict()))


def test_the_fingerprint_is_the_data_not_the_way_it_was_loaded(world, tmp_path):
    _, split = world
    records_folder = write_dataset_folder(_records(split, tmp_path), tmp_path / "mit", progress=False)
    from_parquet = load_test_split(str(records_folder), cache_dir=str(tmp_path / "cache"))
    assert fingerprint_test_split(from_parquet) == fingerprint_test_split(split)
    assert fingerprint_test_split(split.select([3, 1, 2, 0])) == fingerprint_test_split(split)

    def shift_a_box(row):
        if row["clip_id"] == "hard_two_0":
            row["persons"][0]["boxes"][0][0] += 1.0
        return row

    assert fingerprint_test_split(split.map(shift_a_box)) != fingerprint_test_split(split)


def _records(split, tmp_path):
    from bench_data import make_record

    return [
        make_record(tmp_path / "gt", clip_id, subset, difficulty, seed, num_frames=16)
        for seed, (clip_id, subset, difficulty) in enumerate(
            zip(split["clip_id"], split["subset"], split["difficulty"])
        )
    ]


def test_prediction_folders_and_archives_are_rescored_and_marked_verified(world, tmp_path):
    root, split = world
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "perfect").symlink_to(root / "perfect", target_is_directory=True)  # a link is not followed
    import shutil

    shutil.copytree(root / "perfect", subs / "gt-copy")
    _zip(
        root / "noisy",
        subs / "noisy-zip.zip",
        prefix="predictions/",
        extra=[("predictions/predict_config.json", "{}")],
    )
    _tar(root / "noisy", subs / "noisy-tar.tar.gz")
    claimed, _ = evaluate_submission(split, root / "noisy", progress=False, evaluation_size=CLIP_SIZE)
    claimed.model = "noisy-claims"
    claimed.write_json(subs / "noisy-claims.json")  # consistent and on this test set: self-reported
    forged = claimed.to_dict()
    forged["model"], forged["test_set"]["fingerprint"] = "forged", "f" * 64
    (subs / "forged.json").write_text(json.dumps(forged))

    board = build_leaderboard(
        subs, dataset=str(root / "dataset"), work_dir=tmp_path, scoring={"evaluation_size": CLIP_SIZE}
    )
    names = [(e.name, e.verified) for e in board.entries]
    assert names[0] == ("gt-copy", True)  # the ground truth itself: SSIM 1
    assert set(names[1:]) == {("noisy-zip", True), ("noisy-tar", True), ("noisy-claims", False)}
    by_name = {e.name: e for e in board.entries}
    assert by_name["noisy-zip"].results.table == by_name["noisy-claims"].results.table  # same predictions
    assert "another test set" in {p.name: r for p, r in board.rejected}["forged.json"]
    assert "| verified |" in board.markdown() and "| self-reported |" in board.markdown()
    assert not list(tmp_path.glob(".leaderboard.work*"))  # extraction folders removed

    without = build_leaderboard(subs)  # no dataset: predictions cannot be scored, results files are kept
    assert not any(e.verified for e in without.entries) and len(without.entries) == 1  # one fingerprint wins
    assert "pass --dataset" in {p.name: r for p, r in without.rejected}["noisy-zip.zip"]


def test_cli_rescores_an_archive(world, tmp_path, capsys):
    root, _ = world
    subs = tmp_path / "subs"
    subs.mkdir()
    _zip(root / "noisy", subs / "team.zip")
    args = ["leaderboard", str(subs), "--out", str(tmp_path / "lb.md"), "--dataset", str(root / "dataset"),
            "--eval-size", str(CLIP_SIZE)]  # fmt: skip
    assert mit_bench(args) == 0
    printed = capsys.readouterr().out
    assert (
        re.search(r"^1 +team +4 ", printed, re.MULTILINE) and "|" not in printed
    )  # plain text, not markdown
    assert "Test set: 4 clips" in printed and "\\" not in printed  # no markdown escapes (was "Test set\\:")
    assert "| verified |" in (tmp_path / "lb.md").read_text()


def _zip_with(tmp_path, members):
    """A zip whose members are ``(name, data)`` or ``(ZipInfo, data)``."""
    target = tmp_path / "evil.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return target


def _tar_with(tmp_path, add):
    target = tmp_path / "evil.tar"
    with tarfile.open(target, "w") as archive:
        add(archive)
    return target


def _file(archive, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _link(archive, name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    archive.addfile(info)


def _symlink_zip_member(name, target):
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info, target


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda t: _zip_with(t, [("../easy_two_0.mp4", b"x")]), "leads outside the archive"),
        (lambda t: _zip_with(t, [("/tmp/easy_two_0.mp4", b"x")]), "absolute or Windows path"),
        (lambda t: _zip_with(t, [("..\\easy_two_0.mp4", b"x")]), "absolute or Windows path"),
        (lambda t: _zip_with(t, [("notes.txt", b"x")]), "is not <clip_id>.mp4 for a test clip"),
        (lambda t: _zip_with(t, [("a/b/easy_two_0.mp4", b"x")]), "at the top or in one folder"),
        (lambda t: _zip_with(t, [("a/easy_two_0.mp4", b"x"), ("b/easy_multi_0.mp4", b"x")]), "in one folder"),
        (lambda t: _zip_with(t, [("easy_two_0.mp4", b"x"), ("easy_two_0.mp4", b"y")]), "appears twice"),
        (lambda t: _zip_with(t, [_symlink_zip_member("easy_two_0.mp4", "/etc/passwd")]), "link or special file"),
        (lambda t: _zip_with(t, [(".easy_two_0.mp4", b"x")]), "starts with '.'"),
        (lambda t: _zip_with(t, [("easy_two_0.mp4", bytes(3 * 2**20))]), "too large"),  # 3 MiB of zeros: a bomb
        (lambda t: _zip_with(t, [(f"x{i}.mp4", b"") for i in range(40)]), "more than 30 members"),
        (lambda t: _tar_with(t, lambda a: _link(a, "easy_two_0.mp4", "/etc/passwd", tarfile.SYMTYPE)), "link"),
        (lambda t: _tar_with(t, lambda a: _link(a, "easy_two_0.mp4", "/etc/passwd", tarfile.LNKTYPE)), "link"),
        (lambda t: _tar_with(t, lambda a: _file(a, "../../easy_two_0.mp4")), "leads outside the archive"),
        (lambda t: _tar_with(t, lambda a: _link(a, "dev", "", tarfile.CHRTYPE)), "link or special file"),
        (lambda t: (t / "junk.zip").write_bytes(b"PK\x03\x04 broken") and t / "junk.zip", "not a zip or tar"),
    ],
)  # fmt: skip
def test_a_hostile_archive_is_refused_and_leaves_nothing(tmp_path, make, reason):
    archive = make(tmp_path)
    limits = ExtractionLimits(max_members=30, max_member_bytes=2**20, max_total_bytes=2 * 2**20)
    before = {p for p in tmp_path.parent.rglob("*")}
    with pytest.raises(ArchiveError, match=reason):
        extract_submission(archive, tmp_path / "out", CLIPS, limits)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    assert {p for p in tmp_path.parent.rglob("*")} == before  # nothing written anywhere else either


def test_a_prediction_folder_with_links_is_refused(world, tmp_path):
    root, _ = world
    folder = tmp_path / "subs" / "linked"
    folder.mkdir(parents=True)
    for name in CLIPS:
        (folder / f"{name}.mp4").symlink_to(root / "perfect" / f"{name}.mp4")
    board = build_leaderboard(tmp_path / "subs", dataset=str(root / "dataset"), work_dir=tmp_path)
    assert not board.entries and "holds links" in board.rejected[0][1]


def test_archive_limits_come_from_the_test_split(world):
    _, split = world
    specs = clip_specs(split)
    limits = ExtractionLimits.for_clips(specs, CLIP_SIZE)
    raw = max(s.num_frames * max(CLIP_SIZE.height * CLIP_SIZE.width, s.height * s.width) * 3 for s in specs)
    assert limits.max_member_bytes == raw + CONTAINER_SLACK_BYTES < 2 * 2**20  # not 4 GiB
    assert (
        limits.max_total_bytes == len(specs) * limits.max_member_bytes
        and limits.max_members == len(specs) + 2
    )


def test_a_member_larger_than_a_valid_prediction_is_refused_unread(world, tmp_path, monkeypatch):
    # The tester's bomb, scaled down: one member past the split's raw-frame bound (it was unpacked up to 4 GiB).
    root, split = world
    cap = ExtractionLimits.for_clips(clip_specs(split), CLIP_SIZE).max_member_bytes
    subs = tmp_path / "subs"
    subs.mkdir()
    _zip_with(subs, [("easy_two_0.mp4", bytes(cap + 1))]).rename(subs / "bomb.zip")
    copied = []
    monkeypatch.setattr(archives, "_copy", lambda member, *a: copied.append(member.name))
    board = build_leaderboard(
        subs, dataset=str(root / "dataset"), work_dir=tmp_path, scoring={"evaluation_size": CLIP_SIZE}
    )
    assert "bomb.zip" in str(board.rejected[0][0]) and "too large" in board.rejected[0][1]
    assert copied == [] and not list(tmp_path.glob(".leaderboard.work*"))


def test_a_highly_compressed_member_is_refused_by_ratio(tmp_path):
    archive = _zip_with(tmp_path, [("easy_two_0.mp4", bytes(3 * 2**20))])  # ~3 KiB on disk, 3 MiB out
    limits = ExtractionLimits(max_members=5, max_member_bytes=2**30, max_total_bytes=2**30, max_ratio=50)
    with pytest.raises(ArchiveError, match="too large"):
        extract_submission(archive, tmp_path / "out", CLIPS, limits)
    assert not (tmp_path / "out").exists()


def test_streamed_bytes_are_counted_whatever_the_header_says(tmp_path, monkeypatch):
    # A reader that yields more than the member's declared size is stopped at the cap and leaves nothing.
    archive = _tar_with(tmp_path, lambda a: _file(a, "easy_two_0.mp4", b"x" * 1000))
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, info: io.BytesIO(b"x" * 10**6))
    limits = ExtractionLimits(max_members=5, max_member_bytes=2**30, max_total_bytes=2**30)
    with pytest.raises(ArchiveError, match="expands past"):
        extract_submission(archive, tmp_path / "out", CLIPS, limits)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
