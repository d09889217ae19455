"""Smoke tests of the mpc Docker image (docker/Dockerfile).

Needs a Docker engine: skipped without one, except under CI=true where the
missing engine is an error (see conftest.py).  Enable locally with
``sudo bash .ci/docker-setup.sh``.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.docker.conftest import DockerTestEnv

pytestmark = pytest.mark.docker

ROOT_USERS = {"", "0", "root", "0:0", "root:root", "0:root", "root:0"}


def _inspect_image(docker_cli: Callable[..., Any], image: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker_cli("image", "inspect", image).stdout)
    return data[0]


def test_image_builds_with_expected_config(docker_cli: Callable[..., Any], mpc_image: str) -> None:
    config = _inspect_image(docker_cli, mpc_image)["Config"]
    assert config["Entrypoint"] == ["mpc"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["MPC_CONFIG"] == "/etc/mpc/config.toml"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert config["WorkingDir"] == "/var/lib/mpc"
    health = config.get("Healthcheck") or {}
    assert health.get("Test"), "the image must define a HEALTHCHECK"
    assert "mpc health --config" in " ".join(health["Test"])
    assert "$MPC_CONFIG" in " ".join(health["Test"])
    assert "none baked in" in config["Labels"]["io.mpc.secrets"]


@pytest.mark.parametrize("args", [["--help"], ["health", "--help"]], ids=["help", "health-help"])
def test_cli_help_exits_zero(docker_env: DockerTestEnv, args: list[str]) -> None:
    proc = docker_env.run(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "usage" in (proc.stdout + proc.stderr).lower()


def test_package_installed_in_venv(docker_env: DockerTestEnv) -> None:
    code = (
        "import sys, importlib.metadata as md, mpc, grpc, numpy, cryptography, google.protobuf;"
        "print(sys.prefix); print(list(mpc.__path__)[0]); print(md.version('mpc'));"
        "print('%d.%d' % sys.version_info[:2])"
    )
    proc = docker_env.run("-c", code, entrypoint="python3", check=True)
    prefix, pkg_dir, _version, pyver = proc.stdout.split()
    assert prefix == "/opt/venv"
    assert pkg_dir.startswith("/opt/venv/lib/python3.11/site-packages/mpc")
    assert pyver == "3.11"


def test_default_user_is_not_root(
    docker_cli: Callable[..., Any], docker_env: DockerTestEnv, mpc_image: str
) -> None:
    user = _inspect_image(docker_cli, mpc_image)["Config"]["User"]
    assert user not in ROOT_USERS, f"image runs as {user!r}"
    uid = docker_env.run("-u", entrypoint="id", check=True).stdout.strip()
    gid = docker_env.run("-g", entrypoint="id", check=True).stdout.strip()
    assert uid != "0"
    assert gid != "0"
    assert uid == "10001"


def test_state_dir_writable_and_mount_points_empty(docker_env: DockerTestEnv) -> None:
    script = (
        'set -e; test "$(pwd)" = /var/lib/mpc; touch /var/lib/mpc/probe.sqlite; '
        "ls -A /etc/mpc /data /var/lib/mpc"
    )
    proc = docker_env.run("-c", script, entrypoint="sh", check=True)
    listing = proc.stdout.split()
    # Only the file the script itself created; nothing shipped in the mount points.
    assert listing == ["/data:", "/etc/mpc:", "/var/lib/mpc:", "probe.sqlite"], proc.stdout
    # The venv is not writable by the service user.
    proc = docker_env.run("-c", "touch /opt/venv/x", entrypoint="sh")
    assert proc.returncode != 0


# ------------------------------------------------------------------ secrets

# A PEM private key *block*: the BEGIN line followed (after optional RFC 1421
# headers such as Proc-Type/DEK-Info) by base64 data, with real or escaped
# ("\n" inside a string literal) newlines.  A bare "PRIVATE KEY" string is not
# enough: OpenSSL, GnuTLS, gpgv, grpc's cygrpc and cryptography (ssh.py,
# _rust.abi3.so) all contain that text as parser constants, which a plain
# `grep -rl "PRIVATE KEY" /` reports.
_NL = rb"(?:\r?\n|(?:\\r)?\\n)"
PEM_PRIVATE_KEY = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----" + _NL
    + rb"(?:[A-Za-z-]+: [^\r\n\\]*" + _NL + rb")*" + _NL + rb"?"
    + rb"[A-Za-z0-9+/=]{40,}"
)  # fmt: skip
# Known, public keys that are not secrets, by path (regex on the path in the
# layer) with the reason.  Keep this list short and justified.
ALLOWED_PEM_KEYS: dict[str, str] = {
    # GnuTLS compiles the fixed keys of its power-on self-tests into the library
    # (lib/crypto-selftests-pk.c: RSA, DSA, EC, GOST test keys).  Public test
    # vectors, identical in every Debian installation; a dependency of apt.
    r"usr/lib/[^/]+-linux-gnu/libgnutls\.so\.30(\.[0-9]+)*": "GnuTLS self-test vectors",
}
KEY_FILE_SUFFIXES = (".key", ".p12", ".pfx", ".jks", ".keystore")
KEY_FILE_NAMES = {"id_rsa", "id_ecdsa", "id_ed25519", "id_dsa"}
MAX_SCAN_BYTES = 512 * 1024 * 1024


def _allowed(path: str) -> bool:
    rel = path.removeprefix("./").lstrip("/")
    return any(re.fullmatch(rx, rel) for rx in ALLOWED_PEM_KEYS)


def _layer_files(image_tar: Path) -> Iterator[tuple[str, str, bytes]]:
    """(layer, path, content) of every regular file in every layer of a `docker save`."""
    with tarfile.open(image_tar, "r:") as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            fobj = outer.extractfile(layer)
            assert fobj is not None
            with tarfile.open(fileobj=fobj, mode="r|*") as inner:
                for member in inner:
                    if not member.isfile() or member.size > MAX_SCAN_BYTES:
                        continue
                    data = inner.extractfile(member)
                    assert data is not None
                    yield layer, member.name, data.read()


def test_no_private_key_baked_in(
    docker_cli: Callable[..., Any], mpc_image: str, tmp_path: Path
) -> None:
    """No layer of the image, base layers included, holds a private key.

    Scans `docker save` output, so a key added in one layer and deleted in a
    later one is still found.  Only the public test vectors in ALLOWED_PEM_KEYS
    are tolerated; the installed wheels ship no test data with keys.
    """
    image_tar = tmp_path / "image.tar"
    docker_cli("save", "--output", str(image_tar), mpc_image, timeout=300)
    pem_hits: list[str] = []
    named_hits: list[str] = []
    scanned = 0
    for layer, path, content in _layer_files(image_tar):
        scanned += 1
        base = path.rsplit("/", 1)[-1]
        if base.endswith(KEY_FILE_SUFFIXES) or base in KEY_FILE_NAMES:
            named_hits.append(f"{layer}: {path}")
        has_key = b"PRIVATE KEY-----" in content and PEM_PRIVATE_KEY.search(content)
        if has_key and not _allowed(path):
            pem_hits.append(f"{layer}: {path}")
    assert scanned > 1000, f"only {scanned} files scanned: is the image tar complete?"
    assert not pem_hits, "PEM private keys baked into the image:\n" + "\n".join(pem_hits)
    assert not named_hits, "key-store-like files in the image:\n" + "\n".join(named_hits)


def test_private_key_detector_catches_real_keys() -> None:
    """The detector above is not vacuous: it finds real PEM keys, not parser constants."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        assert PEM_PRIVATE_KEY.search(pem)
        assert PEM_PRIVATE_KEY.search(repr(pem).encode())  # escaped "\n" in source code
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert PEM_PRIVATE_KEY.search(encrypted)
    for constant in (
        b'PEM_PRIVATE = b"-----BEGIN PRIVATE KEY-----"\n',
        b"-----BEGIN OPENSSH PRIVATE KEY-----\x00-----END OPENSSH PRIVATE KEY-----",
        b"ANY PRIVATE KEY\x00ENCRYPTED PRIVATE KEY\x00",
    ):
        assert not PEM_PRIVATE_KEY.search(constant)


# ----------------------------------------------------------- fixture checks


def test_docker_env_network_and_cleanup(
    docker_cli: Callable[..., Any], docker_env: DockerTestEnv
) -> None:
    """Two containers talk over an internal test network; cleanup leaves nothing."""
    net = docker_env.network()
    vol = docker_env.volume()
    server_code = (
        "import socket; s = socket.create_server(('', 7000)); print('ready', flush=True);"
        "c, _ = s.accept(); c.sendall(b'pong'); c.close()"
    )
    server = docker_env.start(
        "-c", server_code, role="server", network=net, aliases=["server"],
        mounts=[f"{vol}:/var/lib/mpc"], entrypoint="python3",
    )  # fmt: skip
    docker_env.wait_for_log(server, "ready", timeout=30)
    client_code = (
        "import socket; c = socket.create_connection(('server', 7000), timeout=10);"
        "print(c.recv(4).decode())"
    )
    proc = docker_env.run("-c", client_code, network=net, entrypoint="python3", check=True)
    assert proc.stdout.strip() == "pong"
    assert docker_env.wait_exit(server, timeout=30) == 0

    label = f"label=io.mpc.test.env={docker_env.env_id}"
    assert docker_cli("ps", "-aq", "--filter", label).stdout.split()
    assert docker_env.cleanup() == []
    assert docker_cli("ps", "-aq", "--filter", label).stdout.split() == []
    assert docker_cli("network", "ls", "-q", "--filter", label).stdout.split() == []
    assert docker_cli("volume", "ls", "-q", "--filter", label).stdout.split() == []


# ------------------------------------------------------------- end to end

_PARTY_SETUP = """
set -e
mpc certs init --out /etc/mpc/tls --parties a,b >/dev/null
cat > /etc/mpc/config.toml <<'TOML'
audit_log = "/var/lib/mpc/audit.jsonl"
id = "a"
listen = "0.0.0.0:50051"
[tls]
ca = "tls/ca.pem"
cert = "tls/a.pem"
key = "tls/a.key"
[datasets]
TOML
chown -R 10001:10001 /etc/mpc
"""


def test_party_container_becomes_healthy_and_stops_cleanly(docker_env: DockerTestEnv) -> None:
    """The image's HEALTHCHECK (`mpc health --config $MPC_CONFIG`) sees a serving party.

    Certificates and config are made in a volume (as root, then handed to uid
    10001) and mounted read-only at /etc/mpc, as in a deployment.
    """
    vol = docker_env.volume("etc")
    docker_env.run(
        "-c", _PARTY_SETUP, user="0", entrypoint="sh", mounts=[f"{vol}:/etc/mpc"], check=True
    )
    party = docker_env.start(
        "party", "serve", "--config", "/etc/mpc/config.toml",
        role="party-a",
        mounts=[f"{vol}:/etc/mpc:ro"],
        extra_args=["--health-interval", "1s", "--health-start-period", "30s"],
    )  # fmt: skip
    docker_env.wait_healthy(party, timeout=60)
    health_log = docker_env.inspect(party)["State"]["Health"]["Log"]
    assert "SERVING" in health_log[-1]["Output"]
    # Same check by hand, with the default config path from MPC_CONFIG.
    proc = docker_env.exec(party, "sh", "-c", 'mpc health --config "$MPC_CONFIG"')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # SIGTERM stops the server gracefully, well before docker's SIGKILL.
    elapsed = docker_env.stop(party, grace=10)
    assert elapsed < 8, f"docker stop took {elapsed:.1f}s: SIGTERM not handled?"
    assert docker_env.inspect(party)["State"]["ExitCode"] == 0, docker_env.logs(party)
