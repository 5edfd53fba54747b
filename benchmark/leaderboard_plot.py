"""The leaderboard figure: one bar panel per metric (SSIM, PSNR, FVD, speaker sync) for the ranked table cell.

Rendered to PNG bytes in memory (:func:`render_png`) so that the leaderboard writes its files only once every
output exists. Labels are user-supplied model names: they are drawn with matplotlib's ``text.parse_math`` off
(a ``$`` in a name is a dollar sign, not mathtext that can fail to parse) after :func:`benchmark.escaping.plot_text`.
Value labels sit above positive bars and below negative ones, inside axes padded so they never touch a spine.
"""

from __future__ import annotations

import io
import math

from .escaping import plot_text
from .scoring import METRIC_LABELS, METRICS, SUBSET_LABELS

#: Panels, in order, when the metric is on the board.
PLOTTED = ("ssim", "psnr", "fvd", "speaker_sync")
#: Space above / below the bars for their value labels, as a fraction of the value span.
HEADROOM = 0.22
VERIFIED_COLOR, SELF_REPORTED_COLOR, PARTIAL_COLOR = "#2a7ab0", "#9ab8cc", "#c44"


def _limits(values: list[float]) -> tuple[float, float]:
    """y limits that hold every bar (from 0) and its label."""
    low, high = min([0.0, *values]), max([0.0, *values])
    span = (high - low) or 1.0
    return low - (HEADROOM * span if low < 0 else 0.0), high + HEADROOM * span


def draw_figure(board):
    """The matplotlib figure of ``board`` (a :class:`benchmark.leaderboard.Leaderboard`); close it with
    :func:`close`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in PLOTTED if m in board.metrics] or ["ssim"]
    names = [plot_text(entry.name) for entry in board.entries]
    colors = [
        PARTIAL_COLOR if e.partial else VERIFIED_COLOR if e.verified else SELF_REPORTED_COLOR
        for e in board.entries
    ]
    width = max(3.2, 0.45 * len(names) + 1.2)
    # Text objects read text.parse_math when they are created: every label below is drawn literally.
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        fig, axes = plt.subplots(1, len(shown), figsize=(width * len(shown), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], shown):
            values = [board.cell(e).get(metric) for e in board.entries]
            heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
            bars = ax.bar(range(len(names)), heights, color=colors)
            ax.bar_label(
                bars, labels=["n/a" if v is None else f"{v:.3g}" for v in values], padding=2, fontsize=7
            )
            ax.set_ylim(*_limits(heights))
            ax.axhline(0.0, color="0.3", linewidth=0.6)
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
            ax.set_title(METRIC_LABELS[metric] + (" ↑" if METRICS[metric] else " ↓"), fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
        fig.suptitle(
            f"MIT test, {board.difficulty} / {SUBSET_LABELS[board.subset]}  "
            "(dark: verified, light: self-reported, red: partial)",
            fontsize=9,
        )
        fig.tight_layout()
    return fig


def close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def render_png(board, dpi: int = 110) -> bytes:
    """PNG bytes of ``board``'s figure."""
    figure = draw_figure(board)
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        close(figure)
    return buffer.getvalue()
