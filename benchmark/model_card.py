"""Benchmark results into a Hugging Face model card (``model-index`` via ``huggingface_hub.EvalResult``).

The Hub groups ``model-index`` results by task + dataset (type, config, split, revision), so each MIT subset
("two_human", "multi_human", "all") is one dataset config of the ``test`` split, and the difficulty
("easy", "challenging", "all") is the ``metric_config`` of each metric (also spelled out in its name).
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from mit_dataset.atomic import atomic_write_text

from .scoring import METRIC_LABELS, SUBSET_LABELS, BenchmarkResults

TASK_TYPE = "other"
TASK_NAME = "Multi-human talking video generation"
DEFAULT_DATASET_ID = "mit-talking"


class PartialResultsError(ValueError):
    """Results that do not cover the whole test split were about to be published as if they did."""


def refuse_partial(results: BenchmarkResults, what: str, allow_partial: bool) -> None:
    """Raise unless the results are complete or the caller explicitly allowed partial results."""
    if not results.complete and not allow_partial:
        raise PartialResultsError(
            f"refusing to write {what} from incomplete results ({results.status_line()}); fix the submission "
            "or pass --allow-partial to publish them clearly labelled as partial"
        )


def eval_results(results: BenchmarkResults, dataset_id: str = DEFAULT_DATASET_ID) -> list[EvalResult]:
    """One ``EvalResult`` per Table 2 cell and metric with a value (FVD carries its sample size N)."""
    partial = "" if results.complete else f", PARTIAL {results.num_scored}/{results.num_expected} clips"
    out = []
    for row in results.table:
        for metric in results.metrics:
            value = row.get(metric)
            if value is None:
                continue
            args = {"n_clips": row["n"], "evaluation_size": str(results.evaluation_size)}
            if metric == "fvd":
                args["n_features"] = row["fvd_n"]
            out.append(
                EvalResult(
                    task_type=TASK_TYPE,
                    task_name=TASK_NAME,
                    dataset_type=dataset_id,
                    dataset_name=f"MIT ({SUBSET_LABELS[row['subset']]})",
                    dataset_config=row["subset"],
                    dataset_split="test",
                    metric_type=metric,
                    metric_name=f"{METRIC_LABELS[metric]} ({row['difficulty']}{partial})",
                    metric_config=row["difficulty"],
                    metric_value=round(float(value), 4),
                    metric_args=args,
                    verified=False,
                )
            )
    return out


def _card_text(results: BenchmarkResults) -> str:
    lines = ["", "## MIT benchmark", ""]
    if not results.complete:
        lines += [
            f"> **Partial results**: {results.status_line()}. They are not comparable with complete results.",
            "",
        ]
    lines += [results.markdown(), ""]
    lines.append(
        f"- Evaluation size: {results.evaluation_size} (width x height): every generated and ground-truth video "
        "is scaled to cover it and centre-cropped before scoring; values at other sizes are not comparable."
    )
    for name, text in results.conventions.items():
        lines.append(f"- {METRIC_LABELS.get(name, name)}: {text}")
    lines.append("")
    return "\n".join(lines)


def write_model_card(
    results: BenchmarkResults,
    path: str | Path,
    *,
    model_name: str | None = None,
    dataset_id: str = DEFAULT_DATASET_ID,
    allow_partial: bool = False,
) -> Path:
    """Write (or update) the model card at ``path`` with the results' ``model-index``.

    An existing card keeps its other metadata and text: its MIT results are replaced and the benchmark
    section is appended. Incomplete results raise :class:`PartialResultsError` unless ``allow_partial``,
    and are then labelled "PARTIAL" in every metric name and in the text.
    """
    refuse_partial(results, "a model card", allow_partial)
    path = Path(path)
    name = model_name or results.model or "model"
    new = eval_results(results, dataset_id)
    if path.is_file():
        card = ModelCard.load(path)
        kept = [r for r in (card.data.eval_results or []) if r.dataset_type != dataset_id]
        card.data.eval_results = kept + new
        card.data.model_name = card.data.model_name or name
        card.text = _strip_section(card.text) + _card_text(results)
    else:
        data = ModelCardData(
            model_name=name,
            eval_results=new,
            datasets=[dataset_id],
            tags=["video-generation", "talking-head", "mit-benchmark"]
            + ([] if results.complete else ["partial"]),
        )
        card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {name}\n{_card_text(results)}")
    return atomic_write_text(path, str(card))


def _strip_section(text: str) -> str:
    """The card text without a previous "## MIT benchmark" section (it is rewritten, not duplicated)."""
    head, marker, rest = text.partition("\n## MIT benchmark\n")
    if not marker:
        return text.rstrip("\n") + "\n"
    _, next_heading, tail = rest.partition("\n## ")
    return head.rstrip("\n") + "\n" + (f"\n## {tail}" if next_heading else "")
