from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mpc.cli import _parse_bounds, main
from mpc.config import load_coordinator_config, load_party_config
from mpc.errors import ConfigError, InputDataError, QueryError


def test_bounds_parsing() -> None:
    assert _parse_bounds(["0:120"], ["age", "bmi"]) == {"age": (0, 120), "bmi": (0, 120)}
    assert _parse_bounds(["bmi=10:60", "-5:5"], ["x"]) == {"bmi": (10, 60), "x": (-5, 5)}
    with pytest.raises(QueryError, match="LO must not exceed HI"):
        _parse_bounds(["5:1"], ["x"])
    with pytest.raises(QueryError, match="expected LO:HI"):
        _parse_bounds(["abc"], ["x"])
    with pytest.raises(QueryError, match="finite"):
        _parse_bounds(["0:inf"], ["x"])


def test_help_explains_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mpc", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("certs", "party", "coordinator", "query", "parties", "health", "demo"):
        assert command in out
    query_help = subprocess.run(
        [sys.executable, "-m", "mpc", "query", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--json" in query_help and "--bounds" in query_help


def test_certs_init_writes_private_keys_0600(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", "--out", str(tmp_path), "--parties", "a,b", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert str(tmp_path / "a.key") in files
    for key in tmp_path.glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600
    assert main(["certs", "init", "--out", str(tmp_path), "--parties", "a,b"]) == 2
    assert "--force" in capsys.readouterr().err


def test_certs_init_rejects_bad_party_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", "--out", str(tmp_path), "--parties", "Bad_Id"]) == 2
    assert "invalid party id" in capsys.readouterr().err


def test_config_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "party.toml"
    path.write_text('id = "a"\nlisten = "nope"\n[tls]\nca="x"\ncert="y"\nkey="z"\n[datasets]\n')
    with pytest.raises(ConfigError, match="HOST:PORT"):
        load_party_config(path)
    path.write_text('id = "a"\nlisten = "127.0.0.1:1"\n[datasets]\n')
    with pytest.raises(ConfigError, match="missing required key 'tls'"):
        load_party_config(path)
    path.write_text("not toml [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_party_config(path)
    path.write_text(
        'id = "a"\nlisten = "127.0.0.1:1"\n[tls]\nca="x"\ncert="y"\nkey="z"\n'
        '[datasets.d]\npath="d.csv"\nmax_rows=5\n[datasets.d.columns.age]\nlo=5\nhi=1\n'
    )
    with pytest.raises(ConfigError, match="lo must not exceed hi"):
        load_party_config(path)
    coordinator = tmp_path / "coordinator.toml"
    coordinator.write_text(
        'listen = "127.0.0.1:0"\ndatabase = "c.db"\n[tls]\nca="x"\ncert="y"\nkey="z"\n'
        '[[parties]]\nid = "a"\naddress = "127.0.0.1:1"\n'
    )
    with pytest.raises(ConfigError, match="at least two parties"):
        load_coordinator_config(coordinator)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "party.toml"
    path.write_text(
        'id = "a"\nlisten = "127.0.0.1:1"\n[tls]\nca="certs/ca.pem"\ncert="certs/a.pem"\n'
        'key="certs/a.key"\n[datasets.d]\npath="data/d.csv"\nmax_rows=5\n'
    )
    config = load_party_config(path)
    assert config.tls.ca == tmp_path / "certs" / "ca.pem"
    assert config.datasets[0].path == tmp_path / "data" / "d.csv"


def test_read_csv_header_for_mpc_predict(tmp_path: Path) -> None:
    """``mpc predict`` reads the operator's own file locally, so its errors name the path."""
    from mpc.cli.train import read_csv_header

    def write(path: Path, text: str) -> Path:
        path.write_text(text)
        return path

    assert read_csv_header(write(tmp_path / "a.csv", " age , bmi\n1,2\n")) == ["age", "bmi"]
    with pytest.raises(InputDataError, match="is empty"):
        read_csv_header(write(tmp_path / "b.csv", ""))
    with pytest.raises(InputDataError, match="names a column twice"):
        read_csv_header(write(tmp_path / "c.csv", "a,a\n"))
