"""Helpers shared by tests (importable as ``tests.helpers``)."""

from __future__ import annotations

from pathlib import Path

from mpc.identity import Identity, load_identity

PARTIES = ["a", "b", "c", "d", "e"]


def identity(cert_dir: Path, name: str) -> Identity:
    return load_identity(cert_dir / "ca.pem", cert_dir / f"{name}.pem", cert_dir / f"{name}.key")
