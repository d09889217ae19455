"""`mpc demo` end to end, as a new user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_with_five_parties_agrees_and_leaves_nothing_behind(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc",
            "demo",
            "--parties",
            "5",
            "--rows",
            "300",
            "--json",
            "--keep",
            str(keep),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True
    assert len(report["parties"]) == 5
    for check in report["checks"]:
        assert check["agree"]
        for key, plain in check["plaintext"].items():
            assert abs(check["secure"][key] - plain) <= check["tolerance"] + 1e-9 * abs(plain)
    # A client the data owners did not list is refused, and the party's audit log says so.
    assert report["refused"]["refused_as_expected"] is True
    assert "client 'guest' may not query dataset 'health'" in report["refused"]["error"]
    assert report["audit"]["intact"] is True
    assert report["audit"]["line"].startswith("refused sum on 'health' for client 'guest'")
    # Every server process the demo started has exited.
    for ready in keep.glob("*.ready"):
        pid = json.loads(ready.read_text())["pid"]
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"process {pid} left"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_demo_rejects_bad_arguments() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mpc", "demo", "--parties", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--parties must be between 2 and 26" in out.stderr
