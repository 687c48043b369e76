"""The report's charts (matplotlib, Agg): grouped horizontal bars for the per-trigger, per-class
and per-range tables, and score histograms. Each function writes one PNG and returns its path;
an empty chart says so in the picture instead of showing empty axes.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

import numpy as np

#: Score histogram bins: 20 bins over [0, 1].
SCORE_BINS = np.linspace(0.0, 1.0, 21)
#: Bar colours per series, in order.
SERIES_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")
_DPI = 100
_F = TypeVar("_F", bound=Callable[..., Path])


def _plain_text(draw: _F) -> _F:
    """Draw with TeX math off: trigger, class and log names are text, a ``$`` in them is a dollar."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _empty(path: Path, title: str, message: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 1.6), dpi=_DPI)
    ax.axis("off")
    ax.set_title(title, fontsize=10, loc="left")
    ax.text(0.5, 0.4, message, ha="center", va="center", fontsize=10, color="#555555", transform=ax.transAxes)
    fig.savefig(path)
    plt.close(fig)
    return path


@_plain_text
def bar_chart(path: Path, categories: Sequence[str], series: Mapping[str, Sequence[int]], *, title: str, xlabel: str = "count") -> Path:
    """Grouped horizontal bars: one group per category (top to bottom in the given order),
    one bar per series with its value written at the bar's end.

    Args:
        categories: ``(K,)`` names.
        series: legend name -> ``(K,)`` counts.
    """
    path = Path(path)
    if not categories or not any(any(v) for v in series.values()):
        return _empty(path, title, "nothing to show: every count is 0")
    plt = _pyplot()
    count = len(series)
    height = 0.8 / count
    fig, ax = plt.subplots(figsize=(7.2, 0.9 + 0.22 * count * len(categories) + 0.25 * len(categories)), dpi=_DPI)
    rows = np.arange(len(categories))
    top = max(max(v) for v in series.values())
    for k, (name, values) in enumerate(series.items()):
        offsets = rows - 0.4 + height * (k + 0.5)
        bars = ax.barh(offsets, values, height=height * 0.92, color=SERIES_COLOURS[k % len(SERIES_COLOURS)], label=name)
        for bar, value in zip(bars, values):
            ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, str(value), va="center", fontsize=7)
    ax.set_yticks(rows, categories, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.12 + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@_plain_text
def score_histograms(path: Path, scores: Mapping[str, Sequence[float]], *, title: str, columns: int = 3) -> Path:
    """Small multiples: one histogram of scores in ``[0, 1]`` (:data:`SCORE_BINS`) per name.

    Args:
        scores: name (a trigger, or ``"cases"``) -> scores; NaN / inf are left out, and so are
            names without scores.
    """
    path = Path(path)
    scores = {name: [v for v in values if math.isfinite(v)] for name, values in scores.items()}
    scores = {name: values for name, values in scores.items() if values}
    if not scores:
        return _empty(path, title, "nothing to show: no scores")
    plt = _pyplot()
    columns = max(1, min(columns, len(scores)))
    rows = math.ceil(len(scores) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns + 0.6, 1.9 * rows + 0.6), dpi=_DPI, squeeze=False, sharex=True)
    for ax, (name, values) in zip(axes.flat, scores.items()):
        ax.hist(values, bins=SCORE_BINS, color=SERIES_COLOURS[0], edgecolor="white", linewidth=0.5)
        ax.set_title(f"{name} (n = {len(values)})", fontsize=8)
        ax.set_xlim(0.0, 1.0)
        ax.tick_params(labelsize=7)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(scores):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("score", fontsize=7)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["SCORE_BINS", "bar_chart", "score_histograms"]
