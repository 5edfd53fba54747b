"""``covog train``: train CovOG from a YAML config, alone or under ``accelerate launch``.

    covog train --config training/configs/stage1.yaml [--resume latest] [--lora-rank R] [KEY=VALUE ...]
    accelerate launch --num_processes 8 -m training.cli --config training/configs/stage2.yaml

``add_train_command(subparsers)`` adds the command to a parser (the ``covog`` console script of
:mod:`mit_talk.cli` composes it); ``main(argv)`` runs it without the console script, which is what
``accelerate launch -m training.cli`` calls. Overrides are dotted config keys, e.g. ``training.max_steps=100
data.dataset=mit-talking``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """Train CovOG from a YAML config (training/configs/: stage1, stage2, tiny-stage1, tiny-stage2).

  covog train --config training/configs/stage1.yaml [--resume latest] [--lora-rank R] [KEY=VALUE ...]
  accelerate launch --num_processes 8 -m training.cli --config training/configs/stage2.yaml

The run folder (output.dir) receives checkpoints/, logs/ (tensorboard), validation/ videos and, at the end,
pipeline/ (CovOGPipeline.save_pretrained, with a model card) or lora/ (adapter weights)."""


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        help="training config YAML: a file, or a packaged config by name (stage1, stage2, tiny-stage1, tiny-stage2)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        help="'latest' (the newest complete checkpoint of output.dir; a fresh start when there is none) or a "
        "checkpoint folder (default: a fresh start)",
    )
    parser.add_argument(
        "--lora-rank",
        type=int,
        default=None,
        help="train LoRA adapters of this rank on the UNets' attention instead of the stage's components "
        "(default: no LoRA)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides with dotted keys, e.g. training.max_steps=100 output.dir=runs/x",
    )
    parser.set_defaults(run=run_train)
    return parser


def add_train_command(subparsers) -> None:
    """Add ``train`` to ``subparsers`` (sets ``run``)."""
    _configure(
        subparsers.add_parser(
            "train",
            help="train CovOG (stage 1, stage 2 or LoRA) with accelerate",
            description=DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )


def run_train(args) -> int:
    from .config import load_config
    from .loop import train

    overrides = list(args.overrides)
    if args.lora_rank is not None:
        overrides.append(f"model.lora_rank={args.lora_rank}")
    config = load_config(args.config, overrides)
    command = " ".join(
        ["covog train", *sys.argv[1:]] if sys.argv[1:2] != ["train"] else ["covog", *sys.argv[1:]]
    )
    result = train(config, resume=args.resume, command=command)
    if result.get("saved"):
        print(
            f"trained {result['steps']} steps (final loss {result['final_loss']:.5f}); wrote {result['saved']}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m training.cli --config X.yaml ...`` (errors: the console scripts' rule,
    :func:`mit_dataset.console.run_command`: one line on stderr, exit status 2)."""
    from mit_dataset.console import run_command

    parser = argparse.ArgumentParser(
        prog="covog train", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    args = _configure(parser).parse_args(argv)
    return run_command("covog train", lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
