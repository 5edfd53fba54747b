"""The ``mit-bench`` commands: validate, score and rank MIT benchmark submissions, and make them.

    mit-bench predict   --model DIR --dataset DIR_OR_ID --out PREDICTIONS_DIR [--eval-size 640x384]
    mit-bench validate  --dataset DIR_OR_ID --predictions PREDICTIONS_DIR [--eval-size 640x384]
    mit-bench evaluate  --dataset DIR_OR_ID --predictions PREDICTIONS_DIR --out results.json [--i3d I3D.pt]
                        [--model-card README.md] [--allow-partial] [--eval-size 640x384]
    mit-bench leaderboard SUBMISSIONS_DIR --out leaderboard.md|html [--dataset DIR_OR_ID]

``evaluate`` and ``predict`` spread their clips over processes: ``accelerate launch --multi_gpu ...`` on GPUs,
``torchrun --nproc_per_node N -m mit_talk.cli mit-bench ...`` on CPUs (the same numbers as one process).
Exit status: 0 on success, 1 when the submission/results had problems, 2 on bad arguments or input.
``add_commands`` adds the commands to a sub-parser set; the console script is composed in ``mit_talk.cli``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .protocol import PAPER_EVALUATION_SIZE, EvaluationSize
from .scoring import METRICS


def _evaluation_size(text: str) -> EvaluationSize:
    try:
        return EvaluationSize.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_evaluation_size(parser, what: str) -> None:
    parser.add_argument(
        "--eval-size",
        type=_evaluation_size,
        default=PAPER_EVALUATION_SIZE,
        metavar="WIDTHxHEIGHT",
        help=f"the evaluation size: {what} (default: %(default)s, the paper's); every video is scaled to cover "
        "it and centre-cropped",
    )


def _check_inputs(args) -> None:
    """Refuse a missing input folder with one line naming its argument, before anything runs or is written (a
    missing predictions folder is bad input, not a submission with every clip missing). ``--dataset`` is checked
    only when it is plainly a local path (absolute, ``./``, ``~``): a Hub id is ``owner/name``."""
    folders = {
        "--predictions": getattr(args, "predictions", None),
        "SUBMISSIONS": getattr(args, "submissions", None),
    }
    for argument, path in folders.items():
        if path is not None and not path.is_dir():
            state = "is not a folder" if path.exists() else "does not exist"
            raise ValueError(f"{argument} {str(path)!r} {state}: expected a folder")
    dataset = getattr(args, "dataset", None)
    if (
        isinstance(dataset, str)
        and dataset.startswith(("/", ".", "~"))
        and not Path(dataset).expanduser().exists()
    ):
        raise ValueError(f"--dataset {dataset!r} does not exist: expected a dataset folder or a Hub id")


def _add_predictions(parser) -> None:
    parser.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="folder with one <clip_id>.mp4 (or .npy) per test clip",
    )


def _add_dataset(parser) -> None:
    parser.add_argument("--dataset", required=True, help="MIT dataset folder or Hub id")
    parser.add_argument(
        "--config", default=None, help="dataset config: all (default), two_human, multi_human"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="datasets cache folder (default: the datasets library's)"
    )


def add_commands(sub) -> None:
    """Add ``evaluate``, ``validate``, ``predict`` and ``leaderboard`` to ``sub`` (each sets ``run``)."""
    evaluate = sub.add_parser("evaluate", help="validate and score a predictions folder (Table 2)")
    _add_dataset(evaluate)
    _add_predictions(evaluate)
    evaluate.add_argument("--out", type=Path, required=True, help="results JSON to write")
    evaluate.add_argument(
        "--i3d",
        default=None,
        help="I3D (Kinetics-400) file for FVD (default: $MIT_BENCH_I3D; "
        "without one FVD is skipped, and the table says so)",
    )
    evaluate.add_argument(
        "--trust-detector",
        action="store_true",
        help="run an I3D TorchScript file whose sha256 is not a verified detector's (TorchScript is code: "
        "only for files from a source you trust)",
    )
    evaluate.add_argument(
        "--consistency-model",
        default=None,
        help="local transformers image model folder for vbench_consistency, e.g. a saved facebook/dino-vitb16 "
        "(default: $MIT_BENCH_CONSISTENCY_MODEL; without one the metric is skipped, and the table says so)",
    )
    evaluate.add_argument(
        "--metrics", default=",".join(METRICS), help=f"comma-separated subset of {','.join(METRICS)}"
    )
    evaluate.add_argument(
        "--model-name",
        default="",
        help="name of the model in the table / model card (default: the model folder named in the "
        "predictions' predict_config.json, else 'submission')",
    )
    evaluate.add_argument(
        "--model-card",
        type=Path,
        default=None,
        help="write/update this model card (README.md; default: none)",
    )
    evaluate.add_argument("--dataset-id", default="mit-talking", help="Hub dataset id for the model card")
    evaluate.add_argument(
        "--allow-partial",
        action="store_true",
        help="write a model card from incomplete results, labelled PARTIAL",
    )
    _add_evaluation_size(evaluate, "predictions and ground truth are compared at this size")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=_evaluate)

    validate = sub.add_parser(
        "validate",
        help="check a predictions folder without scoring it: every file is decoded as evaluate decodes it, so "
        "a submission it accepts is scored completely",
    )
    _add_dataset(validate)
    _add_predictions(validate)
    _add_evaluation_size(validate, "predictions must be at this size or at their clip's own size")
    validate.set_defaults(run=_validate)

    predict = sub.add_parser("predict", help="run a CovOG pipeline on every test clip (resumable)")
    predict.add_argument("--model", type=Path, required=True, help="saved CovOGPipeline folder")
    _add_dataset(predict)
    predict.add_argument("--out", type=Path, required=True, help="predictions folder to fill")
    predict.add_argument("--steps", type=int, default=None, help="denoising steps (default: the pipeline's)")
    predict.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="classifier-free guidance scale, <= 1 turns guidance off (default: the pipeline's)",
    )
    predict.add_argument(
        "--seed", type=int, default=0, help="base seed; each clip's noise seed derives from it"
    )
    predict.add_argument(
        "--num-frames",
        type=int,
        default=None,
        help="generate only this many frames per clip (debugging: not a valid submission; default: all)",
    )
    _add_evaluation_size(predict, "predictions are written at this size")
    for side in ("height", "width"):
        predict.add_argument(
            f"--{side}",
            type=int,
            default=None,
            help=f"generation {side}, with --{'width' if side == 'height' else 'height'} (same aspect ratio as "
            "the evaluation size; default: the pipeline's own when it has that ratio, else the evaluation size's)",
        )
    predict.add_argument("--clips", default=None, help="comma-separated clip ids (default: all test clips)")
    predict.add_argument("--no-iad", action="store_true", help="ablation: Interactive Audio Driver off")
    predict.add_argument("--joint-pose", action="store_true", help="ablation: single joint pose guider")
    predict.add_argument("--device", default=None, help="torch device (default: accelerate's)")
    predict.add_argument("--overwrite", action="store_true", help="regenerate finished clips too")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(run=_predict)

    board = sub.add_parser(
        "leaderboard",
        help="check or re-score submissions (results files, prediction folders, zip/tar archives) and rank them "
        "into a markdown/HTML table + PNG plot",
    )
    board.add_argument(
        "submissions",
        type=Path,
        help="folder of results JSON files, prediction folders and zip/tar archives (one entry each)",
    )
    board.add_argument("--out", type=Path, required=True, help="leaderboard.md or leaderboard.html")
    board.add_argument(
        "--dataset",
        default=None,
        help="MIT dataset folder or Hub id: prediction submissions are re-scored on its test split (verified) "
        "and results files must match its test-set fingerprint (default: none; predictions are then rejected "
        "and results files must agree among themselves)",
    )
    board.add_argument("--config", default=None, help="dataset config: all (default), two_human, multi_human")
    board.add_argument(
        "--cache-dir", default=None, help="datasets cache folder (default: the datasets library's)"
    )
    board.add_argument(
        "--i3d", default=None, help="I3D file for FVD when re-scoring (default: $MIT_BENCH_I3D)"
    )
    board.add_argument(
        "--trust-detector", action="store_true", help="run an unverified I3D TorchScript file (it is code)"
    )
    _add_evaluation_size(board, "prediction submissions are re-scored at this size")
    board.add_argument(
        "--rank-by", default="ssim", choices=list(METRICS), help="metric that orders the table"
    )
    board.add_argument(
        "--difficulty",
        default="all",
        choices=["easy", "challenging", "all"],
        help="test set of the ranked cell",
    )
    board.add_argument(
        "--subset",
        default="all",
        choices=["two_human", "multi_human", "all"],
        help="subset of the ranked cell",
    )
    board.add_argument(
        "--allow-partial", action="store_true", help="show incomplete results, labelled PARTIAL"
    )
    board.add_argument("--verified-only", action="store_true", help="show only re-scored (verified) entries")
    board.set_defaults(run=_leaderboard)


def _evaluate(args) -> int:
    from mit_dataset.distributed import distributed_command

    from .model_card import PartialResultsError, write_model_card
    from .predict import model_name_from_manifest
    from .scoring import evaluate_submission

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"--metrics: unknown metric(s) {sorted(unknown)}, expected some of {list(METRICS)}")
    _check_inputs(args)
    with distributed_command() as state:
        results, report = evaluate_submission(
            args.dataset,
            args.predictions,
            config=args.config,
            metrics=metrics,
            i3d_path=args.i3d,
            trust_detector=args.trust_detector,
            model_name=args.model_name or model_name_from_manifest(args.predictions),
            state=state,
            progress=not args.no_progress,
            cache_dir=args.cache_dir,
            consistency_model=args.consistency_model,
            evaluation_size=args.eval_size,
        )
    if not state.is_main_process:
        return 0
    if report.problems:
        print(report.format(), file=sys.stderr)
    results.write_json(args.out)
    print(results.markdown())
    print(f"\nresults written to {args.out}")
    status = 0 if results.complete else 1
    if args.model_card:
        try:
            write_model_card(
                results, args.model_card, dataset_id=args.dataset_id, allow_partial=args.allow_partial
            )
            print(f"model card written to {args.model_card}")
        except PartialResultsError as error:
            print(f"mit-bench evaluate: {error}", file=sys.stderr)
            status = 1
    return status


def _validate(args) -> int:
    from .submission import clip_specs, load_test_split, validate_submission

    _check_inputs(args)
    report = validate_submission(
        args.predictions,
        clip_specs(load_test_split(args.dataset, args.config, args.cache_dir)),
        args.eval_size,
    )
    print(report.format())
    return 0 if report.ok else 1


def _predict(args) -> int:
    from mit_dataset.distributed import distributed_command

    from .predict import load_pipeline, predict_submission

    _check_inputs(args)
    with distributed_command() as state:
        pipeline = load_pipeline(args.model, device=args.device or state.device)
        # The per-clip bar stays; each clip's denoising bar is cleared when the clip is done.
        pipeline.set_progress_bar_config(disable=args.no_progress or not state.is_main_process, leave=False)
        summary = predict_submission(
            pipeline,
            args.dataset,
            args.out,
            config=args.config,
            cache_dir=args.cache_dir,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale,
            seed=args.seed,
            num_frames=args.num_frames,
            height=args.height,
            width=args.width,
            disable_iad=args.no_iad,
            joint_pose=args.joint_pose,
            clip_ids=args.clips.split(",") if args.clips else None,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            state=state,
            evaluation_size=args.eval_size,
        )
    if state.is_main_process:
        print(
            f"{len(summary.written)} clip(s) generated ({len(summary.redone)} replacing invalid files), "
            f"{len(summary.skipped)} already finished; predictions in {summary.out_dir}"
        )
    return 0


def _leaderboard(args) -> int:
    from .leaderboard import build_leaderboard, write_leaderboard

    _check_inputs(args)
    board = build_leaderboard(
        args.submissions,
        rank_by=args.rank_by,
        difficulty=args.difficulty,
        subset=args.subset,
        allow_partial=args.allow_partial,
        verified_only=args.verified_only,
        dataset=args.dataset,
        config=args.config,
        cache_dir=args.cache_dir,
        scoring={
            "i3d_path": args.i3d,
            "trust_detector": args.trust_detector,
            "evaluation_size": args.eval_size,
        },
        work_dir=args.out.parent,
    )
    out, plot = write_leaderboard(board, args.out)
    print(board.text())
    print(f"leaderboard written to {out} (plot: {plot})")
    if not board.entries:
        print("mit-bench leaderboard: no valid results file", file=sys.stderr)
        return 1
    return 0
