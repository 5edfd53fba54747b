"""The three console scripts, composed from the commands each part declares, with one error rule.

    mit-talking   the dataset commands of ``mit_dataset.cli`` + ``demo`` (every part end to end)
    covog         the model commands of ``covog_diffusers.cli`` (+ ``train`` from ``training``)
    mit-bench     the benchmark commands of ``benchmark.cli``

Each lower module only exposes ``add_commands(subparsers)``; every sub-parser it adds sets ``run`` (a function
of the parsed arguments returning an exit status or ``None`` for 0). This module sits above all of them, so the
data -> model -> training/benchmark flow never runs backwards.

Errors (:mod:`mit_dataset.console`, the rule ``python -m training.cli`` follows too): any exception a command
raises is printed as ONE line, ``PROGRAM COMMAND: error: MESSAGE`` on stderr, and the program exits with status 2
(1 stays "ran, but the submission/results had problems"; argparse also uses 2 for bad arguments). ``--debug``
(before or after the command) or ``MIT_TALK_DEBUG=1`` shows the traceback instead. Ctrl-C exits with 130 and no
traceback, a closed output pipe with 141 and no message.

``python -m mit_talk.cli PROGRAM ARGS...`` runs a program without its console script, e.g.
``torchrun --nproc_per_node 2 -m mit_talk.cli mit-bench evaluate ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mit_dataset.console import DEBUG_ENV, run_command

AddCommands = Callable[[argparse._SubParsersAction], None]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and appends ``(default: X)`` to every option whose help does not already
    say what its default is (``None`` / ``False`` defaults are left to the help text: "default: the
    pipeline's")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" not in text
            and action.option_strings
            and not any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))
            and not action.required
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose sub-parsers share the project's help formatter."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end demo: synthesize MIT, load it, show a clip, generate and score the test split",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/demo"), help="folder for everything it writes"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of the model")
    parser.set_defaults(run=_demo)


def _demo(args) -> None:
    from .demo import run_demo

    run_demo(args.out, seed=args.seed)


def _mit_talking_commands() -> list[AddCommands]:
    from mit_dataset.cli import add_commands

    return [add_commands, _add_demo]


def _covog_commands() -> list[AddCommands]:
    from covog_diffusers.cli import add_commands
    from training.cli import add_train_command
    from training.vae import add_train_vae_command

    return [add_commands, add_train_command, add_train_vae_command]


def _mit_bench_commands() -> list[AddCommands]:
    from benchmark.cli import add_commands

    return [add_commands]


PROGRAMS: dict[str, tuple[str, Callable[[], list[AddCommands]]]] = {
    "mit-talking": (
        "Make, export and inspect the MIT dataset; run the end-to-end demo.",
        _mit_talking_commands,
    ),
    "covog": ("Make, assemble and run CovOG pipelines.", _covog_commands),
    "mit-bench": ("Validate, score and rank MIT benchmark submissions, and make them.", _mit_bench_commands),
}


def build_parser(program: str) -> argparse.ArgumentParser:
    """The full parser of ``program`` (one of ``PROGRAMS``)."""
    description, commands = PROGRAMS[program]
    parser = _Parser(prog=program, description=description)
    debug_help = f"show the Python traceback of an error (or set {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in commands():
        add(subparsers)
    # --debug is also accepted after the command; SUPPRESS keeps the top-level value when it is absent there.
    for sub in subparsers.choices.values():
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def run(program: str, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` for ``program``, run the command, return the exit status (errors: one line, status 2;
    :func:`mit_dataset.console.run_command`)."""
    args = build_parser(program).parse_args(argv)
    return run_command(f"{program} {args.command}", lambda: args.run(args), debug=args.debug)


def mit_talking(argv: Sequence[str] | None = None) -> int:
    """Console script ``mit-talking``."""
    return run("mit-talking", argv)


def covog(argv: Sequence[str] | None = None) -> int:
    """Console script ``covog``."""
    return run("covog", argv)


def mit_bench(argv: Sequence[str] | None = None) -> int:
    """Console script ``mit-bench``."""
    return run("mit-bench", argv)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in PROGRAMS:
        sys.exit(f"usage: python -m mit_talk.cli {{{','.join(PROGRAMS)}}} ARGS...")
    sys.exit(run(sys.argv[1], sys.argv[2:]))
