"""Guard: DP and sharing code must not use a non-cryptographic random generator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
#: Every library module except the one that makes reproducible *synthetic demo data* (seeded
#: on purpose, nothing secret) and the generated protobuf code.
_EXEMPT = {REPO / "mpc" / "demo" / "synthetic_data.py"}
GUARDED = sorted(
    p
    for p in (REPO / "mpc").rglob("*.py")
    if p not in _EXEMPT and "proto" not in p.relative_to(REPO / "mpc").parts
)
_NUMPY_NAMES = {"np", "numpy"}


def forbidden_uses(source: str) -> list[str]:
    """Lines that import ``random`` or touch ``numpy.random`` in any spelling."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "random" or alias.name.startswith(("random.", "numpy.random")):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module == "random" or module.startswith(("random.", "numpy.random")):
                found.append(f"line {node.lineno}: from {module} import ...")
            if module == "numpy" and any(a.name == "random" for a in node.names):
                found.append(f"line {node.lineno}: from numpy import random")
        elif isinstance(node, ast.Attribute) and node.attr == "random":
            if isinstance(node.value, ast.Name) and node.value.id in _NUMPY_NAMES:
                found.append(f"line {node.lineno}: {node.value.id}.random")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and any(
                isinstance(a, ast.Constant) and a.value in ("random", "numpy.random")
                for a in node.args
            )
        ):
            found.append(f"line {node.lineno}: __import__ of a weak generator")
    return found


def test_guard_covers_the_dp_package() -> None:
    names = {p.name for p in GUARDED}
    assert {"samplers.py", "_csprng.py", "accountant.py", "sharing.py", "privacy.py"} <= names
    assert {"runtime.py", "secure_sum.py"} <= names


@pytest.mark.parametrize("path", GUARDED, ids=lambda p: str(p.relative_to(REPO)))
def test_no_weak_randomness(path: Path) -> None:
    assert forbidden_uses(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "bad",
    [
        "import random",
        "import random as r",
        "from random import randint",
        "import numpy.random",
        "from numpy.random import default_rng",
        "from numpy import random",
        "import numpy as np\nx = np.random.default_rng()",
        "import numpy\nnumpy.random.seed(1)",
        "m = __import__('random')",
    ],
)
def test_guard_catches_weak_randomness(bad: str) -> None:
    assert forbidden_uses(bad)


def test_guard_allows_the_csprng() -> None:
    assert forbidden_uses("import os, secrets\nos.urandom(8)\nsecrets.randbelow(3)") == []
