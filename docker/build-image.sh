#!/usr/bin/env bash
# Build the mpc image: wheelhouse on the host, then docker build.
#
# Usage: bash docker/build-image.sh [TAG]
#   TAG defaults to $MPC_IMAGE, else mpc:dev.
# Environment:
#   MPC_IMAGE          image tag (the argument wins)
#   BASE_IMAGE         base image (default python:3.11-slim; made by
#                      docker/make-base-image.sh when absent)
#   DOCKER_BUILDKIT    default 0: the classic builder (Debian's docker.io has
#                      no buildx); set 1 where buildx is installed
#   DOCKER_BUILD_ARGS  extra arguments for docker build (e.g. --no-cache)
#   SKIP_WHEELHOUSE=1  reuse docker/wheelhouse/ as it is
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
IMAGE="${1:-${MPC_IMAGE:-mpc:dev}}"
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}"
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found (run: sudo bash .ci/docker-setup.sh)"
docker info >/dev/null 2>&1 || die "Docker engine not reachable (run: sudo bash .ci/docker-setup.sh)"

t0=$(date +%s)
if [[ "${SKIP_WHEELHOUSE:-0}" != 1 ]]; then
    bash "$here/build-wheelhouse.sh"
fi
compgen -G "$repo/docker/wheelhouse/project/mpc-*.whl" >/dev/null \
    || die "no wheelhouse in docker/wheelhouse/ (run docker/build-wheelhouse.sh)"
t1=$(date +%s)

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE absent; making it"
    BASE_IMAGE="$BASE_IMAGE" bash "$here/make-base-image.sh"
fi

version=$(basename "$repo"/docker/wheelhouse/project/mpc-*.whl | cut -d- -f2)
vcs_ref=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$repo" status --porcelain 2>/dev/null | head -1)" ]]; then vcs_ref="$vcs_ref-dirty"; fi

log "docker build -t $IMAGE (base $BASE_IMAGE, mpc $version, $vcs_ref)"
# The classic builder prints a deprecation notice on newer CLIs; harmless.
# shellcheck disable=SC2086
docker build \
    --file "$here/Dockerfile" \
    --tag "$IMAGE" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "MPC_VERSION=$version" \
    --build-arg "VCS_REF=$vcs_ref" \
    ${DOCKER_BUILD_ARGS:-} \
    "$repo"
t2=$(date +%s)

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
log "built $IMAGE: $((size / 1000000)) MB ($size bytes); wheelhouse $((t1 - t0))s, docker build $((t2 - t1))s"
