"""Fixtures shared by every test: certificates made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpc.identity import init_certificates
from tests.helpers import PARTIES


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    init_certificates(out, PARTIES)
    return out


@pytest.fixture(scope="session")
def other_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA with the same names: its certificates must be refused."""
    out = tmp_path_factory.mktemp("other-ca")
    init_certificates(out, PARTIES)
    return out
