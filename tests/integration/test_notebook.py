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
    assert "patients: 950" in printed
    assert printed.count("matches pandas: True") == 3
    assert "matches pandas: False" not in printed
    assert "epsilon spent: 1 at delta 1e-06" in printed
    assert "within the bound: True" in printed
    assert "hold-out accuracy: 0." in printed
    assert "probabilities increase with risk: True" in printed
    assert printed.rstrip().endswith("stopped")
