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

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc.demo.cluster import DatasetFile, coordinator_config_text, party_config_text
from mpc.demo.run import DEMO_DATASET, PARTY_NAMES
from mpc.demo.synthetic_data import HEALTH_COLUMNS, synthetic_health_records, write_csv
from mpc.errors import ConfigError
from mpc.identity import init_certificates

#: docker-compose v1 (Debian's ``docker-compose`` package) understands file format 3.8.
COMPOSE_FILE_VERSION = "3.8"
COMPOSE_FILE = "compose.yaml"
DEFAULT_IMAGE = "mpc:dev"
DEFAULT_COORDINATOR_PORT = 50050
DEFAULT_ROWS = 1000
MAX_ROWS = 1_000_000  # synthetic demo data; a real party mounts its own files

#: The image's service user (docker/Dockerfile: ``USER 10001:10001``).
CONTAINER_UID = 10001
CONTAINER_GID = 10001

# Paths and ports inside the containers. Every party listens on the same port: each has its
# own network namespace, and the coordinator tells them apart by service name.
CONTAINER_CONFIG = "/etc/mpc/config.toml"  # = $MPC_CONFIG in the image
CONTAINER_TLS_DIR = Path("/etc/mpc/tls")
CONTAINER_DATA_DIR = Path("/data")
CONTAINER_STATE_DIR = Path("/var/lib/mpc")
CONTAINER_AUDIT_LOG = CONTAINER_STATE_DIR / "audit.jsonl"  # a party's, on its own volume
CONTAINER_COORDINATOR_PORT = 50050
CONTAINER_PARTY_PORT = 50051

PARTY_NETWORK = "parties"  # internal: parties and coordinator, no route off the host
FRONTEND_NETWORK = "frontend"  # coordinator only, for its port published on 127.0.0.1
DB_VOLUME = "coordinator-db"
HOST_NAMES = ("localhost", "127.0.0.1")
LOG_LEVEL = "INFO"  # start-up, job and failure lines; never values (see README)

_IMAGE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")


def compose_party_ids(count: int) -> list[str]:
    """Party ids for a compose deployment: ``a``, ``b``, ``c``, ..."""
    if not 2 <= count <= len(PARTY_NAMES):
        raise ConfigError(
            f"--parties must be between 2 and {len(PARTY_NAMES)} (secure sums need at least "
            f"two parties), got {count}"
        )
    return list(PARTY_NAMES[:count])


def party_service(party_id: str) -> str:
    """Compose service name, also the party's DNS name on the deployment network."""
    return f"party-{party_id}"


def party_volume(party_id: str) -> str:
    """A party's named volume (its writable state: the audit log)."""
    return f"{party_service(party_id)}-state"


@dataclass(frozen=True)
class ComposeOptions:
    """What ``mpc compose`` writes. The defaults are those of the command line."""

    parties: int = 3
    rows: int = DEFAULT_ROWS
    image: str = DEFAULT_IMAGE
    coordinator_port: int = DEFAULT_COORDINATOR_PORT
    job_timeout_seconds: float = 60.0
    rpc_timeout_seconds: float = 10.0

    def validate(self) -> None:
        compose_party_ids(self.parties)
        if not 1 <= self.rows <= MAX_ROWS:
            raise ConfigError(f"--rows must be between 1 and {MAX_ROWS}, got {self.rows}")
        if not _IMAGE_PATTERN.fullmatch(self.image):
            raise ConfigError(f"--image {self.image!r} is not a Docker image reference")
        if not 1 <= self.coordinator_port <= 65535:
            raise ConfigError(
                f"--coordinator-port must be between 1 and 65535, got {self.coordinator_port}"
            )
        if not 0 < self.rpc_timeout_seconds <= self.job_timeout_seconds:
            raise ConfigError("timeouts must be positive, the RPC timeout at most the job's")

    @property
    def party_ids(self) -> list[str]:
        return compose_party_ids(self.parties)

    def party_rows(self, index: int) -> int:
        # The demo's uneven sizes, so equal splits cannot hide a bug.
        return self.rows + 37 * index


# --- pure: the configs and the compose file ------------------------------------------------


def _dataset_file(options: ComposeOptions, index: int) -> DatasetFile:
    rows = options.party_rows(index)
    return DatasetFile(
        path=CONTAINER_DATA_DIR / f"{DEMO_DATASET}.csv",
        max_rows=10 * rows + 100,  # as in `mpc demo`: public limit with room to grow
        bounds={column: (lo, hi) for column, (lo, hi, _) in HEALTH_COLUMNS.items()},
    )


def party_config(options: ComposeOptions, party_id: str) -> str:
    """A party's config.toml, with the paths it sees inside its container."""
    index = options.party_ids.index(party_id)
    body = party_config_text(
        party_id,
        f"0.0.0.0:{CONTAINER_PARTY_PORT}",
        CONTAINER_TLS_DIR,
        {DEMO_DATASET: _dataset_file(options, index)},
        # Declared, so no party pins a cohort at first use (its config dir is read-only).
        cohorts={DEMO_DATASET: tuple(options.party_ids)},
    )
    # The audit log goes on the party's own volume: its config dir /etc/mpc is read-only.
    audit = f"audit_log = {json.dumps(str(CONTAINER_AUDIT_LOG))}\n"
    return f"# Party {party_id!r} in its container; written by `mpc compose`.\n" + audit + body


def coordinator_config(options: ComposeOptions) -> str:
    """The coordinator's config.toml: parties by service name, database on the volume."""
    body = coordinator_config_text(
        f"0.0.0.0:{CONTAINER_COORDINATOR_PORT}",
        CONTAINER_TLS_DIR,
        CONTAINER_STATE_DIR / "coordinator.sqlite",
        {pid: f"{party_service(pid)}:{CONTAINER_PARTY_PORT}" for pid in options.party_ids},
        options.job_timeout_seconds,
        options.rpc_timeout_seconds,
    )
    return "# The coordinator in its container; written by `mpc compose`.\n" + body


def _bind(source: str, target: str) -> dict[str, Any]:
    # Long syntax: a missing source is an error, where the short syntax would silently
    # create an empty directory (as root) in its place.
    return {"type": "bind", "source": source, "target": target, "read_only": True}


def _service_base(options: ComposeOptions, command: list[str]) -> dict[str, Any]:
    """What every service shares: the image, the role's command, and least privilege."""
    return {
        "image": options.image,
        # --config spelled out although it is the image's $MPC_CONFIG: the command then works
        # with images whose CLI predates that default, and says where the config comes from.
        "command": ["--log-level", LOG_LEVEL, *command, "--config", CONTAINER_CONFIG],
        "init": True,
        "restart": "unless-stopped",
        "read_only": True,
        "tmpfs": ["/tmp"],  # noqa: S108 (the container's own tmpfs, not the host's /tmp)
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
    }


def _tls_mounts(name: str) -> list[dict[str, Any]]:
    return [
        _bind("./certs/ca.pem", f"{CONTAINER_TLS_DIR}/ca.pem"),
        _bind(f"./certs/{name}.pem", f"{CONTAINER_TLS_DIR}/{name}.pem"),
        _bind(f"./certs/{name}.key", f"{CONTAINER_TLS_DIR}/{name}.key"),
    ]


def compose_spec(options: ComposeOptions) -> dict[str, Any]:
    """The compose file as a dict (JSON-serialisable). Host paths relative to its folder."""
    options.validate()
    services: dict[str, Any] = {}
    for pid in options.party_ids:
        service = party_service(pid)
        services[service] = {
            **_service_base(options, ["party", "serve"]),
            "networks": [PARTY_NETWORK],
            "volumes": [
                _bind(f"./{service}/config.toml", CONTAINER_CONFIG),
                *_tls_mounts(pid),
                _bind(f"./{service}/data", str(CONTAINER_DATA_DIR)),
                {"type": "volume", "source": party_volume(pid), "target": str(CONTAINER_STATE_DIR)},
            ],
        }
    coordinator = {
        **_service_base(options, ["coordinator", "serve"]),
        "depends_on": [party_service(pid) for pid in options.party_ids],
        "networks": [PARTY_NETWORK, FRONTEND_NETWORK],
        "ports": [f"127.0.0.1:{options.coordinator_port}:{CONTAINER_COORDINATOR_PORT}"],
        "volumes": [
            _bind("./coordinator/config.toml", CONTAINER_CONFIG),
            *_tls_mounts("coordinator"),
            {"type": "volume", "source": DB_VOLUME, "target": str(CONTAINER_STATE_DIR)},
        ],
    }
    return {
        "version": COMPOSE_FILE_VERSION,
        "services": {"coordinator": coordinator, **services},
        "networks": {
            PARTY_NETWORK: {"driver": "bridge", "internal": True},
            FRONTEND_NETWORK: {"driver": "bridge"},
        },
        "volumes": {DB_VOLUME: {}, **{party_volume(pid): {} for pid in options.party_ids}},
    }


def compose_text(options: ComposeOptions) -> str:
    """The compose file's text: comment lines, then the spec as (YAML-compatible) JSON."""
    args = [f"--parties {options.parties}"]
    if options.image != DEFAULT_IMAGE:
        args.append(f"--image {options.image}")
    if options.coordinator_port != DEFAULT_COORDINATOR_PORT:
        args.append(f"--coordinator-port {options.coordinator_port}")
    header = [
        f"# Written by `mpc compose {' '.join(args)} --out DIR`; regenerate rather than edit.",
        "# Host paths are relative to this file's folder, which holds the rest of the bundle",
        "# (certs/, coordinator/, party-<id>/). Run from anywhere:",
        f"#   docker-compose -f DIR/{COMPOSE_FILE} up -d",
        "# JSON is YAML: after these comment lines this file is plain JSON.",
    ]
    return "\n".join(header) + "\n" + json.dumps(compose_spec(options), indent=2) + "\n"


def parse_compose_text(text: str) -> dict[str, Any]:
    """Read a file written by :func:`compose_text` (comment lines, then JSON)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    spec: dict[str, Any] = json.loads(body)
    return spec


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
