#!/usr/bin/env bash
# Make a Docker engine available for the Docker tests (tests/docker/).
#
# Idempotent and fast when everything is already in place:
#   1. install docker.io, debootstrap and docker-compose from Debian if missing;
#   2. start dockerd in the background if `docker info` does not answer, and
#      wait (bounded) until it does; log: $DOCKERD_LOG;
#   3. provide the base image python:3.11-slim (docker/make-base-image.sh pulls
#      it, or builds a Debian stand-in when no registry is reachable) if absent.
# Exits non-zero with a message saying what failed.
#
# Usage (as root): bash .ci/docker-setup.sh     (called by .ci/run before the tests)
# Environment:
#   DOCKERD_LOG          dockerd's log file        (default /var/log/dockerd.log)
#   DOCKERD_WAIT         seconds to wait for it    (default 60)
#   BASE_IMAGE           base image to provide     (default python:3.11-slim)
#   SKIP_BASE_IMAGE=1    stop after step 2
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_WAIT="${DOCKERD_WAIT:-60}"
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}"
PACKAGES=(docker.io debootstrap docker-compose)

log() { printf '[docker-setup] %s\n' "$*" >&2; }
die() { printf '[docker-setup] ERROR: %s\n' "$*" >&2; exit 1; }
t_start=$(date +%s)

# 1. packages ---------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    [[ $(id -u) -eq 0 ]] || die "packages missing (${missing[*]}); run as root: sudo bash .ci/docker-setup.sh"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian/Ubuntu only"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp /tmp/docker-setup-apt.XXXXXX)
    if ! { apt-get -o DPkg::Lock::Timeout=120 update -q \
           && apt-get -o DPkg::Lock::Timeout=120 install -y -q "${missing[@]}"; } \
           >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        die "apt-get install ${missing[*]} failed (full log: $apt_log)"
    fi
    rm -f "$apt_log"
fi
command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH after installing docker.io"
command -v dockerd >/dev/null 2>&1 || die "no dockerd on PATH after installing docker.io"

# 2. engine -----------------------------------------------------------------
engine_up() { timeout 10 docker info >/dev/null 2>&1; }

if ! engine_up; then
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd is running but not answering yet; waiting"
    else
        [[ $(id -u) -eq 0 ]] || die "Docker engine not running; run as root: sudo bash .ci/docker-setup.sh"
        log "starting dockerd (log: $DOCKERD_LOG)"
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        # setsid + nohup: dockerd outlives this script and the CI step that ran it.
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    waited=0
    until engine_up; do
        if [[ $waited -ge $DOCKERD_WAIT ]]; then
            [[ -f "$DOCKERD_LOG" ]] && { log "last lines of $DOCKERD_LOG:"; tail -n 25 "$DOCKERD_LOG" >&2; }
            die "Docker engine did not answer within ${DOCKERD_WAIT}s"
        fi
        if ! pgrep -x dockerd >/dev/null 2>&1; then
            [[ -f "$DOCKERD_LOG" ]] && { log "last lines of $DOCKERD_LOG:"; tail -n 25 "$DOCKERD_LOG" >&2; }
            die "dockerd exited during start-up"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "Docker engine up after ${waited}s"
fi
log "Docker engine $(docker info --format '{{.ServerVersion}} ({{.Driver}}, cgroup v{{.CgroupVersion}})')"

# 3. base image -------------------------------------------------------------
if [[ "${SKIP_BASE_IMAGE:-0}" != 1 ]]; then
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE present"
    else
        log "base image $BASE_IMAGE absent; running docker/make-base-image.sh"
        BASE_IMAGE="$BASE_IMAGE" bash "$repo/docker/make-base-image.sh" \
            || die "could not provide the base image $BASE_IMAGE (docker/make-base-image.sh failed)"
    fi
fi

log "ready in $(( $(date +%s) - t_start ))s"
