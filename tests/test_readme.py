"""README.md stays true by construction: every ```python and ```bash block runs, top to bottom.

How README blocks are run (follow this when you add a section):

- All blocks run in order in one scratch folder (the working directory) laid out like the clone's root (its
  top-level files and folders are linked in, so ``training/configs/...`` resolves), and a block can use what an
  earlier block wrote (the dataset made by ``mit-talking synth``, the model made by ``covog create-tiny``, ...).
  ``python`` blocks share one namespace, like cells of one notebook; ``bash`` blocks run with
  ``bash -euo pipefail``. The console scripts (``mit-talking``, ``covog``, ``mit-bench``) are this checkout's.
- Everything a block writes goes under ``outputs/`` (ignored by ``.gitignore``), so following the README
  leaves nothing untracked in a clone: the test fails if anything else appears in the scratch folder.
- Blocks run on tiny inputs (small sizes, few frames, 1-2 denoising steps): the whole README is part of the
  default test run, so keep each block to a few seconds.
- An HTML comment on the line right before a block changes how it runs (keep these rare):

  ``<!-- readme-test: skip (REASON) -->``
      the block is not run; REASON says why and where it is tested instead (e.g. it needs real checkpoints).
  ``<!-- readme-test: stub COMMAND... (REASON) -->``
      the named commands are replaced by stubs that record their arguments and succeed (``sudo`` runs the
      rest of its line): for setup lines (``apt-get``, ``pip``) that a test cannot honestly rerun.

- Blocks in other languages (```text, ```yaml, plain ```) are not run.

Run this file as a script (``python tests/test_readme.py BLOCKS.json``) to execute blocks; the test does that
in a subprocess so that the environment (caches, working directory) is the README's own.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(?P<kind>skip|stub)\b(?P<rest>.*?)-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
RUN_LANGUAGES = ("python", "bash")
#: Commands the scratch folder's PATH provides: this checkout's console scripts.
CONSOLE_SCRIPTS = ("mit-talking", "covog", "mit-bench")
#: What following the README may leave in the scratch folder (all ignored by .gitignore).
ALLOWED_OUTPUTS = {"outputs"}


def readme_blocks(text: str) -> list[dict]:
    """Every fenced block with its language, first line number, code and directive (``None``, ``("skip",
    reason)`` or ``("stub", [commands])``). Raises ``ValueError`` for a malformed directive."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), None)
        if end is None:
            raise ValueError(f"README.md:{index + 1}: unclosed code block")
        directive, previous = None, lines[index - 1].strip() if index else ""
        if previous.startswith("<!--") and "readme-test" in previous:
            match = DIRECTIVE.match(previous)
            if not match:
                raise ValueError(f"README.md:{index}: malformed directive {previous!r}")
            rest = match["rest"].strip()
            reason = re.search(r"\((.+)\)\s*$", rest)
            if not reason:
                raise ValueError(f"README.md:{index}: a readme-test directive needs a (reason): {previous!r}")
            words = rest[: reason.start()].split()
            if match["kind"] == "skip":
                directive = ("skip", reason[1])
            elif not words:
                raise ValueError(f"README.md:{index}: 'stub' needs the commands to replace: {previous!r}")
            else:
                directive = ("stub", words)
        code = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append({"lang": fence["lang"], "line": index + 2, "code": code, "directive": directive})
        index = end + 1
    return blocks


def runnable_blocks(text: str) -> list[dict]:
    return [
        b
        for b in readme_blocks(text)
        if b["lang"] in RUN_LANGUAGES and (b["directive"] or ("",))[0] != "skip"
    ]


# -------------------------------------------------------------------------------------- running (subprocess)


def _write_bin(folder: Path, stubs: list[str], log: Path) -> None:
    """Console-script wrappers for this checkout, and stubs that record their arguments to ``log``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CONSOLE_SCRIPTS:
        _executable(folder / name, f'exec {shlex.quote(sys.executable)} -m mit_talk.cli {name} "$@"\n')
    for name in stubs:
        record = f'echo "{name} $*" >> {shlex.quote(str(log))}\n'
        _executable(folder / name, record + ('exec "$@"\n' if name == "sudo" else "exit 0\n"))


def _executable(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def run_blocks(blocks: list[dict], scratch: Path, bin_dir: Path, log: Path) -> None:
    """Execute ``blocks`` in order in ``scratch`` (python in one namespace, bash in subprocesses); the first
    failure raises ``RuntimeError`` naming its README line."""
    os.chdir(scratch)
    namespace: dict = {"__name__": "__readme__"}
    for block in blocks:
        started = time.perf_counter()
        stubs = block["directive"][1] if block["directive"] else []
        if block["lang"] == "python":
            try:
                code = compile(block["code"], f"README.md:{block['line']}", "exec")
                exec(code, namespace)  # noqa: S102 - the repository's own README, run as documentation
            except Exception as error:
                raise RuntimeError(
                    f"README.md:{block['line']} (python) failed:\n{traceback.format_exc()}"
                ) from error
        else:
            block_bin = bin_dir / f"block-{block['line']}"
            _write_bin(block_bin, stubs, log)
            env = {**os.environ, "PATH": f"{block_bin}{os.pathsep}{os.environ['PATH']}"}
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]], env=env, check=False)
            if done.returncode:
                raise RuntimeError(f"README.md:{block['line']} (bash) exited with status {done.returncode}")
        print(
            f"README.md:{block['line']} ({block['lang']}) ran in {time.perf_counter() - started:.1f}s",
            flush=True,
        )


def clone_entries() -> list[str]:
    """The clone's top-level files and folders that the scratch folder links to (not hidden ones, not outputs)."""
    return sorted(
        p.name for p in ROOT.iterdir() if not p.name.startswith(".") and p.name not in ALLOWED_OUTPUTS
    )


def run_readme(
    blocks: list[dict], tmp_path: Path, extra_env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``blocks`` in a fresh interpreter whose caches live in ``tmp_path``; returns the finished process."""
    scratch, home = tmp_path / "scratch", tmp_path / "home"
    scratch.mkdir(parents=True)
    for entry in clone_entries():
        (scratch / entry).symlink_to(ROOT / entry)
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "HF_HOME": str(home / "hf"),
        "HF_DATASETS_CACHE": str(home / "hf" / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "MPLCONFIGDIR": str(home / "matplotlib"),
        "MIT_TALK_DEBUG": "1",  # a failing command shows its traceback here
        "TQDM_DISABLE": "1",
        **(extra_env or {}),
    }
    command = [sys.executable, __file__, str(tmp_path / "blocks.json"), str(scratch), str(tmp_path / "bin"),
               str(tmp_path / "stubs.log")]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)


if __name__ == "__main__":
    blocks_file, scratch_dir, bin_folder, stub_log = sys.argv[1:5]
    run_blocks(json.loads(Path(blocks_file).read_text()), Path(scratch_dir), Path(bin_folder), Path(stub_log))
    sys.exit(0)


# ------------------------------------------------------------------------------------------------- tests

import pytest  # the script part above needs only the standard library


def test_every_readme_block_runs_and_leaves_only_outputs(tmp_path):
    blocks = runnable_blocks(README.read_text())
    assert len(blocks) >= 8
    done = run_readme(blocks, tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert done.stdout.count("README.md:") == len(blocks)
    left = {p.name for p in (tmp_path / "scratch").iterdir()} - set(clone_entries())
    assert left <= ALLOWED_OUTPUTS, f"README blocks wrote outside outputs/: {sorted(left - ALLOWED_OUTPUTS)}"
    assert "/outputs/" in (ROOT / ".gitignore").read_text().splitlines()


def test_quick_start_line_works_as_root_and_as_a_user(tmp_path):
    """No bare ``sudo``: as root (no sudo command) apt-get runs directly, as a user through sudo."""
    (quick_start,) = [b for b in runnable_blocks(README.read_text()) if "apt-get" in b["code"]]
    stubs = quick_start["directive"][1]
    assert "sudo" in stubs and "apt-get" in stubs  # never runs the real ones from a test
    as_user = run_readme([quick_start], tmp_path / "user")
    assert as_user.returncode == 0, as_user.stderr[-3000:]
    calls = (tmp_path / "user" / "stubs.log").read_text().splitlines()
    assert "sudo apt-get install -y ffmpeg" in calls and "apt-get install -y ffmpeg" in calls
    if shutil.which("sudo") is not None:
        pytest.skip("this machine has a real sudo: the root variant would call it")
    as_root = run_readme(
        [{**quick_start, "directive": ("stub", [s for s in stubs if s != "sudo"])}], tmp_path / "root"
    )
    assert as_root.returncode == 0, as_root.stderr[-3000:]
    calls = (tmp_path / "root" / "stubs.log").read_text().splitlines()
    assert "apt-get install -y ffmpeg" in calls and not any(c.startswith("sudo") for c in calls)


def test_directives_are_parsed_and_checked():
    text = """<!-- readme-test: skip (needs real checkpoints) -->
```bash
covog assemble
```
<!-- readme-test: stub apt-get pip (setup) -->
```bash
apt-get install -y ffmpeg
```
```text
not run
```
"""
    blocks = readme_blocks(text)
    assert [b["directive"] for b in blocks] == [
        ("skip", "needs real checkpoints"),
        ("stub", ["apt-get", "pip"]),
        None,
    ]
    assert [b["line"] for b in runnable_blocks(text)] == [7]
    with pytest.raises(ValueError, match="needs a \\(reason\\)"):
        readme_blocks("<!-- readme-test: skip -->\n```bash\nx\n```\n")
    with pytest.raises(ValueError, match="malformed"):
        readme_blocks("<!-- readme-test: run-twice (x) -->\n```bash\nx\n```\n")


def test_a_failing_block_names_its_line(tmp_path):
    blocks = runnable_blocks("```bash\ntrue\n```\n\n```python\nraise SystemError('broken on purpose')\n```\n")
    done = run_readme(blocks, tmp_path)
    assert done.returncode != 0 and "README.md:6 (python) failed" in done.stderr
