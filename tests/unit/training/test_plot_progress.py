"""``mpc train`` progress lines and ``--plot``: the PNG, and the error without matplotlib."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from mpc.cli.train import TrainProgress
from mpc.coordinator.service import JobEvent
from mpc.coordinator.store import JobState
from mpc.errors import ConfigError
from mpc.training.plot import plot_curve, require_matplotlib

CURVE = [{"round": i + 1, "loss": 1.0 / (i + 1), "grad_norm": 0.1} for i in range(12)]


def _event(stage: str, message: str, progress: float) -> JobEvent:
    return JobEvent("job-1", JobState.RUNNING, stage, message, progress)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = plot_curve(
        CURVE,
        tmp_path / "curve.png",
        evaluation={"train_loss": 0.1, "holdout_loss": 0.2, "train_accuracy": 0.9, "x": None},
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    empty = plot_curve([], tmp_path / "empty.png")  # a closed-form model has no curve
    assert empty.read_bytes()[:4] == b"\x89PNG"


def test_missing_matplotlib_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(ConfigError, match=r"pip install 'mpc\[plot\]'"):
        require_matplotlib()
    with pytest.raises(ConfigError, match="needs matplotlib"):
        plot_curve(CURVE, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_progress_lines_per_round_on_stderr() -> None:
    stream = io.StringIO()
    progress = TrainProgress(stream, bar=False)
    progress(_event("moments", "secure sums of the features' moments", 0.05))
    for i in (1, 2, 3):
        progress(_event("round", f"round {i}/3 loss {1.0 / i:.6g}", 0.1 + 0.8 * i / 3))
    progress(_event("evaluate", "secure sums of the evaluation counts", 0.95))
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[1].startswith("round 1/3 loss 1 elapsed ") and lines[1].endswith("s")
    assert lines[3].startswith("round 3/3 loss 0.333333")


def test_progress_bar_and_quiet() -> None:
    stream = io.StringIO()
    bar = TrainProgress(stream, bar=True)
    bar(_event("round", "round 1/2 loss 0.5", 0.5))
    bar.finish()
    assert stream.getvalue().startswith("\r[############............] round: round 1/2 loss 0.5")
    assert stream.getvalue().endswith("\n")
    quiet_stream = io.StringIO()
    quiet = TrainProgress(quiet_stream, bar=False, enabled=False)
    quiet(_event("round", "round 1/2 loss 0.5", 0.5))
    quiet.finish()
    assert quiet_stream.getvalue() == ""
