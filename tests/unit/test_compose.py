"""``mpc compose``: the deployment bundle, the compose file, and bad input (no Docker needed).

The Docker tests (tests/docker/test_deployment.py) run the same bundle with docker-compose.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

from mpc import compose
from mpc.cli import main
from mpc.compose import (
    COMPOSE_FILE,
    CONTAINER_UID,
    ComposeOptions,
    compose_spec,
    compose_text,
    parse_compose_text,
    write_bundle,
)
from mpc.config import load_coordinator_config, load_party_config
from mpc.demo.synthetic_data import HEALTH_COLUMNS
from mpc.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO_ROOT / "docker" / "compose.yaml"
SMALL = ComposeOptions(parties=3, rows=20)


@pytest.fixture
def bundle_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 3-party bundle; chown is recorded, not done, so the test runs as any user."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "chown", lambda *args: None)
    out = tmp_path / "deploy"
    write_bundle(out, SMALL)
    return out


def _spec(out: Path) -> dict[str, Any]:
    return parse_compose_text((out / COMPOSE_FILE).read_text())


def _binds(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's bind mounts."""
    return {v["target"]: v["source"] for v in service["volumes"] if v["type"] == "bind"}


# --- the checked-in example ----------------------------------------------------------------


def test_checked_in_compose_file_is_what_the_generator_writes(tmp_path: Path) -> None:
    """docker/compose.yaml cannot drift: it is `mpc compose --parties 3` byte for byte.

    Regenerate with: .venv/bin/mpc compose --parties 3 --out /tmp/x && cp /tmp/x/compose.yaml
    docker/compose.yaml (host paths in it are relative, so the output folder does not matter).
    """
    assert CHECKED_IN.read_text() == compose_text(ComposeOptions())
    out = tmp_path / "somewhere" / "else"
    assert main(["compose", "--parties", "3", "--out", str(out), "--rows", "5", "--json"]) == 0
    assert (out / COMPOSE_FILE).read_text() == CHECKED_IN.read_text()


def test_compose_file_is_json_after_comment_lines() -> None:
    text = compose_text(ComposeOptions(parties=4, image="registry.example/mpc:1.2"))
    header = text.split("{", 1)[0].splitlines()
    assert header and all(line.startswith("# ") for line in header)
    assert "--parties 4 --image registry.example/mpc:1.2" in header[0]
    spec = parse_compose_text(text)
    assert spec == compose_spec(ComposeOptions(parties=4, image="registry.example/mpc:1.2"))
    assert spec["version"] == "3.8"  # docker-compose v1 (Debian's package) reads 3.8
    assert {s["image"] for s in spec["services"].values()} == {"registry.example/mpc:1.2"}


# --- layout and isolation ------------------------------------------------------------------


def test_bundle_has_every_file_and_configs_load(bundle_dir: Path) -> None:
    certs = bundle_dir / "certs"
    for name in ("ca", "coordinator", "a", "b", "c", "client"):
        assert (certs / f"{name}.pem").is_file() and (certs / f"{name}.key").is_file()
    coordinator = load_coordinator_config(bundle_dir / "coordinator" / "config.toml")
    assert coordinator.listen == "0.0.0.0:50050"
    assert coordinator.database == Path("/var/lib/mpc/coordinator.sqlite")
    assert [(p.party_id, p.address) for p in coordinator.parties] == [
        ("a", "party-a:50051"),
        ("b", "party-b:50051"),
        ("c", "party-c:50051"),
    ]
    for pid in ("a", "b", "c"):
        party = load_party_config(bundle_dir / f"party-{pid}" / "config.toml")
        assert party.party_id == pid
        assert party.listen == "0.0.0.0:50051"
        assert party.tls.key == Path(f"/etc/mpc/tls/{pid}.key")
        (dataset,) = party.datasets
        assert dataset.name == "health" and dataset.path == Path("/data/health.csv")
        assert {c.name: (c.lo, c.hi) for c in dataset.columns} == {
            c: (lo, hi) for c, (lo, hi, _) in HEALTH_COLUMNS.items()
        }
        assert (bundle_dir / f"party-{pid}" / "data" / "health.csv").is_file()


def test_each_container_mounts_only_its_own_files_read_only(bundle_dir: Path) -> None:
    services = _spec(bundle_dir)["services"]
    assert sorted(services) == ["coordinator", "party-a", "party-b", "party-c"]
    for pid in ("a", "b", "c"):
        assert _binds(services[f"party-{pid}"]) == {
            "/etc/mpc/config.toml": f"./party-{pid}/config.toml",
            "/etc/mpc/tls/ca.pem": "./certs/ca.pem",
            f"/etc/mpc/tls/{pid}.pem": f"./certs/{pid}.pem",
            f"/etc/mpc/tls/{pid}.key": f"./certs/{pid}.key",
            "/data": f"./party-{pid}/data",
        }
    assert _binds(services["coordinator"]) == {
        "/etc/mpc/config.toml": "./coordinator/config.toml",
        "/etc/mpc/tls/ca.pem": "./certs/ca.pem",
        "/etc/mpc/tls/coordinator.pem": "./certs/coordinator.pem",
        "/etc/mpc/tls/coordinator.key": "./certs/coordinator.key",
    }
    for name, service in services.items():
        binds = [v for v in service["volumes"] if v["type"] == "bind"]
        assert all(v["read_only"] for v in binds), name
        keys = [v["source"] for v in binds if v["source"].endswith(".key")]
        assert len(keys) == 1, f"{name} mounts {keys}"  # never ca.key, client.key or a peer's
        # Every mounted file exists, relative to the compose file's folder.
        for v in binds:
            assert (bundle_dir / v["source"]).exists(), v["source"]


def test_config_paths_are_the_mount_targets(bundle_dir: Path) -> None:
    """Inside each container, the config's TLS and data paths are exactly what is mounted."""
    services = _spec(bundle_dir)["services"]
    coordinator = load_coordinator_config(bundle_dir / "coordinator" / "config.toml")
    targets = set(_binds(services["coordinator"]))
    assert {str(p) for p in (coordinator.tls.ca, coordinator.tls.cert, coordinator.tls.key)} <= (
        targets
    )
    (db_volume,) = [v for v in services["coordinator"]["volumes"] if v["type"] == "volume"]
    assert PurePosixPath(coordinator.database).parent == PurePosixPath(db_volume["target"])
    for pid in ("a", "b", "c"):
        party = load_party_config(bundle_dir / f"party-{pid}" / "config.toml")
        targets = set(_binds(services[f"party-{pid}"]))
        assert {str(p) for p in (party.tls.ca, party.tls.cert, party.tls.key)} <= targets
        assert str(party.datasets[0].path.parent) in targets
        port = party.listen.rpartition(":")[2]
        assert coordinator.parties[("a", "b", "c").index(pid)].address == f"party-{pid}:{port}"


def test_networks_ports_volume_and_hardening() -> None:
    spec = compose_spec(ComposeOptions(parties=2, coordinator_port=51234))
    services = spec["services"]
    assert spec["networks"]["parties"] == {"driver": "bridge", "internal": True}
    assert services["coordinator"]["ports"] == ["127.0.0.1:51234:50050"]
    assert sorted(services["coordinator"]["networks"]) == ["frontend", "parties"]
    assert services["coordinator"]["depends_on"] == ["party-a", "party-b"]
    assert spec["volumes"] == {"coordinator-db": {}, "party-a-state": {}, "party-b-state": {}}
    for name, service in services.items():
        if name != "coordinator":
            assert "ports" not in service, "parties must not publish ports"
            assert service["networks"] == ["parties"]
        assert "healthcheck" not in service and "user" not in service  # both from the image
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["command"][-2:] == ["--config", "/etc/mpc/config.toml"]


def test_timeouts_reach_the_coordinator_config() -> None:
    text = compose.coordinator_config(
        ComposeOptions(job_timeout_seconds=8.0, rpc_timeout_seconds=3.0)
    )
    assert "job_timeout_seconds = 8.0" in text and "rpc_timeout_seconds = 3.0" in text


# --- data ----------------------------------------------------------------------------------


def test_synthetic_data_is_deterministic_and_in_bounds(bundle_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    write_bundle(other, ComposeOptions(parties=3, rows=20, coordinator_port=1))
    for index, pid in enumerate(("a", "b", "c")):
        path = bundle_dir / f"party-{pid}" / "data" / "health.csv"
        assert path.read_bytes() == (other / path.relative_to(bundle_dir)).read_bytes()
        header = path.read_text().splitlines()[0].split(",")
        assert header == list(HEALTH_COLUMNS)
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        assert data.shape == (20 + 37 * index, len(HEALTH_COLUMNS))
        for column, (lo, hi, _) in HEALTH_COLUMNS.items():
            values = data[:, header.index(column)]
            assert lo <= values.min() and values.max() <= hi
    a = (bundle_dir / "party-a" / "data" / "health.csv").read_bytes()
    assert a != (bundle_dir / "party-b" / "data" / "health.csv").read_bytes()


# --- keys ----------------------------------------------------------------------------------


def test_as_root_container_keys_go_to_uid_10001_and_stay_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chowned: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "chown", lambda p, u, g: chowned.append((Path(p).name, u, g)))
    bundle = write_bundle(tmp_path / "d", SMALL)
    names = ["coordinator.key", "a.key", "b.key", "c.key"]
    assert chowned == [(n, CONTAINER_UID, CONTAINER_UID) for n in names]
    assert bundle.chown_command() is None
    for key in (tmp_path / "d" / "certs").glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key  # ca.key and client.key included
    assert not any("chown" in c for c in bundle.next_commands())


def test_without_root_keys_stay_private_and_the_chown_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    out = tmp_path / "my deploy"  # a space: the printed commands must quote it
    assert main(["compose", "--out", str(out), "--rows", "5"]) == 0
    printed = capsys.readouterr().out
    lines = [line.strip() for line in printed.splitlines()]
    chown = next(line for line in lines if line.startswith("sudo chown 10001:10001 "))
    for name in ("coordinator", "a", "b", "c"):
        assert f"{out}/certs/{name}.key'" in chown
    assert "ca.key'" not in chown and "client.key" not in chown
    up = lines.index(f"docker-compose -f '{out}/compose.yaml' up -d")
    assert lines.index(chown) < up
    assert f"--coordinator 127.0.0.1:50050 --tls-dir '{out}/certs'" in lines[up + 1]
    for key in (out / "certs").glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.stat().st_uid == os.getuid()


def test_restrictive_umask_does_not_hide_configs_or_data_from_the_container_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    old = os.umask(0o077)
    try:
        write_bundle(tmp_path / "d", SMALL)
    finally:
        os.umask(old)
    out = tmp_path / "d"
    public = [out / COMPOSE_FILE, out / "coordinator" / "config.toml", out / "certs" / "ca.pem"]
    public += [out / "party-a" / "config.toml", out / "party-a" / "data" / "health.csv"]
    for path in public:
        assert path.stat().st_mode & 0o777 == 0o644, path
    for folder in (out / "coordinator", out / "party-a", out / "party-a" / "data"):
        assert folder.stat().st_mode & 0o777 == 0o755, folder
    for key in (out / "certs").glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key


def test_output_never_contains_key_material(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for extra in ([], ["--json"]):
        out = tmp_path / f"d{len(extra)}"
        assert main(["compose", "--out", str(out), "--rows", "5", *extra]) == 0
        printed = capsys.readouterr()
        text = printed.out + printed.err
        assert "PRIVATE KEY" not in text
        for key in (out / "certs").glob("*.key"):
            body = key.read_text().splitlines()[1]
            assert body not in text
    data = json.loads(text)
    assert data["parties"] == ["a", "b", "c"] and data["coordinator"] == "127.0.0.1:50050"
    assert data["rows"] == {"a": 5, "b": 42, "c": 79} and data["keys_owner_uid"] is None
    assert data["next"][-1].startswith("mpc query mean --dataset health")


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parties", "1"], "--parties must be between 2 and 26"),
        (["--parties", "27"], "--parties must be between 2 and 26"),
        (["--coordinator-port", "0"], "--coordinator-port must be between 1 and 65535"),
        (["--coordinator-port", "65536"], "--coordinator-port must be between 1 and 65535"),
        (["--rows", "0"], "--rows must be between 1"),
        (["--image", "mpc dev; rm -rf /"], "is not a Docker image reference"),
    ],
)
def test_bad_options_are_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "deploy"
    assert main(["compose", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_non_empty_out_needs_force_which_replaces_only_the_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deploy"
    assert main(["compose", "--out", str(out), "--parties", "4", "--rows", "5"]) == 0
    (out / "notes.txt").write_text("mine")
    old_ca = (out / "certs" / "ca.pem").read_bytes()
    capsys.readouterr()
    assert main(["compose", "--out", str(out), "--rows", "5"]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--force" in err
    assert (out / "certs" / "ca.pem").read_bytes() == old_ca  # untouched
    assert main(["compose", "--out", str(out), "--rows", "5", "--force"]) == 0
    assert (out / "certs" / "ca.pem").read_bytes() != old_ca
    assert not (out / "party-d").exists() and not (out / "certs" / "d.pem").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(_spec(out)["services"]) == ["coordinator", "party-a", "party-b", "party-c"]


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        write_bundle(path, SMALL, force=True)


def test_timeouts_are_validated() -> None:
    with pytest.raises(ConfigError, match="timeouts"):
        ComposeOptions(job_timeout_seconds=2.0, rpc_timeout_seconds=3.0).validate()
