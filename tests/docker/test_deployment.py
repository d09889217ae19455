"""A whole deployment from ``mpc compose``, run by docker-compose: queries and faults.

One deployment (coordinator + parties a, b, c as containers on the bundle's own networks) is
shared by the module; every fault test restores what it broke before it returns, also when
it fails. The client runs on the host against the coordinator's port on 127.0.0.1, exactly
as the README tells a user to. Needs a Docker engine and docker-compose (v1, Debian's
package, or the v2 plugin): skipped without them, an error under CI=true (see conftest.py).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from mpc.client import Client, QueryResult
from mpc.compose import (
    COMPOSE_FILE,
    CONTAINER_UID,
    Bundle,
    ComposeOptions,
    parse_compose_text,
    write_bundle,
)
from mpc.demo.synthetic_data import HEALTH_COLUMNS
from mpc.errors import JobFailedError, TransportError
from mpc.identity import init_certificates

if TYPE_CHECKING:
    from tests.docker.conftest import DockerTestEnv

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTIES = ("a", "b", "c")
ROWS = 300
# Small deadlines, so that the fault tests fail fast; the slack covers scheduling on 2 cores.
JOB_TIMEOUT = 8.0
RPC_TIMEOUT = 3.0
DEADLINE_SLACK = 4.0
RECOVERY_TIMEOUT = 45.0
LABEL_SESSION = "io.mpc.test.session"  # swept by conftest.py at the end of the session

DockerCli = Callable[..., subprocess.CompletedProcess[str]]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _compose_command() -> list[str] | None:
    """docker-compose v1 (what .ci/docker-setup.sh installs), else the v2 plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if probe.returncode == 0 else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Deployment:
    bundle: Bundle
    project: str
    compose_cmd: list[str]
    files: list[Path]
    docker: DockerCli

    @property
    def out(self) -> Path:
        return self.bundle.out

    @property
    def network(self) -> str:
        return f"{self.project}_parties"

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        proc = subprocess.run(
            [*self.compose_cmd, "-p", self.project, *files, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def container(self, service: str) -> str:
        """The id of a service's container (running or stopped)."""
        ids = self.compose("ps", "-q", service).stdout.split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return ids[0]

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.docker("inspect", container).stdout)
        return data[0]

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.bundle.coordinator_address, tls_dir=self.bundle.tls_dir, timeout=timeout)

    def logs(self) -> str:
        try:
            proc = self.compose("logs", "--no-color", "--timestamps", "--tail", "80", timeout=60)
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"
        return proc.stdout

    def wait_until_every_party_answers(self, timeout: float = RECOVERY_TIMEOUT) -> QueryResult:
        """Retry a count until it succeeds: gRPC reconnects with a short backoff."""
        deadline = time.monotonic() + timeout
        with self.client(timeout=30) as client:
            while True:
                try:
                    return client.count("health")
                except (JobFailedError, TransportError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)


def _sweep_project(docker: DockerCli, project: str) -> list[str]:
    """Remove whatever compose left of the project (it labels all it makes)."""
    errors: list[str] = []
    flt = f"label=com.docker.compose.project={project}"
    for kind, remove in (
        ("container", ["rm", "-f", "-v"]),
        ("network", ["network", "rm"]),
        ("volume", ["volume", "rm", "-f"]),
    ):
        listing = ["ps", "-aq"] if kind == "container" else [kind, "ls", "-q"]
        ids = docker(*listing, "--filter", flt, check=False).stdout.split()
        if ids:
            proc = docker(*remove, *ids, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr.strip())
    return errors


def _test_labels_override(out: Path, session: str) -> Path:
    """A second compose file that labels everything for conftest.py's end-of-session sweep."""
    spec = parse_compose_text((out / COMPOSE_FILE).read_text())
    labels = {LABEL_SESSION: session}
    # Compose merges services key by key but replaces top-level networks and volumes whole,
    # so those are repeated in full (else the parties' network would lose `internal`).
    override = {
        "version": spec["version"],
        "services": {name: {"labels": labels} for name in spec["services"]},
        "networks": {name: {**v, "labels": labels} for name, v in spec["networks"].items()},
        "volumes": {name: {**v, "labels": labels} for name, v in spec["volumes"].items()},
    }
    path = out / "compose.test-labels.yaml"
    path.write_text(json.dumps(override, indent=2))
    return path


def _hand_to_container_user(docker: DockerCli, image: str, keys: Sequence[Path]) -> None:
    """chown keys to uid 10001: directly as root, else through a root container."""
    if os.geteuid() == 0:
        for key in keys:
            os.chown(key, CONTAINER_UID, CONTAINER_UID)
        return
    folder = keys[0].parent
    assert all(key.parent == folder for key in keys)
    docker(
        "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "chown",
        "--volume", f"{folder}:/keys", image,
        f"{CONTAINER_UID}:{CONTAINER_UID}", *(f"/keys/{key.name}" for key in keys),
    )  # fmt: skip


@pytest.fixture(scope="module")
def compose_cmd(docker_engine: str) -> list[str]:
    command = _compose_command()
    if command is None:
        message = "docker-compose not installed (sudo bash .ci/docker-setup.sh installs it)"
        if _in_ci():
            pytest.fail(f"{message}; CI=true, so Docker tests must run", pytrace=False)
        pytest.skip(message)
    return command


@pytest.fixture(scope="module")
def deployment(
    compose_cmd: list[str],
    mpc_image: str,
    docker_session: str,
    docker_cli: DockerCli,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """``mpc compose --parties 3`` with short timeouts, up; torn down even on failure."""
    out = tmp_path_factory.mktemp("compose") / "bundle"
    options = ComposeOptions(
        parties=len(PARTIES),
        rows=ROWS,
        image=mpc_image,
        coordinator_port=_free_port(),
        job_timeout_seconds=JOB_TIMEOUT,
        rpc_timeout_seconds=RPC_TIMEOUT,
    )
    bundle = write_bundle(out, options)
    if not bundle.keys_handed_to_container_user:
        _hand_to_container_user(docker_cli, mpc_image, bundle.container_keys)
    deploy = Deployment(
        bundle=bundle,
        project=f"mpctest{uuid.uuid4().hex[:10]}",
        compose_cmd=compose_cmd,
        files=[bundle.compose_file, _test_labels_override(out, docker_session)],
        docker=docker_cli,
    )
    try:
        started = time.monotonic()
        try:
            deploy.compose("up", "-d")
            deploy.wait_until_every_party_answers(timeout=90)
        except BaseException:
            sys.stderr.write(f"\n----- compose logs {deploy.project} -----\n{deploy.logs()}\n")
            raise
        sys.stderr.write(f"\n[docker] deployment answering {time.monotonic() - started:.1f}s\n")
        yield deploy
    finally:
        try:
            deploy.compose("down", "--volumes", "--remove-orphans", "--timeout", "3")
        finally:
            errors = _sweep_project(docker_cli, deploy.project)
        if errors:
            pytest.fail("Docker cleanup failed:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[None]:
    """After a failed test, print the deployment's logs (shown with that test's failure)."""
    yield
    report = getattr(request.node, "_mpc_rep_call", None)  # kept by conftest.py
    if report is not None and report.failed:
        sys.stderr.write(f"\n----- compose logs {deployment.project} -----\n{deployment.logs()}\n")


# --- helpers -------------------------------------------------------------------------------


def _pooled(out: Path) -> dict[str, np.ndarray]:
    """Plaintext reference, straight from the parties' CSV files (what MPC never does)."""
    tables = []
    for pid in PARTIES:
        path = out / f"party-{pid}" / "data" / "health.csv"
        header = path.read_text().splitlines()[0].split(",")
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        tables.append(dict(zip(header, data.T, strict=True)))
    return {c: np.concatenate([t[c] for t in tables]) for c in tables[0]}


def _clipped(pooled: dict[str, np.ndarray], column: str) -> np.ndarray:
    lo, hi, _ = HEALTH_COLUMNS[column]
    return np.asarray(np.clip(pooled[column], lo, hi), dtype=np.float64)


def _assert_close(result: QueryResult, expected: dict[str, float]) -> None:
    secure = result.as_dict()
    assert sorted(secure) == sorted(expected)
    for key, value in expected.items():
        allowed = result.tolerance + 1e-9 * max(1.0, abs(value))
        assert abs(secure[key] - value) <= allowed, (key, secure[key], value)


def _failed_job(client: Client, *args: Any, **kwargs: Any) -> JobFailedError:
    with pytest.raises(JobFailedError) as info:
        client.query(*args, **kwargs)
    error = info.value
    # Nothing revealed: the failed job's result cannot be read either.
    with pytest.raises(JobFailedError):
        client.result(error.job_id)
    return error


def _stored_results_of_failed_jobs(deploy: Deployment) -> tuple[int, int]:
    """(failed jobs, failed jobs with a stored result) in the coordinator's SQLite."""
    code = (
        "import sqlite3; db = sqlite3.connect('/var/lib/mpc/coordinator.sqlite');"
        'rows = db.execute("SELECT results.vals IS NOT NULL FROM jobs LEFT JOIN results '
        "USING (job_id) WHERE state = 'failed'\")"
        ".fetchall(); print(len(rows), sum(r[0] for r in rows))"
    )
    proc = deploy.docker("exec", deploy.container("coordinator"), "python3", "-c", code)
    failed, with_result = proc.stdout.split()
    return int(failed), int(with_result)


# --- the deployment works ------------------------------------------------------------------


def test_compose_files_are_valid_for_docker_compose(
    deployment: Deployment, compose_cmd: list[str]
) -> None:
    """docker-compose itself accepts the generated file and the checked-in example."""
    for path in (deployment.bundle.compose_file, REPO_ROOT / "docker" / "compose.yaml"):
        proc = subprocess.run(
            [*compose_cmd, "-f", str(path), "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"{path}: {proc.stderr}"


def test_sum_count_mean_from_the_host_match_numpy(deployment: Deployment) -> None:
    pooled = _pooled(deployment.out)
    with deployment.client() as client:
        result = client.sum("health", ["age", "smoker"])
        _assert_close(result, {c: float(_clipped(pooled, c).sum()) for c in ("age", "smoker")})
        assert result.parties == PARTIES
        result = client.count("health")
        assert result.value == pooled["age"].size == sum(ROWS + 37 * i for i in range(3))
        columns = ["age", "bmi", "systolic_bp", "cholesterol"]
        result = client.mean("health", columns)
        _assert_close(result, {c: float(_clipped(pooled, c).mean()) for c in columns})
        result = client.mean("health", ["age"], bounds={"age": (18.0, 65.0)})
        _assert_close(result, {"age": float(np.clip(pooled["age"], 18, 65).mean())})


def test_the_printed_query_command_works(deployment: Deployment) -> None:
    """The last command `mpc compose` prints answers from the host (run with --json)."""
    words = shlex.split(deployment.bundle.next_commands()[-1])
    assert words[0] == "mpc"
    proc = subprocess.run(
        [sys.executable, "-m", "mpc", *words[1:], "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    pooled = _pooled(deployment.out)
    values = json.loads(proc.stdout)["values"]
    for column in ("age", "bmi"):
        assert abs(values[column] - _clipped(pooled, column).mean()) < 1e-4


def test_containers_are_isolated_and_locked_down(deployment: Deployment) -> None:
    network = deployment.inspect(deployment.network)  # docker inspect works for networks
    assert network["Internal"] is True, "parties must have no route off the host"
    for service in ("coordinator", *(f"party-{p}" for p in PARTIES)):
        info = deployment.inspect(deployment.container(service))
        name = service.removeprefix("party-")
        sources = {Path(m["Source"]).name for m in info["Mounts"] if m["Type"] == "bind"}
        keys = sorted(s for s in sources if s.endswith(".key"))
        assert keys == [f"{name}.key"], f"{service} mounts keys {keys}"
        assert all(not m["RW"] for m in info["Mounts"] if m["Type"] == "bind")
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        assert info["Config"]["User"] == "10001:10001"
        bindings = info["HostConfig"]["PortBindings"] or {}
        if service == "coordinator":
            assert [b["HostIp"] for b in bindings["50050/tcp"]] == ["127.0.0.1"]
        else:
            assert bindings == {}, f"{service} publishes {bindings}"
        proc = deployment.docker("exec", info["Id"], "ls", "/etc/mpc/tls")
        assert sorted(proc.stdout.split()) == sorted(["ca.pem", f"{name}.key", f"{name}.pem"])


# --- faults: each restores the deployment before it returns --------------------------------


def test_stopped_party_fails_the_job_naming_it_then_recovers(deployment: Deployment) -> None:
    party_b = deployment.container("party-b")
    deployment.docker("stop", "--time", "5", party_b, timeout=60)
    try:
        with deployment.client() as client:
            started = time.monotonic()
            error = _failed_job(client, "mean", "health", ["age"])
            assert time.monotonic() - started < JOB_TIMEOUT + DEADLINE_SLACK
        assert "party 'b'" in str(error), str(error)
        assert "unreachable" in str(error) or "deadline" in str(error), str(error)
        failed, with_result = _stored_results_of_failed_jobs(deployment)
        assert failed >= 1 and with_result == 0
    finally:
        deployment.docker("start", party_b)
    result = deployment.wait_until_every_party_answers()
    assert result.parties == PARTIES


def test_party_with_a_certificate_from_another_ca_is_refused(
    deployment: Deployment, docker_env: DockerTestEnv, tmp_path: Path
) -> None:
    """An impostor answering as party-b with a certificate of another CA: refused by TLS."""
    other = tmp_path / "other-ca"
    init_certificates(other, list(PARTIES))
    _hand_to_container_user(deployment.docker, docker_env.image, [other / "b.key"])
    out = deployment.out
    party_b = deployment.container("party-b")
    deployment.docker("stop", "--time", "5", party_b, timeout=60)
    impostor = None
    try:
        impostor = docker_env.start(
            "--log-level", "INFO", "party", "serve", "--config", "/etc/mpc/config.toml",
            role="impostor-b",
            network=deployment.network,
            aliases=["party-b"],
            mounts=[
                f"{out}/party-b/config.toml:/etc/mpc/config.toml:ro",
                f"{other}/ca.pem:/etc/mpc/tls/ca.pem:ro",
                f"{other}/b.pem:/etc/mpc/tls/b.pem:ro",
                f"{other}/b.key:/etc/mpc/tls/b.key:ro",
                f"{out}/party-b/data:/data:ro",
            ],
        )  # fmt: skip
        docker_env.wait_for_log(impostor, "listening on", timeout=60)
        with deployment.client() as client:
            error = _failed_job(client, "count", "health")
        assert "party 'b'" in str(error), str(error)
        assert "refused TLS" in str(error) or "unreachable" in str(error), str(error)
    finally:
        if impostor is not None:
            deployment.docker("rm", "--force", impostor, check=False)
        deployment.docker("start", party_b)
    deployment.wait_until_every_party_answers()


def test_party_cut_off_the_network_fails_the_job_within_its_deadline(
    deployment: Deployment,
) -> None:
    deployment.wait_until_every_party_answers()  # channels to every party are up
    party_b = deployment.container("party-b")
    deployment.docker("network", "disconnect", deployment.network, party_b)
    try:
        with deployment.client() as client:
            started = time.monotonic()
            error = _failed_job(client, "sum", "health", ["bmi"])
            elapsed = time.monotonic() - started
        assert elapsed < JOB_TIMEOUT + DEADLINE_SLACK, f"job failed only after {elapsed:.1f}s"
        assert "party 'b'" in str(error), str(error)
    finally:
        # `disconnect` dropped the service alias that the coordinator dials; give it back.
        deployment.docker("network", "connect", "--alias", "party-b", deployment.network, party_b)
    deployment.wait_until_every_party_answers()


def test_every_container_reports_healthy(deployment: Deployment) -> None:
    """The image's HEALTHCHECK (every 15 s) passes with the bundle's mounts and configs.

    Last but one: by now most containers have had their first check (party-b restarted
    during the fault tests, so it may still be starting).
    """
    deadline = time.monotonic() + 60
    for service in ("coordinator", *(f"party-{p}" for p in PARTIES)):
        container = deployment.container(service)
        while True:
            status = deployment.inspect(container)["State"]["Health"]["Status"]
            if status == "healthy":
                break
            assert status == "starting" and time.monotonic() < deadline, f"{service}: {status}"
            time.sleep(1)


def test_no_failed_job_stored_a_result(deployment: Deployment) -> None:
    failed, with_result = _stored_results_of_failed_jobs(deployment)
    assert failed >= 3, "the fault tests above each failed one job"
    assert with_result == 0
