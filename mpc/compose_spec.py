"""``mpc compose``, the pure part: options, the party and coordinator configs, the compose file.

Split from :mod:`mpc.compose` (which re-exports every name here and writes the bundle). No
I/O here: the same options always give the same text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc.demo.cluster import DatasetFile, coordinator_config_text, party_config_text
from mpc.demo.run import DEMO_DATASET, PARTY_NAMES
from mpc.demo.synthetic_data import HEALTH_COLUMNS
from mpc.errors import ConfigError

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
