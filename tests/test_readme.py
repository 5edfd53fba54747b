"""README.md stays true by construction: every ```python and ```bash block runs, top to bottom.

How README blocks are run (follow this when you add a section):

- All blocks run in order in one scratch folder (the working directory) laid out like the clone's root (its
  top-level files and folders are linked in, so ``training/configs/...`` resolves), and a block can use what an
  earlier block wrote (the dataset made by ``mit-talking synth``, the model made by ``covog create-tiny``, ...).
  ``python`` blocks share one namespace, like cells of one notebook; ``bash`` blocks run with
  ``bash -euo pipefail``. The console scripts (``mit-talking``, ``covog``, ``mit-bench``) are this checkout's,
  run by a console server forked from the runner once torch, diffusers and datasets are imported (see
  :func:`start_console_server`: a README of ~15 commands would otherwise spend most of its time importing), with
  one torch thread. ``-m slow`` also runs the whole README with a fresh interpreter per command.
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

Run this file as a script (``python tests/test_readme.py BLOCKS.json SCRATCH BIN STUB_LOG server|fresh``) to
execute blocks; the test does that in a subprocess so that the environment (caches, working directory) is the
README's own.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import NoReturn

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

#: Imported once by the runner before any block runs, so that neither its python blocks nor the console scripts
#: (forked from it, see :func:`start_console_server`) pay the ~5 s CPU of importing torch/diffusers/datasets again.
#: A module missing here is only slower.
PRELOAD = (
    "mit_talk.cli", "mit_dataset.hub", "mit_dataset.info", "mit_dataset.show", "mit_dataset.torch_view",
    "covog_diffusers", "covog_diffusers.tiny", "covog_diffusers.video_export", "training.loop",
    "benchmark.predict", "benchmark.scoring", "benchmark.submission", "benchmark.leaderboard",
    "benchmark.model_card", "benchmark.metrics", "datasets", "evaluate", "matplotlib.pyplot",
)  # fmt: skip
#: A console script run through the server: connects, hands over its argv, cwd, environment and stdin/stdout/
#: stderr, and exits with the command's exit status. Started with ``python -I -S``: ~20 ms, no project imports.
CLIENT = """import json, os, socket, struct, sys
server, program, *argv = sys.argv[1:]
request = json.dumps({"program": program, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
with socket.socket(socket.AF_UNIX) as conn:
    conn.connect("\\0" + server)  # a Linux abstract socket: no file, no path length limit
    socket.send_fds(conn, [struct.pack("!Q", len(request))], [0, 1, 2])
    conn.sendall(request)
    reply = b""
    while chunk := conn.recv(8):
        reply += chunk
sys.exit(struct.unpack("!i", reply)[0] if len(reply) == 4 else 1)
"""
CLIENT_FILE = "console-client.py"


def _write_bin(folder: Path, stubs: list[str], log: Path, server: str | None) -> None:
    """Console-script wrappers for this checkout (through the console server named ``server`` when given, else
    fresh interpreters), and stubs that record their arguments to ``log``."""
    folder.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    for name in CONSOLE_SCRIPTS:
        if server is None:
            _executable(folder / name, f'exec {python} -m mit_talk.cli {name} "$@"\n')
        else:
            client = shlex.quote(str(folder.parent / CLIENT_FILE))
            _executable(folder / name, f'exec {python} -I -S {client} {shlex.quote(server)} {name} "$@"\n')
    for name in stubs:
        record = f'echo "{name} $*" >> {shlex.quote(str(log))}\n'
        _executable(folder / name, record + ('exec "$@"\n' if name == "sudo" else "exit 0\n"))


def _executable(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


class BecomeConsoleScript(BaseException):
    """Raised in a process forked by the console server: unwinds the server's frames, so that the command runs at
    the top of this script, as the console script's entry point would."""

    def __init__(self, program: str, argv: list[str]):
        super().__init__(program)
        self.program, self.argv = program, argv

    def run_and_exit(self) -> NoReturn:
        """Run the command and exit with the status ``sys.exit(run(...))`` would give (errors as an uncaught
        exception's), through :func:`exit_without_teardown`."""
        from mit_talk.cli import run

        sys.argv = [self.program, *self.argv]
        try:
            status = run(self.program, self.argv)
        except SystemExit as exit_request:  # argparse's usage errors
            status = exit_request.code
        except BaseException:  # noqa: BLE001 - as an uncaught exception at the top of a script: traceback, 1
            sys.excepthook(*sys.exc_info())
            status = 1
        if status is not None and not isinstance(status, int):
            print(status, file=sys.stderr)
            status = 1
        exit_without_teardown(status or 0)


def exit_without_teardown(status: int) -> NoReturn:
    """Exit as the interpreter does (non-daemon threads joined, atexit handlers run, stdio flushed: the first
    steps of ``Py_FinalizeEx``, in its order) but without tearing down every module, which after importing torch,
    diffusers and evaluate costs ~1.4 s CPU (~5 s wall on the shared machine) and changes nothing a user sees."""
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status & 0xFF)


def start_console_server(name: str) -> int:
    """Fork a server that runs console scripts (``CLIENT`` requests on the abstract unix socket ``name``); returns
    its pid.

    Why: a console script spends ~5 s CPU importing torch, diffusers and datasets before it does anything, and the
    README runs ~15 of them. The server is forked after :data:`PRELOAD` and before any block computes (forking a
    process whose thread pools have run is unsafe); for each request it forks a worker that takes over the client's
    stdin/stdout/stderr, working directory and environment and runs ``mit_talk.cli.run`` -- the console scripts'
    own entry -- with a waiter process reporting the worker's exit status. The one difference from a fresh
    interpreter: modules are already imported, so an environment variable a block changes is not seen by code
    that read it at import time (no README block does; ``fresh_processes=True`` runs each command in a new
    interpreter). In the server's children this function does not return: it raises
    :class:`BecomeConsoleScript`."""
    if threading.active_count() > 1:  # a fork copies no thread, but the locks they hold
        raise RuntimeError(
            f"the console server must be forked before any thread starts: {threading.enumerate()}"
        )
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + name)
    listener.listen(16)
    parent, pid = os.getpid(), os.fork()
    if pid:
        listener.close()
        return pid
    try:
        _serve(listener, parent)
    except BecomeConsoleScript:
        raise
    except BaseException:  # noqa: BLE001 - the server itself: never back into the runner's code
        traceback.print_exc()
    os._exit(0)


def _serve(listener: socket.socket, parent: int) -> None:
    listener.settimeout(0.5)
    while os.getppid() == parent:  # the runner gone (killed by a timeout): stop
        _reap_children()
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if _peer_uid(conn) != os.getuid():  # anyone on the machine can reach an abstract socket
            conn.close()
            continue
        conn.settimeout(None)
        header, fds, _, _ = socket.recv_fds(conn, 8, 3)
        size, data = struct.unpack("!Q", header)[0], b""
        while len(data) < size:
            data += conn.recv(size - len(data))
        request = json.loads(data)
        if os.fork() == 0:  # the waiter: forks the worker, reports its exit status, ends with it
            listener.close()
            worker = os.fork()
            if worker == 0:
                conn.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                os.chdir(request["cwd"])
                os.environ.clear()
                os.environ.update(request["env"])
                raise BecomeConsoleScript(request["program"], request["argv"])
            for fd in fds:
                os.close(fd)
            _, status = os.waitpid(worker, 0)
            code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N, a shell's 128 + N
            conn.sendall(struct.pack("!i", code if code >= 0 else 128 - code))
            os._exit(0)
        for fd in fds:
            os.close(fd)
        conn.close()


def _peer_uid(conn: socket.socket) -> int:
    """The connected process's user id (``SO_PEERCRED``: pid, uid, gid as the kernel saw them at connect)."""
    return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]


def _reap_children() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def run_blocks(
    blocks: list[dict], scratch: Path, bin_dir: Path, log: Path, server: str | None = None
) -> None:
    """Execute ``blocks`` in order in ``scratch`` (python in one namespace, bash in subprocesses whose console
    scripts go through ``server`` when given); the first failure raises ``RuntimeError`` naming its README line."""
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
            _write_bin(block_bin, stubs, log, server)
            env = {**os.environ, "PATH": f"{block_bin}{os.pathsep}{os.environ['PATH']}"}
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]], env=env, check=False)
            if done.returncode:
                raise RuntimeError(f"README.md:{block['line']} (bash) exited with status {done.returncode}")
        print(
            f"README.md:{block['line']} ({block['lang']}) ran in {time.perf_counter() - started:.1f}s",
            flush=True,
        )


def main(blocks_file: Path, scratch: Path, bin_dir: Path, log: Path, fresh_processes: bool) -> int:
    """The runner: preload, start the console server (unless ``fresh_processes``), run the blocks."""
    blocks = json.loads(blocks_file.read_text())
    if not fresh_processes and any(_runs_console_scripts(b) for b in blocks):
        for module in PRELOAD:
            importlib.import_module(module)
        from mit_talk.cli import PROGRAMS, build_parser

        for program in PROGRAMS:  # imports every command's module
            build_parser(program)
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / CLIENT_FILE).write_text(CLIENT)
        server_name = f"mit-talk-readme-{secrets.token_hex(16)}"  # not guessable by other local users
        server = start_console_server(server_name)
    else:
        server_name, server = None, None
    try:
        run_blocks(blocks, scratch, bin_dir, log, server_name)
    finally:
        if server is not None:
            os.kill(server, signal.SIGTERM)
            os.waitpid(server, 0)
    return 0


def _runs_console_scripts(block: dict) -> bool:
    """Whether a bash block names a console script it does not stub (a miss only costs time: without the server
    the wrappers start fresh interpreters)."""
    stubs = block["directive"][1] if block["directive"] else []
    return block["lang"] == "bash" and any(
        name not in stubs and re.search(rf"(^|[\s;&|(]){re.escape(name)}\b", block["code"], re.MULTILINE)
        for name in CONSOLE_SCRIPTS
    )


def clone_entries() -> list[str]:
    """The clone's top-level files and folders that the scratch folder links to (not hidden ones, not outputs)."""
    return sorted(
        p.name for p in ROOT.iterdir() if not p.name.startswith(".") and p.name not in ALLOWED_OUTPUTS
    )


def run_readme(
    blocks: list[dict], tmp_path: Path, extra_env: dict | None = None, fresh_processes: bool = False
) -> subprocess.CompletedProcess:
    """Run ``blocks`` in a fresh interpreter whose caches live in ``tmp_path``; returns the finished process.
    One torch thread (``OMP_NUM_THREADS=1``): on tiny tensors two threads only add synchronisation, and on the
    shared 2-core machine they spin against each other (``mit-bench predict`` of the README: 138 s wall with two
    threads, 30 s with one, under load)."""
    scratch, home = tmp_path / "scratch", tmp_path / "home"
    scratch.mkdir(parents=True)
    (home / "tmp").mkdir(parents=True)
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
        "TMPDIR": str(home / "tmp"),  # the system temp folder, watched for folders the blocks leave behind
        "MIT_TALK_DEBUG": "1",  # a failing command shows its traceback here
        "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": "1",
        **(extra_env or {}),
    }
    command = [sys.executable, __file__, str(tmp_path / "blocks.json"), str(scratch), str(tmp_path / "bin"),
               str(tmp_path / "stubs.log"), "fresh" if fresh_processes else "server"]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)


if __name__ == "__main__":
    try:
        blocks_path, scratch_dir, bin_folder, stub_log, mode = sys.argv[1:6]
        exit_without_teardown(
            main(Path(blocks_path), Path(scratch_dir), Path(bin_folder), Path(stub_log), mode == "fresh")
        )
    except BecomeConsoleScript as command:  # a worker forked by the console server
        command.run_and_exit()


# ------------------------------------------------------------------------------------------------- tests

import pytest  # the script part above needs only the standard library

BLOCK_DONE = re.compile(r"^README\.md:\d+ \((python|bash)\) ran in ", re.MULTILINE)
#: Run after the README's blocks (its console scripts go through the same console server): a command runs where
#: the block's shell is, with its environment, writes to its redirections and returns its exit status, exactly as
#: a new interpreter does (``test_the_shell_probe_holds_for_fresh_interpreters`` checks the same without it).
SHELL_PROBE = {
    "lang": "bash",
    "line": 0,
    "directive": None,
    "code": "mkdir -p outputs/probe && cd outputs/probe\n"
    "MIT_TALK_DEBUG=0 mit-talking info no-such-dataset > out.txt 2> err.txt || echo $? > status.txt\n"
    "mit-talking info --help | head -n 1 > help.txt\n",
}


def _check_shell_probe(scratch: Path) -> None:
    probe = scratch / "outputs" / "probe"
    assert (probe / "status.txt").read_text() == "2\n"
    error = (probe / "err.txt").read_text().splitlines()
    assert (
        len(error) == 1 and error[0].startswith("mit-talking info: error:") and "no-such-dataset" in error[0]
    )
    assert (probe / "out.txt").read_text() == ""
    assert (probe / "help.txt").read_text().startswith("usage: mit-talking info")


def _check_whole_readme(tmp_path: Path, fresh_processes: bool) -> None:
    blocks = runnable_blocks(README.read_text())
    assert len(blocks) >= 8
    done = run_readme([*blocks, SHELL_PROBE], tmp_path, fresh_processes=fresh_processes)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert len(BLOCK_DONE.findall(done.stdout)) == len(blocks) + 1
    left = {p.name for p in (tmp_path / "scratch").iterdir()} - set(clone_entries())
    assert left <= ALLOWED_OUTPUTS, f"README blocks wrote outside outputs/: {sorted(left - ALLOWED_OUTPUTS)}"
    # tempfile.mkdtemp() folders left in the system temp folder (an example's 20 MB per run, never removed)
    leaked = sorted(p.name for p in (tmp_path / "home" / "tmp").iterdir() if p.name.startswith("tmp"))
    assert not leaked, f"README blocks left temporary folders behind: {leaked}"
    assert "/outputs/" in (ROOT / ".gitignore").read_text().splitlines()
    _check_shell_probe(tmp_path / "scratch")


def test_every_readme_block_runs_and_leaves_only_outputs(tmp_path):
    _check_whole_readme(tmp_path, fresh_processes=False)


@pytest.mark.slow
def test_every_readme_block_runs_with_a_fresh_interpreter_per_command(tmp_path):
    """The same without the console server: each console script a new interpreter, as in a user's shell."""
    _check_whole_readme(tmp_path, fresh_processes=True)


@pytest.mark.slow
def test_the_shell_probe_holds_for_fresh_interpreters(tmp_path):
    done = run_readme([SHELL_PROBE], tmp_path, fresh_processes=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_shell_probe(tmp_path / "scratch")


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


OTHER_USER_PROBE = """import json, os, signal, socket, struct, sys
sys.path.insert(0, sys.argv[1])
from test_readme import start_console_server

marker, name = sys.argv[2], "mit-talk-readme-probe-" + os.urandom(8).hex()
server = start_console_server(name)
child = os.fork()
if child == 0:  # another user on the machine asks the server to run a command
    os.setgid(65534)
    os.setuid(65534)
    request = json.dumps({"program": "mit-talking", "argv": ["synth", "--out", marker, "--num-clips", "1"],
                          "cwd": "/", "env": dict(os.environ)}).encode()
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect("\\0" + name)
        try:
            socket.send_fds(conn, [struct.pack("!Q", len(request))], [0, 1, 2])
            conn.sendall(request)
            reply = conn.recv(8)
        except ConnectionError:  # closed unread: refused
            reply = b""
        os._exit(0 if reply == b"" else 3)
status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
os.kill(server, signal.SIGTERM)
os.waitpid(server, 0)
sys.exit(status)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user id needs root")
def test_the_console_server_runs_nothing_for_another_user(tmp_path):
    # The server runs commands as its own user: one for anybody who can reach the socket would be a way in.
    marker = tmp_path / "written-for-another-user"
    probe = subprocess.run(
        [sys.executable, "-c", OTHER_USER_PROBE, str(Path(__file__).parent), str(marker)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert not marker.exists()
