"""Fixtures for the Docker integration tests (marker ``docker``).

Engine policy
    If no Docker engine answers, these tests FAIL when ``CI=true`` (CI must
    never silently skip them) and are skipped otherwise, with a hint:
    ``sudo bash .ci/docker-setup.sh`` installs and starts one.

Fixtures
    ``docker_engine``  (session) the engine's server version; fails/skips as above.
    ``mpc_image``      (session) the image under test, built once per session by
                       ``docker/build-image.sh`` (tag ``mpc:test``; Docker's layer
                       cache makes a rebuild fast).  Set ``MPC_TEST_IMAGE=TAG`` to
                       test an already built image instead.
    ``docker_env``     (function) a :class:`DockerTestEnv`: uniquely named
                       networks, volumes and containers, all labelled and all
                       removed at teardown, also when the test failed (the logs of
                       its containers are printed then).

Every resource carries the labels ``io.mpc.test.session`` and
``io.mpc.test.env``; a sweep at the end of the session removes whatever a
crashed test left behind.  Only the ``docker`` CLI is used (no Python SDK).

Containers get ``--network none`` unless a network is asked for, and
:meth:`DockerTestEnv.network` makes ``--internal`` networks by default: test
traffic stays between the test's own containers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "docker" / "build-image.sh"
SETUP_HINT = "sudo bash .ci/docker-setup.sh"
DEFAULT_TEST_TAG = "mpc:test"
# Per-test timeout for tests in this directory that set none: the first test
# of a session also pays for the image build.
DOCKER_TEST_TIMEOUT = 900
BUILD_TIMEOUT = 1200

LABEL_SESSION = "io.mpc.test.session"
LABEL_ENV = "io.mpc.test.env"
SESSION_ID = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

_HERE = Path(__file__).resolve().parent


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


class DockerError(RuntimeError):
    """A docker CLI command failed."""

    def __init__(self, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.proc = proc
        super().__init__(
            f"`docker {' '.join(args)}` exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )


def docker(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; capture text output; raise DockerError if check and rc != 0."""
    proc = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        raise DockerError(args, proc)
    return proc


@pytest.fixture(scope="session")
def docker_cli(docker_engine: str) -> Any:
    """The :func:`docker` helper, for tests (importing from conftest is fragile)."""
    return docker


# ----------------------------------------------------------------- collection


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/docker/ is a ``docker`` test with a generous timeout."""
    has_timeout = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if _HERE not in Path(str(item.path)).resolve().parents:
            continue
        if item.get_closest_marker("docker") is None:
            item.add_marker(pytest.mark.docker)
        if has_timeout and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DOCKER_TEST_TIMEOUT))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item so teardown knows whether the test failed."""
    report = yield
    setattr(item, f"_mpc_rep_{report.when}", report)
    return report


# ------------------------------------------------------------------- engine


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        proc = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if proc.returncode != 0 or not proc.stdout.strip():
        detail = (proc.stderr or proc.stdout).strip()[-500:].rstrip(".")
        return f"`docker info` failed: {detail}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The Docker engine's version; FAIL under CI=true, skip elsewhere, when absent."""
    problem = _engine_problem()
    if problem is not None:
        if in_ci():
            pytest.fail(
                f"Docker engine not reachable: {problem}. CI=true, so Docker tests must run, "
                f"not be skipped: .ci/run must call `bash .ci/docker-setup.sh` first.",
                pytrace=False,
            )
        pytest.skip(f"Docker engine not reachable ({problem}); to run these tests: {SETUP_HINT}")
    return docker("info", "--format", "{{.ServerVersion}}").stdout.strip()


@pytest.fixture(scope="session")
def docker_session(docker_engine: str) -> Iterator[str]:
    """The session id in every resource's labels; sweeps leftovers at session end."""
    yield SESSION_ID
    _remove_labelled(f"{LABEL_SESSION}={SESSION_ID}")


def _remove_labelled(label: str) -> list[str]:
    """Remove containers (with their anonymous volumes), networks and volumes carrying label."""
    errors: list[str] = []
    flt = f"label={label}"
    ids = docker("ps", "-aq", "--filter", flt, check=False).stdout.split()
    if ids:
        proc = docker("rm", "-f", "-v", *ids, check=False)
        if proc.returncode != 0 and "No such container" not in proc.stderr:
            errors.append(proc.stderr.strip())
    nets = docker("network", "ls", "-q", "--filter", flt, check=False).stdout.split()
    if nets:
        proc = docker("network", "rm", *nets, check=False)
        if proc.returncode != 0:
            errors.append(proc.stderr.strip())
    vols = docker("volume", "ls", "-q", "--filter", flt, check=False).stdout.split()
    if vols:
        proc = docker("volume", "rm", "-f", *vols, check=False)
        if proc.returncode != 0:
            errors.append(proc.stderr.strip())
    return errors


# -------------------------------------------------------------------- image


def _build_image(tag: str, log_path: Path) -> None:
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", str(BUILD_SCRIPT), tag],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=BUILD_TIMEOUT)
        except BaseException:
            # Timeout or pytest-timeout/KeyboardInterrupt: stop the whole build.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if rc != 0:
        tail = log_path.read_text(errors="replace")[-6000:]
        pytest.fail(
            f"docker/build-image.sh {tag} exited {rc} (full log: {log_path}):\n{tail}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def mpc_image(docker_engine: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Tag of the mpc image under test, built once per session."""
    prebuilt = os.environ.get("MPC_TEST_IMAGE", "").strip()
    if prebuilt:
        if docker("image", "inspect", prebuilt, check=False).returncode != 0:
            pytest.fail(f"MPC_TEST_IMAGE={prebuilt} does not exist", pytrace=False)
        return prebuilt
    log_path = tmp_path_factory.mktemp("docker-build") / "build-image.log"
    started = time.monotonic()
    _build_image(DEFAULT_TEST_TAG, log_path)
    sys.stderr.write(
        f"\n[docker] built {DEFAULT_TEST_TAG} in {time.monotonic() - started:.0f}s "
        f"(log: {log_path})\n"
    )
    return DEFAULT_TEST_TAG


# ----------------------------------------------------------- test resources


class DockerTestEnv:
    """Creates uniquely named, labelled Docker resources for one test; removes them all."""

    def __init__(self, image: str, test_name: str) -> None:
        self.image = image
        self.env_id = uuid.uuid4().hex[:10]
        slug = "".join(c if c.isalnum() else "-" for c in test_name.lower()).strip("-")[:30]
        self.prefix = f"mpc-test-{slug}-{self.env_id}"
        self.containers: list[str] = []
        self.networks: list[str] = []
        self.volumes: list[str] = []

    @property
    def label_args(self) -> list[str]:
        return [
            "--label",
            f"{LABEL_SESSION}={SESSION_ID}",
            "--label",
            f"{LABEL_ENV}={self.env_id}",
        ]

    def name(self, role: str) -> str:
        """A unique resource name for this test, e.g. mpc-test-<test>-<id>-party1."""
        return f"{self.prefix}-{role}"

    # networks and volumes

    def network(self, role: str = "net", *, internal: bool = True) -> str:
        """Create a bridge network; internal (no route outside) unless told otherwise."""
        name = self.name(role)
        self.networks.append(name)
        args = ["network", "create", "--driver", "bridge", *self.label_args]
        if internal:
            args.append("--internal")
        docker(*args, name)
        return name

    def volume(self, role: str = "vol") -> str:
        name = self.name(role)
        self.volumes.append(name)
        docker("volume", "create", *self.label_args, name)
        return name

    # containers

    def _run_args(
        self,
        role: str,
        *,
        network: str,
        aliases: Sequence[str],
        mounts: Sequence[str],
        env: Mapping[str, str] | None,
        user: str | None,
        entrypoint: str | None,
        workdir: str | None,
        extra_args: Sequence[str],
    ) -> tuple[str, list[str]]:
        name = self.name(role)
        self.containers.append(name)
        args = ["--name", name, "--init", "--network", network, *self.label_args]
        if network not in ("none", "host"):
            args += ["--hostname", role]
            for alias in aliases:
                args += ["--network-alias", alias]
        for mount in mounts:
            args += ["--volume", mount]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        if user is not None:
            args += ["--user", user]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        if workdir is not None:
            args += ["--workdir", workdir]
        args += list(extra_args)
        return name, args

    def start(
        self,
        *command: str,
        role: str = "c",
        image: str | None = None,
        network: str = "none",
        aliases: Sequence[str] = (),
        mounts: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        entrypoint: str | None = None,
        workdir: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> str:
        """``docker run -d``; returns the container name.  `role` names it (unique per test).

        mounts are ``--volume`` specs (``/host/dir:/etc/mpc:ro``, ``VOLUME:/var/lib/mpc``).
        """
        name, args = self._run_args(
            role,
            network=network,
            aliases=aliases,
            mounts=mounts,
            env=env,
            user=user,
            entrypoint=entrypoint,
            workdir=workdir,
            extra_args=extra_args,
        )
        docker("run", "--detach", *args, image or self.image, *command)
        return name

    def run(
        self,
        *command: str,
        role: str | None = None,
        image: str | None = None,
        network: str = "none",
        mounts: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        entrypoint: str | None = None,
        workdir: str | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a container in the foreground to completion (``docker run --rm``)."""
        _name, args = self._run_args(
            role or f"run{len(self.containers)}",
            network=network,
            aliases=(),
            mounts=mounts,
            env=env,
            user=user,
            entrypoint=entrypoint,
            workdir=workdir,
            extra_args=extra_args,
        )
        return docker(
            "run", "--rm", *args, image or self.image, *command, timeout=timeout, check=check
        )

    def exec(
        self,
        container: str,
        *command: str,
        user: str | None = None,
        timeout: float = 60,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        args = ["exec"] + (["--user", user] if user else []) + [container, *command]
        return docker(*args, timeout=timeout, check=check)

    def logs(self, container: str) -> str:
        proc = docker("logs", "--timestamps", container, check=False)
        return proc.stdout + proc.stderr

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("inspect", container).stdout)
        return data[0]

    def copy_to(self, src: Path | str, container: str, dest: str) -> None:
        docker("cp", str(src), f"{container}:{dest}")

    def wait_healthy(self, container: str, timeout: float = 90) -> None:
        """Wait for the image's HEALTHCHECK to report healthy; fail fast if it exits."""
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            state = self.inspect(container)["State"]
            if not state.get("Running"):
                raise AssertionError(
                    f"{container} exited ({state.get('ExitCode')}) before becoming healthy:\n"
                    f"{self.logs(container)[-4000:]}"
                )
            status = (state.get("Health") or {}).get("Status", "none")
            if status == "healthy":
                return
            if status == "none":
                raise AssertionError(f"{container} has no HEALTHCHECK")
            time.sleep(0.5)
        raise AssertionError(
            f"{container} not healthy after {timeout}s (status {status}):\n"
            f"{self.logs(container)[-4000:]}"
        )

    def wait_for_log(self, container: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.logs(container):
                return
            if not self.inspect(container)["State"].get("Running"):
                break
            time.sleep(0.3)
        raise AssertionError(
            f"{text!r} not in the logs of {container}:\n{self.logs(container)[-4000:]}"
        )

    def stop(self, container: str, grace: int = 10) -> float:
        """``docker stop -t grace``: SIGTERM, SIGKILL after grace seconds; returns seconds taken."""
        started = time.monotonic()
        docker("stop", "--time", str(grace), container, timeout=grace + 60)
        return time.monotonic() - started

    def wait_exit(self, container: str, timeout: float = 120) -> int:
        proc = docker("wait", container, timeout=timeout)
        return int(proc.stdout.strip())

    # teardown

    def dump_logs(self) -> str:
        parts = []
        for name in self.containers:
            if docker("inspect", name, check=False).returncode == 0:
                parts.append(f"----- docker logs {name} -----\n{self.logs(name)[-8000:]}")
        return "\n".join(parts)

    def cleanup(self) -> list[str]:
        """Remove everything this env created; returns error messages (empty when clean)."""
        return _remove_labelled(f"{LABEL_ENV}={self.env_id}")


@pytest.fixture
def docker_env(
    request: pytest.FixtureRequest, mpc_image: str, docker_session: str
) -> Iterator[DockerTestEnv]:
    """Per-test Docker resources, removed at teardown even when the test failed."""
    env = DockerTestEnv(mpc_image, request.node.name)
    try:
        yield env
    finally:
        node = request.node
        failed = any(
            getattr(getattr(node, f"_mpc_rep_{when}", None), "failed", False)
            for when in ("setup", "call")
        )
        if failed and env.containers:
            sys.stderr.write("\n" + env.dump_logs() + "\n")
        errors = env.cleanup()
        if errors:
            pytest.fail("Docker cleanup failed:\n" + "\n".join(errors), pytrace=False)
