"""Fixtures shared by every test: certificates made once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mpc.identity import init_certificates
from tests.helpers import PARTIES
from tests.pg import PgServer, start_server


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server (skips without the binaries; fails when CI=true)."""
    yield from start_server()
