"""``mpc compose``: everything for an N-party Docker deployment, in one folder.

The bundle written to ``DIR``::

    compose.yaml               services coordinator, party-a, party-b, ... (docker-compose v1)
    certs/                     CA, coordinator, party and client certificates and keys
    coordinator/config.toml    container paths (/etc/mpc/..., /var/lib/mpc/...)
    party-<id>/config.toml     one per party: listen 0.0.0.0:50051, its own TLS files
    party-<id>/data/health.csv deterministic synthetic health records (the demo's schema)

Layout of a deployment (the security choices, and why):

* Parties sit on an ``internal`` network (no route off the host). Only the coordinator is
  also on a second network, through which it publishes its port on **127.0.0.1 only**.
* Each container bind-mounts exactly its own files, read-only: its config, ``ca.pem``, its
  own certificate and key, and (parties) its own data folder. No container sees another
  party's key or data, nor the CA key or the client key, which stay on the host.
* Certificates name identities, not addresses: the coordinator dials ``party-b:50051`` (the
  service name) and sets the TLS target name to ``b``, the client dials 127.0.0.1 and expects
  ``coordinator``. The extra names ``localhost`` and ``127.0.0.1`` in the certificates are
  only for generic tools (e.g. ``grpcurl`` without ``-authority``) on the host.
* Containers run as uid 10001 with a read-only root filesystem, no capabilities and
  ``no-new-privileges``; the coordinator's SQLite database lives on a named volume, and so
  does each party's audit log (one volume per party at ``/var/lib/mpc``, which the image
  creates owned by uid 10001, so a new volume is too).
* Private keys stay mode 0600. The container user must be able to read its key, so when
  ``mpc compose`` runs as root it hands the coordinator's and the parties' keys to uid 10001
  (``chown``); otherwise it cannot, and prints the one ``sudo chown`` to run. It never
  widens a key's mode: 0640/0644 would expose the keys to other users of the host.

``compose.yaml`` is JSON, which is also YAML: the generator needs no YAML library and tests
can read it with :func:`json.loads` after the leading comment lines. Host paths in it are
relative to the file's own folder (docker-compose resolves them so), which is why the file
does not depend on where the bundle is written and ``docker/compose.yaml`` can be checked in.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mpc.compose_spec import (
    COMPOSE_FILE,
    COMPOSE_FILE_VERSION,
    CONTAINER_AUDIT_LOG,
    CONTAINER_CONFIG,
    CONTAINER_COORDINATOR_PORT,
    CONTAINER_DATA_DIR,
    CONTAINER_GID,
    CONTAINER_PARTY_PORT,
    CONTAINER_STATE_DIR,
    CONTAINER_TLS_DIR,
    CONTAINER_UID,
    DB_VOLUME,
    DEFAULT_COORDINATOR_PORT,
    DEFAULT_IMAGE,
    DEFAULT_ROWS,
    FRONTEND_NETWORK,
    HOST_NAMES,
    LOG_LEVEL,
    MAX_ROWS,
    PARTY_NETWORK,
    ComposeOptions,
    compose_party_ids,
    compose_spec,
    compose_text,
    coordinator_config,
    parse_compose_text,
    party_config,
    party_service,
    party_volume,
)
from mpc.demo.run import DEMO_DATASET, PARTY_NAMES
from mpc.demo.synthetic_data import synthetic_health_records, write_csv
from mpc.errors import ConfigError
from mpc.identity import init_certificates

# --- files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A written deployment bundle and what to run next."""

    out: Path
    options: ComposeOptions
    rows: Mapping[str, int]
    container_keys: tuple[Path, ...]
    keys_handed_to_container_user: bool
    #: The git work tree ``out`` lies in, if any: its private keys could be committed.
    git_work_tree: Path | None = None

    @property
    def compose_file(self) -> Path:
        return self.out / COMPOSE_FILE

    @property
    def tls_dir(self) -> Path:
        return self.out / "certs"

    @property
    def coordinator_address(self) -> str:
        return f"127.0.0.1:{self.options.coordinator_port}"

    def chown_command(self) -> str | None:
        """The command to run before ``up`` when the keys could not be handed over."""
        if self.keys_handed_to_container_user:
            return None
        keys = " ".join(shlex.quote(str(p)) for p in self.container_keys)
        return f"sudo chown {CONTAINER_UID}:{CONTAINER_GID} {keys}"

    def warnings(self) -> list[str]:
        """What the operator should act on (printed to stderr by ``mpc compose``)."""
        if self.git_work_tree is None:
            return []
        return [
            f"{self.out}/ is inside the git work tree {self.git_work_tree}: it holds every "
            "private key (certs/*.key, the CA's included); make sure git ignores it (e.g. add "
            f"it to {self.git_work_tree / '.gitignore'}), or use --out outside the repository"
        ]

    def next_commands(self) -> list[str]:
        compose = shlex.quote(str(self.compose_file))
        tls = shlex.quote(str(self.tls_dir))
        chown = self.chown_command()
        return [
            *([chown] if chown else []),
            f"docker-compose -f {compose} up -d",
            f"mpc query mean --dataset {DEMO_DATASET} --column age,bmi "
            f"--coordinator {self.coordinator_address} --tls-dir {tls}",
        ]

    def summary_lines(self) -> list[str]:
        """What ``mpc compose`` prints: what was written, then the commands to run next."""
        ids = ",".join(self.options.party_ids)
        lines = [
            f"wrote a {self.options.parties}-party Docker deployment to {self.out}/: "
            f"{COMPOSE_FILE}, certs/, coordinator/, party-{{{ids}}}/ with synthetic "
            f"{DEMO_DATASET!r} records (keep certs/ca.key offline)",
        ]
        if not self.keys_handed_to_container_user:
            lines.append(
                f"not running as root: the keys stay yours (mode 0600), but the containers run "
                f"as uid {CONTAINER_UID} and must read theirs; the chown below hands them over"
            )
        lines.append("next:")
        lines += [f"  {command}" for command in self.next_commands()]
        mpc = _mpc_command()
        if mpc != "mpc":
            lines.append(f"(`mpc` here is {mpc}: this mpc is not first on PATH)")
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "out": str(self.out),
            "compose_file": str(self.compose_file),
            "tls_dir": str(self.tls_dir),
            "image": self.options.image,
            "coordinator": self.coordinator_address,
            "parties": self.options.party_ids,
            "dataset": DEMO_DATASET,
            "rows": dict(self.rows),
            "keys_owner_uid": CONTAINER_UID if self.keys_handed_to_container_user else None,
            "next": self.next_commands(),
            "warnings": self.warnings(),
        }


def _mpc_command() -> str:
    """How to run this mpc: plain ``mpc`` when it is first on PATH, else its full path (a
    virtual environment that is not activated)."""
    beside = Path(sys.executable).parent / "mpc"
    on_path = shutil.which("mpc")
    if on_path is not None and Path(on_path).resolve() == beside.resolve():
        return "mpc"
    if beside.exists():
        return shlex.quote(str(beside))
    return f"{shlex.quote(sys.executable)} -m mpc"


def git_work_tree(path: Path) -> Path | None:
    """The git work tree containing ``path`` (found by its ``.git``), or None."""
    for folder in [path.resolve(), *path.resolve().parents]:
        if (folder / ".git").exists():
            return folder
    return None


def _bundle_paths(out: Path) -> list[Path]:
    """What a bundle consists of in ``out`` (also what ``force`` replaces)."""
    paths = [out / COMPOSE_FILE, out / "certs", out / "coordinator"]
    return paths + [out / party_service(pid) for pid in PARTY_NAMES]


def _prepare_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ConfigError(
                f"--out {out} is not empty; choose a new folder, or pass --force to replace "
                "the bundle in it (a new CA: certificates issued before stop working)"
            )
        for path in _bundle_paths(out):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)  # explicit: a restrictive umask must not hide configs from uid 10001


def _hand_keys_to_container_user(keys: list[Path]) -> bool:
    """chown the keys the containers read to uid 10001 when we may; keep them 0600."""
    if os.geteuid() != 0:
        return False
    for key in keys:
        os.chown(key, CONTAINER_UID, CONTAINER_GID)
        key.chmod(0o600)
    return True


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)  # uid 10001 lists /data; a restrictive umask must not prevent it


def _write_files(out: Path, options: ComposeOptions) -> dict[str, int]:
    party_ids = options.party_ids
    certs = out / "certs"
    init_certificates(certs, party_ids, extra_hosts=HOST_NAMES)
    for pem in certs.glob("*.pem"):
        pem.chmod(0o644)
    _mkdir(out / "coordinator")
    _write(out / "coordinator" / "config.toml", coordinator_config(options))
    rows: dict[str, int] = {}
    for index, pid in enumerate(party_ids):
        folder = out / party_service(pid)
        _mkdir(folder)
        _mkdir(folder / "data")
        _write(folder / "config.toml", party_config(options, pid))
        rows[pid] = options.party_rows(index)
        csv = folder / "data" / f"{DEMO_DATASET}.csv"
        # The demo's seeds: `mpc demo` and this bundle hold the same records per position.
        write_csv(csv, synthetic_health_records(rows[pid], seed=1000 + index))
        csv.chmod(0o644)
    _write(out / COMPOSE_FILE, compose_text(options))
    return rows


def write_bundle(out: Path, options: ComposeOptions, *, force: bool = False) -> Bundle:
    """Write certificates, configs, synthetic data and ``compose.yaml`` into ``out``."""
    options.validate()
    keys = [out / "certs" / f"{name}.key" for name in ("coordinator", *options.party_ids)]
    try:
        _prepare_out_dir(out, force)
        rows = _write_files(out, options)
        handed = _hand_keys_to_container_user(keys)
    except OSError as exc:
        raise ConfigError(f"cannot write the bundle: {exc.filename}: {exc.strerror}") from exc
    return Bundle(out, options, rows, tuple(keys), handed, git_work_tree(out))


__all__ = [
    "COMPOSE_FILE",
    "COMPOSE_FILE_VERSION",
    "CONTAINER_AUDIT_LOG",
    "CONTAINER_CONFIG",
    "CONTAINER_COORDINATOR_PORT",
    "CONTAINER_DATA_DIR",
    "CONTAINER_GID",
    "CONTAINER_PARTY_PORT",
    "CONTAINER_STATE_DIR",
    "CONTAINER_TLS_DIR",
    "CONTAINER_UID",
    "DB_VOLUME",
    "DEFAULT_COORDINATOR_PORT",
    "DEFAULT_IMAGE",
    "DEFAULT_ROWS",
    "FRONTEND_NETWORK",
    "HOST_NAMES",
    "LOG_LEVEL",
    "MAX_ROWS",
    "PARTY_NETWORK",
    "Bundle",
    "ComposeOptions",
    "compose_party_ids",
    "compose_spec",
    "compose_text",
    "coordinator_config",
    "parse_compose_text",
    "party_config",
    "party_service",
    "party_volume",
    "write_bundle",
]
