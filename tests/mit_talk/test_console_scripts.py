"""The three console scripts (``mit_talk.cli``): composition, one error rule, ``--debug``, layering."""

from __future__ import annotations

import argparse
import ast
import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mit_talk.cli import DEBUG_ENV, PROGRAMS, HelpFormatter, build_parser, run

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["mit_dataset", "covog_diffusers", "training", "benchmark", "mit_talk"]
# What each part may import from the project (DESIGN.md: data flows one way; the app layer sits on top).
ALLOWED = {
    "mit_dataset": {"mit_dataset"},
    "covog_diffusers": {"mit_dataset", "covog_diffusers"},
    "training": {"mit_dataset", "covog_diffusers", "training"},
    "benchmark": {"mit_dataset", "covog_diffusers", "benchmark"},
    "mit_talk": set(LAYERS),
}


def test_entry_points_name_the_app_layer():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = dict(
        line.replace(" ", "").split("=", 1)
        for line in setup["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    assert scripts == {
        "mit-talking": "mit_talk.cli:mit_talking",
        "covog": "mit_talk.cli:covog",
        "mit-bench": "mit_talk.cli:mit_bench",
    }
    assert "mit_talk*" in setup["options.packages.find"]["include"]


@pytest.mark.parametrize("part", LAYERS)
def test_no_part_imports_a_part_above_it(part):
    wrong = []
    for path in sorted((ROOT / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in LAYERS and top not in ALLOWED[part]:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_commands_of_each_program():
    commands = {
        program: set(build_parser(program)._subparsers._group_actions[0].choices) for program in PROGRAMS
    }
    assert {"synth", "export", "show", "demo"} <= commands["mit-talking"]
    assert {"create-tiny", "assemble", "generate"} <= commands["covog"]
    assert commands["mit-bench"] == {"evaluate", "validate", "predict", "leaderboard"}


def test_an_error_is_one_line_naming_the_input(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert run("mit-talking", ["export", str(missing), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("mit-talking export: error: ") and str(missing) in err
    assert "\n" not in err and "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, where):
    argv = ["export", str(tmp_path / "none"), "--out", str(tmp_path / "out")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(Exception, match="none"):
        run("mit-talking", argv)


def test_debug_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(Exception, match="none"):
        run("mit-talking", ["export", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    monkeypatch.setenv(DEBUG_ENV, "0")
    assert run("mit-talking", ["export", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2


def test_unexpected_errors_name_their_type(monkeypatch, capsys):
    def crash(args):
        raise ZeroDivisionError("division by zero")

    parser = build_parser("covog")
    monkeypatch.setattr("mit_talk.cli.build_parser", lambda program: parser)
    parser._subparsers._group_actions[0].choices["create-tiny"].set_defaults(run=crash)
    assert run("covog", ["create-tiny", "x"]) == 2
    assert capsys.readouterr().err == "covog create-tiny: error: ZeroDivisionError: division by zero\n"


def test_demo_command_runs_the_demo(tmp_path, monkeypatch):
    """The README's quick-start command reaches ``run_demo`` (which tests/mit_talk/test_demo.py runs end to end
    and CI's wheel check runs as ``mit-talking demo``) with its options and defaults."""
    calls = []
    monkeypatch.setattr("mit_talk.demo.run_demo", lambda out, seed: calls.append((out, seed)))
    assert run("mit-talking", ["demo", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert run("mit-talking", ["demo"]) == 0
    assert calls == [(tmp_path, 3), (Path("outputs/demo"), 0)]


def test_training_cli_main_follows_the_same_error_rule(tmp_path, capsys, monkeypatch):
    """``python -m training.cli`` (what ``accelerate launch`` runs) ends errors as the console scripts do."""
    from training.cli import main as train_main

    missing = tmp_path / "none.yaml"
    monkeypatch.setenv(DEBUG_ENV, "0")
    assert train_main(["--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("covog train: error: ") and str(missing) in err and err.count("\n") == 1
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="cannot read training config .*none.yaml"):
        train_main(["--config", str(missing)])


def test_python_dash_m_runs_a_program(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mit_talk.cli", "mit-bench", "validate", "--dataset", str(tmp_path / "x"),
         "--predictions", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("mit-bench validate: error: "), done.stderr
    assert done.stderr.count("\n") == 1


def _options(program: str):
    """(command, action, required) for every option of every command of ``program``."""
    parser = build_parser(program)
    for command, sub in parser._subparsers._group_actions[0].choices.items():
        grouped = {
            id(a) for group in sub._mutually_exclusive_groups if group.required for a in group._group_actions
        }
        for action in sub._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield command, action, action.required or id(action) in grouped


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_every_option_has_help_and_shows_its_default(program):
    flags = (argparse._StoreTrueAction, argparse._StoreFalseAction)
    missing = []
    for command, action, required in _options(program):
        text = HelpFormatter(program)._get_help_string(action)
        if not action.help:
            missing.append(f"{command} {action.option_strings[0]}: no help")
        elif not (required or isinstance(action, flags) or "default" in text):
            missing.append(f"{command} {action.option_strings[0]}: default not shown ({action.help!r})")
    assert not missing, "\n".join(missing)


def test_defaults_appear_in_the_help_output(capsys):
    with pytest.raises(SystemExit):
        run("mit-talking", ["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 12)" in text and "(default: 0)" in text and "(default: 256)" in text


def test_one_option_name_per_concept_across_commands():
    """The same concept has one spelling everywhere (e.g. --guidance-scale, never --guidance)."""
    names = {
        option
        for program in PROGRAMS
        for _, action, _ in _options(program)
        for option in action.option_strings
    }
    for alias, name in {
        "--guidance": "--guidance-scale",
        "--frames": "--num-frames",
        "--num-steps": "--steps",
    }.items():
        assert alias not in names, f"{alias} is spelled {name} elsewhere"
    assert "--guidance-scale" in names and "--num-frames" in names


@pytest.fixture(scope="module")
def raw_clip_folders(tmp_path_factory, synthetic_records) -> Path:
    from mit_dataset.clip_folder import write_clip_folders

    return write_clip_folders(synthetic_records[:1], tmp_path_factory.mktemp("raw") / "raw-clips")


@pytest.mark.parametrize(
    "program, argv",
    [
        ("mit-talking", ["info", "{raw}"]),
        ("mit-talking", ["show", "x", "--dataset", "{raw}", "--out", "{tmp}/show"]),
        ("mit-bench", ["validate", "--dataset", "{raw}", "--predictions", "{tmp}"]),
        ("mit-bench", ["validate", "--dataset", "{clip}", "--predictions", "{tmp}"]),
    ],
)
def test_clip_folders_given_as_a_dataset_say_so(raw_clip_folders, tmp_path, capsys, program, argv):
    """README's two folders mixed up (official clip folders where the Hub layout belongs): one line that names
    the folder and says to export it, not datasets' bare DatasetGenerationError."""
    clip = next(p for p in raw_clip_folders.iterdir() if p.is_dir())
    argv = [a.format(raw=raw_clip_folders, clip=clip, tmp=tmp_path) for a in argv]
    assert run(program, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "holds official clip folders, not a dataset folder" in err and "mit-talking export" in err
    assert "\n" not in err and "DatasetGenerationError" not in err


def test_every_dataset_loader_refuses_clip_folders(raw_clip_folders):
    from benchmark.submission import load_test_split
    from covog_diffusers.cli import find_clip
    from training.data import load_split

    loaders = [
        lambda: find_clip(str(raw_clip_folders), "x", None, None, None),
        lambda: load_split(str(raw_clip_folders), None, "train"),
        lambda: load_test_split(str(raw_clip_folders)),
    ]
    for load in loaders:
        with pytest.raises(ValueError, match="holds official clip folders"):
            load()


def test_unwritable_out_is_named_as_given(raw_clip_folders, tmp_path, capsys):
    """``export --out`` where nothing can be written: the error names ``--out``, not a ``.NAME.tmp~`` temporary."""
    (tmp_path / "file.txt").write_text("")
    for out, named in (("/proc/x", "/proc/x"), (tmp_path / "file.txt" / "out", tmp_path / "file.txt")):
        assert run("mit-talking", ["export", str(raw_clip_folders), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert f"'{named}'" in err and ".tmp~" not in err and "\n" not in err, err
