"""docs/tutorial.ipynb runs end to end in a real Jupyter kernel and prints what it promises.

The notebook is executed by nbclient with the ``python3`` kernel of this virtualenv's
ipykernel (its kernel runs ``sys.executable``, so the same environment as the tests).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"


def _stdout(cell: dict[str, object]) -> str:
    outputs = cell.get("outputs") or []
    assert isinstance(outputs, list)
    return "".join(str(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")


def test_tutorial_notebook_runs(tmp_path: Path) -> None:
    import nbclient
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), (
        "commit the notebook with its outputs cleared"
    )
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=240,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    printed = "\n".join(_stdout(c) for c in notebook.cells if c.cell_type == "code")
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    assert "parties: city-general, riverside, st-mary" in printed
    # The two datasets' published policies and declared categories.
    categories = "{'region': ['north', 'south', 'east', 'west'], 'smoker': ['no', 'yes']}"
    assert f"patients: cohort, exact_filters=True, {categories}" in printed
    assert f"patients_dp: dp-only, exact_filters=False, {categories}" in printed
    assert "patients: 950" in printed
    # count, mean/variance, histogram, filtered+grouped mean, correlation, median
    assert printed.count("matches pandas: True") == 6
    # contingency table with chi-square, Welch's t-test
    assert printed.count("matches scipy: True") == 2
    assert "matches pandas: False" not in printed
    assert "matches scipy: False" not in printed
    assert "mean BMI of patients aged 40+, by region:" in printed
    assert "refused: " in printed and "is dp-only at party" in printed
    assert "answered (unexpected)" not in printed
    assert "epsilon spent: 1 at delta 1e-06" in printed
    assert "epsilon spent: 2 for all 4 regions" in printed
    # DP mean, grouped DP mean, DP median (bounds hold with probability >= 95% each; the
    # stated bounds are conservative: the errors seen are under 60% of them)
    assert printed.count("within the bound: True") == 3
    assert "within the bound: False" not in printed
    assert printed.count("epsilon left ") == 3
    assert "chi2 = " in printed and "dof = 1," in printed
    assert "median BMI: " in printed and "DP median BMI: " in printed
    assert "BMI, non-smokers minus smokers: " in printed
    assert "hold-out accuracy: 0." in printed
    assert "probabilities increase with risk: True" in printed
    assert printed.rstrip().endswith("stopped")


def test_tutorial_predicts_with_the_result_methods() -> None:
    """The notebook predicts with ``TrainResult.predict``/``predict_class``, not internals."""
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "mpc.training" not in source
    assert "model.predict(" in source and "model.predict_class(" in source
    assert "exact_filters=" in source and "categories=CATEGORIES" in source
    assert "budget=" in source
