"""The training curve as a PNG: loss per round, and the final evaluation metrics if any.

matplotlib is optional (``pip install 'mpc[plot]'``) and imported only here, when a plot is
asked for; :func:`require_matplotlib` lets a caller fail before a long run rather than after.
Drawing uses the Agg canvas directly (no pyplot), so it never changes a caller's backend.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

from mpc.errors import ConfigError

MISSING = "writing a plot needs matplotlib: pip install 'mpc[plot]' (or matplotlib>=3.8)"


def require_matplotlib() -> None:
    """Raise :class:`ConfigError` saying how to install matplotlib when it is missing."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(MISSING)


def plot_curve(
    curve: Sequence[Mapping[str, float]],
    path: str | Path,
    *,
    evaluation: Mapping[str, float | None] | None = None,
    title: str = "training curve",
) -> Path:
    """Write the loss per round (and the evaluation, when given) to ``path`` as PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(MISSING) from None
    figure = Figure(figsize=(7.0, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    rounds = [float(point.get("round", i + 1)) for i, point in enumerate(curve)]
    losses = [float(point["loss"]) for point in curve]
    if curve:
        axes.plot(rounds, losses, marker="o", markersize=3, label="training objective")
    metrics = {k: v for k, v in (evaluation or {}).items() if v is not None}
    x_end = rounds[-1] if rounds else 1.0
    for key, style in (("train_loss", "--"), ("holdout_loss", ":")):
        if key in metrics:
            value = float(metrics[key])
            axes.axhline(value, linestyle=style, color="gray", linewidth=1)
            axes.annotate(f"{key} {value:.4g}", (x_end, value), fontsize=8, ha="right")
    shown = [
        f"{k} {float(v):.4g}"
        for k, v in metrics.items()
        if k.endswith(("accuracy", "rmse", "r2")) and not k.endswith("rows")
    ]
    axes.set_title(title + (f" ({', '.join(shown)})" if shown else ""), fontsize=10)
    axes.set_xlabel("round")
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)
    if curve:
        axes.legend(fontsize=8)
    out = Path(path)
    figure.savefig(out, format="png")
    return out
